//! Tenancy: who a request or a job belongs to. This stage holds only the tenant identifier; the registry,
//! resolution and per-tenant pools arrive with the tenancy issue.

mod id;

pub use id::TenantId;
