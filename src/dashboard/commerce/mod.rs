//! The merchant's store data imported from Salla, read-only for every member of the organization and its
//! API keys: customers, products, orders, abandoned carts, headline statistics and the import's progress.
//! Every handler reads the caller's own tenant database only (`TenantContext`).
//!
//! Lists share one contract: `limit` (1–200, default 50), an opaque `cursor` from the previous page's
//! `next_cursor`, an allow-listed `sort`, and resource filters; answers are `{"data": [...], "next_cursor"}`.
//! Ids are Salla's; money is a decimal string; times are RFC 3339.

pub(crate) mod carts;
pub(crate) mod customers;
pub(crate) mod insights;
pub(crate) mod money;
pub(crate) mod orders;
mod paging;
mod params;
pub(crate) mod products;
pub(crate) mod segments;
mod sql;
pub(crate) mod stats;
pub(crate) mod sync;
