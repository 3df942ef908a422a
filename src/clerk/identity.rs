//! The provisioning `identity` step with Clerk: make sure the tenant's owner exists as a Clerk user and the
//! tenant has a Clerk organization, linked both ways (org id on the tenant, tenant id in the org's private
//! metadata). Every call is a look-up-then-create, so a retry after a crash at any point converges on one user
//! and one organization.

use serde_json::json;

use super::api::{ClerkApi, ClerkApiError};
use crate::provisioning::integrations::{BoxFuture, IdentityProvider, StepOutcome};
use crate::tenancy::{Tenant, TenantDirectory};

/// Key of our tenant id in an organization's private metadata.
pub const TENANT_ID_METADATA: &str = "wosool_tenant_id";

pub struct ClerkIdentity {
    api: ClerkApi,
    directory: TenantDirectory,
}

impl ClerkIdentity {
    pub fn new(api: ClerkApi, directory: TenantDirectory) -> Self {
        Self { api, directory }
    }

    async fn provision(&self, tenant: &Tenant) -> Result<StepOutcome, String> {
        let text = |e: ClerkApiError| e.to_string();
        let metadata = json!({ TENANT_ID_METADATA: tenant.id });
        // An organization already linked (created in Clerk first, or by an earlier attempt): keep it.
        if let Some(org_id) = &tenant.clerk_org_id
            && let Some(org) = self.api.get_organization(org_id).await.map_err(text)?
        {
            if org.private_metadata.get(TENANT_ID_METADATA).is_none() {
                self.api
                    .merge_org_metadata(&org.id, &metadata)
                    .await
                    .map_err(text)?;
            }
            return Ok(StepOutcome::Done(Some(format!(
                "linked to existing organization {}",
                org.id
            ))));
        }
        let user = self
            .api
            .ensure_user(&tenant.owner_email, &format!("wosool:{}", tenant.id))
            .await
            .map_err(text)?;
        // The tenant slug is unique in our registry, so it names our organization in Clerk too: an earlier
        // attempt that created it but died before recording it is found here instead of creating a second one.
        let org = match self
            .api
            .get_organization(tenant.slug.as_str())
            .await
            .map_err(text)?
        {
            Some(org) => {
                let ours = org.private_metadata.get(TENANT_ID_METADATA) == Some(&json!(tenant.id));
                if !ours {
                    return Err(format!(
                        "a Clerk organization with slug {} exists and belongs to something else",
                        tenant.slug
                    ));
                }
                self.api
                    .add_membership(&org.id, &user.id, "org:admin")
                    .await
                    .map_err(text)?;
                org
            }
            None => self
                .api
                .create_organization(
                    &tenant.display_name,
                    tenant.slug.as_str(),
                    &user.id,
                    &metadata,
                )
                .await
                .map_err(text)?,
        };
        self.directory
            .set_clerk_org(tenant.id, &org.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(StepOutcome::Done(Some(format!(
            "organization {} with owner {}",
            org.id, user.id
        ))))
    }
}

impl IdentityProvider for ClerkIdentity {
    fn provision_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(self.provision(tenant))
    }
}
