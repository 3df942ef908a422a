//! Every route of the server on one screen (after atuin-server's `router.rs`), each with the access it
//! declares ([`Access`]: public, webhook, operator, or a tenant permission from `crate::access::TABLE`). The
//! handlers live with their feature; the middleware stack and serving live in [`crate::http`].
//!
//! The router and the route table ([`table`]) are built by the same functions, so a test that walks the table
//! walks every route the server answers.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, any, on};

use crate::access::{Access, Action, Resource, RouteInfo};
use crate::admin::{
    audit as admin_audit, backups, crm, impersonation, jobs, maintenance, moves, notifications,
    salla as stores, tenants, webhooks,
};
use crate::dashboard::{api_keys, commerce, me, registration, tenant};
use crate::http::{self, health};
use crate::ratelimit;
use crate::state::AppState;

use Access::{Operator, Public, TenantDynamic, Webhook};
use Action::{Manage, Read, Write};
use Resource as R;

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

/// A tenant route needing `action` on `resource` (the table gives the minimum role).
const fn tenant(resource: Resource, action: Action) -> Access {
    Access::Tenant(resource, action)
}

/// The full API: operations endpoints, webhooks, the public and merchant API, the admin API and the CRM
/// proxy.
pub fn api(state: AppState) -> Router {
    let server = &state.config().server;
    let groups = groups(server.metrics_listen.is_empty());
    let policies = crate::web::security::Policies::new(state.config());
    let pages = groups
        .pages
        .router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::unavailable::unavailable_page,
        ))
        .layer(axum::middleware::from_fn_with_state(
            policies,
            crate::web::security_headers,
        ));
    let routes = groups
        .main
        .router
        .merge(pages)
        .merge(groups.assets.router)
        .fallback(http::not_found);
    // The CRM proxy comes after the server's body limit and timeout: it enforces its own
    // (`crm.proxy_body_limit_bytes`, `crm.proxy_timeout_secs`).
    let routes = http::with_limits(routes, server)
        .merge(groups.proxy.router)
        // The tenant limit's decision (checked by `TenantContext`) onto the response as `RateLimit-*`.
        .layer(axum::middleware::from_fn(ratelimit::http::response_headers))
        // For the per-IP limits' route layers (`Routes::at_ip`), which are built without the state.
        .layer(axum::Extension(state.clone()));
    http::with_observability(routes, server).with_state(state)
}

/// Every route [`api`] serves (with `/metrics`), with its method (`None`: any) and declared access.
pub fn table() -> Vec<RouteInfo> {
    let groups = groups(true);
    [groups.main, groups.pages, groups.assets, groups.proxy]
        .into_iter()
        .flat_map(|g| g.infos)
        .collect()
}

/// What a worker-only process serves: health and metrics, so it can be probed and scraped like the API.
pub fn ops_only(state: AppState) -> Router {
    let server = &state.config().server;
    let routes = ops(Routes::new(""), server.metrics_listen.is_empty())
        .router
        .fallback(http::not_found);
    http::with_middleware(routes, server).with_state(state)
}

/// `/metrics` alone, for `server.metrics_listen`.
pub fn metrics_only(state: AppState) -> Router {
    let routes = Routes::new("")
        .at(GET, "/metrics", Public, health::metrics)
        .router
        .fallback(http::not_found);
    http::with_middleware(routes, &state.config().server).with_state(state)
}

/// The routes of [`api`], by the middleware they get.
struct Groups {
    main: Routes,
    /// The merchant app's pages: the app's CSP and Referrer-Policy.
    pages: Routes,
    assets: Routes,
    /// Not under the server's body limit and timeout.
    proxy: Routes,
}

#[rustfmt::skip]
fn groups(with_metrics: bool) -> Groups {
    let main = ops(Routes::new(""), with_metrics)
        .at(GET, "/api/version", Public, http::version)
        // The API reference (`crate::openapi`): the OpenAPI document and its readable page.
        .at(GET, "/api/openapi.json", Public, crate::openapi::json)
        .at(GET, "/api/docs", Public, crate::openapi::docs)
        // Providers calling back: authenticated on the raw bytes, stored durably, answered at once.
        .at(POST, "/webhooks/clerk", Webhook, crate::clerk::routes::receive)
        .at(POST, "/webhooks/salla", Webhook, crate::salla::routes::receive);
    let main = public(main.prefixed("/api"));
    let main = admin(main.prefixed("/api/admin"));
    let main = admin(main.prefixed("/admin"));
    Groups {
        main,
        pages: web(Routes::new("")),
        assets: Routes::new("").at(GET, "/assets/{file}", Public, crate::web::assets::serve),
        proxy: crm_proxy(Routes::new("")),
    }
}

// The route lists below are kept one route per line by hand (`rustfmt::skip`): "every route on one screen".

#[rustfmt::skip]
fn ops(routes: Routes, with_metrics: bool) -> Routes {
    let routes = routes
        .at(GET, "/health/live", Public, health::live)
        .at(GET, "/health/ready", Public, health::ready);
    if with_metrics {
        routes.at(GET, "/metrics", Public, health::metrics)
    } else {
        routes
    }
}

/// Under `/api`: self-serve registration and its progress (public), then the caller's tenant and its store
/// data (Clerk session, tenant API key or app session).
#[rustfmt::skip]
fn public(r: Routes) -> Routes {
    use crate::embedded::routes as embedded;
    use ratelimit::IpRule::{ProvisioningStatus, Registration, SessionMinting};
    r.at_ip(POST, "/auth/register-organization", Public, Registration, registration::register)
        .at_ip(GET, "/auth/provisioning-status/{id}", Public, ProvisioningStatus, registration::status)
        .at(GET, "/me", tenant(R::Tenant, Read), me::show)
        .at(GET, "/tenant", tenant(R::Tenant, Read), tenant::show)
        .at(GET, "/tenant/api-keys", tenant(R::ApiKeys, Manage), api_keys::list)
        .at(POST, "/tenant/api-keys", tenant(R::ApiKeys, Manage), api_keys::create)
        .at(DELETE, "/tenant/api-keys/{key_id}", tenant(R::ApiKeys, Manage), api_keys::revoke)
        .at(GET, "/customers", tenant(R::Commerce, Read), commerce::customers::list)
        .at(GET, "/products", tenant(R::Commerce, Read), commerce::products::list)
        .at(GET, "/orders", tenant(R::Commerce, Read), commerce::orders::list)
        .at(GET, "/orders/{id}", tenant(R::Commerce, Read), commerce::orders::show)
        .at(GET, "/carts/abandoned", tenant(R::Commerce, Read), commerce::carts::list)
        .at(GET, "/stats", tenant(R::Commerce, Read), commerce::stats::show)
        .at(GET, "/sync", tenant(R::Sync, Read), commerce::sync::show)
        .at(POST, "/sync/resync", tenant(R::Sync, Manage), commerce::sync::resync)
        .at(GET, "/audit", tenant(R::Audit, Read), crate::audit::routes::list)
        .at_ip(POST, "/embedded/session", Public, SessionMinting, embedded::create_session)
        .at_ip(POST, "/embedded/standalone", tenant(R::Tenant, Read), SessionMinting, embedded::standalone)
}

/// Under `/api/admin` (and `/admin`): the operators' API, `X-Admin-Key`.
#[rustfmt::skip]
fn admin(r: Routes) -> Routes {
    r.at(GET, "/jobs", Operator, jobs::list)
        .at(POST, "/jobs", Operator, jobs::enqueue)
        .at(GET, "/jobs/stats", Operator, jobs::stats)
        .at(GET, "/jobs/{id}", Operator, jobs::get)
        .at(POST, "/jobs/{id}/retry", Operator, jobs::retry)
        .at(POST, "/jobs/{id}/cancel", Operator, jobs::cancel)
        .at(GET, "/tenants", Operator, tenants::list)
        .at(POST, "/tenants", Operator, tenants::create)
        .at(GET, "/tenants/{id}", Operator, tenants::show)
        .at(DELETE, "/tenants/{id}", Operator, tenants::delete)
        .at(POST, "/tenants/{id}/suspend", Operator, tenants::suspend)
        .at(POST, "/tenants/{id}/activate", Operator, tenants::activate)
        .at(POST, "/tenants/{id}/retry", Operator, tenants::retry)
        .at(GET, "/tenants/{id}/api-keys", Operator, tenants::list_keys)
        .at(POST, "/tenants/{id}/api-keys", Operator, tenants::create_key)
        .at(DELETE, "/tenants/{id}/api-keys/{key_id}", Operator, tenants::revoke_key)
        .at(GET, "/tenants/{id}/crm", Operator, crm::show)
        .at(GET, "/crm", Operator, crm::instances)
        .at(GET, "/stats", Operator, tenants::stats)
        .at(GET, "/webhooks", Operator, webhooks::list)
        .at(GET, "/webhooks/{id}", Operator, webhooks::get)
        .at(POST, "/webhooks/{id}/replay", Operator, webhooks::replay)
        .at(GET, "/salla/stores", Operator, stores::list)
        .at(GET, "/salla/stores/{merchant_id}", Operator, stores::show)
        .at(GET, "/audit", Operator, admin_audit::list)
        .at(GET, "/notifications", Operator, notifications::list)
        .at(GET, "/maintenance", Operator, maintenance::show)
        .at(POST, "/maintenance", Operator, maintenance::set)
        .at(POST, "/tenants/{id}/read-only", Operator, maintenance::read_only)
        .at(POST, "/tenants/{id}/impersonate", Operator, impersonation::impersonate)
        .at(GET, "/backups", Operator, backups::list)
        .at(GET, "/backups/{set}", Operator, backups::show)
        .at(POST, "/tenants/{id}/move", Operator, moves::start)
        .at(GET, "/tenants/{id}/move", Operator, moves::latest)
        .at(POST, "/tenants/{id}/move/abort", Operator, moves::abort)
        .at(GET, "/moves/{move_id}", Operator, moves::show)
}

/// The merchant web app (`src/web/`, `docs/merchant-app.md`): the Salla embedded shell, the standalone entry
/// and sign-in, the screens (each a full page, or an htmx fragment with `HX-Request`). `/app` itself shows
/// the sign-in page to a caller without a session.
#[rustfmt::skip]
fn web(r: Routes) -> Routes {
    use crate::web::{crm as app_crm, screens, shell};
    r.at(GET, "/salla/embedded", Public, shell::embedded)
        .at(GET, "/sso", Public, shell::sso)
        .at(GET, "/app", tenant(R::Tenant, Read), shell::entry)
        // The single-use ticket is the credential (an operator's impersonation link).
        .at_ip(GET, "/app/impersonate", Public, ratelimit::IpRule::SessionMinting, crate::web::impersonate::open)
        .at(GET, "/app/home", tenant(R::Commerce, Read), screens::home)
        .at(POST, "/app/sync/resync", tenant(R::Sync, Manage), screens::resync)
        .at(GET, "/app/customers", tenant(R::Commerce, Read), screens::customers)
        .at(GET, "/app/customers/{id}", tenant(R::Commerce, Read), screens::customer)
        .at(GET, "/app/orders", tenant(R::Commerce, Read), screens::orders)
        .at(GET, "/app/orders/{id}", tenant(R::Commerce, Read), screens::order)
        .at(GET, "/app/carts", tenant(R::Commerce, Read), screens::carts)
        .at(GET, "/app/crm/{kind}", tenant(R::Crm, Read), app_crm::list)
        .at(POST, "/app/crm/{kind}", tenant(R::Crm, Write), app_crm::create)
        .at(GET, "/app/crm/{kind}/new", tenant(R::Crm, Write), app_crm::new)
        .at(GET, "/app/crm/{kind}/{id}", tenant(R::Crm, Read), app_crm::edit)
        .at(POST, "/app/crm/{kind}/{id}", tenant(R::Crm, Write), app_crm::update)
        .at(GET, "/app/settings", tenant(R::Settings, Read), screens::settings)
        .at(POST, "/app/settings", tenant(R::Settings, Manage), screens::save_settings)
        .at(GET, "/app/team", tenant(R::Members, Read), screens::team)
}

/// The tenant's own Twenty workspace, its key injected; read or write is decided per request (the method, or
/// the GraphQL operation type).
#[rustfmt::skip]
fn crm_proxy(r: Routes) -> Routes {
    r.any("/crm/rest/{*path}", TenantDynamic, crate::crm::proxy::rest)
        .any("/crm/graphql", TenantDynamic, crate::crm::proxy::graphql)
}

/// Routes under construction: the axum router, and what each route declared (the table).
struct Routes {
    router: Router<AppState>,
    infos: Vec<RouteInfo>,
    prefix: &'static str,
}

impl Routes {
    fn new(prefix: &'static str) -> Self {
        Self {
            router: Router::new(),
            infos: Vec::new(),
            prefix,
        }
    }

    /// The routes that follow are under `prefix`.
    fn prefixed(self, prefix: &'static str) -> Self {
        Self { prefix, ..self }
    }

    /// `method path` served by `handler`, declaring `access`: the declaration is inserted into the request's
    /// extensions for this method and path only (`TenantContext` reads it).
    fn at<H, T>(self, method: Method, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.add(Some(method), path, access, on(filter, handler))
    }

    /// [`Routes::at`], limited per client IP by `rule` (a public route: no tenant to count against).
    fn at_ip<H, T>(
        self,
        method: Method,
        path: &str,
        access: Access,
        rule: ratelimit::IpRule,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        let limited = on(filter, handler).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                ratelimit::http::per_ip(rule, request, next)
            },
        ));
        self.add(Some(method), path, access, limited)
    }

    /// Every method of `path`.
    fn any<H, T>(self, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(None, path, access, any(handler))
    }

    fn add(
        mut self,
        method: Option<Method>,
        path: &str,
        access: Access,
        handler: MethodRouter<AppState>,
    ) -> Self {
        let path = format!("{}{path}", self.prefix);
        // `layer`, not `route_layer`: an `any` route is all fallback, which `route_layer` would not reach.
        self.router = self
            .router
            .route(&path, handler.layer(axum::Extension(access)));
        self.infos.push(RouteInfo {
            method,
            path,
            access,
        });
        self
    }
}
