//! Twenty over its HTTP APIs (shared/reference/twenty.md): the client, what the server offers (introspected
//! once per process), the provisioning of a tenant's workspace, and the metadata API the data model uses.

pub mod capabilities;
pub mod client;
pub mod documents;
pub mod instances;
pub mod metadata;
pub mod provision;
mod teardown;

pub use capabilities::Capabilities;
pub use client::{CallOptions, Endpoint, TwentyClient, TwentyError};
pub use instances::{TwentyInstance, TwentyInstances};
pub use metadata::MetadataApi;
pub use provision::TwentyCrm;

use crate::provisioning::integrations::{BoxFuture, StepError};

/// The Twenty version Wosool is built and tested against (`config/twenty.version`): the compose file runs this
/// image, and `scripts/test` validates every document against this version's published schema.
pub const PINNED_VERSION: &str = include_str!("../../../config/twenty.version").trim_ascii();
use crate::tenancy::Tenant;

/// Called once a tenant's workspace is ready (onboarding completed, API key stored), on every provisioning
/// run, with the client of the instance it lives on, e.g. to apply the data model. Must be idempotent; an error fails the provisioning `crm` step.
pub trait WorkspaceReadyHook: Send + Sync {
    fn workspace_ready<'a>(
        &'a self,
        tenant: &'a Tenant,
        client: &'a TwentyClient,
        api_key: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>>;
}
