//! The limiter at the HTTP edge: `RateLimit-*` headers on limited responses, and the per-IP route layers of
//! the public routes.
//!
//! A tenant's limit is checked inside `TenantContext`, which cannot touch the response; it leaves its decision
//! in a task-local slot that [`response_headers`] (around every route) opens before the handler runs and copies
//! onto the response after.

use std::cell::Cell;

use axum::extract::Request;
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Decision, IpRule};
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

tokio::task_local! {
    static DECISION: Cell<Option<Decision>>;
}

/// Leaves the request's decision for [`response_headers`]; nothing happens outside it (e.g. in unit tests).
pub(super) fn remember(decision: Decision) {
    let _ = DECISION.try_with(|slot| slot.set(Some(decision)));
}

/// Middleware around every route: copies the decision a tenant check left onto the response.
pub async fn response_headers(request: Request, next: Next) -> Response {
    DECISION
        .scope(Cell::new(None), async move {
            let mut response = next.run(request).await;
            if let Some(decision) = DECISION.with(Cell::get)
                && !response.headers().contains_key(RATELIMIT_LIMIT)
            {
                write_headers(&decision, response.headers_mut());
            }
            response
        })
        .await
}

/// `RateLimit-Limit` (the burst), `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the limit is whole
/// again), and `Retry-After` (whole seconds, at least 1) on a refusal.
pub fn write_headers(decision: &Decision, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(decision.reset_secs()));
    if !decision.allowed {
        headers.insert(RETRY_AFTER, HeaderValue::from(decision.retry_after_secs()));
    }
}

/// Route layer of the public routes limited per client IP (`Routes::at_ip` in `router.rs`): the register,
/// provisioning-status and session-minting routes. The state comes from the request's extensions (the router
/// inserts it), because the route layers are built before the state exists.
pub async fn per_ip(rule: IpRule, request: Request, next: Next) -> Response {
    let Some(state) = request.extensions().get::<AppState>().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let ClientIp(ip) = ClientIp::of(&parts, state.trusted_proxies());
    let request = Request::from_parts(parts, body);
    match state.rate_limiter().check_ip(rule, ip).await {
        Ok(decision) => {
            let mut response = next.run(request).await;
            if let Some(decision) = decision {
                write_headers(&decision, response.headers_mut());
            }
            response
        }
        Err(refused) => refused.into_response(),
    }
}
