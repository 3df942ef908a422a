//! Salla stores for operators: install and token status (never the tokens), subscription, last webhook.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::{Path, Query};
use crate::inbox::{self, InboxFilter};
use crate::state::AppState;
use crate::tenancy::{MerchantId, TenantId};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The store's install status, e.g. `installed`, `needs_reinstall`, `uninstalled`.
    status: Option<String>,
    /// 1–1000, default 100.
    limit: Option<i64>,
}

/// `GET /api/admin/salla/stores`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `list`")]
pub struct StoreList {
    stores: Vec<StoreRow>,
}

/// `GET /api/admin/salla/stores/{merchant_id}`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct StoreAnswer {
    store: StoreRow,
    /// The last delivery from this store (`id`, `event_type`, `status`, `received_at`); `null` if none.
    #[schema(value_type = Option<Object>)]
    last_webhook: Option<Value>,
}

/// A Salla store as operators see it (never its tokens).
#[derive(Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SallaStore)]
pub(crate) struct StoreRow {
    merchant_id: MerchantId,
    tenant_id: Option<TenantId>,
    status: String,
    has_tokens: bool,
    key_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    access_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    refresh_obtained_at: Option<OffsetDateTime>,
    scope: Option<String>,
    token_version: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    last_refresh_at: Option<OffsetDateTime>,
    last_refresh_error: Option<String>,
    store_name: Option<String>,
    store_domain: Option<String>,
    store_plan: Option<String>,
    owner_email: Option<String>,
    /// The Salla user who installed the app (user info at onboarding): the owner in the embedded app.
    installer_user_id: Option<i64>,
    installer_name: Option<String>,
    installer_email: Option<String>,
    rate_limit_per_minute: Option<i32>,
    subscription_status: Option<String>,
    subscription_plan: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    subscription_ends_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    installed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    uninstalled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    import_requested_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_event_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    webhooks_registered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    webhooks_checked_at: Option<OffsetDateTime>,
    /// Events not registered as they should be (`[{event, problem}]`); `null` before the first check.
    webhook_drift: Option<Value>,
}

const COLUMNS: &str = "merchant_id, tenant_id, status, access_token IS NOT NULL AS has_tokens, key_id, \
    access_expires_at, refresh_obtained_at, scope, token_version, last_refresh_at, last_refresh_error, store_name, \
    store_domain, store_plan, owner_email, installer_user_id, installer_name, installer_email, rate_limit_per_minute, subscription_status, subscription_plan, \
    subscription_ends_at, installed_at, uninstalled_at, import_requested_at, last_event_at, webhooks_registered_at, \
    webhooks_checked_at, webhook_drift";

/// `GET /admin/salla/stores`: stores, most recently active first.
#[utoipa::path(
    get,
    path = "/api/admin/salla/stores",
    tag = "admin-salla",
    summary = "Installed Salla stores, most recently active first",
    params(ListParams),
    responses((status = 200, description = "The stores.", body = StoreList)),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let rows: Vec<StoreRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM salla_stores WHERE ($1::text IS NULL OR status = $1) \
         ORDER BY last_event_at DESC NULLS LAST, merchant_id LIMIT $2"
    )))
    .bind(&params.status)
    .bind(params.limit.unwrap_or(100).clamp(1, 1000))
    .fetch_all(state.db())
    .await?;
    Ok(axum::Json(json!({ "stores": rows })))
}

/// `GET /admin/salla/stores/{merchant_id}`: the store, its token status and its last webhook.
#[utoipa::path(
    get,
    path = "/api/admin/salla/stores/{merchant_id}",
    tag = "admin-salla",
    summary = "One store, its token status and last webhook",
    params(("merchant_id" = i64, Path, description = "Salla's merchant id.")),
    responses(
        (status = 200, description = "The store.", body = StoreAnswer),
        (status = 404, description = "`store_not_found`."),
    ),
)]
pub async fn show(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(merchant): Path<MerchantId>,
) -> Result<axum::Json<Value>, ApiError> {
    let store: StoreRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM salla_stores WHERE merchant_id = $1"
    )))
    .bind(merchant)
    .fetch_optional(state.db())
    .await?
    .ok_or_else(|| {
        ApiError::not_found("store_not_found", "No Salla store has this merchant id.")
    })?;
    let filter = InboxFilter {
        provider: Some("salla".to_owned()),
        merchant_id: Some(merchant),
        limit: 1,
        ..InboxFilter::default()
    };
    let last = inbox::list(state.db(), &filter).await?.into_iter().next();
    let last_webhook = last.map(|row| {
        json!({
            "id": row.id, "event_type": row.event_type, "status": row.status,
            "received_at": row.received_at.format(&time::format_description::well_known::Rfc3339).ok(),
        })
    });
    Ok(axum::Json(
        json!({ "store": store, "last_webhook": last_webhook }),
    ))
}
