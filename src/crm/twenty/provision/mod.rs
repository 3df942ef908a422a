//! The provisioning `crm` step with Twenty (§3.1): the tenant's owner user, its workspace, activated, with
//! every onboarding step cleared (asserted: the owner must never see a setup wizard), and an Admin API key
//! stored sealed. Twenty has no server-to-server create-workspace API, so this is the frontend's sign-up
//! sequence; each sub-step's result is persisted in `crm_workspaces` as soon as it is known, so a crash at any
//! point resumes where it stopped without a second user or workspace. Sign-in tokens live 15–30 minutes and
//! are never stored: a resumed run signs in again with the owner's sealed password.
//!
//! Here: [`TwentyCrm`], its placement and the run's top-level flow. The sub-steps live beside: `session` (the
//! owner, the workspace, tokens and activation), `onboarding`, `api_key` (the Admin role and the sealed key),
//! and `queries` (the `crm_workspaces` row and the progress recorded in it).

mod api_key;
mod onboarding;
mod queries;
mod session;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use self::queries::{Progress, Row};
use self::session::Session;
use super::WorkspaceReadyHook;
use super::capabilities::Capabilities;
use super::client::{CallOptions, TwentyError};
use super::documents::{self as docs, Document};
use super::instances::{TwentyInstance, TwentyInstances};
use crate::config::CrmInstanceConfig;
use crate::core::Core;
use crate::crm::CrmSetupError;
use crate::crm::placement;
use crate::crm::workspace::password_context;
use crate::provisioning::integrations::{BoxFuture, CrmBackend, StepError, StepOutcome};
use crate::secrets::{Keyring, SecretsError};
use crate::tenancy::Tenant;

/// How a waiting workspace's step outcome starts (and the CRM state operators see).
pub const WAITING_FOR_CAPACITY: &str = "waiting_for_capacity";

#[derive(Debug, thiserror::Error)]
pub(super) enum ProvisionError {
    #[error(transparent)]
    Twenty(#[from] TwentyError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{0}")]
    State(String),
    /// The instance refused a new workspace at its cap (nothing was created).
    #[error("{0}")]
    CapReached(String),
    /// The workspace is ready but its `WorkspaceReadyHook` failed.
    #[error("workspace ready, but: {0}")]
    ReadyHook(StepError),
}

/// The provisioning `crm` backend with Twenty: places each tenant's workspace on an instance with room
/// (`crm::placement`) and provisions it there.
pub struct TwentyCrm {
    instances: TwentyInstances,
    configured: Vec<CrmInstanceConfig>,
    /// The registry is synced with `configured` once per process, before the first placement.
    synced: OnceCell<()>,
    db: PgPool,
    keyring: Keyring,
    operator_email_domain: String,
    activate_timeout: Duration,
    recheck: Duration,
    ready_hook: Option<Arc<dyn WorkspaceReadyHook>>,
}

impl TwentyCrm {
    /// From `crm` and the core's keyring and global database (`crm_workspaces`).
    pub fn new(core: &Core) -> Result<Self, CrmSetupError> {
        let config = &core.config().crm;
        if !core.keyring().is_configured() {
            return Err(CrmSetupError::NoEncryptionKey);
        }
        Ok(Self {
            instances: TwentyInstances::from_config(config)?,
            configured: config.instances(),
            synced: OnceCell::new(),
            db: core.db().clone(),
            keyring: core.keyring().clone(),
            operator_email_domain: config.operator_email_domain.clone(),
            activate_timeout: Duration::from_secs(config.activate_timeout_secs),
            recheck: Duration::from_secs(config.capacity_recheck_secs),
            ready_hook: None,
        })
    }

    /// Calls `hook` once a workspace is ready, on every run (e.g. to apply the data model).
    pub fn with_ready_hook(mut self, hook: Arc<dyn WorkspaceReadyHook>) -> Self {
        self.ready_hook = Some(hook);
        self
    }

    pub fn instances(&self) -> &TwentyInstances {
        &self.instances
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// The keyring the workspaces' API keys are sealed with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// `crm.capacity_recheck_secs`.
    pub fn recheck(&self) -> Duration {
        self.recheck
    }

    /// Makes the instance registry match the configuration (once per process).
    pub async fn sync_instances(&self) -> Result<(), sqlx::Error> {
        self.synced
            .get_or_try_init(|| placement::sync_from_config(&self.db, &self.configured))
            .await
            .map(|_| ())
    }

    /// The Twenty login of a tenant's owner (an address we control, never the merchant's).
    pub fn owner_email(&self, tenant: &Tenant) -> String {
        format!("owner+{}@{}", tenant.slug, self.operator_email_domain)
    }

    async fn provision(&self, tenant: &Tenant) -> Result<StepOutcome, ProvisionError> {
        let result = self.place_and_run(tenant).await;
        let last_error = result.as_ref().err().map(ToString::to_string);
        if let Some(error) = &last_error {
            tracing::warn!(tenant_id = %tenant.id, error = %error, "Twenty workspace provisioning failed");
        }
        let recorded = sqlx::query(
            "UPDATE crm_workspaces SET last_error = $2, updated_at = now() WHERE tenant_id = $1",
        )
        .bind(tenant.id)
        .bind(&last_error)
        .execute(&self.db)
        .await;
        if let Err(error) = recorded {
            tracing::warn!(tenant_id = %tenant.id, error = %error, "cannot record the Twenty provisioning outcome");
        }
        result
    }

    /// Places the workspace (or finds it placed) and provisions it there. An instance refusing at its cap
    /// sends the tenant to the next one with room; with none, the tenant waits for capacity, which is not a
    /// failure: the tenant works without its CRM until an instance has room.
    async fn place_and_run(&self, tenant: &Tenant) -> Result<StepOutcome, ProvisionError> {
        self.sync_instances().await?;
        self.ensure_row(tenant).await?;
        // Each refusal marks one more instance full, so this ends after at most one attempt per instance.
        for _ in 0..=self.configured.len() {
            let placed = placement::place(&self.db, tenant.id, self.recheck).await?;
            placement::publish_waiting(&self.db).await;
            let Some(key) = placed else {
                return Ok(StepOutcome::Skipped(format!(
                    "{WAITING_FOR_CAPACITY}: every Twenty instance is at its workspace cap; the workspace is \
                     created once one has room"
                )));
            };
            let instance = self.instances.get(&key).ok_or_else(|| {
                ProvisionError::State(format!(
                    "the workspace is placed on Twenty instance {key:?}, which is not configured"
                ))
            })?;
            match self.run(tenant, instance).await {
                Err(ProvisionError::CapReached(_)) => {
                    placement::cap_reached(&self.db, tenant.id, &key).await?;
                }
                other => return other,
            }
        }
        Err(ProvisionError::State(
            "every Twenty instance refused the workspace at its cap".into(),
        ))
    }

    /// A run over `row` on `instance`, with the owner's password opened.
    pub(super) async fn run_for<'a>(
        &'a self,
        tenant: &'a Tenant,
        instance: &'a TwentyInstance,
        row: Row,
    ) -> Result<Run<'a>, ProvisionError> {
        let capabilities = instance.capabilities().await?;
        let (Some(key_id), Some(sealed)) = (&row.key_id, &row.owner_password) else {
            return Err(ProvisionError::State(
                "crm_workspaces row without an owner password".into(),
            ));
        };
        let password = self
            .keyring
            .open_string(&password_context(tenant.id), key_id, sealed)?;
        Ok(Run {
            crm: self,
            instance,
            tenant,
            capabilities,
            progress: Progress::read(&row.step)?,
            row,
            password,
            session: Session::default(),
        })
    }

    async fn run(
        &self,
        tenant: &Tenant,
        instance: &TwentyInstance,
    ) -> Result<StepOutcome, ProvisionError> {
        let row = self.ensure_row(tenant).await?;
        let mut run = self.run_for(tenant, instance, row).await?;
        run.capabilities.require_provisioning()?;
        let api_key = run.drive().await?;
        if let Some(hook) = &self.ready_hook {
            hook.workspace_ready(tenant, &instance.client, &api_key)
                .await
                .map_err(ProvisionError::ReadyHook)?;
        }
        Ok(StepOutcome::Done(Some(format!(
            "workspace {} on {}",
            run.row.workspace_id.unwrap_or_default(),
            instance.key
        ))))
    }
}

impl CrmBackend for TwentyCrm {
    fn provision_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        Box::pin(async move { self.provision(tenant).await.map_err(StepError::new) })
    }

    fn delete_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        Box::pin(async move { self.delete(tenant).await.map_err(StepError::new) })
    }
}

/// One provisioning run of one tenant.
pub(super) struct Run<'a> {
    crm: &'a TwentyCrm,
    instance: &'a TwentyInstance,
    tenant: &'a Tenant,
    capabilities: Arc<Capabilities>,
    progress: Progress,
    pub(super) row: Row,
    password: String,
    session: Session,
}

impl Run<'_> {
    /// Runs the remaining sub-steps; returns the API key token.
    async fn drive(&mut self) -> Result<String, ProvisionError> {
        loop {
            match self.progress {
                Progress::None => self.sign_up().await?,
                Progress::UserCreated => self.create_workspace().await?,
                Progress::WorkspaceCreated => self.exchange_tokens().await?,
                Progress::TokensExchanged => self.activate().await?,
                Progress::Activated => self.clear_onboarding().await?,
                Progress::OnboardingCleared => self.create_api_key().await?,
                Progress::ApiKeyCreated => self.generate_api_key_token().await?,
                Progress::Ready => return self.stored_api_key(),
            }
        }
    }

    /// Whether this run's server is sent documents gated by `gate`.
    pub(super) fn allows(&self, gate: docs::Gate) -> bool {
        self.capabilities.allows(gate)
    }

    pub(super) async fn call(
        &self,
        document: &Document,
        variables: Value,
        token: Option<&str>,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        self.instance
            .client
            .document(document, variables, token, options)
            .await
    }
}
