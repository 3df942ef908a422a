//! The in-process limiter: the same GCRA with the TATs in a bounded in-memory map. Used when Redis is not
//! configured, and while it is unavailable, with limits scaled by `rate_limits.local_share`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;

use super::LimitKey;
use super::gcra::{self, Decision, Quota};

/// At most this many keys are tracked; the least recently used go first (a dropped key starts idle, which
/// errs toward allowing, never toward refusing).
const MAX_KEYS: u64 = 100_000;

/// The store's notion of now, in microseconds on a monotonic scale (tests step it by hand).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
pub struct LocalStore {
    tats: Cache<LimitKey, Arc<Mutex<Option<i64>>>>,
    clock: Clock,
}

impl LocalStore {
    /// `idle`: how long an untouched key is kept; at least the longest time a TAT can stay ahead of now
    /// (burst × interval of the slowest rule), so eviction never forgets a key that is still limited.
    pub fn new(idle: Duration) -> Self {
        let started = Instant::now();
        Self::with_clock(idle, Arc::new(move || started.elapsed().as_micros() as i64))
    }

    pub fn with_clock(idle: Duration, clock: Clock) -> Self {
        Self {
            tats: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_idle(idle)
                .build(),
            clock,
        }
    }

    /// Checks every key of one request; stores the new TATs only when all allow (as the Redis script does).
    pub async fn check(&self, limits: &[(LimitKey, Quota)]) -> Vec<Decision> {
        let mut cells = Vec::with_capacity(limits.len());
        for (key, _) in limits {
            cells.push(
                self.tats
                    .get_with_by_ref(key, async { Arc::new(Mutex::new(None)) })
                    .await,
            );
        }
        // Locked in key order, so two requests sharing keys can never wait on each other in a cycle.
        let mut order: Vec<usize> = (0..limits.len()).collect();
        order.sort_by(|&a, &b| limits[a].0.cmp(&limits[b].0));
        let mut guards: Vec<Option<MutexGuard<'_, Option<i64>>>> =
            (0..limits.len()).map(|_| None).collect();
        for index in order {
            guards[index] = Some(cells[index].lock().unwrap_or_else(PoisonError::into_inner));
        }
        let now = (self.clock)();
        let checked: Vec<(Decision, i64)> = guards
            .iter()
            .zip(limits)
            .map(|(guard, (_, quota))| gcra::check(quota, guard.as_deref().copied().flatten(), now))
            .collect();
        if checked.iter().all(|(decision, _)| decision.allowed) {
            for (guard, (_, tat)) in guards.iter_mut().zip(&checked) {
                if let Some(guard) = guard {
                    **guard = Some(*tat);
                }
            }
        }
        checked.into_iter().map(|(decision, _)| decision).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::config::RateRule;
    use crate::ratelimit::IpRule;

    fn quota(requests_per_minute: u32, burst: u32) -> Quota {
        Quota::new(
            RateRule {
                requests_per_minute,
                burst,
            },
            1.0,
        )
    }

    fn store() -> (LocalStore, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(0));
        let clock = now.clone();
        let store = LocalStore::with_clock(
            Duration::from_secs(60),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        );
        (store, now)
    }

    #[tokio::test]
    async fn keys_are_limited_separately_and_refill_with_the_clock() {
        let (store, now) = store();
        let a = LimitKey::Tenant(crate::tenancy::TenantId::new());
        let b = LimitKey::Tenant(crate::tenancy::TenantId::new());
        let q = quota(60, 2);
        for _ in 0..2 {
            assert!(store.check(&[(a.clone(), q)]).await[0].allowed);
        }
        let refused = store.check(&[(a.clone(), q)]).await[0];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs(), 1);
        assert!(store.check(&[(b, q)]).await[0].allowed, "b is untouched");
        now.store(1_000_000, Ordering::SeqCst);
        assert!(
            store.check(&[(a, q)]).await[0].allowed,
            "one more after 1 s"
        );
    }

    #[tokio::test]
    async fn a_request_refused_by_one_key_costs_the_others_nothing() {
        let (store, _) = store();
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let per_ip = (LimitKey::Ip(IpRule::Registration, Some(ip)), quota(60, 5));
        let global = (LimitKey::RegistrationGlobal, quota(60, 1));
        let first = store.check(&[per_ip.clone(), global.clone()]).await;
        assert!(first.iter().all(|d| d.allowed));
        let second = store.check(&[per_ip.clone(), global]).await;
        assert!(second[0].allowed && !second[1].allowed);
        // The per-IP key was not charged for the refused request: 4 of 5 left, not 3.
        let alone = store.check(&[per_ip]).await;
        assert_eq!(alone[0].remaining, 3);
    }
}
