//! The CRM: Twenty as a headless backend (shared/reference/twenty.md). A workspace per tenant provisioned with
//! no onboarding wizard, the Wosool data model applied as code, tenant data synced through an outbox, and a
//! tenant-scoped reverse proxy.

pub mod bridge;
pub mod capacity;
pub mod model;
pub mod placement;
pub mod proxy;
pub mod sync;
pub mod twenty;
pub mod workspace;
