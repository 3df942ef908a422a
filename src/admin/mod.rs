//! Operator-facing API under `/api/admin` (also mounted at `/admin`), authenticated by `X-Admin-Key`.

mod auth;
pub(crate) mod crm;
pub(crate) mod jobs;
pub(crate) mod salla;
pub(crate) mod tenants;
pub mod webhooks;

pub use auth::AdminAuth;
