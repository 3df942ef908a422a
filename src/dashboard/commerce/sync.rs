//! `GET /api/sync`: how far the Salla import of each resource has come: the four list walks, then the order
//! details (`order_details`: fetched after every list, newest orders first), each with what is done, the total,
//! what remains, the rate it measured and the ETA that gives. A resource without a `sync_state` row has never
//! been imported: it is shown idle with nothing synced.

use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;

/// Every resource of `sync_state`, in the order of its CHECK constraint. The details' total is live: what is
/// done plus the orders still marked.
const STATE: &str = "\
SELECT r.resource, COALESCE(s.status, 'idle') AS status, s.next_page,
       COALESCE(s.items_synced, 0) AS items_synced,
       CASE WHEN r.resource = 'order_details'
            THEN COALESCE(s.items_synced, 0) + (SELECT count(*) FROM orders WHERE details_needed)
            ELSE s.total_expected END AS total_expected,
       s.items_per_minute, s.started_at, s.last_full_import_at, s.last_event_at, s.last_error, s.updated_at
FROM unnest(ARRAY['customers', 'products', 'orders', 'abandoned_carts', 'order_details'])
     WITH ORDINALITY AS r (resource, position)
LEFT JOIN sync_state s ON s.resource = r.resource
ORDER BY r.position";

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct ResourceSync {
    pub(crate) resource: String,
    /// `idle`, `running`, `done` or `failed`.
    pub(crate) status: String,
    /// The Salla page a resumed full import fetches next.
    pub(crate) next_page: Option<i32>,
    pub(crate) items_synced: i64,
    /// Salla's total of the last page read (details: done plus still to fetch); `null` until known.
    pub(crate) total_expected: Option<i64>,
    /// Items per minute this walk measured (smoothed).
    pub(crate) items_per_minute: Option<f64>,
    /// Still to sync, when the total is known.
    #[sqlx(skip)]
    pub(crate) remaining: Option<i64>,
    /// Seconds until done at the measured rate, while the walk runs.
    #[sqlx(skip)]
    pub(crate) eta_secs: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) last_full_import_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) last_event_at: Option<OffsetDateTime>,
    pub(crate) last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) updated_at: Option<OffsetDateTime>,
}

/// `POST /api/sync/resync` (`sync.manage`: admins): starts a full re-scan of the store (every resource walks the Merchant
/// API again; rows are upserted idempotently). A walk already running is not started twice. 202.
#[utoipa::path(
    post,
    path = "/api/sync/resync",
    tag = "commerce",
    summary = "Re-import the whole store from Salla",
    responses(
        (status = 202, description = "Enqueued.", body = Resync),
        (status = 409, description = "`no_salla_store`: the tenant has no Salla store."),
        (status = 503, description = "`salla_not_configured`."),
    ),
)]
pub async fn resync(
    State(state): State<AppState>,
    ctx: TenantContext,
    origin: crate::audit::Origin,
) -> Result<(axum::http::StatusCode, axum::Json<Value>), ApiError> {
    if !state.config().salla.enabled() {
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
    let enqueued = crate::salla::import::enqueue_full(state.jobs(), ctx.tenant.id, merchant)
        .await
        .map_err(|e| ApiError::internal(e.message()))?;
    let pool = state.pools().get(&ctx.tenant).await?;
    crate::audit::Event::tenant(&ctx, crate::audit::Via::Api, "sync.resync_requested")
        .origin(&origin)
        .resource(format!("store:{merchant}"))
        .details(json!({ "resources_started": enqueued }))
        .record_tenant(&pool)
        .await;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({ "resync": "enqueued", "resources_started": enqueued })),
    ))
}

/// `POST /api/sync/resync`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `resync`")]
pub struct Resync {
    #[schema(example = "enqueued")]
    resync: String,
    /// How many resource walks were started (a running one is not started twice).
    resources_started: i64,
}

/// `GET /api/sync`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct SyncProgress {
    resources: Vec<ResourceSync>,
}

#[utoipa::path(
    get,
    path = "/api/sync",
    tag = "commerce",
    summary = "Progress of the Salla import",
    responses((status = 200, description = "Each resource's progress.", body = SyncProgress)),
)]
pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = state.pools().get(&ctx.tenant).await?;
    let resources = progress(&pool).await?;
    Ok(axum::Json(json!({ "resources": resources })))
}

/// Each resource's import progress (the merchant API's `/sync` and the merchant app's Home).
pub(crate) async fn progress(pool: &sqlx::PgPool) -> Result<Vec<ResourceSync>, ApiError> {
    let mut resources: Vec<ResourceSync> = sqlx::query_as(STATE).fetch_all(pool).await?;
    for resource in &mut resources {
        resource.remaining = resource
            .total_expected
            .map(|total| (total - resource.items_synced).max(0));
        resource.eta_secs = match (
            resource.status.as_str(),
            resource.remaining,
            resource.items_per_minute,
        ) {
            ("running", Some(remaining), Some(rate)) if rate > 0.0 => {
                Some((remaining as f64 / rate * 60.0).ceil() as i64)
            }
            (_, Some(0), _) => Some(0),
            _ => None,
        };
    }
    Ok(resources)
}
