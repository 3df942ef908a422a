//! Per-replica leases of tenant allowances: a Redis round trip for every request would make the limiter the
//! most expensive part of a tenant request, so a replica asks Redis for a small batch of a tenant's requests
//! at once (`rate_limits.lease_share` of the burst) and decides the rest of the batch in process until it is
//! used up or `rate_limits.lease_ms` has passed.
//!
//! Every request a replica allows was granted by Redis first, so the replicas together never allow more than
//! the limit. The cost is the other way: requests leased by one replica and not yet used are unavailable to
//! the others, at most one lease per replica and tenant, for at most `lease_ms`. Unused requests of an expired
//! lease are returned to Redis with the replica's next request for that tenant (the script credits them),
//! so a quiet tenant is charged only for what it used.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::gcra::{Decision, Quota};
use crate::tenancy::TenantId;

/// Above this many tenants with leases, expired leases are forgotten (their unused requests are then never
/// returned: that errs toward refusing, never toward allowing).
const MAX_LEASES: usize = 10_000;

/// What the replica does with a tenant's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Allowed from the lease, without Redis.
    Leased(Decision),
    /// Ask Redis for `want` requests (this one and the next lease), returning `refund` unused ones.
    Ask { want: u32, refund: u32 },
}

struct Lease {
    quota: Quota,
    /// Requests still leased to this replica.
    left: u32,
    expires: Instant,
    granted_at: Instant,
    /// Redis's `reset_after` when it granted: the TAT, leased requests included, relative to `granted_at`.
    reset_after_us: i64,
}

impl Lease {
    /// The decision of a request allowed with `self.left` requests still leased: the requests that remain are
    /// Redis's plus the ones this replica holds.
    fn decision(&self, now: Instant) -> Decision {
        let elapsed = now.saturating_duration_since(self.granted_at).as_micros() as i64;
        let reset = self.reset_after_us - elapsed - i64::from(self.left) * self.quota.interval_us;
        Decision::from_parts(&self.quota, true, 0, reset)
    }
}

pub struct Leases {
    share: f64,
    ttl: Duration,
    leases: Mutex<HashMap<TenantId, Lease>>,
}

impl Leases {
    /// `share`: of a limit's burst, leased per round trip (0: none, every request asks Redis).
    pub fn new(share: f64, ttl: Duration) -> Self {
        Self {
            share,
            ttl,
            leases: Mutex::new(HashMap::new()),
        }
    }

    fn size(&self, quota: &Quota) -> u32 {
        ((f64::from(quota.burst) * self.share).floor() as u32).max(1)
    }

    /// Takes one request of `tenant` from its lease, or says what to ask Redis for.
    pub fn take(&self, tenant: TenantId, quota: &Quota, now: Instant) -> Take {
        let want = self.size(quota);
        if want <= 1 {
            return Take::Ask { want: 1, refund: 0 };
        }
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lease) = leases.get_mut(&tenant) else {
            return Take::Ask { want, refund: 0 };
        };
        if lease.quota == *quota && lease.left > 0 && now < lease.expires {
            lease.left -= 1;
            return Take::Leased(lease.decision(now));
        }
        // Used up or expired (or the plan changed): whatever is left goes back with the next ask.
        let refund = if lease.quota == *quota { lease.left } else { 0 };
        leases.remove(&tenant);
        Take::Ask { want, refund }
    }

    /// Records what Redis granted for a request of `tenant` (one for the request itself, the rest leased) and
    /// returns the request's decision. A refusal leases nothing.
    pub fn granted(
        &self,
        tenant: TenantId,
        quota: &Quota,
        granted: u32,
        redis_decision: Decision,
        now: Instant,
    ) -> Decision {
        if !redis_decision.allowed || granted <= 1 {
            return redis_decision;
        }
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        if leases.len() >= MAX_LEASES {
            leases.retain(|_, lease| now < lease.expires);
        }
        let lease = leases.entry(tenant).or_insert(Lease {
            quota: *quota,
            left: 0,
            expires: now,
            granted_at: now,
            reset_after_us: 0,
        });
        // Concurrent asks of one replica merge into one lease (the newest answer is the freshest TAT).
        if lease.quota != *quota || now >= lease.expires {
            lease.left = 0;
        }
        lease.quota = *quota;
        lease.left += granted - 1;
        lease.expires = now + self.ttl;
        lease.granted_at = now;
        lease.reset_after_us = redis_decision.reset_after_us;
        lease.decision(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateRule;

    fn quota(burst: u32) -> Quota {
        Quota::new(
            RateRule {
                requests_per_minute: 60,
                burst,
            },
            1.0,
        )
    }

    fn redis_allowed(quota: &Quota, reset_after_us: i64) -> Decision {
        Decision::from_parts(quota, true, 0, reset_after_us)
    }

    #[test]
    fn a_lease_serves_its_requests_then_asks_again() {
        let leases = Leases::new(0.1, Duration::from_secs(1));
        let (tenant, q, now) = (TenantId::new(), quota(100), Instant::now());
        assert_eq!(
            leases.take(tenant, &q, now),
            Take::Ask {
                want: 10,
                refund: 0
            }
        );
        // Redis granted 10 of an idle limit: its TAT is 10 intervals ahead, 90 remain there.
        let first = leases.granted(tenant, &q, 10, redis_allowed(&q, 10 * q.interval_us), now);
        assert_eq!(first.remaining, 99, "Redis's 90 and the 9 leased here");
        let mut remaining = Vec::new();
        for _ in 0..9 {
            match leases.take(tenant, &q, now) {
                Take::Leased(decision) => remaining.push(decision.remaining),
                ask => panic!("{ask:?}"),
            }
        }
        assert_eq!(remaining, [98, 97, 96, 95, 94, 93, 92, 91, 90]);
        assert_eq!(
            leases.take(tenant, &q, now),
            Take::Ask {
                want: 10,
                refund: 0
            }
        );
    }

    #[test]
    fn an_expired_lease_returns_what_it_did_not_use() {
        let leases = Leases::new(0.1, Duration::from_secs(1));
        let (tenant, q, now) = (TenantId::new(), quota(100), Instant::now());
        leases.granted(tenant, &q, 10, redis_allowed(&q, 10 * q.interval_us), now);
        assert!(matches!(leases.take(tenant, &q, now), Take::Leased(_)));
        let later = now + Duration::from_secs(2);
        assert_eq!(
            leases.take(tenant, &q, later),
            Take::Ask {
                want: 10,
                refund: 8
            }
        );
        // Returned once: the lease is gone.
        assert_eq!(
            leases.take(tenant, &q, later),
            Take::Ask {
                want: 10,
                refund: 0
            }
        );
    }

    #[test]
    fn small_limits_and_refusals_lease_nothing() {
        let leases = Leases::new(0.1, Duration::from_secs(1));
        let (tenant, now) = (TenantId::new(), Instant::now());
        let small = quota(9);
        assert_eq!(
            leases.take(tenant, &small, now),
            Take::Ask { want: 1, refund: 0 }
        );
        let q = quota(100);
        let refused = Decision::from_parts(&q, false, 1_000_000, 100 * q.interval_us);
        assert_eq!(leases.granted(tenant, &q, 0, refused, now), refused);
        assert_eq!(
            leases.take(tenant, &q, now),
            Take::Ask {
                want: 10,
                refund: 0
            }
        );
        let off = Leases::new(0.0, Duration::from_secs(1));
        assert_eq!(off.take(tenant, &q, now), Take::Ask { want: 1, refund: 0 });
    }

    #[test]
    fn leases_are_per_tenant() {
        let leases = Leases::new(0.5, Duration::from_secs(1));
        let (a, b, q, now) = (TenantId::new(), TenantId::new(), quota(10), Instant::now());
        leases.granted(a, &q, 5, redis_allowed(&q, 5 * q.interval_us), now);
        assert!(matches!(leases.take(a, &q, now), Take::Leased(_)));
        assert_eq!(leases.take(b, &q, now), Take::Ask { want: 5, refund: 0 });
    }
}
