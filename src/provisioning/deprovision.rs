//! Deleting a tenant, in two phases: the tenant is `deleting` (no longer served), its database is dumped to the
//! backup folder, then dropped, then the tenant is `deleted`. Each phase is idempotent, so the job resumes
//! after a crash; the database is never dropped without a dump.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::pipeline::{ProvisionError, Provisioner};
use crate::jobs::Job;
use crate::tenancy::registry::{self, AuditEntry};
use crate::tenancy::{LookupKey, Tenant, TenantId, TenantStatus};

/// The job that deletes a tenant already moved to `deleting`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteTenant {
    pub tenant_id: TenantId,
    /// Dump but do not drop the database (the tenant is still marked deleted).
    #[serde(default)]
    pub keep_data: bool,
}

impl Job for DeleteTenant {
    const KIND: &'static str = "tenant.delete";
    const MAX_ATTEMPTS: Option<i32> = Some(5);
}

/// How long pg_dump may run before the attempt is abandoned (and retried).
const DUMP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

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
        let server = self.servers().get(&tenant.db_server)?;
        let mut details = serde_json::json!({ "keep_data": job.keep_data });
        if server.database_exists(tenant.db_name.as_str()).await? {
            let dump = self.dump(&tenant).await?;
            details["backup"] = serde_json::json!(dump.display().to_string());
            self.pools().evict(tenant.id).await;
            if !job.keep_data {
                server.drop_database(&tenant.db_name).await?;
            }
        }
        self.directory()
            .transition(tenant.id, TenantStatus::Deleted, None, None)
            .await?;
        let mut conn = self.db().acquire().await?;
        registry::audit(
            &mut conn,
            AuditEntry {
                actor: "system",
                action: "tenant.deleted",
                tenant_id: Some(tenant.id),
                request_id: None,
                details,
            },
        )
        .await?;
        tracing::info!(event = "tenant.deleted", tenant_id = %tenant.id, keep_data = job.keep_data, "tenant deleted");
        Ok(())
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
        let server = self.servers().get(&tenant.db_server)?;
        let target = server.dump_target(&tenant.db_name);
        let mut command = tokio::process::Command::new(&self.config().pg_dump_path);
        command
            .arg("--format=custom")
            .arg("--no-password")
            .arg("--file")
            .arg(&partial)
            .arg("--host")
            .arg(&target.host)
            .arg("--port")
            .arg(target.port.to_string())
            .arg("--username")
            .arg(&target.user)
            .arg("--dbname")
            .arg(&target.database)
            .kill_on_drop(true);
        if let Some(password) = self.servers().password(&tenant.db_server) {
            command.env("PGPASSWORD", password);
        }
        let output = tokio::time::timeout(DUMP_TIMEOUT, command.output())
            .await
            .map_err(|_| ProvisionError::Step {
                step: "dump",
                message: format!("pg_dump did not finish within {DUMP_TIMEOUT:?}"),
            })?
            .map_err(|e| ProvisionError::Step {
                step: "dump",
                message: format!("cannot run {}: {e}", self.config().pg_dump_path),
            })?;
        if !output.status.success() {
            return Err(ProvisionError::Step {
                step: "dump",
                message: format!(
                    "pg_dump exited with {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        // Only a complete dump gets the final name, so a file named *.dump is always usable.
        tokio::fs::rename(&partial, &file)
            .await
            .map_err(|e| ProvisionError::Permanent(format!("cannot rename the dump: {e}")))?;
        Ok(file)
    }
}
