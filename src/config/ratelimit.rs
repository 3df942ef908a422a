//! `[rate_limits]`: the request limits of tenant routes (per plan) and of the public routes (per client IP),
//! with their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The name under `rate_limits.plans` used for plans that have no table of their own.
pub const DEFAULT_PLAN: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Off: nothing is ever refused for rate and no `RateLimit-*` headers are sent.
    pub enabled: bool,
    /// Share of every limit one process enforces on its own while Redis is not configured or unavailable.
    pub local_share: f64,
    /// Timeout of one limiter round trip to Redis; a slower answer falls back to the local limiter.
    pub redis_timeout_ms: u64,
    /// Share of a tenant limit's burst one replica takes from Redis per round trip and then decides in
    /// process (src/ratelimit/lease.rs); 0: every tenant request asks Redis.
    pub lease_share: f64,
    /// How long a replica may hold a lease before its unused requests go back to Redis.
    pub lease_ms: u64,
    /// Per tenant, by `tenant.plan`; `default` for plans without a table.
    pub plans: BTreeMap<String, RateRule>,
    /// `POST /api/auth/register-organization`, per client IP.
    pub registration: RateRule,
    /// `POST /api/auth/register-organization`, all clients together.
    pub registration_global: RateRule,
    /// `GET /api/auth/provisioning-status/{id}`, per client IP.
    pub provisioning_status: RateRule,
    /// `POST /api/embedded/session` and `POST /api/embedded/standalone`, per client IP.
    pub session_minting: RateRule,
}

/// A sustained rate and the burst allowed on top of an idle period (GCRA: `burst` requests at once, then one
/// every `60 / requests_per_minute` seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub requests_per_minute: u32,
    pub burst: u32,
}

impl RateLimitsConfig {
    /// The tenant limit of `plan`.
    pub fn plan(&self, plan: &str) -> RateRule {
        self.plans
            .get(plan)
            .or_else(|| self.plans.get(DEFAULT_PLAN))
            .copied()
            // Validation requires a `default` table; this only keeps a hand-built config from panicking.
            .unwrap_or(RateRule {
                requests_per_minute: 600,
                burst: 120,
            })
    }

    pub(super) fn validate(&self, plans: &[String], problem: &mut impl FnMut(&str, String, &str)) {
        if !(self.local_share > 0.0 && self.local_share <= 1.0) {
            problem(
                "rate_limits.local_share",
                format!("is {}", self.local_share),
                "a share above 0 and at most 1 (e.g. 0.5 with two replicas)",
            );
        }
        if self.redis_timeout_ms == 0 || self.redis_timeout_ms > 5_000 {
            problem(
                "rate_limits.redis_timeout_ms",
                format!("is {}", self.redis_timeout_ms),
                "1 to 5000 milliseconds",
            );
        }
        if !(0.0..=0.5).contains(&self.lease_share) {
            problem(
                "rate_limits.lease_share",
                format!("is {}", self.lease_share),
                "0 (no leases) to 0.5 of a burst (e.g. 0.1)",
            );
        }
        if self.lease_ms == 0 || self.lease_ms > 60_000 {
            problem(
                "rate_limits.lease_ms",
                format!("is {}", self.lease_ms),
                "1 to 60000 milliseconds",
            );
        }
        if !self.plans.contains_key(DEFAULT_PLAN) {
            problem(
                "rate_limits.plans",
                "has no `default` table".into(),
                "[rate_limits.plans.default] for plans without a table of their own",
            );
        }
        for name in self.plans.keys() {
            if name != DEFAULT_PLAN && !plans.contains(name) {
                problem(
                    &format!("rate_limits.plans.{name}"),
                    format!("names a plan that is not in tenancy.plans {plans:?}"),
                    "one table per plan of tenancy.plans, plus `default`",
                );
            }
        }
        let rules = self
            .plans
            .iter()
            .map(|(name, rule)| (format!("rate_limits.plans.{name}"), *rule))
            .chain([
                ("rate_limits.registration".to_owned(), self.registration),
                (
                    "rate_limits.registration_global".to_owned(),
                    self.registration_global,
                ),
                (
                    "rate_limits.provisioning_status".to_owned(),
                    self.provisioning_status,
                ),
                (
                    "rate_limits.session_minting".to_owned(),
                    self.session_minting,
                ),
            ]);
        for (key, rule) in rules {
            for (field, value) in [
                ("requests_per_minute", rule.requests_per_minute),
                ("burst", rule.burst),
            ] {
                if value == 0 {
                    problem(
                        &format!("{key}.{field}"),
                        "is 0".into(),
                        "a positive number",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, super::super::ConfigError> {
        Config::load_from(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn every_plan_has_a_limit_and_unknown_plans_get_the_default() {
        let config = load(&[]).expect("defaults load");
        let limits = &config.rate_limits;
        assert!(limits.enabled);
        for plan in &config.tenancy.plans {
            assert!(limits.plans.contains_key(plan), "{plan}");
        }
        assert_eq!(limits.plan("no-such-plan"), limits.plans["default"]);
        assert!(
            limits.plan("enterprise").requests_per_minute > limits.plan("free").requests_per_minute
        );
    }

    #[test]
    fn a_table_for_an_unknown_plan_and_a_bad_share_are_refused() {
        let error = load(&[
            (
                "WOSOOL_RATE_LIMITS__PLANS__PLATINUM__REQUESTS_PER_MINUTE",
                "10",
            ),
            ("WOSOOL_RATE_LIMITS__PLANS__PLATINUM__BURST", "5"),
            ("WOSOOL_RATE_LIMITS__LOCAL_SHARE", "1.5"),
            ("WOSOOL_RATE_LIMITS__REGISTRATION__BURST", "0"),
        ])
        .expect_err("invalid");
        let text = error.to_string();
        assert!(text.contains("rate_limits.plans.platinum"), "{text}");
        assert!(text.contains("rate_limits.local_share"), "{text}");
        assert!(text.contains("rate_limits.registration.burst"), "{text}");
    }
}
