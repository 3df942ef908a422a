//! `POST /webhooks/salla`: authenticate the raw bytes, store the delivery in the webhook inbox and enqueue its
//! `salla.delivery` job in one transaction, answer 200 at once (Salla gives up after ~30 s and retries 3×).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::processing::ProcessDelivery;
use super::webhook::{self, PROVIDER};
use crate::config::{Config, SallaConfig};
use crate::error::ApiError;
use crate::inbox::{self, Accepted, Delivery, Inbox, JobFor, Provider, Refusal, Stored};
use crate::jobs::NewJob;

/// 200 `{"received": true, "duplicate": bool}` once the delivery is durable; 401 with nothing stored when it
/// does not authenticate; 200 `{"received": true, "rejected": true}` for an authenticated body that is not a
/// JSON event (kept as `rejected` for inspection: Salla would only send it again); 503 without a secret.
#[utoipa::path(
    post,
    path = "/webhooks/salla",
    tag = "webhooks",
    summary = "Salla events",
    params(
        ("X-Salla-Signature" = Option<String>, Header, description = "Lowercase-hex HMAC-SHA256 of the raw body (the `signature` strategy)."),
        ("Authorization" = Option<String>, Header, description = "The webhook secret itself (the `token` strategy)."),
        ("X-Salla-Security-Strategy" = Option<String>, Header, description = "`signature` or `token`."),
    ),
    request_body(content = Object, description = "A Salla event (`event`, `merchant`, `data`), authenticated on the raw bytes.", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or stored before), or `rejected` when authenticated but not an event.", body = crate::inbox::Received),
        (status = 401, description = "Not authenticated: nothing is stored."),
        (status = 503, description = "`salla_not_configured`: no webhook secret."),
    ),
)]
pub async fn receive(
    State(inbox): State<Inbox>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let provider = SallaWebhooks(&config.salla);
    inbox::receive(&inbox, &provider, &headers, body).await
}

/// Salla as an inbox provider.
pub struct SallaWebhooks<'a>(pub &'a SallaConfig);

/// The parts of a Salla event the inbox needs, read without building the whole document.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    merchant: Option<&'a RawValue>,
}

impl Provider for SallaWebhooks<'_> {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn job(&self) -> JobFor {
        |inbox_id| NewJob::new(&ProcessDelivery { inbox_id })
    }

    fn accept(&self, headers: &HeaderMap, body: &Bytes) -> Result<Accepted, Refusal> {
        let config = self.0;
        if !config.enabled() {
            return Err(Refusal::NotConfigured {
                code: "salla_not_configured",
                message:
                    "The Salla app is not configured on this server (salla.client_id is empty)."
                        .into(),
            });
        }
        let secrets: Vec<&str> = config.webhook_secrets.iter().map(|s| s.expose()).collect();
        if let Err(error) = webhook::verify_any(&secrets, config.security_strategy, headers, body) {
            if error.is_configuration() {
                return Err(Refusal::NotConfigured {
                    code: "salla_webhooks_not_configured",
                    message: "Salla webhooks are not configured on this server (salla.webhook_secrets is empty)."
                        .into(),
                });
            }
            metrics::counter!("salla_webhooks_total", "event" => "unknown", "outcome" => "unauthenticated")
                .increment(1);
            return Err(Refusal::Unauthenticated(error.to_string()));
        }
        // Salla sends no delivery id: a retry of the same delivery is the same bytes.
        let dedupe_key = hex::encode(Sha256::digest(body));
        let kept = kept_headers(headers);
        let unusable = |reason: String| {
            metrics::counter!("salla_webhooks_total", "event" => "unparsable", "outcome" => "rejected")
                .increment(1);
            Ok(Accepted::Unusable {
                dedupe_key: dedupe_key.clone(),
                reason,
                headers: kept.clone(),
            })
        };
        let text = match std::str::from_utf8(body) {
            Ok(text) => text,
            Err(error) => return unusable(format!("not JSON: not UTF-8 ({error})")),
        };
        // What jsonb cannot hold (`\u0000`, lone surrogates) is made storable; the inbox keeps the raw bytes.
        let text = inbox::storable_json(text);
        let envelope: Envelope = match serde_json::from_str(&text) {
            Ok(envelope) => envelope,
            Err(error) => return unusable(format!("not JSON: {error}")),
        };
        let merchant_ok = envelope.merchant.is_some_and(|raw| {
            let raw = raw.get().trim_matches('"').trim();
            !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && raw.parse::<u64>().is_ok()
        });
        let event = envelope
            .event
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        let Some(event) = event.filter(|e| !e.is_empty() && merchant_ok) else {
            return unusable(
                "not a Salla event: needs a string `event` and a numeric `merchant`".into(),
            );
        };
        Ok(Accepted::Event(Delivery {
            dedupe_key,
            event_type: event,
            payload: text.into_owned(),
            headers: kept,
        }))
    }

    fn received(&self, event_type: &str, stored: Stored) {
        let outcome = if stored.is_duplicate() {
            "duplicate"
        } else {
            "stored"
        };
        metrics::counter!("salla_webhooks_total", "event" => metric_event(event_type), "outcome" => outcome)
            .increment(1);
    }
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
