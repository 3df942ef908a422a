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
use crate::provisioning::lifecycle::Actor;
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

fn actor(auth: &AdminAuth, request_id: Option<String>) -> Actor {
    Actor {
        name: auth.actor.clone(),
        request_id,
        ip: auth.origin.ip,
        user_agent: auth.origin.user_agent.clone(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The key of a `[[db.tenant_servers]]` entry.
    to: String,
}

pub async fn start(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    Json(body): Json<StartBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = moves(&state)
        .start(&id, body.to.trim(), &actor(&auth, request_id))
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "move": started }))))
}

pub async fn latest(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let latest = moves(&state).latest(&id).await?;
    Ok(axum::Json(json!({ "move": latest })))
}

pub async fn abort(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let aborted = moves(&state).abort(&id, &actor(&auth, request_id)).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "move": aborted }))))
}

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
