//! `POST /webhooks/clerk`: verify the Svix signature on the raw bytes, store the delivery in the webhook inbox
//! and enqueue its `clerk.event` job in one transaction, answer at once (Svix wants a 2xx within 15 s).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::webhook::{self, ClerkEvent, PROVIDER, WebhookError};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::NewJob;
use crate::state::AppState;
use crate::webhooks::{self, NewDelivery};

/// The Clerk webhook route, to merge into the API router.
pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/clerk", post(receive))
}

/// Answers 200 `{"received": true, "duplicate": bool}` once the delivery is durably stored (or was already);
/// 401 `invalid_signature` with nothing stored when the signature, headers or timestamp do not verify;
/// 400 when the verified body is not a JSON event; 503 `clerk_webhooks_not_configured` without a secret.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secrets: Vec<&str> = state
        .config
        .clerk
        .webhook_secrets
        .iter()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return Err(ApiError::Unavailable {
            code: "clerk_webhooks_not_configured",
            message:
                "Clerk webhooks are not configured on this server (clerk.webhook_secrets is empty)."
                    .into(),
            details: None,
        });
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // Verified first, on the raw bytes: nothing unauthenticated is parsed or stored.
    let delivery = match webhook::verify_any(&secrets, &headers, &body, now)
        .and_then(|()| webhook::delivery_headers(&headers))
    {
        Ok(delivery) => delivery,
        Err(error) => return Ok(rejection(error)),
    };

    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("The body is not valid JSON: {e}"))
    })?;
    let event_type = payload
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "malformed_event",
                "The body is not a Clerk event: it has no string `type`.",
            )
        })?
        .to_owned();
    if !payload.get("data").is_some_and(Value::is_object) {
        return Err(ApiError::bad_request(
            "malformed_event",
            "The body is not a Clerk event: it has no object `data`.",
        ));
    }

    let mut kept = serde_json::Map::new();
    kept.insert("id".into(), delivery.id.into());
    kept.insert("timestamp".into(), delivery.timestamp.into());
    if let Some(agent) = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        kept.insert("user_agent".into(), agent.into());
    }
    let kept = Value::Object(kept);
    let stored = webhooks::insert_and_enqueue(
        &state.db,
        &state.jobs,
        &NewDelivery {
            provider: PROVIDER,
            dedupe_key: delivery.id,
            event_type: &event_type,
            tenant_id: None,
            payload: &payload,
            headers: &kept,
        },
        |inbox_id| NewJob::new(&ClerkEvent { inbox_id }),
    )
    .await
    .map_err(|e| match e {
        webhooks::InboxError::Db(db) => ApiError::from(db),
        other => ApiError::internal(other),
    })?;
    tracing::info!(
        svix_id = delivery.id,
        event_type,
        inbox_id = stored.id(),
        duplicate = stored.is_duplicate(),
        "Clerk webhook received"
    );
    Ok(axum::Json(json!({ "received": true, "duplicate": stored.is_duplicate() })).into_response())
}

/// 401 `invalid_signature` naming what failed (nothing secret), or 503 when our own secret is unusable (a
/// configuration fault: Svix retries, so the deliveries are not lost once it is fixed).
fn rejection(error: WebhookError) -> Response {
    if error.is_configuration() {
        tracing::error!(error = %error, "Clerk webhook secret misconfigured");
        return ApiError::Unavailable {
            code: "clerk_webhooks_misconfigured",
            message: "Clerk webhooks are misconfigured on this server.".into(),
            details: None,
        }
        .into_response();
    }
    tracing::warn!(error = %error, "Clerk webhook rejected");
    metrics::counter!("webhook_deliveries_total", "provider" => PROVIDER, "outcome" => "rejected")
        .increment(1);
    invalid_signature(format!("The webhook signature does not verify: {error}."))
}

/// Renders a 401 with the `invalid_signature` code (the generic `Unauthorized` says `unauthorized`).
fn invalid_signature(message: String) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.extensions_mut().insert(ErrorBody {
        code: "invalid_signature".into(),
        message,
        details: None,
        provisioning: None,
    });
    response
}
