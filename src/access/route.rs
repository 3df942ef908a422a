//! What a route declares about its callers, in `router.rs`. The declaration travels with the request (a
//! per-route extension) to `TenantContext`, which refuses a tenant request whose role is below the route's
//! minimum, and any tenant request on a route that declared no tenant access.

use axum::http::Method;

use super::{Action, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, registration, sign-in pages, static files).
    Public,
    /// A provider calling back, authenticated by its signature on the raw body.
    Webhook,
    /// The operators' API, `X-Admin-Key`.
    Operator,
    /// A tenant credential whose role reaches the table's minimum for this pair.
    Tenant(Resource, Action),
    /// A tenant credential; the handler decides the pair per request (the CRM proxy: the method, or the
    /// GraphQL operation type) through `TenantContext::require`.
    TenantDynamic,
}

/// One route of the router: what the route table (`router::routes`) lists, for tests and docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `None`: every method (the CRM proxy's routes).
    pub method: Option<Method>,
    /// The full path template, e.g. `/api/orders/{id}`.
    pub path: String,
    pub access: Access,
}
