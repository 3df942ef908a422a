//! What the merchant app's Home shows beyond `/api/stats`: KPIs of a window (the last 7, 30 or 90 days) beside
//! the window before it, and the daily trend of the current window. Sales follow the purchase rule
//! (`commerce::read::purchase!`).
//!
//! Definitions (also in `docs/merchant-app.md`):
//! - **sales**, **orders**: sum of totals and count of purchases ordered in the window;
//! - **average order value**: sales / orders;
//! - **new customers**: customers whose first purchase ever falls in the window; **returning**: customers who
//!   bought in the window and had bought before it;
//! - **repeat rate**: of the customers who bought in the window, the share with two purchases or more up to
//!   the window's end;
//! - **abandoned carts** (count, value): carts started in the window (Salla's `created_at`, else when we first
//!   saw them) and not purchased; **recovered**: carts started in the window that Salla marked `purchased`.
//!
//! Each figure is one pass over the window's rows through `orders_ordered_at_idx`, `orders_customer_idx` and
//! `abandoned_carts_started_idx` (tenant migration `20261202100003`).

use rust_decimal::Decimal;
use sqlx::PgPool;
use time::Date;

use crate::commerce::read::purchase;
use crate::error::ApiError;

/// The windows the Home offers, in days.
pub const PERIODS: [i32; 3] = [7, 30, 90];

/// The figures of one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub sales: Decimal,
    pub orders: i64,
    pub average_order_value: Option<Decimal>,
    pub new_customers: i64,
    pub returning_customers: i64,
    /// 0..=1; `None` without buyers.
    pub repeat_rate: Option<f64>,
    pub abandoned_carts: i64,
    pub abandoned_value: Decimal,
    pub recovered_carts: i64,
}

/// The current window and the one before it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpis {
    pub days: i32,
    pub current: Window,
    pub previous: Window,
}

/// One day of the trend (the tenant's time zone).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DayPoint {
    pub day: Date,
    pub sales: Decimal,
    pub orders: i64,
}

const SALES: &str = concat!(
    "\
SELECT (o.ordered_at >= now() - make_interval(days => $1)) AS current,
       count(*) AS orders, COALESCE(sum(o.total), 0) AS sales
FROM orders o
WHERE ",
    purchase!("o"),
    "
  AND o.ordered_at >= now() - make_interval(days => 2 * $1) AND o.ordered_at <= now()
GROUP BY 1"
);

/// One pass over the purchases up to now, per customer: the first purchase ever, purchases up to each
/// window's end, and whether the customer bought in each window. (A lateral per buyer was ten times slower on
/// a 50k-order store.)
const PEOPLE: &str = concat!(
    "\
WITH per AS (
    SELECT min(o.ordered_at) AS first_at,
           count(*) AS upto_now,
           count(*) FILTER (WHERE o.ordered_at < now() - make_interval(days => $1)) AS upto_previous_end,
           bool_or(o.ordered_at >= now() - make_interval(days => $1)) AS bought_current,
           bool_or(o.ordered_at >= now() - make_interval(days => 2 * $1)
                   AND o.ordered_at < now() - make_interval(days => $1)) AS bought_previous
    FROM orders o
    WHERE ",
    purchase!("o"),
    "
      AND o.customer_salla_id IS NOT NULL AND o.ordered_at <= now()
    GROUP BY o.customer_salla_id
)
SELECT true AS current,
       count(*) FILTER (WHERE bought_current AND first_at >= now() - make_interval(days => $1)) AS new_customers,
       count(*) FILTER (WHERE bought_current AND first_at < now() - make_interval(days => $1)) AS returning_customers,
       count(*) FILTER (WHERE bought_current AND upto_now >= 2) AS repeaters,
       count(*) FILTER (WHERE bought_current) AS buyers
FROM per
UNION ALL
SELECT false,
       count(*) FILTER (WHERE bought_previous AND first_at >= now() - make_interval(days => 2 * $1)),
       count(*) FILTER (WHERE bought_previous AND first_at < now() - make_interval(days => 2 * $1)),
       count(*) FILTER (WHERE bought_previous AND upto_previous_end >= 2),
       count(*) FILTER (WHERE bought_previous)
FROM per"
);

const CARTS: &str = "\
SELECT (COALESCE(source_created_at, created_at) >= now() - make_interval(days => $1)) AS current,
       count(*) FILTER (WHERE status IS DISTINCT FROM 'purchased') AS abandoned,
       COALESCE(sum(total) FILTER (WHERE status IS DISTINCT FROM 'purchased'), 0) AS abandoned_value,
       count(*) FILTER (WHERE status = 'purchased') AS recovered
FROM abandoned_carts
WHERE COALESCE(source_created_at, created_at) >= now() - make_interval(days => 2 * $1)
GROUP BY 1";

const TREND: &str = concat!(
    "\
WITH days AS (
    SELECT d::date AS day
    FROM generate_series((now() AT TIME ZONE $2)::date - ($1 - 1), (now() AT TIME ZONE $2)::date,
                         interval '1 day') d
), sold AS (
    SELECT (o.ordered_at AT TIME ZONE $2)::date AS day, count(*) AS orders, sum(o.total) AS sales
    FROM orders o
    WHERE ",
    purchase!("o"),
    "
      AND o.ordered_at >= ((now() AT TIME ZONE $2)::date - ($1 - 1)) AT TIME ZONE $2
    GROUP BY 1
)
SELECT days.day, COALESCE(sold.sales, 0) AS sales, COALESCE(sold.orders, 0) AS orders
FROM days LEFT JOIN sold USING (day)
ORDER BY days.day"
);

/// The KPIs of the last `days` days and of the `days` before them.
pub async fn kpis(pool: &PgPool, days: i32) -> Result<Kpis, ApiError> {
    let (sales, people, carts) = tokio::try_join!(
        sqlx::query_as::<_, (bool, i64, Decimal)>(SALES)
            .bind(days)
            .fetch_all(pool),
        sqlx::query_as::<_, (bool, i64, i64, i64, i64)>(PEOPLE)
            .bind(days)
            .fetch_all(pool),
        sqlx::query_as::<_, (bool, i64, Decimal, i64)>(CARTS)
            .bind(days)
            .fetch_all(pool),
    )?;
    let mut kpis = Kpis {
        days,
        ..Kpis::default()
    };
    for (current, orders, total) in sales {
        let window = if current {
            &mut kpis.current
        } else {
            &mut kpis.previous
        };
        window.orders = orders;
        window.sales = total;
        window.average_order_value =
            (orders > 0).then(|| (total / Decimal::from(orders)).round_dp(2));
    }
    for (current, new, returning, repeaters, buyers) in people {
        let window = if current {
            &mut kpis.current
        } else {
            &mut kpis.previous
        };
        window.new_customers = new;
        window.returning_customers = returning;
        window.repeat_rate = (buyers > 0).then(|| repeaters as f64 / buyers as f64);
    }
    for (current, abandoned, value, recovered) in carts {
        let window = if current {
            &mut kpis.current
        } else {
            &mut kpis.previous
        };
        window.abandoned_carts = abandoned;
        window.abandoned_value = value;
        window.recovered_carts = recovered;
    }
    Ok(kpis)
}

/// Sales and orders of each of the last `days` days (today included) in time zone `tz`, zero days included.
pub async fn trend(pool: &PgPool, days: i32, tz: &str) -> Result<Vec<DayPoint>, ApiError> {
    Ok(sqlx::query_as(TREND)
        .bind(days)
        .bind(tz)
        .fetch_all(pool)
        .await?)
}

/// A line of an abandoned cart: Salla sends product ids and quantities (`items[]`); names come from
/// `products` when the product is known.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CartItem {
    pub cart_id: i64,
    pub product_id: Option<i64>,
    pub name: Option<String>,
    pub quantity: i32,
}

/// The lines of the carts `ids`, in their order in the cart.
pub async fn cart_items(pool: &PgPool, ids: &[i64]) -> Result<Vec<CartItem>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT a.salla_id AS cart_id, i.product_id, p.name, COALESCE(i.quantity, 1) AS quantity
         FROM abandoned_carts a
         CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(
             CASE WHEN jsonb_typeof(a.raw -> 'items') = 'array' THEN a.raw -> 'items' ELSE '[]'::jsonb END
         ) AS (product_id bigint, quantity int)) WITH ORDINALITY AS i (product_id, quantity, n)
         LEFT JOIN products p ON p.salla_id = i.product_id
         WHERE a.salla_id = ANY($1)
         ORDER BY a.salla_id, i.n",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}
