//! The page a person sees when the app is unavailable for maintenance: a browser that loads an `/app` page
//! while global maintenance is on (503 `maintenance`), or while its organization is read-only and the page
//! would write (503 `tenant_read_only`), gets a page in its language instead of the JSON envelope, with the
//! same status and `Retry-After` (and reloads itself after that long). htmx requests keep the envelope: the
//! screen shows its message in a line (assets/app.js, in the page's language).

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::View;
use crate::error::ErrorBody;
use crate::state::AppState;

/// Marks a response that is already a page, so the JSON envelope leaves it alone (`http/envelope.rs`).
#[derive(Debug, Clone, Copy)]
pub struct RenderedPage;

#[derive(Template)]
#[template(path = "unavailable.html")]
struct UnavailablePage {
    v: View,
    read_only: bool,
    /// The operator's message (global maintenance) or the reason (read-only); shown as given.
    detail: String,
    /// Seconds before the page reloads itself; 0: never (read-only lasts until an operator lifts it).
    reload_secs: u64,
}

/// Middleware around the merchant app's pages.
pub async fn unavailable_page(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let wants_page = parts.uri.path().starts_with("/app")
        && parts.headers.get("hx-request").is_none()
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    let view = wants_page.then(|| View::from_parts(&parts, &state.config().app));
    let response = next.run(Request::from_parts(parts, body)).await;
    let Some(view) = view else {
        return response;
    };
    let Some(error) = response.extensions().get::<ErrorBody>() else {
        return response;
    };
    let read_only = match error.code.as_str() {
        "maintenance" => false,
        "tenant_read_only" => true,
        _ => return response,
    };
    let detail = if read_only {
        detail_of(error, "reason").unwrap_or_default()
    } else {
        state.maintenance().current().await.message.clone()
    };
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let page = UnavailablePage {
        reload_secs: if read_only {
            0
        } else {
            retry_after
                .as_ref()
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(60)
        },
        v: view,
        read_only,
        detail,
    };
    let Ok(html) = super::render(&page) else {
        return response;
    };
    let mut page = (response.status(), Html(html)).into_response();
    if let Some(retry_after) = retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, retry_after);
    }
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page.extensions_mut().insert(RenderedPage);
    page
}

fn detail_of(error: &ErrorBody, field: &str) -> Option<String> {
    error
        .details
        .as_ref()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}
