//! GCRA (the generic cell rate algorithm): one timestamp per limited key, the theoretical arrival time (TAT)
//! of the next request at the sustained rate. A request at `now` is allowed when `TAT + interval - tolerance`
//! is not in the future, and then moves TAT one interval on. `tolerance = burst × interval`, so an idle key
//! takes `burst` requests at once and then one per interval. The Redis script (`redis_store.rs`) runs exactly
//! this arithmetic on Redis's clock; the local store runs it here. Times are microseconds.

use std::time::Duration;

use crate::config::RateRule;

const MICROS_PER_MINUTE: f64 = 60_000_000.0;

/// A rule in the algorithm's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time between two requests at the sustained rate.
    pub interval_us: i64,
    /// How far ahead of `now` the TAT may run: `burst × interval`.
    pub tolerance_us: i64,
    pub burst: u32,
}

impl Quota {
    /// `rule`, scaled by `share` (1.0: the whole limit; the local fallback uses `rate_limits.local_share`).
    /// Both the rate and the burst shrink; neither below one request.
    pub fn new(rule: RateRule, share: f64) -> Self {
        let per_minute = (f64::from(rule.requests_per_minute) * share).max(1.0);
        let burst = ((f64::from(rule.burst) * share).round() as u32).max(1);
        let interval_us = (MICROS_PER_MINUTE / per_minute).round().max(1.0) as i64;
        Self {
            interval_us,
            tolerance_us: interval_us * i64::from(burst),
            burst,
        }
    }
}

/// The answer for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The burst: what `remaining` is when the key is idle (`RateLimit-Limit`).
    pub limit: u32,
    pub remaining: u32,
    /// Until the request would be allowed (0 when it is).
    pub retry_after_us: i64,
    /// Until the key is idle again, i.e. `remaining == limit` (`RateLimit-Reset`).
    pub reset_after_us: i64,
}

impl Decision {
    /// From what the algorithm (here or in Redis) computed: whether it allowed, the wait, and the TAT after the
    /// decision relative to `now`.
    pub fn from_parts(
        quota: &Quota,
        allowed: bool,
        retry_after_us: i64,
        reset_after_us: i64,
    ) -> Self {
        let reset_after_us = reset_after_us.max(0);
        let remaining = if allowed {
            ((quota.tolerance_us - reset_after_us).max(0) / quota.interval_us) as u32
        } else {
            0
        };
        Self {
            allowed,
            limit: quota.burst,
            remaining: remaining.min(quota.burst),
            retry_after_us: retry_after_us.max(0),
            reset_after_us,
        }
    }

    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after_us).max(1)
    }

    /// `RateLimit-Reset` in whole seconds, rounded up.
    pub fn reset_secs(&self) -> u64 {
        ceil_secs(self.reset_after_us)
    }

    pub fn retry_after(&self) -> Duration {
        Duration::from_micros(self.retry_after_us as u64)
    }
}

fn ceil_secs(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000)
}

/// One key's check at `now` against its stored TAT: the decision, and the TAT to store when every key of the
/// request allows (nothing is stored when any refuses, so a refused request costs no one anything).
pub fn check(quota: &Quota, tat: Option<i64>, now: i64) -> (Decision, i64) {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + quota.interval_us;
    let allow_at = new_tat - quota.tolerance_us;
    if now < allow_at {
        (
            Decision::from_parts(quota, false, allow_at - now, tat - now),
            tat,
        )
    } else {
        (Decision::from_parts(quota, true, 0, new_tat - now), new_tat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(requests_per_minute: u32, burst: u32) -> Quota {
        Quota::new(
            RateRule {
                requests_per_minute,
                burst,
            },
            1.0,
        )
    }

    /// Runs `n` requests at `now`, storing the TAT as a store would; returns the decisions.
    fn burst_at(quota: &Quota, tat: &mut Option<i64>, now: i64, n: usize) -> Vec<Decision> {
        (0..n)
            .map(|_| {
                let (decision, new_tat) = check(quota, *tat, now);
                if decision.allowed {
                    *tat = Some(new_tat);
                }
                decision
            })
            .collect()
    }

    #[test]
    fn an_idle_key_takes_the_burst_at_once_then_is_refused() {
        let q = quota(60, 5);
        let mut tat = None;
        let decisions = burst_at(&q, &mut tat, 1_000_000, 6);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        assert!(decisions[..5].iter().all(|d| d.allowed && d.limit == 5));
        let refused = decisions[5];
        assert!(!refused.allowed);
        // One request per second: the next is allowed one second after the burst.
        assert_eq!(refused.retry_after_us, 1_000_000);
        assert_eq!(refused.retry_after_secs(), 1);
        // Fully idle again after the five intervals the burst used.
        assert_eq!(refused.reset_secs(), 5);
    }

    #[test]
    fn the_steady_rate_is_one_request_per_interval() {
        let q = quota(120, 1); // one every 0.5 s
        let mut tat = None;
        let mut allowed = 0;
        // Ten seconds of requests every 100 ms: 100 tries, 20 allowed at two per second.
        for step in 0..100 {
            let now = step * 100_000;
            allowed += burst_at(&q, &mut tat, now, 1)
                .iter()
                .filter(|d| d.allowed)
                .count();
        }
        assert_eq!(allowed, 20);
    }

    #[test]
    fn retry_after_is_exact_and_waiting_it_out_is_enough() {
        let q = quota(6, 2); // one every 10 s
        let mut tat = None;
        burst_at(&q, &mut tat, 0, 2);
        let refused = burst_at(&q, &mut tat, 3_000_000, 1)[0];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_us, 7_000_000);
        assert_eq!(refused.retry_after_secs(), 7);
        let just_before = burst_at(&q, &mut tat, 9_999_999, 1)[0];
        assert!(!just_before.allowed);
        assert_eq!(just_before.retry_after_secs(), 1, "never 0");
        let after = burst_at(&q, &mut tat, 10_000_000, 1)[0];
        assert!(after.allowed);
        assert_eq!(after.remaining, 0);
    }

    #[test]
    fn a_refused_request_does_not_push_the_next_allowed_time() {
        let q = quota(60, 1);
        let mut tat = None;
        burst_at(&q, &mut tat, 0, 1);
        let stored = tat;
        burst_at(&q, &mut tat, 500_000, 50);
        assert_eq!(tat, stored);
        assert!(burst_at(&q, &mut tat, 1_000_000, 1)[0].allowed);
    }

    #[test]
    fn the_local_share_scales_rate_and_burst_but_never_below_one() {
        let rule = RateRule {
            requests_per_minute: 600,
            burst: 100,
        };
        let half = Quota::new(rule, 0.5);
        assert_eq!(half.burst, 50);
        assert_eq!(half.interval_us, 200_000);
        let tiny = Quota::new(
            RateRule {
                requests_per_minute: 1,
                burst: 1,
            },
            0.1,
        );
        assert_eq!(tiny.burst, 1);
        assert_eq!(tiny.interval_us, 60_000_000);
    }
}
