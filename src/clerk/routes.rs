//! `POST /webhooks/clerk`: verify the Svix signature on the raw bytes, store the delivery in the webhook inbox
//! and enqueue its `clerk.event` job in one transaction, answer at once (Svix wants a 2xx within 15 s).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;

use super::webhook::{self, ClerkEvent, PROVIDER};
use crate::config::{ClerkConfig, Config};
use crate::error::ApiError;
use crate::inbox::{self, Accepted, Delivery, Inbox, JobFor, Provider, Refusal};
use crate::jobs::NewJob;

/// Answers 200 `{"received": true, "duplicate": bool}` once the delivery is durably stored (or was already);
/// 401 `invalid_signature` with nothing stored when the signature, headers or timestamp do not verify;
/// 400 when the verified body is not a JSON event; 503 `clerk_webhooks_not_configured` without a secret.
#[utoipa::path(
    post,
    path = "/webhooks/clerk",
    tag = "webhooks",
    summary = "Clerk events (Svix-signed)",
    params(
        ("svix-id" = String, Header, description = "The message id (the dedupe key); or `webhook-id`."),
        ("svix-timestamp" = String, Header, description = "Unix seconds, within the tolerance of now; or `webhook-timestamp`."),
        ("svix-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`; or `webhook-signature`."),
    ),
    request_body(content = Object, description = "A Clerk event, verified on the raw bytes.", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or stored before).", body = crate::inbox::Received),
        (status = 400, description = "The verified body is not a JSON event."),
        (status = 401, description = "`invalid_signature`: nothing is stored."),
        (status = 503, description = "`clerk_webhooks_not_configured`: no signing secret."),
    ),
)]
pub async fn receive(
    State(inbox): State<Inbox>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let provider = ClerkWebhooks(&config.clerk);
    inbox::receive(&inbox, &provider, &headers, body).await
}

/// Clerk (Svix-signed deliveries) as an inbox provider.
pub struct ClerkWebhooks<'a>(pub &'a ClerkConfig);

impl Provider for ClerkWebhooks<'_> {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn job(&self) -> JobFor {
        |inbox_id| NewJob::new(&ClerkEvent { inbox_id })
    }

    fn accept(&self, headers: &HeaderMap, body: &Bytes) -> Result<Accepted, Refusal> {
        let secrets: Vec<&str> = self
            .0
            .webhook_secrets
            .iter()
            .map(|s| s.expose())
            .filter(|s| !s.is_empty())
            .collect();
        if secrets.is_empty() {
            return Err(Refusal::NotConfigured {
                code: "clerk_webhooks_not_configured",
                message:
                    "Clerk webhooks are not configured on this server (clerk.webhook_secrets is empty)."
                        .into(),
            });
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // Verified first, on the raw bytes: nothing unauthenticated is parsed or stored.
        let delivery = webhook::verify_any(&secrets, headers, body, now)
            .and_then(|()| webhook::delivery_headers(headers))
            .map_err(|error| {
                if error.is_configuration() {
                    // Svix retries, so the deliveries are not lost once it is fixed.
                    Refusal::NotConfigured {
                        code: "clerk_webhooks_misconfigured",
                        message: "Clerk webhooks are misconfigured on this server.".into(),
                    }
                } else {
                    Refusal::Unauthenticated(format!("the signature does not verify ({error})"))
                }
            })?;
        let malformed = |message: String| Refusal::Malformed {
            code: "malformed_event",
            message,
        };
        let text = std::str::from_utf8(body).map_err(|e| Refusal::Malformed {
            code: "malformed_json",
            message: format!("The body is not valid JSON: {e}"),
        })?;
        // What jsonb cannot hold (`\u0000`, lone surrogates) is made storable; the inbox keeps the raw bytes.
        let text = inbox::storable_json(text);
        let payload: Value = serde_json::from_str(&text).map_err(|e| Refusal::Malformed {
            code: "malformed_json",
            message: format!("The body is not valid JSON: {e}"),
        })?;
        let event_type = payload
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                malformed("The body is not a Clerk event: it has no string `type`.".into())
            })?
            .to_owned();
        if !payload.get("data").is_some_and(Value::is_object) {
            return Err(malformed(
                "The body is not a Clerk event: it has no object `data`.".into(),
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
        Ok(Accepted::Event(Delivery {
            dedupe_key: delivery.id.to_owned(),
            event_type,
            payload: text.into_owned(),
            headers: Value::Object(kept),
        }))
    }
}
