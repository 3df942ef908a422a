//! `POST /webhooks/salla`: authenticate the raw bytes, store the delivery in the webhook inbox and enqueue its
//! `salla.delivery` job in one transaction, answer 200 at once (Salla gives up after ~30 s and retries 3×).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::processing::ProcessDelivery;
use super::webhook::{self, PROVIDER, WebhookError};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::NewJob;
use crate::state::AppState;
use crate::webhooks::{self, NewDelivery};

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/salla", post(receive))
}

/// 200 `{"received": true, "duplicate": bool}` once the delivery is durable; 401 with nothing stored when it
/// does not authenticate; 200 `{"received": true, "rejected": true}` for an authenticated body that is not a
/// JSON event (kept as `rejected` for inspection: Salla would only send it again); 503 without a secret.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = &state.config.salla;
    if !config.enabled() {
        return Err(ApiError::Unavailable {
            code: "salla_not_configured",
            message: "The Salla app is not configured on this server (salla.client_id is empty)."
                .into(),
            details: None,
        });
    }
    let secrets: Vec<&str> = config.webhook_secrets.iter().map(|s| s.expose()).collect();
    if let Err(error) = webhook::verify_any(&secrets, config.security_strategy, &headers, &body) {
        return Ok(rejection(error));
    }
    // Salla sends no delivery id: a retry of the same delivery is the same bytes.
    let dedupe_key = hex::encode(Sha256::digest(&body));
    let kept = kept_headers(&headers);

    let payload: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return reject(
                &state,
                &dedupe_key,
                &body,
                &format!("not JSON: {error}"),
                &kept,
            )
            .await;
        }
    };
    let event = payload
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty());
    let merchant_ok = match payload.get("merchant") {
        Some(Value::Number(n)) => n.as_u64().is_some(),
        Some(Value::String(s)) => s.trim().parse::<u64>().is_ok(),
        _ => false,
    };
    let Some(event) = event.filter(|_| merchant_ok) else {
        return reject(
            &state,
            &dedupe_key,
            &body,
            "not a Salla event: needs a string `event` and a numeric `merchant`",
            &kept,
        )
        .await;
    };

    let stored = webhooks::insert_and_enqueue(
        &state.db,
        &state.jobs,
        &NewDelivery {
            provider: PROVIDER,
            dedupe_key: &dedupe_key,
            event_type: event,
            tenant_id: None,
            payload: &payload,
            headers: &kept,
        },
        |inbox_id| NewJob::new(&ProcessDelivery { inbox_id }),
    )
    .await
    .map_err(|e| match e {
        webhooks::InboxError::Db(db) => ApiError::from(db),
        other => ApiError::internal(other),
    })?;
    metrics::counter!("salla_webhooks_total", "event" => metric_event(event), "outcome" => if stored.is_duplicate() { "duplicate" } else { "stored" })
        .increment(1);
    tracing::info!(
        event,
        merchant = %payload["merchant"],
        inbox_id = stored.id(),
        duplicate = stored.is_duplicate(),
        "Salla webhook received"
    );
    Ok(axum::Json(json!({ "received": true, "duplicate": stored.is_duplicate() })).into_response())
}

/// Event names as metric labels: the known prefix families only, so a sender cannot grow label cardinality.
fn metric_event(event: &str) -> &'static str {
    const FAMILIES: &[&str] = &[
        "app.",
        "order.",
        "product.",
        "customer.",
        "abandoned.cart",
        "coupon.",
        "shipment.",
        "store.",
    ];
    FAMILIES
        .iter()
        .find(|f| event.starts_with(**f))
        .copied()
        .unwrap_or("other")
}

async fn reject(
    state: &AppState,
    dedupe_key: &str,
    body: &[u8],
    reason: &str,
    kept: &Value,
) -> Result<Response, ApiError> {
    let text = String::from_utf8_lossy(body);
    webhooks::insert_rejected(&state.db, PROVIDER, dedupe_key, &text, reason, kept).await?;
    metrics::counter!("salla_webhooks_total", "event" => "unparsable", "outcome" => "rejected")
        .increment(1);
    tracing::warn!(
        reason,
        bytes = body.len(),
        "authenticated Salla delivery rejected as unusable"
    );
    Ok(axum::Json(json!({ "received": true, "rejected": true })).into_response())
}

/// Delivery headers worth keeping (never the credential).
fn kept_headers(headers: &HeaderMap) -> Value {
    let mut kept = serde_json::Map::new();
    for name in ["x-salla-security-strategy", "user-agent", "content-type"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.into(), value.into());
        }
    }
    Value::Object(kept)
}

fn rejection(error: WebhookError) -> Response {
    if error.is_configuration() {
        return ApiError::Unavailable {
            code: "salla_webhooks_not_configured",
            message:
                "Salla webhooks are not configured on this server (salla.webhook_secrets is empty)."
                    .into(),
            details: None,
        }
        .into_response();
    }
    tracing::warn!(error = %error, "Salla webhook refused");
    metrics::counter!("salla_webhooks_total", "event" => "unknown", "outcome" => "unauthenticated")
        .increment(1);
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.extensions_mut().insert(ErrorBody {
        code: "invalid_signature".into(),
        message: format!("The webhook does not authenticate: {error}."),
        details: None,
        provisioning: None,
    });
    response
}
