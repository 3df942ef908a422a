//! Sub-steps 6–8 of a run: the workspace's Admin role, an API key with it (an earlier attempt's key adopted
//! rather than a second one minted), and the key's token sealed in `crm_workspaces`.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::queries::Progress;
use super::session::token_at;
use super::{ProvisionError, Run};
use crate::crm::twenty::client::{CallOptions, TwentyError};
use crate::crm::twenty::documents as docs;
use crate::crm::workspace::{api_key_context, password_context};

/// Name of the API key we mint in every workspace.
const API_KEY_NAME: &str = "wosool-control-plane";
/// Lifetime of that key: Twenty's UI default ("100 years").
const API_KEY_LIFETIME: time::Duration = time::Duration::days(36_500);

impl Run<'_> {
    /// Sub-steps 6–7: the Admin role, and an API key with it (where keys have roles).
    pub(super) async fn create_api_key(&mut self) -> Result<(), ProvisionError> {
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
    pub(super) async fn generate_api_key_token(&mut self) -> Result<(), ProvisionError> {
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

    pub(super) fn stored_api_key(&self) -> Result<String, ProvisionError> {
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

fn rfc3339(at: OffsetDateTime) -> Result<String, ProvisionError> {
    at.format(&Rfc3339)
        .map_err(|e| ProvisionError::State(format!("cannot format {at}: {e}")))
}
