//! What the readers of the commerce tables share: the purchase rule, the select lists generated from the
//! table declarations, and the customer aggregates the import and the CRM sync compute.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::CommerceError;
use super::schema::{CARTS, CUSTOMERS, Column, DATE, ITEM_COLUMNS, ORDERS, PRODUCTS};

/// The orders that count as purchases, with `$alias.` before each column (or none): not deleted, and not
/// canceled (status slug `canceled`, which custom statuses keep). Every other status counts, unpaid and
/// refunded (`restored`) ones included, as Salla's own customer list does. A macro so that constant
/// queries can embed it with `concat!`.
macro_rules! purchase {
    () => {
        "deleted_at IS NULL AND status_slug IS DISTINCT FROM 'canceled'"
    };
    ($alias:literal) => {
        concat!(
            $alias,
            ".deleted_at IS NULL AND ",
            $alias,
            ".status_slug IS DISTINCT FROM 'canceled'"
        )
    };
}
pub(crate) use purchase;

/// A subquery answering `orders_count`, `total_spent` and `last_order_at` of customer `$alias` (a
/// `customers` row) over its purchases, for a `LATERAL` join.
macro_rules! customer_orders {
    ($alias:literal) => {
        concat!(
            "SELECT count(*) AS orders_count, sum(o.total) AS total_spent, max(o.ordered_at) AS last_order_at \
             FROM orders o WHERE o.customer_salla_id = ",
            $alias,
            ".salla_id AND ",
            $crate::commerce::read::purchase!("o")
        )
    };
}
pub(crate) use customer_orders;

/// A commerce table whose rows the merchant API lists.
#[derive(Debug, Clone, Copy)]
pub enum TableName {
    Customers,
    Products,
    Orders,
    Carts,
    /// `order_items`
    Items,
}

/// Every column the table's declaration has, as `$alias.column`, for a select list: dates as
/// `YYYY-MM-DD` text, and a `<thing>_salla_id` column under the name `<thing>_id` (the API calls Salla ids
/// `id`). Adding a column to a table's declaration adds it here, so each reader only adds its field.
pub fn columns(table: TableName, alias: &str) -> String {
    fn list<T>(columns: &[Column<T>], alias: &str) -> Vec<String> {
        columns
            .iter()
            // `raw` stays in the database.
            .filter(|c| c.name != "raw")
            .map(|c| {
                let n = c.name;
                if c.ty == DATE {
                    format!("to_char({alias}.{n}, 'YYYY-MM-DD') AS {n}")
                } else if let Some(thing) = n.strip_suffix("_salla_id") {
                    format!("{alias}.{n} AS {thing}_id")
                } else {
                    format!("{alias}.{n}")
                }
            })
            .collect()
    }
    let columns = match table {
        TableName::Customers => list(CUSTOMERS.columns, alias),
        TableName::Products => list(PRODUCTS.columns, alias),
        TableName::Orders => list(ORDERS.columns, alias),
        TableName::Carts => list(CARTS.columns, alias),
        TableName::Items => list(ITEM_COLUMNS, alias),
    };
    columns.join(", ")
}

/// A customer's order history, computed from `orders`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerAggregates {
    pub orders_count: i64,
    /// The sum of the orders' totals, each in its order's currency (Salla stores sell in one currency; a
    /// multi-currency store's sum mixes them, as Salla's own customer list does).
    pub total_spent: Decimal,
    pub last_order_at: Option<OffsetDateTime>,
}

/// Order count, total spent and last order date of each customer in `customer_ids` (every id gets an entry;
/// zero when the customer has no orders), computed from `orders` through `orders_customer_idx`.
///
/// Deleted orders (`deleted_at`) and canceled ones (status slug `canceled`, which custom statuses keep) are
/// not counted: they are not purchases. Every other status counts, including unpaid and refunded
/// (`restored`) ones, as Salla's own customer list does.
pub async fn customer_aggregates(
    conn: &mut PgConnection,
    customer_ids: &[i64],
) -> Result<HashMap<i64, CustomerAggregates>, CommerceError> {
    let rows: Vec<(i64, i64, Decimal, Option<OffsetDateTime>)> = sqlx::query_as(concat!(
        "SELECT customer_salla_id, count(*), COALESCE(sum(total), 0), max(ordered_at) FROM orders \
         WHERE customer_salla_id = ANY($1) AND ",
        purchase!(),
        " GROUP BY customer_salla_id"
    ))
    .bind(customer_ids)
    .fetch_all(conn)
    .await?;
    let mut aggregates: HashMap<i64, CustomerAggregates> = customer_ids
        .iter()
        .map(|id| (*id, CustomerAggregates::default()))
        .collect();
    for (id, orders_count, total_spent, last_order_at) in rows {
        aggregates.insert(
            id,
            CustomerAggregates {
                orders_count,
                total_spent,
                last_order_at,
            },
        );
    }
    Ok(aggregates)
}
