//! `GET /api/sync`: how far the Salla import of each resource has come. A resource without a `sync_state`
//! row has never been imported: it is shown idle with nothing synced.

use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;

/// Every resource of `sync_state`, in the order of its CHECK constraint.
const STATE: &str = "\
SELECT r.resource, COALESCE(s.status, 'idle') AS status, s.next_page,
       COALESCE(s.items_synced, 0) AS items_synced, s.total_expected, s.started_at,
       s.last_full_import_at, s.last_event_at, s.last_error, s.updated_at
FROM unnest(ARRAY['customers', 'products', 'orders', 'abandoned_carts']) WITH ORDINALITY AS r (resource, position)
LEFT JOIN sync_state s ON s.resource = r.resource
ORDER BY r.position";

#[derive(Debug, Serialize, sqlx::FromRow)]
struct ResourceSync {
    resource: String,
    /// `idle`, `running`, `done` or `failed`.
    status: String,
    /// The Salla page a resumed full import fetches next.
    next_page: Option<i32>,
    items_synced: i64,
    /// Salla's total of the last page read; `null` until one was.
    total_expected: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_full_import_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_event_at: Option<OffsetDateTime>,
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    updated_at: Option<OffsetDateTime>,
}

/// `POST /api/sync/resync` (admin role): starts a full re-scan of the store (every resource walks the Merchant
/// API again; rows are upserted idempotently). A walk already running is not started twice. 202.
pub async fn resync(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<(axum::http::StatusCode, axum::Json<Value>), ApiError> {
    ctx.require_admin()?;
    if !state.config.salla.enabled() {
        return Err(ApiError::Unavailable {
            code: "salla_not_configured",
            message: "The Salla app is not configured on this server.".into(),
            details: None,
        });
    }
    let Some(merchant) = ctx.tenant.salla_merchant_id else {
        return Err(ApiError::conflict(
            "no_salla_store",
            "This tenant is not connected to a Salla store.",
        ));
    };
    let enqueued = crate::salla::import::enqueue_full(&state.jobs, ctx.tenant.id, merchant as u64)
        .await
        .map_err(|e| ApiError::internal(e.message()))?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({ "resync": "enqueued", "resources_started": enqueued })),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = state.pools.get(&ctx.tenant).await?;
    let resources: Vec<ResourceSync> = sqlx::query_as(STATE).fetch_all(&*pool).await?;
    Ok(axum::Json(json!({ "resources": resources })))
}
