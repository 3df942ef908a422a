//! Salla: the app-store install that creates a tenant, signed webhooks through the durable inbox, OAuth tokens
//! (sealed at rest, single-use refresh tokens never raced), the Merchant API client, the history import and
//! live sync into the tenant database (shared/reference/salla.md).

pub mod events;
