//! A store's webhook subscriptions through the Merchant API, when `salla.webhook_subscribe_url` is set.
//!
//! Salla updates the webhook already registered at a URL when asked to subscribe that URL again, so one URL for
//! every event would leave one event subscribed: each event gets its own URL (`…?event=order.created`). A
//! webhook registered without a credential is signed with a secret Salla generates and we never learn, so each
//! is registered with ours (`subscribe_webhook`). After registering, `GET /webhooks` is read back and every
//! event checked: at its URL, with our credential where Salla shows it; what is not is registered again, and
//! what remains wrong is the store's drift (`salla_stores.webhook_drift`, shown by the admin store view).
//! Webhooks of ours at URLs we no longer use (the single URL of earlier versions) are removed.
//!
//! Runs at install and with every re-scan (job `salla.webhooks`), so drift is found and repaired daily.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::api::MerchantId;
use super::import::StoreCredentials;
use super::service::Salla;
use crate::jobs::{Job, JobError, JobQueue, NewJob};

/// The store events we act on.
pub const SUBSCRIBED_EVENTS: &[&str] = &[
    "order.created",
    "order.updated",
    "order.status.updated",
    "order.cancelled",
    "order.refunded",
    "order.deleted",
    "product.created",
    "product.deleted",
    "product.price.updated",
    "product.status.updated",
    "product.image.updated",
    "product.category.updated",
    "product.brand.updated",
    "product.tags.updated",
    "customer.created",
    "customer.updated",
    "abandoned.cart",
    "abandoned.cart.status.changed",
    "abandoned.cart.purchased",
];

/// Registers and checks one store's webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnsureWebhooks {
    pub merchant_id: MerchantId,
}

impl Job for EnsureWebhooks {
    const KIND: &'static str = "salla.webhooks";
}

/// Enqueues [`EnsureWebhooks`] for a store (a no-op while one is pending), when registration is configured.
pub async fn enqueue(salla: &Salla, jobs: &JobQueue, merchant: MerchantId) -> Result<(), JobError> {
    if salla.config().webhook_subscribe_url.is_empty() {
        return Ok(());
    }
    let job = NewJob::new(&EnsureWebhooks {
        merchant_id: merchant,
    })
    .map_err(JobError::permanent)?
    .unique_key(format!("webhooks:{merchant}"));
    jobs.enqueue(job).await.map_err(JobError::retry)?;
    Ok(())
}

/// An event that is not registered as it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub event: String,
    /// `missing` (no webhook at its URL), `other_event` (its URL delivers another event) or
    /// `other_credential` (Salla shows a strategy or an `Authorization` other than ours).
    pub problem: &'static str,
}

/// `salla.webhook_subscribe_url` is not a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("salla.webhook_subscribe_url: {0}")]
pub struct BadSubscribeUrl(pub url::ParseError);

/// The URL `event` is registered at: the configured URL with `event` in its query.
pub fn event_url(base: &str, event: &str) -> Result<String, BadSubscribeUrl> {
    let mut url = url::Url::parse(base).map_err(BadSubscribeUrl)?;
    url.query_pairs_mut().append_pair("event", event);
    Ok(url.to_string())
}

/// Ours: the configured URL, with or without a query.
fn is_ours(base: &str, url: &str) -> bool {
    url.split('?').next() == base.split('?').next()
}

/// What is wrong with `event`'s registration among `listed`, if anything.
fn check(listed: &[Value], event: &str, url: &str, secret: &str) -> Option<&'static str> {
    let Some(webhook) = listed.iter().find(|w| w["url"].as_str() == Some(url)) else {
        return Some("missing");
    };
    if webhook["event"].as_str() != Some(event) {
        return Some("other_event");
    }
    // Salla's list may or may not show the strategy and headers; what it shows must be ours.
    let strategy_ok = webhook["security_strategy"]
        .as_str()
        .is_none_or(|s| s.eq_ignore_ascii_case("token"));
    let header_ok = match header(webhook, "authorization") {
        Some(value) => bool::from(value.as_bytes().ct_eq(secret.as_bytes())),
        None => true,
    };
    (!(strategy_ok && header_ok)).then_some("other_credential")
}

/// A header of a listed webhook: `headers` as an object (Salla's answers) or `[{key, value}]` (its requests).
fn header<'a>(webhook: &'a Value, name: &str) -> Option<&'a str> {
    match &webhook["headers"] {
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str()),
        Value::Array(items) => items
            .iter()
            .find(|h| {
                h["key"]
                    .as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case(name))
            })
            .and_then(|h| h["value"].as_str()),
        _ => None,
    }
}

/// Registers what is missing or wrong, removes webhooks of ours at URLs no event uses, reads the result back
/// and records the drift that remains. Returns it.
pub async fn ensure(salla: &Salla, merchant: MerchantId) -> Result<Vec<Drift>, JobError> {
    let base = salla.config().webhook_subscribe_url.clone();
    if base.is_empty() {
        return Ok(Vec::new());
    }
    let Some(secret) = salla.config().webhook_secrets.first() else {
        return Err(JobError::permanent(
            "salla.webhook_secrets is empty: webhooks cannot be registered with our credential",
        ));
    };
    let secret = secret.expose().to_owned();
    let credentials = StoreCredentials::new(salla, merchant);
    let api = salla.api();
    let api_error =
        |what: &str, e: super::api::SallaApiError| JobError::retry(format!("{what}: {e}"));
    let expected: Vec<(&str, String)> = SUBSCRIBED_EVENTS
        .iter()
        .map(|event| event_url(&base, event).map(|url| (*event, url)))
        .collect::<Result<_, _>>()
        .map_err(JobError::permanent)?;
    let listed = api
        .list_webhooks(merchant, &credentials)
        .await
        .map_err(|e| api_error("webhooks", e))?;
    for stale in listed.iter().filter(|w| {
        w["url"]
            .as_str()
            .is_some_and(|url| is_ours(&base, url) && !expected.iter().any(|(_, u)| u == url))
    }) {
        if let Some(id) = stale["id"].as_u64() {
            api.unsubscribe_webhook(merchant, &credentials, id)
                .await
                .map_err(|e| api_error("webhooks/unsubscribe", e))?;
            tracing::info!(merchant = merchant.as_i64(), webhook = id, url = ?stale["url"], "removed a webhook of ours at an unused URL");
        }
    }
    for (event, url) in &expected {
        if check(&listed, event, url, &secret).is_some() {
            api.subscribe_webhook(merchant, &credentials, event, url, &secret)
                .await
                .map_err(|e| api_error("webhooks/subscribe", e))?;
        }
    }
    let listed = api
        .list_webhooks(merchant, &credentials)
        .await
        .map_err(|e| api_error("webhooks", e))?;
    let drift: Vec<Drift> = expected
        .iter()
        .filter_map(|(event, url)| {
            check(&listed, event, url, &secret).map(|problem| Drift {
                event: (*event).to_owned(),
                problem,
            })
        })
        .collect();
    sqlx::query(
        "UPDATE salla_stores SET webhooks_checked_at = now(), webhook_drift = $2,
                webhooks_registered_at = CASE WHEN $3 THEN coalesce(webhooks_registered_at, now())
                                              ELSE webhooks_registered_at END
          WHERE merchant_id = $1",
    )
    .bind(merchant)
    .bind(json!(drift))
    .bind(drift.is_empty())
    .execute(salla.db())
    .await?;
    metrics::gauge!("salla_webhook_drift_events", "merchant" => merchant.to_string())
        .set(drift.len() as f64);
    if drift.is_empty() {
        tracing::info!(
            merchant = merchant.as_i64(),
            events = expected.len(),
            "Salla webhooks registered and checked"
        );
    } else {
        tracing::warn!(
            merchant = merchant.as_i64(),
            ?drift,
            "Salla webhooks drift from what we registered"
        );
    }
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_has_its_own_url_and_our_credential_is_checked() {
        let base = "https://wosool.example/webhooks/salla";
        let url = event_url(base, "order.created").unwrap();
        assert_eq!(
            url,
            "https://wosool.example/webhooks/salla?event=order.created"
        );
        assert!(is_ours(base, &url) && is_ours(base, base));
        assert!(!is_ours(base, "https://elsewhere.example/hook"));
        let ours = json!([{ "url": url, "event": "order.created", "headers": { "Authorization": "s3cret" } }]);
        assert_eq!(
            check(ours.as_array().unwrap(), "order.created", &url, "s3cret"),
            None
        );
        assert_eq!(
            check(ours.as_array().unwrap(), "order.created", &url, "other"),
            Some("other_credential")
        );
        let signed =
            json!([{ "url": url, "event": "order.created", "security_strategy": "signature" }]);
        assert_eq!(
            check(signed.as_array().unwrap(), "order.created", &url, "s3cret"),
            Some("other_credential")
        );
        let moved = json!([{ "url": url, "event": "order.updated" }]);
        assert_eq!(
            check(moved.as_array().unwrap(), "order.created", &url, "s3cret"),
            Some("other_event")
        );
        assert_eq!(check(&[], "order.created", &url, "s3cret"), Some("missing"));
    }
}
