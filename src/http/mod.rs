//! Router assembly, the middleware stack, and serving with graceful shutdown.

pub mod client_ip;
mod envelope;
pub mod extract;
pub(crate) mod health;
mod observe;
pub mod request_id;
mod serve;
mod tenant_context;
pub mod text;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any as AnyOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::config::ServerConfig;
use crate::error::ApiError;

pub use observe::record_tenant;
pub use serve::{ServeOptions, serve};
pub use tenant_context::{
    Principal, TenantContext, gate, provisioning_progress, step_and_progress, verify_session,
};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers every response passes through, outermost first.
pub(crate) fn with_middleware<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    server: &ServerConfig,
) -> Router<S> {
    with_observability(with_limits(router, server), server)
}

/// Request id, span/log/metrics and error rendering, header limits, compression, CORS and panics: for every
/// route.
pub(crate) fn with_observability<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    server: &ServerConfig,
) -> Router<S> {
    let limits = observe::HeaderLimits::from_config(server);
    let stack = ServiceBuilder::new()
        // A client's id only when it is acceptable; otherwise the next layer makes one.
        .layer(request_id::SanitizeRequestIdLayer)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(from_fn(move |request, next| {
            observe::observe(limits, request, next)
        }))
        .layer(CompressionLayer::new())
        .option_layer(cors_layer(&server.cors_allowed_origins))
        .layer(CatchPanicLayer::custom(panic_response));
    router.layer(stack)
}

/// The server's request timeout and body limit, for the routes added so far (and the fallback).
pub(crate) fn with_limits<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    server: &ServerConfig,
) -> Router<S> {
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(server.request_timeout_secs),
        ))
        .layer(RequestBodyLimitLayer::new(server.body_limit_bytes))
        .layer(DefaultBodyLimit::max(server.body_limit_bytes));
    router.layer(stack)
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AnyOrigin).allow_headers(AnyOrigin));
    }
    // Validated at config load; an unparsable entry cannot reach here, but skipping beats panicking.
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    Some(
        layer
            .allow_origin(AllowOrigin::list(list))
            .allow_credentials(true)
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                REQUEST_ID,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-tenant-id"),
            ]),
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}

/// Unknown routes: a bare 404 that the envelope turns into the JSON error naming the method and path.
pub(crate) async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// `GET /api/version`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `version`")]
pub struct Version {
    #[schema(example = "wosool")]
    name: String,
    #[schema(example = "0.1.0")]
    version: String,
    /// The commit built, or `unknown`.
    git_sha: String,
}

#[utoipa::path(
    get,
    path = "/api/version",
    tag = "operations",
    summary = "The running version",
    responses((status = 200, description = "Name, version and commit.", body = Version)),
)]
pub(crate) async fn version() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "git_sha": option_env!("WOSOOL_GIT_SHA").unwrap_or("unknown"),
    }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_json_error_with_the_request_id() {
        let config = crate::config::Config::load_from(None, Vec::new()).expect("defaults");
        let router: Router = with_middleware(
            Router::new().route("/boom", get(|| async { panic!("kaboom") as &'static str })),
            &config.server,
        );
        let response = router
            .oneshot(
                Request::get("/boom")
                    .header("x-request-id", "req-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect("a response, not a dropped connection");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["request_id"], "req-1");
        assert!(
            !body.to_string().contains("kaboom"),
            "panic details stay in the logs"
        );
    }
}
