//! `[embedded]`: the Salla embedded app ("Open App"): token introspection and the app's own sessions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Salla's token introspection endpoint.
    pub introspect_url: String,
    /// Our Salla app id, sent as `S-Source`; empty: the embedded app is off. Salla's app ids are numbers, so
    /// `WOSOOL_EMBEDDED__APP_ID=1789456123` (which the environment layer reads as a number) is accepted too.
    #[serde(deserialize_with = "string_or_number")]
    pub app_id: String,
    /// `env` of the introspection body (`prod`, or `demo` for Salla's demo stores).
    pub env: String,
    pub session_absolute_secs: u64,
    pub session_idle_secs: u64,
    /// How long a verified session is remembered in-process before the database is asked again.
    pub session_cache_secs: u64,
    pub request_timeout_secs: u64,
    pub max_retries: u32,
    pub max_retry_after_secs: u64,
    /// How often ended sessions are deleted.
    pub prune_interval_secs: u64,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
}

impl EmbeddedConfig {
    /// Whether the embedded app is configured (a Salla app id is set).
    pub fn enabled(&self) -> bool {
        !self.app_id.trim().is_empty()
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        match url::Url::parse(&self.introspect_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problem(
                "embedded.introspect_url",
                format!("{:?} is not an http(s) URL", self.introspect_url),
                "a URL such as https://api.salla.dev/exchange-authority/v1/introspect",
            ),
        }
        if self.env.trim().is_empty() {
            problem("embedded.env", "is empty".into(), "prod or demo");
        }
        for (key, value) in [
            ("embedded.session_absolute_secs", self.session_absolute_secs),
            ("embedded.session_idle_secs", self.session_idle_secs),
            ("embedded.request_timeout_secs", self.request_timeout_secs),
            ("embedded.prune_interval_secs", self.prune_interval_secs),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
        if self.session_idle_secs > self.session_absolute_secs {
            problem(
                "embedded.session_idle_secs",
                format!(
                    "{} is longer than embedded.session_absolute_secs ({})",
                    self.session_idle_secs, self.session_absolute_secs
                ),
                "an idle timeout no longer than the absolute lifetime",
            );
        }
        if self.session_cache_secs > 5 {
            problem(
                "embedded.session_cache_secs",
                format!("is {}", self.session_cache_secs),
                "at most 5 (a revoked session may be honoured this long on a replica that missed the revocation)",
            );
        }
    }
}
