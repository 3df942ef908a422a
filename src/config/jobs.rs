//! `[jobs]`: the background job workers, retries and retention, with their validation.

use serde::{Deserialize, Serialize};

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

impl JobsConfig {
    /// Settings that must not be 0 (checked with the other sections', in `Config::validate`).
    pub(super) fn positive_settings(&self) -> [(&'static str, u64); 6] {
        [
            ("jobs.concurrency", self.concurrency as u64),
            ("jobs.poll_interval_ms", self.poll_interval_ms),
            ("jobs.lease_secs", self.lease_secs),
            ("jobs.retry_base_ms", self.retry_base_ms),
            ("jobs.prune_interval_secs", self.prune_interval_secs),
            ("jobs.stats_interval_secs", self.stats_interval_secs),
        ]
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if self.default_max_attempts < 1 {
            problem(
                "jobs.default_max_attempts",
                format!("is {}", self.default_max_attempts),
                "at least 1",
            );
        }
        if self.retry_max_secs * 1000 < self.retry_base_ms {
            problem(
                "jobs.retry_max_secs",
                "is below jobs.retry_base_ms".into(),
                "a cap no smaller than the base delay",
            );
        }
    }
}
