//! Salla's OAuth server (`{salla.accounts_url}` = `https://accounts.salla.sa`; shared/reference/salla.md §1.5,
//! §2.6, §3.1): the refresh grant and user info.
//!
//! A refresh token is single-use and rotating: spending one twice revokes the store's tokens and forces a
//! reinstall. So [`AccountsApi::refresh`] never retries, and tells apart the failures where Salla cannot have
//! rotated the tokens ([`RefreshError::Unavailable`]: retry later with the same refresh token) from those where
//! it may have ([`RefreshError::Ambiguous`]: re-read the stored tokens first, never resend blindly).

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;

use super::api::{self, Outcome, SallaApiError, lenient};
use crate::config::{SallaConfig, Secret};
use crate::outbound::RetryPolicy;
use crate::tenancy::MerchantId;

/// Above this many seconds (~10 years) an `expires` value cannot be a lifetime: it is an absolute unix time
/// (reference §2.6, the league/oauth2-client rule).
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// Documented access-token lifetime, assumed when a token answer says nothing usable about expiry.
const DOCUMENTED_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// A fresh token pair. `Debug` never prints the tokens.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: OffsetDateTime,
    /// Space-separated scopes.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token was refused (`invalid_grant`: reused, expired or revoked). Salla has revoked the
    /// store's tokens; only a reinstall brings new ones.
    #[error("Salla refused the refresh token (invalid_grant); the app must be reinstalled")]
    InvalidGrant,
    /// The request may have reached Salla and rotated the tokens (timeout, connection lost, gateway error,
    /// unreadable success answer). Re-read the stored tokens before anything else; never resend blindly.
    #[error("token refresh may or may not have happened: {0}")]
    Ambiguous(String),
    /// Salla did not accept the request (429, 500, 503, connection refused): the same refresh token is still
    /// good; retry later.
    #[error("Salla's token endpoint is unavailable (retry after {retry_after:?})")]
    Unavailable { retry_after: Option<Duration> },
    #[error("token refresh failed: {0}")]
    Other(String),
}

/// `GET /oauth2/user/info` `data` (fixture api-user-info.json). The user is not always the store owner.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    #[serde(deserialize_with = "lenient::u64")]
    pub id: u64,
    /// Empty when Salla omits it (as every text field here that is not an `Option`).
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub mobile: Option<String>,
    /// `user` or `team`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub created_at: Option<String>,
    pub merchant: UserMerchant,
    #[serde(default)]
    pub context: Option<UserContext>,
}

/// The store of [`UserInfo`]; `id` is the merchant id.
#[derive(Debug, Clone, Deserialize)]
pub struct UserMerchant {
    #[serde(deserialize_with = "lenient::merchant_id")]
    pub id: MerchantId,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub avatar: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub store_location: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub plan: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub tax_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub commercial_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub created_at: Option<String>,
}

/// Optional `context` of user info (as `oauth2-merchant` models it).
#[derive(Debug, Clone, Deserialize)]
pub struct UserContext {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub exp: Option<u64>,
}

/// A token endpoint answer; `expires` or `expires_in`, numbers or strings.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    expires: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    scope: Option<String>,
}

/// The OAuth server client (cheap to clone).
#[derive(Clone)]
pub struct AccountsApi {
    client: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: Secret,
    retry: RetryPolicy,
}

impl AccountsApi {
    /// Fails only when the HTTP client cannot be built (no TLS roots on the machine).
    pub fn new(config: &SallaConfig) -> Result<Self, crate::outbound::ClientError> {
        Ok(Self {
            client: api::http_client(config)?,
            base: config.accounts_url.trim_end_matches('/').to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            retry: api::retry_policy(config),
        })
    }

    /// Spends `refresh_token` for a new pair (`POST /oauth2/token`, `grant_type=refresh_token`). Exactly one
    /// request: call it under the store's lock, and see [`RefreshError`] for what each failure allows.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, RefreshError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .finish();
        let started = Instant::now();
        let result = self.send_refresh(form).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(RefreshError::InvalidGrant) => "invalid_grant",
            Err(RefreshError::Ambiguous(_)) => "ambiguous",
            Err(RefreshError::Unavailable { .. }) => "unavailable",
            Err(RefreshError::Other(_)) => "error",
        };
        api::record("oauth_token", outcome, started);
        result
    }

    async fn send_refresh(&self, form: String) -> Result<TokenSet, RefreshError> {
        let response = self
            .client
            .post(format!("{}/oauth2/token", self.base))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|error| {
                if error.is_connect() {
                    // Refused or unresolved: Salla never saw the request.
                    RefreshError::Unavailable { retry_after: None }
                } else {
                    RefreshError::Ambiguous(error.without_url().to_string())
                }
            })?;
        let status = response.status();
        let retry_after = crate::outbound::retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|error| RefreshError::Ambiguous(error.without_url().to_string()))?;
        if status.is_success() {
            let answer: TokenResponse = serde_json::from_str(&text).map_err(|error| {
                RefreshError::Ambiguous(format!("unreadable token answer: {error}"))
            })?;
            return Ok(token_set(answer, OffsetDateTime::now_utc()));
        }
        let message = api::error_message(&text);
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED if is_invalid_grant(&text) => {
                Err(RefreshError::InvalidGrant)
            }
            // Throttled: the request was not processed.
            StatusCode::TOO_MANY_REQUESTS => Err(RefreshError::Unavailable { retry_after }),
            // Any 5xx is ambiguous like a timeout: the token server (or a gateway in front of it) may have
            // rotated the tokens before failing. The stored tokens are re-read before any further refresh.
            s if s.is_server_error() => Err(RefreshError::Ambiguous(format!(
                "HTTP {}: {message}",
                s.as_u16()
            ))),
            s => Err(RefreshError::Other(format!(
                "HTTP {}: {message}",
                s.as_u16()
            ))),
        }
    }

    /// The user behind `access_token` and their store (`GET /oauth2/user/info`); idempotent, so retried
    /// boundedly on 5xx, timeouts and 429 (when `Retry-After` is short enough).
    pub async fn user_info(&self, access_token: &str) -> Result<UserInfo, SallaApiError> {
        let url = format!("{}/oauth2/user/info", self.base);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = self
                .client
                .get(&url)
                .bearer_auth(access_token)
                .header(reqwest::header::ACCEPT, "application/json");
            let (outcome, _) = api::exchange(request, "user_info", attempt, false).await;
            match outcome {
                Outcome::Done(body) => return parse_user_info(body),
                Outcome::InvalidToken(message) => return Err(SallaApiError::Unauthorized(message)),
                Outcome::Retry {
                    error,
                    mut wait,
                    throttled,
                    ..
                } => {
                    if throttled && wait > self.retry.max_retry_after {
                        return Err(SallaApiError::RateLimited { retry_after: wait });
                    }
                    if attempt > self.retry.max_retries {
                        return Err(error);
                    }
                    if throttled {
                        wait = crate::outbound::with_jitter(wait);
                    }
                    tracing::warn!(attempt, error = %error, retry_in_ms = wait.as_millis() as u64, "Salla user info failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Outcome::Fail(error) => return Err(error),
            }
        }
    }
}

/// `{"error":"invalid_grant",…}` bare, or inside Salla's envelope.
fn is_invalid_grant(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|body| {
        body["error"].as_str() == Some("invalid_grant")
            || body["error"]["code"].as_str() == Some("invalid_grant")
    })
}

fn token_set(answer: TokenResponse, now: OffsetDateTime) -> TokenSet {
    let expires_at = answer
        .expires_in
        .or(answer.expires)
        .and_then(|value| expires_at(value, now))
        .unwrap_or_else(|| {
            tracing::warn!(
                "Salla token answer without a usable expiry; assuming the documented 14 days"
            );
            now + DOCUMENTED_LIFETIME
        });
    TokenSet {
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        expires_at,
        scope: answer.scope,
    }
}

/// When a token with `expires`/`expires_in` = `value` expires: a lifetime in seconds from `now`, or, above ~10
/// years of seconds, an absolute unix time (the `app.store.authorize` webhook's `expires`). `None` when the
/// value is out of range.
pub fn expires_at(value: u64, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if value > MAX_LIFETIME_SECS {
        OffsetDateTime::from_unix_timestamp(i64::try_from(value).ok()?).ok()
    } else {
        now.checked_add(time::Duration::seconds(i64::try_from(value).ok()?))
    }
}

/// User info as Salla's documentation and SDKs show it (`{status, success, data: {…}}`) or as it has been
/// observed live (the user at the top level): `data` when it is an object, else the body itself.
fn parse_user_info(mut body: serde_json::Value) -> Result<UserInfo, SallaApiError> {
    let user = match body.get_mut("data") {
        Some(data) if data.is_object() => data.take(),
        _ => body,
    };
    serde_json::from_value(user).map_err(|e| SallaApiError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn small_expiry_values_are_lifetimes_and_large_ones_absolute_times() {
        assert_eq!(
            expires_at(1_209_599, now()),
            Some(now() + time::Duration::seconds(1_209_599))
        );
        assert_eq!(
            expires_at(1_634_819_484, now()),
            Some(OffsetDateTime::from_unix_timestamp(1_634_819_484).unwrap())
        );
        assert_eq!(expires_at(u64::MAX, now()), None);
    }

    #[test]
    fn refresh_and_code_answers_parse_with_expires_in_or_expires() {
        // shared/fixtures/salla/oauth-token-response.refresh_token.json (scope shortened).
        let refresh: TokenResponse = serde_json::from_str(
            r#"{"access_token":"ory_at_x","expires_in":1209599,"refresh_token":"ory_rt_y","scope":"settings.read offline_access","token_type":"bearer"}"#,
        )
        .unwrap();
        let set = token_set(refresh, now());
        assert_eq!(set.expires_at, now() + time::Duration::seconds(1_209_599));
        assert_eq!(set.scope.as_deref(), Some("settings.read offline_access"));
        assert_eq!(
            (set.access_token.as_str(), set.refresh_token.as_str()),
            ("ory_at_x", "ory_rt_y")
        );

        let code: TokenResponse = serde_json::from_str(
            r#"{"access_token":"a","expires":"1209600","refresh_token":"r","token_type":"bearer"}"#,
        )
        .unwrap();
        assert_eq!(
            token_set(code, now()).expires_at,
            now() + time::Duration::seconds(1_209_600)
        );

        let none: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","refresh_token":"r"}"#).unwrap();
        assert_eq!(
            token_set(none, now()).expires_at,
            now() + DOCUMENTED_LIFETIME
        );
    }

    #[test]
    fn token_sets_never_print_their_tokens() {
        let set = TokenSet {
            access_token: "ory_at_secret_access".into(),
            refresh_token: "ory_rt_secret_refresh".into(),
            expires_at: now(),
            scope: Some("offline_access".into()),
        };
        let printed = format!("{set:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("offline_access"));
    }

    #[test]
    fn invalid_grant_is_recognised_bare_or_enveloped() {
        // shared/fixtures/salla/oauth-error-invalid-grant.json (description shortened).
        assert!(is_invalid_grant(
            r#"{"error":"invalid_grant","error_description":"The provided authorization grant … is invalid"}"#
        ));
        assert!(is_invalid_grant(
            r#"{"status":400,"success":false,"error":{"code":"invalid_grant","message":"x"}}"#
        ));
        assert!(!is_invalid_grant(r#"{"error":"invalid_client"}"#));
        assert!(!is_invalid_grant("not json"));
    }

    #[test]
    fn user_info_is_read_with_and_without_the_data_envelope() {
        let user = serde_json::json!({ "id": 1771165749, "name": "Test User", "email": "t@example.sa",
            "merchant": { "id": 1803665367, "username": "dev-store", "name": "My Store", "plan": "special" } });
        let bare = parse_user_info(user.clone()).unwrap();
        let enveloped =
            parse_user_info(serde_json::json!({ "status": 200, "success": true, "data": user }))
                .unwrap();
        assert_eq!(bare.merchant.id, MerchantId::new(1_803_665_367));
        assert_eq!(enveloped.merchant.id, bare.merchant.id);
        assert!(parse_user_info(serde_json::json!({ "status": 200, "data": [] })).is_err());
    }

    #[test]
    fn user_info_reads_the_fixture_shape_with_optional_context() {
        // shared/fixtures/salla/api-user-info.json `data`.
        let info: UserInfo = serde_json::from_str(
            r#"{"id":1689171978,"name":"Test User","email":"test@gmail.com","mobile":"+96652318526","role":"user",
                "created_at":"2021-03-27 21:51:56",
                "merchant":{"id":847769313,"username":"User_name123","name":"User Name","avatar":"https://i.ibb.co/x.webp",
                  "store_location":"21.58,39.67","plan":"pro","status":"active","domain":"https://www.domain.com",
                  "tax_number":"424243241321234","commercial_number":3552100509,"created_at":"2021-12-31 12:59:59"}}"#,
        )
        .unwrap();
        assert_eq!(info.merchant.id, MerchantId::new(847_769_313));
        assert_eq!(info.merchant.plan.as_deref(), Some("pro"));
        assert_eq!(
            info.merchant.commercial_number.as_deref(),
            Some("3552100509")
        );
        assert!(info.context.is_none());

        let with_context: UserInfo = serde_json::from_str(
            r#"{"id":"1","mobile":966500000000,"merchant":{"id":"2"},"context":{"app":1234,"scope":"offline_access","exp":"1700000000"}}"#,
        )
        .unwrap();
        assert_eq!(with_context.mobile.as_deref(), Some("966500000000"));
        let context = with_context.context.unwrap();
        assert_eq!(context.exp, Some(1_700_000_000));
        assert_eq!(context.app.as_deref(), Some("1234"));
    }
}
