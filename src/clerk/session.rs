//! Clerk session verification for requests: token extraction, the verified-token cache, JWKS refetch on a miss.
//!
//! [`SessionVerifier::verify`] first looks the token up by SHA-256 in a bounded cache whose entries expire at the
//! token's `exp`, so a repeated token costs no RSA work; on a miss it verifies with the cached JWKS
//! ([`crate::clerk::jwt::verify_with_keys`]) and, when the `kid` is unknown or the signature does not match,
//! refetches the JWKS once (single-flight, rate-limited; see [`JwksCache`]) and retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::clerk::jwks::JwksCache;
use crate::clerk::jwt::{self, AuthError, MAX_TOKEN_LEN, SessionClaims, VerifyOptions};
use crate::config::ClerkConfig;

/// Prefix of our own API keys: a `Bearer wsl_…` is not a Clerk session token.
pub const API_KEY_PREFIX: &str = "wsl_";
/// The cookie Clerk keeps the session token in (same-origin requests).
pub const SESSION_COOKIE: &str = "__session";

type TokenHash = [u8; 32];

/// Verifies Clerk session tokens for one instance. Cheap to clone (shared caches).
#[derive(Clone)]
pub struct SessionVerifier {
    jwks: JwksCache,
    settings: Arc<Settings>,
    cache: Option<Cache<TokenHash, Arc<SessionClaims>>>,
    stats: Arc<Stats>,
}

struct Settings {
    issuer: Option<String>,
    authorized_parties: Vec<String>,
    leeway_secs: u64,
    cache_entries: u64,
}

#[derive(Default)]
struct Stats {
    verified: AtomicU64,
}

/// Cached claims live until the token's `exp`.
struct UntilExpiry;

impl Expiry<TokenHash, Arc<SessionClaims>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        claims: &Arc<SessionClaims>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let remaining = claims.expires_at().saturating_sub(now_unix()).max(0);
        Some(Duration::from_secs(remaining.unsigned_abs()))
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl std::fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionVerifier")
            .field("jwks", &self.jwks)
            .field("issuer", &self.settings.issuer)
            .field("authorized_parties", &self.settings.authorized_parties)
            .field("token_cache", &self.cache.is_some())
            .finish()
    }
}

impl SessionVerifier {
    /// A verifier for the instance in `config`, with its own JWKS cache (spawn
    /// `verifier.jwks().clone().run_refresher(shutdown)` to keep keys fresh) and a token cache of
    /// `token_cache_entries` entries (0 disables it).
    pub fn new(config: &ClerkConfig, client: reqwest::Client) -> Self {
        Self::with_jwks(config, JwksCache::new(config, client))
    }

    /// A verifier using an existing JWKS cache.
    pub fn with_jwks(config: &ClerkConfig, jwks: JwksCache) -> Self {
        let issuer = Some(config.issuer.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let settings = Settings {
            issuer,
            authorized_parties: config
                .authorized_parties
                .iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            leeway_secs: config.leeway_secs,
            cache_entries: config.token_cache_entries,
        };
        let verifier = Self {
            jwks,
            settings: Arc::new(settings),
            cache: None,
            stats: Arc::default(),
        };
        verifier.with_token_cache(config.token_cache_entries > 0)
    }

    /// Turns the verified-token cache on (bounded by `token_cache_entries`, at least 1) or off (every call does
    /// the full RSA verification: benchmarks).
    pub fn with_token_cache(mut self, enabled: bool) -> Self {
        self.cache = enabled.then(|| {
            Cache::builder()
                .max_capacity(self.settings.cache_entries.max(1))
                .expire_after(UntilExpiry)
                .build()
        });
        self
    }

    /// The JWKS cache (to run its refresher, or preload keys).
    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// How many tokens went through full signature verification successfully (cache misses).
    pub fn verified_count(&self) -> u64 {
        self.stats.verified.load(Ordering::Relaxed)
    }

    /// Verifies a session token now; see the module documentation.
    pub async fn verify(&self, token: &str) -> Result<Arc<SessionClaims>, AuthError> {
        self.verify_at(token, now_unix()).await
    }

    /// [`Self::verify`] with an explicit clock (Unix seconds). The cache's entry lifetime still follows the real
    /// clock.
    pub async fn verify_at(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<Arc<SessionClaims>, AuthError> {
        let result = self.verify_inner(token, now_unix).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        metrics::counter!("clerk_session_verifications_total", "outcome" => outcome).increment(1);
        result
    }

    async fn verify_inner(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<Arc<SessionClaims>, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("token is too long"));
        }
        let Some(cache) = &self.cache else {
            return self.verify_uncached(token, now_unix).await.map(Arc::new);
        };
        let key: TokenHash = Sha256::digest(token.as_bytes()).into();
        // Concurrent misses on the same token share one verification.
        let claims = cache
            .try_get_with(key, async {
                self.verify_uncached(token, now_unix).await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())?;
        // Entries expire at `exp`; this only guards a caller-supplied clock or expiry timing slack.
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(i64::MAX);
        if claims.expires_at().saturating_add(leeway) <= now_unix {
            cache.invalidate(&key).await;
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<SessionClaims, AuthError> {
        let opts = VerifyOptions {
            issuer: self.settings.issuer.clone(),
            authorized_parties: self.settings.authorized_parties.clone(),
            leeway_secs: self.settings.leeway_secs,
            now_unix,
        };
        // Refuse bad headers (alg none, HS256…) before touching the JWKS at all.
        jwt::token_kid(token)?;
        let (keys, generation) = self.jwks.ensure_loaded().await?;
        let claims = match jwt::verify_with_keys(token, &keys, &opts) {
            Err(first @ (AuthError::UnknownKid(_) | AuthError::InvalidSignature)) => {
                if !self.jwks.refetch_after_miss(generation).await {
                    return Err(first);
                }
                jwt::verify_with_keys(token, &self.jwks.keys(), &opts)?
            }
            other => other?,
        };
        self.stats.verified.fetch_add(1, Ordering::Relaxed);
        Ok(claims)
    }
}

/// The session token of a request: `Authorization: Bearer <jwt>` (unless it is one of our `wsl_` API keys, which
/// is not a session: `None`), else the `__session` cookie.
pub fn token_from_headers(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Some((scheme, token)) = value.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        let token = token.trim();
        if token.starts_with(API_KEY_PREFIX) {
            return None;
        }
        if !token.is_empty() {
            return Some(token);
        }
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .find(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::clerk::jwks::fake::{client, config, start};
    use crate::clerk::jwt::test_support::*;

    #[tokio::test]
    async fn verifies_and_caches_tokens() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let verifier = SessionVerifier::new(&config(&base), client());
        let token = v1_token(now_unix());
        for _ in 0..100 {
            let claims = verifier.verify(&token).await.unwrap();
            assert_eq!(claims.org_id(), Some("org_xxxxxxx"));
        }
        assert_eq!(verifier.verified_count(), 1);
        assert_eq!(fake.hits(), 1);

        let uncached = SessionVerifier::new(&config(&base), client()).with_token_cache(false);
        for _ in 0..10 {
            uncached.verify(&token).await.unwrap();
        }
        assert_eq!(uncached.verified_count(), 10);

        // Concurrent first sightings of one token: one verification.
        let fresh = SessionVerifier::new(&config(&base), client());
        fresh.jwks().refresh().await.unwrap();
        let other = sign(
            &header(KID1),
            &with_sub(v1_claims(now_unix()), "user_other"),
            KEY1_PEM,
        );
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (fresh, other) = (fresh.clone(), other.clone());
                tokio::spawn(
                    async move { fresh.verify(&other).await.map(|c| c.user_id().to_string()) },
                )
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "user_other");
        }
        assert_eq!(fresh.verified_count(), 1);
    }

    fn with_sub(mut claims: serde_json::Value, sub: &str) -> serde_json::Value {
        claims["sub"] = json!(sub);
        claims
    }

    #[tokio::test]
    async fn invalid_tokens_are_not_cached() {
        let (base, _fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let verifier = SessionVerifier::new(&config(&base), client());
        let mut claims = v1_claims(now_unix());
        claims["azp"] = json!("https://evil.example.com");
        let token = sign(&header(KID1), &claims, KEY1_PEM);
        for _ in 0..3 {
            assert_eq!(
                verifier.verify(&token).await.unwrap_err(),
                AuthError::InvalidAuthorizedParty
            );
        }
        let expired = v1_token(now_unix() - 3600);
        assert_eq!(
            verifier.verify(&expired).await.unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verifier.verify("").await.unwrap_err(),
            AuthError::MissingToken
        );
        assert_eq!(verifier.verified_count(), 0);
    }

    #[tokio::test]
    async fn key_rotation_triggers_one_refetch() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let verifier = SessionVerifier::new(&config(&base), client());
        verifier.jwks().refresh().await.unwrap();
        verifier.verify(&v1_token(now_unix())).await.unwrap();
        assert_eq!(fake.hits(), 1);

        fake.set_jwks(jwks(&[(KID2, KEY2_N)]));
        let rotated = sign(&header(KID2), &v2_claims(now_unix()), KEY2_PEM);
        let claims = verifier.verify(&rotated).await.unwrap();
        assert_eq!(claims.org_id(), Some("org_123"));
        assert_eq!(fake.hits(), 2);
        verifier.verify(&rotated).await.unwrap();
        assert_eq!(fake.hits(), 2);
    }

    #[tokio::test]
    async fn bogus_kid_flood_is_bounded() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        fake.delay_ms.store(50, Ordering::SeqCst);
        let verifier = SessionVerifier::new(&config(&base), client());
        verifier.jwks().refresh().await.unwrap();
        let before = fake.hits();
        let now = now_unix();
        for _wave in 0..2 {
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let verifier = verifier.clone();
                    let token = sign(
                        &header(&format!("ins_bogus_{i}_{_wave}")),
                        &v1_claims(now),
                        KEY1_PEM,
                    );
                    tokio::spawn(async move { verifier.verify(&token).await })
                })
                .collect();
            for task in tasks {
                assert!(matches!(task.await.unwrap(), Err(AuthError::UnknownKid(_))));
            }
        }
        let fetches = fake.hits() - before;
        assert!(
            (1..=2).contains(&fetches),
            "{fetches} JWKS fetches for 400 bogus kids"
        );
    }

    #[tokio::test]
    async fn refused_algorithms_never_fetch_keys() {
        let (base, fake) = start(jwks(&[(KID1, KEY1_N)])).await;
        let verifier = SessionVerifier::new(&config(&base), client());
        let header = json!({"alg": "HS256", "kid": "ins_x"});
        let token = sign_hs256(&header, &v1_claims(now_unix()), KEY1_PUBLIC_PEM.as_bytes());
        assert!(matches!(
            verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(fake.hits(), 0);
    }

    #[test]
    fn token_extraction() {
        let mut headers = HeaderMap::new();
        assert_eq!(token_from_headers(&headers), None);
        headers.insert(
            "cookie",
            HeaderValue::from_static("a=b; __session=eyJ.cookie.sig; c=d"),
        );
        assert_eq!(token_from_headers(&headers), Some("eyJ.cookie.sig"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer eyJ.bearer.sig"),
        );
        assert_eq!(token_from_headers(&headers), Some("eyJ.bearer.sig"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("bearer  eyJ.lower.sig "),
        );
        assert_eq!(token_from_headers(&headers), Some("eyJ.lower.sig"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer wsl_live_abc"),
        );
        assert_eq!(token_from_headers(&headers), None);
        headers.insert(
            "authorization",
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(token_from_headers(&headers), Some("eyJ.cookie.sig"));
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("__session_abc=x"));
        headers.append("cookie", HeaderValue::from_static("__session="));
        assert_eq!(token_from_headers(&headers), None);
        headers.append("cookie", HeaderValue::from_static("other=1;__session=tok"));
        assert_eq!(token_from_headers(&headers), Some("tok"));
    }
}
