//! The provisioning steps that reach other systems go through these traits, so provisioning does not depend on
//! which identity provider or CRM is configured. Until the Clerk and Twenty modules exist, the implementations
//! below report the step as skipped.

use std::error::Error;
use std::fmt;
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

/// Why an external step failed, whatever the implementation's own error. Its message is what the step's row
/// records (and the APIs show): the cause's message as it is, nothing added.
#[derive(Debug)]
pub struct StepError(Box<dyn Error + Send + Sync>);

impl StepError {
    /// Wraps the cause: an error, or a message (`&str`, `String`).
    pub fn new(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }

    /// The cause, e.g. to downcast it to the implementation's error type.
    pub fn cause(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Transparent: the cause's own source comes next in the chain (its message is already this one).
impl Error for StepError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// The tenant's organization and owner in the identity provider. Both calls must be idempotent.
pub trait IdentityProvider: Send + Sync {
    /// Creates (or finds) the organization and its owner, linked to the tenant.
    fn provision_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>>;

    /// Deletes the organization, and its users who belong to no other organization (tenant deletion).
    fn delete_tenant<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>>;
}

/// The tenant's CRM workspace. Both calls must be idempotent.
pub trait CrmBackend: Send + Sync {
    /// Creates (or finds) the workspace with the Wosool data model.
    fn provision_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>>;

    /// Deletes the workspace and the records synced into it (tenant deletion).
    fn delete_workspace<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>>;
}

/// Used when no identity provider / CRM is configured.
pub struct NotConfigured;

fn not_configured<'a>() -> BoxFuture<'a, Result<StepOutcome, StepError>> {
    Box::pin(async { Ok(StepOutcome::Skipped("skipped: not configured".into())) })
}

impl IdentityProvider for NotConfigured {
    fn provision_tenant<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        not_configured()
    }

    fn delete_tenant<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        not_configured()
    }
}

impl CrmBackend for NotConfigured {
    fn provision_workspace<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        not_configured()
    }

    fn delete_workspace<'a>(
        &'a self,
        _tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        not_configured()
    }
}
