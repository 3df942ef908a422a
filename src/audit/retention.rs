//! `audit.prune`: deletes audit entries past `[audit] retention_days` (global log) and
//! `tenant_retention_days` (every served tenant's log), in batches so no statement holds locks for long.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::core::Core;
use crate::jobs::{Job, JobError, NewJob, Registry};
use crate::tenancy::TenantStatus;
use crate::tenancy::registry::{self, TenantFilter};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneAudit {
    pub retention_days: u64,
    pub tenant_retention_days: u64,
    pub batch: u64,
}

impl Job for PruneAudit {
    const KIND: &'static str = "audit.prune";
    const MAX_ATTEMPTS: Option<i32> = Some(3);
}

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub global: u64,
    pub tenant: u64,
    pub tenants: u64,
}

/// Tenants read per page while walking the fleet.
const TENANT_PAGE: i64 = 200;

impl PruneAudit {
    pub async fn run(&self, core: &Core) -> Result<Pruned, sqlx::Error> {
        let now = OffsetDateTime::now_utc();
        let days = |d: u64| time::Duration::days(d.min(36_500) as i64);
        let batch = self.batch.clamp(1, 100_000) as i64;
        let mut pruned = Pruned {
            global: super::global::prune(core.db(), now - days(self.retention_days), batch).await?,
            ..Pruned::default()
        };
        let cutoff = now - days(self.tenant_retention_days);
        for status in [TenantStatus::Ready, TenantStatus::Suspended] {
            let mut filter = TenantFilter {
                status: Some(status),
                limit: TENANT_PAGE,
                ..TenantFilter::default()
            };
            loop {
                let tenants = registry::list(core.db(), &filter).await?;
                for tenant in &tenants {
                    // One tenant that cannot be reached does not stop the others; the next run retries it.
                    let result = match core.pools().get(tenant).await {
                        Ok(pool) => super::tenant::prune(&pool, cutoff, batch)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    };
                    match result {
                        Ok(deleted) => {
                            pruned.tenant += deleted;
                            pruned.tenants += 1;
                        }
                        Err(error) => {
                            tracing::warn!(tenant_id = %tenant.id, error = %error, "pruning a tenant audit log failed")
                        }
                    }
                }
                match tenants.last() {
                    Some(last) if tenants.len() as i64 == TENANT_PAGE => {
                        filter.after = Some((last.created_at, last.id));
                    }
                    _ => break,
                }
            }
        }
        Ok(pruned)
    }
}

/// Registers `audit.prune` and its schedule.
pub fn register_jobs(registry: &mut Registry, core: Core) -> Result<(), serde_json::Error> {
    let config = core.config().audit.clone();
    let job = PruneAudit {
        retention_days: config.retention_days,
        tenant_retention_days: config.tenant_retention_days,
        batch: config.prune_batch,
    };
    registry.register(move |_ctx, job: PruneAudit| {
        let core = core.clone();
        async move {
            let pruned = job.run(&core).await.map_err(JobError::retry)?;
            tracing::info!(
                global = pruned.global,
                tenant = pruned.tenant,
                tenants = pruned.tenants,
                "pruned old audit entries"
            );
            Ok(())
        }
    });
    registry.periodic(
        PruneAudit::KIND,
        Duration::from_secs(config.prune_interval_secs),
        NewJob::new(&job)?,
    );
    Ok(())
}
