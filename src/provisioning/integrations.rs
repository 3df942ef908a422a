//! The provisioning steps that reach other systems go through these traits, so provisioning does not depend on
//! which identity provider or CRM is configured. Until the Clerk and Twenty modules exist, the implementations
//! below report the step as skipped.

use std::future::Future;
use std::pin::Pin;

use crate::tenancy::Tenant;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an external step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Done(Option<String>),
    Skipped(String),
}

/// The tenant's organization and owner in the identity provider. Both calls must be idempotent.
pub trait IdentityProvider: Send + Sync {
    /// Creates (or finds) the organization and its owner, linked to the tenant.
    fn provision_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>>;

    /// Deletes the organization, and its users who belong to no other organization (tenant deletion).
    fn delete_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>>;
}

/// The tenant's CRM workspace. Both calls must be idempotent.
pub trait CrmBackend: Send + Sync {
    /// Creates (or finds) the workspace with the Wosool data model.
    fn provision_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>>;

    /// Deletes the workspace and the records synced into it (tenant deletion).
    fn delete_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>>;
}

/// Used when no identity provider / CRM is configured.
pub struct NotConfigured;

fn not_configured<'a>() -> BoxFuture<'a, Result<StepOutcome, String>> {
    Box::pin(async { Ok(StepOutcome::Skipped("skipped: not configured".into())) })
}

impl IdentityProvider for NotConfigured {
    fn provision_tenant<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        not_configured()
    }

    fn delete_tenant<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        not_configured()
    }
}

impl CrmBackend for NotConfigured {
    fn provision_workspace<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        not_configured()
    }

    fn delete_workspace<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        not_configured()
    }
}
