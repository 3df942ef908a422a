//! The provisioning pipeline: `Provisioner` registers tenants and runs the `tenant.provision` job, step by
//! step, recording each step so that a crash at any point resumes where it stopped.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::integrations::{CrmBackend, IdentityProvider, StepError, StepOutcome};
use super::registration::ValidRegistration;
use super::seed;
use super::steps::{self, Step};
use crate::config::TenancyConfig;
use crate::core::Core;
use crate::jobs::{Enqueued, Job, JobContext, JobError, JobId, JobQueue, NewJob};
use crate::notify::Notice;
use crate::tenancy::registry::{self, AuditEntry, RegistryError};
use crate::tenancy::servers::{self, ServerError};
use crate::tenancy::{
    LookupKey, Tenant, TenantDirectory, TenantId, TenantPools, TenantServers, TenantStatus,
};

/// The job that provisions one tenant (one run of steps).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionTenant {
    pub tenant_id: TenantId,
    pub run_id: Uuid,
}

impl Job for ProvisionTenant {
    const KIND: &'static str = "tenant.provision";
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An external step failed; `error` is what its row records.
    #[error("step {step}: {error}")]
    Step {
        step: &'static str,
        error: StepError,
    },
    #[error("{0}")]
    Permanent(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("enqueueing failed: {0}")]
    Enqueue(#[from] serde_json::Error),
}

/// How far `execute` got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ready,
    /// Stopped after the given step (tests simulate a crash this way).
    StoppedAfter(Step),
}

/// A registered tenant: what `register-organization` answers.
#[derive(Debug, Clone)]
pub struct Registered {
    pub tenant: Tenant,
    pub run_id: Uuid,
    pub job_id: JobId,
}

#[derive(Clone)]
pub struct Provisioner {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    identity: Arc<dyn IdentityProvider>,
    crm: Arc<dyn CrmBackend>,
    follow_ups: Vec<ReadyFollowUp>,
}

/// Work another module starts when a tenant turns ready (e.g. the Salla history import): the job to enqueue
/// for that tenant, if any.
pub type ReadyFollowUp = fn(&Tenant) -> Option<NewJob>;

impl Provisioner {
    pub fn new(core: Core, identity: Arc<dyn IdentityProvider>, crm: Arc<dyn CrmBackend>) -> Self {
        Self {
            inner: Arc::new(Inner {
                core,
                identity,
                crm,
                follow_ups: Vec::new(),
            }),
        }
    }

    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Adds work to start whenever a tenant turns ready. Call while building, before the provisioner is
    /// shared (clones made earlier do not see it).
    pub fn with_ready_follow_up(mut self, follow_up: ReadyFollowUp) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.follow_ups.push(follow_up);
        }
        self
    }

    pub fn db(&self) -> &PgPool {
        self.inner.core.db()
    }
    pub fn directory(&self) -> &TenantDirectory {
        self.inner.core.directory()
    }
    pub fn servers(&self) -> &TenantServers {
        self.inner.core.servers()
    }
    pub fn pools(&self) -> &TenantPools {
        self.inner.core.pools()
    }
    pub fn jobs(&self) -> &JobQueue {
        self.inner.core.jobs()
    }
    pub fn config(&self) -> &TenancyConfig {
        &self.inner.core.config().tenancy
    }
    pub(super) fn identity(&self) -> &dyn IdentityProvider {
        self.inner.identity.as_ref()
    }
    pub(super) fn crm(&self) -> &dyn CrmBackend {
        self.inner.crm.as_ref()
    }

    /// Creates the registry row, its provisioning run and the job, in one transaction: either the tenant
    /// exists and will be provisioned, or nothing happened. `server` overrides placement.
    pub async fn register(
        &self,
        registration: ValidRegistration,
        server: Option<&str>,
        actor: &str,
        request_id: Option<&str>,
    ) -> Result<Registered, ProvisionError> {
        let owner_user = registration.owner_user_id;
        let mut new = registration.tenant;
        new.db_server = match server {
            Some(key) => self.inner.core.servers().get(key)?.key.clone(),
            None => {
                let counts = registry::tenants_per_server(self.inner.core.db()).await?;
                self.inner.core.servers().place(&counts).to_owned()
            }
        };
        let mut tx = self.inner.core.db().begin().await?;
        let tenant = registry::insert(&mut tx, &new).await?;
        if let Some(user) = &owner_user {
            // With the tenant, so the identity step, whenever it runs, finds who the owner is.
            sqlx::query("INSERT INTO tenant_owner_users (tenant_id, user_id) VALUES ($1, $2)")
                .bind(tenant.id)
                .bind(user)
                .execute(&mut *tx)
                .await?;
        }
        let run_id = steps::create_run(&mut tx, tenant.id).await?;
        let job = self.provision_job(tenant.id, run_id)?;
        let job_id = self.inner.core.jobs().enqueue_in(&mut tx, job).await?.id();
        registry::audit(
            &mut tx,
            AuditEntry {
                actor,
                action: "tenant.registered",
                tenant_id: Some(tenant.id),
                request_id,
                details: serde_json::json!({
                    "slug": tenant.slug, "plan": tenant.plan, "db_server": tenant.db_server,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        // The new keys may be cached as "unknown" (negative entries) on some replica.
        self.inner
            .core
            .directory()
            .invalidate(tenant.id, &LookupKey::intrinsic(&tenant))
            .await;
        metrics::counter!("tenant_created_total", "plan" => tenant.plan.clone()).increment(1);
        tracing::info!(tenant_id = %tenant.id, slug = %tenant.slug, db_server = %tenant.db_server, "tenant registered");
        Ok(Registered {
            tenant,
            run_id,
            job_id,
        })
    }

    fn provision_job(&self, tenant: TenantId, run: Uuid) -> Result<NewJob, serde_json::Error> {
        Ok(NewJob::new(&ProvisionTenant {
            tenant_id: tenant,
            run_id: run,
        })?
        .for_tenant(tenant)
        .unique_key(run.to_string())
        .max_attempts(self.inner.core.config().tenancy.provision_max_attempts)
        .priority(10))
    }

    /// The `tenant.provision` job: runs the pipeline; after the last attempt marks the tenant failed.
    pub(super) async fn run_job(
        &self,
        ctx: &JobContext,
        job: &ProvisionTenant,
    ) -> Result<(), JobError> {
        match self.execute(job.run_id, None).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let last_attempt = ctx.attempt >= ctx.max_attempts
                    || matches!(error, ProvisionError::Permanent(_));
                if last_attempt {
                    self.fail(job.tenant_id, job.run_id, &error.to_string())
                        .await
                        .map_err(JobError::retry)?;
                    Err(JobError::permanent(error))
                } else {
                    tracing::warn!(tenant_id = %job.tenant_id, attempt = ctx.attempt, error = %error, "provisioning attempt failed; will retry");
                    Err(JobError::retry(error))
                }
            }
        }
    }

    /// Runs the run's steps that are not done yet, in order, stopping after `stop_after` when given.
    pub async fn execute(
        &self,
        run_id: Uuid,
        stop_after: Option<Step>,
    ) -> Result<RunOutcome, ProvisionError> {
        let db = self.inner.core.db();
        let run = steps::get_run(db, run_id)
            .await?
            .ok_or_else(|| ProvisionError::Permanent(format!("no provisioning run {run_id}")))?;
        let tenant = registry::find(db, &LookupKey::Id(run.tenant_id))
            .await?
            .ok_or_else(|| {
                ProvisionError::Permanent(format!("tenant {} is gone", run.tenant_id))
            })?;
        let mut tenant = match tenant.status {
            TenantStatus::Ready => {
                // A previous attempt finished the work but died before recording the run's end.
                if run.status != "succeeded" {
                    steps::finish_run(db, run_id, None).await?;
                }
                return Ok(RunOutcome::Ready);
            }
            TenantStatus::Pending | TenantStatus::Failed => {
                self.inner
                    .core
                    .directory()
                    .transition(tenant.id, TenantStatus::Provisioning, None, None)
                    .await?
            }
            TenantStatus::Provisioning => tenant,
            other => {
                return Err(ProvisionError::Permanent(format!(
                    "tenant is {other}; provisioning stopped"
                )));
            }
        };
        steps::mark_run_started(db, run_id).await?;
        let records = steps::steps_of(db, run_id).await?;
        for &step in Step::ALL {
            let done = records.iter().any(|r| r.name == step.name() && r.is_done());
            if done {
                continue;
            }
            steps::mark_step_started(db, run_id, step).await?;
            let started = Instant::now();
            let result = self.run_step(step, &mut tenant, run_id).await;
            let elapsed = started.elapsed();
            let duration_ms = elapsed.as_millis() as i64;
            metrics::histogram!("tenant_provisioning_step_duration_seconds", "step" => step.name())
                .record(elapsed.as_secs_f64());
            match result {
                Ok(StepOutcome::Done(detail)) => {
                    steps::mark_step_finished(
                        db,
                        run_id,
                        step,
                        "succeeded",
                        duration_ms,
                        detail.as_deref(),
                        None,
                    )
                    .await?;
                }
                Ok(StepOutcome::Skipped(why)) => {
                    steps::mark_step_finished(
                        db,
                        run_id,
                        step,
                        "skipped",
                        duration_ms,
                        Some(&why),
                        None,
                    )
                    .await?;
                }
                Err(error) => {
                    steps::mark_step_finished(
                        db,
                        run_id,
                        step,
                        "failed",
                        duration_ms,
                        None,
                        Some(&error.to_string()),
                    )
                    .await?;
                    return Err(ProvisionError::Step {
                        step: step.name(),
                        error,
                    });
                }
            }
            if stop_after == Some(step) && step != Step::Finalize {
                return Ok(RunOutcome::StoppedAfter(step));
            }
        }
        Ok(RunOutcome::Ready)
    }

    async fn run_step(
        &self,
        step: Step,
        tenant: &mut Tenant,
        run_id: Uuid,
    ) -> Result<StepOutcome, StepError> {
        match step {
            Step::CreateDatabase => {
                let server = self
                    .inner
                    .core
                    .servers()
                    .get(&tenant.db_server)
                    .map_err(StepError::new)?;
                let template = self.inner.core.servers().template();
                let created = match server.clone_template(template, &tenant.db_name).await {
                    Ok(created) => created,
                    // The template may be missing (migrations not run on this server yet): make it, retry once.
                    Err(first) => {
                        tracing::warn!(error = %first, "cloning the template failed; ensuring the template");
                        server
                            .ensure_template(template)
                            .await
                            .map_err(StepError::new)?;
                        server
                            .clone_template(template, &tenant.db_name)
                            .await
                            .map_err(StepError::new)?
                    }
                };
                Ok(StepOutcome::Done(Some(if created {
                    format!("cloned {template} into {}", tenant.db_name)
                } else {
                    format!("{} already existed", tenant.db_name)
                })))
            }
            Step::Migrate => {
                let server = self
                    .inner
                    .core
                    .servers()
                    .get(&tenant.db_server)
                    .map_err(StepError::new)?;
                let version = servers::migrate_database(server.tenant_options(&tenant.db_name))
                    .await
                    .map_err(StepError::new)?;
                self.inner
                    .core
                    .directory()
                    .set_schema_version(tenant.id, version, None)
                    .await
                    .map_err(StepError::new)?;
                tenant.schema_version = version;
                Ok(StepOutcome::Done(Some(format!("schema version {version}"))))
            }
            Step::Seed => {
                let pool = self
                    .inner
                    .core
                    .pools()
                    .get(tenant)
                    .await
                    .map_err(StepError::new)?;
                seed::seed(&pool, tenant).await.map_err(StepError::new)?;
                Ok(StepOutcome::Done(None))
            }
            Step::Identity => self.inner.identity.provision_tenant(tenant).await,
            Step::Crm => self.inner.crm.provision_workspace(tenant).await,
            Step::Finalize => self.finalize(tenant, run_id).await.map_err(StepError::new),
        }
    }

    async fn finalize(&self, tenant: &Tenant, run_id: Uuid) -> Result<StepOutcome, ProvisionError> {
        // Record this step as done before the tenant turns ready, so nobody sees a ready tenant whose last step
        // still runs. Should the transition fail, the caller overwrites this with the failure.
        steps::mark_step_finished(
            self.inner.core.db(),
            run_id,
            Step::Finalize,
            "succeeded",
            0,
            None,
            None,
        )
        .await?;
        let ready = self
            .inner
            .core
            .directory()
            .transition(tenant.id, TenantStatus::Ready, None, None)
            .await?;
        steps::finish_run(self.inner.core.db(), run_id, None).await?;
        let run = steps::get_run(self.inner.core.db(), run_id).await?;
        if let Some(run) = run
            && let Some(finished) = run.finished_at
        {
            let seconds = (finished - run.created_at).as_seconds_f64();
            metrics::histogram!("tenant_provisioning_duration_seconds", "outcome" => "ready")
                .record(seconds);
        }
        let mut conn = self.inner.core.db().acquire().await?;
        registry::audit(
            &mut conn,
            AuditEntry {
                actor: "system",
                action: "tenant.ready",
                tenant_id: Some(ready.id),
                request_id: None,
                details: serde_json::json!({ "run_id": run_id }),
            },
        )
        .await?;
        notify(
            &mut conn,
            &Notice::TenantReady {
                tenant_id: ready.id,
            },
        )
        .await;
        // The lifecycle event: one structured line other systems (and operators) can follow.
        tracing::info!(event = "tenant.ready", tenant_id = %ready.id, slug = %ready.slug, "tenant is ready");
        for follow_up in &self.inner.follow_ups {
            if let Some(job) = follow_up(&ready) {
                self.inner.core.jobs().enqueue(job).await?;
            }
        }
        Ok(StepOutcome::Done(None))
    }

    /// Marks the tenant failed after the last attempt.
    async fn fail(
        &self,
        tenant: TenantId,
        run_id: Uuid,
        error: &str,
    ) -> Result<(), ProvisionError> {
        steps::finish_run(self.inner.core.db(), run_id, Some(error)).await?;
        match self
            .inner
            .core
            .directory()
            .transition(tenant, TenantStatus::Failed, Some(error), None)
            .await
        {
            Ok(_) | Err(RegistryError::IllegalTransition { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        if let Some(run) = steps::get_run(self.inner.core.db(), run_id).await?
            && let Some(finished) = run.finished_at
        {
            metrics::histogram!("tenant_provisioning_duration_seconds", "outcome" => "failed")
                .record((finished - run.created_at).as_seconds_f64());
        }
        let mut conn = self.inner.core.db().acquire().await?;
        registry::audit(
            &mut conn,
            AuditEntry {
                actor: "system",
                action: "tenant.provisioning_failed",
                tenant_id: Some(tenant),
                request_id: None,
                details: serde_json::json!({ "run_id": run_id, "error": error }),
            },
        )
        .await?;
        // After the last attempt only (this is called then): the operators hear of it once.
        notify(
            &mut conn,
            &Notice::ProvisioningFailed {
                tenant_id: tenant,
                run_id,
                error: error.to_owned(),
            },
        )
        .await;
        tracing::error!(event = "tenant.failed", tenant_id = %tenant, error, "tenant provisioning failed");
        Ok(())
    }

    /// Resumes provisioning from the failed (or interrupted) step of the tenant's latest run.
    pub async fn retry(&self, tenant: TenantId) -> Result<(Uuid, Enqueued), ProvisionError> {
        let current = registry::find(self.inner.core.db(), &LookupKey::Id(tenant))
            .await?
            .ok_or(RegistryError::NotFound)?;
        if !matches!(
            current.status,
            TenantStatus::Failed | TenantStatus::Pending | TenantStatus::Provisioning
        ) {
            return Err(RegistryError::IllegalTransition {
                from: current.status,
                to: TenantStatus::Provisioning,
            }
            .into());
        }
        let run = match steps::latest_run(self.inner.core.db(), tenant).await? {
            Some(run) => run.id,
            None => {
                let mut conn = self.inner.core.db().acquire().await?;
                steps::create_run(&mut conn, tenant).await?
            }
        };
        steps::reset_failed(self.inner.core.db(), run).await?;
        if current.status == TenantStatus::Failed {
            self.inner
                .core
                .directory()
                .transition(tenant, TenantStatus::Provisioning, None, None)
                .await?;
        }
        let enqueued = self
            .inner
            .core
            .jobs()
            .enqueue(self.provision_job(tenant, run)?)
            .await?;
        Ok((run, enqueued))
    }
}

/// Raises a notice; a failure to record it is logged, never a reason to fail the step that raised it (the
/// tenant's state is what matters, and it is already committed).
pub(super) async fn notify(conn: &mut sqlx::PgConnection, notice: &Notice) {
    if let Err(error) = crate::notify::enqueue_in(conn, notice).await {
        tracing::error!(tenant_id = ?notice.tenant(), kind = notice.kind(), error = %error, "cannot raise the notification");
    }
}
