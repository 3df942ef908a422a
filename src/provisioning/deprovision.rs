//! Deleting a tenant: a recorded, resumable pipeline like provisioning (`tenant_deletion_steps`). The tenant is
//! `deleting` (no longer served); then, each step idempotent and recorded with its timing and detail:
//!
//! 1. `dump`: `pg_dump --format=custom` of its database into `tenancy.backup_dir` (kept
//!    `tenancy.backup_retention_days`);
//! 2. `drop_database` (skipped with `keep_data`): never without the dump;
//! 3. `crm_workspace` (skipped with `keep_data`): the Twenty workspace with the customer data synced into it;
//! 4. `identity`: the Clerk organization, and its users who belong to no other organization;
//! 5. `credentials`: sealed third-party credentials erased (Salla tokens; the CRM's, unless `keep_data` keeps
//!    the workspace), caches evicted. The tenant's own API keys stay (hashes only), so that a client using one
//!    is told 410 `tenant_deleted` rather than 401;
//! 6. `finalize`: `deleted`, audited.
//!
//! A crash resumes at the first step not done; a failed step is retried by the job with backoff.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::integrations::{StepError, StepOutcome};
use super::pipeline::{ProvisionError, Provisioner};
use super::steps::StepRecord;
use crate::backup::pg::{PgEndpoint, PgToolError, PgTools};
use crate::jobs::Job;
use crate::string_enum::string_enum;
use crate::tenancy::registry::{self, AuditEntry};
use crate::tenancy::{LookupKey, Tenant, TenantId, TenantStatus};

/// The job that deletes a tenant already moved to `deleting`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteTenant {
    pub tenant_id: TenantId,
    /// Keep what holds the tenant's data (its database, its CRM workspace and the credentials to reach it):
    /// the dump is still written and the tenant is still marked deleted.
    #[serde(default)]
    pub keep_data: bool,
}

impl Job for DeleteTenant {
    const KIND: &'static str = "tenant.delete";
    const MAX_ATTEMPTS: Option<i32> = Some(5);
}

/// Removes deletion dumps older than `tenancy.backup_retention_days` (periodic).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneBackups {}

impl Job for PruneBackups {
    const KIND: &'static str = "tenancy.prune_backups";
}

/// How long pg_dump may run before the attempt is abandoned (and retried).
const DUMP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Why pg_dump did not write the dump (the `dump` step fails with it).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct DumpError(PgToolError);

impl From<DumpError> for ProvisionError {
    fn from(error: DumpError) -> Self {
        ProvisionError::Step {
            step: "dump",
            error: StepError::new(error),
        }
    }
}

string_enum! {
    /// The steps of a deletion, in order.
    pub enum DeletionStep {
        Dump = "dump",
        DropDatabase = "drop_database",
        CrmWorkspace = "crm_workspace",
        Identity = "identity",
        Credentials = "credentials",
        Finalize = "finalize",
    }
}

impl DeletionStep {
    pub fn name(self) -> &'static str {
        self.as_str()
    }

    fn position(self) -> i16 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as i16
    }
}

/// The recorded steps of `tenant`'s deletion (empty if it was never deleted).
pub async fn deletion_steps(db: &PgPool, tenant: TenantId) -> Result<Vec<StepRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, status, attempts, duration_ms, detail, error, started_at, finished_at \
         FROM tenant_deletion_steps WHERE tenant_id = $1 ORDER BY position",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
}

impl Provisioner {
    pub(super) async fn delete_tenant(&self, job: &DeleteTenant) -> Result<(), ProvisionError> {
        let tenant = registry::find(self.db(), &LookupKey::Id(job.tenant_id))
            .await?
            .ok_or_else(|| {
                ProvisionError::Permanent(format!("tenant {} is gone", job.tenant_id))
            })?;
        match tenant.status {
            TenantStatus::Deleted => return Ok(()),
            TenantStatus::Deleting => {}
            other => {
                return Err(ProvisionError::Permanent(format!(
                    "tenant is {other}, not deleting; refusing to delete"
                )));
            }
        }
        let names: Vec<&str> = DeletionStep::ALL.iter().map(|s| s.name()).collect();
        let positions: Vec<i16> = DeletionStep::ALL.iter().map(|s| s.position()).collect();
        sqlx::query(
            "INSERT INTO tenant_deletion_steps (tenant_id, position, name) \
             SELECT $1, * FROM unnest($2::int2[], $3::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.id)
        .bind(positions)
        .bind(names)
        .execute(self.db())
        .await?;
        let done: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tenant_deletion_steps WHERE tenant_id = $1 AND status IN ('succeeded', 'skipped')",
        )
        .bind(tenant.id)
        .fetch_all(self.db())
        .await?;
        for &step in DeletionStep::ALL {
            // Finalize runs until the status is `deleted` (this run found it `deleting`), even when a crash
            // came between recording it and the status change.
            if step != DeletionStep::Finalize && done.iter().any(|d| d == step.name()) {
                continue;
            }
            self.run_deletion_step(&tenant, job, step).await?;
        }
        tracing::info!(event = "tenant.deleted", tenant_id = %tenant.id, keep_data = job.keep_data, "tenant deleted");
        Ok(())
    }

    async fn run_deletion_step(
        &self,
        tenant: &Tenant,
        job: &DeleteTenant,
        step: DeletionStep,
    ) -> Result<(), ProvisionError> {
        sqlx::query(
            "UPDATE tenant_deletion_steps SET status = 'running', attempts = attempts + 1, started_at = now(), \
             finished_at = NULL, error = NULL WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.id)
        .bind(step.name())
        .execute(self.db())
        .await?;
        let started = Instant::now();
        let result = self.deletion_step(tenant, job, step).await;
        let (status, detail, error) = match &result {
            Ok(StepOutcome::Done(detail)) => ("succeeded", detail.clone(), None),
            Ok(StepOutcome::Skipped(detail)) => ("skipped", Some(detail.clone()), None),
            Err(error) => ("failed", None, Some(error.to_string())),
        };
        sqlx::query(
            "UPDATE tenant_deletion_steps SET status = $3, duration_ms = $4, detail = $5, error = $6, \
             finished_at = now() WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.id)
        .bind(step.name())
        .bind(status)
        .bind(started.elapsed().as_millis() as i64)
        .bind(detail)
        .bind(error)
        .execute(self.db())
        .await?;
        metrics::counter!("tenant_deletion_steps_total", "step" => step.name(), "status" => status)
            .increment(1);
        result.map(drop)
    }

    async fn deletion_step(
        &self,
        tenant: &Tenant,
        job: &DeleteTenant,
        step: DeletionStep,
    ) -> Result<StepOutcome, ProvisionError> {
        let external =
            |step: &'static str| move |error: StepError| ProvisionError::Step { step, error };
        let server = self.servers().get(&tenant.db_server)?;
        match step {
            DeletionStep::Dump => {
                if !server.database_exists(tenant.db_name.as_str()).await? {
                    return Ok(StepOutcome::Skipped("no database".into()));
                }
                let dump = self.dump(tenant).await?;
                Ok(StepOutcome::Done(Some(dump.display().to_string())))
            }
            DeletionStep::DropDatabase => {
                if job.keep_data {
                    return Ok(StepOutcome::Skipped("keep_data".into()));
                }
                self.pools().evict(tenant.id).await;
                if server.database_exists(tenant.db_name.as_str()).await? {
                    server.drop_database(&tenant.db_name).await?;
                    Ok(StepOutcome::Done(Some(format!(
                        "dropped {}",
                        tenant.db_name
                    ))))
                } else {
                    Ok(StepOutcome::Skipped("no database".into()))
                }
            }
            DeletionStep::CrmWorkspace => {
                if job.keep_data {
                    return Ok(StepOutcome::Skipped("keep_data".into()));
                }
                self.crm()
                    .delete_workspace(tenant)
                    .await
                    .map_err(external("crm_workspace"))
            }
            DeletionStep::Identity => self
                .identity()
                .delete_tenant(tenant)
                .await
                .map_err(external("identity")),
            DeletionStep::Credentials => self.purge_credentials(tenant, job.keep_data).await,
            DeletionStep::Finalize => {
                let steps = deletion_steps(self.db(), tenant.id).await?;
                let backup = steps
                    .iter()
                    .find(|s| s.name == DeletionStep::Dump.name() && s.status == "succeeded")
                    .and_then(|s| s.detail.clone());
                let mut conn = self.db().acquire().await?;
                registry::audit(
                    &mut conn,
                    AuditEntry {
                        actor: "system",
                        action: "tenant.deleted",
                        tenant_id: Some(tenant.id),
                        request_id: None,
                        details: serde_json::json!({ "keep_data": job.keep_data, "backup": backup }),
                    },
                )
                .await?;
                // Keyed by the tenant: a finalize re-run after a crash tells the operators once.
                super::pipeline::notify(
                    &mut conn,
                    &crate::notify::Notice::DeletionFinished {
                        tenant_id: tenant.id,
                        keep_data: job.keep_data,
                        backup: backup.clone(),
                    },
                )
                .await;
                // Recorded before the status changes, so whoever sees `deleted` sees every step finished.
                sqlx::query(
                    "UPDATE tenant_deletion_steps SET status = 'succeeded', finished_at = now() \
                     WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant.id)
                .bind(DeletionStep::Finalize.name())
                .execute(&mut *conn)
                .await?;
                drop(conn);
                self.directory()
                    .transition(tenant.id, TenantStatus::Deleted, None, None)
                    .await?;
                Ok(StepOutcome::Done(None))
            }
        }
    }

    /// Erases the tenant's sealed Salla tokens and (unless the workspace is kept) its CRM credentials, and
    /// evicts it from every cache.
    async fn purge_credentials(
        &self,
        tenant: &Tenant,
        keep_data: bool,
    ) -> Result<StepOutcome, ProvisionError> {
        let mut tx = self.db().begin().await?;
        let stores = sqlx::query(
            "UPDATE salla_stores SET access_token = NULL, refresh_token = NULL, updated_at = now() \
              WHERE tenant_id = $1 AND (access_token IS NOT NULL OR refresh_token IS NOT NULL)",
        )
        .bind(tenant.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let crm = if keep_data {
            0
        } else {
            sqlx::query("DELETE FROM crm_workspaces WHERE tenant_id = $1")
                .bind(tenant.id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        };
        tx.commit().await?;
        self.directory().invalidate(tenant.id, &[]).await;
        Ok(StepOutcome::Done(Some(format!(
            "{stores} Salla store token set(s) erased, {crm} CRM credential row(s) purged"
        ))))
    }

    /// Removes deletion dumps older than `tenancy.backup_retention_days`; returns how many.
    pub async fn prune_backups(&self) -> Result<usize, ProvisionError> {
        let days = self.config().backup_retention_days;
        if days == 0 {
            return Ok(0);
        }
        prune_dumps(
            &self.config().backup_dir,
            Duration::from_secs(days * 86_400),
        )
        .await
        .map_err(|e| ProvisionError::Permanent(format!("pruning backups: {e}")))
    }

    /// `pg_dump --format=custom` of the tenant database into the backup folder; returns the file. The password
    /// goes through the environment, never the command line.
    async fn dump(&self, tenant: &Tenant) -> Result<PathBuf, ProvisionError> {
        let dir = &self.config().backup_dir;
        tokio::fs::create_dir_all(dir).await.map_err(|e| {
            ProvisionError::Permanent(format!("cannot create {}: {e}", dir.display()))
        })?;
        let stamp = OffsetDateTime::now_utc().unix_timestamp();
        let file = dir.join(format!("{}-{}-{stamp}.dump", tenant.slug, tenant.db_name));
        let partial = file.with_extension("dump.partial");
        let source = PgEndpoint::tenant(self.servers(), &tenant.db_server, tenant.db_name.as_str())
            .map_err(DumpError)?;
        let tools = PgTools::new(self.config().pg_dump_path.clone(), "", DUMP_TIMEOUT);
        tools.dump(&source, &partial).await.map_err(DumpError)?;
        // Only a complete dump gets the final name, so a file named *.dump is always usable.
        tokio::fs::rename(&partial, &file)
            .await
            .map_err(|e| ProvisionError::Permanent(format!("cannot rename the dump: {e}")))?;
        Ok(file)
    }
}

/// Deletes `*.dump` files in `dir` modified longer than `older_than` ago (partial dumps are left to the next
/// attempt of their deletion, which replaces them).
async fn prune_dumps(dir: &Path, older_than: Duration) -> std::io::Result<usize> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "dump") {
            continue;
        }
        let modified = entry.metadata().await?.modified()?;
        if modified.elapsed().unwrap_or_default() > older_than {
            tokio::fs::remove_file(&path).await?;
            tracing::info!(file = %path.display(), "deletion backup past its retention removed");
            removed += 1;
        }
    }
    Ok(removed)
}
