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

/// How to call a tenant's workspace: the instance it lives on (`crm::placement`), and the API key, which
/// alone selects the workspace there. `Debug` never prints the key.
#[derive(Clone)]
pub struct WorkspaceCredentials {
    pub tenant_id: TenantId,
    pub instance: String,
    pub workspace_id: String,
    pub api_key: String,
    pub manifest_version: i32,
}

impl std::fmt::Debug for WorkspaceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceCredentials")
            .field("tenant_id", &self.tenant_id)
            .field("instance", &self.instance)
            .field("workspace_id", &self.workspace_id)
            .field("manifest_version", &self.manifest_version)
            .finish_non_exhaustive()
    }
}

/// The parts of a `crm_workspaces` row that say how to reach the workspace.
#[derive(sqlx::FromRow)]
struct CredentialsRow {
    instance: Option<String>,
    workspace_id: Option<String>,
    key_id: Option<String>,
    api_key_token: Option<Vec<u8>>,
    manifest_version: i32,
    waiting_since: Option<time::OffsetDateTime>,
}

/// Whether a tenant's workspace can be reached.
#[derive(Debug, Clone)]
pub enum WorkspaceState {
    Ready(WorkspaceCredentials),
    /// No Twenty instance had room for it yet (`crm::placement`).
    WaitingForCapacity,
    /// Not provisioned (yet): no row, or no API key stored.
    NotReady,
}

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
    Ok(match state(db, keyring, tenant).await? {
        WorkspaceState::Ready(credentials) => Some(credentials),
        _ => None,
    })
}

/// Whether and how the tenant's workspace can be reached.
pub async fn state(
    db: &PgPool,
    keyring: &Keyring,
    tenant: TenantId,
) -> Result<WorkspaceState, CredentialsError> {
    let row: Option<CredentialsRow> = sqlx::query_as(
        "SELECT instance, workspace_id, key_id, api_key_token, manifest_version, waiting_since
           FROM crm_workspaces WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(WorkspaceState::NotReady);
    };
    let CredentialsRow {
        instance: Some(instance),
        workspace_id: Some(workspace_id),
        key_id: Some(key_id),
        api_key_token: Some(token),
        manifest_version,
        ..
    } = row
    else {
        return Ok(if row.instance.is_none() && row.waiting_since.is_some() {
            WorkspaceState::WaitingForCapacity
        } else {
            WorkspaceState::NotReady
        });
    };
    let api_key = keyring.open_string(&api_key_context(tenant), &key_id, &token)?;
    Ok(WorkspaceState::Ready(WorkspaceCredentials {
        tenant_id: tenant,
        instance,
        workspace_id,
        api_key,
        manifest_version,
    }))
}
