//! Deleting a tenant's workspace (the `crm_workspace` step of tenant deletion): the workspace holds the
//! customer data the record sync pushed, so it goes with the tenant. Twenty deletes a workspace for its own
//! admin only (`deleteCurrentWorkspace` with a workspace token): we sign in as the tenant's owner with the
//! sealed password. Each part is idempotent, so a crash anywhere resumes:
//!
//! 1. the workspace, unless the owner no longer lists it (deleted by an attempt whose answer was lost);
//! 2. the row marked `deleted` and unplaced, which frees the instance's room at once;
//! 3. the owner user (`deleteUser`, best effort: a user with no workspace holds no data);
//! 4. the row, with its sealed credentials.

use serde_json::json;

use super::client::CallOptions;
use super::documents as docs;
use super::provision::{ProvisionError, TwentyCrm};
use crate::crm::placement;
use crate::provisioning::integrations::StepOutcome;
use crate::tenancy::Tenant;

/// `crm_workspaces.step` once the workspace is gone (the row lives on until the owner user is deleted).
const DELETED: &str = "deleted";

impl TwentyCrm {
    pub(super) async fn delete(&self, tenant: &Tenant) -> Result<StepOutcome, ProvisionError> {
        let placed: Option<(Option<String>, String, Option<String>)> = sqlx::query_as(
            "SELECT instance, step, workspace_id FROM crm_workspaces WHERE tenant_id = $1",
        )
        .bind(tenant.id)
        .fetch_optional(self.db())
        .await?;
        let Some((instance_key, step, workspace_id)) = placed else {
            return Ok(StepOutcome::Skipped("no CRM workspace".into()));
        };
        let instance_key = match (instance_key, step.as_str()) {
            (Some(key), _) => key,
            (None, DELETED) => self.deleted_instance(tenant).await?,
            // Never placed (waiting for capacity, or provisioning never got that far): nothing in Twenty.
            (None, _) => {
                self.forget(tenant).await?;
                return Ok(StepOutcome::Skipped("no workspace was created".into()));
            }
        };
        let instance = self.instances().get(&instance_key).ok_or_else(|| {
            ProvisionError::State(format!(
                "the workspace is on Twenty instance {instance_key:?}, which is not configured"
            ))
        })?;
        let row = self.ensure_row(tenant).await?;
        let mut run = self.run_for(tenant, instance, row).await?;
        let mut detail = String::from("no workspace had been created");
        if step != DELETED {
            if let Some(workspace) = &workspace_id {
                let agnostic = run.agnostic_token().await?;
                let listed = run.owned_workspaces(&agnostic).await?;
                if listed.iter().any(|(id, _)| id == workspace) {
                    let access = run.access_token().await?;
                    run.call(
                        &docs::DELETE_WORKSPACE,
                        json!({}),
                        Some(&access),
                        CallOptions::ONCE,
                    )
                    .await?;
                    detail = format!("workspace {workspace} deleted from {instance_key}");
                } else {
                    detail = format!("workspace {workspace} was already gone from {instance_key}");
                }
            }
            sqlx::query(
                "UPDATE crm_workspaces SET step = $2, instance = NULL, waiting_since = NULL,
                        deleted_instance = $3, updated_at = now()
                  WHERE tenant_id = $1",
            )
            .bind(tenant.id)
            .bind(DELETED)
            .bind(&instance_key)
            .execute(self.db())
            .await?;
            placement::publish_waiting(self.db()).await;
        }
        self.delete_owner(&mut run).await;
        self.forget(tenant).await?;
        tracing::info!(tenant_id = %tenant.id, instance = %instance_key, "{detail}");
        Ok(StepOutcome::Done(Some(detail)))
    }

    /// Where a workspace marked deleted lived (for deleting its owner user there).
    async fn deleted_instance(&self, tenant: &Tenant) -> Result<String, ProvisionError> {
        let key: Option<String> =
            sqlx::query_scalar("SELECT deleted_instance FROM crm_workspaces WHERE tenant_id = $1")
                .bind(tenant.id)
                .fetch_one(self.db())
                .await?;
        key.ok_or_else(|| ProvisionError::State("a deleted workspace without its instance".into()))
    }

    /// Deletes the owner user with its own token. Best effort: a user whose sign-in fails (deleted by an
    /// earlier attempt) or that the version cannot delete holds no data once its workspace is gone.
    async fn delete_owner(&self, run: &mut super::provision::Run<'_>) {
        if !run.allows(docs::DELETE_USER.gate) {
            return;
        }
        let outcome = match run.agnostic_token().await {
            Ok(token) => run
                .call(
                    &docs::DELETE_USER,
                    json!({}),
                    Some(&token),
                    CallOptions::ONCE,
                )
                .await
                .map(drop)
                .map_err(ProvisionError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            tracing::info!(error = %error, "the Twenty owner user was not deleted (gone already, or refused)");
        }
    }

    async fn forget(&self, tenant: &Tenant) -> Result<(), ProvisionError> {
        sqlx::query("DELETE FROM crm_workspaces WHERE tenant_id = $1")
            .bind(tenant.id)
            .execute(self.db())
            .await?;
        Ok(())
    }
}
