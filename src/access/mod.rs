//! Who may do what in a tenant: the ordered [`Role`]s, the [`Scope`] of API keys, the one permission
//! [`TABLE`] (resource × action → minimum role) and the [`Access`] every route declares in `router.rs`.
//! `TenantContext` enforces a route's declaration; nothing else decides a role (see `docs/security.md`).

mod permission;
mod role;
mod route;
mod scope;

pub use permission::{Action, Permission, Resource, TABLE, minimum};
pub use role::Role;
pub use route::{Access, RouteInfo};
pub use scope::Scope;
