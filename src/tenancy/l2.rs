//! The L2 tenant cache in Redis, and cross-replica invalidation over Redis pub/sub.
//!
//! Redis is optional and may fail at any time: every call has a short timeout, and after a failure the cache
//! skips Redis for `redis_retry_secs` (a circuit breaker) so requests fall through to PostgreSQL at full
//! speed. Invalidations that could not reach Redis are remembered and replayed when it is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::*;
use serde::{Deserialize, Serialize};

use super::{LookupKey, Tenant, TenantId};
use crate::access::Scope;
use crate::config::TenantCacheConfig;
use crate::redis::Redis;

/// Pub/sub channel suffix of invalidation messages.
pub const INVALIDATION_CHANNEL: &str = "tenant:invalidate";

/// What replicas receive when a tenant changes: evict every L1 entry of this tenant, plus these keys (which
/// may be cached as "unknown").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invalidation {
    pub tenant_id: TenantId,
    pub keys: Vec<String>,
}

/// The value of the L2 invalidation counter when an entry was looked up (see [`L2Cache::put`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Clone)]
pub struct L2Cache {
    inner: Arc<L2Inner>,
}

struct L2Inner {
    redis: Redis,
    ttl_secs: i64,
    timeout: Duration,
    retry_after: Duration,
    started: Instant,
    /// Milliseconds since `started` until which Redis is skipped; 0 when healthy.
    down_until_ms: AtomicU64,
    down_logged: AtomicBool,
    pending: Mutex<HashSet<TenantId>>,
}

impl L2Cache {
    pub fn new(redis: Redis, config: &TenantCacheConfig) -> Self {
        metrics::gauge!("tenant_cache_redis_up").set(1.0);
        Self {
            inner: Arc::new(L2Inner {
                redis,
                ttl_secs: config.redis_ttl_secs as i64,
                timeout: Duration::from_millis(config.redis_timeout_ms),
                retry_after: Duration::from_secs(config.redis_retry_secs),
                started: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                down_logged: AtomicBool::new(false),
                pending: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    fn available(&self) -> bool {
        let until = self.inner.down_until_ms.load(Ordering::Relaxed);
        until == 0 || self.now_ms() >= until
    }

    /// Runs one Redis operation under the timeout and the breaker. `None` when skipped or failed.
    async fn call<T, F>(&self, what: &'static str, op: F) -> Option<T>
    where
        F: Future<Output = Result<T, fred::error::Error>>,
    {
        if !self.available() {
            return None;
        }
        match tokio::time::timeout(self.inner.timeout, op).await {
            Ok(Ok(value)) => {
                self.mark_up();
                Some(value)
            }
            Ok(Err(error)) => {
                self.mark_down(what, &error.to_string());
                None
            }
            Err(_) => {
                self.mark_down(what, "timed out");
                None
            }
        }
    }

    fn mark_down(&self, what: &'static str, error: &str) {
        metrics::counter!("tenant_cache_redis_errors_total", "op" => what).increment(1);
        metrics::gauge!("tenant_cache_redis_up").set(0.0);
        let until = self.now_ms() + self.inner.retry_after.as_millis() as u64;
        self.inner
            .down_until_ms
            .store(until.max(1), Ordering::Relaxed);
        // One warning per outage, not one per request.
        if !self.inner.down_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                op = what,
                error,
                retry_in_secs = self.inner.retry_after.as_secs(),
                "Redis unavailable for the tenant cache; using the in-process cache and PostgreSQL"
            );
        }
    }

    fn mark_up(&self) {
        if self.inner.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
            metrics::gauge!("tenant_cache_redis_up").set(1.0);
            self.inner.down_logged.store(false, Ordering::Relaxed);
            tracing::info!("Redis is back for the tenant cache");
        }
    }

    /// The cached tenant and, for an API key, its scope (`Some(None)`: not cached), with the invalidation
    /// generation read in the same round trip: pass it to [`L2Cache::put`] when filling the entry from
    /// PostgreSQL. `None` when Redis failed.
    pub async fn get(
        &self,
        key: &LookupKey,
    ) -> Option<(Option<(Tenant, Option<Scope>)>, Generation)> {
        let redis_key = self.inner.redis.key(&key.cache_key());
        let generation = self.generation_key();
        let raw: Option<(Option<String>, Option<u64>)> = self
            .call(
                "get",
                self.inner.redis.client().mget(vec![redis_key, generation]),
            )
            .await;
        raw.map(|(value, generation)| {
            (
                value.and_then(|json| decode(&json)),
                Generation(generation.unwrap_or(0)),
            )
        })
    }

    /// Fills the entry of `key` with what PostgreSQL answered after `get` returned `read_at`. A fill can race an
    /// invalidation (read the row, the row changes and its keys are deleted, then the fill writes the old row
    /// back); so the fill reads the generation again after writing and deletes its own entry when an
    /// invalidation ran since `read_at`. Invalidations bump the generation before deleting, so either that
    /// deletion comes after this write, or this check sees the bump.
    pub async fn put(
        &self,
        key: &LookupKey,
        tenant: &Tenant,
        scope: Option<Scope>,
        read_at: Generation,
    ) {
        let Some(json) = encode(tenant, scope) else {
            return;
        };
        let redis_key = self.inner.redis.key(&key.cache_key());
        let index = self.index_key(tenant.id);
        let generation = self.generation_key();
        let ttl = self.inner.ttl_secs;
        let client = self.inner.redis.client().clone();
        self.call("put", async move {
            let pipeline = client.pipeline();
            let _: () = pipeline
                .set(&redis_key, json, Some(Expiration::EX(ttl)), None, false)
                .await?;
            let _: () = pipeline.sadd(&index, &redis_key).await?;
            let _: () = pipeline.expire(&index, ttl, None).await?;
            let _: () = pipeline.get(&generation).await?;
            let (_, _, _, now): (Value, Value, Value, Option<u64>) = pipeline.all().await?;
            if now.unwrap_or(0) != read_at.0 {
                let _: i64 = client.del(&redis_key).await?;
            }
            Ok(())
        })
        .await;
    }

    /// The counter every invalidation increments (one per deployment prefix).
    fn generation_key(&self) -> String {
        self.inner.redis.key("tenant:v1:generation")
    }

    fn index_key(&self, tenant: TenantId) -> String {
        self.inner.redis.key(&format!("tenant:v1:index:{tenant}"))
    }

    /// Deletes every L2 entry of `tenant` plus `keys`, then tells every replica. When Redis is unavailable
    /// the tenant is remembered and the deletion replayed once Redis answers again.
    pub async fn invalidate(&self, tenant: TenantId, keys: &[LookupKey]) {
        let message = Invalidation {
            tenant_id: tenant,
            keys: keys.iter().map(LookupKey::cache_key).collect(),
        };
        if !self.delete_and_publish(&message).await {
            self.pending().insert(tenant);
        }
    }

    async fn delete_and_publish(&self, message: &Invalidation) -> bool {
        let index = self.index_key(message.tenant_id);
        let mut explicit: Vec<String> = message
            .keys
            .iter()
            .map(|k| self.inner.redis.key(k))
            .collect();
        let channel = self.inner.redis.key(INVALIDATION_CHANNEL);
        let generation = self.generation_key();
        let Ok(payload) = serde_json::to_string(message) else {
            return false;
        };
        let client = self.inner.redis.client().clone();
        self.call("invalidate", async move {
            // First: fills that read PostgreSQL before this change must not survive it (see `put`).
            let _: u64 = client.incr(&generation).await?;
            let indexed: Vec<String> = client.smembers(&index).await?;
            explicit.extend(indexed.iter().cloned());
            if !explicit.is_empty() {
                let _: i64 = client.del(explicit).await?;
            }
            // Only the members read above: deleting the whole index would also forget an entry filled since
            // (between SMEMBERS and here), which the next invalidation could then no longer find.
            if !indexed.is_empty() {
                let _: i64 = client.srem(&index, indexed).await?;
            }
            let _: i64 = client.publish(channel, payload).await?;
            Ok(())
        })
        .await
        .is_some()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<TenantId>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replays invalidations that could not reach Redis (called periodically by the directory's listener).
    pub async fn flush_pending(&self) {
        if !self.available() {
            return;
        }
        let tenants: Vec<TenantId> = self.pending().drain().collect();
        for tenant in tenants {
            let message = Invalidation {
                tenant_id: tenant,
                keys: Vec::new(),
            };
            if !self.delete_and_publish(&message).await {
                self.pending().insert(tenant);
            }
        }
    }
}

/// The field an API key entry adds to the tenant's JSON. Adding a field keeps the format readable both ways:
/// older replicas ignore it, and an API key entry without it is treated as not cached (`TenantDirectory`).
const SCOPE_FIELD: &str = "api_key_scope";

fn encode(tenant: &Tenant, scope: Option<Scope>) -> Option<String> {
    let mut value = serde_json::to_value(tenant).ok()?;
    if let (Some(scope), Some(object)) = (scope, value.as_object_mut()) {
        object.insert(SCOPE_FIELD.to_owned(), scope.as_str().into());
    }
    serde_json::to_string(&value).ok()
}

fn decode(json: &str) -> Option<(Tenant, Option<Scope>)> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let scope = value
        .get(SCOPE_FIELD)
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse().ok());
    Some((serde_json::from_value(value).ok()?, scope))
}
