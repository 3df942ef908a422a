//! Backups for operators: `GET /api/admin/backups` (recent sets, tenants whose last backup failed, the last
//! restore drill) and `GET /api/admin/backups/{set}` (one set, database by database). Read from the history
//! in the global database (src/backup/record.rs); the dumps themselves are in the backup target.

use axum::extract::State;
use serde_json::{Value, json};

use super::AdminAuth;
use crate::backup::record;
use crate::error::ApiError;
use crate::http::extract::Path;
use crate::state::AppState;

/// Sets listed by `GET /api/admin/backups`.
const RECENT_SETS: i64 = 50;

/// `GET /api/admin/backups`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `list`")]
pub struct BackupsAnswer {
    /// The most recent sets (at most 50), newest first: id, status, started/finished, databases, failures,
    /// bytes, target.
    #[schema(value_type = Vec<Object>)]
    sets: Vec<Value>,
    /// Tenants whose last backup attempt failed, with the error and their last success.
    #[schema(value_type = Vec<Object>)]
    failing_tenants: Vec<Value>,
    /// The last restore drill (tenant, set, outcome, differences), if any ran.
    #[schema(value_type = Option<Object>)]
    last_drill: Option<Value>,
}

/// `GET /api/admin/backups/{set}`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct BackupSetAnswer {
    #[schema(value_type = Object)]
    set: Value,
    /// One per database: scope, tenant id, database, schema version, size, SHA-256, duration, status, error.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<Value>,
}

#[utoipa::path(
    get,
    path = "/api/admin/backups",
    tag = "admin-backups",
    summary = "Recent backup sets, tenants whose backup fails, the last restore drill",
    responses((status = 200, description = "The backup history.", body = BackupsAnswer)),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let db = state.db();
    let sets = record::list_sets(db, RECENT_SETS).await?;
    let failing = record::failing_tenants(db).await?;
    let drill = record::last_drill(db).await?;
    Ok(axum::Json(json!({
        "sets": sets,
        "failing_tenants": failing,
        "last_drill": drill,
    })))
}

#[utoipa::path(
    get,
    path = "/api/admin/backups/{set}",
    tag = "admin-backups",
    summary = "One backup set, database by database",
    params(("set" = String, Path, description = "The set's id (as listed).")),
    responses(
        (status = 200, description = "The set and its entries.", body = BackupSetAnswer),
        (status = 404, description = "`backup_set_not_found`."),
    ),
)]
pub async fn show(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let set = record::find_set(state.db(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("backup_set_not_found", "No such backup set."))?;
    let entries = record::entries(state.db(), &id).await?;
    Ok(axum::Json(json!({ "set": set, "entries": entries })))
}

/// The tenant's backup state for `GET /api/admin/tenants/{id}`: its last attempt and its last success.
pub async fn tenant_summary(
    state: &AppState,
    tenant: crate::tenancy::TenantId,
) -> Result<Value, ApiError> {
    let (last, success) = record::tenant_last(state.db(), tenant).await?;
    Ok(json!({
        "last": last,
        "last_success": success,
        "failing": last.as_ref().is_some_and(|e| e.status == "failed"),
    }))
}
