//! The one home of a tenant's commerce tables (migrations/tenant/*_commerce.sql): each column declared once
//! (`schema`), the statements generated from the declarations (`sql`), idempotent batch upserts of Merchant
//! API pages and webhook objects (`write`), the application of webhook events (`events`), and what readers
//! share (`read`: the purchase rule, select lists, customer aggregates).
//!
//! Every function takes `&mut PgConnection`, so callers can run it inside their own transaction; those that
//! write more than once open a savepoint of their own, so each call is atomic.
//!
//! # When a payload overwrites a stored row
//!
//! Salla sends no delivery ids and no ordering; what dates a payload is Salla's own `updated_at`, which API
//! items and most webhooks carry ("dated") and some do not: List Orders items, the docs' `order.created`,
//! legacy carts ("undated"). The rule, per row:
//!
//! 1. **Dated vs dated:** a payload older than the stored `source_updated_at` is stale and changes nothing. An
//!    equal or newer one is applied.
//! 2. **Undated onto a dated row:** its age is unknown, so it cannot prove it is newer than the dated data;
//!    it only fills columns that are still NULL (and adds `raw` keys the row lacks). This is what keeps a List
//!    Orders item (status and total only) from clobbering a richer, newer order details or webhook payload.
//! 3. **Undated onto an undated (or no) row:** applied, the last write wins.
//!
//! "Applied" means: each column takes the payload's value when the payload carries the column's source key
//! (even as `null`, `{}` or `0`: that is how Salla clears a sale price or a coupon), and keeps the stored value
//! when the payload lacks the key (a thin payload never blanks what a richer one stored). `raw` is the stored
//! object merged with the payload's top-level keys, so fields without a column are never lost, and
//! `source_updated_at` only moves forward. A payload that would change nothing is not written at all, so
//! writing the same page or event twice changes no row (not even `synced_at`).
//!
//! Events without a date of their own follow their own rules, documented on [`apply_event`].

mod events;
pub mod read;
mod schema;
mod sql;
mod write;

pub use events::apply_event;
pub use read::{CustomerAggregates, customer_aggregates};
pub use write::{
    upsert_carts, upsert_customers, upsert_orders, upsert_orders_marking, upsert_products,
};

#[derive(Debug, thiserror::Error)]
pub enum CommerceError {
    #[error("tenant database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Rows were inserted or changed.
    Changed,
    /// Everything the event says is already stored (a duplicate delivery).
    Unchanged,
    /// The event is older than the stored data and was ignored.
    Stale,
    /// The event patches a product we do not have; the next full import or re-scan brings it whole.
    Missing,
    /// Not a store-data event (app lifecycle, events we do not act on).
    NotApplicable,
}

/// What a batch upsert did, per payload of the batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
    /// Older than the stored row: ignored.
    pub stale: u64,
    /// Already stored as they are (or repeated within the batch).
    pub unchanged: u64,
}

impl UpsertCounts {
    /// Rows inserted or updated.
    pub fn written(&self) -> u64 {
        self.inserted + self.updated
    }

    fn applied(&self) -> Applied {
        if self.written() > 0 {
            Applied::Changed
        } else if self.stale > 0 {
            Applied::Stale
        } else {
            Applied::Unchanged
        }
    }
}
