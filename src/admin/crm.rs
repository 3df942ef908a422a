//! The CRM for operators: a tenant's workspace (state, instance, provisioning step, applied data-model
//! version, the record sync's outbox) and the Twenty instances with their capacity and waiting tenants.

use axum::extract::State;
use serde_json::{Value, json};

use super::AdminAuth;
use crate::crm::placement;
use crate::error::ApiError;
use crate::http::extract::Path;
use crate::state::AppState;

/// `GET /api/admin/tenants/{id}/crm`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct TenantCrm {
    /// The workspace (state, instance, provisioning step, data-model version) and the sync's outbox.
    #[schema(value_type = Object)]
    crm: Value,
}

/// `GET /api/admin/crm`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `instances`")]
pub struct CrmInstances {
    /// The Twenty version this build speaks.
    pinned_version: String,
    /// Each instance: version and capabilities as last checked, workspaces against its cap, room.
    #[schema(value_type = Vec<Object>)]
    instances: Vec<Value>,
    /// Workspaces that still fit, over every instance.
    room: i64,
    /// Tenants waiting for capacity, oldest first.
    #[schema(value_type = Vec<Object>)]
    waiting_for_capacity: Vec<Value>,
}

/// `GET /admin/tenants/{id}/crm`.
#[utoipa::path(
    get,
    path = "/api/admin/tenants/{id}/crm",
    tag = "admin-crm",
    summary = "A tenant's CRM workspace and sync",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 200, description = "The workspace and its sync.", body = TenantCrm),
        (status = 404, description = "`tenant_not_found`."),
        (status = 503, description = "`crm_not_configured`."),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/api/admin/crm",
    tag = "admin-crm",
    summary = "Twenty instances, their capacity and waiting tenants",
    responses(
        (status = 200, description = "The instances.", body = CrmInstances),
        (status = 503, description = "`crm_not_configured`."),
    ),
)]
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
