//! [`MerchantApi`], the Merchant API client: the calls it makes (lists, order details, store info, webhook
//! registration) and the one call loop behind them (limits, token refresh, bounded retries).

use reqwest::Method;
use serde_json::{Value, json};

use super::MerchantId;
use super::access_tokens::AccessTokens;
use super::error::SallaApiError;
use super::exchange::{Outcome, exchange, http_client, retry_policy};
use super::resources::{Page, Resource, StoreInfo, data, parse_page};
use crate::config::SallaConfig;
use crate::outbound::{self, ClientError, RetryPolicy};
use crate::salla::limits::SallaLimits;

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
