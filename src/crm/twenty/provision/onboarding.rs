//! Sub-step 5 of a run: every onboarding step of the new workspace cleared, with the mutations the version
//! has and, where configured, SQL on Twenty's database; `COMPLETED` is asserted.

use serde_json::json;
use sqlx::Connection;

use super::queries::Progress;
use super::{ProvisionError, Run};
use crate::config::Secret;
use crate::crm::twenty::client::{CallOptions, TwentyError};
use crate::crm::twenty::documents::{self as docs, Document};

/// §3.2: every onboarding flag of the workspace and of the owner outside it; no filter on `type`, which is
/// `USER_VAR` or `USER_VARIABLE` depending on the version.
const DELETE_ONBOARDING_FLAGS: &str = r#"DELETE FROM core."keyValuePair"
 WHERE key LIKE 'ONBOARDING\_%' ESCAPE '\'
   AND ("workspaceId" = $1::uuid OR ("userId" = $2::uuid AND "workspaceId" IS NULL))"#;

impl Run<'_> {
    /// Sub-step 5: every onboarding step cleared with the mutations this version has, then with SQL if
    /// configured and still needed; `COMPLETED` is asserted.
    pub(super) async fn clear_onboarding(&mut self) -> Result<(), ProvisionError> {
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
}
