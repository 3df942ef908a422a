//! Per-request span, error rendering, access log line and HTTP metrics, labelled by route template (never the
//! raw path, so label cardinality stays bounded).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use super::{REQUEST_ID, envelope};
use crate::error::ErrorBody;
use crate::tenancy::TenantId;

/// Label for requests that matched no route (404s of unknown paths).
const UNMATCHED: &str = "unmatched";

/// Most request headers we serve (`server.max_request_headers`, `server.max_request_header_bytes`). Checked
/// here rather than by hyper, so the answer is the JSON envelope (hyper's own 431 has an empty body; its
/// limits are set above these, see `super::serve`).
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    count: usize,
    bytes: usize,
}

impl HeaderLimits {
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        Self {
            count: server.max_request_headers,
            bytes: server.max_request_header_bytes,
        }
    }

    /// Whether `headers` exceed the limits (every value counts, repeated names included).
    fn exceeded(&self, headers: &axum::http::HeaderMap) -> bool {
        headers.len() > self.count
            || headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>()
                > self.bytes
    }
}

/// The outermost middleware of our own: opens the request span, refuses oversized headers, renders error
/// bodies (see `envelope`), records metrics and writes the access log line.
pub async fn observe(limits: HeaderLimits, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        tenant_id = Empty,
    );

    let in_flight = InFlight::enter();
    let mut response = if limits.exceeded(request.headers()) {
        headers_too_large(&limits)
    } else {
        next.run(request).instrument(span.clone()).await
    };
    drop(in_flight);
    envelope::render(&mut response, &request_id, &method, &uri);

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());

    let _entered = span.enter();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    // Probes and scrapes arrive every few seconds: keep them out of the default log level.
    let routine = route.starts_with("/health/") || route == "/metrics";
    if status >= 500 {
        tracing::error!(status, latency_ms, "request failed");
    } else if routine {
        tracing::debug!(status, latency_ms, "request finished");
    } else {
        tracing::info!(status, latency_ms, "request finished");
    }
    response
}

fn headers_too_large(limits: &HeaderLimits) -> Response {
    use axum::response::IntoResponse;
    let mut response = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response();
    response.extensions_mut().insert(ErrorBody {
        code: "headers_too_large".into(),
        message: format!(
            "The request headers are too large: at most {} headers and {} bytes are accepted.",
            limits.count, limits.bytes
        ),
        details: None,
        provisioning: None,
    });
    response
}

/// Adds the tenant to the current request's span once it is known (by the tenant extractor).
pub fn record_tenant(tenant: TenantId) {
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant));
}

/// Counts a request in `http_requests_in_flight` until dropped, also when the client disconnects and the
/// request future is dropped midway.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        in_flight().increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight().decrement(1.0);
    }
}

/// The gauge's handle, looked up once (two registry lookups per request otherwise). Taken after making sure
/// our recorder is installed: a handle taken before would be a no-op forever.
fn in_flight() -> &'static metrics::Gauge {
    static GAUGE: std::sync::OnceLock<metrics::Gauge> = std::sync::OnceLock::new();
    GAUGE.get_or_init(|| {
        crate::telemetry::metrics_handle();
        metrics::gauge!("http_requests_in_flight")
    })
}
