//! The proxy's own answers (as opposed to Twenty's, which pass through): each a status and a stable code,
//! rendered into the usual JSON error envelope by `http::envelope`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ErrorBody;

/// How long a client is told to wait while the workspace waits for capacity (the capacity sweep runs every
/// minute).
const WAITING_RETRY_AFTER_SECS: u64 = 60;

#[derive(Debug)]
pub enum ProxyError {
    NotConfigured,
    WorkspaceNotReady,
    /// No Twenty instance had room for the tenant's workspace yet (`crm::placement`).
    WaitingForCapacity,
    Forbidden(String),
    /// The caller's role does not allow the operation (a viewer's mutation): `TenantContext::require`'s message.
    InsufficientRole(String),
    InvalidRequest(String),
    MethodNotAllowed,
    UnsupportedMediaType,
    TooLarge(usize),
    Timeout,
    Unavailable,
    CredentialsRejected,
    /// Something of ours failed (database, a key that does not open); logged where it happens.
    Internal,
}

impl ProxyError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::NotConfigured => (
                StatusCode::NOT_IMPLEMENTED,
                "crm_not_configured",
                "The CRM is not configured on this server.".into(),
            ),
            Self::WorkspaceNotReady => (
                StatusCode::CONFLICT,
                "crm_workspace_not_ready",
                "The organization's CRM workspace is not set up yet; try again later.".into(),
            ),
            Self::WaitingForCapacity => (
                StatusCode::SERVICE_UNAVAILABLE,
                "crm_unavailable",
                "The organization's CRM is waiting for capacity: every CRM server is at its workspace limit. \
                 It is set up automatically as soon as one has room; everything else works meanwhile."
                    .into(),
            ),
            Self::Forbidden(message) => (
                StatusCode::FORBIDDEN,
                "crm_operation_forbidden",
                message.clone(),
            ),
            Self::InsufficientRole(message) => (
                StatusCode::FORBIDDEN,
                "insufficient_role",
                message.clone(),
            ),
            Self::InvalidRequest(message) => (
                StatusCode::BAD_REQUEST,
                "crm_invalid_request",
                message.clone(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "/crm/graphql accepts POST only.".into(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "/crm/graphql accepts JSON bodies only (application/json).".into(),
            ),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body is larger than {limit} bytes."),
            ),
            Self::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "crm_timeout",
                "The CRM did not answer in time.".into(),
            ),
            Self::Unavailable => (
                StatusCode::BAD_GATEWAY,
                "crm_unavailable",
                "The CRM cannot be reached right now; try again shortly.".into(),
            ),
            Self::CredentialsRejected => (
                StatusCode::BAD_GATEWAY,
                "crm_unavailable",
                // Logged as an error with the tenant id (crm/proxy/mod.rs); no notice is sent for it.
                "The CRM refused this organization's workspace credentials; the error is logged for the \
                 operators."
                    .into(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong on our side; it has been logged.".into(),
            ),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = status.into_response();
        let retry_after = match &self {
            Self::WaitingForCapacity => Some(WAITING_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        let details = matches!(self, Self::WaitingForCapacity)
            .then(|| serde_json::json!({ "reason": "waiting_for_capacity" }));
        response.extensions_mut().insert(ErrorBody {
            code: code.into(),
            message,
            details,
            provisioning: None,
        });
        response
    }
}
