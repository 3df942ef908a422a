//! Configuration: figment layers (defaults → file → aliases → `WOSOOL_*` env → `*_FILE` secrets), then one
//! validation pass that reports every problem at once.
//!
//! The defaults are `config/default.toml`, compiled in, so the file that documents every key is also the only
//! place a default lives.

mod app;
mod backup;
mod clerk;
mod crm;
mod db;
mod embedded;
mod jobs;
mod log;
mod notify;
mod ratelimit;
mod salla;
mod secret;
mod secrets;
mod security;
mod server;
mod tenancy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::{Deserialize, Serialize};

pub use self::app::AppConfig;
pub use self::backup::{BackupConfig, BackupTarget, RetentionConfig, S3Config};
pub use self::clerk::ClerkConfig;
pub use self::crm::{CrmConfig, CrmInstanceConfig, DEFAULT_CRM_INSTANCE};
pub use self::db::{DbConfig, RedisConfig, TenantServerConfig};
pub use self::embedded::EmbeddedConfig;
pub use self::jobs::JobsConfig;
pub use self::log::{LogConfig, LogFormat};
pub use self::notify::{NotifyConfig, SmtpTls};
pub use self::ratelimit::{DEFAULT_PLAN, RateLimitsConfig, RateRule};
pub use self::salla::{SallaConfig, SallaStrategy};
pub use self::secret::Secret;
pub use self::secrets::SecretsConfig;
pub use self::security::{AuditConfig, ImpersonationConfig, MaintenanceConfig};
pub use self::server::{AdminConfig, ServerConfig};
pub use self::tenancy::{
    SelfService, TenancyConfig, TenantCacheConfig, TenantMovesConfig, TenantPoolsConfig,
};

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
    pub embedded: EmbeddedConfig,
    pub app: AppConfig,
    pub rate_limits: RateLimitsConfig,
    pub audit: AuditConfig,
    pub maintenance: MaintenanceConfig,
    pub impersonation: ImpersonationConfig,
    pub backup: BackupConfig,
    pub notify: NotifyConfig,
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
    ///
    /// Each section checks itself beside its struct; the order of the calls below is the order problems are
    /// reported in.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, what: String, expected: &str| {
            problems.push(format!("{key}: {what}; expected {expected}"));
        };

        self.server.validate_addresses(&mut problem);
        for (key, value) in self
            .server
            .positive_settings()
            .into_iter()
            .chain(self.db.positive_settings())
            .chain(self.redis.positive_settings())
            .chain(self.jobs.positive_settings())
            .chain(self.tenancy.positive_settings())
        {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
        self.server.validate_origins(&mut problem);
        self.server.validate_proxies(&mut problem);
        self.server.validate_header_limits(&mut problem);
        self.db.validate(&mut problem);
        self.redis.validate(&mut problem);
        self.log.validate(&mut problem);
        self.jobs.validate(&mut problem);
        self.admin.validate(&mut problem);

        self.db.validate_tenant_servers(&mut problem);
        self.tenancy.validate(&mut problem);
        self.tenancy
            .validate_self_service(&self.clerk, &mut problem);
        self.clerk.validate(&mut problem);
        self.secrets.validate(&mut problem);
        self.salla.validate(&self.secrets, &mut problem);
        self.crm.validate(&self.secrets, &mut problem);
        self.embedded.validate(&mut problem);
        self.app.validate(&mut problem);
        self.rate_limits.validate(&self.tenancy.plans, &mut problem);
        self.audit.validate(&mut problem);
        self.maintenance.validate(&mut problem);
        self.impersonation.validate(&mut problem);
        self.backup.validate(&mut problem);
        self.notify.validate(&mut problem);

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
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
