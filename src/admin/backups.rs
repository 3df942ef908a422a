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
