//! Applying one Salla store event to the commerce tables: full objects through the upserts of `write.rs`,
//! the events without a date of their own by the rules documented on [`apply_event`].

use serde_json::{Map, Value};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use super::schema::PRODUCTS;
use super::sql::PRODUCT_PATCH_SQL;
use super::write::{upsert_carts, upsert_customers, upsert_orders, upsert_products};
use super::{Applied, CommerceError};
use crate::salla::api::Resource;
use crate::salla::events::{EventKind, ProductPatch};
use crate::salla::model::{Money, Order};

fn resource_of(kind: &EventKind) -> Option<Resource> {
    match kind {
        EventKind::OrderUpsert { .. }
        | EventKind::OrderStatusUpdated { .. }
        | EventKind::OrderDeleted { .. } => Some(Resource::Orders),
        EventKind::ProductUpsert(_)
        | EventKind::ProductPatch(_)
        | EventKind::ProductDeleted { .. } => Some(Resource::Products),
        EventKind::CustomerUpsert(_) => Some(Resource::Customers),
        EventKind::CartUpsert(_)
        | EventKind::CartStatusChanged { .. }
        | EventKind::CartPurchased { .. } => Some(Resource::AbandonedCarts),
        EventKind::StoreAuthorize(_)
        | EventKind::AppInstalled(_)
        | EventKind::AppUpdated(_)
        | EventKind::AppUninstalled(_)
        | EventKind::Trial { .. }
        | EventKind::Subscription { .. }
        | EventKind::Other => None,
    }
}

/// Applies a store event to the tenant database, atomically, and records it in `sync_state.last_event_at`
/// of its resource (creating that row if needed), whatever the outcome: the time says webhooks are flowing.
///
/// Full objects (orders, products, customers, carts) follow the rule of the module docs. The events without a
/// date of their own:
///
/// - `order.status.updated`: the order is an undated payload; the status (`data.status` as the name, the
///   slug from the order) is then set unless the row holds a dated payload newer than the status change
///   (`data.created_at`).
/// - Granular product events set exactly the columns whose keys they carry, always (they are the newest
///   word on their field), and merge their keys into `raw` except the price-like ones, whose shapes differ
///   from the full product's (`price` is a bare number there). A patch for a product we do not have is
///   [`Applied::Missing`].
/// - `order.deleted` / `product.deleted` set `deleted_at` (rows stay for history; later payloads never
///   revive them). A delete for a row we do not have stores a tombstone, so the create that a retry may
///   deliver after it stays deleted.
/// - `abandoned.cart.status.changed` sets `status`; `abandoned.cart.purchased` sets `status` and the totals
///   it carries. Both create the cart when it is unknown (carts have no required columns).
///
/// App events and [`EventKind::Other`] are [`Applied::NotApplicable`].
pub async fn apply_event(
    conn: &mut PgConnection,
    kind: &EventKind,
) -> Result<Applied, CommerceError> {
    let Some(resource) = resource_of(kind) else {
        return Ok(Applied::NotApplicable);
    };
    let mut tx = conn.begin().await?;
    let applied = match kind {
        EventKind::OrderUpsert { order, .. } => upsert_orders(&mut tx, std::slice::from_ref(order))
            .await?
            .applied(),
        EventKind::OrderStatusUpdated {
            order,
            status_name,
            changed_at,
        } => order_status(&mut tx, order, status_name, *changed_at).await?,
        EventKind::OrderDeleted { id } => soft_delete_order(&mut tx, *id).await?,
        EventKind::ProductUpsert(product) => {
            upsert_products(&mut tx, std::slice::from_ref(product))
                .await?
                .applied()
        }
        EventKind::ProductPatch(patch) => patch_product(&mut tx, patch).await?,
        EventKind::ProductDeleted { id } => soft_delete_product(&mut tx, *id).await?,
        EventKind::CustomerUpsert(customer) => {
            upsert_customers(&mut tx, std::slice::from_ref(customer))
                .await?
                .applied()
        }
        EventKind::CartUpsert(cart) => upsert_carts(&mut tx, std::slice::from_ref(cart))
            .await?
            .applied(),
        EventKind::CartStatusChanged { id, status } => cart_status(&mut tx, *id, status).await?,
        EventKind::CartPurchased {
            id,
            status,
            currency,
            total,
            subtotal,
            total_discount,
        } => {
            cart_purchased(
                &mut tx,
                *id,
                status,
                currency.as_deref(),
                [*total, *subtotal, *total_discount],
            )
            .await?
        }
        _ => Applied::NotApplicable,
    };
    sqlx::query(
        "INSERT INTO sync_state (resource, last_event_at) VALUES ($1, now()) \
         ON CONFLICT (resource) DO UPDATE SET last_event_at = now(), updated_at = now()",
    )
    .bind(resource.name())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(applied)
}

fn changed_if(row: Option<i64>) -> Applied {
    if row.is_some() {
        Applied::Changed
    } else {
        Applied::Unchanged
    }
}

async fn order_status(
    conn: &mut PgConnection,
    order: &Order,
    status_name: &str,
    changed_at: Option<OffsetDateTime>,
) -> Result<Applied, CommerceError> {
    let upserted = upsert_orders(conn, std::slice::from_ref(order)).await?;
    let status = order.status.as_ref();
    let status_json = order.raw.get("status").filter(|s| s.is_object()).cloned();
    let updated: Option<i64> = sqlx::query_scalar(
        "UPDATE orders AS t SET status_name = $2::text, status_slug = COALESCE($3::text, t.status_slug), \
           status_id = COALESCE($4::bigint, t.status_id), \
           raw = CASE WHEN $5::jsonb IS NULL THEN t.raw ELSE jsonb_set(t.raw, '{status}', $5::jsonb) END, \
           synced_at = now(), updated_at = now() \
         WHERE t.salla_id = $1 \
           AND ($6::timestamptz IS NULL OR t.source_updated_at IS NULL OR $6::timestamptz >= t.source_updated_at) \
           AND ROW(t.status_name, t.status_slug, t.status_id, t.raw) IS DISTINCT FROM \
               ROW($2::text, COALESCE($3::text, t.status_slug), COALESCE($4::bigint, t.status_id), \
                   CASE WHEN $5::jsonb IS NULL THEN t.raw ELSE jsonb_set(t.raw, '{status}', $5::jsonb) END) \
         RETURNING t.id",
    )
    .bind(order.id)
    .bind(status_name)
    .bind(status.and_then(|s| s.slug.as_deref()))
    .bind(status.and_then(|s| s.id))
    .bind(status_json)
    .bind(changed_at)
    .fetch_optional(&mut *conn)
    .await?;
    if updated.is_some() || upserted.written() > 0 {
        return Ok(Applied::Changed);
    }
    let stored: Option<Option<OffsetDateTime>> =
        sqlx::query_scalar("SELECT source_updated_at FROM orders WHERE salla_id = $1")
            .bind(order.id)
            .fetch_optional(&mut *conn)
            .await?;
    let stale = matches!((changed_at, stored), (Some(at), Some(Some(stored))) if at < stored);
    Ok(if stale || upserted.stale > 0 {
        Applied::Stale
    } else {
        Applied::Unchanged
    })
}

/// Keys of granular product events that are not merged into `raw`: their shapes differ from the full
/// product's (`price: 150` instead of `{amount, currency}`, `main_image` as an object, …).
const PATCH_KEYS_NOT_IN_RAW: &[&str] = &[
    "id",
    "price",
    "sale_price",
    "regular_price",
    "taxed_price",
    "pre_tax_price",
    "tax",
    "cost",
    "cost_price",
    "starting_price",
    "with_tax",
    "currency",
    "main_image",
];

async fn patch_product(
    conn: &mut PgConnection,
    patch: &ProductPatch,
) -> Result<Applied, CommerceError> {
    let product = &patch.product;
    let mut full = PRODUCTS.row(product);
    let values: Map<String, Value> = PRODUCTS
        .columns
        .iter()
        .filter(|column| column.keys.iter().any(|key| patch.carries(key)))
        .filter_map(|column| {
            full.remove(column.name)
                .map(|value| (column.name.to_owned(), value))
        })
        .collect();
    let overlay: Map<String, Value> = product
        .raw
        .as_object()
        .map(|data| {
            data.iter()
                .filter(|(key, _)| !PATCH_KEYS_NOT_IN_RAW.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let updated: Option<i64> = sqlx::query_scalar(PRODUCT_PATCH_SQL.as_str())
        .bind(product.id)
        .bind(Value::Object(values))
        .bind(Value::Object(overlay))
        .fetch_optional(&mut *conn)
        .await?;
    if updated.is_some() {
        return Ok(Applied::Changed);
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE salla_id = $1)")
            .bind(product.id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(if exists {
        Applied::Unchanged
    } else {
        Applied::Missing
    })
}

async fn soft_delete_product(conn: &mut PgConnection, id: i64) -> Result<Applied, CommerceError> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO products AS t (salla_id, name, raw, deleted_at) \
         VALUES ($1, '', jsonb_build_object('id', $1), now()) \
         ON CONFLICT (salla_id) DO UPDATE SET deleted_at = now(), synced_at = now(), updated_at = now() \
         WHERE t.deleted_at IS NULL RETURNING t.id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

async fn soft_delete_order(conn: &mut PgConnection, id: i64) -> Result<Applied, CommerceError> {
    // A tombstone needs an order date; the create, if it ever arrives, brings the real one.
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO orders AS t (salla_id, ordered_at, raw, deleted_at) \
         VALUES ($1, now(), jsonb_build_object('id', $1), now()) \
         ON CONFLICT (salla_id) DO UPDATE SET deleted_at = now(), synced_at = now(), updated_at = now() \
         WHERE t.deleted_at IS NULL RETURNING t.id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

async fn cart_status(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
) -> Result<Applied, CommerceError> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO abandoned_carts AS t (salla_id, status, raw) \
         VALUES ($1, $2::text, jsonb_build_object('id', $1, 'status', $2::text)) \
         ON CONFLICT (salla_id) DO UPDATE SET status = EXCLUDED.status, \
           raw = t.raw || jsonb_build_object('status', EXCLUDED.status), synced_at = now(), updated_at = now() \
         WHERE t.status IS DISTINCT FROM EXCLUDED.status RETURNING t.id",
    )
    .bind(id)
    .bind(status)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

async fn cart_purchased(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
    currency: Option<&str>,
    [total, subtotal, total_discount]: [Option<Money>; 3],
) -> Result<Applied, CommerceError> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO abandoned_carts AS t (salla_id, status, currency, total, subtotal, total_discount, raw) \
         VALUES ($1, $2::text, $3, $4, $5, $6, jsonb_build_object('id', $1, 'status', $2::text)) \
         ON CONFLICT (salla_id) DO UPDATE SET status = EXCLUDED.status, \
           currency = COALESCE(EXCLUDED.currency, t.currency), total = COALESCE(EXCLUDED.total, t.total), \
           subtotal = COALESCE(EXCLUDED.subtotal, t.subtotal), \
           total_discount = COALESCE(EXCLUDED.total_discount, t.total_discount), \
           raw = t.raw || jsonb_build_object('status', EXCLUDED.status), synced_at = now(), updated_at = now() \
         WHERE ROW(t.status, t.currency, t.total, t.subtotal, t.total_discount) IS DISTINCT FROM \
               ROW(EXCLUDED.status, COALESCE(EXCLUDED.currency, t.currency), COALESCE(EXCLUDED.total, t.total), \
                   COALESCE(EXCLUDED.subtotal, t.subtotal), COALESCE(EXCLUDED.total_discount, t.total_discount)) \
         RETURNING t.id",
    )
    .bind(id)
    .bind(status)
    .bind(currency)
    .bind(total.map(Money::decimal))
    .bind(subtotal.map(Money::decimal))
    .bind(total_discount.map(Money::decimal))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}
