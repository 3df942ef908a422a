//! The merchant's store data imported from Salla, read-only for every member of the organization and its
//! API keys: customers, products, orders, abandoned carts, headline statistics and the import's progress.
//! Every handler reads the caller's own tenant database only (`TenantContext`).
//!
//! Lists share one contract: `limit` (1–200, default 50), an opaque `cursor` from the previous page's
//! `next_cursor`, an allow-listed `sort`, and resource filters; answers are `{"data": [...], "next_cursor"}`.
//! Ids are Salla's; money is a decimal string; times are RFC 3339.

mod carts;
mod customers;
mod money;
mod orders;
mod paging;
mod params;
mod products;
mod sql;
mod stats;
mod sync;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(customers::list))
        .route("/products", get(products::list))
        .route("/orders", get(orders::list))
        .route("/orders/{id}", get(orders::show))
        .route("/carts/abandoned", get(carts::list))
        .route("/stats", get(stats::show))
        .route("/sync", get(sync::show))
        .route("/sync/resync", axum::routing::post(sync::resync))
}
