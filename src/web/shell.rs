//! The pages that come before a screen: the Salla embedded shell (`GET /salla/embedded`), standalone sign-in
//! with a Clerk ticket (`GET /sso`), and the standalone entry (`GET /app`).
//!
//! The shell is public and static: it reads nothing of the request but `lang` and `theme` (never `token`,
//! which its script hands to `POST /api/embedded/session`; nothing here logs the query). Its script
//! (`assets/shell.js`) runs the Salla SDK flow described in `docs/merchant-app.md`.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;

use super::security::UsesClerk;
use super::{Layout, View, render};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;

/// The Frontend API host a publishable key names (`pk_test_<base64("clerk.example.com$")>`), as Clerk
/// documents for loading clerk-js by script tag; `None` for an empty or malformed key (then standalone
/// access is off).
pub fn frontend_api(publishable_key: &str) -> Option<String> {
    let encoded = publishable_key
        .strip_prefix("pk_live_")
        .or_else(|| publishable_key.strip_prefix("pk_test_"))?;
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let decoded = engine
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())?;
    let host = decoded.strip_suffix('$')?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !host.starts_with(['.', '-']);
    valid.then(|| host.to_owned())
}

/// The parts of a request the public pages read (no tenant).
fn view(parts_headers: &HeaderMap, uri: &Uri, state: &AppState) -> View {
    let mut request = axum::http::Request::builder()
        .uri(uri.clone())
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| axum::http::Request::new(()).into_parts().0);
    request.headers = parts_headers.clone();
    View::from_parts(&request, &state.config().app)
}

/// `GET /salla/embedded`: the shell Salla frames. The first screen loads once the app session exists.
pub async fn embedded(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut v = view(&headers, &uri, &state);
    v.htmx = false;
    v.embedded = true;
    let page = Layout {
        v: &v,
        screen: "home",
        title: "app.name",
        body: "",
        embedded: true,
    };
    let mut response = axum::response::Html(render(&page)?).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[derive(Template)]
#[template(path = "sso.html")]
struct SignIn<'a> {
    v: &'a View,
    /// `ticket`: sign in with `__clerk_ticket`; `sign_in`: mount Clerk's sign-in.
    mode: &'static str,
    script: String,
    publishable_key: &'a str,
}

fn sign_in_page(state: &AppState, v: &View, mode: &'static str) -> Result<Response, ApiError> {
    let key = &state.config().clerk.publishable_key;
    let Some(fapi) = frontend_api(key) else {
        return Err(standalone_disabled());
    };
    let page = SignIn {
        v,
        mode,
        // clerk-js from the instance's Frontend API, major version pinned, as Clerk documents for script tags.
        script: format!("https://{fapi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js"),
        publishable_key: key,
    };
    let mut response = axum::response::Html(render(&page)?).into_response();
    response.extensions_mut().insert(UsesClerk);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

fn standalone_disabled() -> ApiError {
    ApiError::not_found(
        "standalone_disabled",
        "Standalone access is not configured on this server.",
    )
}

/// `GET /sso?__clerk_ticket=…`: signs in with the ticket (clerk-js), then goes to `/app`. 404 unless
/// `clerk.publishable_key` is set.
pub async fn sso(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let v = view(&headers, &uri, &state);
    sign_in_page(&state, &v, "ticket")
}

/// `GET /app`: the standalone entry. With a session (Clerk's `__session` cookie, or any credential the
/// tenant routes take) it goes to Home; without one it shows Clerk's sign-in when standalone access is
/// configured, else the 401 of the credentials.
pub async fn entry(State(state): State<AppState>, mut parts: Parts) -> Result<Response, ApiError> {
    match TenantContext::from_request_parts(&mut parts, &state).await {
        Ok(_) => {
            let query = parts
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            Ok(Redirect::to(&format!("/app/home{query}")).into_response())
        }
        Err(error @ (ApiError::Unauthorized(_) | ApiError::AuthFailed { .. })) => {
            if frontend_api(&state.config().clerk.publishable_key).is_none() {
                return Err(error);
            }
            let v = View::from_parts(&parts, &state.config().app);
            sign_in_page(&state, &v, "sign_in")
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::frontend_api;
    use base64::Engine;

    #[test]
    fn the_frontend_api_comes_from_the_publishable_key() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let key = format!("pk_test_{}", encode("clerk.example.com$"));
        assert_eq!(frontend_api(&key).as_deref(), Some("clerk.example.com"));
        let key = format!("pk_live_{}", encode("clerk.wosool.sa$"));
        assert_eq!(frontend_api(&key).as_deref(), Some("clerk.wosool.sa"));
        assert_eq!(frontend_api(""), None);
        assert_eq!(frontend_api("sk_test_abc"), None);
        assert_eq!(
            frontend_api(&format!("pk_test_{}", encode("evil.com/x\"$"))),
            None
        );
        assert_eq!(
            frontend_api(&format!("pk_test_{}", encode("no-dollar.com"))),
            None
        );
    }
}
