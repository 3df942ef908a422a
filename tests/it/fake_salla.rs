//! A fake Salla for every test: the OAuth server (`…/accounts/oauth2/*`) and the Merchant API
//! (`…/admin/v2/*`) on one loopback port, speaking the wire format of `../shared/reference/salla.md` and of
//! the fixtures in `../shared/fixtures/salla/` (items are built from the fixtures' shapes: ids above 2^31,
//! money as numbers and some as strings, `links` `{}` or `[]`).
//!
//! ```ignore
//! let salla = FakeSallaServer::start().await;
//! let tokens = salla.lock().add_store(FakeStore::new(MERCHANT).with_orders(130).with_customers(5));
//! let config = salla.config(|env| env.push(("WOSOOL_SALLA__MAX_RETRIES".into(), "1".into())));
//! salla.lock().throttle_next(1, Some(1));              // knobs: faults, slowness, revoked tokens…
//! assert_eq!(salla.lock().calls("GET /orders"), 3);    // calls per endpoint
//! ```
//!
//! The embedded app's token introspection (`POST /exchange-authority/v1/introspect`) checks `S-Source` against
//! [`APP_ID`] and answers from a table of page tokens ([`FakeSalla::add_embedded_token`]).
//!
//! Tokens are Salla's: the access token identifies the store, a refresh token is single use (reusing one answers
//! a bare `invalid_grant` and revokes the store's tokens), and only the latest access token of a store is valid.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use wosool::config::Config;
use wosool::salla::accounts::AccountsApi;
use wosool::salla::api::{AccessTokenError, AccessTokens, MerchantId, TokenFuture};

use crate::helpers;

pub(crate) const CLIENT_ID: &str = "fake-salla-client-id";
pub(crate) const CLIENT_SECRET: &str = "fake-salla-client-secret";
/// An encryption key for `secrets.encryption_keys` (configuring Salla requires one): base64 of 32 bytes.
pub(crate) const ENCRYPTION_KEY: &str = "test-salla:d29zb29sLXNhbGxhLXRlc3Qta2V5LTMyLWJ5dGVzISE=";
/// Lifetime the fake gives access tokens (`expires_in`, as Salla: 14 days minus a second).
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 1_209_599;
/// A merchant id like Salla's (above 2^31, as they are).
pub(crate) const MERCHANT: u64 = 2_847_769_313;
/// [`MERCHANT`] as the store id the library speaks of.
pub(crate) const MERCHANT_ID: MerchantId = MerchantId::new(MERCHANT as i64);

/// Our Salla app id as the fake knows it (`embedded.app_id`, sent as `S-Source`).
pub(crate) const APP_ID: &str = "1789456123";

pub(crate) type Shared = Arc<Mutex<FakeSalla>>;

/// The running fake: its base URLs and its state.
pub(crate) struct FakeSallaServer {
    /// `salla.accounts_url`: `http://127.0.0.1:PORT/accounts`.
    pub(crate) accounts_url: String,
    /// `salla.api_url`: `http://127.0.0.1:PORT/admin/v2`.
    pub(crate) api_url: String,
    /// `embedded.introspect_url`.
    pub(crate) introspect_url: String,
    pub(crate) state: Shared,
}

impl FakeSallaServer {
    pub(crate) async fn start() -> Self {
        let state: Shared = Arc::default();
        let router = Router::new()
            .route("/accounts/oauth2/token", post(token))
            .route("/accounts/oauth2/user/info", get(user_info))
            .route("/admin/v2/products", get(list_products))
            .route("/admin/v2/orders", get(list_orders))
            .route("/admin/v2/orders/{id}", get(order_details))
            .route("/admin/v2/customers", get(list_customers))
            .route("/admin/v2/carts/abandoned", get(list_carts))
            .route("/admin/v2/store/info", get(store_info))
            .route("/exchange-authority/v1/introspect", post(introspect))
            .route("/admin/v2/webhooks/subscribe", post(subscribe))
            .route("/admin/v2/webhooks", get(list_webhooks))
            .route(
                "/admin/v2/webhooks/unsubscribe",
                axum::routing::delete(unsubscribe),
            )
            .layer(axum::middleware::from_fn(finish_even_if_abandoned))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Salla");
        let address = listener.local_addr().expect("fake Salla address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            accounts_url: format!("http://{address}/accounts"),
            api_url: format!("http://{address}/admin/v2"),
            introspect_url: format!("http://{address}/exchange-authority/v1/introspect"),
            state,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, FakeSalla> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The environment that points the app's Salla settings at this fake (client credentials, URLs, an
    /// encryption key for the stored tokens).
    pub(crate) fn env(&self) -> impl FnOnce(&mut Vec<(String, String)>) + 'static {
        let accounts_url = self.accounts_url.clone();
        let api_url = self.api_url.clone();
        move |env| {
            for (key, value) in [
                ("WOSOOL_SALLA__CLIENT_ID", CLIENT_ID.to_owned()),
                ("WOSOOL_SALLA__CLIENT_SECRET", CLIENT_SECRET.to_owned()),
                ("WOSOOL_SALLA__ACCOUNTS_URL", accounts_url),
                ("WOSOOL_SALLA__API_URL", api_url),
                (
                    "WOSOOL_SECRETS__ENCRYPTION_KEYS",
                    format!("[\"{ENCRYPTION_KEY}\"]"),
                ),
            ] {
                env.push((key.to_owned(), value));
            }
        }
    }

    /// The environment that turns the embedded app on against this fake (introspection URL and app id).
    pub(crate) fn embedded_env(&self) -> impl FnOnce(&mut Vec<(String, String)>) + 'static {
        let url = self.introspect_url.clone();
        move |env| {
            env.push(("WOSOOL_EMBEDDED__INTROSPECT_URL".into(), url));
            env.push(("WOSOOL_EMBEDDED__APP_ID".into(), APP_ID.into()));
        }
    }

    /// A configuration using this fake, adjusted by `adjust` (later entries win), for tests that build the
    /// Salla clients without booting the app (no database is connected).
    pub(crate) fn config(&self, adjust: impl FnOnce(&mut Vec<(String, String)>)) -> Config {
        let env = self.env();
        helpers::test_config("salla_fake_unused", |vars| {
            env(vars);
            adjust(vars);
        })
    }
}

/// What a test can make the fake do instead of answering normally.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// 429 with Salla's error envelope, `Retry-After` when given.
    TooManyRequests { retry_after: Option<u64> },
    /// 403 "blocked due to many errors": Salla's temporary restriction after abuse, `Retry-After` when given.
    Blocked { retry_after: Option<u64> },
    /// Any answer: status and JSON body.
    Reply { status: u16, body: Value },
    /// Wait this long, then answer normally (a slow Salla; the work is done even if the caller gave up).
    Delay(Duration),
}

impl Fault {
    /// Salla's error envelope with the documented slug for `status`.
    pub(crate) fn status(status: u16) -> Self {
        Self::Reply {
            status,
            body: error_envelope(status, "fake failure"),
        }
    }

    /// 401 "The access token is invalid" (api-error-401-invalid-token.json).
    pub(crate) fn invalid_token() -> Self {
        Self::Reply {
            status: 401,
            body: fixture("api-error-401-invalid-token.json"),
        }
    }

    /// 401 for a scope the token lacks (api-error-401-scope.json).
    pub(crate) fn missing_scope() -> Self {
        Self::Reply {
            status: 401,
            body: fixture("api-error-401-scope.json"),
        }
    }
}

#[derive(Debug)]
struct PlannedFault {
    /// `*` any Merchant API call; else a path prefix under the API (`/orders`) or the accounts
    /// (`/oauth2/token`).
    target: String,
    page: Option<u32>,
    times: u32,
    fault: Fault,
}

impl PlannedFault {
    fn matches(&self, path: &str, page: Option<u32>) -> bool {
        let target = if self.target == "*" {
            !path.starts_with("/oauth2")
        } else {
            path.starts_with(&self.target)
        };
        target && (self.page.is_none() || self.page == page)
    }
}

/// Salla's per-store rate-limit window, reported in `X-RateLimit-*` headers and enforced (429 when
/// nothing remains).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateWindow {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// UTC epoch seconds.
    pub(crate) reset: u64,
}

/// One store of the fake.
#[derive(Debug, Clone)]
pub(crate) struct FakeStore {
    pub(crate) merchant_id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) username: String,
    /// `basic`, `plus`, `pro` or `special`.
    pub(crate) plan: String,
    pub(crate) domain: String,
    pub(crate) currency: String,
    pub(crate) products: Vec<Value>,
    /// List Orders items (api-list-orders.json shape); details are built from them on request.
    pub(crate) orders: Vec<Value>,
    pub(crate) customers: Vec<Value>,
    pub(crate) abandoned_carts: Vec<Value>,
    /// The store's webhooks as Salla keeps them: `{id, name, event, url, version, rule, headers (an object),
    /// security_strategy, secret}`. Subscribing a URL that is registered already updates that webhook; one
    /// registered without a strategy and secret is signed with a secret Salla generates.
    pub(crate) webhooks: Vec<Value>,
    /// The valid access token (`None`: revoked or expired, every call answers 401).
    pub(crate) access_token: Option<String>,
    /// The refresh token that may be spent (`None`: revoked).
    pub(crate) refresh_token: Option<String>,
    /// `None`: a window of the plan's limit starts at the first call.
    pub(crate) rate: Option<RateWindow>,
}

impl FakeStore {
    pub(crate) fn new(merchant_id: u64) -> Self {
        Self {
            merchant_id,
            name: format!("متجر {merchant_id}"),
            email: format!("owner-{merchant_id}@store.example"),
            username: format!("store_{merchant_id}"),
            plan: "pro".into(),
            domain: format!("https://store-{merchant_id}.example"),
            currency: "SAR".into(),
            products: Vec::new(),
            orders: Vec::new(),
            customers: Vec::new(),
            abandoned_carts: Vec::new(),
            webhooks: Vec::new(),
            access_token: None,
            refresh_token: None,
            rate: None,
        }
    }

    pub(crate) fn with_plan(mut self, plan: &str) -> Self {
        self.plan = plan.into();
        self
    }

    pub(crate) fn with_products(mut self, count: usize) -> Self {
        let start = self.products.len();
        let items = (start..start + count).map(|i| product(self.merchant_id, i));
        self.products.extend(items);
        self
    }

    pub(crate) fn with_orders(mut self, count: usize) -> Self {
        let start = self.orders.len();
        let items = (start..start + count).map(|i| order(self.merchant_id, i));
        self.orders.extend(items);
        self
    }

    pub(crate) fn with_customers(mut self, count: usize) -> Self {
        let start = self.customers.len();
        let items = (start..start + count).map(|i| customer(self.merchant_id, i));
        self.customers.extend(items);
        self
    }

    /// Carts of the current shape (reference §2.5; the `abandoned.cart` webhook's `data`).
    pub(crate) fn with_abandoned_carts(mut self, count: usize) -> Self {
        let start = self.abandoned_carts.len();
        let items = (start..start + count).map(|i| cart(self.merchant_id, i));
        self.abandoned_carts.extend(items);
        self
    }

    /// Carts of the legacy shape Salla may still send (reference §2.5: string totals, flat currency).
    pub(crate) fn with_legacy_abandoned_carts(mut self, count: usize) -> Self {
        let start = self.abandoned_carts.len();
        let items = (start..start + count).map(|i| legacy_cart(self.merchant_id, i));
        self.abandoned_carts.extend(items);
        self
    }

    fn list(&self, kind: ListKind) -> &[Value] {
        match kind {
            ListKind::Products => &self.products,
            ListKind::Orders => &self.orders,
            ListKind::Customers => &self.customers,
            ListKind::AbandonedCarts => &self.abandoned_carts,
        }
    }
}

/// Tokens the fake issued.
#[derive(Debug, Clone)]
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
}

/// How the token endpoint states expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expiry {
    /// `expires_in`: seconds (what Salla's refresh answers carry).
    ExpiresIn(u64),
    /// `expires`: an absolute unix time (what some clients have seen).
    ExpiresAt(u64),
}

#[derive(Debug)]
struct Grant {
    merchant_id: u64,
    spent: bool,
}

/// The fake's state, locked by tests to arrange and assert.
#[derive(Debug)]
pub(crate) struct FakeSalla {
    pub(crate) stores: BTreeMap<u64, FakeStore>,
    /// Requests per endpoint: `"GET /orders"`, `"GET /orders/{id}"`, `"POST /oauth2/token"`, …
    pub(crate) calls: BTreeMap<String, u32>,
    /// Every refresh grant ever issued (spent or not), to answer reuse as Salla does.
    grants: HashMap<String, Grant>,
    faults: Vec<PlannedFault>,
    issued: u64,
    /// How token answers state expiry.
    pub(crate) expiry: Expiry,
    /// Status of the `invalid_grant` answer (Ory Hydra answers 400; Salla's docs list it under 401).
    pub(crate) invalid_grant_status: u16,
    /// `GET /oauth2/user/info` without the `{status, success, data}` envelope (as observed live; the docs and
    /// SDKs show the envelope).
    pub(crate) bare_user_info: bool,
    /// `POST /webhooks/subscribe` ignores `security_strategy` and `secret` (Salla's agent kit says they are set
    /// only on update): webhooks are then signed with a generated secret.
    pub(crate) ignores_strategy_fields: bool,
    /// Every request, in arrival order (endpoint and path).
    pub(crate) log: Vec<(String, String)>,
    /// Embedded page tokens Salla would vouch for: token → (merchant, user, exp).
    embedded_tokens: HashMap<String, (u64, u64, time::OffsetDateTime)>,
    /// Bodies of the introspection requests received.
    pub(crate) introspections: Vec<Value>,
}

impl Default for FakeSalla {
    fn default() -> Self {
        Self {
            stores: BTreeMap::new(),
            calls: BTreeMap::new(),
            grants: HashMap::new(),
            faults: Vec::new(),
            issued: 0,
            expiry: Expiry::ExpiresIn(TOKEN_LIFETIME_SECS),
            invalid_grant_status: 400,
            bare_user_info: false,
            ignores_strategy_fields: false,
            log: Vec::new(),
            embedded_tokens: HashMap::new(),
            introspections: Vec::new(),
        }
    }
}

impl FakeSalla {
    /// Adds (or replaces) a store and issues its first tokens (what `app.store.authorize` would carry).
    pub(crate) fn add_store(&mut self, store: FakeStore) -> IssuedTokens {
        let merchant = store.merchant_id;
        self.stores.insert(merchant, store);
        self.issue(merchant)
    }

    pub(crate) fn store(&mut self, merchant: u64) -> &mut FakeStore {
        self.stores
            .get_mut(&merchant)
            .unwrap_or_else(|| panic!("no fake store {merchant}"))
    }

    /// A page token (what Salla puts in the embedded page's URL) for `user` of `merchant`'s dashboard,
    /// expiring `lifetime` from now (negative: already expired).
    pub(crate) fn add_embedded_token(
        &mut self,
        token: &str,
        merchant: u64,
        user: u64,
        lifetime: time::Duration,
    ) {
        self.embedded_tokens.insert(
            token.to_owned(),
            (merchant, user, time::OffsetDateTime::now_utc() + lifetime),
        );
    }

    /// Requests `endpoint` (e.g. `"GET /customers"`) received so far.
    pub(crate) fn calls(&self, endpoint: &str) -> u32 {
        self.calls.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests to the Merchant API so far (not the OAuth server).
    pub(crate) fn api_calls(&self) -> u32 {
        self.calls
            .iter()
            .filter(|(k, _)| !k.contains("/oauth2/"))
            .map(|(_, v)| v)
            .sum()
    }

    /// The store's access token stops working (expired, or the app was uninstalled): calls answer 401 "The
    /// access token is invalid". Its refresh token still works.
    pub(crate) fn expire_access_token(&mut self, merchant: u64) {
        self.store(merchant).access_token = None;
    }

    /// Both tokens revoked (as after `invalid_grant` or uninstall).
    pub(crate) fn revoke_tokens(&mut self, merchant: u64) {
        let store = self.store(merchant);
        store.access_token = None;
        store.refresh_token = None;
    }

    /// Answer the next `times` requests matching `target` with `fault` instead. `target`: `*` (any Merchant
    /// API call), a path prefix under the API (`/customers`, `/orders/`) or under accounts (`/oauth2/token`).
    pub(crate) fn fail(&mut self, target: &str, times: u32, fault: Fault) {
        self.faults.push(PlannedFault {
            target: target.into(),
            page: None,
            times,
            fault,
        });
    }

    /// Like [`fail`](Self::fail) for page `page` of the list at `path` only (a crash in the middle of a walk).
    pub(crate) fn fail_page(&mut self, path: &str, page: u32, times: u32, fault: Fault) {
        self.faults.push(PlannedFault {
            target: path.into(),
            page: Some(page),
            times,
            fault,
        });
    }

    /// The next `times` Merchant API calls answer 429 (with `Retry-After: retry_after` when given).
    pub(crate) fn throttle_next(&mut self, times: u32, retry_after: Option<u64>) {
        self.fail("*", times, Fault::TooManyRequests { retry_after });
    }

    /// The next `times` Merchant API calls answer `status` with Salla's error envelope.
    pub(crate) fn fail_next(&mut self, times: u32, status: u16) {
        self.fail("*", times, Fault::status(status));
    }

    /// The next `times` requests to `target` (see [`fail`](Self::fail)) are answered `delay` late.
    pub(crate) fn slow_next(&mut self, target: &str, times: u32, delay: Duration) {
        self.fail(target, times, Fault::Delay(delay));
    }

    fn take_fault(&mut self, path: &str, page: Option<u32>) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|f| f.times > 0 && f.matches(path, page))?;
        let planned = &mut self.faults[index];
        planned.times -= 1;
        let fault = planned.fault.clone();
        if planned.times == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }

    fn issue(&mut self, merchant: u64) -> IssuedTokens {
        self.issued += 1;
        let n = self.issued;
        let tokens = IssuedTokens {
            access_token: format!(
                "ory_at_fake-{merchant}-{n}.{}",
                uuid::Uuid::new_v4().simple()
            ),
            refresh_token: format!(
                "ory_rt_fake-{merchant}-{n}.{}",
                uuid::Uuid::new_v4().simple()
            ),
        };
        self.grants.insert(
            tokens.refresh_token.clone(),
            Grant {
                merchant_id: merchant,
                spent: false,
            },
        );
        let store = self.store(merchant);
        store.access_token = Some(tokens.access_token.clone());
        store.refresh_token = Some(tokens.refresh_token.clone());
        tokens
    }

    fn merchant_of(&self, headers: &HeaderMap) -> Option<u64> {
        let token = headers
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        self.stores
            .values()
            .find(|s| s.access_token.as_deref() == Some(token))
            .map(|s| s.merchant_id)
    }
}

/// Runs each request to its end even when the client hangs up (a timed-out refresh still rotates the tokens,
/// as on a real server), instead of letting the server drop the handler with the connection.
async fn finish_even_if_abandoned(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    tokio::spawn(next.run(request))
        .await
        .unwrap_or_else(|e| reply(500, error_envelope(500, &e.to_string()), &[]))
}

/// A fixture of `../shared/fixtures/salla/`, parsed.
pub(crate) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/fixtures/salla/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn lock(state: &Shared) -> MutexGuard<'_, FakeSalla> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Salla's error envelope (reference §2.6) with the documented slug.
fn error_envelope(status: u16, message: &str) -> Value {
    let code = match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        422 => "validation_failed",
        429 => "too_many_requests",
        503 => "service_unavailable",
        _ => "server_error",
    };
    json!({ "status": status, "success": false, "error": { "code": code, "message": message } })
}

fn reply(status: u16, body: Value, headers: &[(&'static str, String)]) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

/// What every request goes through first: counted, then a planned fault (a delay lets it go on), then — for
/// the Merchant API — the access token and the store's rate window. `Ok`: the store and the
/// `X-RateLimit-*` headers to answer with.
async fn gate(
    state: &Shared,
    endpoint: &str,
    path: &str,
    page: Option<u32>,
    headers: &HeaderMap,
) -> Result<(u64, Vec<(&'static str, String)>), Response> {
    let fault = {
        let mut fake = lock(state);
        *fake.calls.entry(endpoint.to_owned()).or_default() += 1;
        fake.log.push((endpoint.to_owned(), path.to_owned()));
        fake.take_fault(path, page)
    };
    match fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::TooManyRequests { retry_after }) => {
            let headers: Vec<_> = retry_after
                .map(|s| ("retry-after", s.to_string()))
                .into_iter()
                .collect();
            return Err(reply(
                429,
                error_envelope(429, "Too Many Attempts."),
                &headers,
            ));
        }
        Some(Fault::Blocked { retry_after }) => {
            let headers: Vec<_> = retry_after
                .map(|s| ("retry-after", s.to_string()))
                .into_iter()
                .collect();
            let message = "blocked due to many errors in particular time";
            return Err(reply(403, error_envelope(403, message), &headers));
        }
        Some(Fault::Reply { status, body }) => return Err(reply(status, body, &[])),
        None => {}
    }
    if path.starts_with("/oauth2/token") {
        return Ok((0, Vec::new()));
    }
    let mut fake = lock(state);
    let Some(merchant) = fake.merchant_of(headers) else {
        return Err(reply(401, fixture("api-error-401-invalid-token.json"), &[]));
    };
    if path.starts_with("/oauth2") {
        // The OAuth server is not the Merchant API: no store rate window.
        return Ok((merchant, Vec::new()));
    }
    let store = fake.store(merchant);
    let now = now_unix();
    let limit = match store.plan.as_str() {
        "special" => 720,
        "pro" => 360,
        _ => 120,
    };
    let window = store.rate.get_or_insert(RateWindow {
        limit,
        remaining: limit,
        reset: now + 60,
    });
    if now >= window.reset {
        window.remaining = window.limit;
        window.reset = now + 60;
    }
    if window.remaining == 0 {
        let wait = window.reset.saturating_sub(now).max(1);
        let headers = rate_headers(window);
        let mut all = headers.clone();
        all.push(("retry-after", wait.to_string()));
        return Err(reply(429, error_envelope(429, "Too Many Attempts."), &all));
    }
    window.remaining -= 1;
    Ok((merchant, rate_headers(window)))
}

fn rate_headers(window: &RateWindow) -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit", window.limit.to_string()),
        ("x-ratelimit-remaining", window.remaining.to_string()),
        ("x-ratelimit-reset", window.reset.to_string()),
    ]
}

#[derive(Debug, Clone, Copy)]
enum ListKind {
    Products,
    Orders,
    Customers,
    AbandonedCarts,
}

impl ListKind {
    fn path(self) -> &'static str {
        match self {
            Self::Products => "/products",
            Self::Orders => "/orders",
            Self::Customers => "/customers",
            Self::AbandonedCarts => "/carts/abandoned",
        }
    }
}

async fn list_products(
    s: State<Shared>,
    q: Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    list(s, q, h, ListKind::Products).await
}

async fn list_orders(
    s: State<Shared>,
    q: Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    list(s, q, h, ListKind::Orders).await
}

async fn list_customers(
    s: State<Shared>,
    q: Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    list(s, q, h, ListKind::Customers).await
}

async fn list_carts(s: State<Shared>, q: Query<HashMap<String, String>>, h: HeaderMap) -> Response {
    list(s, q, h, ListKind::AbandonedCarts).await
}

/// A list page: `page`/`per_page` (default 15, at most 65 as Salla's schema says) and the pagination
/// envelope of reference §3.2, `links` `{}` for products and orders, `[]` for customers and carts.
async fn list(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    kind: ListKind,
) -> Response {
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<u64>().ok());
    let page = number("page").unwrap_or(1).max(1);
    let per_page = number("per_page").unwrap_or(15).clamp(1, 65);
    let endpoint = format!("GET {}", kind.path());
    let (merchant, rate) =
        match gate(&state, &endpoint, kind.path(), Some(page as u32), &headers).await {
            Ok(ok) => ok,
            Err(response) => return response,
        };
    let fake = lock(&state);
    let Some(store) = fake.stores.get(&merchant) else {
        return reply(404, error_envelope(404, "store not found"), &rate);
    };
    let items = store.list(kind);
    let total = items.len() as u64;
    let total_pages = total.div_ceil(per_page).max(1);
    let data: Vec<Value> = items
        .iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .cloned()
        .collect();
    let links = match kind {
        ListKind::Products | ListKind::Orders => json!({}),
        ListKind::Customers | ListKind::AbandonedCarts => json!([]),
    };
    let body = json!({
        "status": 200,
        "success": true,
        "data": data,
        "pagination": {
            "count": data.len(),
            "total": total,
            "perPage": per_page,
            "currentPage": page,
            "totalPages": total_pages,
            "links": links,
        }
    });
    reply(200, body, &rate)
}

async fn order_details(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/orders/{id}");
    let (merchant, rate) = match gate(&state, "GET /orders/{id}", &path, None, &headers).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let fake = lock(&state);
    let found = fake.stores.get(&merchant).and_then(|store| {
        store
            .orders
            .iter()
            .find(|o| o["id"].as_u64().map(|i| i.to_string()) == Some(id.clone()))
    });
    match found {
        Some(item) => reply(
            200,
            json!({ "status": 200, "success": true, "data": order_details_of(item) }),
            &rate,
        ),
        None => reply(404, error_envelope(404, "The order is not found"), &rate),
    }
}

async fn store_info(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (merchant, rate) =
        match gate(&state, "GET /store/info", "/store/info", None, &headers).await {
            Ok(ok) => ok,
            Err(response) => return response,
        };
    let fake = lock(&state);
    let Some(store) = fake.stores.get(&merchant) else {
        return reply(404, error_envelope(404, "store not found"), &rate);
    };
    let data = json!({
        "id": store.merchant_id,
        "name": store.name,
        "entity": "company",
        "email": store.email,
        "avatar": "https://i.ibb.co/jyqRQfQ/avatar-male.webp",
        "plan": store.plan,
        "type": "live",
        "status": "active",
        "verified": true,
        "currency": store.currency,
        "domain": store.domain,
        "description": "متجر تجريبي",
        "licenses": { "tax_number": "300000000000003", "commercial_number": "1010101010" },
        "social": { "instagram": null, "twitter": null },
    });
    reply(
        200,
        json!({ "status": 200, "success": true, "data": data }),
        &rate,
    )
}

async fn subscribe(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (merchant, rate) = match gate(
        &state,
        "POST /webhooks/subscribe",
        "/webhooks/subscribe",
        None,
        &headers,
    )
    .await
    {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, error_envelope(400, "invalid JSON"), &rate);
    };
    let mut missing = serde_json::Map::new();
    for field in ["name", "event", "url"] {
        if !request[field].is_string() {
            missing.insert(
                field.into(),
                json!([format!("The {field} field is required.")]),
            );
        }
    }
    if !missing.is_empty() {
        let body = json!({ "status": 422, "success": false,
            "error": { "code": "error", "message": "alert.invalid_fields", "fields": missing } });
        return reply(422, body, &rate);
    }
    let mut fake = lock(&state);
    let ignores_strategy = fake.ignores_strategy_fields;
    let store = fake.store(merchant);
    let headers: serde_json::Map<String, Value> = request["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| Some((h["key"].as_str()?.to_owned(), h["value"].clone())))
        .collect();
    let strategy = match (
        request["security_strategy"].as_str(),
        request["secret"].as_str(),
    ) {
        (Some(strategy), Some(secret)) if !ignores_strategy => {
            Some((strategy.to_lowercase(), secret.to_owned()))
        }
        _ => None,
    };
    let existing = store
        .webhooks
        .iter()
        .position(|w| w["url"] == request["url"]);
    let id = existing
        .map(|i| store.webhooks[i]["id"].clone())
        .unwrap_or_else(|| json!(1_900_000_000 + store.webhooks.len() as u64));
    let (strategy, secret) = match (strategy, existing) {
        (Some(given), _) => given,
        (None, Some(i)) => (
            store.webhooks[i]["security_strategy"]
                .as_str()
                .unwrap_or("signature")
                .to_owned(),
            store.webhooks[i]["secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        // "Salla will assign the Security Strategy to Signature by default", hashing with a secret it
        // generates.
        (None, None) => (
            "signature".to_owned(),
            format!("generated-{}", uuid::Uuid::new_v4().simple()),
        ),
    };
    let webhook = json!({
        "id": id,
        "name": request["name"],
        "event": request["event"],
        "type": "manual",
        "url": request["url"],
        "version": request.get("version").cloned().unwrap_or(json!(2)),
        "rule": request.get("rule").cloned().unwrap_or(Value::Null),
        "headers": headers,
        "security_strategy": strategy,
        "secret": secret,
    });
    match existing {
        Some(i) => store.webhooks[i] = webhook.clone(),
        None => store.webhooks.push(webhook.clone()),
    }
    reply(
        201,
        json!({ "status": 201, "success": true, "data": public_webhook(&webhook) }),
        &rate,
    )
}

/// A webhook as Salla's API shows it (no secret).
fn public_webhook(webhook: &Value) -> Value {
    let mut shown = webhook.clone();
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("secret");
    }
    shown
}

/// `GET /webhooks`: the store's webhooks, one page.
async fn list_webhooks(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (merchant, rate) = match gate(&state, "GET /webhooks", "/webhooks", None, &headers).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let mut fake = lock(&state);
    let data: Vec<Value> = fake
        .store(merchant)
        .webhooks
        .iter()
        .map(public_webhook)
        .collect();
    let count = data.len();
    reply(
        200,
        json!({ "status": 200, "success": true, "data": data, "pagination": {
            "count": count, "total": count, "perPage": 65, "currentPage": 1, "totalPages": 1, "links": [] } }),
        &rate,
    )
}

/// `DELETE /webhooks/unsubscribe?id=…`.
async fn unsubscribe(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (merchant, rate) = match gate(
        &state,
        "DELETE /webhooks/unsubscribe",
        "/webhooks/unsubscribe",
        None,
        &headers,
    )
    .await
    {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let mut fake = lock(&state);
    let store = fake.store(merchant);
    let id = query.get("id").and_then(|id| id.parse::<u64>().ok());
    let Some(index) = store
        .webhooks
        .iter()
        .position(|w| w["id"].as_u64() == id && id.is_some())
    else {
        return reply(
            404,
            error_envelope(
                404,
                "The content you are trying to access is no longer available",
            ),
            &rate,
        );
    };
    store.webhooks.remove(index);
    reply(
        202,
        json!({ "status": 202, "success": true,
                "data": { "message": "The Object has been removed successfully", "code": 202 } }),
        &rate,
    )
}

impl FakeStore {
    /// How Salla would deliver `event` to this store's webhook for it: the URL and the headers (the
    /// strategy's credential and the registration's own headers), for `body`. `None`: not subscribed.
    pub(crate) fn delivery(
        &self,
        event: &str,
        body: &[u8],
    ) -> Option<(String, Vec<(String, String)>)> {
        let webhook = self.webhooks.iter().find(|w| w["event"] == event)?;
        let secret = webhook["secret"].as_str().unwrap_or_default();
        let mut headers = vec![];
        match webhook["security_strategy"].as_str() {
            Some("token") => {
                headers.push(("X-Salla-Security-Strategy".to_owned(), "Token".to_owned()));
                headers.push(("Authorization".to_owned(), secret.to_owned()));
            }
            _ => {
                let mut mac =
                    <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes())
                        .expect("any key length");
                hmac::Mac::update(&mut mac, body);
                let signature = hex::encode(hmac::Mac::finalize(mac).into_bytes());
                headers.push((
                    "X-Salla-Security-Strategy".to_owned(),
                    "Signature".to_owned(),
                ));
                headers.push(("X-Salla-Signature".to_owned(), signature));
            }
        }
        for (key, value) in webhook["headers"].as_object().into_iter().flatten() {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
            headers.push((key.clone(), value.as_str().unwrap_or_default().to_owned()));
        }
        Some((webhook["url"].as_str()?.to_owned(), headers))
    }
}

/// `POST /oauth2/token`, refresh grant (reference §3.1): form-encoded client credentials and refresh token;
/// the refresh token is single use, its reuse revokes the store's tokens.
async fn token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = gate(
        &state,
        "POST /oauth2/token",
        "/oauth2/token",
        None,
        &headers,
    )
    .await
    {
        return response;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let oauth_error = |status: u16, error: &str, description: &str| {
        reply(
            status,
            json!({ "error": error, "error_description": description }),
            &[],
        )
    };
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).",
        );
    }
    if field("grant_type") != "refresh_token" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let mut fake = lock(&state);
    let invalid_grant = |fake: &FakeSalla| {
        reply(
            fake.invalid_grant_status,
            fixture("oauth-error-invalid-grant.json"),
            &[],
        )
    };
    let presented = field("refresh_token").to_owned();
    let Some(grant) = fake.grants.get_mut(&presented) else {
        return invalid_grant(&fake);
    };
    let (merchant, reused) = (grant.merchant_id, grant.spent);
    grant.spent = true;
    let current = fake
        .stores
        .get(&merchant)
        .and_then(|s| s.refresh_token.clone());
    if reused || current.as_deref() != Some(presented.as_str()) {
        // Reuse (or a token revoked since): Salla revokes everything obtained with it.
        if fake.stores.contains_key(&merchant) {
            fake.revoke_tokens(merchant);
        }
        return invalid_grant(&fake);
    }
    let issued = fake.issue(merchant);
    let scope = "settings.read customers.read_write orders.read_write carts.read products.read_write webhooks.read_write offline_access";
    let mut answer = json!({
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "scope": scope,
        "token_type": "bearer",
    });
    match fake.expiry {
        Expiry::ExpiresIn(secs) => answer["expires_in"] = json!(secs),
        Expiry::ExpiresAt(at) => answer["expires"] = json!(at),
    }
    reply(200, answer, &[])
}

/// `GET /oauth2/user/info` (api-user-info.json) for the store of the bearer token.
async fn user_info(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (merchant, _) = match gate(
        &state,
        "GET /oauth2/user/info",
        "/oauth2/user/info",
        None,
        &headers,
    )
    .await
    {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let fake = lock(&state);
    let Some(store) = fake.stores.get(&merchant) else {
        return reply(401, fixture("api-error-401-invalid-token.json"), &[]);
    };
    let mut body = fixture("api-user-info.json");
    let data = &mut body["data"];
    data["id"] = json!(installer_user_id(store.merchant_id));
    data["email"] = json!(store.email);
    let merchant_json = &mut data["merchant"];
    merchant_json["id"] = json!(store.merchant_id);
    merchant_json["username"] = json!(store.username);
    merchant_json["name"] = json!(store.name);
    merchant_json["plan"] = json!(store.plan);
    merchant_json["domain"] = json!(store.domain);
    if fake.bare_user_info {
        return reply(200, body["data"].take(), &[]);
    }
    reply(200, body, &[])
}

/// The Salla user id user info gives for `merchant`'s token: the installer of the store.
pub(crate) fn installer_user_id(merchant: u64) -> u64 {
    1_600_000_000 + merchant % 100_000_000
}

/// `POST /exchange-authority/v1/introspect`. `S-Source` must be our app id: Salla's answer to another one is
/// not documented (neither in its docs nor in `@salla.sa/embedded-sdk`); the fake answers 403 in Salla's
/// usual error envelope. An unknown token gets Salla's documented 401 "Decryption failed".
async fn introspect(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    const PATH: &str = "/exchange-authority/v1/introspect";
    let mut fake = lock(&state);
    *fake.calls.entry("POST /introspect".into()).or_default() += 1;
    fake.log.push(("POST /introspect".into(), PATH.into()));
    match fake.take_fault(PATH, None) {
        Some(Fault::Reply { status, body }) => return reply(status, body, &[]),
        Some(Fault::TooManyRequests { retry_after }) => {
            let headers: Vec<_> = retry_after
                .map(|s| ("retry-after", s.to_string()))
                .into_iter()
                .collect();
            return reply(429, error_envelope(429, "Too Many Attempts."), &headers);
        }
        Some(other) => panic!("fault {other:?} is not modelled for introspection"),
        None => {}
    }
    let source = headers.get("s-source").and_then(|v| v.to_str().ok());
    if source != Some(APP_ID) {
        return reply(
            403,
            json!({ "status": 403, "success": false,
                    "error": { "message": "The source is not authorized", "code": 403 } }),
            &[],
        );
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.introspections.push(body.clone());
    let found = body["token"]
        .as_str()
        .and_then(|token| fake.embedded_tokens.get(token));
    let Some((merchant, user, exp)) = found else {
        return reply(
            401,
            json!({ "status": 401, "success": false,
                    "error": { "message": "Decryption failed", "code": 0 } }),
            &[],
        );
    };
    let exp = exp
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // Ids as numbers, and the user id as a string (both forms are seen in Salla's answers).
    reply(
        200,
        json!({ "status": 200, "success": true,
                "data": { "merchant_id": merchant, "user_id": user.to_string(), "exp": exp } }),
        &[],
    )
}

/// An id above 2^31, unique per kind, store and index.
fn id(kind: u64, merchant: u64, i: usize) -> u64 {
    kind * 100_000_000_000 + (merchant % 100_000) * 1_000_000 + i as u64
}

fn carbon(date: &str) -> Value {
    json!({ "date": format!("{date}.000000"), "timezone_type": 3, "timezone": "Asia/Riyadh" })
}

/// A product shaped like api-product-details.json (the list shape): numbers for prices, strings for
/// `cost_price`, `stock_quantity` and every other `quantity`.
fn product(merchant: u64, i: usize) -> Value {
    let mut item = fixture("api-product-details.json")["data"].take();
    let product_id = id(1, merchant, i);
    let price = 100 + (i % 50) as u64;
    item["id"] = json!(product_id);
    item["sku"] = json!(format!("SKU-{merchant}-{i}"));
    item["name"] = json!(format!("منتج {i}"));
    item["price"] = json!({ "amount": price, "currency": "SAR" });
    item["regular_price"] = json!({ "amount": price, "currency": "SAR" });
    item["quantity"] = if i.is_multiple_of(2) {
        json!(i % 40)
    } else {
        json!((i % 40).to_string())
    };
    item["status"] = json!(["sale", "hidden", "out"][i % 3]);
    item["urls"]["admin"] = json!(format!("https://s.salla.sa/products/{product_id}"));
    item["updated_at"] = json!(format!("2024-03-{:02} 13:50:32", 1 + i % 28));
    item
}

/// A List Orders item shaped like api-list-orders.json (top-level `total`, no `updated_at`); every other
/// order has a `customer`, which the schema requires and the example omits.
fn order(merchant: u64, i: usize) -> Value {
    let mut item = fixture("api-list-orders.json")["data"][i % 2].take();
    item["id"] = json!(id(2, merchant, i));
    item["reference_id"] = json!(40_000_000 + i as u64);
    let amount = if i.is_multiple_of(3) {
        json!(55 + i as u64)
    } else {
        json!(55.25 + i as f64)
    };
    item["total"] = json!({ "amount": amount, "currency": "SAR" });
    item["date"] = carbon(&format!("2022-06-{:02} 14:48:20", 1 + i % 28));
    if i.is_multiple_of(2) {
        item["customer"] = json!({
            "id": id(3, merchant, i),
            "first_name": "Ahmed",
            "last_name": format!("Customer {i}"),
            "mobile": 500_000_000 + i as u64,
            "mobile_code": "+966",
            "email": format!("customer{i}@example.sa"),
        });
    }
    item
}

/// Order Details (`GET /orders/{id}`): the Orders model of order.created.json `data`, with this order's id,
/// reference, status, date and total.
fn order_details_of(list_item: &Value) -> Value {
    let mut details = fixture("order.created.json")["data"].take();
    for key in ["id", "reference_id", "status", "date"] {
        details[key] = list_item[key].clone();
    }
    details["amounts"]["total"] = list_item["total"].clone();
    if list_item["customer"].is_object() {
        details["customer"] = list_item["customer"].clone();
    }
    details["updated_at"] = list_item["date"].clone();
    // Salla's order item ids are unique across orders: derive them from the order id.
    let order_id = list_item["id"].as_u64().unwrap_or_default();
    if let Some(items) = details["items"].as_array_mut() {
        for (n, item) in items.iter_mut().enumerate() {
            item["id"] = json!(order_id * 100 + n as u64);
        }
    }
    details
}

/// A customer shaped like api-list-customers.json: `mobile` a number, `location` sometimes the string
/// `"null"`, `urls` sometimes missing, `birthday` an object or `null`.
fn customer(merchant: u64, i: usize) -> Value {
    let mut item = fixture("api-list-customers.json")["data"][i % 2].take();
    item["id"] = json!(id(3, merchant, i));
    item["first_name"] = json!(format!("عميل {i}"));
    item["email"] = json!(format!("customer{i}@example.sa"));
    item["mobile"] = json!(500_000_000 + i as u64);
    item["birthday"] = if i.is_multiple_of(2) {
        carbon("1990-01-01 00:00:00")
    } else {
        Value::Null
    };
    item["updated_at"] = carbon(&format!("2020-04-{:02} 22:43:26", 1 + i % 28));
    item
}

/// A cart of the current shape (reference §2.5, the `abandoned.cart` webhook's `data`).
fn cart(merchant: u64, i: usize) -> Value {
    let mut item = fixture("abandoned.cart.json")["data"].take();
    let cart_id = id(4, merchant, i);
    item["id"] = json!(cart_id);
    item["total"] = json!({ "amount": 100 + i as u64, "currency": "SAR" });
    item["checkout_url"] = json!(format!("https://salla.sa/store/checkout/{cart_id}"));
    item["age_in_minutes"] = json!(30 + i as u64);
    item["customer"]["id"] = json!(id(3, merchant, i));
    item
}

/// A cart of the legacy shape (reference §2.5): string totals, flat currency, `coupon_code`.
fn legacy_cart(merchant: u64, i: usize) -> Value {
    json!({
        "id": id(4, merchant, 500_000 + i),
        "subtotal": "15.00",
        "currency": "SAR",
        "total": format!("{}.14", 50 + i),
        "coupon_code": null,
        "customer": {
            "id": id(3, merchant, i),
            "avatar": "https://i.ibb.co/jyqRQfQ/avatar-male.webp",
            "name": format!("Customer {i}"),
            "mobile": format!("+9665{:08}", i),
        },
    })
}

/// An [`AccessTokens`] kept in memory: hands out its access token and, when Salla rejects it, refreshes through
/// the real OAuth client against the fake (counting how often it was asked).
pub(crate) struct MemoryTokens {
    accounts: AccountsApi,
    tokens: Mutex<IssuedTokens>,
    refreshes: AtomicU32,
}

impl MemoryTokens {
    pub(crate) fn new(accounts: AccountsApi, tokens: IssuedTokens) -> Self {
        Self {
            accounts,
            tokens: Mutex::new(tokens),
            refreshes: AtomicU32::new(0),
        }
    }

    /// How many times a call asked for a fresh token.
    pub(crate) fn refreshes(&self) -> u32 {
        self.refreshes.load(Ordering::SeqCst)
    }

    pub(crate) fn current(&self) -> IssuedTokens {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AccessTokens for MemoryTokens {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(async move { Ok(self.current().access_token) })
    }

    fn refresh_rejected<'a>(&'a self, rejected: &'a str) -> TokenFuture<'a> {
        Box::pin(async move {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            let current = self.current();
            if current.access_token != rejected {
                return Ok(current.access_token);
            }
            let set = self
                .accounts
                .refresh(&current.refresh_token)
                .await
                .map_err(|e| AccessTokenError::Unavailable(e.to_string()))?;
            *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) = IssuedTokens {
                access_token: set.access_token.clone(),
                refresh_token: set.refresh_token,
            };
            Ok(set.access_token)
        })
    }
}
