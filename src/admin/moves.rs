//! Moving a tenant's database to another tenant server (docs/moves.md):
//! `POST /api/admin/tenants/{id}/move` `{"to": "<server>"}` → 202 with the move, run by a worker;
//! `GET /api/admin/tenants/{id}/move` (its latest move), `GET /api/admin/moves/{move_id}`, and
//! `POST /api/admin/tenants/{id}/move/abort` (roll back a move that has not switched yet).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::{Json, Path, RequestId};
use crate::provisioning::moves::{MoveError, TenantMoves};
use crate::state::AppState;

impl From<MoveError> for ApiError {
    fn from(error: MoveError) -> Self {
        let message = error.to_string();
        match error {
            MoveError::TenantNotFound => Self::not_found("tenant_not_found", "No such tenant."),
            MoveError::NoMove => Self::not_found("move_not_found", message),
            MoveError::UnknownServer { .. } => {
                let mut fields = std::collections::BTreeMap::new();
                fields.insert("to".into(), message);
                Self::Invalid { fields }
            }
            MoveError::SameServer(_) => Self::conflict("same_server", message),
            MoveError::NotMovable(_) => Self::conflict("tenant_not_movable", message),
            MoveError::InProgress(_) => Self::conflict("move_in_progress", message),
            MoveError::NotAbortable(_) => Self::conflict("move_not_abortable", message),
            MoveError::Db(error) => error.into(),
            MoveError::Enqueue(error) => Self::internal(error),
        }
    }
}

fn moves(state: &AppState) -> TenantMoves {
    TenantMoves::new(state.core().clone())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "pg-2"}))]
pub struct StartBody {
    /// The key of a `[[db.tenant_servers]]` entry.
    to: String,
}

/// A tenant move, in an answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answers of the move routes")]
pub struct MoveAnswer {
    /// id, tenant_id, source_server, target_server, db_name, state (`prepared`, `read_only`, `copied`,
    /// `verified`, `switched`, `source_dropped`, `failed`, `aborted`), error, timestamps, read-only seconds.
    #[schema(value_type = Object)]
    r#move: Value,
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/move",
    tag = "admin-tenants",
    summary = "Move a tenant's database to another tenant server",
    description = "Run by a worker: a short read-only window, dump and restore into the target, row counts \
        verified, registry and caches switched on every replica; the source is dropped after \
        `tenancy.moves.drop_source_after_secs`. Resumable and audited.",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    request_body = StartBody,
    responses(
        (status = 202, description = "Started.", body = MoveAnswer),
        (status = 404, description = "`tenant_not_found`."),
        (status = 409, description = "`same_server`, `tenant_not_movable`, `move_in_progress`."),
        (status = 422, description = "`validation_failed`: `to` names no configured server."),
    ),
)]
pub async fn start(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    Json(body): Json<StartBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = moves(&state)
        .start(&id, body.to.trim(), &auth.lifecycle_actor(request_id))
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "move": started }))))
}

#[utoipa::path(
    get,
    path = "/api/admin/tenants/{id}/move",
    tag = "admin-tenants",
    summary = "The tenant's latest move",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 200, description = "The move.", body = MoveAnswer),
        (status = 404, description = "`tenant_not_found`, `move_not_found`."),
    ),
)]
pub async fn latest(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let latest = moves(&state).latest(&id).await?;
    Ok(axum::Json(json!({ "move": latest })))
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/move/abort",
    tag = "admin-tenants",
    summary = "Roll back a move that has not switched yet",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 202, description = "Abort requested; a worker rolls it back.", body = MoveAnswer),
        (status = 404, description = "`tenant_not_found`, `move_not_found`."),
        (status = 409, description = "`move_not_abortable`: already switched or finished."),
    ),
)]
pub async fn abort(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let aborted = moves(&state)
        .abort(&id, &auth.lifecycle_actor(request_id))
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "move": aborted }))))
}

#[utoipa::path(
    get,
    path = "/api/admin/moves/{move_id}",
    tag = "admin-tenants",
    summary = "One move",
    params(("move_id" = String, Path, description = "The move's id.")),
    responses(
        (status = 200, description = "The move.", body = MoveAnswer),
        (status = 404, description = "`move_not_found`."),
    ),
)]
pub async fn show(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(move_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("move_not_found", "No such move.");
    let move_id: Uuid = move_id.parse().map_err(|_| not_found())?;
    let found = moves(&state).get(move_id).await?.ok_or_else(not_found)?;
    Ok(axum::Json(json!({ "move": found })))
}
