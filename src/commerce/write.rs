//! Batch upserts of Salla objects (an API page, or one webhook's object) under the rule of the module docs of
//! `commerce`.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use super::schema::{self, CARTS, CUSTOMERS, ORDERS, PRODUCTS, Payload, Table};
use super::sql::{CARTS_SQL, CUSTOMERS_SQL, ITEMS_SQL, ORDERS_SQL, PRODUCTS_SQL};
use super::{CommerceError, UpsertCounts};
use crate::salla::model::{Cart, Customer, Order, Product};

/// Upserts customers.
pub async fn upsert_customers(
    conn: &mut PgConnection,
    customers: &[Customer],
) -> Result<UpsertCounts, CommerceError> {
    upsert_newest(conn, customers, &CUSTOMERS, CUSTOMERS_SQL.as_str()).await
}

/// Upserts products. `deleted_at` is left alone: a late payload never revives a deleted product.
pub async fn upsert_products(
    conn: &mut PgConnection,
    products: &[Product],
) -> Result<UpsertCounts, CommerceError> {
    upsert_newest(conn, products, &PRODUCTS, PRODUCTS_SQL.as_str()).await
}

/// Upserts abandoned carts (current and legacy shapes). A payload without `status` keeps the stored one (a
/// purchased cart stays purchased).
pub async fn upsert_carts(
    conn: &mut PgConnection,
    carts: &[Cart],
) -> Result<UpsertCounts, CommerceError> {
    upsert_newest(conn, carts, &CARTS, CARTS_SQL.as_str()).await
}

/// Upserts orders with their items: an order that carries full lines (webhooks, order details) replaces its
/// stored items when the order row took the payload; List Orders' item summaries (no ids, no amounts) leave
/// the stored items alone. An order counts as updated when its items changed too. `deleted_at` is left alone.
pub async fn upsert_orders(
    conn: &mut PgConnection,
    orders: &[Order],
) -> Result<UpsertCounts, CommerceError> {
    upsert_orders_marking(conn, orders, &[]).await
}

/// [`upsert_orders`], marking the orders of `needing_details` as needing their details fetched (a whole order
/// is never marked: it carries them). Marks are written with the row, in the same statement.
pub async fn upsert_orders_marking(
    conn: &mut PgConnection,
    orders: &[Order],
    needing_details: &[i64],
) -> Result<UpsertCounts, CommerceError> {
    if orders.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let batch = newest_per_id(orders);
    let rows = batch
        .iter()
        .map(|order| {
            let mut row = ORDERS.row(order);
            if row.get("details_needed").is_none_or(Value::is_null)
                && needing_details.contains(&order.id)
            {
                row.insert("details_needed".into(), true.into());
            }
            Value::Object(row)
        })
        .collect();
    let mut full_orders = Vec::new();
    let mut items: HashMap<i64, Value> = HashMap::new();
    for order in &batch {
        let Some(lines) = order.full_items() else {
            continue;
        };
        let mut carried = Map::new();
        carried.insert("salla_id".into(), order.id.into());
        carried.insert("source_updated_at".into(), schema::time(order.updated_at));
        full_orders.push(Value::Object(carried));
        for line in lines {
            // An item id listed twice would be written twice in one statement; the later line wins.
            if let Some(id) = line.id {
                items.insert(id, Value::Object(schema::item_row(order.id, id, line)));
            }
        }
    }

    let mut tx = conn.begin().await?;
    let mut written = write_rows(&mut tx, ORDERS_SQL.as_str(), rows).await?;
    if !full_orders.is_empty() {
        let changed: Vec<i64> = sqlx::query_scalar(ITEMS_SQL.as_str())
            .bind(Value::Array(items.into_values().collect()))
            .bind(Value::Array(full_orders))
            .fetch_one(&mut *tx)
            .await?;
        for id in changed {
            if !written.inserted.contains(&id) && !written.updated.contains(&id) {
                written.updated.push(id);
            }
        }
    }
    tx.commit().await?;
    Ok(written.counts(orders.len()))
}

/// Writes the newest payload of each id of `items` with the upsert `sql` of `table`.
async fn upsert_newest<T: Payload>(
    conn: &mut PgConnection,
    items: &[T],
    table: &Table<T>,
    sql: &'static str,
) -> Result<UpsertCounts, CommerceError> {
    if items.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let rows = newest_per_id(items)
        .into_iter()
        .map(|item| Value::Object(table.row(item)))
        .collect();
    Ok(write_rows(conn, sql, rows).await?.counts(items.len()))
}

/// One payload per id (the newest by `updated_at`, the later on a tie: one statement cannot update a row
/// twice), in id order (concurrent batches then lock rows in the same order).
fn newest_per_id<T: Payload>(items: &[T]) -> Vec<&T> {
    newest_by(items, T::salla_id, T::updated_at)
}

fn newest_by<T>(
    items: &[T],
    id: impl Fn(&T) -> i64,
    updated_at: impl Fn(&T) -> Option<OffsetDateTime>,
) -> Vec<&T> {
    let mut newest: HashMap<i64, &T> = HashMap::with_capacity(items.len());
    for item in items {
        newest
            .entry(id(item))
            .and_modify(|kept| {
                if updated_at(item) >= updated_at(kept) {
                    *kept = item;
                }
            })
            .or_insert(item);
    }
    let mut batch: Vec<&T> = newest.into_values().collect();
    batch.sort_by_key(|item| id(item));
    batch
}

/// What one upsert statement wrote.
struct Written {
    inserted: Vec<i64>,
    updated: Vec<i64>,
    stale: i64,
}

impl Written {
    fn counts(&self, payloads: usize) -> UpsertCounts {
        let inserted = self.inserted.len() as u64;
        let updated = self.updated.len() as u64;
        let stale = self.stale.max(0).unsigned_abs();
        UpsertCounts {
            inserted,
            updated,
            stale,
            unchanged: (payloads as u64).saturating_sub(inserted + updated + stale),
        }
    }
}

async fn write_rows(
    conn: &mut PgConnection,
    sql: &'static str,
    rows: Vec<Value>,
) -> Result<Written, sqlx::Error> {
    let (inserted, updated, stale): (Vec<i64>, Vec<i64>, i64) = sqlx::query_as(sql)
        .bind(Value::Array(rows))
        .fetch_one(conn)
        .await?;
    Ok(Written {
        inserted,
        updated,
        stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_the_newest_payload_per_id_in_id_order() {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).ok();
        let items = [(2, at(5)), (1, None), (2, at(9)), (2, at(7)), (1, None)];
        let kept = newest_by(&items, |i| i.0, |i| i.1);
        assert_eq!(kept.len(), 2);
        assert!(std::ptr::eq(kept[0], &items[4]), "the later of equals");
        assert!(std::ptr::eq(kept[1], &items[2]), "the newest");
    }

    #[test]
    fn rows_carry_exact_money_and_international_mobiles() {
        let customer = Customer::from_value(serde_json::json!({
            "id": 7, "mobile": 501806978, "mobile_code": "966", "groups": [1],
            "updated_at": {"date": "2022-01-24 14:26:55.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
        }))
        .unwrap();
        let row = CUSTOMERS.row(&customer);
        assert_eq!(row["mobile"], "+966501806978");
        assert_eq!(row["source_updated_at"], "2022-01-24T14:26:55+03:00");
        let product = Product::from_value(
            serde_json::json!({"id": 8, "price": 175.47, "quantity": "3000000000"}),
        )
        .unwrap();
        let row = PRODUCTS.row(&product);
        assert_eq!(row["price"], "175.47");
        assert_eq!(row["quantity"], Value::Null, "beyond integer");
    }
}
