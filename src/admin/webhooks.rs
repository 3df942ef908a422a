//! Inspect and replay stored webhook deliveries (every provider). Bodies are shown with credentials redacted:
//! Salla's `app.store.authorize` carries OAuth tokens in clear.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::{Path, Query};
use crate::jobs::NewJob;
use crate::state::AppState;
use crate::tenancy::TenantId;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    provider: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    tenant_id: Option<TenantId>,
    /// Salla store id (`merchant` of the payload).
    merchant_id: Option<i64>,
    /// Page backwards: deliveries with an id below this one.
    before: Option<i64>,
    limit: Option<i64>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    provider: String,
    dedupe_key: String,
    event_type: String,
    tenant_id: Option<TenantId>,
    payload: Value,
    headers: Value,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    received_at: OffsetDateTime,
    processed_at: Option<OffsetDateTime>,
    raw_body: Option<String>,
}

const COLUMNS: &str = "id, provider, dedupe_key, event_type, tenant_id, payload, headers, status, attempts, \
                       last_error, received_at, processed_at, raw_body";

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

fn render(row: Row) -> Value {
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
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_inbox \
         WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR status = $2) \
           AND ($3::text IS NULL OR event_type = $3) AND ($4::uuid IS NULL OR tenant_id = $4) \
           AND ($5::bigint IS NULL OR (provider = 'salla' AND payload ->> 'merchant' = $5::text)) \
           AND ($6::bigint IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    )))
    .bind(&params.provider)
    .bind(&params.status)
    .bind(&params.event_type)
    .bind(params.tenant_id)
    .bind(params.merchant_id)
    .bind(params.before)
    .bind(limit)
    .fetch_all(&state.db)
    .await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let deliveries: Vec<Value> = rows.into_iter().map(render).collect();
    Ok(axum::Json(
        json!({ "deliveries": deliveries, "next_before": next_before }),
    ))
}

/// `GET /admin/webhooks/{id}`.
pub async fn get(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(render(find(&state, id).await?)))
}

async fn find(state: &AppState, id: i64) -> Result<Row, ApiError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_inbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("delivery_not_found", "No stored delivery has this id."))
}

/// `POST /admin/webhooks/{id}/replay`: processes a stored delivery again (its effects are idempotent), e.g.
/// after a fix for a delivery that failed. Rejected deliveries (not events) cannot be replayed.
pub async fn replay(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    let row = find(&state, id).await?;
    let job = match row.provider.as_str() {
        crate::salla::webhook::PROVIDER => {
            NewJob::new(&crate::salla::processing::ProcessDelivery { inbox_id: id })
        }
        crate::clerk::webhook::PROVIDER => {
            NewJob::new(&crate::clerk::webhook::ClerkEvent { inbox_id: id })
        }
        other => {
            return Err(ApiError::unprocessable(
                "not_replayable",
                format!("Deliveries of provider {other:?} cannot be replayed."),
            ));
        }
    }
    .map_err(ApiError::internal)?;
    if row.status == "rejected" {
        return Err(ApiError::conflict(
            "not_replayable",
            "A rejected delivery is not an event; it can only be inspected.",
        ));
    }
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE webhook_inbox SET status = 'pending', attempts = 0, last_error = NULL, processed_at = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let job_id = state.jobs.enqueue_in(&mut tx, job).await?.id();
    tx.commit().await?;
    tracing::info!(inbox_id = id, provider = %row.provider, "stored delivery replayed by an operator");
    Ok(axum::Json(json!({ "replayed": true, "job_id": job_id })))
}
