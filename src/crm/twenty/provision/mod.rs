//! The provisioning `crm` step with Twenty (§3.1): the tenant's owner user, its workspace, activated, with
//! every onboarding step cleared (asserted: the owner must never see a setup wizard), and an Admin API key
//! stored sealed. Twenty has no server-to-server create-workspace API, so this is the frontend's sign-up
//! sequence; each sub-step's result is persisted in `crm_workspaces` as soon as it is known, so a crash at any
//! point resumes where it stopped without a second user or workspace. Sign-in tokens live 15–30 minutes and
//! are never stored: a resumed run signs in again with the owner's sealed password.

use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};
use sqlx::{Connection, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;

use super::WorkspaceReadyHook;
use super::capabilities::Capabilities;
use super::client::{CallOptions, TwentyError};
use super::documents::{self as docs, Document};
use super::instances::{TwentyInstance, TwentyInstances};
use crate::config::{CrmInstanceConfig, Secret};
use crate::core::Core;
use crate::crm::CrmSetupError;
use crate::crm::placement;
use crate::crm::workspace::{api_key_context, password_context};
use crate::provisioning::integrations::{BoxFuture, CrmBackend, StepOutcome};
use crate::secrets::{Keyring, SecretsError};
use crate::tenancy::Tenant;

/// How a waiting workspace's step outcome starts (and the CRM state operators see).
pub const WAITING_FOR_CAPACITY: &str = "waiting_for_capacity";

/// Name of the API key we mint in every workspace.
const API_KEY_NAME: &str = "wosool-control-plane";
/// Lifetime of that key: Twenty's UI default ("100 years").
const API_KEY_LIFETIME: time::Duration = time::Duration::days(36_500);

/// §3.2: every onboarding flag of the workspace and of the owner outside it; no filter on `type`, which is
/// `USER_VAR` or `USER_VARIABLE` depending on the version.
const DELETE_ONBOARDING_FLAGS: &str = r#"DELETE FROM core."keyValuePair"
 WHERE key LIKE 'ONBOARDING\_%' ESCAPE '\'
   AND ("workspaceId" = $1::uuid OR ("userId" = $2::uuid AND "workspaceId" IS NULL))"#;

/// The last sub-step completed (`crm_workspaces.step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    None,
    UserCreated,
    WorkspaceCreated,
    TokensExchanged,
    Activated,
    OnboardingCleared,
    ApiKeyCreated,
    Ready,
}

impl Progress {
    const ALL: [Self; 8] = [
        Self::None,
        Self::UserCreated,
        Self::WorkspaceCreated,
        Self::TokensExchanged,
        Self::Activated,
        Self::OnboardingCleared,
        Self::ApiKeyCreated,
        Self::Ready,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::UserCreated => "user_created",
            Self::WorkspaceCreated => "workspace_created",
            Self::TokensExchanged => "tokens_exchanged",
            Self::Activated => "activated",
            Self::OnboardingCleared => "onboarding_cleared",
            Self::ApiKeyCreated => "api_key_created",
            Self::Ready => "ready",
        }
    }

    fn parse(text: &str) -> Result<Self, ProvisionError> {
        Self::ALL
            .into_iter()
            .find(|step| step.as_str() == text)
            .ok_or_else(|| ProvisionError::State(format!("unknown crm_workspaces.step {text:?}")))
    }
}

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
}

/// A `crm_workspaces` row, as far as provisioning reads it.
#[derive(sqlx::FromRow)]
pub(super) struct Row {
    step: String,
    owner_email: String,
    key_id: Option<String>,
    owner_password: Option<Vec<u8>>,
    user_id: Option<String>,
    workspace_id: Option<String>,
    workspace_url: Option<String>,
    admin_role_id: Option<String>,
    api_key_id: Option<String>,
    api_key_token: Option<Vec<u8>>,
    api_key_expires_at: Option<OffsetDateTime>,
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

    async fn provision(&self, tenant: &Tenant) -> Result<StepOutcome, String> {
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
        result.map_err(|e| e.to_string())
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
            progress: Progress::parse(&row.step)?,
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
                .map_err(|e| ProvisionError::State(format!("workspace ready, but: {e}")))?;
        }
        Ok(StepOutcome::Done(Some(format!(
            "workspace {} on {}",
            run.row.workspace_id.unwrap_or_default(),
            instance.key
        ))))
    }

    /// The tenant's row, created with a fresh owner password the first time.
    pub(super) async fn ensure_row(&self, tenant: &Tenant) -> Result<Row, ProvisionError> {
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

impl CrmBackend for TwentyCrm {
    fn provision_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(self.provision(tenant))
    }

    fn delete_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(async move { self.delete(tenant).await.map_err(|e| e.to_string()) })
    }
}

/// Tokens of this run only.
#[derive(Default)]
pub(super) struct Session {
    /// Workspace-agnostic token (`signUp`/`signIn`): enough to create a workspace.
    agnostic: Option<String>,
    /// Login token from `signUpInNewWorkspace`, to exchange for an access token.
    login: Option<String>,
    /// Access token of the workspace.
    access: Option<String>,
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

    /// Records the row's sub-step results and moves on to `next`.
    async fn save(&mut self, next: Progress) -> Result<(), ProvisionError> {
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

    fn credentials(&self) -> Value {
        json!({ "email": self.row.owner_email, "password": self.password })
    }

    /// Sub-step 1: the owner user. One that exists already (an earlier attempt whose answer was lost) is
    /// signed in to later instead.
    async fn sign_up(&mut self) -> Result<(), ProvisionError> {
        match self
            .call(
                &docs::SIGN_UP,
                self.credentials(),
                None,
                CallOptions::IDEMPOTENT,
            )
            .await
        {
            Ok(data) => {
                self.session.agnostic = Some(token_at(
                    "signUp",
                    &data["signUp"]["tokens"]["accessOrWorkspaceAgnosticToken"],
                )?);
            }
            Err(error)
                if error.code() == Some("USER_ALREADY_EXISTS")
                    || error.message_contains("already exists") =>
            {
                tracing::info!(tenant_id = %self.tenant.id, "the Twenty owner exists already; signing in");
            }
            Err(error) => return Err(error.into()),
        }
        self.save(Progress::UserCreated).await
    }

    /// A workspace-agnostic token: from this run's sign-up, else by signing in (`signIn` where it exists,
    /// else a login token exchanged at Twenty's own URL).
    pub(super) async fn agnostic_token(&mut self) -> Result<String, ProvisionError> {
        if let Some(token) = &self.session.agnostic {
            return Ok(token.clone());
        }
        let token = if self.capabilities.allows(docs::SIGN_IN.gate) {
            let data = self
                .call(
                    &docs::SIGN_IN,
                    self.credentials(),
                    None,
                    CallOptions::IDEMPOTENT,
                )
                .await?;
            token_at(
                "signIn",
                &data["signIn"]["tokens"]["accessOrWorkspaceAgnosticToken"],
            )?
        } else {
            let origin = self.instance.client.base_url().to_owned();
            let login = self.login_token(&origin).await?;
            self.exchange(&login, &origin).await?
        };
        self.session.agnostic = Some(token.clone());
        Ok(token)
    }

    async fn login_token(&self, origin: &str) -> Result<String, ProvisionError> {
        let document = self
            .capabilities
            .pick(&[docs::LOGIN_TOKEN_WITH_ORIGIN, docs::LOGIN_TOKEN])
            .ok_or_else(|| {
                TwentyError::MissingCapability("the mutation getLoginTokenFromCredentials".into())
            })?;
        let mut variables = self.credentials();
        if document.text == docs::LOGIN_TOKEN_WITH_ORIGIN.text {
            variables["origin"] = json!(origin);
        }
        let data = self
            .call(&document, variables, None, CallOptions::IDEMPOTENT)
            .await?;
        Ok(token_at(
            "getLoginTokenFromCredentials",
            &data["getLoginTokenFromCredentials"]["loginToken"],
        )?)
    }

    async fn exchange(&self, login: &str, origin: &str) -> Result<String, ProvisionError> {
        let data = self
            .call(
                &docs::AUTH_TOKENS,
                json!({ "loginToken": login, "origin": origin }),
                None,
                CallOptions::IDEMPOTENT,
            )
            .await?;
        Ok(token_at(
            "getAuthTokensFromLoginToken",
            &data["getAuthTokensFromLoginToken"]["tokens"]["accessOrWorkspaceAgnosticToken"],
        )?)
    }

    /// Sub-step 2: the workspace (left PENDING_CREATION). One the owner has already (created by an attempt
    /// whose answer was lost) is taken instead of creating a second. The instance's workspace cap refusing
    /// the creation is [`ProvisionError::CapReached`]: nothing was created, the tenant is placed elsewhere.
    async fn create_workspace(&mut self) -> Result<(), ProvisionError> {
        let token = self.agnostic_token().await?;
        if let Some((id, url)) = self.existing_workspace(&token).await? {
            tracing::info!(tenant_id = %self.tenant.id, workspace_id = %id, "the Twenty owner has a workspace already; taking it");
            self.row.workspace_id = Some(id);
            self.row.workspace_url = Some(self.instance.workspace_url(&url));
            return self.save(Progress::WorkspaceCreated).await;
        }
        let document = self
            .capabilities
            .pick(&[docs::NEW_WORKSPACE_WITH_INPUT, docs::NEW_WORKSPACE])
            .ok_or_else(|| {
                TwentyError::MissingCapability("the mutation signUpInNewWorkspace".into())
            })?;
        let variables = if document.text == docs::NEW_WORKSPACE_WITH_INPUT.text {
            json!({ "input": { "displayName": self.tenant.display_name } })
        } else {
            json!({})
        };
        let data = match self
            .call(&document, variables, Some(&token), CallOptions::ONCE)
            .await
        {
            Ok(data) => data,
            Err(error) if error.is_workspace_cap() => {
                return Err(ProvisionError::CapReached(error.to_string()));
            }
            Err(error) => return Err(error.into()),
        };
        let created = &data["signUpInNewWorkspace"];
        let (id, url) = workspace_at("signUpInNewWorkspace", &created["workspace"])?;
        self.session.login = created["loginToken"]["token"].as_str().map(str::to_owned);
        self.row.workspace_id = Some(id);
        self.row.workspace_url = Some(self.instance.workspace_url(&url));
        self.save(Progress::WorkspaceCreated).await
    }

    /// The owner's workspace, if it has one. The owner is a user of this tenant alone, so any workspace it
    /// has is the one an earlier attempt created. A listing that fails fails the step: reading it as "none"
    /// would create a second workspace.
    async fn existing_workspace(
        &self,
        token: &str,
    ) -> Result<Option<(String, String)>, ProvisionError> {
        Ok(self.owned_workspaces(token).await?.into_iter().next())
    }

    /// `(id, URL)` of every workspace the owner can sign in to.
    pub(super) async fn owned_workspaces(
        &self,
        token: &str,
    ) -> Result<Vec<(String, String)>, ProvisionError> {
        let document = self
            .capabilities
            .pick(&[docs::AVAILABLE_WORKSPACES, docs::USER_WORKSPACES])
            .ok_or_else(|| {
                TwentyError::MissingCapability("a way to list the user's workspaces".into())
            })?;
        let data = self
            .call(&document, json!({}), Some(token), CallOptions::IDEMPOTENT)
            .await?;
        let user = &data["currentUser"];
        let listed: Vec<Value> = if document.text == docs::AVAILABLE_WORKSPACES.text {
            user["availableWorkspaces"]["availableWorkspacesForSignIn"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        } else {
            user["workspaces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|membership| membership["workspace"].clone())
                .collect()
        };
        listed
            .iter()
            .map(|workspace| workspace_at("currentUser", workspace).map_err(Into::into))
            .collect()
    }

    /// A workspace access token: the sign-up's login token exchanged, else a fresh sign-in to the workspace.
    pub(super) async fn access_token(&mut self) -> Result<String, ProvisionError> {
        if let Some(token) = &self.session.access {
            return Ok(token.clone());
        }
        let origin = self
            .row
            .workspace_url
            .clone()
            .ok_or_else(|| ProvisionError::State("no workspace URL recorded".into()))?;
        let login = match self.session.login.take() {
            Some(login) => login,
            None => self.login_token(&origin).await?,
        };
        let token = self.exchange(&login, &origin).await?;
        self.session.access = Some(token.clone());
        if self.capabilities.is_provisional() {
            // The first workspace token: what the server really offers, instead of the pinned version's.
            self.capabilities = self.instance.learn_capabilities(&token).await?;
            self.capabilities.require_provisioning()?;
        }
        Ok(token)
    }

    /// Sub-step 3: tokens of the workspace; records the owner's user id.
    async fn exchange_tokens(&mut self) -> Result<(), ProvisionError> {
        let token = self.access_token().await?;
        let data = self
            .call(
                &docs::CURRENT_WORKSPACE,
                json!({}),
                Some(&token),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        self.row.user_id = data["currentUser"]["id"].as_str().map(str::to_owned);
        self.save(Progress::TokensExchanged).await
    }

    /// Sub-step 4: activation (creates the workspace schema; slow). A repeat answers "not pending creation",
    /// which is success once the workspace is ACTIVE.
    async fn activate(&mut self) -> Result<(), ProvisionError> {
        let token = self.access_token().await?;
        let options = CallOptions {
            idempotent: true,
            timeout: Some(self.crm.activate_timeout),
        };
        let answered = match self
            .call(
                &docs::ACTIVATE,
                json!({ "data": { "displayName": self.tenant.display_name } }),
                Some(&token),
                options,
            )
            .await
        {
            Ok(data) => data["activateWorkspace"]["activationStatus"]
                .as_str()
                .map(str::to_owned),
            Err(error) if error.message_contains("not pending creation") => None,
            Err(error) => return Err(error.into()),
        };
        let status = match answered {
            Some(status) => status,
            None => self.activation_status(&token).await?,
        };
        if status != "ACTIVE" {
            return Err(ProvisionError::State(format!(
                "workspace {} is {status} after activation, not ACTIVE",
                self.row.workspace_id.as_deref().unwrap_or_default()
            )));
        }
        self.save(Progress::Activated).await
    }

    async fn activation_status(&self, token: &str) -> Result<String, ProvisionError> {
        let data = self
            .call(
                &docs::CURRENT_WORKSPACE,
                json!({}),
                Some(token),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        Ok(data["currentUser"]["currentWorkspace"]["activationStatus"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Sub-step 5: every onboarding step cleared with the mutations this version has, then with SQL if
    /// configured and still needed; `COMPLETED` is asserted.
    async fn clear_onboarding(&mut self) -> Result<(), ProvisionError> {
        let token = self.access_token().await?;
        self.onboarding_step(
            &[docs::SKIP_SYNC_EMAIL, docs::SKIP_SYNC_EMAIL_NO_ARGS],
            &token,
        )
        .await?;
        let (status, member) = self.onboarding_status(&token).await?;
        if status == "COMPLETED" {
            return self.save(Progress::OnboardingCleared).await;
        }
        if let Some(member) = member {
            self.name_member(&member, &token).await?;
        }
        self.onboarding_step(&[docs::SKIP_INVITE_TEAM, docs::SEND_NO_INVITATIONS], &token)
            .await?;
        self.onboarding_step(&[docs::SKIP_INSTALL_APPS], &token)
            .await?;
        let (mut status, _) = self.onboarding_status(&token).await?;
        if matches!(status.as_str(), "BOOK_CALL" | "BOOK_ONBOARDING") {
            self.onboarding_step(&[docs::SKIP_BOOK_CALL, docs::SKIP_BOOK_ONBOARDING], &token)
                .await?;
            status = self.onboarding_status(&token).await?.0;
        }
        if status != "COMPLETED"
            && let Some(url) = &self.instance.onboarding_db
        {
            self.delete_onboarding_flags(url).await?;
            status = self.onboarding_status(&token).await?.0;
        }
        if status != "COMPLETED" {
            return Err(ProvisionError::State(format!(
                "Twenty onboarding of workspace {} is still pending at {status} (currentUser.onboardingStatus is \
                 not COMPLETED): its owner would see the setup wizard{}",
                self.row.workspace_id.as_deref().unwrap_or_default(),
                if self.instance.onboarding_db.is_none() {
                    "; the instance's database_url enables the SQL fallback"
                } else {
                    ""
                }
            )));
        }
        self.save(Progress::OnboardingCleared).await
    }

    /// `(onboardingStatus, workspace member id)`.
    async fn onboarding_status(
        &self,
        token: &str,
    ) -> Result<(String, Option<String>), ProvisionError> {
        let data = self
            .call(
                &docs::ONBOARDING_STATUS,
                json!({}),
                Some(token),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        let user = &data["currentUser"];
        let status = user["onboardingStatus"]
            .as_str()
            .ok_or_else(|| TwentyError::Decode {
                operation: "currentUser",
                message: "no onboardingStatus".into(),
            })?;
        Ok((
            status.to_owned(),
            user["workspaceMember"]["id"].as_str().map(str::to_owned),
        ))
    }

    /// One onboarding mutation: the first of `candidates` this version has (none: nothing to do). A refusal
    /// is only logged: the status assertion decides.
    async fn onboarding_step(
        &self,
        candidates: &[Document],
        token: &str,
    ) -> Result<(), ProvisionError> {
        let Some(document) = self.capabilities.pick(candidates) else {
            return Ok(());
        };
        match self
            .call(&document, json!({}), Some(token), CallOptions::IDEMPOTENT)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if !error.is_transient() => {
                tracing::warn!(tenant_id = %self.tenant.id, operation = document.operation, error = %error, "Twenty refused an onboarding step");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Names the owner's workspace member, which clears PROFILE_CREATION (only with a user token, §5.4):
    /// through `/metadata` where it can (v2.x), else through the workspace's records API.
    async fn name_member(&self, member: &str, token: &str) -> Result<(), ProvisionError> {
        let name = json!({ "firstName": "Wosool", "lastName": self.tenant.display_name });
        let (document, variables) = if self.capabilities.allows(docs::NAME_MEMBER_SETTINGS.gate) {
            (
                docs::NAME_MEMBER_SETTINGS,
                json!({ "input": { "workspaceMemberId": member, "update": { "name": name } } }),
            )
        } else {
            (
                docs::NAME_MEMBER_RECORD,
                json!({ "id": member, "data": { "name": name } }),
            )
        };
        match self
            .call(&document, variables, Some(token), CallOptions::IDEMPOTENT)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if !error.is_transient() => {
                tracing::warn!(tenant_id = %self.tenant.id, error = %error, "Twenty refused naming the workspace member");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// §3.2's SQL on Twenty's database.
    async fn delete_onboarding_flags(&self, url: &Secret) -> Result<(), ProvisionError> {
        let mut conn = sqlx::PgConnection::connect(url.expose()).await?;
        let deleted = sqlx::query(DELETE_ONBOARDING_FLAGS)
            .bind(&self.row.workspace_id)
            .bind(&self.row.user_id)
            .execute(&mut conn)
            .await?
            .rows_affected();
        tracing::info!(tenant_id = %self.tenant.id, deleted, "deleted Twenty onboarding flags with SQL");
        conn.close().await?;
        Ok(())
    }

    /// Sub-steps 6–7: the Admin role, and an API key with it (where keys have roles).
    async fn create_api_key(&mut self) -> Result<(), ProvisionError> {
        let token = self.access_token().await?;
        let data = self
            .call(
                &docs::ROLES,
                json!({}),
                Some(&token),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        let admin = data["getRoles"]
            .as_array()
            .and_then(|roles| {
                roles.iter().find(|role| {
                    role["label"]
                        .as_str()
                        .is_some_and(|label| label.eq_ignore_ascii_case("admin"))
                })
            })
            .and_then(|role| role["id"].as_str())
            .ok_or_else(|| ProvisionError::State("Twenty's getRoles has no Admin role".into()))?;
        self.row.admin_role_id = Some(admin.to_owned());
        if let Some((id, expires_at)) = self.adopt_earlier_api_key(&token).await? {
            self.row.api_key_id = Some(id);
            self.row.api_key_expires_at = Some(expires_at);
            return self.save(Progress::ApiKeyCreated).await;
        }
        let expires_at = (OffsetDateTime::now_utc() + API_KEY_LIFETIME)
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc() + API_KEY_LIFETIME);
        let mut input = json!({ "name": API_KEY_NAME, "expiresAt": rfc3339(expires_at)? });
        if self.capabilities.create_api_key_takes_role() {
            input["roleId"] = json!(admin);
        }
        let data = self
            .call(
                &docs::CREATE_API_KEY,
                json!({ "input": input }),
                Some(&token),
                CallOptions::ONCE,
            )
            .await?;
        let key = &data["createApiKey"];
        let id = key["id"].as_str().ok_or_else(|| TwentyError::Decode {
            operation: "createApiKey",
            message: "no id".into(),
        })?;
        self.row.api_key_id = Some(id.to_owned());
        self.row.api_key_expires_at = Some(
            key["expiresAt"]
                .as_str()
                .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
                .unwrap_or(expires_at),
        );
        self.save(Progress::ApiKeyCreated).await
    }

    /// A key of ours that an earlier attempt created but whose answer was lost (the workspace is ours alone, so
    /// a key with our name is ours): reused rather than left behind unused, and any further such keys revoked.
    /// Needs the `apiKeys` query; without it a lost answer costs one unused key.
    async fn adopt_earlier_api_key(
        &self,
        token: &str,
    ) -> Result<Option<(String, OffsetDateTime)>, ProvisionError> {
        if !self.capabilities.has_query("apiKeys") {
            return Ok(None);
        }
        let data = self
            .call(
                &docs::API_KEYS,
                json!({}),
                Some(token),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        let mut ours: Vec<(String, OffsetDateTime)> = data["apiKeys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|key| key["name"] == API_KEY_NAME)
            .filter_map(|key| {
                let id = key["id"].as_str()?.to_owned();
                let expires_at =
                    OffsetDateTime::parse(key["expiresAt"].as_str()?, &Rfc3339).ok()?;
                Some((id, expires_at))
            })
            .collect();
        // The longest-lived one stays.
        ours.sort_by_key(|(_, expires_at)| std::cmp::Reverse(*expires_at));
        let mut ours = ours.into_iter();
        let kept = ours.next();
        if self.capabilities.allows(docs::REVOKE_API_KEY.gate) {
            for (id, _) in ours {
                self.call(
                    &docs::REVOKE_API_KEY,
                    json!({ "input": { "id": id } }),
                    Some(token),
                    CallOptions::IDEMPOTENT,
                )
                .await?;
            }
        }
        if let Some((id, _)) = &kept {
            tracing::info!(workspace_id = ?self.row.workspace_id, api_key_id = %id, "reusing the API key an earlier attempt created");
        }
        Ok(kept)
    }

    /// Sub-step 8: the key's token (shown once), sealed. The owner password is sealed again with the same
    /// key, as the row has one `key_id` for both.
    async fn generate_api_key_token(&mut self) -> Result<(), ProvisionError> {
        let token = self.access_token().await?;
        let (Some(id), Some(expires_at)) = (&self.row.api_key_id, self.row.api_key_expires_at)
        else {
            return Err(ProvisionError::State("no API key recorded".into()));
        };
        let data = self
            .call(
                &docs::GENERATE_API_KEY_TOKEN,
                json!({ "apiKeyId": id, "expiresAt": rfc3339(expires_at)? }),
                Some(&token),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        let api_key = token_at("generateApiKeyToken", &data["generateApiKeyToken"])?;
        let keyring = &self.crm.keyring;
        let sealed_key = keyring.seal(&api_key_context(self.tenant.id), api_key.as_bytes())?;
        let sealed_password =
            keyring.seal(&password_context(self.tenant.id), self.password.as_bytes())?;
        if sealed_key.key_id != sealed_password.key_id {
            return Err(ProvisionError::State(
                "the keyring changed its active key while sealing".into(),
            ));
        }
        sqlx::query(
            "UPDATE crm_workspaces SET key_id = $2, owner_password = $3, api_key_token = $4, updated_at = now()
              WHERE tenant_id = $1",
        )
        .bind(self.tenant.id)
        .bind(&sealed_key.key_id)
        .bind(&sealed_password.bytes)
        .bind(&sealed_key.bytes)
        .execute(&self.crm.db)
        .await?;
        self.row.key_id = Some(sealed_key.key_id);
        self.row.api_key_token = Some(sealed_key.bytes);
        self.save(Progress::Ready).await
    }

    fn stored_api_key(&self) -> Result<String, ProvisionError> {
        let (Some(key_id), Some(token)) = (&self.row.key_id, &self.row.api_key_token) else {
            return Err(ProvisionError::State(
                "crm_workspaces is ready without an API key token".into(),
            ));
        };
        Ok(self
            .crm
            .keyring
            .open_string(&api_key_context(self.tenant.id), key_id, token)?)
    }
}

/// `{ token }` at `value`.
fn token_at(operation: &'static str, value: &Value) -> Result<String, TwentyError> {
    value["token"]
        .as_str()
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| TwentyError::Decode {
            operation,
            message: "no token in the answer".into(),
        })
}

/// `(id, workspaceUrls.subdomainUrl)` of a workspace.
fn workspace_at(
    operation: &'static str,
    workspace: &Value,
) -> Result<(String, String), TwentyError> {
    match (
        workspace["id"].as_str(),
        workspace["workspaceUrls"]["subdomainUrl"].as_str(),
    ) {
        (Some(id), Some(url)) => Ok((id.to_owned(), url.to_owned())),
        _ => Err(TwentyError::Decode {
            operation,
            message: "no workspace id and subdomainUrl in the answer".into(),
        }),
    }
}

fn rfc3339(at: OffsetDateTime) -> Result<String, ProvisionError> {
    at.format(&Rfc3339)
        .map_err(|e| ProvisionError::State(format!("cannot format {at}: {e}")))
}
