//! Configuration: figment layers (defaults → file → aliases → `WOSOOL_*` env → `*_FILE` secrets), then one
//! validation pass that reports every problem at once.
//!
//! The defaults are `config/default.toml`, compiled in, so the file that documents every key is also the only
//! place a default lives.

mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::{Deserialize, Serialize};

pub use secret::Secret;

/// The documented defaults, embedded at build time.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of every environment variable that sets a config key.
const ENV_PREFIX: &str = "WOSOOL_";
/// Conventional variables honoured as aliases of config keys (below `WOSOOL_*` in precedence).
const ENV_ALIASES: &[(&str, &str)] = &[("DATABASE_URL", "db.url"), ("REDIS_URL", "redis.url")];
/// Variables that carry our own options rather than config keys.
const ENV_NOT_KEYS: &[&str] = &["WOSOOL_CONFIG"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub db: DbConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub jobs: JobsConfig,
    pub admin: AdminConfig,
    pub tenancy: TenancyConfig,
    pub clerk: ClerkConfig,
    pub secrets: SecretsConfig,
    pub salla: SallaConfig,
    pub crm: CrmConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    pub request_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub cors_allowed_origins: Vec<String>,
}

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
    pub key_prefix: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub concurrency: usize,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
    pub default_max_attempts: i32,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub retention_hours: u64,
    pub discarded_retention_hours: u64,
    pub prune_interval_secs: u64,
    pub stats_interval_secs: u64,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub api_keys: Vec<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyConfig {
    pub template_database: String,
    pub plans: Vec<String>,
    pub default_locale: String,
    pub default_currency: String,
    pub default_timezone: String,
    pub provision_max_attempts: i32,
    pub backup_dir: PathBuf,
    pub backup_retention_days: u64,
    pub deletion_grace_days: u64,
    pub pg_dump_path: String,
    pub cache: TenantCacheConfig,
    pub pools: TenantPoolsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCacheConfig {
    pub max_entries: u64,
    pub ttl_secs: u64,
    pub negative_ttl_secs: u64,
    pub redis_ttl_secs: u64,
    pub redis_timeout_ms: u64,
    pub redis_retry_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPoolsConfig {
    pub max_connections_per_tenant: u32,
    pub total_connections: u32,
    pub max_resident: usize,
    pub idle_timeout_secs: u64,
    pub acquire_timeout_ms: u64,
}

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
}

impl ClerkConfig {
    /// Whether Clerk is configured at all (a secret key is set).
    pub fn enabled(&self) -> bool {
        !self.secret_key.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// `<id>:<base64 32 bytes>`; the first encrypts, all decrypt.
    pub encryption_keys: Vec<Secret>,
}

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
}

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
    pub proxy_requests_per_minute: u32,
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
}

/// Everything that went wrong while loading, one human line per problem.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

impl Config {
    /// Loads from the process environment and an optional file (`--config`, else `WOSOOL_CONFIG`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "WOSOOL_CONFIG")
                .filter(|(_, v)| !v.is_empty())
                .map(|(_, v)| PathBuf::from(v))
        });
        Self::load_from(file.as_deref(), env)
    }

    /// Loads from an explicit set of environment variables: what `load` does, without touching process state
    /// (tests use this).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::one(format!(
                    "config file {}: not found or not a file; expected a readable TOML file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = EnvLayers::collect(env)?;
        for (key, value) in env.aliases.into_iter().chain(env.prefixed).chain(env.files) {
            figment = figment.merge(Serialized::global(&key, value));
        }
        let config: Config = figment.extract().map_err(|error| ConfigError {
            problems: error
                .into_iter()
                .map(|e| describe_figment_error(&e))
                .collect(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot express; reports every problem, not just the first.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, what: String, expected: &str| {
            problems.push(format!("{key}: {what}; expected {expected}"));
        };

        if self.server.listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.listen",
                format!("{:?} is not a socket address", self.server.listen),
                "host:port such as 0.0.0.0:8080",
            );
        }
        if !self.server.metrics_listen.is_empty()
            && self.server.metrics_listen.parse::<SocketAddr>().is_err()
        {
            problem(
                "server.metrics_listen",
                format!("{:?} is not a socket address", self.server.metrics_listen),
                "empty or host:port such as 127.0.0.1:9100",
            );
        }
        for (key, value) in [
            (
                "server.request_timeout_secs",
                self.server.request_timeout_secs,
            ),
            (
                "server.body_limit_bytes",
                self.server.body_limit_bytes as u64,
            ),
            ("db.acquire_timeout_secs", self.db.acquire_timeout_secs),
            ("redis.timeout_secs", self.redis.timeout_secs),
            ("jobs.concurrency", self.jobs.concurrency as u64),
            ("jobs.poll_interval_ms", self.jobs.poll_interval_ms),
            ("jobs.lease_secs", self.jobs.lease_secs),
            ("jobs.retry_base_ms", self.jobs.retry_base_ms),
            ("jobs.prune_interval_secs", self.jobs.prune_interval_secs),
            ("jobs.stats_interval_secs", self.jobs.stats_interval_secs),
            ("tenancy.cache.max_entries", self.tenancy.cache.max_entries),
            ("tenancy.cache.ttl_secs", self.tenancy.cache.ttl_secs),
            (
                "tenancy.cache.negative_ttl_secs",
                self.tenancy.cache.negative_ttl_secs,
            ),
            (
                "tenancy.cache.redis_ttl_secs",
                self.tenancy.cache.redis_ttl_secs,
            ),
            (
                "tenancy.cache.redis_timeout_ms",
                self.tenancy.cache.redis_timeout_ms,
            ),
            (
                "tenancy.pools.max_connections_per_tenant",
                self.tenancy.pools.max_connections_per_tenant as u64,
            ),
            (
                "tenancy.pools.max_resident",
                self.tenancy.pools.max_resident as u64,
            ),
            (
                "tenancy.pools.idle_timeout_secs",
                self.tenancy.pools.idle_timeout_secs,
            ),
            (
                "tenancy.pools.acquire_timeout_ms",
                self.tenancy.pools.acquire_timeout_ms,
            ),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
        for origin in &self.server.cors_allowed_origins {
            if origin != "*" && origin.parse::<http::HeaderValue>().is_err() {
                problem(
                    "server.cors_allowed_origins",
                    format!("{origin:?} is not a valid origin"),
                    "\"*\" or origins such as \"https://app.example.com\"",
                );
            }
        }
        match url::Url::parse(self.db.url.expose()) {
            Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => {}
            _ => problem(
                "db.url",
                format!("{} is not a PostgreSQL URL", self.db.url.redacted()),
                "postgres://user:password@host:5432/database",
            ),
        }
        if self.db.max_connections < 2 {
            problem(
                "db.max_connections",
                format!("is {}", self.db.max_connections),
                "at least 2 (the job worker holds one for LISTEN)",
            );
        }
        if self.db.min_connections > self.db.max_connections {
            problem(
                "db.min_connections",
                format!(
                    "{} is above db.max_connections ({})",
                    self.db.min_connections, self.db.max_connections
                ),
                "a number no larger than db.max_connections",
            );
        }
        if !self.redis.url.is_empty() {
            match url::Url::parse(self.redis.url.expose()) {
                Ok(url) if matches!(url.scheme(), "redis" | "rediss") => {}
                _ => problem(
                    "redis.url",
                    format!("{} is not a Redis URL", self.redis.url.redacted()),
                    "empty or redis://[:password@]host:6379[/db]",
                ),
            }
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(char::is_whitespace) {
            problem(
                "redis.key_prefix",
                format!(
                    "{:?} is empty or contains whitespace",
                    self.redis.key_prefix
                ),
                "a short word such as \"wosool\"",
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problem(
                "log.level",
                format!("{:?} is not a valid filter", self.log.level),
                "a level (error, warn, info, debug, trace) or directives like \"info,wosool=debug\"",
            );
        }
        if self.jobs.default_max_attempts < 1 {
            problem(
                "jobs.default_max_attempts",
                format!("is {}", self.jobs.default_max_attempts),
                "at least 1",
            );
        }
        if self.jobs.retry_max_secs * 1000 < self.jobs.retry_base_ms {
            problem(
                "jobs.retry_max_secs",
                "is below jobs.retry_base_ms".into(),
                "a cap no smaller than the base delay",
            );
        }
        for (i, key) in self.admin.api_keys.iter().enumerate() {
            if key.expose().len() < 16 {
                problem(
                    &format!("admin.api_keys[{i}]"),
                    "is shorter than 16 characters".into(),
                    "a random key of at least 16 characters (e.g. `openssl rand -hex 32`)",
                );
            }
        }

        self.validate_tenancy(&mut problem);
        self.validate_clerk(&mut problem);
        self.validate_salla(&mut problem);
        self.validate_crm(&mut problem);

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    fn validate_tenancy(&self, problem: &mut impl FnMut(&str, String, &str)) {
        use crate::tenancy::settings;

        let mut keys = std::collections::HashSet::new();
        for (i, server) in self.db.tenant_servers.iter().enumerate() {
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
        let tenancy = &self.tenancy;
        if !crate::tenancy::is_valid_identifier(&tenancy.template_database) {
            problem(
                "tenancy.template_database",
                format!("{:?} is not a plain identifier", tenancy.template_database),
                "1-63 characters of a-z, 0-9 and _, starting with a letter",
            );
        }
        if tenancy.plans.is_empty() || !tenancy.plans.iter().all(|p| settings::is_valid_plan(p)) {
            problem(
                "tenancy.plans",
                format!("{:?} is empty or holds an invalid name", tenancy.plans),
                "names of 1-32 characters of a-z, 0-9, _ and -",
            );
        }
        for (key, value, check) in [
            (
                "tenancy.default_locale",
                &tenancy.default_locale,
                settings::check_locale as fn(&str) -> Result<(), String>,
            ),
            (
                "tenancy.default_currency",
                &tenancy.default_currency,
                settings::check_currency,
            ),
            (
                "tenancy.default_timezone",
                &tenancy.default_timezone,
                settings::check_timezone,
            ),
        ] {
            if let Err(why) = check(value) {
                problem(key, why, "a value such as the documented default");
            }
        }
        if tenancy.provision_max_attempts < 1 {
            problem(
                "tenancy.provision_max_attempts",
                format!("is {}", tenancy.provision_max_attempts),
                "at least 1",
            );
        }
        if tenancy.pools.total_connections < tenancy.pools.max_connections_per_tenant {
            problem(
                "tenancy.pools.total_connections",
                format!(
                    "{} is below tenancy.pools.max_connections_per_tenant ({})",
                    tenancy.pools.total_connections, tenancy.pools.max_connections_per_tenant
                ),
                "a budget that fits at least one tenant pool",
            );
        }
    }

    fn validate_clerk(&self, problem: &mut impl FnMut(&str, String, &str)) {
        let clerk = &self.clerk;
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

    fn validate_crm(&self, problem: &mut impl FnMut(&str, String, &str)) {
        let crm = &self.crm;
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
        if crm.enabled() && self.secrets.encryption_keys.is_empty() {
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
            (
                "crm.proxy_requests_per_minute",
                crm.proxy_requests_per_minute as u64,
            ),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
    }

    fn validate_salla(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if let Err(why) = crate::secrets::Keyring::from_config(&self.secrets) {
            problem(
                "secrets.encryption_keys",
                why.to_string(),
                "entries \"<id>:<base64 of 32 random bytes>\" with distinct ids",
            );
        }
        let salla = &self.salla;
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
            if self.secrets.encryption_keys.is_empty() {
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

    /// The effective configuration as TOML, with every secret redacted (`wosool config check`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not render config: {e}\n"))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_timeout_secs)
    }
}

/// Environment variables sorted into the layers they feed, already mapped to dotted config keys.
struct EnvLayers {
    aliases: Vec<(String, Value)>,
    prefixed: Vec<(String, Value)>,
    files: Vec<(String, Value)>,
}

impl EnvLayers {
    fn collect(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut layers = EnvLayers {
            aliases: vec![],
            prefixed: vec![],
            files: vec![],
        };
        let mut problems = Vec::new();
        // Sorted so that the result never depends on the order the OS lists variables in.
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for (name, raw) in &env {
            if ENV_NOT_KEYS.contains(&name.as_str()) {
                continue;
            }
            let (var, from_file) = match name.strip_suffix("_FILE") {
                Some(var) => (var, true),
                None => (name.as_str(), false),
            };
            let (key, is_alias) =
                if let Some(&(_, key)) = ENV_ALIASES.iter().find(|(a, _)| *a == var) {
                    (key.to_string(), true)
                } else if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
                    (rest.to_ascii_lowercase().replace("__", "."), false)
                } else {
                    continue;
                };
            if from_file {
                match std::fs::read_to_string(raw) {
                    Ok(content) => {
                        let content = content.trim_end_matches(['\n', '\r']).to_string();
                        layers.files.push((key, Value::from(content)));
                    }
                    Err(e) => problems.push(format!(
                        "{name}: cannot read {raw:?} ({e}); expected a readable file holding the value of {key}"
                    )),
                }
            } else {
                if is_alias {
                    layers.aliases.push((key, Value::from(raw.clone())));
                } else {
                    // Same parsing as figment's Env provider: "8080" is a number, "[a,b]" an array.
                    let value: Value = raw.parse().unwrap_or_else(|never| match never {});
                    layers.prefixed.push((key, value));
                }
            }
        }
        if problems.is_empty() {
            Ok(layers)
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// One figment error as one line: the key it concerns, what was wrong, and where the value came from.
fn describe_figment_error(error: &figment::Error) -> String {
    let key = if error.path.is_empty() {
        "config".to_string()
    } else {
        error.path.join(".")
    };
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (from {} {source})", m.name),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    format!("{key}: {}{source}", error.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_alone_are_a_complete_valid_config() {
        let config = Config::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
        assert!(config.db.migrate_on_start);
        assert!(config.redis.url.is_empty());
    }

    #[test]
    fn prefixed_env_beats_alias_and_nested_keys_use_double_underscore() {
        let config = Config::load_from(
            None,
            env(&[
                ("DATABASE_URL", "postgres://a@alias/db"),
                ("WOSOOL_DB__URL", "postgres://a@prefixed/db"),
                ("WOSOOL_JOBS__CONCURRENCY", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(config.db.url.expose(), "postgres://a@prefixed/db");
        assert_eq!(config.jobs.concurrency, 3);
    }
}
