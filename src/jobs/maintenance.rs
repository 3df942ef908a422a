//! Jobs the queue runs on itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::job::{Job, JobError, NewJob};
use super::registry::Registry;
use crate::config::JobsConfig;

/// Deletes finished jobs past their retention. Periodic (`jobs.prune_interval_secs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneFinishedJobs {
    pub retention_hours: u64,
    pub discarded_retention_hours: u64,
}

impl Job for PruneFinishedJobs {
    const KIND: &'static str = "jobs.prune";
    const MAX_ATTEMPTS: Option<i32> = Some(3);
}

/// Rows deleted per statement: short transactions that never hold many locks at once.
const PRUNE_BATCH: i64 = 10_000;

impl PruneFinishedJobs {
    /// Deletes what is due and returns how many jobs were removed.
    pub async fn run(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM jobs WHERE id IN ( \
                     SELECT id FROM jobs WHERE \
                         (state IN ('succeeded', 'cancelled') AND finished_at < now() - $1 * interval '1 hour') \
                      OR (state = 'discarded' AND finished_at < now() - $2 * interval '1 hour') \
                     LIMIT $3)",
            )
            .bind(self.retention_hours as i64)
            .bind(self.discarded_retention_hours as i64)
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await?
            .rows_affected();
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// Registers the queue's own handlers and schedules.
pub fn register_builtin(
    registry: &mut Registry,
    pool: PgPool,
    config: &JobsConfig,
) -> Result<(), serde_json::Error> {
    registry.register(move |_ctx, job: PruneFinishedJobs| {
        let pool = pool.clone();
        async move {
            let deleted = job.run(&pool).await.map_err(JobError::retry)?;
            tracing::info!(deleted, "pruned finished jobs");
            Ok(())
        }
    });
    let prune = PruneFinishedJobs {
        retention_hours: config.retention_hours,
        discarded_retention_hours: config.discarded_retention_hours,
    };
    registry.periodic(
        PruneFinishedJobs::KIND,
        Duration::from_secs(config.prune_interval_secs),
        NewJob::new(&prune)?,
    );
    Ok(())
}
