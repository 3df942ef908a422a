//! Operator-facing API under `/api/admin` (also mounted at `/admin`), authenticated by `X-Admin-Key`.

mod auth;
mod crm;
mod jobs;
mod salla;
mod tenants;
pub mod webhooks;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::state::AppState;

pub use auth::AdminAuth;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(jobs::list).post(jobs::enqueue))
        .route("/jobs/stats", get(jobs::stats))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route("/tenants/{id}", get(tenants::show).delete(tenants::delete))
        .route("/tenants/{id}/suspend", post(tenants::suspend))
        .route("/tenants/{id}/activate", post(tenants::activate))
        .route("/tenants/{id}/retry", post(tenants::retry))
        .route(
            "/tenants/{id}/api-keys",
            get(tenants::list_keys).post(tenants::create_key),
        )
        .route(
            "/tenants/{id}/api-keys/{key_id}",
            delete(tenants::revoke_key),
        )
        .route("/tenants/{id}/crm", get(crm::show))
        .route("/crm", get(crm::instances))
        .route("/stats", get(tenants::stats))
        .route("/webhooks", get(webhooks::list))
        .route("/webhooks/{id}", get(webhooks::get))
        .route("/webhooks/{id}/replay", post(webhooks::replay))
        .route("/salla/stores", get(salla::list))
        .route("/salla/stores/{merchant_id}", get(salla::show))
}
