//! Salla's embedded-token introspection (`POST {embedded.introspect_url}`, header `S-Source: <app id>`): the
//! only thing that makes the page's `token` query parameter mean anything. Salla answers
//! `{"status":200,"success":true,"data":{"merchant_id":…,"user_id":…,"exp":"<ISO-8601>"}}` (ids as numbers or
//! strings), or 401 `{"success":false,"error":{"message":"Decryption failed","code":0}}`.
//!
//! One timeout per attempt, bounded retries with the outbound backoff on 5xx, 429 (`Retry-After`, up to
//! `embedded.max_retry_after_secs`) and transport errors; 401/403/422 are final answers. The token is sent in
//! the body only and never logged (nor is the body).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::EmbeddedConfig;
use crate::outbound::{ClientError, Failure, RetryPolicy, retry_after};
use crate::tenancy::MerchantId;

/// What Salla vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// The store.
    pub merchant: MerchantId,
    /// The dashboard user who opened the page (owner or staff).
    pub user_id: i64,
    pub exp: OffsetDateTime,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IntrospectError {
    /// The token expired (its `exp` is past, or Salla says so): the page gets a new one.
    #[error("the Salla token has expired")]
    Expired,
    /// Salla refused the token.
    #[error("Salla refused the token: {0}")]
    Invalid(String),
    /// Salla refused our app id (`S-Source`).
    #[error("Salla refused the app id: {0}")]
    WrongApp(String),
    /// Salla could not be asked (timeouts, 5xx, throttling beyond our patience, an unreadable answer).
    #[error("Salla's introspection is unavailable: {0}")]
    Unavailable(String),
}

/// The introspection client (cheap to clone).
#[derive(Clone)]
pub struct Introspector {
    client: reqwest::Client,
    url: String,
    app_id: String,
    env: String,
    retry: RetryPolicy,
}

impl Introspector {
    pub fn new(config: &EmbeddedConfig) -> Result<Self, ClientError> {
        Ok(Self {
            client: crate::outbound::client(
                "Salla introspection",
                Duration::from_secs(config.request_timeout_secs),
            )?,
            url: config.introspect_url.clone(),
            app_id: config.app_id.trim().to_owned(),
            env: config.env.clone(),
            retry: RetryPolicy::new(
                config.max_retries,
                Duration::from_secs(config.max_retry_after_secs),
            ),
        })
    }

    /// Asks Salla what `token` stands for.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, IntrospectError> {
        let body = json!({
            "token": token,
            "env": self.env,
            "iss": "merchant-dashboard",
            "subject": "embedded-page",
        });
        let started = std::time::Instant::now();
        let result =
            crate::outbound::with_retries(&self.retry, "salla_introspect", |_| self.attempt(&body))
                .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(IntrospectError::Expired) => "expired",
            Err(IntrospectError::Invalid(_)) => "invalid",
            Err(IntrospectError::WrongApp(_)) => "wrong_app",
            Err(IntrospectError::Unavailable(_)) => "unavailable",
        };
        metrics::counter!("upstream_requests_total", "upstream" => "salla_introspect", "outcome" => outcome)
            .increment(1);
        metrics::histogram!("upstream_request_duration_seconds", "upstream" => "salla_introspect")
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn attempt(&self, body: &Value) -> Result<Introspection, Failure<IntrospectError>> {
        let response = self
            .client
            .post(&self.url)
            .header("S-Source", &self.app_id)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send()
            .await
            .map_err(|error| Failure::Retryable {
                error: IntrospectError::Unavailable(error.without_url().to_string()),
                retry_after: None,
            })?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = response.text().await.map_err(|error| Failure::Retryable {
            error: IntrospectError::Unavailable(error.without_url().to_string()),
            retry_after: None,
        })?;
        let answer = answer(status, &text, OffsetDateTime::now_utc());
        match answer {
            Err(error @ IntrospectError::Unavailable(_))
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(Failure::Retryable {
                    error,
                    retry_after: wait,
                })
            }
            Err(error) => Err(Failure::Final(error)),
            Ok(found) => Ok(found),
        }
    }
}

/// Reads one answer of Salla (pure, for tests).
fn answer(
    status: StatusCode,
    text: &str,
    now: OffsetDateTime,
) -> Result<Introspection, IntrospectError> {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let message = body["error"]["message"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect::<String>();
    match status {
        s if s.is_success() => {
            if body["success"] == Value::Bool(false) {
                return Err(refusal(&message));
            }
            let data = &body["data"];
            let merchant = id(&data["merchant_id"]).ok_or_else(|| {
                IntrospectError::Unavailable("the answer has no merchant_id".into())
            })?;
            let user_id = id(&data["user_id"])
                .ok_or_else(|| IntrospectError::Unavailable("the answer has no user_id".into()))?;
            let exp = expiry(&data["exp"]).ok_or_else(|| {
                IntrospectError::Unavailable("the answer has no readable exp".into())
            })?;
            if exp <= now {
                return Err(IntrospectError::Expired);
            }
            Ok(Introspection {
                merchant: MerchantId::new(merchant),
                user_id,
                exp,
            })
        }
        StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            Err(refusal(&message))
        }
        StatusCode::FORBIDDEN => Err(IntrospectError::WrongApp(message)),
        StatusCode::TOO_MANY_REQUESTS => {
            Err(IntrospectError::Unavailable("throttled (429)".into()))
        }
        s if s.is_server_error() => Err(IntrospectError::Unavailable(format!(
            "HTTP {}: {message}",
            s.as_u16()
        ))),
        s => Err(IntrospectError::Unavailable(format!(
            "unexpected HTTP {}: {message}",
            s.as_u16()
        ))),
    }
}

/// A refused token: expired when Salla says so, else invalid.
fn refusal(message: &str) -> IntrospectError {
    if message.to_ascii_lowercase().contains("expire") {
        IntrospectError::Expired
    } else {
        IntrospectError::Invalid(if message.is_empty() {
            "refused".into()
        } else {
            message.to_owned()
        })
    }
}

/// A positive id, as a number or a string of digits.
fn id(value: &Value) -> Option<i64> {
    let id = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (id > 0).then_some(id)
}

/// `exp`: ISO-8601 (RFC 3339), or unix seconds.
fn expiry(value: &Value) -> Option<OffsetDateTime> {
    match value {
        Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339).ok().or_else(|| {
            s.trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| OffsetDateTime::from_unix_timestamp(n).ok())
        }),
        Value::Number(n) => OffsetDateTime::from_unix_timestamp(n.as_i64()?).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-12-02T12:00:00Z", &Rfc3339).unwrap()
    }

    #[test]
    fn success_reads_ids_as_numbers_or_strings() {
        let ok = answer(
            StatusCode::OK,
            r#"{"status":200,"success":true,"data":{"merchant_id":2847769313,"user_id":"77","exp":"2026-12-02T12:10:00.000000Z"}}"#,
            now(),
        )
        .unwrap();
        assert_eq!(ok.merchant, MerchantId::new(2_847_769_313));
        assert_eq!(ok.user_id, 77);
        let strings = answer(
            StatusCode::OK,
            r#"{"status":200,"success":true,"data":{"merchant_id":"12","user_id":34,"exp":"2026-12-02T15:10:00+03:00"}}"#,
            now(),
        )
        .unwrap();
        assert_eq!(
            (strings.merchant, strings.user_id),
            (MerchantId::new(12), 34)
        );
    }

    #[test]
    fn past_exp_and_refusals_map_to_their_reasons() {
        let past = r#"{"status":200,"success":true,"data":{"merchant_id":1,"user_id":2,"exp":"2026-12-02T11:59:59Z"}}"#;
        assert_eq!(
            answer(StatusCode::OK, past, now()),
            Err(IntrospectError::Expired)
        );
        let decryption =
            r#"{"status":401,"success":false,"error":{"message":"Decryption failed","code":0}}"#;
        assert_eq!(
            answer(StatusCode::UNAUTHORIZED, decryption, now()),
            Err(IntrospectError::Invalid("Decryption failed".into()))
        );
        let expired = r#"{"success":false,"error":{"message":"Token has expired","code":0}}"#;
        assert_eq!(
            answer(StatusCode::UNAUTHORIZED, expired, now()),
            Err(IntrospectError::Expired)
        );
        assert!(matches!(
            answer(StatusCode::UNPROCESSABLE_ENTITY, "{}", now()),
            Err(IntrospectError::Invalid(_))
        ));
        assert!(matches!(
            answer(StatusCode::FORBIDDEN, "{}", now()),
            Err(IntrospectError::WrongApp(_))
        ));
        assert!(matches!(
            answer(StatusCode::BAD_GATEWAY, "<html>", now()),
            Err(IntrospectError::Unavailable(_))
        ));
        assert!(matches!(
            answer(
                StatusCode::OK,
                r#"{"success":true,"data":{"merchant_id":0,"user_id":1,"exp":"x"}}"#,
                now()
            ),
            Err(IntrospectError::Unavailable(_))
        ));
    }
}
