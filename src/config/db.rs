//! `[db]` (the global PostgreSQL database and the tenant database servers) and `[redis]`, with their
//! validation.

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    pub url: Secret,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
    pub startup_wait_secs: u64,
    pub migrate_on_start: bool,
    pub tenant_servers: Vec<TenantServerConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantServerConfig {
    pub key: String,
    pub url: Secret,
    /// Being emptied (`wosool tenants move`): its tenants stay and are served, no new tenant is placed here.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
    pub key_prefix: String,
    pub timeout_secs: u64,
}

impl DbConfig {
    /// Settings that must not be 0 (checked with the other sections', in `Config::validate`).
    pub(super) fn positive_settings(&self) -> [(&'static str, u64); 1] {
        [("db.acquire_timeout_secs", self.acquire_timeout_secs)]
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        match url::Url::parse(self.url.expose()) {
            Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => {}
            _ => problem(
                "db.url",
                format!("{} is not a PostgreSQL URL", self.url.redacted()),
                "postgres://user:password@host:5432/database",
            ),
        }
        if self.max_connections < 2 {
            problem(
                "db.max_connections",
                format!("is {}", self.max_connections),
                "at least 2 (the job worker holds one for LISTEN)",
            );
        }
        if self.min_connections > self.max_connections {
            problem(
                "db.min_connections",
                format!(
                    "{} is above db.max_connections ({})",
                    self.min_connections, self.max_connections
                ),
                "a number no larger than db.max_connections",
            );
        }
    }

    /// `db.tenant_servers` (checked just before `[tenancy]`).
    pub(super) fn validate_tenant_servers(&self, problem: &mut impl FnMut(&str, String, &str)) {
        let mut keys = std::collections::HashSet::new();
        for (i, server) in self.tenant_servers.iter().enumerate() {
            let key = format!("db.tenant_servers[{i}]");
            if !crate::tenancy::is_valid_server_key(&server.key) {
                problem(
                    &format!("{key}.key"),
                    format!("{:?} is not a valid server key", server.key),
                    "1-32 characters of a-z, 0-9 and -",
                );
            }
            if !keys.insert(server.key.as_str()) {
                problem(
                    &format!("{key}.key"),
                    format!("{:?} is used twice", server.key),
                    "a unique key per server",
                );
            }
            match url::Url::parse(server.url.expose()) {
                Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => {}
                _ => problem(
                    &format!("{key}.url"),
                    format!("{} is not a PostgreSQL URL", server.url.redacted()),
                    "postgres://user:password@host:5432/postgres",
                ),
            }
        }
        if !self.tenant_servers.is_empty() && self.tenant_servers.iter().all(|s| s.draining) {
            problem(
                "db.tenant_servers",
                "every server is draining: new tenants would have nowhere to go".into(),
                "at least one server with draining = false",
            );
        }
    }
}

impl RedisConfig {
    /// Settings that must not be 0 (checked with the other sections', in `Config::validate`).
    pub(super) fn positive_settings(&self) -> [(&'static str, u64); 1] {
        [("redis.timeout_secs", self.timeout_secs)]
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if !self.url.is_empty() {
            match url::Url::parse(self.url.expose()) {
                Ok(url) if matches!(url.scheme(), "redis" | "rediss") => {}
                _ => problem(
                    "redis.url",
                    format!("{} is not a Redis URL", self.url.redacted()),
                    "empty or redis://[:password@]host:6379[/db]",
                ),
            }
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            problem(
                "redis.key_prefix",
                format!("{:?} is empty or contains whitespace", self.key_prefix),
                "a short word such as \"wosool\"",
            );
        }
    }
}
