//! `[audit]`, `[maintenance]` and `[impersonation]`: the audit trail's retention, the default of global
//! maintenance mode, and the bounds of operator impersonation.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries of the global audit log older than this are deleted.
    pub retention_days: u64,
    /// Entries of each tenant's audit log older than this are deleted.
    pub tenant_retention_days: u64,
    /// How often the retention job runs.
    pub prune_interval_secs: u64,
    /// Rows deleted per statement (short transactions, no long locks).
    pub prune_batch: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Maintenance at start, until an operator switches it (`POST /api/admin/maintenance`); the switch, stored
    /// in the global database, wins over this.
    pub enabled: bool,
    /// Shown to callers while on (empty: a generic message).
    pub message: String,
    /// `Retry-After` of the 503s.
    pub retry_after_secs: u64,
    /// How long a replica trusts its copy of the switch (a change reaches every replica within this).
    pub cache_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpersonationConfig {
    /// Longest session an operator may ask for.
    pub max_ttl_secs: u64,
    /// Session length when the request names none.
    pub default_ttl_secs: u64,
    /// How long the single-use link stays valid.
    pub ticket_ttl_secs: u64,
}

impl AuditConfig {
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        for (key, value) in [
            ("audit.retention_days", self.retention_days),
            ("audit.tenant_retention_days", self.tenant_retention_days),
            ("audit.prune_interval_secs", self.prune_interval_secs),
            ("audit.prune_batch", self.prune_batch),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
        if self.retention_days > 36_500 || self.tenant_retention_days > 36_500 {
            problem(
                "audit.retention_days",
                "is over 100 years".into(),
                "a number of days up to 36500",
            );
        }
    }
}

impl MaintenanceConfig {
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if !(1..=86_400).contains(&self.retry_after_secs) {
            problem(
                "maintenance.retry_after_secs",
                format!("is {}", self.retry_after_secs),
                "1 to 86400 seconds",
            );
        }
        if self.cache_secs > 60 {
            problem(
                "maintenance.cache_secs",
                format!("is {}", self.cache_secs),
                "at most 60 seconds",
            );
        }
        if self.message.chars().count() > 500 {
            problem(
                "maintenance.message",
                "is longer than 500 characters".into(),
                "a short message",
            );
        }
    }
}

impl ImpersonationConfig {
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        for (key, value) in [
            ("impersonation.max_ttl_secs", self.max_ttl_secs),
            ("impersonation.default_ttl_secs", self.default_ttl_secs),
            ("impersonation.ticket_ttl_secs", self.ticket_ttl_secs),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
        if self.max_ttl_secs > 86_400 {
            problem(
                "impersonation.max_ttl_secs",
                format!("is {}", self.max_ttl_secs),
                "at most 86400 seconds",
            );
        }
        if self.default_ttl_secs > self.max_ttl_secs {
            problem(
                "impersonation.default_ttl_secs",
                format!(
                    "is longer than impersonation.max_ttl_secs ({})",
                    self.max_ttl_secs
                ),
                "a default within the maximum",
            );
        }
        if self.ticket_ttl_secs > 600 {
            problem(
                "impersonation.ticket_ttl_secs",
                format!("is {}", self.ticket_ttl_secs),
                "at most 600 seconds",
            );
        }
    }
}
