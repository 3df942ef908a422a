//! Operator-facing API under `/admin`, authenticated by `X-Admin-Key`.

mod auth;
mod jobs;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub use auth::AdminAuth;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(jobs::list).post(jobs::enqueue))
        .route("/jobs/stats", get(jobs::stats))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
}
