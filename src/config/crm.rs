//! `[crm]` and `[[crm.instances]]`: the Twenty instances, workspace provisioning, the record sync and the
//! proxy, with their validation.

use serde::{Deserialize, Serialize};

use super::{Secret, SecretsConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    pub base_url: String,
    pub operator_email_domain: String,
    pub database_url: Secret,
    pub max_workspaces: u32,
    pub instances: Vec<CrmInstanceConfig>,
    pub capacity_recheck_secs: u64,
    pub request_timeout_secs: u64,
    pub activate_timeout_secs: u64,
    pub max_retries: u32,
    pub requests_per_minute: u32,
    pub sync_batch_size: u32,
    pub proxy_timeout_secs: u64,
    pub proxy_body_limit_bytes: usize,
}

/// One Twenty instance (`[[crm.instances]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmInstanceConfig {
    pub key: String,
    pub base_url: String,
    #[serde(default)]
    pub workspace_url_pattern: String,
    #[serde(default)]
    pub database_url: Secret,
    #[serde(default = "default_max_workspaces")]
    pub max_workspaces: u32,
}

/// Self-hosted Twenty's cap without an Enterprise key in v2.30–v2.43.
fn default_max_workspaces() -> u32 {
    5
}

/// The key of the instance `crm.base_url` stands for.
pub const DEFAULT_CRM_INSTANCE: &str = "default";

impl CrmConfig {
    /// Whether Twenty is configured (`crm.base_url` or at least one `[[crm.instances]]`).
    pub fn enabled(&self) -> bool {
        !self.base_url.is_empty() || !self.instances.is_empty()
    }

    /// The Twenty instances: `[[crm.instances]]`, or the one `crm.base_url` stands for (key "default").
    pub fn instances(&self) -> Vec<CrmInstanceConfig> {
        if !self.instances.is_empty() {
            return self.instances.clone();
        }
        if self.base_url.is_empty() {
            return vec![];
        }
        vec![CrmInstanceConfig {
            key: DEFAULT_CRM_INSTANCE.into(),
            base_url: self.base_url.clone(),
            workspace_url_pattern: String::new(),
            database_url: self.database_url.clone(),
            max_workspaces: self.max_workspaces,
        }]
    }

    pub(super) fn validate(
        &self,
        secrets: &SecretsConfig,
        problem: &mut impl FnMut(&str, String, &str),
    ) {
        let crm = self;
        if !crm.base_url.is_empty() && !crm.instances.is_empty() {
            problem(
                "crm.base_url",
                "is set together with [[crm.instances]]".into(),
                "either crm.base_url (one instance) or [[crm.instances]], not both",
            );
        }
        let mut keys = std::collections::HashSet::new();
        let shorthand = crm.instances.is_empty();
        for (i, instance) in crm.instances().iter().enumerate() {
            let at = |field: &str| {
                if shorthand {
                    format!("crm.{field}")
                } else {
                    format!("crm.instances[{i}].{field}")
                }
            };
            if !crate::tenancy::is_valid_server_key(&instance.key) {
                problem(
                    &at("key"),
                    format!("{:?} is not a valid instance key", instance.key),
                    "1-32 characters of a-z, 0-9 and -",
                );
            }
            if !keys.insert(instance.key.clone()) {
                problem(
                    &at("key"),
                    format!("{:?} is used twice", instance.key),
                    "a unique key per instance",
                );
            }
            match url::Url::parse(&instance.base_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problem(
                    &at("base_url"),
                    format!("{:?} is not an http(s) URL", instance.base_url),
                    "Twenty's internal URL such as http://twenty:3000",
                ),
            }
            let pattern = &instance.workspace_url_pattern;
            let pattern_ok = pattern.is_empty()
                || (pattern.contains("{subdomain}")
                    && url::Url::parse(&pattern.replace("{subdomain}", "ws")).is_ok());
            if !pattern_ok {
                problem(
                    &at("workspace_url_pattern"),
                    format!("{pattern:?} is not a URL with {{subdomain}}"),
                    "empty, or e.g. https://{subdomain}.crm.example.com",
                );
            }
            let database = instance.database_url.expose();
            if !database.is_empty()
                && !url::Url::parse(database)
                    .is_ok_and(|url| matches!(url.scheme(), "postgres" | "postgresql"))
            {
                problem(
                    &at("database_url"),
                    format!(
                        "{} is not a PostgreSQL URL",
                        instance.database_url.redacted()
                    ),
                    "empty, or postgres://user:password@host:5432/twenty",
                );
            }
            if instance.max_workspaces == 0 {
                problem(
                    &at("max_workspaces"),
                    "is 0".into(),
                    "the instance's workspace cap (5 without an Enterprise key on Twenty v2.43)",
                );
            }
        }
        if crm.enabled() && secrets.encryption_keys.is_empty() {
            problem(
                "secrets.encryption_keys",
                "is empty while Twenty is configured (its API keys are stored encrypted)".into(),
                "at least one key \"<id>:<base64 of 32 random bytes>\"",
            );
        }
        if crm.operator_email_domain.is_empty() || !crm.operator_email_domain.contains('.') {
            problem(
                "crm.operator_email_domain",
                format!("{:?} is not a domain", crm.operator_email_domain),
                "a domain such as crm.example.com",
            );
        }
        if !(1..=60).contains(&crm.sync_batch_size) {
            problem(
                "crm.sync_batch_size",
                format!("is {}", crm.sync_batch_size),
                "1 to 60",
            );
        }
        for (key, value) in [
            ("crm.request_timeout_secs", crm.request_timeout_secs),
            ("crm.capacity_recheck_secs", crm.capacity_recheck_secs),
            ("crm.activate_timeout_secs", crm.activate_timeout_secs),
            ("crm.requests_per_minute", crm.requests_per_minute as u64),
            ("crm.proxy_timeout_secs", crm.proxy_timeout_secs),
            (
                "crm.proxy_body_limit_bytes",
                crm.proxy_body_limit_bytes as u64,
            ),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
    }
}
