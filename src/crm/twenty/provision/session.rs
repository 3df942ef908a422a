//! Sub-steps 1–4 of a run, and the tokens they need: the owner signed up (or in), its workspace created (or
//! found), the workspace's tokens exchanged, and the workspace activated.

use serde_json::{Value, json};

use super::queries::Progress;
use super::{ProvisionError, Run};
use crate::crm::twenty::client::{CallOptions, TwentyError};
use crate::crm::twenty::documents as docs;

/// Tokens of this run only.
#[derive(Default)]
pub(in crate::crm::twenty) struct Session {
    /// Workspace-agnostic token (`signUp`/`signIn`): enough to create a workspace.
    agnostic: Option<String>,
    /// Login token from `signUpInNewWorkspace`, to exchange for an access token.
    login: Option<String>,
    /// Access token of the workspace.
    access: Option<String>,
}

impl Run<'_> {
    fn credentials(&self) -> Value {
        json!({ "email": self.row.owner_email, "password": self.password })
    }

    /// Sub-step 1: the owner user. One that exists already (an earlier attempt whose answer was lost) is
    /// signed in to later instead.
    pub(super) async fn sign_up(&mut self) -> Result<(), ProvisionError> {
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
    pub(in crate::crm::twenty) async fn agnostic_token(
        &mut self,
    ) -> Result<String, ProvisionError> {
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
    pub(super) async fn create_workspace(&mut self) -> Result<(), ProvisionError> {
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
    pub(in crate::crm::twenty) async fn owned_workspaces(
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
    pub(in crate::crm::twenty) async fn access_token(&mut self) -> Result<String, ProvisionError> {
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
    pub(super) async fn exchange_tokens(&mut self) -> Result<(), ProvisionError> {
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
    pub(super) async fn activate(&mut self) -> Result<(), ProvisionError> {
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
}

/// `{ token }` at `value`.
pub(super) fn token_at(operation: &'static str, value: &Value) -> Result<String, TwentyError> {
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
