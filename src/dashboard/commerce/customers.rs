//! `GET /api/customers`: the store's customers with what they bought, computed from `orders` at query time
//! (non-deleted orders that are not `canceled`), so the figures never drift from the orders themselves.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::money::Money;
use super::paging::{Kind, Listed, Page, Paging, Sort, listing};
use super::params::{DateRange, Search, given, invalid};
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

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Customer {
    #[serde(skip)]
    row_id: i64,
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    name: Option<String>,
    email: Option<String>,
    mobile: Option<String>,
    mobile_code: Option<String>,
    gender: Option<String>,
    /// `YYYY-MM-DD`.
    birthday: Option<String>,
    city: Option<String>,
    country: Option<String>,
    country_code: Option<String>,
    currency: Option<String>,
    location: Option<String>,
    avatar: Option<String>,
    groups: Value,
    is_notifications_enabled: Option<bool>,
    orders_count: i64,
    total_spent: Money,
    #[serde(with = "time::serde::rfc3339::option")]
    last_order_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    synced_at: OffsetDateTime,
    /// When we first imported the customer.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCustomers {
    limit: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
    /// Part of the name, email or mobile.
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// What `from`/`to` bound: `created_at` (default: when we first imported the customer) or
    /// `source_updated_at` (Salla's last update).
    date_field: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListCustomers>,
) -> Result<axum::Json<Page<Customer>>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let dates = DateRange::parse(&params.from, &params.to)?;
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

    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(paging.fetch(sql, &pool).await?))
}
