//! `GET /api/stats`: the store at a glance. Sales count non-deleted orders that are not `canceled`; windows
//! are the last 7, 30 and 90 days up to now. Amounts are summed as stored, since a store sells in one
//! currency. A customer is new when first imported in the last 30 days (`customers` keeps no Salla date).
//! Two queries, run concurrently: the headline figures (one row) and the top products.

use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use super::money::Money;
use crate::commerce::read::purchase;
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;

/// How many products each top list holds.
const TOP: i64 = 5;

const FIGURES: &str = concat!("\
WITH sales AS (
    SELECT
        count(*) FILTER (WHERE ordered_at >= now() - interval '7 days') AS orders_7d,
        COALESCE(sum(total) FILTER (WHERE ordered_at >= now() - interval '7 days'), 0.00) AS revenue_7d,
        count(*) FILTER (WHERE ordered_at >= now() - interval '30 days') AS orders_30d,
        COALESCE(sum(total) FILTER (WHERE ordered_at >= now() - interval '30 days'), 0.00) AS revenue_30d,
        count(*) AS orders_90d,
        COALESCE(sum(total), 0.00) AS revenue_90d
    FROM orders
    WHERE ", purchase!(), "
      AND ordered_at >= now() - interval '90 days'
), carts AS (
    SELECT
        count(*) FILTER (WHERE status IS DISTINCT FROM 'purchased') AS open_carts,
        COALESCE(sum(total) FILTER (WHERE status IS DISTINCT FROM 'purchased'), 0.00) AS open_carts_value,
        count(*) FILTER (WHERE status = 'purchased') AS purchased_carts,
        count(*) AS all_carts
    FROM abandoned_carts
), people AS (
    SELECT count(*) AS customers,
           count(*) FILTER (WHERE created_at >= now() - interval '30 days') AS new_customers_30d
    FROM customers
)
SELECT sales.*, carts.*, people.*,
       round(revenue_7d / NULLIF(orders_7d, 0), 2) AS average_7d,
       round(revenue_30d / NULLIF(orders_30d, 0), 2) AS average_30d,
       round(revenue_90d / NULLIF(orders_90d, 0), 2) AS average_90d
FROM sales, carts, people");

/// Order lines of the last 30 days per product (lines without a product id per name), ranked both ways;
/// the product's current name when it is known.
const TOP_PRODUCTS: &str = concat!("\
WITH sold AS (
    SELECT i.product_salla_id AS product_id, max(i.name) AS line_name,
           sum(i.quantity)::bigint AS quantity, COALESCE(sum(i.total), 0.00) AS revenue
    FROM order_items i
    JOIN orders o ON o.salla_id = i.order_salla_id
    WHERE ", purchase!("o"), "
      AND o.ordered_at >= now() - interval '30 days'
    GROUP BY i.product_salla_id, CASE WHEN i.product_salla_id IS NULL THEN i.name END
), ranked AS (
    SELECT sold.*,
           row_number() OVER (ORDER BY quantity DESC, revenue DESC, line_name, product_id) AS quantity_rank,
           row_number() OVER (ORDER BY revenue DESC, quantity DESC, line_name, product_id) AS revenue_rank
    FROM sold
)
SELECT r.product_id, COALESCE(p.name, r.line_name) AS name, r.quantity, r.revenue,
       r.quantity_rank, r.revenue_rank
FROM ranked r
LEFT JOIN products p ON p.salla_id = r.product_id
WHERE r.quantity_rank <= $1 OR r.revenue_rank <= $1");

#[derive(Debug, sqlx::FromRow)]
struct Figures {
    orders_7d: i64,
    revenue_7d: Money,
    orders_30d: i64,
    revenue_30d: Money,
    orders_90d: i64,
    revenue_90d: Money,
    average_7d: Option<Money>,
    average_30d: Option<Money>,
    average_90d: Option<Money>,
    open_carts: i64,
    open_carts_value: Money,
    purchased_carts: i64,
    all_carts: i64,
    customers: i64,
    new_customers_30d: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct TopProduct {
    product_id: Option<i64>,
    name: String,
    quantity: i64,
    revenue: Money,
    #[serde(skip)]
    quantity_rank: i64,
    #[serde(skip)]
    revenue_rank: i64,
}

/// `GET /api/stats`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct Stats {
    sales: Sales,
    top_products_30_days: TopProducts,
    abandoned_carts: CartFigures,
    customers: CustomerFigures,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
struct Sales {
    last_7_days: Window,
    last_30_days: Window,
    last_90_days: Window,
}

/// One window of sales.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
struct Window {
    orders: i64,
    revenue: Money,
    /// `null` without orders.
    average_order_value: Option<Money>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
struct TopProducts {
    by_quantity: Vec<TopProduct>,
    by_revenue: Vec<TopProduct>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
struct CartFigures {
    /// Open (not purchased) carts.
    count: i64,
    value: Money,
    purchased: i64,
    total: i64,
    /// `purchased / total` to four decimals; `null` without carts.
    recovery_rate: Option<f64>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
struct CustomerFigures {
    total: i64,
    new_last_30_days: i64,
}

#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "commerce",
    summary = "The store at a glance",
    description = "Sales of the last 7, 30 and 90 days, top products, abandoned carts and customers.",
    responses((status = 200, description = "The figures.", body = Stats)),
)]
pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = state.pools().get(&ctx.tenant).await?;
    let (figures, top) = tokio::try_join!(
        sqlx::query_as::<_, Figures>(FIGURES).fetch_one(&*pool),
        sqlx::query_as::<_, TopProduct>(TOP_PRODUCTS)
            .bind(TOP)
            .fetch_all(&*pool),
    )?;
    Ok(axum::Json(json!({
        "sales": {
            "last_7_days": window(figures.orders_7d, figures.revenue_7d, figures.average_7d),
            "last_30_days": window(figures.orders_30d, figures.revenue_30d, figures.average_30d),
            "last_90_days": window(figures.orders_90d, figures.revenue_90d, figures.average_90d),
        },
        "top_products_30_days": {
            "by_quantity": ranked(&top, |p| p.quantity_rank),
            "by_revenue": ranked(&top, |p| p.revenue_rank),
        },
        "abandoned_carts": {
            "count": figures.open_carts,
            "value": figures.open_carts_value,
            "purchased": figures.purchased_carts,
            "total": figures.all_carts,
            "recovery_rate": ratio(figures.purchased_carts, figures.all_carts),
        },
        "customers": {
            "total": figures.customers,
            "new_last_30_days": figures.new_customers_30d,
        },
    })))
}

/// One window: orders, revenue, and the average order value (to the cent; `null` without orders).
fn window(orders: i64, revenue: Money, average: Option<Money>) -> Value {
    json!({ "orders": orders, "revenue": revenue, "average_order_value": average })
}

/// The products ranked at most `TOP` by `rank`, best first.
fn ranked(top: &[TopProduct], rank: fn(&TopProduct) -> i64) -> Vec<&TopProduct> {
    let mut list: Vec<&TopProduct> = top.iter().filter(|p| rank(p) <= TOP).collect();
    list.sort_by_key(|p| rank(p));
    list
}

/// `part / whole` to four decimals; `null` when there is no whole.
fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}
