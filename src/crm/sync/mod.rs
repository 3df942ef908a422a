//! Record sync: tenant writes → `crm_outbox` (triggers, same transaction) → job `crm.sync` → Twenty REST
//! batch upserts. One job per tenant at a time (unique key); a periodic sweep enqueues it for every tenant
//! with a ready workspace and pending rows, and other code can enqueue it for one tenant ([`enqueue`]).

pub mod outbox;
pub mod push;
pub mod records;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::CrmConfig;
use crate::core::Core;
use crate::crm::workspace;
use crate::jobs::{Job, JobError, JobQueue, NewJob, Registry};
use crate::outbound::ClientError;
use crate::secrets::Keyring;
use crate::tenancy::{TenantDirectory, TenantId, TenantPools};
use outbox::{OutboxStats, Pending};
use push::Workspace;
use records::SyncObject;

/// Pushes one tenant's pending outbox rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncTenant {
    pub tenant_id: TenantId,
}

impl Job for SyncTenant {
    const KIND: &'static str = "crm.sync";
}

/// Enqueues [`SyncTenant`] for every tenant with a ready workspace and pending outbox rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncSweep {}

impl Job for SyncSweep {
    const KIND: &'static str = "crm.sync_sweep";
}

/// How often the sweep runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Outbox rows read per round; a run stops after [`MAX_ROUNDS`] rounds (the sweep brings it back) so that a
/// tenant written to without pause cannot hold a worker forever.
const ROWS_PER_ROUND: i64 = 600;
const MAX_ROUNDS: usize = 20;

/// Tenants whose records can be pushed: workspace provisioned, data model applied at some version.
macro_rules! syncable_workspaces {
    () => {
        concat!(
            "SELECT w.tenant_id FROM crm_workspaces w \
             WHERE w.step = 'ready' AND w.api_key_token IS NOT NULL AND w.manifest_version > 0 AND ",
            $crate::tenancy::registry::tenant_sql!(serving "w.tenant_id")
        )
    };
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("tenant {0} not found")]
    UnknownTenant(TenantId),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("tenant database: {0}")]
    Pool(String),
    #[error("workspace credentials: {0}")]
    Credentials(#[from] workspace::CredentialsError),
    #[error("pushing {object}: {error}")]
    Push {
        object: &'static str,
        error: push::PushError,
    },
    #[error("interrupted by shutdown")]
    Interrupted,
    #[error("the workspace lives on Twenty instance {0:?}, which is not configured")]
    UnknownInstance(String),
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Records upserted in Twenty.
    pub pushed: usize,
    /// Batch requests sent.
    pub requests: usize,
    /// Outbox rows whose record no longer exists (dropped without a push).
    pub skipped: usize,
    /// Rows left pending because they changed during the push (pushed again next run).
    pub changed_during_push: usize,
    /// Whether the tenant has no syncable workspace (nothing was read).
    pub not_configured: bool,
}

/// The record sync service: global registry, tenant pools, the sealed API keys, and one HTTP client.
#[derive(Clone)]
pub struct CrmSync {
    db: PgPool,
    directory: TenantDirectory,
    pools: TenantPools,
    keyring: Keyring,
    jobs: JobQueue,
    http: reqwest::Client,
    config: CrmConfig,
    /// Base URL of each configured Twenty instance, by key.
    instances: BTreeMap<String, String>,
}

impl CrmSync {
    pub fn new(core: &Core) -> Result<Self, ClientError> {
        let config = &core.config().crm;
        let http = core.http("Twenty", Duration::from_secs(config.request_timeout_secs))?;
        Ok(Self {
            db: core.db().clone(),
            directory: core.directory().clone(),
            pools: core.pools().clone(),
            keyring: core.keyring().clone(),
            jobs: core.jobs().clone(),
            http,
            config: config.clone(),
            instances: config
                .instances()
                .into_iter()
                .map(|instance| (instance.key, instance.base_url))
                .collect(),
        })
    }

    async fn tenant_db(&self, tenant: TenantId) -> Result<crate::tenancy::TenantPool, SyncError> {
        let found = self
            .directory
            .get(tenant)
            .await
            .map_err(|e| SyncError::Pool(e.to_string()))?
            .ok_or(SyncError::UnknownTenant(tenant))?;
        self.pools
            .get(&found)
            .await
            .map_err(|e| SyncError::Pool(e.to_string()))
    }

    /// Pushes `tenant`'s pending records: reads the outbox in order, builds each record from the current
    /// row, upserts in batches of `crm.sync_batch_size`, and deletes the rows that did not change meanwhile.
    /// A failed batch leaves its rows pending with the error and ends the run with that error (the job
    /// retries with backoff).
    pub async fn run_tenant(
        &self,
        tenant: TenantId,
        shutdown: &CancellationToken,
    ) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        let syncable: bool = sqlx::query_scalar(concat!(
            "SELECT EXISTS (",
            syncable_workspaces!(),
            " AND w.tenant_id = $1)"
        ))
        .bind(tenant)
        .fetch_one(&self.db)
        .await?;
        let credentials = if syncable {
            workspace::credentials(&self.db, &self.keyring, tenant).await?
        } else {
            None
        };
        let Some(credentials) = credentials.filter(|_| self.config.enabled()) else {
            report.not_configured = true;
            return Ok(report);
        };
        let base_url = self
            .instances
            .get(&credentials.instance)
            .ok_or_else(|| SyncError::UnknownInstance(credentials.instance.clone()))?;
        let db = self.tenant_db(tenant).await?;
        let remote = Workspace {
            http: &self.http,
            base_url,
            api_key: &credentials.api_key,
        };
        let pace = Duration::from_secs(60) / self.config.requests_per_minute.max(1);
        let mut last_request: Option<Instant> = None;
        let batch_size = self.config.sync_batch_size.clamp(1, 60) as usize;
        let result = async {
            for _ in 0..MAX_ROUNDS {
                let pending = outbox::pending(&db, ROWS_PER_ROUND).await?;
                if pending.is_empty() {
                    break;
                }
                let mut by_object: BTreeMap<SyncObject, Vec<&Pending>> = BTreeMap::new();
                for row in &pending {
                    by_object.entry(row.object).or_default().push(row);
                }
                for (object, rows) in by_object {
                    let ids: Vec<String> = rows.iter().map(|r| r.external_id.clone()).collect();
                    let built: BTreeMap<String, serde_json::Value> =
                        records::load(&db, object, &ids)
                            .await?
                            .into_iter()
                            .collect();
                    let (present, gone): (Vec<&Pending>, Vec<&Pending>) = rows
                        .into_iter()
                        .partition(|r| built.contains_key(&r.external_id));
                    if !gone.is_empty() {
                        outbox::complete(&db, &gone).await?;
                        report.skipped += gone.len();
                        metrics::counter!("crm_sync_records_total", "outcome" => "skipped")
                            .increment(gone.len() as u64);
                    }
                    for chunk in present.chunks(batch_size) {
                        if shutdown.is_cancelled() {
                            return Err(SyncError::Interrupted);
                        }
                        if let Some(last) = last_request {
                            tokio::time::sleep(pace.saturating_sub(last.elapsed())).await;
                        }
                        last_request = Some(Instant::now());
                        let body: Vec<serde_json::Value> = chunk
                            .iter()
                            .filter_map(|r| built.get(&r.external_id).cloned())
                            .collect();
                        report.requests += 1;
                        match remote.upsert_batch(object.plural(), &body).await {
                            Ok(_) => {
                                let deleted = outbox::complete(&db, chunk).await? as usize;
                                report.pushed += chunk.len();
                                report.changed_during_push += chunk.len() - deleted;
                                metrics::counter!("crm_sync_records_total", "outcome" => "pushed")
                                    .increment(chunk.len() as u64);
                            }
                            Err(error) => {
                                let message = error.to_string();
                                outbox::fail(&db, chunk, &message).await?;
                                metrics::counter!("crm_sync_records_total", "outcome" => "failed")
                                    .increment(chunk.len() as u64);
                                return Err(SyncError::Push {
                                    object: object.name(),
                                    error,
                                });
                            }
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Ok(stats) = outbox::stats(&db).await {
            metrics::gauge!("crm_sync_lag_seconds", "tenant" => tenant.to_string())
                .set(stats.oldest_pending_secs);
            metrics::gauge!("crm_sync_pending", "tenant" => tenant.to_string())
                .set(stats.pending as f64);
        }
        result.map(|()| report)
    }

    /// Enqueues `crm.sync` for every tenant with a syncable workspace and pending outbox rows; returns how many.
    pub async fn sweep(&self) -> Result<usize, SyncError> {
        let tenants: Vec<TenantId> = sqlx::query_scalar(syncable_workspaces!())
            .fetch_all(&self.db)
            .await?;
        let mut due = Vec::new();
        for tenant in tenants {
            let pending = match self.tenant_db(tenant).await {
                Ok(db) => outbox::has_pending(&db).await,
                Err(error) => {
                    tracing::warn!(%tenant, %error, "CRM sync sweep: tenant database unavailable");
                    continue;
                }
            };
            match pending {
                Ok(true) => due.push(sync_job(tenant)?),
                Ok(false) => {}
                Err(error) => tracing::warn!(%tenant, %error, "CRM sync sweep: outbox unreadable"),
            }
        }
        self.jobs.enqueue_many(&due).await?;
        Ok(due.len())
    }

    /// Admin visibility: what is waiting in `tenant`'s outbox and the state of its workspace.
    pub async fn status(&self, tenant: TenantId) -> Result<CrmSyncStatus, SyncError> {
        let workspace: Option<WorkspaceRow> = sqlx::query_as(
            "SELECT step, instance, waiting_since, last_error, manifest_version, manifest_error
               FROM crm_workspaces WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.db)
        .await?;
        let db = self.tenant_db(tenant).await?;
        let outbox = outbox::stats(&db).await?;
        let state = match &workspace {
            None => "none",
            Some(w) if w.step == "ready" => "ready",
            Some(w) if w.instance.is_none() && w.waiting_since.is_some() => {
                crate::crm::twenty::provision::WAITING_FOR_CAPACITY
            }
            Some(w) if w.last_error.is_some() => "failed",
            Some(_) => "provisioning",
        };
        Ok(CrmSyncStatus {
            tenant_id: tenant,
            state,
            instance: workspace.as_ref().and_then(|w| w.instance.clone()),
            waiting_since: workspace.as_ref().and_then(|w| w.waiting_since),
            last_error: workspace.as_ref().and_then(|w| w.last_error.clone()),
            workspace_step: workspace.as_ref().map(|w| w.step.clone()),
            manifest_version: workspace.as_ref().map_or(0, |w| w.manifest_version),
            manifest_error: workspace.and_then(|w| w.manifest_error),
            outbox,
        })
    }
}

#[derive(sqlx::FromRow)]
struct WorkspaceRow {
    step: String,
    instance: Option<String>,
    waiting_since: Option<time::OffsetDateTime>,
    last_error: Option<String>,
    manifest_version: i32,
    manifest_error: Option<String>,
}

/// A tenant's CRM state for operators (`GET /api/admin/tenants/{id}/crm`).
#[derive(Debug, Clone, Serialize)]
pub struct CrmSyncStatus {
    pub tenant_id: TenantId,
    /// none, provisioning, ready, failed or waiting_for_capacity.
    pub state: &'static str,
    /// The Twenty instance the workspace lives on.
    pub instance: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub waiting_since: Option<time::OffsetDateTime>,
    pub last_error: Option<String>,
    /// `crm_workspaces.step`, or `None` without a workspace.
    pub workspace_step: Option<String>,
    pub manifest_version: i32,
    pub manifest_error: Option<String>,
    pub outbox: OutboxStats,
}

fn sync_job(tenant: TenantId) -> Result<NewJob, serde_json::Error> {
    Ok(NewJob::new(&SyncTenant { tenant_id: tenant })?
        .for_tenant(tenant)
        .unique_key("crm.sync"))
}

impl From<serde_json::Error> for SyncError {
    fn from(error: serde_json::Error) -> Self {
        Self::Pool(format!("job payload: {error}"))
    }
}

/// Enqueues a sync of `tenant` (a no-op while one is pending or running).
pub async fn enqueue(jobs: &JobQueue, tenant: TenantId) -> Result<(), JobError> {
    jobs.enqueue(sync_job(tenant).map_err(JobError::permanent)?)
        .await
        .map_err(JobError::retry)?;
    Ok(())
}

/// Registers `crm.sync` and the periodic `crm.sync_sweep`.
pub fn register_jobs(registry: &mut Registry, sync: CrmSync) -> Result<(), serde_json::Error> {
    let s = sync.clone();
    registry.register(move |ctx, job: SyncTenant| {
        let s = s.clone();
        async move {
            match s.run_tenant(job.tenant_id, &ctx.shutdown).await {
                Ok(report) => {
                    tracing::info!(tenant = %job.tenant_id, pushed = report.pushed, requests = report.requests,
                        "CRM sync done");
                    Ok(())
                }
                Err(SyncError::UnknownTenant(tenant)) => {
                    Err(JobError::permanent(format!("tenant {tenant} not found")))
                }
                Err(error) => Err(JobError::retry(error)),
            }
        }
    });
    registry.register(move |_ctx, _job: SyncSweep| {
        let s = sync.clone();
        async move {
            let enqueued = s.sweep().await.map_err(JobError::retry)?;
            tracing::debug!(enqueued, "CRM sync sweep done");
            Ok(())
        }
    });
    registry.periodic(
        "crm sync sweep",
        SWEEP_INTERVAL,
        NewJob::new(&SyncSweep {})?,
    );
    Ok(())
}
