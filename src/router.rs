//! Every route of the server on one screen (after atuin-server's `router.rs`). The handlers live with their
//! feature; the middleware stack and serving live in [`crate::http`].

use axum::Router;
use axum::routing::{any, delete, get, post};

use crate::admin::{
    audit as admin_audit, crm, impersonation, jobs, maintenance, salla as stores, tenants, webhooks,
};
use crate::dashboard::{api_keys, commerce, me, registration, tenant};
use crate::http::{self, health};
use crate::state::AppState;

/// The full API: operations endpoints, webhooks, the public and merchant API, the admin API and the CRM
/// proxy.
pub fn api(state: AppState) -> Router {
    let server = &state.config().server;
    let routes = ops(server.metrics_listen.is_empty())
        .route("/api/version", get(http::version))
        // Providers calling back: authenticated on the raw bytes, stored durably, answered at once.
        .route("/webhooks/clerk", post(crate::clerk::routes::receive))
        .route("/webhooks/salla", post(crate::salla::routes::receive))
        .nest("/api", public())
        .nest("/api/admin", admin())
        .nest("/admin", admin())
        .merge(web(&state))
        .fallback(http::not_found);
    // The CRM proxy comes after the server's body limit and timeout: it enforces its own
    // (`crm.proxy_body_limit_bytes`, `crm.proxy_timeout_secs`).
    let routes = http::with_limits(routes, server).merge(crm_proxy());
    http::with_observability(routes, server).with_state(state)
}

/// What a worker-only process serves: health and metrics, so it can be probed and scraped like the API.
pub fn ops_only(state: AppState) -> Router {
    let server = &state.config().server;
    let routes = ops(server.metrics_listen.is_empty()).fallback(http::not_found);
    http::with_middleware(routes, server).with_state(state)
}

/// `/metrics` alone, for `server.metrics_listen`.
pub fn metrics_only(state: AppState) -> Router {
    let routes = Router::new()
        .route("/metrics", get(health::metrics))
        .fallback(http::not_found);
    http::with_middleware(routes, &state.config().server).with_state(state)
}

fn ops(with_metrics: bool) -> Router<AppState> {
    let routes = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready));
    if with_metrics {
        routes.route("/metrics", get(health::metrics))
    } else {
        routes
    }
}

/// Under `/api`: self-serve registration and its progress (public), then the caller's tenant and its store
/// data (Clerk session or tenant API key).
fn public() -> Router<AppState> {
    Router::new()
        .route("/auth/register-organization", post(registration::register))
        .route("/auth/provisioning-status/{id}", get(registration::status))
        .route("/me", get(me::show))
        .route("/tenant", get(tenant::show))
        .route(
            "/tenant/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route("/tenant/api-keys/{key_id}", delete(api_keys::revoke))
        .route("/customers", get(commerce::customers::list))
        .route("/products", get(commerce::products::list))
        .route("/orders", get(commerce::orders::list))
        .route("/orders/{id}", get(commerce::orders::show))
        .route("/carts/abandoned", get(commerce::carts::list))
        .route("/stats", get(commerce::stats::show))
        .route("/sync", get(commerce::sync::show))
        .route("/sync/resync", post(commerce::sync::resync))
        .route("/audit", get(crate::audit::routes::list))
        .route(
            "/embedded/session",
            post(crate::embedded::routes::create_session),
        )
        .route(
            "/embedded/standalone",
            post(crate::embedded::routes::standalone),
        )
}

/// Under `/api/admin` (and `/admin`): the operators' API, `X-Admin-Key`.
fn admin() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(jobs::list).post(jobs::enqueue))
        .route("/jobs/stats", get(jobs::stats))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route("/tenants/{id}", get(tenants::show).delete(tenants::delete))
        .route("/tenants/{id}/suspend", post(tenants::suspend))
        .route("/tenants/{id}/activate", post(tenants::activate))
        .route("/tenants/{id}/retry", post(tenants::retry))
        .route(
            "/tenants/{id}/api-keys",
            get(tenants::list_keys).post(tenants::create_key),
        )
        .route(
            "/tenants/{id}/api-keys/{key_id}",
            delete(tenants::revoke_key),
        )
        .route("/tenants/{id}/crm", get(crm::show))
        .route("/crm", get(crm::instances))
        .route("/stats", get(tenants::stats))
        .route("/webhooks", get(webhooks::list))
        .route("/webhooks/{id}", get(webhooks::get))
        .route("/webhooks/{id}/replay", post(webhooks::replay))
        .route("/salla/stores", get(stores::list))
        .route("/salla/stores/{merchant_id}", get(stores::show))
        .route("/audit", get(admin_audit::list))
        .route(
            "/maintenance",
            get(maintenance::show).post(maintenance::set),
        )
        .route("/tenants/{id}/read-only", post(maintenance::read_only))
        .route(
            "/tenants/{id}/impersonate",
            post(impersonation::impersonate),
        )
}

/// The merchant web app (`src/web/`, `docs/merchant-app.md`): the Salla embedded shell, the standalone entry
/// and sign-in, the screens (each a full page, or an htmx fragment with `HX-Request`), and the hashed static
/// files. Every page gets the app's CSP and Referrer-Policy.
fn web(state: &AppState) -> Router<AppState> {
    use crate::web::{assets, crm as app_crm, screens, shell};
    let policies = crate::web::security::Policies::new(state.config());
    Router::new()
        .route("/salla/embedded", get(shell::embedded))
        .route("/sso", get(shell::sso))
        .route("/app", get(shell::entry))
        .route("/app/impersonate", get(crate::web::impersonate::open))
        .route("/app/home", get(screens::home))
        .route("/app/sync/resync", post(screens::resync))
        .route("/app/customers", get(screens::customers))
        .route("/app/customers/{id}", get(screens::customer))
        .route("/app/orders", get(screens::orders))
        .route("/app/orders/{id}", get(screens::order))
        .route("/app/carts", get(screens::carts))
        .route("/app/crm/{kind}", get(app_crm::list).post(app_crm::create))
        .route("/app/crm/{kind}/new", get(app_crm::new))
        .route(
            "/app/crm/{kind}/{id}",
            get(app_crm::edit).post(app_crm::update),
        )
        .route(
            "/app/settings",
            get(screens::settings).post(screens::save_settings),
        )
        .route("/app/team", get(screens::team))
        .layer(axum::middleware::from_fn_with_state(
            policies,
            crate::web::security_headers,
        ))
        .route("/assets/{file}", get(assets::serve))
}

/// The tenant's own Twenty workspace, its key injected; not under the server's body limit and timeout.
fn crm_proxy() -> Router<AppState> {
    Router::new()
        .route("/crm/rest/{*path}", any(crate::crm::proxy::rest))
        .route("/crm/graphql", any(crate::crm::proxy::graphql))
}
