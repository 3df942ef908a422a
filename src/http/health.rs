//! `/health/live`, `/health/ready` and `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Each dependency check gets this long; a hung dependency must not hang the probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process serves requests.", body = Live)),
)]
pub async fn live() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// `GET /health/live`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `live`")]
pub struct Live {
    #[schema(example = "ok")]
    status: String,
}

/// `GET /health/ready`'s answer: each check is `ok`, `failing` (with `error`) or `not_configured`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `ready`")]
pub struct Ready {
    #[schema(example = "ready")]
    status: String,
    #[schema(example = json!({"database": {"status": "ok"}, "migrations": {"status": "ok"}, "redis": {"status": "not_configured"}}))]
    checks: std::collections::BTreeMap<String, Check>,
}

/// One readiness check.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `ready`")]
pub struct Check {
    /// `ok`, `failing` or `not_configured`.
    status: String,
    #[schema(required = false)]
    error: Option<String>,
}

/// Ready to take traffic: the global database answers, its migrations are applied, and Redis answers when it
/// is configured. Otherwise 503 naming the failing checks.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    summary = "Readiness",
    responses(
        (status = 200, description = "Every check passes.", body = Ready),
        (status = 503, description = "`not_ready`: `details.checks` names the failing checks."),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let (database, migrations) = match tokio::time::timeout(
        CHECK_TIMEOUT,
        crate::db::migrations_applied(state.db()),
    )
    .await
    {
        Ok(Ok(true)) => (Ok(()), Ok(())),
        Ok(Ok(false)) => (Ok(()), Err("pending migrations".to_string())),
        Ok(Err(e)) => (
            Err(e.to_string()),
            Err("unknown: database unreachable".to_string()),
        ),
        Err(_) => (
            Err("timed out".to_string()),
            Err("unknown: database unreachable".to_string()),
        ),
    };
    let redis = match state.redis() {
        None => None,
        Some(redis) => Some(
            match tokio::time::timeout(CHECK_TIMEOUT, redis.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            },
        ),
    };

    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    for (name, result) in [
        ("database", Some(database)),
        ("migrations", Some(migrations)),
        ("redis", redis),
    ] {
        let value = match result {
            None => json!({ "status": "not_configured" }),
            Some(Ok(())) => json!({ "status": "ok" }),
            Some(Err(error)) => {
                failing.push(format!("{name} ({error})"));
                json!({ "status": "failing", "error": error })
            }
        };
        checks.insert(name.to_string(), value);
    }
    if failing.is_empty() {
        Ok(axum::Json(json!({ "status": "ready", "checks": checks })))
    } else {
        Err(ApiError::Unavailable {
            code: "not_ready",
            message: format!("Not ready: {}.", failing.join(", ")),
            details: Some(json!({ "checks": checks })),
        })
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Served here only when `server.metrics_listen` is empty; otherwise on that listener alone.",
    responses((status = 200, description = "The text exposition format.", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}
