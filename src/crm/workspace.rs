//! The `crm_workspaces` row of a tenant: what provisioning recorded, and the credentials the proxy and the
//! record sync use to reach the tenant's workspace.

use sqlx::PgPool;

use crate::secrets::{Keyring, SecretsError};
use crate::tenancy::TenantId;

/// Sealing context of a tenant's Twenty API key token (binds the ciphertext to its tenant).
pub fn api_key_context(tenant: TenantId) -> String {
    format!("crm:{tenant}:api_key")
}

/// Sealing context of the owner's Twenty password.
pub fn password_context(tenant: TenantId) -> String {
    format!("crm:{tenant}:password")
}

/// How to call a tenant's workspace: Twenty's base URL is global (`crm.base_url`); the API key selects the
/// workspace. `Debug` never prints the key.
#[derive(Clone)]
pub struct WorkspaceCredentials {
    pub tenant_id: TenantId,
    pub workspace_id: String,
    pub api_key: String,
    pub manifest_version: i32,
}

impl std::fmt::Debug for WorkspaceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceCredentials")
            .field("tenant_id", &self.tenant_id)
            .field("workspace_id", &self.workspace_id)
            .field("manifest_version", &self.manifest_version)
            .finish_non_exhaustive()
    }
}

/// `(workspace_id, key_id, api_key_token, manifest_version)` of a `crm_workspaces` row.
type CredentialsRow = (Option<String>, Option<String>, Option<Vec<u8>>, i32);

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// The tenant's workspace credentials, once provisioning has stored an API key; `None` before.
pub async fn credentials(
    db: &PgPool,
    keyring: &Keyring,
    tenant: TenantId,
) -> Result<Option<WorkspaceCredentials>, CredentialsError> {
    let row: Option<CredentialsRow> = sqlx::query_as(
        "SELECT workspace_id, key_id, api_key_token, manifest_version FROM crm_workspaces WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    let Some((Some(workspace_id), Some(key_id), Some(token), manifest_version)) = row else {
        return Ok(None);
    };
    let api_key = keyring.open_string(&api_key_context(tenant), &key_id, &token)?;
    Ok(Some(WorkspaceCredentials {
        tenant_id: tenant,
        workspace_id,
        api_key,
        manifest_version,
    }))
}
