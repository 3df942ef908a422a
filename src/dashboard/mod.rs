//! The tenant-facing API: self-serve registration with its progress, and the caller's own tenant.

mod api_keys;
mod commerce;
mod me;

pub use api_keys::check_key_name;
mod registration;
mod tenant;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register-organization", post(registration::register))
        .route("/auth/provisioning-status/{id}", get(registration::status))
        .route("/me", get(me::show))
        .route("/tenant", get(tenant::show))
        .route(
            "/tenant/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route("/tenant/api-keys/{key_id}", delete(api_keys::revoke))
        .merge(commerce::router())
}
