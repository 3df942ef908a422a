//! Maintenance switches for operators: `GET`/`POST /api/admin/maintenance` (global, every replica within
//! `maintenance.cache_secs`) and `POST /api/admin/tenants/{id}/read-only` (one tenant). Both are audited with
//! before/after.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminAuth;
use crate::audit::{Event, Origin};
use crate::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::state::AppState;

fn invalid(field: &str, problem: &str) -> ApiError {
    let mut fields = BTreeMap::new();
    fields.insert(field.to_owned(), problem.to_owned());
    ApiError::Invalid { fields }
}

/// Text an operator types: at most 500 printable characters.
fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > 500 || text.chars().any(char::is_control) {
        return Err(invalid(field, "must be at most 500 printable characters"));
    }
    Ok(())
}

/// The maintenance switch, in an answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answers of `show` and `set`")]
pub struct MaintenanceAnswer {
    maintenance: crate::maintenance::Mode,
}

/// `POST /api/admin/tenants/{id}/read-only`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `read_only`")]
pub struct ReadOnlyAnswer {
    /// The tenant, `read_only_reason` set while read-only.
    tenant: crate::tenancy::Tenant,
}

#[utoipa::path(
    get,
    path = "/api/admin/maintenance",
    tag = "admin-maintenance",
    summary = "The global maintenance switch",
    responses((status = 200, description = "The switch.", body = MaintenanceAnswer)),
)]
pub async fn show(_: AdminAuth, State(state): State<AppState>) -> axum::Json<Value> {
    let mode = state.maintenance().current().await;
    axum::Json(json!({ "maintenance": *mode }))
}

/// The body of `POST /api/admin/maintenance`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "message": "Upgrading the database", "retry_after_secs": 300}))]
pub struct SetBody {
    enabled: bool,
    /// Shown to callers; at most 500 printable characters.
    message: Option<String>,
    /// 1–86400; default `maintenance.retry_after_secs`.
    retry_after_secs: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/api/admin/maintenance",
    tag = "admin-maintenance",
    summary = "Turn maintenance mode on or off",
    description = "Every replica follows within `maintenance.cache_secs`; audited with before and after.",
    request_body = SetBody,
    responses(
        (status = 200, description = "The switch as set.", body = MaintenanceAnswer),
        (status = 422, description = "`validation_failed`: `message` or `retry_after_secs`."),
    ),
)]
pub async fn set(
    auth: AdminAuth,
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<SetBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let message = body.message.as_deref().map(str::trim).unwrap_or("");
    check_text("message", message)?;
    let retry_after = body
        .retry_after_secs
        .unwrap_or(state.config().maintenance.retry_after_secs);
    if !(1..=86_400).contains(&retry_after) {
        return Err(invalid("retry_after_secs", "must be 1 to 86400 seconds"));
    }
    let (before, after) = state
        .maintenance()
        .set(body.enabled, message, retry_after, &auth.actor)
        .await?;
    let action = if body.enabled {
        "maintenance.enabled"
    } else {
        "maintenance.disabled"
    };
    let mut conn = state.db().acquire().await?;
    Event::operator(&auth.actor, action)
        .origin(&origin)
        .resource("maintenance")
        .change(
            json!({ "enabled": before.enabled, "message": before.message, "retry_after_secs": before.retry_after_secs }),
            json!({ "enabled": after.enabled, "message": after.message, "retry_after_secs": after.retry_after_secs }),
        )
        .write_global(&mut conn)
        .await?;
    Ok(axum::Json(json!({ "maintenance": after })))
}

/// The body of `POST /api/admin/tenants/{id}/read-only`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "reason": "Moving to another server"}))]
pub struct ReadOnlyBody {
    enabled: bool,
    /// Required when enabling: 1–500 printable characters.
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/read-only",
    tag = "admin-maintenance",
    summary = "Make one tenant read-only, or writable again",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    request_body = ReadOnlyBody,
    responses(
        (status = 200, description = "The tenant.", body = ReadOnlyAnswer),
        (status = 404, description = "`tenant_not_found`."),
        (status = 422, description = "`validation_failed`: `reason`."),
    ),
)]
pub async fn read_only(
    auth: AdminAuth,
    State(state): State<AppState>,
    origin: Origin,
    Path(id): Path<String>,
    Json(body): Json<ReadOnlyBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let reason = body.reason.as_deref().map(str::trim).unwrap_or("");
    if body.enabled && reason.is_empty() {
        return Err(invalid(
            "reason",
            "required when enabling: 1 to 500 characters",
        ));
    }
    check_text("reason", reason)?;
    let tenant = state.lifecycle().find(&id).await?;
    let updated = state
        .directory()
        .set_read_only(tenant.id, body.enabled.then_some(reason))
        .await?
        .ok_or_else(|| ApiError::not_found("tenant_not_found", "No such tenant."))?;
    let mut conn = state.db().acquire().await?;
    let action = if body.enabled {
        "tenant.read_only_enabled"
    } else {
        "tenant.read_only_disabled"
    };
    Event::operator(&auth.actor, action)
        .on_tenant(tenant.id)
        .origin(&origin)
        .resource(format!("tenant:{}", tenant.id))
        .change(
            json!({ "read_only_reason": tenant.read_only_reason }),
            json!({ "read_only_reason": updated.read_only_reason }),
        )
        .write_global(&mut conn)
        .await?;
    Ok(axum::Json(json!({ "tenant": updated })))
}
