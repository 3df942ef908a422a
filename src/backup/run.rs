//! One backup run: a new set holding every database, dumped with bounded concurrency. A database that fails
//! is recorded as failed and the others go on; the set is `succeeded`, `partial` or `failed`.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::manifest::{self, Entry, Manifest, Scope};
use super::pg::PgEndpoint;
use super::{BackupError, Backups, Staging, record};
use crate::tenancy::Tenant;

/// One database to dump.
#[derive(Debug, Clone)]
enum Source {
    Global,
    Tenant(Box<Tenant>),
    Crm { key: String, url: String },
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub set_id: String,
    pub status: String,
    pub target: String,
    pub databases: usize,
    pub failures: usize,
    pub bytes: u64,
    pub duration_ms: u64,
    /// The databases that failed: scope, name and why.
    pub failed: Vec<FailedEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedEntry {
    pub scope: Scope,
    pub name: String,
    pub error: String,
}

impl Backups {
    /// Dumps every database into a new set; `Err` only when the set itself could not be recorded or written
    /// (a failing database is reported in the result).
    pub async fn run(&self) -> Result<RunReport, BackupError> {
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        let set_id = manifest::new_set_id(started_at);
        let db = self.core.db();
        record::start_set(db, &set_id, self.target.describe()).await?;
        tracing::info!(set_id = %set_id, target = %self.target.describe(), "backup run started");

        let sources = self.sources().await?;
        let staging = Arc::new(self.staging(&set_id)?);
        let permits = Arc::new(Semaphore::new(self.core.config().backup.concurrency));
        let mut tasks = JoinSet::new();
        for source in sources {
            let this = self.clone();
            let set_id = set_id.clone();
            let staging = staging.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                let entry = this.back_up(&set_id, &staging, source).await;
                if let Err(error) = record::record_entry(this.core.db(), &set_id, &entry).await {
                    tracing::warn!(set_id = %set_id, error = %error, "recording a backup entry failed");
                }
                entry
            });
        }
        let mut entries = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(entry) => entries.push(entry),
                Err(error) => tracing::error!(error = %error, "a backup task panicked"),
            }
        }
        drop(staging);
        entries.sort_by(|a, b| (a.scope.as_str(), &a.name).cmp(&(b.scope.as_str(), &b.name)));

        let failures = entries.iter().filter(|e| e.status != "succeeded").count();
        let bytes: u64 = entries.iter().map(|e| e.size_bytes).sum();
        let manifest = Manifest {
            format: manifest::FORMAT,
            set_id: set_id.clone(),
            started_at,
            finished_at: Some(OffsetDateTime::now_utc()),
            target: self.target.describe().to_owned(),
            entries: entries.clone(),
        };
        let written = self
            .target
            .put_small(
                &Manifest::object(&set_id),
                serde_json::to_vec_pretty(&manifest)?,
            )
            .await;
        let status = if written.is_err() || failures == entries.len() {
            "failed"
        } else if failures > 0 {
            "partial"
        } else {
            "succeeded"
        };
        record::finish_set(db, &set_id, status, entries.len(), failures, bytes).await?;
        self.publish_metrics(&entries, status, started.elapsed().as_secs_f64(), bytes)
            .await;
        written?;
        let report = RunReport {
            set_id,
            status: status.to_owned(),
            target: self.target.describe().to_owned(),
            databases: entries.len(),
            failures,
            bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            failed: entries
                .iter()
                .filter(|e| e.status != "succeeded")
                .map(|e| FailedEntry {
                    scope: e.scope,
                    name: e.name.clone(),
                    error: e.error.clone().unwrap_or_default(),
                })
                .collect(),
        };
        if failures > 0 {
            tracing::error!(set_id = %report.set_id, failures, failed = ?report.failed, "backup run finished with failures");
            notify_failure(db, &report).await;
        } else {
            tracing::info!(set_id = %report.set_id, databases = report.databases, bytes, "backup run finished");
        }
        Ok(report)
    }

    /// The global database, every live tenant, and the Twenty databases when configured.
    async fn sources(&self) -> Result<Vec<Source>, BackupError> {
        let config = self.core.config();
        let mut sources = vec![Source::Global];
        let cols = crate::tenancy::registry::TENANT_COLUMNS;
        let tenants: Vec<Tenant> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE status IN ('ready', 'suspended') ORDER BY created_at"
        )))
        .fetch_all(self.core.db())
        .await?;
        sources.extend(tenants.into_iter().map(|t| Source::Tenant(Box::new(t))));
        if config.backup.include_crm {
            for instance in config.crm.instances() {
                if !instance.database_url.is_empty() {
                    sources.push(Source::Crm {
                        key: instance.key.clone(),
                        url: instance.database_url.expose().to_owned(),
                    });
                }
            }
        }
        Ok(sources)
    }

    /// Dumps, checks and uploads one database; never fails (a failure is an entry with its error).
    async fn back_up(&self, set_id: &str, staging: &Staging, source: Source) -> Entry {
        let started = Instant::now();
        let (scope, name, tenant_id, server, schema_version, object) = match &source {
            Source::Global => (
                Scope::Global,
                "global".to_owned(),
                None,
                String::new(),
                None,
                format!("{set_id}/global.dump"),
            ),
            Source::Tenant(t) => (
                Scope::Tenant,
                t.slug.to_string(),
                Some(t.id),
                t.db_server.clone(),
                Some(t.schema_version),
                format!("{set_id}/tenants/{}.dump", t.id),
            ),
            Source::Crm { key, .. } => (
                Scope::Crm,
                key.clone(),
                None,
                String::new(),
                None,
                format!("{set_id}/crm/{key}.dump"),
            ),
        };
        let endpoint = match &source {
            Source::Global => PgEndpoint::from_url(self.core.config().db.url.expose()),
            Source::Tenant(t) => {
                PgEndpoint::tenant(self.core.servers(), &t.db_server, t.db_name.as_str())
            }
            Source::Crm { url, .. } => PgEndpoint::from_url(url),
        };
        let mut entry = Entry {
            scope,
            name,
            tenant_id,
            server,
            database: endpoint
                .as_ref()
                .map(|e| e.database.clone())
                .unwrap_or_default(),
            schema_version,
            status: "failed".into(),
            error: None,
            object,
            size_bytes: 0,
            sha256: String::new(),
            dump_bytes: 0,
            toc_entries: 0,
            duration_ms: 0,
            encrypted: false,
            key_id: None,
        };
        let file = staging.file(&format!(
            "{}-{}.dump",
            scope.as_str(),
            uuid::Uuid::new_v4().simple()
        ));
        let result: Result<(), BackupError> = async {
            let endpoint = endpoint?;
            self.tools.dump(&endpoint, &file).await?;
            entry.dump_bytes = tokio::fs::metadata(&file).await?.len();
            // The check and the upload read the same file at the same time; a dump that fails the check is
            // recorded as failed (its object is never used: restores and verify take succeeded entries only).
            let (listed, stored) = tokio::join!(
                self.tools.list(&file),
                self.target.upload(&file, &entry.object, true)
            );
            entry.toc_entries = listed?;
            let stored = stored?;
            entry.size_bytes = stored.size;
            entry.sha256 = stored.sha256;
            entry.encrypted = stored.key_id.is_some();
            entry.key_id = stored.key_id;
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&file).await;
        entry.duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => entry.status = "succeeded".into(),
            Err(error) => {
                tracing::warn!(set_id, scope = scope.as_str(), name = %entry.name, tenant_id = ?entry.tenant_id,
                    error = %error, "backing up a database failed");
                metrics::counter!("backup_failures_total", "scope" => scope.as_str()).increment(1);
                entry.error = Some(error.to_string());
            }
        }
        entry
    }

    async fn publish_metrics(&self, entries: &[Entry], status: &str, seconds: f64, bytes: u64) {
        metrics::counter!("backup_runs_total", "outcome" => status.to_owned()).increment(1);
        metrics::histogram!("backup_duration_seconds").record(seconds);
        metrics::counter!("backup_bytes_total").increment(bytes);
        let now = OffsetDateTime::now_utc().unix_timestamp() as f64;
        for scope in Scope::ALL {
            let of_scope: Vec<&Entry> = entries.iter().filter(|e| e.scope == scope).collect();
            if !of_scope.is_empty() && of_scope.iter().all(|e| e.status == "succeeded") {
                metrics::gauge!("backup_last_success_timestamp_seconds", "scope" => scope.as_str())
                    .set(now);
            }
        }
        refresh_failing_gauge(self.core.db()).await;
    }
}

/// The backup gauges from the history in the global database: `backup_last_success_timestamp_seconds` per
/// scope and `backup_tenants_failing`. Sampled by every replica with backups on (telemetry::fleet), so the
/// gauges survive restarts and do not depend on which worker ran the last set.
pub async fn publish_history_gauges(db: &sqlx::PgPool) {
    match record::last_success_by_scope(db).await {
        Ok(rows) => {
            for (scope, at) in rows {
                metrics::gauge!("backup_last_success_timestamp_seconds", "scope" => scope).set(at);
            }
        }
        Err(error) => {
            tracing::debug!(error = %error, "cannot read the backup history for its gauges")
        }
    }
    refresh_failing_gauge(db).await;
}

/// `backup_tenants_failing`: live tenants whose most recent backup attempt failed.
pub async fn refresh_failing_gauge(db: &sqlx::PgPool) {
    match record::failing_tenants(db).await {
        Ok(failing) => metrics::gauge!("backup_tenants_failing").set(failing.len() as f64),
        Err(error) => {
            tracing::warn!(error = %error, "counting tenants with failing backups failed")
        }
    }
}

/// Tells the operators about a run with failed databases: one notice per set (deduplicated per set and scope),
/// naming the first failures. A notice that cannot be raised is logged, never fails the run.
async fn notify_failure(db: &sqlx::PgPool, report: &RunReport) {
    let mut scopes: Vec<&str> = report.failed.iter().map(|f| f.scope.as_str()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut error = format!(
        "{} of {} databases failed: ",
        report.failed.len(),
        report.databases
    );
    let listed: Vec<String> = report
        .failed
        .iter()
        .take(5)
        .map(|f| format!("{} {}: {}", f.scope.as_str(), f.name, f.error))
        .collect();
    error.push_str(&listed.join("; "));
    if report.failed.len() > listed.len() {
        error.push_str(&format!(
            "; and {} more",
            report.failed.len() - listed.len()
        ));
    }
    let notice = crate::notify::Notice::BackupFailed {
        set_id: report.set_id.clone(),
        scope: scopes.join(","),
        tenant_id: None,
        error,
    };
    if let Err(error) = crate::notify::enqueue(db, &notice).await {
        tracing::warn!(set_id = %report.set_id, %error, "could not raise the backup_failed notice");
    }
}
