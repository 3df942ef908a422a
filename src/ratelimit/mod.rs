//! Request rate limits (docs/security.md, "Rate limits"): per tenant on every tenant route, by plan (checked by
//! `TenantContext`), and per client IP on the public routes (a route layer, `http.rs`).
//!
//! One GCRA (`gcra.rs`) in two stores: Redis (`redis_store.rs`, one atomic script, shared by every replica)
//! and in process (`local_store.rs`). The local store decides when Redis is not configured, and while it fails
//! or is slow, with each limit scaled by `rate_limits.local_share` so that the replicas together stay near
//! the limit. A Redis problem never fails a request: it costs at most one `redis_timeout_ms`, after which the
//! local store alone decides for a second before Redis is tried again.

mod gcra;
pub mod http;
mod lease;
mod local_store;
mod redis_store;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::Counter;

pub use self::gcra::{Decision, Quota};
use self::lease::{Leases, Take};
use self::local_store::LocalStore;
use self::redis_store::{Ask, RedisStore};
use crate::config::{DEFAULT_PLAN, RateLimitsConfig, RateRule};
use crate::error::ApiError;
use crate::redis::Redis;
use crate::tenancy::{Tenant, TenantId};

/// After Redis fails, the local store alone decides this long before Redis is tried again.
const REDIS_RETRY: Duration = Duration::from_secs(1);

/// The public routes limited per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpRule {
    /// `POST /api/auth/register-organization` (also under the global registration cap).
    Registration,
    /// `GET /api/auth/provisioning-status/{id}`.
    ProvisioningStatus,
    /// `POST /api/embedded/session`, `POST /api/embedded/standalone`.
    SessionMinting,
}

impl IpRule {
    pub fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::ProvisioningStatus => "provisioning_status",
            Self::SessionMinting => "session_minting",
        }
    }
}

/// What a limit counts, by construction: a tenant, a client IP for one rule (`None` when the request did not
/// come through a socket), or all registrations together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKey {
    Tenant(TenantId),
    Ip(IpRule, Option<IpAddr>),
    RegistrationGlobal,
}

impl LimitKey {
    /// The Redis key, below the deployment's prefix (`Redis::key`).
    fn redis_suffix(&self) -> String {
        match self {
            Self::Tenant(id) => format!("ratelimit:tenant:{id}"),
            Self::Ip(rule, Some(ip)) => format!("ratelimit:ip:{}:{ip}", rule.name()),
            Self::Ip(rule, None) => format!("ratelimit:ip:{}:unknown", rule.name()),
            Self::RegistrationGlobal => "ratelimit:global:registration".into(),
        }
    }
}

/// A configured limit with its decision counters (handles taken once: no registry lookup per request).
struct Limit {
    /// The `limit` a refusal names (`tenant`, `registration`, …).
    name: &'static str,
    rule: RateRule,
    allowed: Counter,
    limited: Counter,
}

impl Limit {
    fn new(scope: &'static str, name: &'static str, label: &str, rule: RateRule) -> Self {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                "rate_limit_decisions_total",
                "scope" => scope,
                "rule" => label.to_owned(),
                "outcome" => outcome,
            )
        };
        Self {
            name,
            rule,
            allowed: counter("allowed"),
            limited: counter("limited"),
        }
    }

    fn count(&self, decision: &Decision) {
        if decision.allowed {
            self.allowed.increment(1);
        } else {
            self.limited.increment(1);
        }
    }
}

/// The one limiter of a process (cheap to clone).
#[derive(Clone)]
pub struct RateLimiter(Arc<Inner>);

struct Inner {
    enabled: bool,
    local_share: f64,
    plans: HashMap<String, Limit>,
    default_plan: Limit,
    registration: Limit,
    registration_global: Limit,
    provisioning_status: Limit,
    session_minting: Limit,
    redis: Option<RedisStore>,
    leases: Leases,
    local: LocalStore,
    health: Health,
}

impl RateLimiter {
    /// The limiter of `config`, shared through `redis` when there is one.
    pub fn new(config: &RateLimitsConfig, redis: Option<Redis>) -> Self {
        Self::with_local(config, redis, None)
    }

    fn with_local(
        config: &RateLimitsConfig,
        redis: Option<Redis>,
        local: Option<LocalStore>,
    ) -> Self {
        // Counter handles taken before the recorder exists would record nothing, forever.
        crate::telemetry::metrics_handle();
        let plans = config
            .plans
            .iter()
            .filter(|(name, _)| name.as_str() != DEFAULT_PLAN)
            .map(|(name, rule)| (name.clone(), Limit::new("tenant", "tenant", name, *rule)))
            .collect();
        let longest = config
            .plans
            .values()
            .chain([
                &config.registration,
                &config.registration_global,
                &config.provisioning_status,
                &config.session_minting,
            ])
            .map(|rule| {
                let quota = Quota::new(*rule, 1.0);
                quota.tolerance_us + quota.interval_us
            })
            .max()
            .unwrap_or(0);
        let idle = Duration::from_micros(longest as u64)
            .clamp(Duration::from_secs(60), Duration::from_secs(24 * 3600));
        let health = Health::new(redis.is_some());
        Self(Arc::new(Inner {
            enabled: config.enabled,
            local_share: config.local_share,
            plans,
            default_plan: Limit::new("tenant", "tenant", DEFAULT_PLAN, config.plan(DEFAULT_PLAN)),
            registration: Limit::new("ip", "registration", "registration", config.registration),
            registration_global: Limit::new(
                "global",
                "registration_global",
                "registration_global",
                config.registration_global,
            ),
            provisioning_status: Limit::new(
                "ip",
                "provisioning_status",
                "provisioning_status",
                config.provisioning_status,
            ),
            session_minting: Limit::new(
                "ip",
                "session_minting",
                "session_minting",
                config.session_minting,
            ),
            redis: redis.map(|redis| {
                RedisStore::new(redis, Duration::from_millis(config.redis_timeout_ms))
            }),
            leases: Leases::new(config.lease_share, Duration::from_millis(config.lease_ms)),
            local: local.unwrap_or_else(|| LocalStore::new(idle)),
            health,
        }))
    }

    /// Counts a request of `tenant` against its plan's limit. The decision also goes on the response
    /// (`RateLimit-*` headers, by [`http::response_headers`]); a refusal is 429 `rate_limited`.
    pub async fn check_tenant(&self, tenant: &Tenant) -> Result<(), ApiError> {
        if !self.0.enabled {
            return Ok(());
        }
        let limit = self
            .0
            .plans
            .get(&tenant.plan)
            .unwrap_or(&self.0.default_plan);
        let decided = Decided(limit.name, self.tenant_decision(tenant.id, limit).await);
        limit.count(&decided.1);
        http::remember(decided.1);
        decided.into_result()
    }

    /// A tenant's request: from this replica's lease of the tenant's allowance when it holds one, else from
    /// Redis (taking the next lease), else from the local store.
    async fn tenant_decision(&self, tenant: TenantId, limit: &Limit) -> Decision {
        let inner = &self.0;
        if let Some(redis) = &inner.redis
            && inner.health.should_try()
        {
            let quota = Quota::new(limit.rule, 1.0);
            let ask = match inner.leases.take(tenant, &quota, Instant::now()) {
                Take::Leased(decision) => return decision,
                Take::Ask { want, refund } => Ask { want, refund },
            };
            match redis.check(&[(LimitKey::Tenant(tenant), quota, ask)]).await {
                Ok(answer) => {
                    inner.health.succeeded();
                    let (decision, granted) = answer[0];
                    return inner
                        .leases
                        .granted(tenant, &quota, granted, decision, Instant::now());
                }
                Err(error) => inner.health.failed(&error),
            }
        }
        self.local_decisions(&[(LimitKey::Tenant(tenant), limit)])
            .await
            .remove(0)
    }

    /// Counts a request from `ip` against `rule` (and registrations against the global cap too). The
    /// decision to put on the response, `None` when limits are off.
    pub async fn check_ip(
        &self,
        rule: IpRule,
        ip: Option<IpAddr>,
    ) -> Result<Option<Decision>, ApiError> {
        if !self.0.enabled {
            return Ok(None);
        }
        let key = LimitKey::Ip(rule, ip);
        let inner = &self.0;
        let decided = match rule {
            IpRule::Registration => {
                self.decide(&[
                    (key, &inner.registration),
                    (LimitKey::RegistrationGlobal, &inner.registration_global),
                ])
                .await
            }
            IpRule::ProvisioningStatus => self.decide(&[(key, &inner.provisioning_status)]).await,
            IpRule::SessionMinting => self.decide(&[(key, &inner.session_minting)]).await,
        };
        let decision = decided.1;
        decided.into_result().map(|()| Some(decision))
    }

    /// Decides every key of one request in one round trip; the decision reported is the refusal with the
    /// longest wait, or else the limit with the fewest requests left.
    async fn decide(&self, limits: &[(LimitKey, &Limit)]) -> Decided {
        let decisions = self.decisions(limits).await;
        for ((_, limit), decision) in limits.iter().zip(&decisions) {
            limit.count(decision);
        }
        let (index, decision) = decisions
            .iter()
            .enumerate()
            .max_by_key(|(_, d)| {
                if d.allowed {
                    (false, 0, -i64::from(d.remaining))
                } else {
                    (true, d.retry_after_us, 0)
                }
            })
            .map(|(i, d)| (i, *d))
            .expect("at least one limit");
        Decided(limits[index].1.name, decision)
    }

    async fn decisions(&self, limits: &[(LimitKey, &Limit)]) -> Vec<Decision> {
        let inner = &self.0;
        if let Some(redis) = &inner.redis
            && inner.health.should_try()
        {
            let quotas: Vec<(LimitKey, Quota, Ask)> = limits
                .iter()
                .map(|(key, limit)| (key.clone(), Quota::new(limit.rule, 1.0), Ask::ONE))
                .collect();
            match redis.check(&quotas).await {
                Ok(decisions) => {
                    inner.health.succeeded();
                    return decisions
                        .into_iter()
                        .map(|(decision, _)| decision)
                        .collect();
                }
                Err(error) => inner.health.failed(&error),
            }
        }
        self.local_decisions(limits).await
    }

    /// The local store's decisions, at `rate_limits.local_share` of each limit.
    async fn local_decisions(&self, limits: &[(LimitKey, &Limit)]) -> Vec<Decision> {
        let inner = &self.0;
        if inner.redis.is_some() {
            metrics::counter!("rate_limit_fallback_total").increment(1);
        }
        let quotas: Vec<(LimitKey, Quota)> = limits
            .iter()
            .map(|(key, limit)| (key.clone(), Quota::new(limit.rule, inner.local_share)))
            .collect();
        inner.local.check(&quotas).await
    }
}

/// The reported decision of a request and the name of its limit.
struct Decided(&'static str, Decision);

impl Decided {
    fn into_result(self) -> Result<(), ApiError> {
        if self.1.allowed {
            Ok(())
        } else {
            Err(ApiError::RateLimited {
                limit: self.0,
                decision: self.1,
            })
        }
    }
}

/// Whether Redis is usable, with one log line per change (not one per request) and the
/// `rate_limit_redis_unavailable` gauge.
struct Health {
    down: AtomicBool,
    /// While down: when (ms since `started`) Redis may be tried again; one request claims each try.
    retry_at_ms: AtomicU64,
    started: Instant,
}

impl Health {
    fn new(configured: bool) -> Self {
        if configured {
            metrics::gauge!("rate_limit_redis_unavailable").set(0.0);
        }
        Self {
            down: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Up: always. Down: once per `REDIS_RETRY`, by whichever request claims the try.
    fn should_try(&self) -> bool {
        if !self.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.now_ms();
        let retry_at = self.retry_at_ms.load(Ordering::Relaxed);
        now >= retry_at
            && self
                .retry_at_ms
                .compare_exchange(
                    retry_at,
                    now + REDIS_RETRY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn succeeded(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            metrics::gauge!("rate_limit_redis_unavailable").set(0.0);
            tracing::info!("rate limits are shared through Redis again");
        }
    }

    fn failed(&self, error: &redis_store::StoreError) {
        self.retry_at_ms.store(
            self.now_ms() + REDIS_RETRY.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.down.swap(true, Ordering::Relaxed) {
            metrics::gauge!("rate_limit_redis_unavailable").set(1.0);
            tracing::warn!(%error, "Redis is unavailable for rate limits; each process now enforces its local share");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;
    use crate::config::Config;

    fn limiter(env: &[(&str, &str)]) -> (RateLimiter, Arc<AtomicI64>) {
        let config = Config::load_from(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("config");
        let now = Arc::new(AtomicI64::new(0));
        let clock = now.clone();
        let local = LocalStore::with_clock(
            Duration::from_secs(60),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        );
        (
            RateLimiter::with_local(&config.rate_limits, None, Some(local)),
            now,
        )
    }

    #[tokio::test]
    async fn registration_is_limited_per_ip_and_globally_with_the_local_share() {
        let (limiter, now) = limiter(&[
            ("WOSOOL_RATE_LIMITS__LOCAL_SHARE", "0.5"),
            ("WOSOOL_RATE_LIMITS__REGISTRATION__BURST", "4"),
            (
                "WOSOOL_RATE_LIMITS__REGISTRATION__REQUESTS_PER_MINUTE",
                "60",
            ),
            ("WOSOOL_RATE_LIMITS__REGISTRATION_GLOBAL__BURST", "6"),
        ]);
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        // Half of the burst of 4 per IP without Redis.
        for _ in 0..2 {
            let decision = limiter
                .check_ip(IpRule::Registration, a)
                .await
                .expect("allowed");
            assert_eq!(decision.expect("limits on").limit, 2);
        }
        let Err(ApiError::RateLimited { limit, decision }) =
            limiter.check_ip(IpRule::Registration, a).await
        else {
            panic!("the third is refused");
        };
        assert_eq!(limit, "registration");
        assert_eq!(decision.retry_after_secs(), 2, "half the rate: one per 2 s");
        // Another IP has its own allowance, until the global cap (half of 6) is used up.
        assert!(limiter.check_ip(IpRule::Registration, b).await.is_ok());
        let Err(ApiError::RateLimited { limit, .. }) =
            limiter.check_ip(IpRule::Registration, b).await
        else {
            panic!("the global cap is reached");
        };
        assert_eq!(limit, "registration_global");
        now.store(60_000_000, Ordering::SeqCst);
        assert!(limiter.check_ip(IpRule::Registration, a).await.is_ok());
    }

    #[tokio::test]
    async fn nothing_is_limited_when_limits_are_off() {
        let (limiter, _) = limiter(&[
            ("WOSOOL_RATE_LIMITS__ENABLED", "false"),
            ("WOSOOL_RATE_LIMITS__SESSION_MINTING__BURST", "1"),
        ]);
        for _ in 0..5 {
            assert_eq!(
                limiter
                    .check_ip(IpRule::SessionMinting, None)
                    .await
                    .expect("allowed"),
                None
            );
        }
    }
}
