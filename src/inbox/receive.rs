//! Receiving a delivery over HTTP, the same for every provider: authenticate, store durably (group commit),
//! answer. 200 `{"received": true, "duplicate": bool}` once stored (or stored before); 200
//! `{"received": true, "rejected": true}` for an authenticated body that is not a usable event; 401
//! `invalid_signature` with nothing stored; 400 for a body the provider refuses; 503 when the provider is not
//! configured or the inbox cannot store (the provider retries).

use axum::Json;
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::repair::storable_text;
use super::store::{self, Entry};
use super::{Accepted, Inbox, Provider, Refusal};
use crate::error::ApiError;

/// The answer to a webhook delivery (`POST /webhooks/*`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `receive`")]
pub struct Received {
    /// Always `true`: the delivery is stored durably (or was before).
    received: bool,
    /// The same delivery was stored before (a redelivery).
    #[schema(required = false)]
    duplicate: Option<bool>,
    /// Authenticated but not a usable event: kept as `rejected` for inspection.
    #[schema(required = false)]
    rejected: Option<bool>,
}

pub async fn receive(
    inbox: &Inbox,
    provider: &dyn Provider,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let name = provider.name();
    let accepted = provider.accept(headers, &body).map_err(|refusal| {
        let error = refused(name, refusal);
        metrics::counter!("webhook_deliveries_total", "provider" => name, "outcome" => "refused")
            .increment(1);
        error
    })?;
    let delivery = match accepted {
        Accepted::Event(delivery) => delivery,
        Accepted::Unusable {
            dedupe_key,
            reason,
            headers,
        } => {
            // The bytes as received, and a text copy for reading (which a NUL would make unstorable).
            let text = String::from_utf8_lossy(&body);
            let text = storable_text(&text);
            let stored = store::insert_rejected(
                inbox.db(),
                name,
                &dedupe_key,
                &text,
                &body,
                &reason,
                &headers,
            )
            .await?;
            let outcome = if stored { "rejected" } else { "duplicate" };
            metrics::counter!("webhook_deliveries_total", "provider" => name, "outcome" => outcome)
                .increment(1);
            tracing::warn!(
                provider = name,
                reason,
                bytes = body.len(),
                "authenticated delivery rejected as unusable"
            );
            return Ok(Json(json!({ "received": true, "rejected": true })));
        }
    };
    let event_type = delivery.event_type.clone();
    // The provider stores the body as it came, unless it had to be made storable (`storable_json`): then the
    // bytes as received are kept too.
    let raw = (delivery.payload.as_bytes() != body.as_ref()).then(|| body.clone());
    if raw.is_some() {
        metrics::counter!("webhook_payloads_repaired_total", "provider" => name).increment(1);
        tracing::warn!(
            provider = name,
            event_type,
            "delivery JSON holds text jsonb cannot store; stored with U+FFFD, raw bytes kept"
        );
    }
    let stored = inbox
        .committer
        .store(Entry {
            provider: name,
            delivery,
            raw,
            job: provider.job(),
        })
        .await
        .map_err(|error| {
            tracing::error!(provider = name, error = %error, "delivery not stored");
            ApiError::Unavailable {
                code: "inbox_unavailable",
                message: "The delivery could not be stored; send it again.".into(),
                details: None,
            }
        })?;
    provider.received(&event_type, stored);
    tracing::info!(
        provider = name,
        event_type,
        inbox_id = stored.id(),
        duplicate = stored.is_duplicate(),
        "webhook received"
    );
    Ok(Json(
        json!({ "received": true, "duplicate": stored.is_duplicate() }),
    ))
}

fn refused(provider: &'static str, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotConfigured { code, message } => {
            tracing::error!(provider, code, "webhook refused: not configured");
            ApiError::Unavailable {
                code,
                message,
                details: None,
            }
        }
        Refusal::Unauthenticated(why) => {
            tracing::warn!(provider, error = %why, "webhook refused: does not authenticate");
            ApiError::AuthFailed {
                code: "invalid_signature",
                message: format!("The webhook does not authenticate: {why}."),
            }
        }
        Refusal::Malformed { code, message } => ApiError::BadRequest { code, message },
    }
}
