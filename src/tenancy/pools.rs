//! Per-tenant connection pools under one budget.
//!
//! Every tenant database gets its own small sqlx pool (never shared between two databases). A pool reserves
//! `max_connections_per_tenant` permits of a global semaphore of `total_connections` for as long as it is
//! resident, so the connections all tenant pools can open never exceed the budget, whatever the traffic.
//! Pools are kept in an LRU of at most `max_resident`; to make room, the least recently used pool that nobody
//! is using is closed. A pool idle for `idle_timeout_secs` is closed by the reaper.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::servers::{ServerError, TenantServers};
use super::{Tenant, TenantId};
use crate::config::TenantPoolsConfig;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no tenant connection budget free within {0:?}")]
    BudgetExhausted(Duration),
    #[error(transparent)]
    Server(#[from] ServerError),
}

struct Resident {
    pool: PgPool,
    /// The server key and database the pool connects to: when the tenant's registry entry names another
    /// (its database was moved), the pool is replaced on the next checkout.
    location: (String, String),
    /// Held by every handed-out [`TenantPool`]: a pool is evictable only when this is the last reference.
    lease: Arc<()>,
    last_used: Instant,
    _permits: OwnedSemaphorePermit,
}

impl Resident {
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.lease) > 1
    }
}

/// A tenant's pool, checked out from [`TenantPools`]. While it is held the pool is never evicted. Derefs to
/// the sqlx pool.
pub struct TenantPool {
    pool: PgPool,
    tenant: TenantId,
    _lease: Arc<()>,
}

impl TenantPool {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
}

impl Deref for TenantPool {
    type Target = PgPool;
    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

#[derive(Clone)]
pub struct TenantPools {
    inner: Arc<Inner>,
}

struct Inner {
    servers: TenantServers,
    config: TenantPoolsConfig,
    budget: Arc<Semaphore>,
    resident: Mutex<HashMap<TenantId, Resident>>,
}

impl TenantPools {
    pub fn new(servers: TenantServers, config: TenantPoolsConfig) -> Self {
        // At 0 from the start, so that `increase()` sees the first refusal (an alert watches it).
        metrics::counter!("tenant_pool_budget_exhausted_total").increment(0);
        Self {
            inner: Arc::new(Inner {
                budget: Arc::new(Semaphore::new(config.total_connections as usize)),
                servers,
                config,
                resident: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The pool of `tenant`'s database, creating it (within the budget) if it is not resident.
    pub async fn get(&self, tenant: &Tenant) -> Result<TenantPool, PoolError> {
        if let Some(pool) = self.checkout(tenant) {
            return Ok(pool);
        }
        let per_pool = self.inner.config.max_connections_per_tenant;
        let wait = Duration::from_millis(self.inner.config.acquire_timeout_ms);
        let deadline = Instant::now() + wait;
        let permits = loop {
            if let Ok(permits) = self.inner.budget.clone().try_acquire_many_owned(per_pool) {
                break permits;
            }
            // Budget spent: close the least recently used idle pool and try again; if none is idle, wait for
            // a pool to be released (the reaper or another eviction frees permits).
            if self.evict_one_idle().await {
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                metrics::counter!("tenant_pool_budget_exhausted_total").increment(1);
                return Err(PoolError::BudgetExhausted(wait));
            }
            let step = remaining.min(Duration::from_millis(20));
            if let Ok(Ok(permits)) =
                tokio::time::timeout(step, self.inner.budget.clone().acquire_many_owned(per_pool))
                    .await
            {
                break permits;
            }
        };
        let server = self.inner.servers.get(&tenant.db_server)?;
        let pool = PgPoolOptions::new()
            .max_connections(per_pool)
            .min_connections(0)
            .acquire_timeout(wait)
            .idle_timeout(Duration::from_secs(self.inner.config.idle_timeout_secs))
            .connect_lazy_with(server.tenant_options(&tenant.db_name));
        let lease = Arc::new(());
        let (checked_out, evicted) = {
            let mut resident = self.lock();
            // Another request may have created it meanwhile: use theirs, give our permits back.
            if let Some(existing) = resident
                .get_mut(&tenant.id)
                .filter(|r| r.location == location_of(tenant))
            {
                existing.last_used = Instant::now();
                (
                    TenantPool {
                        pool: existing.pool.clone(),
                        tenant: tenant.id,
                        _lease: existing.lease.clone(),
                    },
                    Some(pool),
                )
            } else {
                // A pool to the tenant's previous location, replaced meanwhile: closed in the background.
                if let Some(stale) = resident.remove(&tenant.id) {
                    tokio::spawn(close(stale));
                }
                resident.insert(
                    tenant.id,
                    Resident {
                        pool: pool.clone(),
                        location: location_of(tenant),
                        lease: lease.clone(),
                        last_used: Instant::now(),
                        _permits: permits,
                    },
                );
                (
                    TenantPool {
                        pool,
                        tenant: tenant.id,
                        _lease: lease,
                    },
                    None,
                )
            }
        };
        if let Some(unused) = evicted {
            unused.close().await;
        }
        while self.resident_count() > self.inner.config.max_resident {
            if !self.evict_one_idle().await {
                break;
            }
        }
        self.publish_gauges();
        Ok(checked_out)
    }

    /// The resident pool of `tenant`, if it still connects where the registry says the database is. A pool of
    /// a moved tenant's old location is dropped here (closed in the background, once its connections return),
    /// so every replica follows a move as soon as its cached tenant is refreshed.
    fn checkout(&self, tenant: &Tenant) -> Option<TenantPool> {
        let mut resident = self.lock();
        let entry = resident.get_mut(&tenant.id)?;
        if entry.location != location_of(tenant) {
            let stale = resident.remove(&tenant.id)?;
            metrics::counter!("tenant_pool_evictions_total", "reason" => "moved").increment(1);
            tokio::spawn(close(stale));
            return None;
        }
        entry.last_used = Instant::now();
        Some(TenantPool {
            pool: entry.pool.clone(),
            tenant: tenant.id,
            _lease: entry.lease.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Resident>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts/removes).
        self.inner
            .resident
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the least recently used pool nobody holds. Returns whether one was closed.
    async fn evict_one_idle(&self) -> bool {
        let victim = {
            let mut resident = self.lock();
            let oldest = resident
                .iter()
                .filter(|(_, r)| !r.in_use())
                .min_by_key(|(_, r)| r.last_used)
                .map(|(id, _)| *id);
            oldest.and_then(|id| resident.remove(&id))
        };
        match victim {
            Some(resident) => {
                close(resident).await;
                metrics::counter!("tenant_pool_evictions_total", "reason" => "lru").increment(1);
                self.publish_gauges();
                true
            }
            None => false,
        }
    }

    /// Closes and forgets `tenant`'s pool (before its database is dropped). Waits for checked-out connections.
    pub async fn evict(&self, tenant: TenantId) {
        let removed = self.lock().remove(&tenant);
        if let Some(resident) = removed {
            close(resident).await;
            self.publish_gauges();
        }
    }

    /// Closes pools unused for `idle_timeout_secs`. Run periodically by [`Self::run_reaper`].
    pub async fn reap_idle(&self) -> usize {
        let idle_for = Duration::from_secs(self.inner.config.idle_timeout_secs);
        let victims: Vec<Resident> = {
            let mut resident = self.lock();
            let ids: Vec<TenantId> = resident
                .iter()
                .filter(|(_, r)| !r.in_use() && r.last_used.elapsed() >= idle_for)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| resident.remove(id)).collect()
        };
        let count = victims.len();
        for resident in victims {
            close(resident).await;
            metrics::counter!("tenant_pool_evictions_total", "reason" => "idle").increment(1);
        }
        self.publish_gauges();
        count
    }

    pub async fn run_reaper(self, shutdown: CancellationToken) {
        let every = Duration::from_secs(self.inner.config.idle_timeout_secs.div_ceil(2).max(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => { self.reap_idle().await; }
            }
        }
        self.close_all().await;
    }

    pub async fn close_all(&self) {
        let all: Vec<Resident> = self.lock().drain().map(|(_, r)| r).collect();
        for resident in all {
            close(resident).await;
        }
        self.publish_gauges();
    }

    pub fn resident_count(&self) -> usize {
        self.lock().len()
    }

    /// Connections open across all tenant pools (idle or in use).
    pub fn open_connections(&self) -> u32 {
        self.lock().values().map(|r| r.pool.size()).sum()
    }

    /// Resident pools, open connections, and the connection budget: its size and the part reserved by resident
    /// pools (each holds `max_connections_per_tenant` permits), which the "budget exhausted" alert compares.
    pub fn publish_gauges(&self) {
        let (count, open) = {
            let resident = self.lock();
            (
                resident.len(),
                resident.values().map(|r| r.pool.size()).sum::<u32>(),
            )
        };
        metrics::gauge!("tenant_pools_resident").set(count as f64);
        metrics::gauge!("tenant_db_connections_open").set(open as f64);
        let budget = self.inner.config.total_connections as usize;
        let reserved = budget.saturating_sub(self.inner.budget.available_permits());
        metrics::gauge!("tenant_db_connections_budget").set(budget as f64);
        metrics::gauge!("tenant_db_connections_reserved").set(reserved as f64);
    }
}

fn location_of(tenant: &Tenant) -> (String, String) {
    (tenant.db_server.clone(), tenant.db_name.as_str().to_owned())
}

async fn close(resident: Resident) {
    resident.pool.close().await;
    // The permits return to the budget only now that every connection is closed.
    drop(resident);
}
