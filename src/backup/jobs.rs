//! The backup jobs: `backup.run` (a set), `backup.prune` (retention) and `backup.drill` (a restore drill),
//! scheduled every `backup.interval_secs`, `backup.prune_interval_secs` and `backup.drill_interval_secs`
//! when `backup.enabled`; they can also be enqueued by hand (`POST /api/admin/jobs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Backups;
use crate::jobs::{Job, JobError, NewJob, Registry};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunBackup {}

impl Job for RunBackup {
    const KIND: &'static str = "backup.run";
    // A second attempt makes a second set; the next scheduled run is the retry.
    const MAX_ATTEMPTS: Option<i32> = Some(1);
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneBackups {}

impl Job for PruneBackups {
    const KIND: &'static str = "backup.prune";
    const MAX_ATTEMPTS: Option<i32> = Some(3);
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreDrill {
    /// A tenant (id or slug); a random one when absent.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl Job for RestoreDrill {
    const KIND: &'static str = "backup.drill";
    const MAX_ATTEMPTS: Option<i32> = Some(1);
}

/// Registers the handlers, and the schedules when `backup.enabled`.
pub fn register_jobs(registry: &mut Registry, backups: Backups) -> Result<(), serde_json::Error> {
    let config = backups.core().config().backup.clone();
    let b = backups.clone();
    registry.register(move |_ctx, _job: RunBackup| {
        let backups = b.clone();
        async move {
            let report = backups.run().await.map_err(JobError::retry)?;
            if report.failures > 0 {
                return Err(JobError::permanent(format!(
                    "backup set {} is {}: {} of {} databases failed",
                    report.set_id, report.status, report.failures, report.databases
                )));
            }
            Ok(())
        }
    });
    let b = backups.clone();
    registry.register(move |_ctx, _job: PruneBackups| {
        let backups = b.clone();
        async move {
            let report = backups.prune().await.map_err(JobError::retry)?;
            tracing::info!(
                kept = report.kept.len(),
                pruned = report.pruned.len(),
                "backup sets pruned"
            );
            Ok(())
        }
    });
    let b = backups;
    registry.register(move |_ctx, job: RestoreDrill| {
        let backups = b.clone();
        async move {
            let report = backups
                .drill(job.tenant.as_deref())
                .await
                .map_err(JobError::retry)?;
            if report.outcome == "failed" {
                return Err(JobError::permanent(format!(
                    "restore drill failed: {}",
                    report.error.unwrap_or_default()
                )));
            }
            Ok(())
        }
    });
    if config.enabled {
        registry.periodic(
            RunBackup::KIND,
            Duration::from_secs(config.interval_secs),
            NewJob::new(&RunBackup {})?,
        );
        registry.periodic(
            PruneBackups::KIND,
            Duration::from_secs(config.prune_interval_secs),
            NewJob::new(&PruneBackups {})?,
        );
        registry.periodic(
            RestoreDrill::KIND,
            Duration::from_secs(config.drill_interval_secs),
            NewJob::new(&RestoreDrill::default())?,
        );
    }
    Ok(())
}
