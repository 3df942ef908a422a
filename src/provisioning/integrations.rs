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

/// Creates (or finds) the tenant's organization and owner in the identity provider. Must be idempotent.
pub trait IdentityProvider: Send + Sync {
    fn provision_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>>;
}

/// Creates (or finds) the tenant's CRM workspace with the Wosool data model. Must be idempotent.
pub trait CrmBackend: Send + Sync {
    fn provision_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>>;
}

/// Used when no identity provider / CRM is configured.
pub struct NotConfigured;

impl IdentityProvider for NotConfigured {
    fn provision_tenant<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(async { Ok(StepOutcome::Skipped("skipped: not configured".into())) })
    }
}

impl CrmBackend for NotConfigured {
    fn provision_workspace<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(async { Ok(StepOutcome::Skipped("skipped: not configured".into())) })
    }
}
