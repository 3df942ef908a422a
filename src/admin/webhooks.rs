//! Inspect and replay stored webhook deliveries (every provider). Bodies are shown with credentials redacted:
//! Salla's `app.store.authorize` carries OAuth tokens in clear.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::{Path, Query};
use crate::inbox::{self, InboxFilter, InboxRow, InboxStatus};
use crate::state::AppState;
use crate::tenancy::{MerchantId, TenantId};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `salla` or `clerk`.
    provider: Option<String>,
    /// `pending`, `processed`, `failed`, `rejected`…
    status: Option<String>,
    /// e.g. `order.created`.
    event_type: Option<String>,
    tenant_id: Option<TenantId>,
    /// Salla store id (`merchant` of the payload).
    merchant_id: Option<MerchantId>,
    /// Page backwards: deliveries with an id below this one.
    before: Option<i64>,
    /// 1–500, default 50.
    limit: Option<i64>,
}

/// A stored delivery, credentials redacted.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `render`")]
pub struct Delivery {
    id: i64,
    provider: String,
    dedupe_key: String,
    event_type: Option<String>,
    tenant_id: Option<TenantId>,
    status: InboxStatus,
    attempts: i32,
    last_error: Option<String>,
    received_at: Option<OffsetDateTime>,
    processed_at: Option<OffsetDateTime>,
    #[schema(value_type = Object)]
    headers: Value,
    /// The body with every credential value replaced by `"[redacted]"`.
    #[schema(value_type = Object)]
    payload: Value,
    /// A rejected body's size (it is not JSON, so it is not shown).
    raw_body_bytes: Option<i64>,
}

/// `GET /api/admin/webhooks`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `list`")]
pub struct DeliveryList {
    deliveries: Vec<Delivery>,
    /// The `before` of the next page; `null` on the last.
    next_before: Option<i64>,
}

/// `POST /api/admin/webhooks/{id}/replay`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `replay`")]
pub struct Replayed {
    replayed: bool,
    job_id: crate::jobs::JobId,
}

/// Keys whose values are credentials, wherever they appear in a body.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "authorization",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// The body with every credential value replaced by `"[redacted]"`.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::from("[redacted]")
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn render(row: InboxRow) -> Value {
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    json!({
        "id": row.id,
        "provider": row.provider,
        "dedupe_key": row.dedupe_key,
        "event_type": row.event_type,
        "tenant_id": row.tenant_id,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "received_at": rfc3339(row.received_at),
        "processed_at": row.processed_at.and_then(rfc3339),
        "headers": row.headers,
        "payload": redact(&row.payload),
        // A rejected body is not JSON, so it cannot be redacted by key: show only its size.
        "raw_body_bytes": row.raw_body.as_ref().map(String::len),
    })
}

/// `GET /admin/webhooks`: stored deliveries, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks",
    tag = "admin-webhooks",
    summary = "Stored webhook deliveries, newest first",
    params(ListParams),
    responses(
        (status = 200, description = "A page of deliveries.", body = DeliveryList),
        (status = 400, description = "`invalid_status`."),
    ),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(|raw| {
            raw.parse::<InboxStatus>()
                .map_err(|e| ApiError::bad_request("invalid_status", e.to_string()))
        })
        .transpose()?;
    let filter = InboxFilter {
        provider: params.provider,
        status,
        event_type: params.event_type,
        tenant_id: params.tenant_id,
        merchant_id: params.merchant_id,
        before: params.before,
        limit: params.limit.unwrap_or(50).clamp(1, 500),
    };
    let rows = inbox::list(state.db(), &filter).await?;
    let next_before = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let deliveries: Vec<Value> = rows.into_iter().map(render).collect();
    Ok(axum::Json(
        json!({ "deliveries": deliveries, "next_before": next_before }),
    ))
}

/// `GET /admin/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks/{id}",
    tag = "admin-webhooks",
    summary = "One stored delivery",
    params(("id" = i64, Path, description = "The delivery's id.")),
    responses(
        (status = 200, description = "The delivery.", body = Delivery),
        (status = 404, description = "`delivery_not_found`."),
    ),
)]
pub async fn get(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    let row = inbox::get(state.db(), id).await?.ok_or_else(|| {
        ApiError::not_found("delivery_not_found", "No stored delivery has this id.")
    })?;
    Ok(axum::Json(render(row)))
}

/// `POST /admin/webhooks/{id}/replay`: processes a stored delivery again (see [`inbox::Inbox::replay`]).
#[utoipa::path(
    post,
    path = "/api/admin/webhooks/{id}/replay",
    tag = "admin-webhooks",
    summary = "Process a stored delivery again",
    params(("id" = i64, Path, description = "The delivery's id.")),
    responses(
        (status = 200, description = "Enqueued.", body = Replayed),
        (status = 404, description = "`delivery_not_found`."),
        (status = 409, description = "A rejected delivery cannot be replayed."),
    ),
)]
pub async fn replay(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    let job_id = state.inbox().replay(id).await?;
    Ok(axum::Json(json!({ "replayed": true, "job_id": job_id })))
}
