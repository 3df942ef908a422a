//! Why a Merchant API call failed, and whether it is worth trying again.

use std::time::Duration;

use super::access_tokens::AccessTokenError;

#[derive(Debug, thiserror::Error)]
pub enum SallaApiError {
    /// 401 that a fresh token did not cure (or that no token can: deleted or inactive user).
    #[error("Salla rejected the access token: {0}")]
    Unauthorized(String),
    /// Missing scope (401 "should have access to one of those scopes") or 403 not explained by throttling.
    #[error("Salla refused access: {0}")]
    Forbidden(String),
    #[error("not found in Salla")]
    NotFound,
    /// Throttled and the wait is longer than we hold a worker for (or retries ran out): try after
    /// `retry_after`.
    #[error("Salla rate limit: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Any other answer, with the message of Salla's error envelope.
    #[error("Salla answered {0}: {1}")]
    Upstream(u16, String),
    #[error("Salla did not answer in time")]
    Timeout,
    #[error("Salla unreachable: {0}")]
    Transport(String),
    #[error("unexpected Salla answer: {0}")]
    Decode(String),
    #[error(transparent)]
    Token(#[from] AccessTokenError),
}

impl SallaApiError {
    /// Whether the same call may succeed later (the job should retry rather than give up).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Timeout | Self::Transport(_) => true,
            Self::Upstream(status, _) => *status >= 500,
            Self::Token(AccessTokenError::Unavailable(_)) => true,
            _ => false,
        }
    }

    /// How long Salla asked us to wait, for a job's next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}
