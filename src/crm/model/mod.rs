//! The Wosool data model of every tenant's Twenty workspace, as code: a versioned manifest
//! (`config/crm-model.json`) and its idempotent application through the metadata API, per workspace and
//! across the fleet.

pub mod apply;
pub mod manifest;

pub use apply::{
    ApplyError, ApplyReport, MetadataApi, MetadataConnector, MetadataError, RemoteField,
    RemoteObject, RolloutEvent, WorkspaceApplyError, apply, apply_to_all, apply_to_workspace,
};
pub use manifest::{Manifest, ManifestError};
