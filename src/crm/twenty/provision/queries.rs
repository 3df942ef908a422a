//! The `crm_workspaces` row a provisioning run resumes from: its reads and writes, and the progress recorded
//! in it after every sub-step.

use rand::distr::{Alphanumeric, SampleString};
use time::OffsetDateTime;

use super::{ProvisionError, Run, TwentyCrm};
use crate::crm::workspace::password_context;
use crate::string_enum::string_enum;
use crate::tenancy::Tenant;

string_enum! {
    /// The last sub-step completed (`crm_workspaces.step`), in the order they run.
    pub(super) enum Progress {
        None = "none",
        UserCreated = "user_created",
        WorkspaceCreated = "workspace_created",
        TokensExchanged = "tokens_exchanged",
        Activated = "activated",
        OnboardingCleared = "onboarding_cleared",
        ApiKeyCreated = "api_key_created",
        Ready = "ready",
    }
}

impl Progress {
    pub(super) fn read(text: &str) -> Result<Self, ProvisionError> {
        Self::parse(text)
            .ok_or_else(|| ProvisionError::State(format!("unknown crm_workspaces.step {text:?}")))
    }
}

/// A `crm_workspaces` row, as far as provisioning reads it.
#[derive(sqlx::FromRow)]
pub(in crate::crm::twenty) struct Row {
    pub(super) step: String,
    pub(super) owner_email: String,
    pub(super) key_id: Option<String>,
    pub(super) owner_password: Option<Vec<u8>>,
    pub(super) user_id: Option<String>,
    pub(super) workspace_id: Option<String>,
    pub(super) workspace_url: Option<String>,
    pub(super) admin_role_id: Option<String>,
    pub(super) api_key_id: Option<String>,
    pub(super) api_key_token: Option<Vec<u8>>,
    pub(super) api_key_expires_at: Option<OffsetDateTime>,
}

impl TwentyCrm {
    /// The tenant's row, created with a fresh owner password the first time.
    pub(in crate::crm::twenty) async fn ensure_row(
        &self,
        tenant: &Tenant,
    ) -> Result<Row, ProvisionError> {
        let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let sealed = self
            .keyring
            .seal(&password_context(tenant.id), password.as_bytes())?;
        sqlx::query(
            "INSERT INTO crm_workspaces (tenant_id, owner_email, key_id, owner_password)
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.id)
        .bind(self.owner_email(tenant))
        .bind(&sealed.key_id)
        .bind(&sealed.bytes)
        .execute(&self.db)
        .await?;
        Ok(sqlx::query_as(
            "SELECT step, owner_email, key_id, owner_password, user_id, workspace_id, workspace_url,
                    admin_role_id, api_key_id, api_key_token, api_key_expires_at
               FROM crm_workspaces WHERE tenant_id = $1",
        )
        .bind(tenant.id)
        .fetch_one(&self.db)
        .await?)
    }
}

impl Run<'_> {
    /// Records the row's sub-step results and moves on to `next`.
    pub(super) async fn save(&mut self, next: Progress) -> Result<(), ProvisionError> {
        sqlx::query(
            "UPDATE crm_workspaces SET step = $2, user_id = $3, workspace_id = $4, workspace_url = $5,
                    admin_role_id = $6, api_key_id = $7, api_key_expires_at = $8, updated_at = now()
              WHERE tenant_id = $1",
        )
        .bind(self.tenant.id)
        .bind(next.as_str())
        .bind(&self.row.user_id)
        .bind(&self.row.workspace_id)
        .bind(&self.row.workspace_url)
        .bind(&self.row.admin_role_id)
        .bind(&self.row.api_key_id)
        .bind(self.row.api_key_expires_at)
        .execute(&self.crm.db)
        .await?;
        tracing::info!(tenant_id = %self.tenant.id, step = next.as_str(), "Twenty provisioning progressed");
        self.progress = next;
        Ok(())
    }
}
