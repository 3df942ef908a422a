//! Operator-facing API under `/api/admin` (also mounted at `/admin`), authenticated by `X-Admin-Key`.

pub(crate) mod audit;
mod auth;
pub(crate) mod backups;
pub(crate) mod crm;
pub(crate) mod impersonation;
pub(crate) mod jobs;
pub(crate) mod maintenance;
pub(crate) mod moves;
pub(crate) mod notifications;
pub(crate) mod salla;
pub(crate) mod tenants;
pub mod webhooks;

pub use auth::AdminAuth;
