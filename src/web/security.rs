//! The headers of every app page (`/salla/embedded`, `/app...`, `/sso`): a Content-Security-Policy that allows
//! our own files only (no inline script, no eval) and lets Salla's dashboard frame the app
//! (`frame-ancestors` = `app.frame_ancestors`), `Referrer-Policy: no-referrer` (the shell's URL carries
//! Salla's token), `X-Content-Type-Options: nosniff`, and never `X-Frame-Options` (it would forbid the frame).
//!
//! Pages that load clerk-js (`/sso`, and `/app` when it shows Clerk's sign-in) get the Clerk variant: the
//! instance's Frontend API origin for scripts and requests, Clerk's image host, and inline styles (clerk-js
//! injects its CSS; styles cannot run code).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::Config;

/// The policies, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Policies {
    pages: HeaderValue,
    clerk: Option<HeaderValue>,
    sso: Option<HeaderValue>,
}

/// Marks a response whose page loads clerk-js (set by the handler, read by [`security_headers`]).
#[derive(Debug, Clone, Copy)]
pub struct UsesClerk;

impl Policies {
    pub fn new(config: &Config) -> Arc<Self> {
        let ancestors = config.app.frame_ancestors.join(" ");
        let base = "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'";
        let pages = format!(
            "{base}; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
             connect-src 'self'; frame-ancestors {ancestors}"
        );
        let clerk_policy = |ancestors: &str| {
            super::shell::frontend_api(&config.clerk.publishable_key).map(|fapi| {
                format!(
                    "{base}; script-src 'self' https://{fapi}; connect-src 'self' https://{fapi}; \
                     style-src 'self' 'unsafe-inline'; img-src 'self' data: https://img.clerk.com; \
                     font-src 'self'; worker-src 'self' blob:; frame-ancestors {ancestors}"
                )
            })
        };
        let header = |text: String| HeaderValue::from_str(&text).ok();
        Arc::new(Self {
            // Validated origins only (config/app.rs), so this always parses; 'none' framing if it ever did not.
            pages: header(pages).unwrap_or_else(|| {
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
            }),
            clerk: clerk_policy(&ancestors).and_then(header),
            // The sign-in page itself is never framed.
            sso: clerk_policy("'none'").and_then(header),
        })
    }
}

/// Adds the headers above to every response of the app's routes.
pub async fn security_headers(
    State(policies): State<Arc<Policies>>,
    request: Request,
    next: Next,
) -> Response {
    let is_sso = request.uri().path() == "/sso";
    let mut response = next.run(request).await;
    let uses_clerk = response.extensions().get::<UsesClerk>().is_some();
    let policy = match (is_sso, uses_clerk) {
        (true, _) => policies.sso.clone(),
        (false, true) => policies.clerk.clone(),
        (false, false) => None,
    }
    .unwrap_or_else(|| policies.pages.clone());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.remove(header::X_FRAME_OPTIONS);
    response
}
