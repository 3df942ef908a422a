//! `[clerk]`: the Clerk Backend API, session-token verification and webhook secrets, with their validation.

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClerkConfig {
    pub secret_key: Secret,
    pub api_url: String,
    pub api_version: String,
    pub jwks_url: String,
    pub issuer: String,
    pub authorized_parties: Vec<String>,
    pub leeway_secs: u64,
    pub jwks_refresh_secs: u64,
    pub jwks_min_refetch_secs: u64,
    pub token_cache_entries: u64,
    pub webhook_secrets: Vec<Secret>,
    /// Expected `instance_id` of webhook deliveries; empty: not checked.
    pub instance_id: String,
    pub request_timeout_secs: u64,
    pub max_retries: u32,
    /// Clerk's publishable key (pk_live_… / pk_test_…) for clerk-js on our pages; empty: standalone access
    /// (outside Salla) is off.
    pub publishable_key: String,
}

impl ClerkConfig {
    /// Whether Clerk is configured at all (a secret key is set).
    pub fn enabled(&self) -> bool {
        !self.secret_key.is_empty()
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        let clerk = self;
        for (key, value, may_be_empty) in [
            ("clerk.api_url", &clerk.api_url, false),
            ("clerk.jwks_url", &clerk.jwks_url, true),
            ("clerk.issuer", &clerk.issuer, true),
        ] {
            if value.is_empty() && may_be_empty {
                continue;
            }
            match url::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problem(
                    key,
                    format!("{value:?} is not an http(s) URL"),
                    "a URL such as https://api.clerk.com/v1",
                ),
            }
        }
        if !clerk.secret_key.is_empty() && !clerk.secret_key.expose().starts_with("sk_") {
            problem(
                "clerk.secret_key",
                "does not start with sk_".into(),
                "a Clerk secret key (sk_live_… or sk_test_…)",
            );
        }
        for (i, secret) in clerk.webhook_secrets.iter().enumerate() {
            if !secret.expose().starts_with("whsec_") {
                problem(
                    &format!("clerk.webhook_secrets[{i}]"),
                    "does not start with whsec_".into(),
                    "the endpoint's signing secret from the Clerk dashboard (whsec_…)",
                );
            }
        }
        if !clerk.publishable_key.is_empty() && !clerk.publishable_key.starts_with("pk_") {
            problem(
                "clerk.publishable_key",
                "does not start with pk_".into(),
                "a Clerk publishable key (pk_live_… or pk_test_…)",
            );
        }
        if clerk.webhook_secrets.len() > 2 {
            problem(
                "clerk.webhook_secrets",
                format!("has {} secrets", clerk.webhook_secrets.len()),
                "at most two (the current one and, during rotation, the previous one)",
            );
        }
        for (key, value) in [
            ("clerk.jwks_refresh_secs", clerk.jwks_refresh_secs),
            ("clerk.token_cache_entries", clerk.token_cache_entries),
            ("clerk.request_timeout_secs", clerk.request_timeout_secs),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
    }
}
