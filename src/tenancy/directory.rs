//! `TenantDirectory`: resolving a tenant from any of its keys through L1 (moka, in-process) → L2 (Redis) →
//! L3 (the registry in PostgreSQL), and every change to a tenant, so that each change invalidates the caches
//! of all replicas by construction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::*;
use moka::Expiry;
use moka::future::Cache;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::api_key::{ApiKeyHash, ApiKeyInfo, GeneratedKey};
use super::l2::{INVALIDATION_CHANNEL, Invalidation, L2Cache};
use super::registry::{self, RegistryError};
use super::tenant_settings::{self, SettingsError, TenantSettings};
use super::{LookupKey, Tenant, TenantId, TenantPools, TenantStatus};
use crate::access::Scope;
use crate::config::TenantCacheConfig;
use crate::redis::Redis;

/// A cached lookup: the tenant, or `None` for "no such tenant" (negative entry).
type Cached = Option<Entry>;

/// What a key resolves to: the tenant, and for an API key its scope (so that a request never needs a second
/// lookup to learn what the key may do).
#[derive(Clone)]
struct Entry {
    tenant: Arc<Tenant>,
    scope: Option<Scope>,
}

/// Called on every eviction of this process's L1 (local or from another replica): `Some(tenant)` when one
/// tenant changed, `None` when everything may be stale. Caches of data that belongs to a tenant (e.g. embedded
/// app sessions) register one to be invalidated with it, on every replica.
pub type EvictionHook = Arc<dyn Fn(Option<TenantId>) + Send + Sync>;

#[derive(Clone)]
pub struct TenantDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    l1: Cache<LookupKey, Cached>,
    l2: Option<L2Cache>,
    /// Each tenant's settings row, evicted with the tenant (see `tenant_settings`).
    settings: Cache<TenantId, tenant_settings::Cached>,
    retry_every: Duration,
    /// Bumped by every local eviction, so a load that raced one does not keep its (possibly older) result.
    generation: AtomicU64,
    l1_hits: metrics::Counter,
    l1_misses: metrics::Counter,
    hooks: std::sync::RwLock<Vec<EvictionHook>>,
}

/// Positive entries live `ttl`, negative ones the shorter `negative_ttl`.
struct EntryLifetime {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<LookupKey, Cached> for EntryLifetime {
    fn expire_after_create(
        &self,
        _key: &LookupKey,
        value: &Cached,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        })
    }
}

impl TenantDirectory {
    pub fn new(db: PgPool, redis: Option<Redis>, config: &TenantCacheConfig) -> Self {
        let l1 = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(EntryLifetime {
                ttl: Duration::from_secs(config.ttl_secs),
                negative_ttl: Duration::from_secs(config.negative_ttl_secs),
            })
            .support_invalidation_closures()
            .build();
        Self {
            inner: Arc::new(Inner {
                db,
                l1,
                l2: redis.map(|r| L2Cache::new(r, config)),
                settings: tenant_settings::cache(
                    config.max_entries,
                    Duration::from_secs(config.ttl_secs),
                ),
                retry_every: Duration::from_secs(config.redis_retry_secs.max(1)),
                generation: AtomicU64::new(0),
                l1_hits: metrics::counter!("tenant_cache_requests_total", "level" => "l1", "outcome" => "hit"),
                l1_misses: metrics::counter!("tenant_cache_requests_total", "level" => "l1", "outcome" => "miss"),
                hooks: std::sync::RwLock::new(Vec::new()),
            }),
        }
    }

    /// The tenant behind `key`, or `None` when there is none. Concurrent misses of one key load it once.
    pub async fn resolve(&self, key: &LookupKey) -> Result<Option<Arc<Tenant>>, Arc<sqlx::Error>> {
        Ok(self.lookup(key).await?.map(|entry| entry.tenant))
    }

    /// The tenant of an unrevoked API key, with the key's scope.
    pub async fn resolve_api_key(
        &self,
        hash: ApiKeyHash,
    ) -> Result<Option<(Arc<Tenant>, Scope)>, Arc<sqlx::Error>> {
        Ok(self
            .lookup(&LookupKey::ApiKey(hash))
            .await?
            // Every API key entry carries its scope (`load`); were one missing, the least scope applies.
            .map(|entry| (entry.tenant, entry.scope.unwrap_or(Scope::Read))))
    }

    async fn lookup(&self, key: &LookupKey) -> Result<Cached, Arc<sqlx::Error>> {
        if let Some(cached) = self.inner.l1.get(key).await {
            self.inner.l1_hits.increment(1);
            return Ok(cached);
        }
        self.inner.l1_misses.increment(1);
        let generation = self.inner.generation.load(Ordering::Acquire);
        let loaded = self
            .inner
            .l1
            .try_get_with(key.clone(), self.load(key))
            .await?;
        // An invalidation that ran while this was loading may have come before the loaded entry was inserted
        // (eviction predicates only apply to older entries): then the entry may predate the change, so drop it.
        if self.inner.generation.load(Ordering::Acquire) != generation {
            self.inner.l1.invalidate(key).await;
        }
        Ok(loaded)
    }

    pub async fn get(&self, id: TenantId) -> Result<Option<Arc<Tenant>>, Arc<sqlx::Error>> {
        self.resolve(&LookupKey::Id(id)).await
    }

    /// `tenant`'s settings row from its own database (`None` before it is seeded), cached until the tenant
    /// changes anywhere or `ttl_secs` pass.
    pub async fn settings(
        &self,
        tenant: &Tenant,
        pools: &TenantPools,
    ) -> Result<Option<Arc<TenantSettings>>, Arc<SettingsError>> {
        if let Some(cached) = self.inner.settings.get(&tenant.id).await {
            return Ok(cached);
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        let loaded = self
            .inner
            .settings
            .try_get_with(tenant.id, tenant_settings::load(pools, tenant))
            .await?;
        // Same race as in `resolve`: a change during the load may have been missed by it.
        if self.inner.generation.load(Ordering::Acquire) != generation {
            self.inner.settings.invalidate(&tenant.id).await;
        }
        Ok(loaded)
    }

    /// L2, then L3; fills L2 from L3.
    async fn load(&self, key: &LookupKey) -> Result<Cached, sqlx::Error> {
        let mut read_at = None;
        let is_api_key = matches!(key, LookupKey::ApiKey(_));
        if let Some(l2) = &self.inner.l2 {
            let started = Instant::now();
            match l2.get(key).await {
                // An API key entry written before scopes were cached is a miss: it is reloaded and rewritten.
                Some((Some((tenant, scope)), _)) if scope.is_some() || !is_api_key => {
                    record_load("l2", "hit", started);
                    return Ok(Some(Entry {
                        tenant: Arc::new(tenant),
                        scope,
                    }));
                }
                Some((_, generation)) => {
                    record_load("l2", "miss", started);
                    read_at = Some(generation);
                }
                None => record_load("l2", "error", started),
            }
        }
        let started = Instant::now();
        let found = match key {
            LookupKey::ApiKey(hash) => registry::find_api_key(&self.inner.db, *hash)
                .await?
                .map(|(tenant, scope)| (tenant, Some(scope))),
            other => registry::find(&self.inner.db, other)
                .await?
                .map(|tenant| (tenant, None)),
        };
        record_load("l3", if found.is_some() { "hit" } else { "miss" }, started);
        if let (Some((tenant, scope)), Some(l2), Some(read_at)) = (&found, &self.inner.l2, read_at)
        {
            l2.put(key, tenant, *scope, read_at).await;
        }
        Ok(found.map(|(tenant, scope)| Entry {
            tenant: Arc::new(tenant),
            scope,
        }))
    }

    /// Evicts `tenant` everywhere: this process's L1, L2, and (through pub/sub) every replica's L1. `extra`
    /// names keys that may be cached as unknown (a new slug, a new API key) or no longer point to the tenant.
    pub async fn invalidate(&self, tenant: TenantId, extra: &[LookupKey]) {
        self.evict_local(tenant, extra.iter().map(LookupKey::cache_key).collect())
            .await;
        if let Some(l2) = &self.inner.l2 {
            l2.invalidate(tenant, extra).await;
        }
        metrics::counter!("tenant_cache_invalidations_total").increment(1);
    }

    /// Registers `hook`, run on every eviction of this process's L1 (see [`EvictionHook`]).
    pub fn on_eviction(&self, hook: EvictionHook) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn run_hooks(&self, tenant: Option<TenantId>) {
        let hooks = self.inner.hooks.read().unwrap_or_else(|p| p.into_inner());
        for hook in hooks.iter() {
            hook(tenant);
        }
    }

    async fn evict_local(&self, tenant: TenantId, keys: Vec<String>) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        // Negative entries of these keys (messages from other replicas carry them in their rendered form).
        for key in keys.iter().filter_map(|k| LookupKey::from_cache_key(k)) {
            self.inner.l1.invalidate(&key).await;
        }
        let _ = self
            .inner
            .l1
            .invalidate_entries_if(move |_, v| v.as_ref().is_some_and(|e| e.tenant.id == tenant));
        // Also drop the id entry at once (predicates apply lazily), so the next `get` reloads.
        self.inner.l1.invalidate(&LookupKey::Id(tenant)).await;
        self.inner.settings.invalidate(&tenant).await;
        self.run_hooks(Some(tenant));
    }

    /// Empties this process's L1 (when invalidations may have been lost).
    fn clear_local(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        self.inner.l1.invalidate_all();
        self.inner.settings.invalidate_all();
        self.run_hooks(None);
    }

    /// Number of entries in this process's L1 (approximate; for tests and metrics).
    pub fn l1_len(&self) -> u64 {
        self.inner.l1.entry_count()
    }

    /// Moves a tenant through its lifecycle (the rules live in `TenantStatus`) and invalidates its caches.
    pub async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<&str>,
        expected_version: Option<i64>,
    ) -> Result<Tenant, RegistryError> {
        let (tenant, changed) =
            registry::transition(&self.inner.db, id, to, reason, expected_version).await?;
        if changed {
            self.invalidate(id, &[]).await;
            tracing::info!(tenant_id = %id, status = %to, "tenant status changed");
        }
        Ok(tenant)
    }

    pub async fn set_schema_version(
        &self,
        id: TenantId,
        version: i64,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        registry::set_schema_version(&self.inner.db, id, version, error).await?;
        self.invalidate(id, &[]).await;
        Ok(())
    }

    /// Makes the tenant read-only (`Some(reason)`) or writable again (`None`) and invalidates its caches on
    /// every replica; `None` when there is no such tenant.
    pub async fn set_read_only(
        &self,
        id: TenantId,
        reason: Option<&str>,
    ) -> Result<Option<Tenant>, sqlx::Error> {
        let tenant = registry::set_read_only(&self.inner.db, id, reason).await?;
        if tenant.is_some() {
            self.invalidate(id, &[]).await;
        }
        Ok(tenant)
    }

    pub async fn rename(&self, id: TenantId, name: &str) -> Result<(), sqlx::Error> {
        registry::rename(&self.inner.db, id, name).await?;
        self.invalidate(id, &[]).await;
        Ok(())
    }

    /// Changes the tenant's plan (e.g. from its Salla app subscription).
    pub async fn set_plan(&self, id: TenantId, plan: &str) -> Result<(), sqlx::Error> {
        if registry::set_plan(&self.inner.db, id, plan).await? {
            self.invalidate(id, &[]).await;
        }
        Ok(())
    }

    /// Replaces a placeholder owner email (tenants created from a Clerk organization start with one) by the
    /// real one, once; an owner email someone set is never overwritten.
    pub async fn replace_owner_email(
        &self,
        id: TenantId,
        placeholder: &str,
        email: &str,
    ) -> Result<(), sqlx::Error> {
        if registry::replace_owner_email(&self.inner.db, id, placeholder, email).await? {
            self.invalidate(id, &[]).await;
        }
        Ok(())
    }

    /// A suspended tenant's new suspension reason (its users see it in the 403); `None` when nothing changed.
    pub async fn set_suspended_reason(
        &self,
        id: TenantId,
        reason: &str,
    ) -> Result<Option<Tenant>, sqlx::Error> {
        let updated = registry::set_suspended_reason(&self.inner.db, id, reason).await?;
        if updated.is_some() {
            self.invalidate(id, &[]).await;
        }
        Ok(updated)
    }

    pub async fn set_clerk_org(&self, id: TenantId, org: &str) -> Result<(), RegistryError> {
        registry::set_clerk_org(&self.inner.db, id, org).await?;
        self.invalidate(id, &[LookupKey::ClerkOrg(org.to_owned())])
            .await;
        Ok(())
    }

    pub async fn create_api_key(
        &self,
        tenant: TenantId,
        name: &str,
        scope: Scope,
        created_by: &str,
    ) -> Result<(ApiKeyInfo, String), sqlx::Error> {
        let key = GeneratedKey::generate();
        let info =
            registry::insert_api_key(&self.inner.db, tenant, name, &key, scope, created_by).await?;
        // The key may have been presented before it existed and be cached as unknown.
        self.invalidate(tenant, &[LookupKey::ApiKey(key.hash)])
            .await;
        Ok((info, key.plain))
    }

    /// Revokes a key of `tenant`; `false` when the tenant has no such key.
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key_id: Uuid,
    ) -> Result<bool, sqlx::Error> {
        match registry::revoke_api_key(&self.inner.db, tenant, key_id).await? {
            Some(hash) => {
                self.invalidate(tenant, &[LookupKey::ApiKey(hash)]).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub async fn add_domain(&self, tenant: TenantId, domain: &str) -> Result<(), RegistryError> {
        let domain = domain.to_ascii_lowercase();
        registry::add_domain(&self.inner.db, tenant, &domain).await?;
        self.invalidate(tenant, &[LookupKey::Domain(domain)]).await;
        Ok(())
    }

    /// Receives invalidations from other replicas until `shutdown`; also replays invalidations that could
    /// not reach Redis. Without Redis there is nothing to listen to.
    pub async fn run_listener(self, shutdown: CancellationToken) {
        let Some(l2) = self.inner.l2.clone() else {
            return;
        };
        let subscriber = l2.redis().client().clone_new();
        let channel = l2.redis().key(INVALIDATION_CHANNEL);
        let connect = subscriber.init();
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => {}
            other => {
                tracing::warn!(result = ?other.map(|r| r.map(drop)), "cannot start the tenant cache invalidation listener; will keep retrying");
            }
        }
        let _ = subscriber.subscribe(channel.clone()).await;
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let mut tick = tokio::time::interval(self.inner.retry_every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = messages.recv() => match message {
                    Ok(message) => {
                        let Some(text) = message.value.as_string() else { continue };
                        match serde_json::from_str::<Invalidation>(&text) {
                            Ok(inv) => self.evict_local(inv.tenant_id, inv.keys).await,
                            Err(error) => tracing::warn!(error = %error, "ignoring a malformed tenant invalidation"),
                        }
                    }
                    // Lagged: messages were dropped, so anything may be stale.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.clear_local(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                reconnected = reconnects.recv() => {
                    if reconnected.is_ok() {
                        // Invalidations published while we were disconnected are lost: start from empty.
                        self.clear_local();
                        let _ = subscriber.subscribe(channel.clone()).await;
                        tracing::info!("tenant cache invalidation listener reconnected; L1 cleared");
                    }
                }
                _ = tick.tick() => l2.flush_pending().await,
            }
        }
        let _ = subscriber.quit().await;
    }
}

fn record_load(level: &'static str, outcome: &'static str, started: Instant) {
    metrics::counter!("tenant_cache_requests_total", "level" => level, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("tenant_cache_load_seconds", "level" => level)
        .record(started.elapsed().as_secs_f64());
}
