//! A tenant's CRM workspace for operators: provisioning step, applied data-model version, and the record
//! sync's outbox (pending records, oldest pending age, failures, last error).

use axum::extract::State;
use serde_json::{Value, json};

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::Path;
use crate::state::AppState;

/// `GET /admin/tenants/{id}/crm`.
pub async fn show(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let Some(sync) = &state.crm_sync else {
        return Err(ApiError::Unavailable {
            code: "crm_not_configured",
            message: "Twenty is not configured on this server (crm.base_url is empty).".into(),
            details: None,
        });
    };
    let tenant = state.admin.find(&id).await?;
    let status = sync.status(tenant.id).await.map_err(ApiError::internal)?;
    Ok(axum::Json(json!({ "crm": status })))
}
