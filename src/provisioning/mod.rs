//! Provisioning: turning a registered tenant into a ready one (database from the template, tenant migrations,
//! seed, identity, CRM workspace, finalize) as a durable, resumable job; fleet migrations; deletion; moves between tenant servers.

mod deprovision;
mod fleet;
pub mod integrations;
pub mod lifecycle;
pub mod moves;
mod pipeline;
mod registration;
mod seed;
pub mod steps;

pub use deprovision::{DeleteTenant, DeletionStep, PruneBackups, deletion_steps};
pub use fleet::{FleetEvent, FleetStatus, SchemaVersion};
pub use integrations::{CrmBackend, IdentityProvider, NotConfigured, StepError, StepOutcome};
pub use pipeline::{ProvisionError, ProvisionTenant, Provisioner, Registered, RunOutcome};
pub use registration::{FieldErrors, RegistrationRequest, ValidRegistration};
pub use steps::{RunRecord, Step, StepRecord};

use crate::jobs::{JobError, Registry};

/// Registers the provisioning job handlers.
pub fn register_jobs(
    registry: &mut Registry,
    provisioner: Provisioner,
) -> Result<(), serde_json::Error> {
    let for_delete = provisioner.clone();
    let for_prune = provisioner.clone();
    registry.register(move |ctx, job: ProvisionTenant| {
        let provisioner = provisioner.clone();
        async move { provisioner.run_job(&ctx, &job).await }
    });
    registry.register(move |ctx, job: DeleteTenant| {
        let provisioner = for_delete.clone();
        async move {
            provisioner
                .delete_tenant(&job)
                .await
                .map_err(|e| {
                    if ctx.attempt >= ctx.max_attempts {
                        tracing::error!(tenant_id = %job.tenant_id, error = %e, "tenant deletion gave up; the tenant stays in deleting");
                    }
                    JobError::retry(e)
                })
        }
    });
    registry.register(move |_ctx, _job: PruneBackups| {
        let provisioner = for_prune.clone();
        async move {
            let removed = provisioner.prune_backups().await.map_err(JobError::retry)?;
            tracing::info!(removed, "deletion backups pruned");
            Ok(())
        }
    });
    registry.periodic(
        "prune deletion backups",
        std::time::Duration::from_secs(86_400),
        crate::jobs::NewJob::new(&PruneBackups {})?,
    );
    Ok(())
}
