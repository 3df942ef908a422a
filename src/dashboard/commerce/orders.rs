//! `GET /api/orders` and `GET /api/orders/{id}` (`id` is the Salla order id): the store's orders, and one
//! order with its lines.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
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

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Order {
    #[serde(skip)]
    pub(crate) row_id: i64,
    pub(crate) id: i64,
    pub(crate) reference_id: Option<String>,
    pub(crate) status_id: Option<i64>,
    pub(crate) status_slug: Option<String>,
    pub(crate) status_name: Option<String>,
    pub(crate) customer_id: Option<i64>,
    pub(crate) customer_name: Option<String>,
    pub(crate) customer_mobile: Option<String>,
    pub(crate) customer_email: Option<String>,
    pub(crate) total: Option<Money>,
    pub(crate) sub_total: Option<Money>,
    pub(crate) shipping_cost: Option<Money>,
    pub(crate) cash_on_delivery: Option<Money>,
    pub(crate) discount: Option<Money>,
    pub(crate) tax: Option<Money>,
    pub(crate) currency: Option<String>,
    pub(crate) payment_method: Option<String>,
    pub(crate) items_count: Option<i32>,
    pub(crate) source: Option<String>,
    pub(crate) source_device: Option<String>,
    pub(crate) shipping_country: Option<String>,
    pub(crate) shipping_city: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) ordered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) deleted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) synced_at: OffsetDateTime,
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

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrders {
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) sort: Option<String>,
    /// Reference id (exact), or part of the customer's name, mobile or email.
    pub(crate) q: Option<String>,
    /// Status slugs, comma-separated.
    pub(crate) status: Option<String>,
    pub(crate) customer_id: Option<String>,
    /// Bounds on `ordered_at`.
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) include_deleted: Option<String>,
    /// Payment methods (Salla's slugs, e.g. `cod`, `mada`), comma-separated.
    pub(crate) payment_method: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/orders",
    tag = "commerce",
    summary = "The store's orders",
    description = "Pages: `limit` (1–200, default 50), `cursor` (the previous page's `next_cursor`), `sort` (allow-listed; `-` for descending).",
    params(ListOrders),
    responses(
        (status = 200, description = "A page.", body = Page<Order>),
        (status = 400, description = "`invalid_parameter`, naming the parameter."),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListOrders>,
) -> Result<axum::Json<Page<Order>>, ApiError> {
    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(fetch(&pool, &params).await?))
}

/// One page of orders for `params` (the merchant API and the merchant app's Orders screen).
pub(crate) async fn fetch(pool: &PgPool, params: &ListOrders) -> Result<Page<Order>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let statuses = one_of("status", &params.status)?;
    let customer = salla_id("customer_id", &params.customer_id)?;
    let dates = DateRange::parse(&params.from, &params.to)?;
    let include_deleted = flag("include_deleted", &params.include_deleted)?;
    let payments = one_of("payment_method", &params.payment_method)?;

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
    if let Some(payments) = payments {
        sql.push(" AND o.payment_method = ANY(")
            .bind(payments)
            .push(")");
    }
    dates.push(&mut sql, "o.ordered_at");
    paging.fetch(sql, pool).await
}

/// A line of an order.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderItem {
    pub(crate) id: i64,
    pub(crate) product_id: Option<i64>,
    pub(crate) name: String,
    pub(crate) sku: Option<String>,
    pub(crate) quantity: i32,
    pub(crate) price: Option<Money>,
    pub(crate) discount: Option<Money>,
    pub(crate) tax: Option<Money>,
    pub(crate) total: Option<Money>,
    pub(crate) currency: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub(crate) order: Order,
    pub(crate) items: Vec<OrderItem>,
}

/// One order, deleted or not (its `deleted_at` says so), with its lines.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    tag = "commerce",
    summary = "One order with its lines",
    params(("id" = i64, Path, description = "Salla's order id.")),
    responses(
        (status = 200, description = "The order and its items.", body = OrderDetail),
        (status = 404, description = "`order_not_found`."),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderDetail>, ApiError> {
    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(detail(&pool, &id).await?))
}

/// One order and its lines; `404 order_not_found` when `id` names none (or is not a Salla id).
pub(crate) async fn detail(pool: &PgPool, id: &str) -> Result<OrderDetail, ApiError> {
    let not_found = || ApiError::not_found("order_not_found", "No such order.");
    // Salla ids are numbers; anything else cannot name an order.
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let mut sql = Sql::new(&SELECT);
    sql.push(" AND o.salla_id = ").bind(id);
    let order = sql
        .fetch_optional::<Order>(pool)
        .await?
        .ok_or_else(not_found)?;
    let items = sqlx::query_as(ITEMS.as_str())
        .bind(id)
        .fetch_all(pool)
        .await?;
    Ok(OrderDetail { order, items })
}
