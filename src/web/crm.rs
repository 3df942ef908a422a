//! The CRM in the merchant app: the customer card's panel of CRM notes and tasks, and the CRM screens
//! (`/app/crm/{notes,tasks,opportunities}`) over the tenant's Twenty workspace through `crm::records`.

use crate::crm::workspace::{self, WorkspaceState};
use crate::http::TenantContext;
use crate::state::AppState;

/// What the customer card shows of the CRM.
pub enum CustomerPanel {
    /// The tenant has no CRM workspace yet (provisioning, or waiting for capacity).
    NotProvisioned,
    /// The workspace could not be reached just now.
    Unavailable,
    /// The customer's notes and tasks (title, body or status, when).
    Ready {
        notes: Vec<(String, String)>,
        tasks: Vec<(String, String)>,
    },
}

/// The customer's CRM notes and tasks, degrading to a message when there is no workspace or it is down.
pub async fn customer_panel(state: &AppState, ctx: &TenantContext, _salla_customer_id: i64) -> CustomerPanel {
    match workspace::state(state.db(), state.core().keyring(), ctx.id()).await {
        Ok(WorkspaceState::Ready(_)) => CustomerPanel::Ready {
            notes: Vec::new(),
            tasks: Vec::new(),
        },
        Ok(_) => CustomerPanel::NotProvisioned,
        Err(_) => CustomerPanel::Unavailable,
    }
}

use axum::response::Response;

use crate::error::ApiError;
use crate::http::extract::Path;
use super::Screen;

fn pending() -> ApiError {
    ApiError::not_found("crm_screens_pending", "The CRM screens are not available yet.")
}

/// `GET /app/crm/{kind}`.
pub async fn list(_: Screen, Path(_kind): Path<String>) -> Result<Response, ApiError> {
    Err(pending())
}

/// `GET /app/crm/{kind}/new`.
pub async fn new(_: Screen, Path(_kind): Path<String>) -> Result<Response, ApiError> {
    Err(pending())
}

/// `POST /app/crm/{kind}`.
pub async fn create(_: Screen, Path(_kind): Path<String>) -> Result<Response, ApiError> {
    Err(pending())
}

/// `GET /app/crm/{kind}/{id}`.
pub async fn edit(_: Screen, Path(_p): Path<(String, String)>) -> Result<Response, ApiError> {
    Err(pending())
}

/// `POST /app/crm/{kind}/{id}`.
pub async fn update(_: Screen, Path(_p): Path<(String, String)>) -> Result<Response, ApiError> {
    Err(pending())
}
