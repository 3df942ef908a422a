//! One HTTP exchange with Salla, shared by the Salla clients: the HTTP client and retry bounds, sending a
//! request, classifying the answer (done, fresh token, retry, fail), its metrics, and error text.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::error::SallaApiError;
use crate::config::SallaConfig;
use crate::outbound::{self, ClientError, RetryPolicy};
use crate::salla::limits::{self, RateLimitHeaders};

/// Wait on a 429 without `Retry-After` (reference §4.1).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest error text kept from an answer that is not Salla's error envelope.
const MAX_ERROR_TEXT: usize = 200;

/// Retry bounds shared by the Salla clients.
pub(in crate::salla) fn retry_policy(config: &SallaConfig) -> RetryPolicy {
    RetryPolicy::new(
        config.max_retries,
        Duration::from_secs(config.max_retry_after_secs),
    )
}

/// The HTTP client of the Salla clients: the configured per-call timeout.
pub(in crate::salla) fn http_client(config: &SallaConfig) -> Result<reqwest::Client, ClientError> {
    outbound::client(
        "Salla",
        Duration::from_secs(config.request_timeout_secs.max(1)),
    )
}

/// What one HTTP exchange with Salla came to.
pub(in crate::salla) enum Outcome {
    /// A 2xx; its JSON body (`Null` when empty).
    Done(Value),
    /// 401 that a fresh access token may cure (reference §2.6 case 5).
    InvalidToken(String),
    /// Worth another attempt after `wait`. `throttled`: Salla asked us to slow down (429, abuse 403).
    /// `may_have_acted`: the request may have had its effect (only idempotent requests are retried then).
    Retry {
        error: SallaApiError,
        wait: Duration,
        throttled: bool,
        may_have_acted: bool,
    },
    Fail(SallaApiError),
}

/// Sends `request` once and classifies the answer; records `salla_api_requests_total{endpoint,outcome}` and
/// `salla_api_request_duration_seconds{endpoint}`. `attempt` (1-based) sizes the backoff; `after_throttle`
/// makes a 403 a back-off signal rather than a refusal.
pub(in crate::salla) async fn exchange(
    request: reqwest::RequestBuilder,
    endpoint: &'static str,
    attempt: u32,
    after_throttle: bool,
) -> (Outcome, Option<RateLimitHeaders>) {
    let started = Instant::now();
    let (outcome, headers) = match request.send().await {
        Err(error) => (transport_outcome(error, attempt), None),
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            match response.text().await {
                Err(error) => (transport_outcome(error, attempt), None),
                Ok(text) => (
                    classify(status, &headers, &text, attempt, after_throttle),
                    RateLimitHeaders::from_headers(&headers),
                ),
            }
        }
    };
    record(endpoint, outcome_label(&outcome), started);
    (outcome, headers)
}

/// Counts one call of `endpoint` and its latency.
pub(in crate::salla) fn record(endpoint: &'static str, outcome: &'static str, started: Instant) {
    metrics::counter!("salla_api_requests_total", "endpoint" => endpoint, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("salla_api_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done(_) => "ok",
        Outcome::InvalidToken(_) => "invalid_token",
        Outcome::Retry { error, .. } | Outcome::Fail(error) => error_label(error),
    }
}

fn error_label(error: &SallaApiError) -> &'static str {
    match error {
        SallaApiError::Unauthorized(_) => "unauthorized",
        SallaApiError::Forbidden(_) => "forbidden",
        SallaApiError::NotFound => "not_found",
        SallaApiError::RateLimited { .. } => "rate_limited",
        SallaApiError::Upstream(status, _) if *status >= 500 => "server_error",
        SallaApiError::Upstream(..) => "client_error",
        SallaApiError::Timeout => "timeout",
        SallaApiError::Transport(_) => "transport",
        SallaApiError::Decode(_) => "decode",
        SallaApiError::Token(_) => "token",
    }
}

fn transport_outcome(error: reqwest::Error, attempt: u32) -> Outcome {
    let wait = outbound::backoff(attempt);
    if error.is_timeout() {
        Outcome::Retry {
            error: SallaApiError::Timeout,
            wait,
            throttled: false,
            may_have_acted: true,
        }
    } else {
        // Refused or unresolved: Salla never saw the request.
        let may_have_acted = !error.is_connect();
        Outcome::Retry {
            error: SallaApiError::Transport(error.without_url().to_string()),
            wait,
            throttled: false,
            may_have_acted,
        }
    }
}

fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    text: &str,
    attempt: u32,
    after_throttle: bool,
) -> Outcome {
    if status.is_success() {
        if text.trim().is_empty() {
            return Outcome::Done(Value::Null);
        }
        return match serde_json::from_str(text) {
            Ok(value) => Outcome::Done(value),
            Err(error) => Outcome::Fail(SallaApiError::Decode(error.to_string())),
        };
    }
    let message = error_message(text);
    let wait = limits::throttle_wait(headers, DEFAULT_RETRY_AFTER);
    let throttled = |error| Outcome::Retry {
        error,
        wait,
        throttled: true,
        may_have_acted: false,
    };
    match status {
        StatusCode::UNAUTHORIZED => classify_unauthorized(message),
        StatusCode::FORBIDDEN if after_throttle => {
            throttled(SallaApiError::RateLimited { retry_after: wait })
        }
        StatusCode::FORBIDDEN => Outcome::Fail(SallaApiError::Forbidden(message)),
        StatusCode::NOT_FOUND => Outcome::Fail(SallaApiError::NotFound),
        StatusCode::TOO_MANY_REQUESTS => {
            throttled(SallaApiError::RateLimited { retry_after: wait })
        }
        s if s.is_server_error() => Outcome::Retry {
            error: SallaApiError::Upstream(s.as_u16(), message),
            wait: outbound::backoff(attempt),
            throttled: false,
            may_have_acted: true,
        },
        s => Outcome::Fail(SallaApiError::Upstream(s.as_u16(), message)),
    }
}

/// The 401 cases of reference §2.6: a missing scope is a permission problem and a deleted user is not cured
/// by a token; anything else ("The access token is invalid": expired, uninstalled or revoked; the inactive
/// user's Arabic message; an unreadable body) is worth one fresh token, and a second 401 ends the call.
fn classify_unauthorized(message: String) -> Outcome {
    let lower = message.to_lowercase();
    if lower.contains("scope") {
        Outcome::Fail(SallaApiError::Forbidden(message))
    } else if lower.contains("user is not exist") {
        Outcome::Fail(SallaApiError::Unauthorized(message))
    } else {
        Outcome::InvalidToken(message)
    }
}

/// Salla's error envelope `{status, success: false, error: {code, message}}` → "message"; a bare OAuth error
/// `{error, error_description}` → "error: description"; otherwise the start of the body.
pub(in crate::salla) fn error_message(text: &str) -> String {
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return truncated(text);
    };
    let error = &body["error"];
    if let Some(message) = error["message"].as_str() {
        return message.to_owned();
    }
    if let Some(code) = error.as_str() {
        return match body["error_description"].as_str() {
            Some(description) => format!("{code}: {description}"),
            None => code.to_owned(),
        };
    }
    if let Some(message) = body["message"].as_str() {
        return message.to_owned();
    }
    truncated(text)
}

pub(super) fn truncated(text: &str) -> String {
    text.trim().chars().take(MAX_ERROR_TEXT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_envelope_or_the_bare_oauth_error() {
        let envelope = r#"{"status":401,"success":false,"error":{"code":"Unauthorized","message":"The access token is invalid"}}"#;
        assert_eq!(error_message(envelope), "The access token is invalid");
        let bare = r#"{"error":"invalid_grant","error_description":"The provided authorization grant is invalid"}"#;
        assert_eq!(
            error_message(bare),
            "invalid_grant: The provided authorization grant is invalid"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn only_token_401s_are_worth_a_refresh() {
        let invalid = "The access token is invalid".to_owned();
        assert!(matches!(
            classify_unauthorized(invalid),
            Outcome::InvalidToken(_)
        ));
        assert!(matches!(
            classify_unauthorized(String::new()),
            Outcome::InvalidToken(_)
        ));
        let scope =
            "The access token should have access to one of those scopes: products.read_write"
                .to_owned();
        assert!(matches!(
            classify_unauthorized(scope),
            Outcome::Fail(SallaApiError::Forbidden(_))
        ));
        let deleted = "The User is not exists.".to_owned();
        assert!(matches!(
            classify_unauthorized(deleted),
            Outcome::Fail(SallaApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn throttling_answers_carry_the_wait_and_a_403_is_back_off_only_after_throttling() {
        let mut headers = reqwest::header::HeaderMap::new();
        let envelope = r#"{"status":429,"success":false,"error":{"code":"too_many_requests","message":"slow down"}}"#;
        let Outcome::Retry {
            wait,
            throttled: true,
            may_have_acted: false,
            ..
        } = classify(StatusCode::TOO_MANY_REQUESTS, &headers, envelope, 1, false)
        else {
            panic!("429 is a throttle");
        };
        assert_eq!(wait, DEFAULT_RETRY_AFTER);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        let Outcome::Retry { wait, .. } = classify(StatusCode::FORBIDDEN, &headers, "{}", 1, true)
        else {
            panic!("403 after 429 is a throttle");
        };
        assert_eq!(wait, Duration::from_secs(3));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &headers, "{}", 1, false),
            Outcome::Fail(SallaApiError::Forbidden(_))
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &headers, "", 1, false),
            Outcome::Retry {
                may_have_acted: true,
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::OK, &headers, "", 1, false),
            Outcome::Done(Value::Null)
        ));
        assert!(matches!(
            classify(StatusCode::OK, &headers, "{", 1, false),
            Outcome::Fail(SallaApiError::Decode(_))
        ));
    }
}
