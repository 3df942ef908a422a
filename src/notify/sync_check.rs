//! `notify.sync_check` (periodic, `notify.sync_check_interval_secs`): finds stores whose Salla sync has been
//! failing for `notify.sync_failing_after_secs` and raises `SyncFailing` for them. A resource is failing from
//! its first failed attempt until a page is written again (`sync_state.failing_since`, kept by
//! `salla/import.rs` and `salla/details.rs`); the notice's daily dedupe key makes an hourly check tell a
//! merchant at most once a day.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::notice::Notice;
use crate::core::Core;
use crate::jobs::{Job, JobError};
use crate::tenancy::{LookupKey, TenantId};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncCheck {}

impl Job for SyncCheck {
    const KIND: &'static str = "notify.sync_check";
    const MAX_ATTEMPTS: Option<i32> = Some(3);
}

/// Checks every installed store's tenant; a tenant whose database cannot be reached is skipped (its sync
/// cannot run either, and the next check looks again).
pub async fn run(core: &Core) -> Result<usize, JobError> {
    let after = Duration::from_secs(core.config().notify.sync_failing_after_secs);
    let mut raised = 0;
    for tenant_id in crate::salla::store_status::installed_tenants(core.db()).await? {
        match failing(core, tenant_id, after).await {
            Ok(Some(notice)) => {
                super::enqueue(core.db(), &notice)
                    .await
                    .map_err(JobError::retry)?;
                raised += 1;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(tenant_id = %tenant_id, error = %error, "sync check skipped a tenant");
            }
        }
    }
    Ok(raised)
}

async fn failing(
    core: &Core,
    tenant_id: TenantId,
    after: Duration,
) -> Result<Option<Notice>, Box<dyn std::error::Error + Send + Sync>> {
    let Some(tenant) = core.directory().resolve(&LookupKey::Id(tenant_id)).await? else {
        return Ok(None);
    };
    let pool = core.pools().get(&tenant).await?;
    let cutoff = OffsetDateTime::now_utc() - after;
    let rows: Vec<(String, OffsetDateTime)> = sqlx::query_as(
        "SELECT resource, failing_since FROM sync_state WHERE failing_since <= $1 ORDER BY resource",
    )
    .bind(cutoff)
    .fetch_all(&*pool)
    .await?;
    let Some(since) = rows.iter().map(|(_, since)| *since).min() else {
        return Ok(None);
    };
    Ok(Some(Notice::SyncFailing {
        tenant_id,
        resources: rows.into_iter().map(|(resource, _)| resource).collect(),
        failing_since: since,
    }))
}
