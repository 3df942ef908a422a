//! `GET /api/carts/abandoned`: carts customers left at checkout, including those later purchased
//! (`status=purchased`), most recently active first.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::money::Money;
use super::paging::{Kind, Listed, Page, Paging, Sort, listing};
use super::params::{DateRange, Search, one_of};
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

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Cart {
    #[serde(skip)]
    row_id: i64,
    id: i64,
    customer_id: Option<i64>,
    customer_name: Option<String>,
    customer_mobile: Option<String>,
    customer_email: Option<String>,
    total: Option<Money>,
    subtotal: Option<Money>,
    total_discount: Option<Money>,
    currency: Option<String>,
    items_count: Option<i32>,
    checkout_url: Option<String>,
    coupon_code: Option<String>,
    status: Option<String>,
    /// When the cart was started (Salla's created_at).
    #[serde(with = "time::serde::rfc3339::option")]
    source_created_at: Option<OffsetDateTime>,
    /// The last activity on the cart.
    #[serde(with = "time::serde::rfc3339::option")]
    source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    synced_at: OffsetDateTime,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCarts {
    limit: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
    /// Part of the customer's name, mobile or email.
    q: Option<String>,
    /// Salla cart statuses, comma-separated.
    status: Option<String>,
    /// Bounds on the last activity (`source_updated_at`).
    from: Option<String>,
    to: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListCarts>,
) -> Result<axum::Json<Page<Cart>>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let statuses = one_of("status", &params.status)?;
    let dates = DateRange::parse(&params.from, &params.to)?;

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
    dates.push(&mut sql, "a.source_updated_at");

    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(paging.fetch(sql, &pool).await?))
}
