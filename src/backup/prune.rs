//! Applies the retention policy: finished sets the policy does not keep are deleted from the target (and
//! marked pruned in the history). Sets still running, and sets of the target not in the history (another
//! deployment's, or the history was lost), are judged by their manifest's time like the others.

use serde::Serialize;

use super::{BackupError, Backups, manifest, record, retention};

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub pruned: Vec<String>,
}

impl Backups {
    pub async fn prune(&self) -> Result<PruneReport, BackupError> {
        let db = self.core.db();
        let running: Vec<String> =
            sqlx::query_scalar("SELECT id FROM backup_sets WHERE status = 'running'")
                .fetch_all(db)
                .await?;
        let failed: Vec<String> =
            sqlx::query_scalar("SELECT id FROM backup_sets WHERE status = 'failed'")
                .fetch_all(db)
                .await?;
        let ids = self.target.set_ids().await?;
        // Failed sets hold nothing restorable: they never count toward the policy.
        let candidates: Vec<(String, time::OffsetDateTime)> = ids
            .iter()
            .filter(|id| !running.contains(id) && !failed.contains(id))
            .filter_map(|id| manifest::set_time(id).map(|at| (id.clone(), at)))
            .collect();
        let keep = retention::keep(&candidates, &self.core.config().backup.retention);
        let mut report = PruneReport {
            kept: vec![],
            pruned: vec![],
        };
        for id in ids {
            if running.contains(&id) || keep.contains(&id) {
                report.kept.push(id);
                continue;
            }
            let deleted = self.target.delete_set(&id).await?;
            record::mark_pruned(db, &id).await?;
            tracing::info!(set_id = %id, objects = deleted, "backup set pruned");
            report.pruned.push(id);
        }
        Ok(report)
    }
}
