//! `GET /api/products`: the store's catalogue.

use std::sync::LazyLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::money::Money;
use super::paging::{Kind, Listed, Page, Paging, Sort, listing};
use super::params::{Search, flag, one_of};
use crate::commerce::read::{self, TableName};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::Query;
use crate::state::AppState;

static SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT p.id AS row_id, p.salla_id AS id, {}, p.deleted_at, p.source_updated_at, p.synced_at, \
         p.updated_at FROM products p WHERE TRUE",
        read::columns(TableName::Products, "p")
    )
});

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Product {
    #[serde(skip)]
    row_id: i64,
    id: i64,
    name: String,
    sku: Option<String>,
    mpn: Option<String>,
    gtin: Option<String>,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    is_available: Option<bool>,
    price: Option<Money>,
    sale_price: Option<Money>,
    /// `YYYY-MM-DD`.
    sale_end: Option<String>,
    regular_price: Option<Money>,
    cost_price: Option<Money>,
    currency: Option<String>,
    /// `null` means unlimited stock.
    quantity: Option<i32>,
    sold_quantity: Option<i32>,
    url: Option<String>,
    main_image: Option<String>,
    categories: Value,
    tags: Value,
    brand: Option<Value>,
    #[serde(with = "time::serde::rfc3339::option")]
    deleted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    source_updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    synced_at: OffsetDateTime,
    /// When we last changed the row, i.e. applied a change from Salla.
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl Listed for Product {
    fn row_id(&self) -> i64 {
        self.row_id
    }
}

const SORTS: &[Sort<Product>] = &[
    Sort {
        name: "name",
        kind: Kind::Text,
        nullable: false,
        key: |p| p.name.as_str().into(),
    },
    Sort {
        name: "-price",
        kind: Kind::Amount,
        nullable: true,
        key: |p| p.price.into(),
    },
    Sort {
        name: "price",
        kind: Kind::Amount,
        nullable: true,
        key: |p| p.price.into(),
    },
    Sort {
        name: "-updated_at",
        kind: Kind::Time,
        nullable: false,
        key: |p| p.updated_at.into(),
    },
    Sort {
        name: "-sold_quantity",
        kind: Kind::Count,
        nullable: true,
        key: |p| p.sold_quantity.map(i64::from).into(),
    },
];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProducts {
    limit: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
    /// Part of the name or SKU.
    q: Option<String>,
    /// Salla statuses (`sale`, `hidden`, `out`), comma-separated.
    status: Option<String>,
    include_deleted: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/products",
    tag = "commerce",
    summary = "The store's products",
    description = "Pages: `limit` (1–200, default 50), `cursor` (the previous page's `next_cursor`), `sort` (allow-listed; `-` for descending).",
    params(ListProducts),
    responses(
        (status = 200, description = "A page.", body = Page<Product>),
        (status = 400, description = "`invalid_parameter`, naming the parameter."),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<ListProducts>,
) -> Result<axum::Json<Page<Product>>, ApiError> {
    let paging = Paging::parse(&params.limit, &params.cursor, &params.sort, SORTS)?;
    let search = Search::parse(&params.q)?;
    let statuses = one_of("status", &params.status)?;
    let include_deleted = flag("include_deleted", &params.include_deleted)?;

    let mut sql = listing(&SELECT);
    if !include_deleted {
        sql.push(" AND p.deleted_at IS NULL");
    }
    if let Some(search) = search {
        sql.push(" AND (p.name ILIKE ").bind(search.pattern.clone());
        sql.push(" OR p.sku ILIKE ").bind(search.pattern).push(")");
    }
    if let Some(statuses) = statuses {
        sql.push(" AND p.status = ANY(").bind(statuses).push(")");
    }

    let pool = state.pools().get(&ctx.tenant).await?;
    Ok(axum::Json(paging.fetch(sql, &pool).await?))
}
