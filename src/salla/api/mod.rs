//! Salla Merchant API client (`{salla.api_url}` = `https://api.salla.dev/admin/v2`; shared/reference/salla.md
//! §3): the four lists page by page, order details, store info and webhook registration.
//!
//! Every call goes through the store's rate limits ([`SallaLimits`]), takes its token from an
//! [`AccessTokens`] (a 401 "The access token is invalid" makes it ask for a fresh token once and try again),
//! and retries GETs a bounded number of times (`salla.max_retries`) on 5xx, timeouts, network errors and 429
//! (after `Retry-After`, default 60 s, when no longer than `salla.max_retry_after_secs`; a longer wait returns
//! [`SallaApiError::RateLimited`] so the job comes back later instead of holding a worker). A POST is retried
//! only when Salla cannot have acted on it (429, connection refused).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::limits::{self, RateLimitHeaders, SallaLimits};
use crate::config::SallaConfig;
use crate::outbound::{self, ClientError, RetryPolicy};

/// Wait on a 429 without `Retry-After` (reference §4.1).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest error text kept from an answer that is not Salla's error envelope.
const MAX_ERROR_TEXT: usize = 200;

/// A Salla store (merchant) id, as in webhooks' `merchant` and user-info `merchant.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MerchantId(pub u64);

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The lists the import walks (reference §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Products,
    Orders,
    Customers,
    AbandonedCarts,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Self::Products,
        Self::Orders,
        Self::Customers,
        Self::AbandonedCarts,
    ];

    /// Path of the list under the API base.
    pub fn path(self) -> &'static str {
        match self {
            Self::Products => "/products",
            Self::Orders => "/orders",
            Self::Customers => "/customers",
            Self::AbandonedCarts => "/carts/abandoned",
        }
    }

    /// Stable name (metrics `endpoint` label, logs, job payloads).
    pub fn name(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Orders => "orders",
            Self::Customers => "customers",
            Self::AbandonedCarts => "abandoned_carts",
        }
    }
}

/// One page of a list. Walk with `page = 1, 2, …` while [`Page::has_more`].
#[derive(Debug, Clone)]
pub struct Page {
    /// The items as Salla sent them (shapes drift: parse them leniently).
    pub items: Vec<Value>,
    pub current_page: u32,
    pub total_pages: u32,
    /// Items in the whole list, when Salla said.
    pub total: Option<u64>,
    pub per_page: u32,
}

impl Page {
    pub fn has_more(&self) -> bool {
        self.current_page < self.total_pages
    }
}

/// `GET /store/info` (reference §2.6): what we keep of it; every field but the id is optional.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreInfo {
    #[serde(deserialize_with = "lenient::u64")]
    pub id: u64,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    /// `basic`, `plus`, `pro` or `special`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub plan: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub entity: Option<String>,
    /// `demo`, `development` or `live`.
    #[serde(rename = "type", default, deserialize_with = "lenient::opt_string")]
    pub store_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub avatar: Option<String>,
}

/// Why no access token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// Salla revoked the store's tokens (refresh `invalid_grant`): nothing works until the merchant reinstalls.
    #[error("the store's Salla tokens are revoked; the app must be reinstalled")]
    Revoked,
    /// No usable token right now (storage unreachable, refresh unavailable or ambiguous): try again later.
    #[error("no Salla access token available: {0}")]
    Unavailable(String),
}

/// What [`AccessTokens`] methods return: a boxed future, so that the trait is object-safe.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send + 'a>>;

/// Where a call gets one store's access token. Calls take `&dyn AccessTokens` (one implementation is the
/// token store, tests have their own), hence boxed futures rather than `async fn`: implement with
/// `Box::pin(async move { … })`.
pub trait AccessTokens: Send + Sync {
    /// The store's current access token.
    fn access_token(&self) -> TokenFuture<'_>;

    /// Salla answered 401 "The access token is invalid" to `rejected`: return a token worth one more try — a
    /// newer one already stored (another worker refreshed), or a refreshed one. Called at most once per call.
    fn refresh_rejected<'a>(&'a self, rejected: &'a str) -> TokenFuture<'a>;
}

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
    Token(#[from] TokenError),
}

impl SallaApiError {
    /// Whether the same call may succeed later (the job should retry rather than give up).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Timeout | Self::Transport(_) => true,
            Self::Upstream(status, _) => *status >= 500,
            Self::Token(TokenError::Unavailable(_)) => true,
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

/// Retry bounds shared by the Salla clients.
pub(super) fn retry_policy(config: &SallaConfig) -> RetryPolicy {
    RetryPolicy::new(
        config.max_retries,
        Duration::from_secs(config.max_retry_after_secs),
    )
}

/// The HTTP client of the Salla clients: the configured per-call timeout.
pub(super) fn http_client(config: &SallaConfig) -> Result<reqwest::Client, ClientError> {
    outbound::client(
        "Salla",
        Duration::from_secs(config.request_timeout_secs.max(1)),
    )
}

/// What one HTTP exchange with Salla came to.
pub(super) enum Outcome {
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
pub(super) async fn exchange(
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
pub(super) fn record(endpoint: &'static str, outcome: &'static str, started: Instant) {
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

pub(super) fn error_label(error: &SallaApiError) -> &'static str {
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
pub(super) fn error_message(text: &str) -> String {
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

fn truncated(text: &str) -> String {
    text.trim().chars().take(MAX_ERROR_TEXT).collect()
}

/// Where a call goes and which limits it counts against.
#[derive(Debug, Clone, Copy)]
struct Endpoint {
    /// Metrics label: the resource, never the URL (ids would make labels unbounded).
    label: &'static str,
    /// Counts against the per-IP `/customers*` limit.
    customers: bool,
}

/// The Merchant API client (cheap to clone: one connection pool, shared limits).
#[derive(Clone)]
pub struct MerchantApi {
    client: reqwest::Client,
    base: String,
    per_page: u32,
    retry: RetryPolicy,
    limits: SallaLimits,
}

impl MerchantApi {
    /// Fails only when the HTTP client cannot be built (no TLS roots on the machine).
    pub fn new(config: &SallaConfig, limits: SallaLimits) -> Result<Self, ClientError> {
        Ok(Self {
            client: http_client(config)?,
            base: config.api_url.trim_end_matches('/').to_owned(),
            per_page: config.per_page,
            retry: retry_policy(config),
            limits,
        })
    }

    pub fn limits(&self) -> &SallaLimits {
        &self.limits
    }

    /// Page `page` (1-based) of `resource`, `salla.per_page` items per page.
    pub async fn list_page(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
        resource: Resource,
        page: u32,
    ) -> Result<Page, SallaApiError> {
        let page = page.max(1);
        let mut url = self.url(resource.path())?;
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("per_page", &self.per_page.to_string());
        let endpoint = Endpoint {
            label: resource.name(),
            customers: resource == Resource::Customers,
        };
        let body = self
            .call(store, tokens, endpoint, Method::GET, url, None)
            .await?;
        parse_page(body, page, self.per_page)
    }

    /// `GET /orders/{order_id}`: the full order (amounts, items, customer, `updated_at`), as Salla sent it.
    pub async fn order_details(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
        order_id: u64,
    ) -> Result<Value, SallaApiError> {
        let url = self.url(&format!("/orders/{order_id}"))?;
        let endpoint = Endpoint {
            label: "order_details",
            customers: false,
        };
        let body = self
            .call(store, tokens, endpoint, Method::GET, url, None)
            .await?;
        data(body)
    }

    /// `GET /store/info`; also seeds the store's rate limit from its plan.
    pub async fn store_info(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
    ) -> Result<StoreInfo, SallaApiError> {
        let url = self.url("/store/info")?;
        let endpoint = Endpoint {
            label: "store_info",
            customers: false,
        };
        let body = self
            .call(store, tokens, endpoint, Method::GET, url, None)
            .await?;
        let info: StoreInfo = serde_json::from_value(data(body)?)
            .map_err(|e| SallaApiError::Decode(e.to_string()))?;
        self.limits.set_plan(store, info.plan.as_deref());
        Ok(info)
    }

    /// `POST /webhooks/subscribe` (reference §3.4): deliveries of `event` to `url`, webhook version 2,
    /// authenticated with our own `secret`: the Token strategy with that secret, and the same value as an
    /// `Authorization` header of every delivery (Salla adds a registration's `headers` to each delivery, so
    /// the credential holds even where Salla ignores the strategy fields at registration and signs with a
    /// secret of its own). Salla updates the webhook already registered at `url` rather than adding one, so
    /// each event needs a URL of its own. Returns Salla's `data` (the webhook).
    pub async fn subscribe_webhook(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
        event: &str,
        url: &str,
        secret: &str,
    ) -> Result<Value, SallaApiError> {
        let body = json!({
            "name": format!("Wosool {event}"),
            "event": event,
            "url": url,
            "version": 2,
            "security_strategy": "token",
            "secret": secret,
            "headers": [{ "key": "Authorization", "value": secret }],
        });
        let endpoint = Endpoint {
            label: "webhooks_subscribe",
            customers: false,
        };
        let target = self.url("/webhooks/subscribe")?;
        let answer = self
            .call(store, tokens, endpoint, Method::POST, target, Some(&body))
            .await?;
        data(answer)
    }

    /// `GET /webhooks`: every webhook registered for the store (all pages).
    pub async fn list_webhooks(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
    ) -> Result<Vec<Value>, SallaApiError> {
        let endpoint = Endpoint {
            label: "webhooks_list",
            customers: false,
        };
        let mut all = Vec::new();
        for page in 1..=MAX_WEBHOOK_PAGES {
            let mut url = self.url("/webhooks")?;
            url.query_pairs_mut().append_pair("page", &page.to_string());
            let body = self
                .call(store, tokens, endpoint, Method::GET, url, None)
                .await?;
            let listed = parse_page(body, page, self.per_page)?;
            let more = listed.has_more();
            all.extend(listed.items);
            if !more {
                break;
            }
        }
        Ok(all)
    }

    /// `DELETE /webhooks/unsubscribe?id=…`: removes one webhook (by id: by URL would remove all at that URL).
    pub async fn unsubscribe_webhook(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
        id: u64,
    ) -> Result<(), SallaApiError> {
        let mut url = self.url("/webhooks/unsubscribe")?;
        url.query_pairs_mut().append_pair("id", &id.to_string());
        let endpoint = Endpoint {
            label: "webhooks_unsubscribe",
            customers: false,
        };
        self.call(store, tokens, endpoint, Method::DELETE, url, None)
            .await
            .map(drop)
    }

    fn url(&self, path: &str) -> Result<url::Url, SallaApiError> {
        url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| SallaApiError::Transport(format!("bad Salla API URL: {e}")))
    }

    /// One call: limits, token (refreshed once on an invalid-token 401), bounded retries.
    async fn call(
        &self,
        store: MerchantId,
        tokens: &dyn AccessTokens,
        endpoint: Endpoint,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<Value, SallaApiError> {
        let idempotent = method == Method::GET;
        let mut token = tokens.access_token().await?;
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            self.limits
                .acquire(store, endpoint.customers, self.retry.max_retry_after)
                .await
                .map_err(|retry_after| SallaApiError::RateLimited { retry_after })?;
            attempt += 1;
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(&token)
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let after_throttle = self.limits.recently_throttled(store);
            let (outcome, headers) =
                exchange(request, endpoint.label, attempt, after_throttle).await;
            if let Some(headers) = headers {
                self.limits.observe(store, &headers);
            }
            match outcome {
                Outcome::Done(value) => return Ok(value),
                Outcome::InvalidToken(message) if !refreshed => {
                    tracing::info!(%store, endpoint = endpoint.label, %message, "Salla rejected the access token; asking for a fresh one");
                    refreshed = true;
                    attempt -= 1;
                    token = tokens.refresh_rejected(&token).await?;
                }
                Outcome::InvalidToken(message) => return Err(SallaApiError::Unauthorized(message)),
                Outcome::Retry {
                    error,
                    wait,
                    throttled,
                    may_have_acted,
                } => {
                    if throttled {
                        // Every call for this store (or every /customers call) holds back, not only this one.
                        self.limits.throttled(store, endpoint.customers, wait);
                        if wait > self.retry.max_retry_after {
                            return Err(SallaApiError::RateLimited { retry_after: wait });
                        }
                    }
                    if attempt > self.retry.max_retries || (may_have_acted && !idempotent) {
                        return Err(error);
                    }
                    let wait = if throttled {
                        outbound::with_jitter(wait)
                    } else {
                        wait
                    };
                    tracing::warn!(%store, endpoint = endpoint.label, attempt, error = %error, retry_in_ms = wait.as_millis() as u64, "Salla call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Outcome::Fail(error) => return Err(error),
            }
        }
    }
}

/// Pages of `GET /webhooks` read at most (a store has a few dozen webhooks).
const MAX_WEBHOOK_PAGES: u32 = 20;

/// `data` of a success envelope (the whole body when there is no envelope).
fn data(mut body: Value) -> Result<Value, SallaApiError> {
    if let Some(data) = body.get_mut("data") {
        return Ok(data.take());
    }
    if body.is_object() {
        return Err(SallaApiError::Decode("answer without `data`".into()));
    }
    Ok(body)
}

/// A list answer: `data` (an array; `null` is empty) and `pagination {count, total, perPage, currentPage,
/// totalPages, links}` with numbers or numeric strings. Without pagination the answer is the only page.
fn parse_page(mut body: Value, requested: u32, per_page: u32) -> Result<Page, SallaApiError> {
    let items = match body.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(SallaApiError::Decode(format!(
                "list `data` is not an array: {}",
                truncated(&other.to_string())
            )));
        }
    };
    let pagination = body.get("pagination").filter(|p| p.is_object());
    let number = |key: &str| pagination.and_then(|p| lenient::as_u64(&p[key]));
    let current_page = number("currentPage").map_or(requested, saturating_u32);
    Ok(Page {
        items,
        current_page,
        total_pages: number("totalPages").map_or(current_page, saturating_u32),
        total: number("total"),
        per_page: number("perPage").map_or(per_page, saturating_u32),
    })
}

fn saturating_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Deserializers for Salla's drifting types (numbers that arrive as strings and the other way round).
pub(super) mod lenient {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// A non-negative integer from a number or a numeric string.
    pub fn as_u64(value: &Value) -> Option<u64> {
        match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let value = Value::deserialize(deserializer)?;
        as_u64(&value).ok_or_else(|| D::Error::custom(format!("expected an id, got {value}")))
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Ok(as_u64(&Value::deserialize(deserializer)?))
    }

    /// [`opt_string`], empty when there is no text.
    pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        Ok(opt_string(deserializer)?.unwrap_or_default())
    }

    /// Strings as they are, numbers and booleans as text; `null`, objects and arrays as `None`.
    pub fn opt_string<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reads_salla_pagination_with_object_or_array_links_and_string_numbers() {
        let orders = json!({
            "status": 200, "success": true,
            "data": [{"id": 1017120475}, {"id": 1013578136}],
            "pagination": {"count": 2, "total": 122, "perPage": 60, "currentPage": 1, "totalPages": 3, "links": {}}
        });
        let page = parse_page(orders, 1, 60).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            (
                page.current_page,
                page.total_pages,
                page.total,
                page.per_page
            ),
            (1, 3, Some(122), 60)
        );
        assert!(page.has_more());

        let customers = json!({
            "data": [{"id": 2075683582}],
            "pagination": {"count": "1", "total": "121", "perPage": "60", "currentPage": "3", "totalPages": "3", "links": []}
        });
        let page = parse_page(customers, 3, 60).unwrap();
        assert_eq!(
            (page.current_page, page.total_pages, page.total),
            (3, 3, Some(121))
        );
        assert!(!page.has_more());
    }

    #[test]
    fn a_list_without_pagination_is_a_single_page_and_null_data_is_empty() {
        let page = parse_page(
            json!({"status": 200, "success": true, "data": [{"id": 1}]}),
            1,
            60,
        )
        .unwrap();
        assert_eq!(
            (
                page.items.len(),
                page.current_page,
                page.total_pages,
                page.total
            ),
            (1, 1, 1, None)
        );
        assert!(!page.has_more());
        let page = parse_page(
            json!({"data": null, "pagination": {"totalPages": 0}}),
            1,
            60,
        )
        .unwrap();
        assert!(page.items.is_empty());
        assert!(!page.has_more());
        assert!(matches!(
            parse_page(json!({"data": {"id": 1}}), 1, 60),
            Err(SallaApiError::Decode(_))
        ));
    }

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

    #[test]
    fn store_info_tolerates_numbers_as_strings_and_missing_fields() {
        let info: StoreInfo = serde_json::from_value(json!({
            "id": "1305146709", "name": "متجر", "plan": "pro", "type": "live", "currency": "SAR",
            "email": null, "licenses": {"tax_number": 1}
        }))
        .unwrap();
        assert_eq!(info.id, 1_305_146_709);
        assert_eq!(info.plan.as_deref(), Some("pro"));
        assert_eq!(info.store_type.as_deref(), Some("live"));
        assert_eq!(info.email, None);
        assert_eq!(info.domain, None);
    }

    #[test]
    fn resources_have_salla_paths_and_stable_names() {
        let paths: Vec<_> = Resource::ALL.iter().map(|r| r.path()).collect();
        assert_eq!(
            paths,
            ["/products", "/orders", "/customers", "/carts/abandoned"]
        );
        assert_eq!(
            serde_json::to_value(Resource::AbandonedCarts).unwrap(),
            "abandoned_carts"
        );
        assert_eq!(Resource::AbandonedCarts.name(), "abandoned_carts");
    }
}
