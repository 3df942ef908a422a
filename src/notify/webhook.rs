//! The operator webhook: one POST per operator notice, a Slack-compatible body (`{"text": …}`, which Slack,
//! Mattermost, Rocket.Chat and Google Chat show) plus structured fields for tools that route on them, signed
//! with `notify.operator_webhook_secret` when one is set.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::deliver::Failure;
use crate::config::{NotifyConfig, Secret};

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the timestamp lets the
/// receiver refuse replays).
pub const SIGNATURE_HEADER: &str = "x-wosool-signature";

#[derive(Clone)]
pub struct OperatorWebhook {
    client: reqwest::Client,
    url: Secret,
    secret: Secret,
}

impl OperatorWebhook {
    pub fn build(config: &NotifyConfig, client: reqwest::Client) -> Option<Self> {
        config.webhook_configured().then(|| Self {
            client,
            url: config.operator_webhook_url.clone(),
            secret: config.operator_webhook_secret.clone(),
        })
    }

    /// What the `notifications` row names as the recipient: the host only (the URL's path is a token).
    pub fn recipient(url: &Secret) -> String {
        url::Url::parse(url.expose())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "webhook".into())
    }

    /// Posts `body`. 2xx: delivered; 429, 5xx, a timeout or a connection problem: retried by the job; any
    /// other answer (a 4xx: wrong URL, revoked token) fails at once.
    pub async fn post(&self, body: &serde_json::Value, timeout: Duration) -> Result<(), Failure> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Failure::Permanent(format!("encoding the body: {e}")))?;
        let mut request = self
            .client
            .post(self.url.expose())
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if !self.secret.is_empty() {
            let at = time::OffsetDateTime::now_utc().unix_timestamp();
            request = request.header(SIGNATURE_HEADER, sign(&self.secret, at, &bytes));
        }
        let response = request.body(bytes).send().await.map_err(|e| {
            // Without the URL: it carries the chat tool's token.
            Failure::Transient(format!("webhook: {}", e.without_url()))
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(Failure::Transient(format!("webhook answered {status}")))
        } else {
            Err(Failure::Permanent(format!("webhook answered {status}")))
        }
    }
}

/// `t=<at>,v1=<hex HMAC-SHA256(secret, "<at>.<body>")>`.
pub fn sign(secret: &Secret, at: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
}
