//! Merchant API rate limits (shared/reference/salla.md §4.1), and the waiting rules every Salla client shares.
//!
//! - **Per store**: Salla limits each store by its plan (Plus 120, Pro 360, Special 720 requests/min). A token
//!   bucket per store, seeded from the plan and corrected from `X-RateLimit-Limit`/`-Remaining`/`-Reset`: when
//!   Salla says nothing remains, we wait until its reset. In process: a store's import runs in one job at a
//!   time, so one replica holds a store's traffic.
//! - **`/customers*`**: 500 requests per 10 minutes per egress IP, across all stores, so across all replicas:
//!   a sliding-window counter in Redis (fixed windows of `INCR` + `EXPIRE`, the previous window weighted by its
//!   overlap), in process when Redis is not configured or fails.
//!
//! [`SallaLimits::unlimited`] turns both off (benchmarks). Backoff and `Retry-After` come from
//! `crate::outbound`, as for every other outbound client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fred::prelude::*;
use reqwest::header::HeaderMap;

use super::api::MerchantId;
use crate::config::SallaConfig;
use crate::redis::Redis;

/// Buckets kept in memory; beyond this, idle (hence full) buckets are dropped and rebuilt on next use.
const MAX_STORES: usize = 10_000;
/// A bucket unused for this long has refilled completely: dropping it loses only its learned limit.
const IDLE_BUCKET: Duration = Duration::from_secs(120);
/// Longest wait a `X-RateLimit-Reset` may impose: Salla's window is a minute, anything longer is clock skew.
const MAX_RESET_WAIT: Duration = Duration::from_secs(60);
/// A 403 this soon after a 429 is Salla's temporary abuse restriction, not a permission problem.
const THROTTLE_MEMORY: Duration = Duration::from_secs(120);
/// Budget of one Redis round trip of the `/customers*` limiter before falling back to in-process counting.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// After a Redis failure, count in process for this long before trying Redis again.
const REDIS_RETRY: Duration = Duration::from_secs(30);

/// The `X-RateLimit-*` headers of one Salla answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// When the window resets, UTC epoch seconds.
    pub reset: Option<u64>,
}

impl RateLimitHeaders {
    /// `None` when the answer carries none of them.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        let parsed = Self {
            limit: number("x-ratelimit-limit").map(saturating_u32),
            remaining: number("x-ratelimit-remaining").map(saturating_u32),
            reset: number("x-ratelimit-reset"),
        };
        (parsed != Self::default()).then_some(parsed)
    }

    /// How long until the reset, seen from `now_unix` (epoch seconds with their fraction: waiting whole seconds
    /// would overshoot the reset by up to one). A small value is read as seconds from now (some gateways send
    /// that); the wait is capped at a minute.
    fn reset_in(&self, now_unix: f64) -> Option<Duration> {
        let reset = self.reset?;
        let secs = if reset < 1_000_000_000 {
            reset as f64
        } else {
            (reset as f64 - now_unix).max(0.0)
        };
        Some(Duration::from_secs_f64(secs).min(MAX_RESET_WAIT))
    }
}

/// Epoch seconds, with their fraction.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// How long a throttled answer (429, or the abuse 403) asks to wait: until `X-RateLimit-Reset` when it says
/// (to the fraction of a second), else `Retry-After` (whole seconds), else `default`.
pub fn throttle_wait(headers: &HeaderMap, default: Duration) -> Duration {
    RateLimitHeaders::from_headers(headers)
        .and_then(|h| h.reset_in(unix_now()))
        .filter(|wait| !wait.is_zero())
        .or_else(|| crate::outbound::retry_after(headers))
        .unwrap_or(default)
}

fn saturating_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// One store's token bucket: `per_minute` tokens of capacity, refilled at `per_minute` per minute. Every
/// method takes the current instant, so the arithmetic is tested without a clock.
#[derive(Debug, Clone)]
struct TokenBucket {
    per_minute: u32,
    /// `per_minute` came from Salla's `X-RateLimit-Limit` (or storage): a plan guess no longer overrides it.
    learned: bool,
    tokens: f64,
    refilled_at: Instant,
    /// Salla said to stop (Remaining 0, 429, abuse 403) until then.
    blocked_until: Option<Instant>,
    throttled_at: Option<Instant>,
    used_at: Instant,
}

impl TokenBucket {
    fn new(per_minute: u32, now: Instant) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            per_minute,
            learned: false,
            tokens: per_minute as f64,
            refilled_at: now,
            blocked_until: None,
            throttled_at: None,
            used_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        let capacity = self.per_minute as f64;
        self.tokens = (self.tokens + elapsed * capacity / 60.0).min(capacity);
        self.refilled_at = now;
    }

    /// Takes one token, or says how long until one is available.
    fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.used_at = now;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(
                missing * 60.0 / self.per_minute as f64,
            ))
        }
    }

    fn set_per_minute(&mut self, per_minute: u32, learned: bool, now: Instant) {
        self.refill(now);
        self.per_minute = per_minute.max(1);
        self.learned |= learned;
        self.tokens = self.tokens.min(self.per_minute as f64);
    }

    /// Salla's own count wins over ours: its limit becomes the capacity, its remaining caps our tokens, and
    /// nothing remaining blocks the store until the reset.
    fn observe(&mut self, headers: &RateLimitHeaders, now: Instant, now_unix: f64) {
        if let Some(limit) = headers.limit.filter(|l| *l > 0) {
            self.set_per_minute(limit, true, now);
        }
        if let Some(remaining) = headers.remaining {
            self.refill(now);
            self.tokens = self.tokens.min(remaining as f64);
            if remaining == 0 {
                let wait = headers
                    .reset_in(now_unix)
                    .filter(|w| !w.is_zero())
                    .unwrap_or(Duration::from_secs(1));
                self.block(now + wait);
            }
        }
    }

    /// A 429 (or abuse 403): nothing until `wait` has passed.
    fn throttle(&mut self, wait: Duration, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
        self.throttled_at = Some(now);
        self.block(now + wait);
    }

    fn block(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    fn recently_throttled(&self, now: Instant) -> bool {
        self.throttled_at
            .is_some_and(|at| now.saturating_duration_since(at) < THROTTLE_MEMORY)
    }
}

/// Sliding-window-counter estimate: the previous window's count weighted by how much of it the sliding window
/// still covers, plus the current window's. `None` when one more request fits under `limit`, else how long to
/// wait (assuming nobody else sends meanwhile; callers check again after waiting).
fn window_wait(
    limit: u64,
    window: Duration,
    previous: u64,
    current: u64,
    elapsed: Duration,
) -> Option<Duration> {
    let window_secs = window.as_secs_f64();
    let covered = (elapsed.as_secs_f64() / window_secs).min(1.0);
    let limit = limit as f64;
    if previous as f64 * (1.0 - covered) + current as f64 + 1.0 <= limit {
        return None;
    }
    let room = limit - current as f64 - 1.0;
    let wait_secs = if room >= 0.0 && previous > 0 {
        // Within this window, once enough of the previous one has slid out.
        ((1.0 - room / previous as f64) - covered) * window_secs
    } else {
        // This window alone is full: into the next one, where this window is the previous.
        let next_covered = if current > 0 {
            (1.0 - (limit - 1.0) / current as f64).max(0.0)
        } else {
            0.0
        };
        (1.0 - covered + next_covered) * window_secs
    };
    Some(Duration::from_secs_f64(wait_secs.max(0.001)))
}

/// In-process window counts of the `/customers*` limiter.
#[derive(Debug, Default)]
struct LocalWindow {
    index: u64,
    previous: u64,
    current: u64,
}

impl LocalWindow {
    /// Counts one request at `elapsed` since the limiter started, or says how long to wait.
    fn try_acquire(
        &mut self,
        limit: u64,
        window: Duration,
        elapsed: Duration,
    ) -> Result<(), Duration> {
        let index = (elapsed.as_secs_f64() / window.as_secs_f64()) as u64;
        if index != self.index {
            self.previous = if index == self.index + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.index = index;
        }
        let into = elapsed.saturating_sub(window.mul_f64(index as f64));
        match window_wait(limit, window, self.previous, self.current, into) {
            None => {
                self.current += 1;
                Ok(())
            }
            Some(wait) => Err(wait),
        }
    }
}

/// The `/customers*` limiter: Redis when configured and answering, else this process.
struct CustomersLimiter {
    limit: u64,
    window: Duration,
    started: Instant,
    local: Mutex<LocalWindow>,
    /// Salla answered a `/customers*` call with 429: no such call from this process until then.
    blocked_until: Mutex<Option<Instant>>,
    redis: Option<Redis>,
    redis_down_until: Mutex<Option<Instant>>,
    redis_down_logged: AtomicBool,
}

impl CustomersLimiter {
    async fn try_acquire(&self) -> Result<(), Duration> {
        if let Some(until) = *lock(&self.blocked_until) {
            let now = Instant::now();
            if now < until {
                return Err(until - now);
            }
        }
        if let Some(redis) = self.redis_available() {
            match tokio::time::timeout(REDIS_TIMEOUT, self.try_acquire_redis(redis)).await {
                Ok(Ok(result)) => {
                    if self.redis_down_logged.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "Redis answers again: the Salla /customers limit is shared again"
                        );
                    }
                    return result;
                }
                Ok(Err(error)) => self.redis_failed(&error.to_string()),
                Err(_) => self.redis_failed("timed out"),
            }
        }
        let elapsed = self.started.elapsed();
        lock(&self.local).try_acquire(self.limit, self.window, elapsed)
    }

    fn redis_available(&self) -> Option<&Redis> {
        let redis = self.redis.as_ref()?;
        let mut down = lock(&self.redis_down_until);
        match *down {
            Some(until) if Instant::now() < until => None,
            Some(_) => {
                *down = None;
                Some(redis)
            }
            None => Some(redis),
        }
    }

    fn redis_failed(&self, error: &str) {
        *lock(&self.redis_down_until) = Some(Instant::now() + REDIS_RETRY);
        metrics::counter!("salla_limiter_redis_errors_total").increment(1);
        // One warning per outage, not one per request.
        if !self.redis_down_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "Redis unavailable for the Salla /customers limit; counting in this process only"
            );
        }
    }

    /// Fixed windows aligned on wall-clock time (the same on every replica): count this request in the
    /// current window, read the previous one, and give the slot back when the estimate is over the limit.
    async fn try_acquire_redis(
        &self,
        redis: &Redis,
    ) -> Result<Result<(), Duration>, fred::error::Error> {
        let window_ms = self.window.as_millis().max(1) as u64;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let index = now_ms / window_ms;
        let current_key = redis.key(&format!("salla:customers:{index}"));
        let previous_key = redis.key(&format!("salla:customers:{}", index.saturating_sub(1)));
        let ttl = (2 * self.window.as_secs()).max(1) as i64;
        let pipeline = redis.client().pipeline();
        let _: () = pipeline.incr(&current_key).await?;
        let _: () = pipeline.expire(&current_key, ttl, None).await?;
        let _: () = pipeline.get(&previous_key).await?;
        let (counted, _, previous): (u64, Value, Option<u64>) = pipeline.all().await?;
        let into = Duration::from_millis(now_ms - index * window_ms);
        match window_wait(
            self.limit,
            self.window,
            previous.unwrap_or(0),
            counted.saturating_sub(1),
            into,
        ) {
            None => Ok(Ok(())),
            Some(wait) => {
                let _: i64 = redis.client().decr(&current_key).await?;
                Ok(Err(wait))
            }
        }
    }
}

struct Limits {
    config: SallaConfig,
    stores: Mutex<HashMap<MerchantId, TokenBucket>>,
    customers: CustomersLimiter,
}

impl Limits {
    fn with_bucket<T>(&self, store: MerchantId, f: impl FnOnce(&mut TokenBucket) -> T) -> T {
        let now = Instant::now();
        let mut stores = lock(&self.stores);
        if !stores.contains_key(&store) && stores.len() >= MAX_STORES {
            stores.retain(|_, b| now.saturating_duration_since(b.used_at) < IDLE_BUCKET);
            if stores.len() >= MAX_STORES {
                stores.clear();
            }
        }
        let bucket = stores
            .entry(store)
            .or_insert_with(|| TokenBucket::new(self.config.requests_per_minute(None), now));
        f(bucket)
    }
}

/// Rate limits of the Merchant API, shared by every client of this process (cheap to clone).
#[derive(Clone)]
pub struct SallaLimits {
    inner: Option<Arc<Limits>>,
}

impl SallaLimits {
    /// Per-store buckets in process; the `/customers*` limit in Redis when given, else in process.
    pub fn new(config: &SallaConfig, redis: Option<Redis>) -> Self {
        Self {
            inner: Some(Arc::new(Limits {
                config: config.clone(),
                stores: Mutex::default(),
                customers: CustomersLimiter {
                    limit: u64::from(config.customers_requests_per_window.max(1)),
                    window: Duration::from_secs(config.customers_window_secs.max(1)),
                    started: Instant::now(),
                    local: Mutex::default(),
                    blocked_until: Mutex::default(),
                    redis,
                    redis_down_until: Mutex::default(),
                    redis_down_logged: AtomicBool::new(false),
                },
            })),
        }
    }

    /// No limit at all (benchmarks): every acquire passes, nothing is counted.
    pub fn unlimited() -> Self {
        Self { inner: None }
    }

    /// Seeds `store`'s bucket from its plan (`/store/info` or user-info `plan`), unless Salla's headers
    /// already said what the limit is.
    pub fn set_plan(&self, store: MerchantId, plan: Option<&str>) {
        if let Some(inner) = &self.inner {
            let per_minute = inner.config.requests_per_minute(plan);
            inner.with_bucket(store, |bucket| {
                if !bucket.learned {
                    bucket.set_per_minute(per_minute, false, Instant::now());
                }
            });
        }
    }

    /// Seeds `store`'s bucket with a limit learned earlier (e.g. stored `rate_limit_per_minute`).
    pub fn set_requests_per_minute(&self, store: MerchantId, per_minute: u32) {
        if let Some(inner) = &self.inner {
            inner.with_bucket(store, |bucket| {
                bucket.set_per_minute(per_minute, true, Instant::now())
            });
        }
    }

    /// The limit `store` is held to, once known: `None` when unlimited or while nothing was seeded, learned
    /// or sent for the store (callers seed it from the stored plan then), e.g. to store what headers taught.
    pub fn requests_per_minute(&self, store: MerchantId) -> Option<u32> {
        let inner = self.inner.as_ref()?;
        lock(&inner.stores)
            .get(&store)
            .map(|bucket| bucket.per_minute)
    }

    /// Waits for a request slot of `store` (and of the `/customers*` limit when `customers`). A wait longer
    /// than `max_wait` is not done: `Err` says how long it would be, so the caller can come back later
    /// instead of holding a worker.
    pub async fn acquire(
        &self,
        store: MerchantId,
        customers: bool,
        max_wait: Duration,
    ) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if customers {
            wait_for("customers", max_wait, || inner.customers.try_acquire()).await?;
        }
        wait_for("store", max_wait, || async {
            inner.with_bucket(store, |bucket| bucket.try_acquire(Instant::now()))
        })
        .await
    }

    /// Applies Salla's `X-RateLimit-*` headers of an answer for `store`.
    pub fn observe(&self, store: MerchantId, headers: &RateLimitHeaders) {
        if let Some(inner) = &self.inner {
            let now_unix = unix_now();
            inner.with_bucket(store, |bucket| {
                bucket.observe(headers, Instant::now(), now_unix)
            });
        }
    }

    /// Salla throttled `store` (429, or abuse 403): no request for it until `wait` has passed; for every store's
    /// `/customers*` calls too when the throttled call was one (that limit is per IP, not per store).
    pub fn throttled(&self, store: MerchantId, customers: bool, wait: Duration) {
        if let Some(inner) = &self.inner {
            inner.with_bucket(store, |bucket| bucket.throttle(wait, Instant::now()));
            if customers {
                let until = Instant::now() + wait;
                let mut blocked = lock(&inner.customers.blocked_until);
                *blocked = Some(blocked.map_or(until, |b| b.max(until)));
            }
        }
    }

    /// Whether Salla throttled `store` recently: a 403 now is a temporary restriction to back off from.
    pub fn recently_throttled(&self, store: MerchantId) -> bool {
        self.inner.as_ref().is_some_and(|inner| {
            inner.with_bucket(store, |bucket| bucket.recently_throttled(Instant::now()))
        })
    }
}

/// Retries `try_acquire` after the waits it asks for, unless one is longer than `max_wait`.
async fn wait_for<F, Fut>(
    limiter: &'static str,
    max_wait: Duration,
    mut try_acquire: F,
) -> Result<(), Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Duration>>,
{
    let mut waited = Duration::ZERO;
    let result = loop {
        match try_acquire().await {
            Ok(()) => break Ok(()),
            Err(wait) if wait > max_wait => {
                metrics::counter!("salla_limiter_deferred_total", "limiter" => limiter)
                    .increment(1);
                break Err(wait);
            }
            Err(wait) => {
                tokio::time::sleep(wait).await;
                waited += wait;
            }
        }
    };
    if !waited.is_zero() {
        metrics::histogram!("salla_limiter_wait_seconds", "limiter" => limiter)
            .record(waited.as_secs_f64());
    }
    result
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values stay consistent even if a holder panicked (every update is one assignment).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: MerchantId = MerchantId::new(847_769_313);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_bucket_allows_its_plan_per_minute_then_one_token_per_refill_interval() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(120, start);
        for _ in 0..120 {
            assert_eq!(bucket.try_acquire(start), Ok(()));
        }
        let wait = bucket.try_acquire(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(bucket.try_acquire(start + secs(0.5)), Ok(()));
        assert!(bucket.try_acquire(start + secs(0.5)).is_err());
        // A minute later it is full again, and never fuller than its capacity.
        let later = start + secs(600.0);
        for _ in 0..120 {
            assert_eq!(bucket.try_acquire(later), Ok(()));
        }
        assert!(bucket.try_acquire(later).is_err());
    }

    #[test]
    fn headers_correct_the_limit_and_nothing_remaining_blocks_until_the_reset() {
        let start = Instant::now();
        let now_unix = 1_700_000_000;
        let mut bucket = TokenBucket::new(720, start);
        bucket.observe(
            &RateLimitHeaders {
                limit: Some(60),
                remaining: Some(3),
                reset: Some(now_unix + 40),
            },
            start,
            now_unix as f64,
        );
        assert_eq!(bucket.per_minute, 60);
        assert!(bucket.learned);
        for _ in 0..3 {
            assert_eq!(bucket.try_acquire(start), Ok(()));
        }
        assert!(bucket.try_acquire(start).is_err());

        bucket.observe(
            &RateLimitHeaders {
                limit: Some(60),
                remaining: Some(0),
                reset: Some(now_unix + 40),
            },
            start,
            now_unix as f64,
        );
        assert_eq!(bucket.try_acquire(start + secs(10.0)), Err(secs(30.0)));
        assert_eq!(bucket.try_acquire(start + secs(40.0)), Ok(()));
    }

    #[test]
    fn a_reset_far_away_or_relative_is_bounded() {
        let headers = |reset| RateLimitHeaders {
            limit: None,
            remaining: Some(0),
            reset: Some(reset),
        };
        let now_unix = 1_700_000_000;
        let now = now_unix as f64;
        assert_eq!(headers(now_unix + 3600).reset_in(now), Some(MAX_RESET_WAIT));
        assert_eq!(headers(now_unix - 5).reset_in(now), Some(Duration::ZERO));
        assert_eq!(headers(12).reset_in(now), Some(secs(12.0)));
        // The fraction of the current second counts: no whole-second overshoot.
        assert_eq!(headers(now_unix + 1).reset_in(now + 0.75), Some(secs(0.25)));
        // A reset already past still holds the store back a moment rather than not at all.
        let start = Instant::now();
        let mut bucket = TokenBucket::new(120, start);
        bucket.observe(&headers(now_unix - 5), start, now);
        assert_eq!(bucket.try_acquire(start), Err(secs(1.0)));
    }

    #[test]
    fn a_throttle_blocks_and_is_remembered() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(360, start);
        assert!(!bucket.recently_throttled(start));
        bucket.throttle(secs(7.0), start);
        assert_eq!(bucket.try_acquire(start + secs(2.0)), Err(secs(5.0)));
        assert!(bucket.recently_throttled(start + secs(60.0)));
        assert!(!bucket.recently_throttled(start + THROTTLE_MEMORY));
        // After the wait Salla's window has moved on: requests flow again.
        assert_eq!(bucket.try_acquire(start + secs(7.0)), Ok(()));
    }

    #[test]
    fn a_plan_seed_never_overrides_a_limit_salla_told_us() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(120, start);
        bucket.set_per_minute(720, false, start);
        assert_eq!(bucket.per_minute, 720);
        assert_eq!(
            bucket.tokens, 120.0,
            "a bigger plan does not add tokens at once"
        );
        bucket.observe(
            &RateLimitHeaders {
                limit: Some(180),
                ..Default::default()
            },
            start,
            0.0,
        );
        assert_eq!(bucket.per_minute, 180);
        assert!(bucket.learned);
    }

    #[test]
    fn headers_are_parsed_and_absent_headers_are_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(RateLimitHeaders::from_headers(&headers), None);
        headers.insert("x-ratelimit-limit", "120".parse().unwrap());
        headers.insert("x-ratelimit-remaining", " 7 ".parse().unwrap());
        headers.insert("x-ratelimit-reset", "1700000060".parse().unwrap());
        headers.insert(reqwest::header::RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(
            RateLimitHeaders::from_headers(&headers),
            Some(RateLimitHeaders {
                limit: Some(120),
                remaining: Some(7),
                reset: Some(1_700_000_060),
            })
        );
        assert_eq!(crate::outbound::retry_after(&headers), Some(secs(12.0)));
    }

    #[test]
    fn the_sliding_window_weights_the_previous_window_by_its_overlap() {
        let window = secs(600.0);
        // An empty past: the current window alone counts.
        assert_eq!(window_wait(500, window, 0, 499, secs(1.0)), None);
        let full = window_wait(500, window, 0, 500, secs(100.0)).unwrap();
        // Full at 100 s: wait the 500 s left, plus the 1.2 s into the next window for one request to slide out.
        assert!((full.as_secs_f64() - 501.2).abs() < 1e-6, "{full:?}");
        // 400 last window, half of it still covered: 200 + 250 + 1 ≤ 500 fits; 300 in this one does not.
        assert_eq!(window_wait(500, window, 400, 250, secs(300.0)), None);
        let wait = window_wait(500, window, 400, 300, secs(300.0)).unwrap();
        // 400 · (1 - f) ≤ 199 ⇒ f ≥ 0.5025: 1.5 s more.
        assert!((wait.as_secs_f64() - 1.5).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn the_local_window_counts_rolls_over_and_forgets_old_windows() {
        let window = secs(10.0);
        let mut counts = LocalWindow::default();
        for _ in 0..3 {
            assert_eq!(counts.try_acquire(3, window, secs(1.0)), Ok(()));
        }
        assert!(counts.try_acquire(3, window, secs(2.0)).is_err());
        // Next window: the previous 3 weigh 3·(1-0.5) = 1.5 at 15 s, so one more fits, not two.
        assert_eq!(counts.try_acquire(3, window, secs(15.0)), Ok(()));
        assert!(counts.try_acquire(3, window, secs(15.0)).is_err());
        // Two windows later, the past no longer counts.
        for _ in 0..3 {
            assert_eq!(counts.try_acquire(3, window, secs(41.0)), Ok(()));
        }
    }

    fn config(customers: u32) -> SallaConfig {
        let mut config = toml::from_str::<crate::config::Config>(crate::config::DEFAULT_TOML)
            .expect("default config")
            .salla;
        config.customers_requests_per_window = customers;
        config
    }

    #[tokio::test]
    async fn a_throttled_customers_call_holds_back_every_store_customers_calls_only() {
        let limits = SallaLimits::new(&config(500), None);
        limits.throttled(STORE, true, secs(30.0));
        let other = MerchantId::new(1);
        assert!(limits.acquire(other, true, secs(5.0)).await.unwrap_err() > secs(25.0));
        assert_eq!(limits.acquire(other, false, secs(5.0)).await, Ok(()));
    }

    #[tokio::test]
    async fn the_in_process_customers_limit_refuses_waits_longer_than_allowed() {
        let limits = SallaLimits::new(&config(2), None);
        let max_wait = secs(5.0);
        assert_eq!(limits.acquire(STORE, true, max_wait).await, Ok(()));
        assert_eq!(
            limits.acquire(MerchantId::new(1), true, max_wait).await,
            Ok(())
        );
        let wait = limits.acquire(STORE, true, max_wait).await.unwrap_err();
        assert!(wait > max_wait, "{wait:?}");
        // Other endpoints are not held back by the customers limit.
        assert_eq!(limits.acquire(STORE, false, max_wait).await, Ok(()));
    }

    #[tokio::test]
    async fn plans_seed_buckets_and_unlimited_limits_nothing() {
        let limits = SallaLimits::new(&config(500), None);
        assert_eq!(limits.requests_per_minute(STORE), None, "nothing known yet");
        limits.set_plan(STORE, Some("basic"));
        assert_eq!(
            limits.requests_per_minute(STORE),
            Some(120),
            "unknown plans get the default"
        );
        limits.set_plan(STORE, Some("Special"));
        assert_eq!(limits.requests_per_minute(STORE), Some(720));
        limits.set_requests_per_minute(STORE, 90);
        limits.set_plan(STORE, Some("pro"));
        assert_eq!(limits.requests_per_minute(STORE), Some(90));

        limits.throttled(STORE, false, secs(30.0));
        assert!(limits.recently_throttled(STORE));
        assert_eq!(
            limits
                .acquire(STORE, false, secs(5.0))
                .await
                .map_err(|w| w > secs(5.0)),
            Err(true)
        );

        let unlimited = SallaLimits::unlimited();
        unlimited.throttled(STORE, true, secs(30.0));
        for _ in 0..1000 {
            assert_eq!(unlimited.acquire(STORE, true, Duration::ZERO).await, Ok(()));
        }
        assert_eq!(unlimited.requests_per_minute(STORE), None);
        assert!(!unlimited.recently_throttled(STORE));
    }
}
