//! The restore drill: one random live tenant's newest backup restored into a scratch database on its server,
//! every table counted there and in the live database, the scratch database dropped. Rows written since the
//! backup make the live counts differ; the differences are reported, not failed on. The drill fails when the
//! restore fails or a table of the live database is missing from the restored one.

use rand::seq::IndexedRandom;
use serde::Serialize;
use serde_json::json;

use super::restore::{TableCount, table_counts};
use super::{BackupError, Backups, record};
use crate::tenancy::{Tenant, TenantId};

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// `passed`, `failed`, or `skipped` (no tenant with a backup).
    pub outcome: String,
    pub tenant_id: Option<TenantId>,
    pub set_id: Option<String>,
    pub scratch_database: Option<String>,
    pub tables: usize,
    /// Tables whose row count differs: restored vs live now.
    pub differences: Vec<Difference>,
    /// Tables of the live database the restored one lacks.
    pub missing: Vec<String>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub table: String,
    pub restored: i64,
    pub live: i64,
}

/// Tables in `live` that are missing from `restored`, and those whose counts differ.
pub fn compare(restored: &[TableCount], live: &[TableCount]) -> (Vec<String>, Vec<Difference>) {
    let mut missing = vec![];
    let mut differences = vec![];
    for table in live {
        match restored.iter().find(|r| r.table == table.table) {
            None => missing.push(table.table.clone()),
            Some(r) if r.rows != table.rows => differences.push(Difference {
                table: table.table.clone(),
                restored: r.rows,
                live: table.rows,
            }),
            Some(_) => {}
        }
    }
    (missing, differences)
}

impl Backups {
    /// Runs a drill on `tenant` (by id or slug), or on a random live tenant that has a backup.
    pub async fn drill(&self, tenant: Option<&str>) -> Result<DrillReport, BackupError> {
        let started = std::time::Instant::now();
        let db = self.core.db();
        let tenant: Option<Tenant> = match tenant {
            Some(key) => Some(super::restore::find_tenant(db, key).await?),
            None => {
                let cols = crate::tenancy::registry::TENANT_COLUMNS;
                let candidates: Vec<Tenant> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {cols} FROM tenants t WHERE status IN ('ready', 'suspended') AND EXISTS \
                       (SELECT 1 FROM backup_entries e WHERE e.tenant_id = t.id AND e.status = 'succeeded')"
                )))
                .fetch_all(db)
                .await?;
                candidates.choose(&mut rand::rng()).cloned()
            }
        };
        let mut report = DrillReport {
            outcome: "skipped".into(),
            tenant_id: tenant.as_ref().map(|t| t.id),
            set_id: None,
            scratch_database: None,
            tables: 0,
            differences: vec![],
            missing: vec![],
            error: None,
            duration_ms: 0,
        };
        if let Some(tenant) = &tenant {
            let scratch = format!(
                "wosool_drill_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            report.scratch_database = Some(scratch.clone());
            let result = self.drill_tenant(tenant, &scratch, &mut report).await;
            if let Ok(server) = self.core.servers().get(&tenant.db_server)
                && let Err(error) = server.drop_database_named(&scratch).await
            {
                tracing::warn!(database = %scratch, error = %error, "dropping the drill's scratch database failed");
            }
            match result {
                Ok(()) if report.missing.is_empty() => report.outcome = "passed".into(),
                Ok(()) => {
                    report.outcome = "failed".into();
                    report.error = Some(format!(
                        "tables missing from the backup: {:?}",
                        report.missing
                    ));
                }
                Err(error) => {
                    report.outcome = "failed".into();
                    report.error = Some(error.to_string());
                }
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        metrics::counter!("backup_restore_drill_total", "outcome" => report.outcome.clone())
            .increment(1);
        let details = json!({
            "tables": report.tables,
            "differences": report.differences,
            "missing": report.missing,
            "error": report.error,
            "duration_ms": report.duration_ms,
        });
        record::record_drill(
            db,
            report.tenant_id,
            report.set_id.as_deref(),
            &report.outcome,
            &details,
        )
        .await?;
        if report.outcome == "failed" {
            tracing::error!(tenant_id = ?report.tenant_id, set_id = ?report.set_id, error = ?report.error, "restore drill failed");
            let notice = crate::notify::Notice::BackupFailed {
                set_id: report.set_id.clone().unwrap_or_else(|| "drill".to_owned()),
                scope: "restore_drill".to_owned(),
                tenant_id: report.tenant_id,
                error: report
                    .error
                    .clone()
                    .unwrap_or_else(|| "the restore drill failed".to_owned()),
            };
            if let Err(error) = crate::notify::enqueue(db, &notice).await {
                tracing::warn!(%error, "could not raise the backup_failed notice of the drill");
            }
        } else {
            tracing::info!(tenant_id = ?report.tenant_id, outcome = %report.outcome, differences = report.differences.len(), "restore drill finished");
        }
        Ok(report)
    }

    async fn drill_tenant(
        &self,
        tenant: &Tenant,
        scratch: &str,
        report: &mut DrillReport,
    ) -> Result<(), BackupError> {
        let (set_id, entry) = self.tenant_entry(tenant.id, None).await?;
        report.set_id = Some(set_id);
        self.restore_entry(&entry, &tenant.db_server, scratch)
            .await?;
        let server = self.core.servers().get(&tenant.db_server)?;
        let restored = table_counts(server.options_named(scratch)).await?;
        let live = table_counts(server.tenant_options(&tenant.db_name)).await?;
        let (missing, differences) = compare(&restored, &live);
        report.tables = restored.len();
        report.missing = missing;
        report.differences = differences;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, i64)]) -> Vec<TableCount> {
        pairs
            .iter()
            .map(|(t, n)| TableCount {
                table: t.to_string(),
                rows: *n,
            })
            .collect()
    }

    #[test]
    fn differences_and_missing_tables_are_reported() {
        let restored = counts(&[("orders", 10), ("customers", 5)]);
        let live = counts(&[("orders", 12), ("customers", 5), ("notes", 1)]);
        let (missing, differences) = compare(&restored, &live);
        assert_eq!(missing, vec!["notes".to_owned()]);
        assert_eq!(differences.len(), 1);
        assert_eq!((differences[0].restored, differences[0].live), (10, 12));
    }
}
