//! Workspaces waiting for capacity get one as soon as an instance has room: the periodic `crm.capacity_sweep`
//! (also run at every worker start, so a raised cap or a new instance takes effect at once) enqueues
//! `crm.workspace` for as many waiting tenants as there is room, oldest first; that job provisions the
//! tenant's workspace (placement included) outside the tenant's provisioning run, which finished long ago.
//! The sweep also checks each instance (version, capabilities) now and then, and publishes the capacity
//! gauges.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::placement;
use super::twenty::TwentyCrm;
use crate::core::Core;
use crate::jobs::{Job, JobError, JobQueue, NewJob, Registry};
use crate::provisioning::{CrmBackend, StepOutcome};
use crate::tenancy::{TenantDirectory, TenantId, TenantStatus};

/// Provisions one waiting tenant's workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionWorkspace {
    pub tenant_id: TenantId,
}

impl Job for ProvisionWorkspace {
    const KIND: &'static str = "crm.workspace";
}

/// Places waiting workspaces, checks instances, publishes gauges.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacitySweep {}

impl Job for CapacitySweep {
    const KIND: &'static str = "crm.capacity_sweep";
}

const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often each instance's version and capabilities are checked again.
const CHECK_INTERVAL: time::Duration = time::Duration::minutes(10);

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub waiting: usize,
    pub room: i64,
    pub enqueued: usize,
    pub checked: usize,
}

/// The capacity service: the CRM backend (placement and provisioning) and the queue.
#[derive(Clone)]
pub struct Capacity {
    crm: Arc<TwentyCrm>,
    directory: TenantDirectory,
    jobs: JobQueue,
}

impl Capacity {
    pub fn new(crm: Arc<TwentyCrm>, core: &Core) -> Self {
        Self {
            crm,
            directory: core.directory().clone(),
            jobs: core.jobs().clone(),
        }
    }

    /// One sweep: sync the registry, check stale instances, publish gauges, enqueue the oldest waiting tenants
    /// that fit.
    pub async fn sweep(&self) -> Result<SweepReport, JobError> {
        let db = self.crm.db();
        self.crm.sync_instances().await.map_err(JobError::retry)?;
        let checked = self.check_stale_instances().await;
        let instances = placement::instances(db, self.crm.recheck())
            .await
            .map_err(JobError::retry)?;
        let waiting = placement::waiting(db).await.map_err(JobError::retry)?;
        for instance in &instances {
            let label = instance.key.clone();
            metrics::gauge!("crm_instance_workspaces", "instance" => label.clone())
                .set(instance.workspaces as f64);
            metrics::gauge!("crm_instance_workspace_cap", "instance" => label.clone())
                .set(f64::from(instance.effective_cap));
            metrics::gauge!("crm_instance_room", "instance" => label).set(instance.room as f64);
        }
        metrics::gauge!("crm_workspaces_waiting_for_capacity").set(waiting.len() as f64);
        let room: i64 = instances.iter().map(|i| i.room).sum();
        let due: Vec<NewJob> = waiting
            .iter()
            .take(usize::try_from(room).unwrap_or(0))
            .map(|tenant| provision_job(tenant.tenant_id))
            .collect::<Result<_, _>>()
            .map_err(JobError::permanent)?;
        self.jobs
            .enqueue_many(&due)
            .await
            .map_err(JobError::retry)?;
        if !due.is_empty() {
            tracing::info!(
                enqueued = due.len(),
                waiting = waiting.len(),
                room,
                "CRM capacity: placing waiting workspaces"
            );
        }
        Ok(SweepReport {
            waiting: waiting.len(),
            room,
            enqueued: due.len(),
            checked,
        })
    }

    /// Checks every configured instance whose last check is older than [`CHECK_INTERVAL`]; returns how many.
    async fn check_stale_instances(&self) -> usize {
        let db = self.crm.db();
        let Ok(known) = placement::instances(db, self.crm.recheck()).await else {
            return 0;
        };
        let now = time::OffsetDateTime::now_utc();
        let mut checked = 0;
        for instance in self.crm.instances().iter() {
            let fresh = known.iter().any(|k| {
                k.key == instance.key && k.checked_at.is_some_and(|at| now - at < CHECK_INTERVAL)
            });
            if !fresh {
                check_instance(db, self.crm.keyring(), instance).await;
                checked += 1;
            }
        }
        checked
    }

    /// Provisions `tenant`'s waiting workspace (a no-op unless the tenant is ready and still without one).
    pub async fn provision(&self, tenant: TenantId) -> Result<StepOutcome, JobError> {
        let Some(found) = self
            .directory
            .get(tenant)
            .await
            .map_err(|e| JobError::retry(e.to_string()))?
        else {
            return Err(JobError::permanent(format!("tenant {tenant} not found")));
        };
        if found.status != TenantStatus::Ready {
            return Ok(StepOutcome::Skipped(format!(
                "tenant is {}, not ready",
                found.status.as_str()
            )));
        }
        self.crm
            .provision_workspace(&found)
            .await
            .map_err(JobError::retry)
    }
}

/// Asks `instance` for its version and capabilities and records the answer (or the failure). Where the
/// instance refuses anonymous introspection, the API key of a workspace it holds (if any) is used.
pub async fn check_instance(
    db: &sqlx::PgPool,
    keyring: &crate::secrets::Keyring,
    instance: &crate::crm::twenty::TwentyInstance,
) {
    let version = instance.version().await;
    let mut capabilities = instance.capabilities().await;
    if capabilities.as_ref().is_ok_and(|c| c.is_provisional())
        && let Some(api_key) = workspace_key_on(db, keyring, &instance.key).await
    {
        capabilities = instance.learn_capabilities(&api_key).await;
    }
    let summary = capabilities
        .as_ref()
        .ok()
        .and_then(|c| serde_json::to_value(c.summary()).ok());
    let error = match (&version, &capabilities) {
        (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let version = version.ok().flatten();
    if let Err(e) = placement::record_check(
        db,
        &instance.key,
        version.as_deref(),
        summary.as_ref(),
        error.as_deref(),
    )
    .await
    {
        tracing::warn!(instance = %instance.key, error = %e, "cannot record the Twenty instance check");
    }
    if let Some(error) = error {
        tracing::warn!(instance = %instance.key, %error, "Twenty instance check failed");
    }
}

/// The API key of one ready workspace on `instance`, if it holds any.
async fn workspace_key_on(
    db: &sqlx::PgPool,
    keyring: &crate::secrets::Keyring,
    instance: &str,
) -> Option<String> {
    let tenant: Option<TenantId> = sqlx::query_scalar(
        "SELECT tenant_id FROM crm_workspaces WHERE instance = $1 AND step = 'ready' LIMIT 1",
    )
    .bind(instance)
    .fetch_optional(db)
    .await
    .ok()
    .flatten();
    let credentials = crate::crm::workspace::credentials(db, keyring, tenant?)
        .await
        .ok()
        .flatten()?;
    Some(credentials.api_key)
}

fn provision_job(tenant: TenantId) -> Result<NewJob, serde_json::Error> {
    Ok(NewJob::new(&ProvisionWorkspace { tenant_id: tenant })?
        .for_tenant(tenant)
        .unique_key("crm.workspace"))
}

/// Enqueues a capacity sweep now (a no-op while one is pending): at worker start, so that a raised cap or a
/// new instance is used at once.
pub async fn sweep_now(jobs: &JobQueue) -> Result<(), JobError> {
    let job = NewJob::new(&CapacitySweep {})
        .map_err(JobError::permanent)?
        .unique_key("crm.capacity_sweep");
    jobs.enqueue(job).await.map_err(JobError::retry)?;
    Ok(())
}

/// Registers `crm.workspace` and the periodic `crm.capacity_sweep`.
pub fn register_jobs(registry: &mut Registry, capacity: Capacity) -> Result<(), serde_json::Error> {
    let c = capacity.clone();
    registry.register(move |_ctx, job: ProvisionWorkspace| {
        let c = c.clone();
        async move {
            let outcome = c.provision(job.tenant_id).await?;
            tracing::info!(tenant_id = %job.tenant_id, ?outcome, "CRM workspace job done");
            Ok(())
        }
    });
    registry.register(move |_ctx, _job: CapacitySweep| {
        let c = capacity.clone();
        async move {
            let report = c.sweep().await?;
            tracing::debug!(?report, "CRM capacity sweep done");
            Ok(())
        }
    });
    registry.periodic(
        "crm capacity sweep",
        SWEEP_INTERVAL,
        NewJob::new(&CapacitySweep {})?,
    );
    Ok(())
}
