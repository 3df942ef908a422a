//! `GET /api/carts/abandoned`: carts customers left at checkout, including those later purchased
//! (`status=purchased`), most recently active first.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::money::Money;
use super::paging::{Kind, Listed, Page, Paging, Sort, listing};
use super::params::{DateRange, Search, one_of, salla_id};
use crate::commerce::read::{self, TableName};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::Query;
use crate::state::AppState;

static SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT a.id AS row_id, a.salla_id AS id, {}, a.source_updated_at, a.synced_at \
         FROM abandoned_carts a WHERE TRUE",
        read::columns(TableName::Carts, "a")
    )
});

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Cart {
    #[serde(skip)]
    pub(crate) row_id: i64,
    pub(crate) id: i64,
    pub(crate) customer_id: Option<i64>,
    pub(crate) customer_name: Option<String>,
    pub(crate) customer_mobile: Option<String>,
    pub(crate) customer_email: Option<String>,
    pub(crate) total: Option<Money>,
    pub(crate) subtotal: Option<Money>,
    pub(crate) total_discount: Option<Money>,
    pub(crate) currency: Option<String>,
    pub(crate) items_count: Option<i32>,
    pub(crate) checkout_url: Option<String>,
    pub(crate) coupon_code: Option<String>,
    pub(crate) status: Option<String>,
    /// When the cart was started (Salla's created_at).
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) source_created_at: Option<OffsetDateTime>,
    /// The last activity on the cart.
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) synced_at: OffsetDateTime,
}

impl Listed for Cart {
    fn row_id(&self) -> i64 {
        self.row_id
    }
}

const SORTS: &[Sort<Cart>] = &[
    Sort {
        name: "-source_updated_at",
        kind: Kind::Time,
        nullable: true,
        key: |c| c.source_updated_at.into(),
    },
    Sort {
        name: "source_updated_at",
        kind: Kind::Time,
        nullable: true,
        key: |c| c.source_updated_at.into(),
    },
    Sort {
        name: "-total",
        kind: Kind::Amount,
        nullable: true,
        key: |c| c.total.into(),
    },
    Sort {
        name: "total",
        kind: Kind::Amount,
        nullable: true,
        key: |c| c.total.into(),
    },
];

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCarts {
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) sort: Option<String>,
    /// Part of the customer's name, mobile or email.
    pub(crate) q: Option<String>,
    /// Salla cart statuses, comma-separated.
    pub(crate) status: Option<String>,
    pub(crate) customer_id: Option<String>,
    /// Bounds on the last activity (`source_updated_at`).
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/carts/abandoned",
    tag = "commerce",
    summary = "The store's abandoned carts",
    description = "Pages: `limit` (1–200, default 50), `cursor` (the previous page's `next_cursor`), `sort` (allow-listed; `-` for descending).",
    params(ListCarts),
    responses(
        (status = 200, description = "A page.", body = Page<Cart>),
        (status = 400, description = "`invalid_parameter`, naming the parameter."),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListCarts>,
) -> Result<axum::Json<Page<Cart>>, ApiError> {
    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(fetch(&pool, &params).await?))
}

/// One page of abandoned carts for `params` (the merchant API and the merchant app's Carts screen).
pub(crate) async fn fetch(pool: &PgPool, params: &ListCarts) -> Result<Page<Cart>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let statuses = one_of("status", &params.status)?;
    let dates = DateRange::parse(&params.from, &params.to)?;
    let customer = salla_id("customer_id", &params.customer_id)?;

    let mut sql = listing(&SELECT);
    if let Some(search) = search {
        sql.push(" AND (a.customer_name ILIKE ")
            .bind(search.pattern.clone());
        sql.push(" OR a.customer_mobile ILIKE ")
            .bind(search.pattern.clone());
        sql.push(" OR a.customer_email ILIKE ")
            .bind(search.pattern)
            .push(")");
    }
    if let Some(statuses) = statuses {
        sql.push(" AND a.status = ANY(").bind(statuses).push(")");
    }
    if let Some(customer) = customer {
        sql.push(" AND a.customer_salla_id = ").bind(customer);
    }
    dates.push(&mut sql, "a.source_updated_at");
    paging.fetch(sql, pool).await
}
