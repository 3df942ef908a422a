//! The CRM for operators: a tenant's workspace (state, instance, provisioning step, applied data-model
//! version, the record sync's outbox) and the Twenty instances with their capacity and waiting tenants.

use axum::extract::State;
use serde_json::{Value, json};

use super::AdminAuth;
use crate::crm::placement;
use crate::error::ApiError;
use crate::http::extract::Path;
use crate::state::AppState;

/// `GET /admin/tenants/{id}/crm`.
pub async fn show(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let Some(sync) = state.crm_sync() else {
        return Err(not_configured());
    };
    let tenant = state.lifecycle().find(&id).await?;
    let status = sync.status(tenant.id).await.map_err(ApiError::internal)?;
    Ok(axum::Json(json!({ "crm": status })))
}

/// `GET /admin/crm`: every Twenty instance (version and capabilities as last checked, workspaces against its
/// cap, room) and the tenants waiting for capacity, oldest first.
pub async fn instances(
    _: AdminAuth,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let crm = &state.config().crm;
    if !crm.enabled() {
        return Err(not_configured());
    }
    let recheck = std::time::Duration::from_secs(crm.capacity_recheck_secs);
    let instances = placement::instances(state.db(), recheck)
        .await
        .map_err(ApiError::internal)?;
    let waiting = placement::waiting(state.db())
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(json!({
        "pinned_version": crate::crm::twenty::PINNED_VERSION,
        "instances": instances,
        "room": instances.iter().map(|i| i.room).sum::<i64>(),
        "waiting_for_capacity": waiting,
    })))
}

fn not_configured() -> ApiError {
    ApiError::Unavailable {
        code: "crm_not_configured",
        message:
            "Twenty is not configured on this server (neither crm.base_url nor [[crm.instances]])."
                .into(),
        details: None,
    }
}
