//! `GET /api/orders` and `GET /api/orders/{id}` (`id` is the Salla order id): the store's orders, and one
//! order with its lines.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::money::Money;
use super::paging::{Kind, Listed, Page, Paging, Sort, listing};
use super::params::{DateRange, Search, flag, one_of, salla_id};
use super::sql::Sql;
use crate::commerce::read::{self, TableName};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::{Path, Query};
use crate::state::AppState;

/// The order columns every answer carries.
static SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT o.id AS row_id, o.salla_id AS id, {}, o.deleted_at, o.source_updated_at, o.synced_at \
         FROM orders o WHERE TRUE",
        read::columns(TableName::Orders, "o")
    )
});

/// The columns of an order's lines.
static ITEMS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT i.salla_id AS id, {} FROM order_items i WHERE i.order_salla_id = $1 ORDER BY i.salla_id",
        read::columns(TableName::Items, "i")
    )
});

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Order {
    #[serde(skip)]
    row_id: i64,
    id: i64,
    reference_id: Option<String>,
    status_id: Option<i64>,
    status_slug: Option<String>,
    status_name: Option<String>,
    customer_id: Option<i64>,
    customer_name: Option<String>,
    customer_mobile: Option<String>,
    customer_email: Option<String>,
    total: Option<Money>,
    sub_total: Option<Money>,
    shipping_cost: Option<Money>,
    cash_on_delivery: Option<Money>,
    discount: Option<Money>,
    tax: Option<Money>,
    currency: Option<String>,
    payment_method: Option<String>,
    items_count: Option<i32>,
    source: Option<String>,
    source_device: Option<String>,
    shipping_country: Option<String>,
    shipping_city: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    ordered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    deleted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    synced_at: OffsetDateTime,
}

impl Listed for Order {
    fn row_id(&self) -> i64 {
        self.row_id
    }
}

const SORTS: &[Sort<Order>] = &[
    Sort {
        name: "-ordered_at",
        kind: Kind::Time,
        nullable: false,
        key: |o| o.ordered_at.into(),
    },
    Sort {
        name: "ordered_at",
        kind: Kind::Time,
        nullable: false,
        key: |o| o.ordered_at.into(),
    },
    Sort {
        name: "-total",
        kind: Kind::Amount,
        nullable: true,
        key: |o| o.total.into(),
    },
    Sort {
        name: "total",
        kind: Kind::Amount,
        nullable: true,
        key: |o| o.total.into(),
    },
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOrders {
    limit: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
    /// Reference id (exact), or part of the customer's name, mobile or email.
    q: Option<String>,
    /// Status slugs, comma-separated.
    status: Option<String>,
    customer_id: Option<String>,
    /// Bounds on `ordered_at`.
    from: Option<String>,
    to: Option<String>,
    include_deleted: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListOrders>,
) -> Result<axum::Json<Page<Order>>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let statuses = one_of("status", &params.status)?;
    let customer = salla_id("customer_id", &params.customer_id)?;
    let dates = DateRange::parse(&params.from, &params.to)?;
    let include_deleted = flag("include_deleted", &params.include_deleted)?;

    let mut sql = listing(&SELECT);
    if !include_deleted {
        sql.push(" AND o.deleted_at IS NULL");
    }
    if let Some(search) = search {
        sql.push(" AND (o.reference_id = ").bind(search.text);
        sql.push(" OR o.customer_name ILIKE ")
            .bind(search.pattern.clone());
        sql.push(" OR o.customer_mobile ILIKE ")
            .bind(search.pattern.clone());
        sql.push(" OR o.customer_email ILIKE ")
            .bind(search.pattern)
            .push(")");
    }
    if let Some(statuses) = statuses {
        sql.push(" AND o.status_slug = ANY(")
            .bind(statuses)
            .push(")");
    }
    if let Some(customer) = customer {
        sql.push(" AND o.customer_salla_id = ").bind(customer);
    }
    dates.push(&mut sql, "o.ordered_at");

    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(paging.fetch(sql, &pool).await?))
}

/// A line of an order.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrderItem {
    id: i64,
    product_id: Option<i64>,
    name: String,
    sku: Option<String>,
    quantity: i32,
    price: Option<Money>,
    discount: Option<Money>,
    tax: Option<Money>,
    total: Option<Money>,
    currency: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OrderDetail {
    #[serde(flatten)]
    order: Order,
    items: Vec<OrderItem>,
}

/// One order, deleted or not (its `deleted_at` says so), with its lines.
pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderDetail>, ApiError> {
    let not_found = || ApiError::not_found("order_not_found", "No such order.");
    // Salla ids are numbers; anything else cannot name an order.
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let pool = state.pools().get(&ctx.tenant).await?;
    let mut sql = Sql::new(&SELECT);
    sql.push(" AND o.salla_id = ").bind(id);
    let order = sql
        .fetch_optional::<Order>(&pool)
        .await?
        .ok_or_else(not_found)?;
    let items = sqlx::query_as(ITEMS.as_str())
        .bind(id)
        .fetch_all(&*pool)
        .await?;
    Ok(axum::Json(OrderDetail { order, items }))
}
