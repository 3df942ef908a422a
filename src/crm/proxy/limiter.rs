//! Per-tenant token buckets (in process): `requests_per_minute` tokens, refilled continuously, so a tenant may
//! burst up to a minute's allowance and then proceeds at the configured rate. Twenty throttles per workspace
//! too (reference §4.1); this keeps one tenant from using up the shared server.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::tenancy::TenantId;

/// Buckets of tenants idle this long are dropped (a new one starts full, which an idle tenant's is anyway).
const IDLE: Duration = Duration::from_secs(120);
const MAX_TENANTS: u64 = 100_000;

#[derive(Clone)]
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: Cache<TenantId, Arc<Mutex<Bucket>>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn per_minute(requests: u32) -> Self {
        let capacity = f64::from(requests.max(1));
        Self {
            capacity,
            per_second: capacity / 60.0,
            buckets: Cache::builder()
                .max_capacity(MAX_TENANTS)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// Takes a token for `tenant`, or says how long until one is available.
    pub async fn acquire(&self, tenant: TenantId) -> Result<(), Duration> {
        let capacity = self.capacity;
        let bucket = self
            .buckets
            .get_with(tenant, async move {
                Arc::new(Mutex::new(Bucket {
                    tokens: capacity,
                    updated: Instant::now(),
                }))
            })
            .await;
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_gets_a_minutes_allowance_then_waits_and_others_are_unaffected() {
        let limiter = RateLimiter::per_minute(3);
        let (a, b) = (TenantId::new(), TenantId::new());
        for _ in 0..3 {
            assert!(limiter.acquire(a).await.is_ok());
        }
        let wait = limiter.acquire(a).await.expect_err("limited");
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.acquire(b).await.is_ok());
    }
}
