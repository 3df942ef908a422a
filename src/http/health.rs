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
pub async fn live() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready to take traffic: the global database answers, its migrations are applied, and Redis answers when it
/// is configured. Otherwise 503 naming the failing checks.
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
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}
