//! `POST /api/auth/register-organization` and `GET /api/auth/provisioning-status/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::extract::{Json, Path, RequestId};
use crate::http::step_and_progress;
use crate::provisioning::RegistrationRequest;
use crate::provisioning::steps;
use crate::state::AppState;
use crate::tenancy::LookupKey;

/// Registers an organization and starts provisioning it: 202 with where to watch the progress.
pub async fn register(
    _: crate::maintenance::NotInMaintenance,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Json(request): Json<RegistrationRequest>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let valid = request
        .validate(&state.config().tenancy)
        .map_err(|fields| ApiError::Invalid { fields })?;
    let registered = state
        .provisioner()
        .register(valid, None, "self-service", request_id.as_deref())
        .await?;
    let tenant = &registered.tenant;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "tenant_id": tenant.id,
            "slug": tenant.slug,
            "provisioning_id": registered.run_id,
            "status": tenant.status,
            "status_url": format!("/api/auth/provisioning-status/{}", registered.run_id),
        })),
    ))
}

/// Progress of a provisioning run, by its id (unguessable; returned only to whoever registered).
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let run = steps::get_run(state.db(), id).await?.ok_or_else(|| {
        ApiError::not_found("provisioning_not_found", "No such provisioning run.")
    })?;
    let records = steps::steps_of(state.db(), id).await?;
    let tenant = state
        .directory()
        .resolve(&LookupKey::Id(run.tenant_id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found("provisioning_not_found", "No such provisioning run.")
        })?;
    let (step, progress) = step_and_progress(&records);
    let progress = if tenant.status == crate::tenancy::TenantStatus::Ready {
        100
    } else {
        progress
    };
    let steps: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "status": r.status, "duration_ms": r.duration_ms,
                "error": r.error, "detail": r.detail, "attempts": r.attempts,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "provisioning_id": run.id,
        "status": tenant.status,
        "step": step,
        "progress": progress,
        "steps": steps,
        "tenant_id": tenant.id,
        "slug": tenant.slug,
        "error": tenant.failure_reason,
    })))
}
