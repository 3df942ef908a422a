//! The instance JWKS, fetched from Clerk and cached.
//!
//! Keys come from `clerk.jwks_url`, or when that is empty from the Backend API `GET <api_url>/jwks` with the secret
//! key and the pinned `Clerk-API-Version`. [`JwksCache::run_refresher`] refetches them every `jwks_refresh_secs`;
//! between refreshes a token whose `kid` is unknown (or whose signature fails, in case a key was rotated under
//! the same `kid`) triggers [`JwksCache::refetch_after_miss`]: single-flight (concurrent callers share one fetch)
//! and at most once per `jwks_min_refetch_secs`, so a flood of bogus `kid`s costs Clerk at most one request per
//! interval. A failed fetch keeps the last good keys. Fetches are counted in
//! `clerk_jwks_fetches_total{outcome}` (`ok`, `http_error`, `network_error`, `invalid`, `empty`); refetches
//! refused by the rate limit in `clerk_jwks_refetch_throttled_total`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::clerk::jwt::{AuthError, Jwks};
use crate::config::ClerkConfig;

/// A JWKS larger than this is refused (Clerk's holds one or two keys).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Cached signing keys of one Clerk instance. Cheap to clone (shared state).
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: String,
    /// Backend API credentials, only sent to the Backend API `/jwks` (never to a configured `jwks_url`).
    bearer: Option<(String, String)>,
    timeout: Duration,
    refresh_every: Duration,
    min_refetch: Duration,
    current: RwLock<Current>,
    /// Held while fetching: concurrent refetches wait for the one in flight instead of starting their own.
    fetch: tokio::sync::Mutex<FetchState>,
    fetches: AtomicU64,
}

struct Current {
    keys: Arc<Jwks>,
    /// Bumped on every successful fetch or preload; 0 = no keys were ever loaded.
    generation: u64,
}

#[derive(Default)]
struct FetchState {
    /// When the last request-triggered (miss) fetch started: the rate limit applies to these.
    last_miss_fetch: Option<Instant>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (keys, generation) = self.snapshot();
        f.debug_struct("JwksCache")
            .field("url", &self.inner.url)
            .field("keys", &keys)
            .field("generation", &generation)
            .finish()
    }
}

impl JwksCache {
    /// A cache for the instance in `config`; nothing is fetched until the first use or [`Self::refresh`].
    pub fn new(config: &ClerkConfig, client: reqwest::Client) -> Self {
        let (url, bearer) = if config.jwks_url.trim().is_empty() {
            (
                format!("{}/jwks", config.api_url.trim_end_matches('/')),
                (!config.secret_key.is_empty()).then(|| {
                    (
                        config.secret_key.expose().to_string(),
                        config.api_version.clone(),
                    )
                }),
            )
        } else {
            (config.jwks_url.trim().to_string(), None)
        };
        Self {
            inner: Arc::new(Inner {
                client,
                url,
                bearer,
                timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
                refresh_every: Duration::from_secs(config.jwks_refresh_secs.max(1)),
                min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
                current: RwLock::new(Current {
                    keys: Arc::new(Jwks::default()),
                    generation: 0,
                }),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// Where keys are fetched from.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The current keys and their generation (0: never loaded).
    pub fn snapshot(&self) -> (Arc<Jwks>, u64) {
        let current = self.inner.current.read().unwrap_or_else(|e| e.into_inner());
        (current.keys.clone(), current.generation)
    }

    /// The current keys (empty if never loaded).
    pub fn keys(&self) -> Arc<Jwks> {
        self.snapshot().0
    }

    /// HTTP fetches attempted so far (successful or not).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Installs keys from a JWKS document without fetching (static keys, tests, benchmarks).
    pub fn preload(&self, jwks_json: &[u8]) -> Result<(), AuthError> {
        let keys = Jwks::parse(jwks_json)?;
        if keys.is_empty() {
            return Err(AuthError::InvalidJwks("no usable RS256 key".into()));
        }
        self.install(keys);
        Ok(())
    }

    fn install(&self, keys: Jwks) {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        current.keys = Arc::new(keys);
        current.generation += 1;
    }

    /// Fetches now (waiting for a fetch already in flight, then fetching again), not rate-limited: the periodic
    /// refresh. On failure the previous keys stay.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let _guard = self.inner.fetch.lock().await;
        self.fetch_and_install().await
    }

    /// The current keys, loading them first if none were ever loaded (subject to the refetch rate limit).
    pub async fn ensure_loaded(&self) -> Result<(Arc<Jwks>, u64), AuthError> {
        let snapshot = self.snapshot();
        if snapshot.1 > 0 {
            return Ok(snapshot);
        }
        self.refetch_after_miss(0).await;
        let snapshot = self.snapshot();
        if snapshot.1 == 0 {
            return Err(AuthError::KeysUnavailable(
                "the Clerk JWKS could not be fetched".into(),
            ));
        }
        Ok(snapshot)
    }

    /// A token did not verify with the keys of generation `seen_generation` (unknown `kid`, or a signature
    /// mismatch). Returns whether newer keys are now installed, so the caller should retry once.
    ///
    /// Single-flight: callers arriving while a fetch is in flight wait for it and reuse its result. Rate-limited:
    /// at most one such fetch per `jwks_min_refetch_secs`; within the interval nothing is fetched.
    pub async fn refetch_after_miss(&self, seen_generation: u64) -> bool {
        let mut state = self.inner.fetch.lock().await;
        if self.snapshot().1 != seen_generation {
            // Someone fetched while we waited (or before we looked): use their keys.
            return true;
        }
        if let Some(last) = state.last_miss_fetch
            && last.elapsed() < self.inner.min_refetch
        {
            metrics::counter!("clerk_jwks_refetch_throttled_total").increment(1);
            return false;
        }
        state.last_miss_fetch = Some(Instant::now());
        self.fetch_and_install().await.is_ok() && self.snapshot().1 != seen_generation
    }

    /// One HTTP fetch; installs the keys on success. Callers hold the fetch lock.
    async fn fetch_and_install(&self) -> Result<(), AuthError> {
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch().await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err((outcome, _)) => *outcome,
        };
        metrics::counter!("clerk_jwks_fetches_total", "outcome" => outcome).increment(1);
        match result {
            Ok(keys) => {
                tracing::debug!(url = %self.inner.url, keys = keys.len(), "fetched the Clerk JWKS");
                self.install(keys);
                Ok(())
            }
            Err((outcome, message)) => {
                tracing::warn!(url = %self.inner.url, outcome, error = %message, "fetching the Clerk JWKS failed; keeping the previous keys");
                Err(AuthError::KeysUnavailable(message))
            }
        }
    }

    async fn fetch(&self) -> Result<Jwks, (&'static str, String)> {
        let mut request = self
            .inner
            .client
            .get(&self.inner.url)
            .timeout(self.inner.timeout)
            .header(http::header::ACCEPT, "application/json");
        if let Some((secret, version)) = &self.inner.bearer {
            request = request
                .bearer_auth(secret)
                .header("Clerk-API-Version", version);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ("network_error", format!("JWKS request failed: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(("http_error", format!("JWKS endpoint answered {status}")));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(("invalid", "JWKS response is too large".into()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| ("network_error", format!("reading the JWKS failed: {e}")))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(("invalid", "JWKS response is too large".into()));
        }
        let keys = Jwks::parse(&body).map_err(|e| ("invalid", e.to_string()))?;
        if keys.is_empty() {
            return Err(("empty", "JWKS has no usable RS256 key".into()));
        }
        Ok(keys)
    }

    /// Fetches now, then every `jwks_refresh_secs` until `shutdown` (after a failure, retries sooner). Spawn it.
    pub async fn run_refresher(self, shutdown: CancellationToken) {
        let retry = self
            .inner
            .refresh_every
            .min(self.inner.min_refetch.max(Duration::from_secs(1)));
        loop {
            let delay = match self.refresh().await {
                Ok(()) => self.inner.refresh_every,
                Err(_) => retry,
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// A fake Clerk JWKS endpoint for tests: serves whatever JWKS is set, counts requests.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    use crate::config::ClerkConfig;

    #[derive(Default)]
    pub struct FakeClerk {
        pub jwks: Mutex<Vec<u8>>,
        pub hits: AtomicU64,
        /// 0: 200.
        pub status: AtomicU16,
        pub delay_ms: AtomicU64,
        pub last_headers: Mutex<Option<HeaderMap>>,
    }

    impl FakeClerk {
        pub fn hits(&self) -> u64 {
            self.hits.load(Ordering::SeqCst)
        }
        pub fn set_jwks(&self, jwks: Vec<u8>) {
            *self.jwks.lock().unwrap() = jwks;
        }
    }

    async fn serve_jwks(
        State(state): State<Arc<FakeClerk>>,
        headers: HeaderMap,
    ) -> (StatusCode, Vec<u8>) {
        state.hits.fetch_add(1, Ordering::SeqCst);
        *state.last_headers.lock().unwrap() = Some(headers);
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        match state.status.load(Ordering::SeqCst) {
            0 => (StatusCode::OK, state.jwks.lock().unwrap().clone()),
            code => (StatusCode::from_u16(code).unwrap(), b"{}".to_vec()),
        }
    }

    /// Starts the fake on 127.0.0.1:0; returns its base URL (serving `/jwks`) and its state.
    pub async fn start(jwks: Vec<u8>) -> (String, Arc<FakeClerk>) {
        let state = Arc::new(FakeClerk::default());
        state.set_jwks(jwks);
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), state)
    }

    /// The default `[clerk]` configuration, pointed at `base` (Backend API style: `<base>/jwks` with the secret).
    pub fn config(base: &str) -> ClerkConfig {
        let all: toml::Table = toml::from_str(crate::config::DEFAULT_TOML).unwrap();
        let mut clerk: ClerkConfig = all["clerk"].clone().try_into().unwrap();
        clerk.secret_key = crate::config::Secret::new("sk_test_fake");
        clerk.api_url = base.to_string();
        clerk.jwks_url = String::new();
        clerk.issuer = crate::clerk::jwt::test_support::ISSUER.into();
        clerk.authorized_parties = vec![crate::clerk::jwt::test_support::AZP.into()];
        clerk.request_timeout_secs = 5;
        clerk
    }

    pub fn client() -> reqwest::Client {
        crate::outbound::client("Clerk", std::time::Duration::from_secs(5)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::fake::{client, config, start};
    use super::*;
    use crate::clerk::jwt::test_support::*;

    #[tokio::test]
    async fn fetches_from_the_backend_api_with_the_secret_and_version() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let cache = JwksCache::new(&config(&base), client());
        assert_eq!(cache.url(), format!("{base}/jwks"));
        let (keys, generation) = cache.ensure_loaded().await.unwrap();
        assert!(keys.contains(KID1));
        assert_eq!(generation, 1);
        assert_eq!(fake.hits(), 1);
        let headers = fake.last_headers.lock().unwrap().clone().unwrap();
        assert_eq!(headers["authorization"], "Bearer sk_test_fake");
        assert_eq!(
            headers["clerk-api-version"],
            config(&base).api_version.as_str()
        );
        // Loaded: no further fetch.
        cache.ensure_loaded().await.unwrap();
        assert_eq!(fake.hits(), 1);
    }

    #[tokio::test]
    async fn explicit_jwks_url_gets_no_secret() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let mut cfg = config("http://127.0.0.1:9");
        cfg.jwks_url = format!("{base}/jwks");
        let cache = JwksCache::new(&cfg, client());
        cache.refresh().await.unwrap();
        let headers = fake.last_headers.lock().unwrap().clone().unwrap();
        assert!(headers.get("authorization").is_none());
        assert!(format!("{cache:?}").contains(KID1));
        assert!(!format!("{cache:?}").contains("sk_test_fake"));
    }

    #[tokio::test]
    async fn failures_keep_the_last_good_keys() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let cache = JwksCache::new(&config(&base), client());
        cache.refresh().await.unwrap();
        for (status, body) in [(500, jwks(&[])), (0, b"not json".to_vec()), (0, jwks(&[]))] {
            fake.status.store(status, Ordering::SeqCst);
            fake.set_jwks(body);
            assert!(cache.refresh().await.is_err());
            assert!(cache.keys().contains(KID1));
        }
        assert_eq!(cache.snapshot().1, 1);
        assert_eq!(cache.fetch_count(), 4);
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_unavailable_and_rate_limited() {
        let cache = JwksCache::new(&config("http://127.0.0.1:9"), client());
        let err = cache.ensure_loaded().await.unwrap_err();
        assert!(err.is_unavailable());
        assert_eq!(err.code(), "keys_unavailable");
        // Within jwks_min_refetch_secs: no second attempt.
        assert!(cache.ensure_loaded().await.is_err());
        assert_eq!(cache.fetch_count(), 1);
    }

    #[tokio::test]
    async fn refetch_after_miss_is_single_flight_and_rate_limited() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let cache = JwksCache::new(&config(&base), client());
        cache.refresh().await.unwrap();
        fake.delay_ms.store(100, Ordering::SeqCst);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.refetch_after_miss(1).await })
            })
            .collect();
        for task in tasks {
            // Everyone sees the one fetch's new generation.
            assert!(task.await.unwrap());
        }
        assert_eq!(fake.hits(), 2);
        // Throttled now.
        assert!(!cache.refetch_after_miss(2).await);
        assert_eq!(fake.hits(), 2);
    }

    #[tokio::test]
    async fn refresher_runs_periodically_until_shutdown() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let mut cfg = config(&base);
        cfg.jwks_refresh_secs = 1;
        let cache = JwksCache::new(&cfg, client());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(cache.clone().run_refresher(shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(fake.hits() >= 2, "hits {}", fake.hits());
        assert!(cache.keys().contains(KID1));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }
}
