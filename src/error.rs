//! The one API error type and its mapping to HTTP.
//!
//! Handlers return `Result<_, ApiError>`. `IntoResponse` only attaches an [`ErrorBody`] to the response; the
//! `http::envelope` middleware renders every error (ours, axum's 404/405, tower-http's 408/413, caught panics)
//! into `{"error":{"code","message","request_id"}}` in one place, where the request id is known.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad query string, invalid field).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    /// 401 with a specific code (e.g. `token_expired`), for clients that react to the reason.
    #[error("{message}")]
    AuthFailed { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but semantically invalid input.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        details: Option<serde_json::Value>,
    },
    /// Invalid fields of a request body: 422 `validation_failed` with `details.fields` naming each problem.
    #[error("invalid fields: {fields:?}")]
    Invalid {
        fields: std::collections::BTreeMap<String, String>,
    },
    /// Text that cannot be stored (a NUL, a noncharacter; see `http::text`): 422 `invalid_text` with
    /// `details.fields` naming each field (JSON pointer, parameter name).
    #[error("invalid text in: {fields:?}")]
    InvalidText {
        fields: std::collections::BTreeMap<String, String>,
    },
    /// The caller's tenant exists but cannot be served in its current status (DESIGN §5). `provisioning`
    /// is added next to `error` in the body while the tenant is being provisioned.
    #[error("{message}")]
    TenantUnavailable {
        status: StatusCode,
        code: &'static str,
        message: String,
        provisioning: Option<serde_json::Value>,
    },
    /// A rate limit refused the request (`crate::ratelimit`): 429 `rate_limited` naming the limit, with
    /// `Retry-After` and `RateLimit-*` headers.
    #[error("rate limited by the {limit} limit")]
    RateLimited {
        limit: &'static str,
        decision: crate::ratelimit::Decision,
    },
    /// Anything unexpected. The cause is logged; the client only learns that it happened.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::AuthFailed { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Invalid { .. } | Self::InvalidText { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TenantUnavailable { status, .. } => *status,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorBody {
        let (code, message) = match self {
            Self::BadRequest { code, message }
            | Self::Forbidden { code, message }
            | Self::NotFound { code, message }
            | Self::Conflict { code, message }
            | Self::Unprocessable { code, message }
            | Self::AuthFailed { code, message }
            | Self::Unavailable { code, message, .. }
            | Self::TenantUnavailable { code, message, .. } => (*code, message.clone()),
            Self::Invalid { fields } => (
                "validation_failed",
                format!(
                    "Invalid fields: {}.",
                    fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            Self::InvalidText { fields } => (
                "invalid_text",
                format!(
                    "Text that cannot be stored in: {}.",
                    fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            Self::RateLimited { limit, decision } => (
                "rate_limited",
                format!(
                    "Too many requests (the {limit} limit); retry in {} s.",
                    decision.retry_after_secs()
                ),
            ),
            Self::Unauthorized(m) => ("unauthorized", m.clone()),
            Self::PayloadTooLarge(m) => ("payload_too_large", m.clone()),
            Self::UnsupportedMediaType(m) => ("unsupported_media_type", m.clone()),
            Self::Internal(_) => (
                "internal_error",
                "Something went wrong on our side; it has been logged.".into(),
            ),
        };
        let details = match self {
            Self::Unavailable { details, .. } => details.clone(),
            Self::Invalid { fields } | Self::InvalidText { fields } => {
                Some(serde_json::json!({ "fields": fields }))
            }
            Self::RateLimited { limit, decision } => Some(serde_json::json!({
                "limit": limit,
                "retry_after_secs": decision.retry_after_secs(),
            })),
            // Also beside `error` (see `provisioning` below), for clients that read only the error object.
            Self::TenantUnavailable {
                provisioning: Some(provisioning),
                ..
            } => Some(serde_json::json!({ "provisioning": provisioning })),
            _ => None,
        };
        let provisioning = match self {
            Self::TenantUnavailable { provisioning, .. } => provisioning.clone(),
            _ => None,
        };
        ErrorBody {
            code: code.into(),
            message,
            details,
            provisioning,
        }
    }
}

/// Database errors a request can cause are client errors, decided here once (`crate::db::violation`);
/// the rest are ours.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        use crate::db::violation;
        if violation::is_unstorable_text(&error) {
            return Self::bad_request(
                "invalid_text",
                "The request holds text that cannot be stored (a NUL character, \\u0000).",
            );
        }
        if violation::unique_constraint(&error).is_some() {
            return Self::conflict("conflict", "This would duplicate an existing record.");
        }
        // The tenant database itself refuses writes while the tenant is being moved; a replica whose cached
        // tenant does not say read-only yet answers what an up-to-date one would.
        if violation::is_read_only(&error) {
            return Self::Unavailable {
                code: "tenant_read_only",
                message: "The organization is read-only for now: its data is being moved; try again shortly."
                    .into(),
                details: Some(serde_json::json!({ "retry_after_secs": 5 })),
            };
        }
        match &error {
            sqlx::Error::PoolTimedOut => Self::Unavailable {
                code: "database_busy",
                message: "The database is busy; try again shortly.".into(),
                details: None,
            },
            _ => Self::internal(error),
        }
    }
}

/// What an error response says, before the envelope adds the request id.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Rendered beside `error` (not inside it): `{"error": {...}, "provisioning": {...}}`.
    #[serde(skip)]
    pub provisioning: Option<serde_json::Value>,
}

impl ErrorBody {
    /// The body for an error response produced by something other than `ApiError` (axum's fallbacks,
    /// tower-http layers), chosen from the status alone.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "No such route."),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "This route does not accept that method.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "The request body is larger than allowed.",
            ),
            StatusCode::REQUEST_TIMEOUT => (
                "request_timeout",
                "The request took too long and was abandoned.",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported_media_type", "Unsupported content type.")
            }
            StatusCode::BAD_REQUEST => ("bad_request", "The request is malformed."),
            StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication is required."),
            StatusCode::FORBIDDEN => ("forbidden", "This is not allowed."),
            s if s.is_server_error() => (
                "internal_error",
                "Something went wrong on our side; it has been logged.",
            ),
            _ => ("error", "The request failed."),
        };
        Self {
            code: code.into(),
            message: message.into(),
            details: None,
            provisioning: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, "internal error");
        }
        let mut response = self.status().into_response();
        if let Self::RateLimited { decision, .. } = &self {
            crate::ratelimit::http::write_headers(decision, response.headers_mut());
        }
        // A 503 that says when to come back (maintenance, read-only) carries it as `Retry-After` too.
        if let Self::Unavailable {
            details: Some(details),
            ..
        } = &self
            && let Some(secs) = details
                .get("retry_after_secs")
                .and_then(serde_json::Value::as_u64)
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response.extensions_mut().insert(self.body());
        response
    }
}

impl From<crate::tenancy::RegistryError> for ApiError {
    fn from(error: crate::tenancy::RegistryError) -> Self {
        use crate::tenancy::RegistryError as E;
        match error {
            E::NotFound => Self::not_found("tenant_not_found", "No such tenant."),
            E::IllegalTransition { from, to } => Self::conflict(
                "illegal_transition",
                format!("A {from} tenant cannot become {to}."),
            ),
            E::VersionConflict { .. } => Self::conflict(
                "version_conflict",
                "The tenant changed meanwhile; read it again and retry.",
            ),
            E::Taken { field } => {
                let code = match field {
                    "slug" => "slug_taken",
                    "clerk_org_id" => "clerk_org_taken",
                    "salla_merchant_id" => "salla_merchant_taken",
                    "domain" => "domain_taken",
                    _ => "conflict",
                };
                Self::conflict(code, format!("That {field} is already taken."))
            }
            E::Db(e) => e.into(),
        }
    }
}

impl From<crate::provisioning::ProvisionError> for ApiError {
    fn from(error: crate::provisioning::ProvisionError) -> Self {
        use crate::provisioning::ProvisionError as E;
        use crate::tenancy::servers::ServerError;
        match error {
            E::Registry(e) => e.into(),
            E::Db(e) => e.into(),
            E::Server(ServerError::UnknownServer(key)) => Self::unprocessable(
                "unknown_server",
                format!("No tenant server named {key:?} is configured."),
            ),
            other => Self::internal(other),
        }
    }
}

impl From<crate::tenancy::PoolError> for ApiError {
    fn from(error: crate::tenancy::PoolError) -> Self {
        match error {
            crate::tenancy::PoolError::BudgetExhausted(_) => Self::Unavailable {
                code: "tenant_capacity",
                message: "Too many tenant databases are busy right now; try again shortly.".into(),
                details: None,
            },
            other => Self::internal(other),
        }
    }
}

impl From<std::sync::Arc<crate::tenancy::SettingsError>> for ApiError {
    fn from(error: std::sync::Arc<crate::tenancy::SettingsError>) -> Self {
        use crate::tenancy::{PoolError, SettingsError};
        match &*error {
            SettingsError::Pool(PoolError::BudgetExhausted(wait)) => {
                PoolError::BudgetExhausted(*wait).into()
            }
            SettingsError::Db(sqlx::Error::PoolTimedOut) => sqlx::Error::PoolTimedOut.into(),
            other => Self::internal(other),
        }
    }
}
