//! `GET /api/customers`: the store's customers with what they bought, computed from `orders` at query time
//! (non-deleted orders that are not `canceled`), so the figures never drift from the orders themselves.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::money::Money;
use super::paging::{Kind, Listed, Page, Paging, Sort, listing};
use super::params::{DateRange, Search, given, invalid};
use super::segments::Segment;
use crate::commerce::read::{self, TableName, customer_orders};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::Query;
use crate::state::AppState;

/// Customers with their order aggregates. The aggregates are columns of the listing, so sorting and
/// paging by them work like any other column.
static SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.id AS row_id, c.salla_id AS id, {}, \
         NULLIF(btrim(concat_ws(' ', c.first_name, c.last_name)), '') AS name, \
         a.orders_count, COALESCE(a.total_spent, 0.00) AS total_spent, a.last_order_at, \
         c.source_updated_at, c.synced_at, c.created_at \
         FROM customers c CROSS JOIN LATERAL ({}) a WHERE TRUE",
        read::columns(TableName::Customers, "c"),
        customer_orders!("c"),
    )
});

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Customer {
    #[serde(skip)]
    pub(crate) row_id: i64,
    pub(crate) id: i64,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) mobile: Option<String>,
    pub(crate) mobile_code: Option<String>,
    pub(crate) gender: Option<String>,
    /// `YYYY-MM-DD`.
    pub(crate) birthday: Option<String>,
    pub(crate) city: Option<String>,
    pub(crate) country: Option<String>,
    pub(crate) country_code: Option<String>,
    pub(crate) currency: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) avatar: Option<String>,
    pub(crate) groups: Value,
    pub(crate) is_notifications_enabled: Option<bool>,
    pub(crate) orders_count: i64,
    pub(crate) total_spent: Money,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) last_order_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) synced_at: OffsetDateTime,
    /// When we first imported the customer.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

impl Listed for Customer {
    fn row_id(&self) -> i64 {
        self.row_id
    }
}

const SORTS: &[Sort<Customer>] = &[
    Sort {
        name: "-created_at",
        kind: Kind::Time,
        nullable: false,
        key: |c| c.created_at.into(),
    },
    Sort {
        name: "created_at",
        kind: Kind::Time,
        nullable: false,
        key: |c| c.created_at.into(),
    },
    Sort {
        name: "name",
        kind: Kind::Text,
        nullable: true,
        key: |c| c.name.as_deref().into(),
    },
    Sort {
        name: "-total_spent",
        kind: Kind::Amount,
        nullable: false,
        key: |c| c.total_spent.into(),
    },
    Sort {
        name: "-orders_count",
        kind: Kind::Count,
        nullable: false,
        key: |c| c.orders_count.into(),
    },
    Sort {
        name: "-last_order_at",
        kind: Kind::Time,
        nullable: true,
        key: |c| c.last_order_at.into(),
    },
];

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCustomers {
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) sort: Option<String>,
    /// Part of the name, email or mobile.
    pub(crate) q: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    /// What `from`/`to` bound: `created_at` (default: when we first imported the customer) or
    /// `source_updated_at` (Salla's last update).
    pub(crate) date_field: Option<String>,
    /// A customer segment (`new`, `repeat`, `vip`, `at_risk`; see `segments`).
    pub(crate) segment: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/customers",
    tag = "commerce",
    summary = "The store's customers",
    description = "Pages: `limit` (1–200, default 50), `cursor` (the previous page's `next_cursor`), `sort` (allow-listed; `-` for descending). Sorts: `-created_at` (default), `created_at`, `name`, `-total_spent`, `-orders_count`, `-last_order_at`. Dates: `YYYY-MM-DD` or RFC 3339.",
    params(ListCustomers),
    responses(
        (status = 200, description = "A page.", body = Page<Customer>),
        (status = 400, description = "`invalid_parameter`, naming the parameter."),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListCustomers>,
) -> Result<axum::Json<Page<Customer>>, ApiError> {
    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(fetch(&pool, &params).await?))
}

/// One page of customers for `params` (the merchant API and the merchant app's Customers screen).
pub(crate) async fn fetch(
    pool: &PgPool,
    params: &ListCustomers,
) -> Result<Page<Customer>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let dates = DateRange::parse(&params.from, &params.to)?;
    let segment = given(&params.segment)
        .map(|name| {
            Segment::parse(name)
                .ok_or_else(|| invalid("segment", "must be one of new, repeat, vip, at_risk"))
        })
        .transpose()?;
    let date_column = match given(&params.date_field) {
        None | Some("created_at") => "c.created_at",
        Some("source_updated_at") => "c.source_updated_at",
        Some(_) => {
            return Err(invalid(
                "date_field",
                "must be `created_at` or `source_updated_at`",
            ));
        }
    };

    let mut sql = listing(&SELECT);
    if let Some(search) = search {
        sql.push(" AND (concat_ws(' ', c.first_name, c.last_name) ILIKE ")
            .bind(search.pattern.clone());
        sql.push(" OR c.email ILIKE ").bind(search.pattern.clone());
        sql.push(" OR c.mobile ILIKE ")
            .bind(search.pattern)
            .push(")");
    }
    dates.push(&mut sql, date_column);
    if let Some(segment) = segment {
        sql.push(" AND ").push(segment.condition());
    }
    paging.fetch(sql, pool).await
}

/// One customer with its purchase aggregates; `None` when `id` names none (or is not a Salla id).
pub(crate) async fn one(pool: &PgPool, id: &str) -> Result<Option<Customer>, ApiError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    let mut sql = super::sql::Sql::new(&SELECT);
    sql.push(" AND c.salla_id = ").bind(id);
    sql.fetch_optional(pool).await
}
