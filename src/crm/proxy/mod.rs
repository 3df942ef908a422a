//! `/crm/*`: the tenant-scoped reverse proxy to Twenty (reference §1.2, §3.3, §3.4, §6 "Proxy").
//!
//! `/crm/rest/*` goes to `{instance}/rest/*` and `/crm/graphql` to `{instance}/graphql`, where `instance` is
//! the Twenty instance the tenant's workspace lives on (`crm::placement`), for the tenant the caller
//! authenticated as (`TenantContext`: Clerk session or tenant API key, status gate applied). What the caller
//! may do is decided per request against `crm.read` / `crm.write` (`crate::access::TABLE`): REST `GET`,
//! `HEAD` and `OPTIONS` read, other methods write; GraphQL queries read, mutations and subscriptions write.
//! The caller's credentials are dropped and the tenant's own Twenty API key — which alone selects the
//! workspace — is injected, so a tenant can only ever reach its own workspace. API keys, webhooks, roles and
//! the metadata API stay out of reach (`policy`). Each tenant's requests count against its
//! rate limit (`crate::ratelimit`, applied by `TenantContext`).
//!
//! Responses stream through, and so do REST request bodies, cut off past `crm.proxy_body_limit_bytes` (the
//! limit this proxy enforces instead of `server.body_limit_bytes`). GraphQL bodies are read (up to the same
//! limit) because the operation must be inspected before anything is forwarded.

mod error;
mod graphql;
mod headers;
mod policy;
mod upstream;

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use moka::future::Cache;
use sqlx::PgPool;

use self::error::ProxyError;
use self::policy::PolicyDenial;
use self::upstream::{Upstream, UpstreamError};
use super::workspace::{self, CredentialsError, WorkspaceState};
use crate::access::{Action, Resource};
use crate::core::Core;
use crate::crm::CrmSetupError;
use crate::http::TenantContext;
use crate::secrets::Keyring;
use crate::tenancy::TenantId;

/// How long a tenant's decrypted key is reused before the database is asked again (a rotated key is picked
/// up within this; a key Twenty refuses is dropped at once).
const CREDENTIALS_TTL: Duration = Duration::from_secs(60);
const CREDENTIALS_CAPACITY: u64 = 10_000;

/// One per process: the pooled client to Twenty, cached tenant credentials.
#[derive(Clone)]
pub struct CrmProxy {
    inner: Arc<Inner>,
}

struct Inner {
    /// One pooled client per configured Twenty instance, by key.
    upstreams: BTreeMap<String, Upstream>,
    db: PgPool,
    keyring: Keyring,
    /// The instance and the `Authorization` value (`Bearer <tenant's Twenty API key>`, marked sensitive) of
    /// each tenant's workspace.
    credentials: Cache<TenantId, Route>,
    timeout: Duration,
    body_limit: usize,
}

impl std::fmt::Debug for CrmProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmProxy").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Rest,
    Graphql,
}

/// Where a tenant's requests go.
#[derive(Clone)]
struct Route {
    instance: Arc<str>,
    authorization: HeaderValue,
}

/// Why a tenant's credentials could not be produced.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error("no API key stored yet")]
    NotReady,
    #[error("waiting for a Twenty instance with room")]
    WaitingForCapacity,
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("the stored API key is not a valid header value")]
    Malformed,
}

impl CrmProxy {
    /// The proxy when Twenty is configured (`crm.base_url` or `[[crm.instances]]`), `None` otherwise
    /// (`/crm/*` answers 501).
    pub fn build(core: &Core) -> Result<Option<Self>, CrmSetupError> {
        let config = &core.config().crm;
        if !config.enabled() {
            return Ok(None);
        }
        let timeout = Duration::from_secs(config.proxy_timeout_secs);
        let mut upstreams = BTreeMap::new();
        for instance in config.instances() {
            let upstream = Upstream::new(&instance.base_url, timeout).map_err(|why| {
                CrmSetupError::BadInstance {
                    key: instance.key.clone(),
                    why,
                }
            })?;
            upstreams.insert(instance.key, upstream);
        }
        Ok(Some(Self {
            inner: Arc::new(Inner {
                upstreams,
                db: core.db().clone(),
                keyring: core.keyring().clone(),
                credentials: Cache::builder()
                    .max_capacity(CREDENTIALS_CAPACITY)
                    .time_to_live(CREDENTIALS_TTL)
                    .build(),
                timeout,
                body_limit: config.proxy_body_limit_bytes,
            }),
        }))
    }

    async fn forward(
        &self,
        context: &TenantContext,
        request: Request,
        target: Target,
    ) -> Result<Response, ProxyError> {
        let (tenant, plan) = (context.id(), context.tenant.plan.as_str());
        let inner = &self.inner;
        let (parts, body) = request.into_parts();
        let path = match target {
            Target::Rest => {
                let raw = parts.uri.path();
                let tail = raw
                    .strip_prefix("/crm")
                    .unwrap_or(raw)
                    .strip_prefix("/rest/")
                    .ok_or(ProxyError::Internal)?;
                policy::check_rest_path(tail).map_err(refused)?;
                format!("/rest/{tail}")
            }
            Target::Graphql => {
                if parts.method != Method::POST {
                    return Err(ProxyError::MethodNotAllowed);
                }
                if !is_json(&parts.headers) {
                    return Err(ProxyError::UnsupportedMediaType);
                }
                "/graphql".to_owned()
            }
        };
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > inner.body_limit as u64) {
            return Err(ProxyError::TooLarge(inner.body_limit));
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut mutation = None;
        let body = match target {
            Target::Graphql => {
                let body = read_body(body, inner.body_limit).await?;
                let action = policy::check_graphql_body(&body).map_err(refused)?;
                permit(context, action)?;
                // Twenty stores what it is sent in PostgreSQL too: refused text is turned away here, as at
                // our own extractors (`crate::http::text`), not left to fail upstream.
                crate::http::text::check_json(&body)
                    .map_err(|e| ProxyError::InvalidRequest(e.to_string()))?;
                mutation = crate::audit::proxy::graphql_mutation(&body);
                Body::from(body)
            }
            Target::Rest => Body::new(LimitedBody {
                inner: body,
                remaining: inner.body_limit,
                exceeded: exceeded.clone(),
            }),
        };
        let route = self.route(tenant).await?;
        let Some(upstream_client) = inner.upstreams.get(&*route.instance) else {
            tracing::error!(tenant_id = %tenant, instance = %route.instance, "the tenant's workspace is on a Twenty instance that is not configured");
            return Err(ProxyError::Unavailable);
        };
        let authorization = route.authorization;

        let uri = upstream_client
            .uri(&path, parts.uri.query())
            .ok_or_else(|| ProxyError::InvalidRequest("The request URL is not valid.".into()))?;
        let mut upstream = axum::http::Request::new(body);
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = headers::upstream_request(&parts.headers, authorization);

        let started = Instant::now();
        let sent = upstream_client.send(upstream, inner.timeout).await;
        let elapsed = started.elapsed().as_secs_f64();
        let observe = |class: &'static str| {
            metrics::histogram!("crm_proxy_upstream_duration_seconds", "plan" => plan.to_owned(), "status_class" => class)
                .record(elapsed);
        };
        let response = match sent {
            Err(UpstreamError::Timeout) => {
                observe("timeout");
                tracing::warn!(tenant_id = %tenant, timeout_secs = inner.timeout.as_secs(), "Twenty did not answer in time");
                return Err(ProxyError::Timeout);
            }
            Err(UpstreamError::Failed(_)) if exceeded.load(Ordering::Relaxed) => {
                observe("error");
                return Err(ProxyError::TooLarge(inner.body_limit));
            }
            Err(UpstreamError::Failed(error)) => {
                observe("error");
                // Debug for the cause (refused, reset, TLS); it carries no URL, whose query string is tenant data.
                tracing::warn!(tenant_id = %tenant, error = ?error, "Twenty unreachable");
                return Err(ProxyError::Unavailable);
            }
            Ok(response) => response,
        };
        let status = response.status();
        observe(status_class(status));
        if status == StatusCode::UNAUTHORIZED {
            // Our key, not the caller's, was refused (revoked, or Twenty's APP_SECRET rotated): drop it so
            // a replaced key is used on the next request, and say it is our problem.
            inner.credentials.invalidate(&tenant).await;
            tracing::error!(tenant_id = %tenant, "Twenty refused the tenant's workspace API key");
            return Err(ProxyError::CredentialsRejected);
        }
        let (mut parts, body) = response.into_parts();
        parts.headers = headers::downstream_response(&parts.headers);
        if let Some(operation) = mutation {
            parts.extensions.insert(GraphqlMutation(operation));
        }
        Ok(Response::from_parts(parts, body))
    }

    /// The instance and `Bearer <key>` of the tenant's workspace, from the cache or the sealed row.
    async fn route(&self, tenant: TenantId) -> Result<Route, ProxyError> {
        let inner = self.inner.clone();
        self.inner
            .credentials
            .try_get_with(tenant, async move {
                let credentials = match workspace::state(&inner.db, &inner.keyring, tenant).await? {
                    WorkspaceState::Ready(credentials) => credentials,
                    WorkspaceState::WaitingForCapacity => {
                        return Err(LookupError::WaitingForCapacity);
                    }
                    WorkspaceState::NotReady => return Err(LookupError::NotReady),
                };
                let mut authorization =
                    HeaderValue::try_from(format!("Bearer {}", credentials.api_key))
                        .map_err(|_| LookupError::Malformed)?;
                authorization.set_sensitive(true);
                Ok::<_, LookupError>(Route {
                    instance: credentials.instance.into(),
                    authorization,
                })
            })
            .await
            .map_err(|error| match &*error {
                LookupError::NotReady => ProxyError::WorkspaceNotReady,
                LookupError::WaitingForCapacity => ProxyError::WaitingForCapacity,
                other => {
                    tracing::error!(tenant_id = %tenant, error = %other, "cannot load the tenant's Twenty credentials");
                    ProxyError::Internal
                }
            })
    }
}

/// A GraphQL request, as documented (the proxy reads it as raw bytes).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the body `graphql` forwards")]
pub struct GraphqlRequest {
    query: String,
    #[schema(required = false)]
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Value>,
    #[schema(required = false)]
    #[schema(rename = "operationName")]
    operation_name: Option<String>,
}

/// The operation name of a GraphQL mutation Twenty answered (for the audit log).
#[derive(Clone)]
struct GraphqlMutation(String);

/// The tenant's Twenty REST API (`docs/twenty.md`): the request is forwarded with the tenant's workspace key;
/// the answer is Twenty's.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/crm/rest/{path}",
    tag = "crm",
    summary = "Twenty's REST API, for the caller's workspace",
    description = "Forwarded to the tenant's own Twenty workspace with its key; the answer is Twenty's. Reading \
                   methods need a viewer, the others a member. Limits: `crm.proxy_body_limit_bytes`, \
                   `crm.proxy_timeout_secs`.",
    params(("path" = String, Path, description = "Twenty's REST path, e.g. `people` or `people/{id}`.")),
    request_body(content = Object, description = "Twenty's JSON body, for writes.", content_type = "application/json"),
    responses(
        (status = 200, description = "Twenty's answer.", content_type = "application/json", body = Object),
        (status = 503, description = "`crm_not_configured`, or the workspace is not ready."),
    ),
)]
pub(crate) async fn rest(
    State(proxy): State<Option<CrmProxy>>,
    State(pools): State<crate::tenancy::TenantPools>,
    context: TenantContext,
    origin: crate::audit::Origin,
    request: Request,
) -> Response {
    let write = (!request.method().is_safe()).then(|| {
        (
            request.method().to_string(),
            request.uri().path().to_owned(),
        )
    });
    let response = handle(proxy.as_ref(), &context, request, Target::Rest).await;
    if let Some((method, path)) = write {
        let status = response.status().as_u16();
        audit_write(&pools, &context, &origin, &method, &path, status).await;
    }
    response
}

/// The tenant's Twenty GraphQL API.
#[utoipa::path(
    post,
    path = "/crm/graphql",
    tag = "crm",
    summary = "Twenty's GraphQL API, for the caller's workspace",
    description = "POST only (405 otherwise), `application/json`. Queries need a viewer, mutations a member.",
    request_body(content = GraphqlRequest, description = "A GraphQL request."),
    responses(
        (status = 200, description = "Twenty's answer.", content_type = "application/json", body = Object),
        (status = 503, description = "`crm_not_configured`, or the workspace is not ready."),
    ),
)]
pub(crate) async fn graphql(
    State(proxy): State<Option<CrmProxy>>,
    State(pools): State<crate::tenancy::TenantPools>,
    context: TenantContext,
    origin: crate::audit::Origin,
    request: Request,
) -> Response {
    let response = handle(proxy.as_ref(), &context, request, Target::Graphql).await;
    if let Some(GraphqlMutation(operation)) =
        response.extensions().get::<GraphqlMutation>().cloned()
    {
        let target = format!("graphql:{operation}");
        let status = response.status().as_u16();
        audit_write(&pools, &context, &origin, "POST", &target, status).await;
    }
    response
}

/// Records a write that reached Twenty (method, path or operation, status; never the body).
async fn audit_write(
    pools: &crate::tenancy::TenantPools,
    context: &TenantContext,
    origin: &crate::audit::Origin,
    method: &str,
    target: &str,
    status: u16,
) {
    let event = crate::audit::proxy::forwarded(context, origin, method, target, status);
    match pools.get(&context.tenant).await {
        Ok(pool) => event.record_tenant(&pool).await,
        Err(error) => {
            tracing::error!(tenant_id = %context.id(), error = %error, "cannot reach the tenant database to audit a CRM write")
        }
    }
}

/// Forwards and counts the outcome, whoever produced it (Twenty or the proxy).
async fn handle(
    proxy: Option<&CrmProxy>,
    context: &TenantContext,
    request: Request,
    target: Target,
) -> Response {
    let plan = &context.tenant.plan;
    // A REST request's method says whether it writes; a GraphQL body is read first (`forward`).
    let allowed = match target {
        Target::Rest => permit(context, rest_action(request.method())),
        Target::Graphql => Ok(()),
    };
    let response = match (allowed, proxy) {
        (Err(denied), _) => denied.into_response(),
        (Ok(()), Some(proxy)) => proxy
            .forward(context, request, target)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        (Ok(()), None) => ProxyError::NotConfigured.into_response(),
    };
    metrics::counter!(
        "crm_proxy_requests_total",
        "plan" => plan.clone(),
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    response
}

/// What a REST method does to the CRM: only the safe methods read.
fn rest_action(method: &Method) -> Action {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Action::Read
    } else {
        Action::Write
    }
}

/// 403 `insufficient_role` unless the caller may perform `action` on CRM records.
fn permit(context: &TenantContext, action: Action) -> Result<(), ProxyError> {
    context
        .require(Resource::Crm, action)
        .map_err(|error| ProxyError::InsufficientRole(error.to_string()))
}

fn refused(denial: PolicyDenial) -> ProxyError {
    match denial {
        PolicyDenial::Forbidden(message) => ProxyError::Forbidden(message),
        PolicyDenial::Invalid(message) => ProxyError::InvalidRequest(message),
    }
}

/// A request body streamed upstream that fails (and says so in `exceeded`) once it grows past the limit, so an
/// oversized upload is cut off instead of buffered.
struct LimitedBody {
    inner: Body,
    remaining: usize,
    exceeded: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the proxy allows")]
struct BodyTooLarge;

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.remaining {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return std::task::Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= data.len();
                }
                std::task::Poll::Ready(Some(Ok(frame)))
            }
            std::task::Poll::Ready(Some(Err(error))) => {
                std::task::Poll::Ready(Some(Err(Box::new(error))))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    /// Passed through so that an empty body (a GET) is sent as no body at all, not as a chunked one.
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Reads the request body, refusing it once it grows past `limit`. A body that arrives in one piece (the
/// usual case) is not copied.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ProxyError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| {
            ProxyError::InvalidRequest("The request body could not be read.".into())
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(ProxyError::TooLarge(limit));
        }
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            previous => {
                if let Some(previous) = previous {
                    rest.extend_from_slice(&previous);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(rest)))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        })
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let ok = read_body(Body::from("1234"), 4)
            .await
            .expect("within the limit");
        assert_eq!(ok, "1234");
        assert!(matches!(
            read_body(Body::from("12345"), 4).await,
            Err(ProxyError::TooLarge(4))
        ));
    }
}
