//! `[tenancy]`, `[tenancy.cache]` and `[tenancy.pools]`: tenant databases, defaults, the tenant cache and the
//! tenant connection pools, with their validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyConfig {
    pub template_database: String,
    pub plans: Vec<String>,
    /// The plan of a tenant whose registration names none; always the plan of a self-served tenant.
    pub default_plan: String,
    /// Who may call `POST /api/auth/register-organization`.
    pub self_service: SelfService,
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
    pub moves: TenantMovesConfig,
}

/// `[tenancy.moves]`: moving a tenant's database to another tenant server (`wosool tenants move`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantMovesConfig {
    /// Seconds between the switch and the drop of the source database (a delayed job).
    pub drop_source_after_secs: u64,
    /// How long transactions already running on the source get to finish once it is read-only, before their
    /// sessions are terminated.
    pub drain_timeout_ms: u64,
    /// The dump-and-restore of one tenant must finish within this; then the move fails and rolls back.
    pub copy_timeout_secs: u64,
    /// The pg_restore program (a name on PATH or a full path), of the same major version as pg_dump.
    pub pg_restore_path: String,
}

/// `tenancy.self_service`: who may register an organization through the public route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelfService {
    /// Nobody: tenants are created by operators (admin API, CLI) and integrations (Clerk organizations, Salla
    /// installs). The production default.
    Off,
    /// A caller holding a verified Clerk session; the new organization is theirs (they become its owner).
    Clerk,
    /// Anyone (local use), behind the public routes' rate limits.
    Open,
}

impl SelfService {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Clerk => "clerk",
            Self::Open => "open",
        }
    }
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

impl TenancyConfig {
    /// Settings that must not be 0 (checked with the other sections', in `Config::validate`).
    pub(super) fn positive_settings(&self) -> [(&'static str, u64); 10] {
        [
            (
                "tenancy.moves.copy_timeout_secs",
                self.moves.copy_timeout_secs,
            ),
            ("tenancy.cache.max_entries", self.cache.max_entries),
            ("tenancy.cache.ttl_secs", self.cache.ttl_secs),
            (
                "tenancy.cache.negative_ttl_secs",
                self.cache.negative_ttl_secs,
            ),
            ("tenancy.cache.redis_ttl_secs", self.cache.redis_ttl_secs),
            (
                "tenancy.cache.redis_timeout_ms",
                self.cache.redis_timeout_ms,
            ),
            (
                "tenancy.pools.max_connections_per_tenant",
                self.pools.max_connections_per_tenant as u64,
            ),
            ("tenancy.pools.max_resident", self.pools.max_resident as u64),
            (
                "tenancy.pools.idle_timeout_secs",
                self.pools.idle_timeout_secs,
            ),
            (
                "tenancy.pools.acquire_timeout_ms",
                self.pools.acquire_timeout_ms,
            ),
        ]
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        use crate::tenancy::settings;

        let tenancy = self;
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
        if !tenancy.plans.contains(&tenancy.default_plan) {
            problem(
                "tenancy.default_plan",
                format!("{:?} is not one of tenancy.plans", tenancy.default_plan),
                "one of tenancy.plans",
            );
        }
        for (key, value, check) in [
            (
                "tenancy.default_locale",
                &tenancy.default_locale,
                settings::check_locale as fn(&str) -> Result<(), settings::InvalidSetting>,
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
                problem(
                    key,
                    why.to_string(),
                    "a value such as the documented default",
                );
            }
        }
        if tenancy.provision_max_attempts < 1 {
            problem(
                "tenancy.provision_max_attempts",
                format!("is {}", tenancy.provision_max_attempts),
                "at least 1",
            );
        }
        // Replicas whose invalidation message was lost keep reading a moved tenant from its old server until
        // their cached tenant expires: the old database must outlive that.
        if tenancy.moves.drop_source_after_secs < tenancy.cache.ttl_secs {
            problem(
                "tenancy.moves.drop_source_after_secs",
                format!(
                    "{} is below tenancy.cache.ttl_secs ({})",
                    tenancy.moves.drop_source_after_secs, tenancy.cache.ttl_secs
                ),
                "at least tenancy.cache.ttl_secs",
            );
        }
        if tenancy.moves.pg_restore_path.trim().is_empty() {
            problem(
                "tenancy.moves.pg_restore_path",
                "is empty".into(),
                "a program name such as \"pg_restore\" or a full path",
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

    /// `clerk` registration verifies Clerk sessions and reads the caller's Clerk user: Clerk must be configured.
    pub(super) fn validate_self_service(
        &self,
        clerk: &super::ClerkConfig,
        problem: &mut impl FnMut(&str, String, &str),
    ) {
        if self.self_service == SelfService::Clerk && !clerk.enabled() {
            problem(
                "tenancy.self_service",
                "is \"clerk\" but Clerk is not configured (clerk.secret_key is empty)".into(),
                "clerk.secret_key set, or \"off\" / \"open\"",
            );
        }
    }
}
