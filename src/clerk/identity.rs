//! The provisioning `identity` step with Clerk: make sure the tenant's owner exists as a Clerk user and the
//! tenant has a Clerk organization, linked both ways (org id on the tenant, tenant id in the org's private
//! metadata). Every call is a look-up-then-create, so a retry after a crash at any point converges on one user
//! and one organization. And its reverse for tenant deletion.
//!
//! Instance settings are learnt from Clerk's answers, not configured: an instance without organization slugs
//! refuses a `slug` (403 `organization_slugs_disabled`), so organizations are created without one and found by
//! the owner's memberships (our tenant id is in their private metadata); an instance where password is a
//! required sign-in method refuses `skip_password_requirement` (422 `form_data_missing`), so the owner gets a
//! generated password, sealed with the keyring before the user is created (a lost answer reuses it) and never
//! logged.

use std::sync::atomic::{AtomicBool, Ordering};

use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sqlx::PgPool;

use super::api::{ClerkApi, ClerkApiError, ClerkOrganization, ClerkUser, PASSWORD_REQUIRED_HELP};
use crate::core::Core;
use crate::provisioning::integrations::{BoxFuture, IdentityProvider, StepError, StepOutcome};
use crate::secrets::{Keyring, SecretsError};
use crate::tenancy::{RegistryError, Slug, Tenant, TenantDirectory, TenantId};

/// Key of our tenant id in an organization's private metadata.
pub const TENANT_ID_METADATA: &str = "wosool_tenant_id";

pub struct ClerkIdentity {
    api: ClerkApi,
    directory: TenantDirectory,
    db: PgPool,
    keyring: Keyring,
    /// Learnt from a 403 `organization_slugs_disabled`: organizations are created without a slug.
    slugs_disabled: AtomicBool,
}

/// Sealing context of a tenant's generated Clerk owner password.
pub fn password_context(tenant: TenantId) -> String {
    format!("clerk:{tenant}:owner_password")
}

/// Why the `identity` step (or its reverse) failed; the message is what the step records.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Clerk(#[from] ClerkApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The owner's generated password cannot be sealed or opened.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Clerk requires a password and there is no key to seal a generated one with.
    #[error(
        "{PASSWORD_REQUIRED_HELP}: set secrets.encryption_keys so Wosool can create the owner with a \
         generated password kept sealed, or make password optional in Clerk"
    )]
    NoPasswordKey,
    #[error("the sealed owner password vanished")]
    PasswordVanished,
    #[error("a Clerk organization with slug {0} exists and belongs to something else")]
    SlugTaken(Slug),
    /// The Clerk user who registered the tenant themselves no longer exists.
    #[error("the Clerk user {0} who registered the organization no longer exists")]
    OwnerGone(String),
}

impl ClerkIdentity {
    pub fn new(api: ClerkApi, core: &Core) -> Self {
        Self {
            api,
            directory: core.directory().clone(),
            db: core.db().clone(),
            keyring: core.keyring().clone(),
            slugs_disabled: AtomicBool::new(false),
        }
    }

    async fn provision(&self, tenant: &Tenant) -> Result<StepOutcome, IdentityError> {
        let metadata = json!({ TENANT_ID_METADATA: tenant.id });
        // An organization already linked (created in Clerk first, or by an earlier attempt): keep it.
        if let Some(org_id) = &tenant.clerk_org_id
            && let Some(org) = self.api.get_organization(org_id).await?
        {
            if org.private_metadata.get(TENANT_ID_METADATA).is_none() {
                self.api.merge_org_metadata(&org.id, &metadata).await?;
            }
            return Ok(StepOutcome::Done(Some(format!(
                "linked to existing organization {}",
                org.id
            ))));
        }
        let user = self.ensure_owner(tenant).await?;
        // An earlier attempt that created the organization but died before recording it finds it here instead
        // of creating a second one: among the owner's organizations (Clerk makes the creator a member), or by
        // the tenant slug where the instance has slugs.
        let org = match self.find_ours(tenant, &user).await? {
            Some(org) => {
                self.api
                    .add_membership(&org.id, &user.id, "org:admin")
                    .await?;
                org
            }
            None => self.create_organization(tenant, &user, &metadata).await?,
        };
        self.directory.set_clerk_org(tenant.id, &org.id).await?;
        Ok(StepOutcome::Done(Some(format!(
            "organization {} with owner {}",
            org.id, user.id
        ))))
    }

    /// The owner user: the Clerk user who registered the organization themselves (`tenancy.self_service =
    /// "clerk"`); else found by email, else created without a password, else (password required) with the
    /// tenant's sealed generated password.
    async fn ensure_owner(&self, tenant: &Tenant) -> Result<ClerkUser, IdentityError> {
        if let Some(user) = self.registering_user(tenant.id).await? {
            return self
                .api
                .get_user(&user)
                .await?
                .ok_or(IdentityError::OwnerGone(user));
        }
        let external_id = format!("wosool:{}", tenant.id);
        let stored = self.stored_password(tenant.id).await?;
        if stored.is_none() {
            match self
                .api
                .ensure_user(&tenant.owner_email, &external_id, None)
                .await
            {
                Err(error) if error.is_password_required() => {}
                other => return Ok(other?),
            }
        }
        let password = match stored {
            Some(password) => password,
            None => self.new_password(tenant.id).await?,
        };
        self.api
            .ensure_user(&tenant.owner_email, &external_id, Some(&password))
            .await
            .map_err(IdentityError::from)
    }

    /// Who registered `tenant` with their own Clerk session, if anyone (`tenant_owner_users`).
    async fn registering_user(&self, tenant: TenantId) -> Result<Option<String>, IdentityError> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM tenant_owner_users WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    async fn stored_password(&self, tenant: TenantId) -> Result<Option<String>, IdentityError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, password FROM clerk_owner_credentials WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.db)
        .await?;
        row.map(|(key_id, sealed)| {
            self.keyring
                .open_string(&password_context(tenant), &key_id, &sealed)
                .map_err(IdentityError::from)
        })
        .transpose()
    }

    /// A strong random password, sealed and stored before any user is created with it (a racing attempt's
    /// stored one wins, so both create the user with the same password).
    async fn new_password(&self, tenant: TenantId) -> Result<String, IdentityError> {
        if !self.keyring.is_configured() {
            return Err(IdentityError::NoPasswordKey);
        }
        // 40 alphanumerics plus a symbol: far past Clerk's strength rules, within its 72-character limit.
        let password = format!("{}!", Alphanumeric.sample_string(&mut rand::rng(), 40));
        let sealed = self
            .keyring
            .seal(&password_context(tenant), password.as_bytes())?;
        sqlx::query(
            "INSERT INTO clerk_owner_credentials (tenant_id, key_id, password) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(&sealed.key_id)
        .bind(&sealed.bytes)
        .execute(&self.db)
        .await?;
        tracing::info!(tenant_id = %tenant, "Clerk requires passwords: the owner gets a generated one, stored sealed");
        self.stored_password(tenant)
            .await?
            .ok_or(IdentityError::PasswordVanished)
    }

    /// Our organization for `tenant`, if one exists already.
    async fn find_ours(
        &self,
        tenant: &Tenant,
        owner: &ClerkUser,
    ) -> Result<Option<ClerkOrganization>, IdentityError> {
        let ours = |org: &ClerkOrganization| {
            org.private_metadata.get(TENANT_ID_METADATA) == Some(&json!(tenant.id))
        };
        let memberships = self.api.user_memberships(&owner.id).await?;
        if let Some(found) = memberships
            .into_iter()
            .map(|m| m.organization)
            .find(|org| ours(org))
        {
            return Ok(Some(found));
        }
        if self.slugs_disabled.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.api.get_organization(tenant.slug.as_str()).await? {
            Some(org) if ours(&org) => Ok(Some(org)),
            Some(_) => Err(IdentityError::SlugTaken(tenant.slug.clone())),
            None => Ok(None),
        }
    }

    /// Creates the organization: with the tenant slug, unless the instance has no slugs (learnt once).
    async fn create_organization(
        &self,
        tenant: &Tenant,
        owner: &ClerkUser,
        metadata: &serde_json::Value,
    ) -> Result<ClerkOrganization, IdentityError> {
        let with_slug = !self.slugs_disabled.load(Ordering::Relaxed);
        let slug = with_slug.then_some(tenant.slug.as_str());
        match self
            .api
            .create_organization(&tenant.display_name, slug, &owner.id, metadata)
            .await
        {
            Err(error) if with_slug && error.is_slugs_disabled() => {
                tracing::info!(
                    "this Clerk instance has organization slugs disabled; creating without"
                );
                self.slugs_disabled.store(true, Ordering::Relaxed);
                self.api
                    .create_organization(&tenant.display_name, None, &owner.id, metadata)
                    .await
                    .map_err(IdentityError::from)
            }
            other => Ok(other?),
        }
    }

    /// Tenant deletion: the organization's members who belong to no other organization, then the
    /// organization (with its memberships and invitations). Users go first so that a crash in between still
    /// finds them through the organization on the next attempt. A user who registered the tenant with their
    /// own Clerk account (`tenancy.self_service = "clerk"`) keeps it: we never created it, so it is not ours
    /// to delete.
    async fn delete(&self, tenant: &Tenant) -> Result<StepOutcome, IdentityError> {
        let org = match &tenant.clerk_org_id {
            Some(id) => Some(id.clone()),
            None => {
                // Never linked (a crash before recording it): look for ours among the owner's organizations.
                match self.api.find_user_by_email(&tenant.owner_email).await? {
                    Some(owner) => self.find_ours(tenant, &owner).await?.map(|org| org.id),
                    None => None,
                }
            }
        };
        let Some(org) = org else {
            return Ok(StepOutcome::Skipped("no Clerk organization".into()));
        };
        let registering = self.registering_user(tenant.id).await?;
        let mut deleted_users = 0;
        for user in self.api.organization_member_ids(&org).await? {
            if registering.as_deref() == Some(user.as_str()) {
                continue;
            }
            let elsewhere = self
                .api
                .user_memberships(&user)
                .await?
                .iter()
                .any(|m| m.organization.id != org);
            if !elsewhere {
                self.api.delete_user(&user).await?;
                deleted_users += 1;
            }
        }
        self.api.delete_organization(&org).await?;
        sqlx::query("DELETE FROM clerk_owner_credentials WHERE tenant_id = $1")
            .bind(tenant.id)
            .execute(&self.db)
            .await?;
        Ok(StepOutcome::Done(Some(format!(
            "organization {org} deleted, with {deleted_users} user(s) in no other organization"
        ))))
    }
}

impl IdentityProvider for ClerkIdentity {
    fn provision_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        Box::pin(async move { self.provision(tenant).await.map_err(StepError::new) })
    }

    fn delete_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        Box::pin(async move { self.delete(tenant).await.map_err(StepError::new) })
    }
}
