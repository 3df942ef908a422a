//! The CRM: Twenty as a headless backend (shared/reference/twenty.md). A workspace per tenant provisioned with
//! no onboarding wizard, the Wosool data model applied as code, tenant data synced through an outbox, and a
//! tenant-scoped reverse proxy.

pub mod bridge;
pub mod capacity;
pub mod model;
pub mod placement;
pub mod proxy;
pub mod records;
pub mod sync;
pub mod twenty;
pub mod workspace;

/// Why the CRM services cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum CrmSetupError {
    #[error(transparent)]
    Http(#[from] crate::outbound::ClientError),
    #[error("Twenty needs secrets.encryption_keys (its API keys are stored sealed)")]
    NoEncryptionKey,
    #[error("Twenty instance {key}: {why}")]
    BadInstance { key: String, why: BaseUrlError },
    #[error(transparent)]
    Manifest(#[from] model::ManifestError),
}

/// Why the proxy cannot forward to an instance's `crm.base_url`.
#[derive(Debug, thiserror::Error)]
pub enum BaseUrlError {
    #[error("crm.base_url is not a URL: {0}")]
    NotAUrl(axum::http::uri::InvalidUri),
    #[error("crm.base_url needs a scheme and a host")]
    NoHost,
    #[error("crm.base_url must be http or https, not {0}")]
    Scheme(axum::http::uri::Scheme),
    #[error("cannot load the platform's TLS roots: {0}")]
    TlsRoots(rustls::Error),
}
