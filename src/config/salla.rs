//! `[salla]`: the Salla app (OAuth, webhooks, API rate limits and imports), with its validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Secret, SecretsConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SallaStrategy {
    /// Whatever `X-Salla-Security-Strategy` names (Signature or Token).
    Any,
    Signature,
    Token,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SallaConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub webhook_secrets: Vec<Secret>,
    pub security_strategy: SallaStrategy,
    pub accounts_url: String,
    pub api_url: String,
    pub request_timeout_secs: u64,
    pub max_retries: u32,
    pub max_retry_after_secs: u64,
    pub refresh_window_secs: u64,
    pub refresh_sweep_secs: u64,
    pub per_page: u32,
    pub order_details_concurrency: u32,
    pub plan_requests_per_minute: BTreeMap<String, u32>,
    pub default_requests_per_minute: u32,
    pub customers_requests_per_window: u32,
    pub customers_window_secs: u64,
    pub resync_interval_secs: u64,
    pub webhook_subscribe_url: String,
}

impl SallaConfig {
    /// Whether the Salla app is configured (an OAuth client id is set).
    pub fn enabled(&self) -> bool {
        !self.client_id.is_empty()
    }

    /// Requests per minute allowed for a store on `plan`, until Salla's headers say otherwise.
    pub fn requests_per_minute(&self, plan: Option<&str>) -> u32 {
        plan.and_then(|p| self.plan_requests_per_minute.get(&p.to_ascii_lowercase()))
            .copied()
            .unwrap_or(self.default_requests_per_minute)
    }

    pub(super) fn validate(
        &self,
        secrets: &SecretsConfig,
        problem: &mut impl FnMut(&str, String, &str),
    ) {
        let salla = self;
        for (key, value) in [
            ("salla.accounts_url", &salla.accounts_url),
            ("salla.api_url", &salla.api_url),
        ] {
            match url::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problem(
                    key,
                    format!("{value:?} is not an http(s) URL"),
                    "a URL such as the documented default",
                ),
            }
        }
        if !salla.webhook_subscribe_url.is_empty()
            && !salla.webhook_subscribe_url.starts_with("https://")
        {
            problem(
                "salla.webhook_subscribe_url",
                format!("{:?} is not an https URL", salla.webhook_subscribe_url),
                "empty, or the public https URL of POST /webhooks/salla",
            );
        }
        if salla.enabled() {
            if salla.client_secret.is_empty() {
                problem(
                    "salla.client_secret",
                    "is empty while salla.client_id is set".into(),
                    "the app's client secret from the Partner Portal",
                );
            }
            if secrets.encryption_keys.is_empty() {
                problem(
                    "secrets.encryption_keys",
                    "is empty while Salla is configured (its tokens are stored encrypted)".into(),
                    "at least one key \"<id>:<base64 of 32 random bytes>\"",
                );
            }
        }
        if salla.webhook_secrets.len() > 2 {
            problem(
                "salla.webhook_secrets",
                format!("has {} secrets", salla.webhook_secrets.len()),
                "at most two (the current one and, during rotation, the previous one)",
            );
        }
        if !(1..=65).contains(&salla.per_page) {
            problem(
                "salla.per_page",
                format!("is {}", salla.per_page),
                "1 to 60",
            );
        }
        for (key, value) in [
            ("salla.request_timeout_secs", salla.request_timeout_secs),
            ("salla.refresh_window_secs", salla.refresh_window_secs),
            ("salla.refresh_sweep_secs", salla.refresh_sweep_secs),
            (
                "salla.default_requests_per_minute",
                salla.default_requests_per_minute as u64,
            ),
            (
                "salla.customers_requests_per_window",
                salla.customers_requests_per_window as u64,
            ),
            ("salla.customers_window_secs", salla.customers_window_secs),
            ("salla.resync_interval_secs", salla.resync_interval_secs),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
    }
}
