//! Clerk session-token verification cost: `verify_with_jwks` cold (JWKS parse + full RS256 verification) vs
//! `SessionVerifier::verify` without the token cache (cached JWKS, full RS256) vs with a cached token (SHA-256 +
//! cache lookup, no RSA). No network: the verifier's JWKS cache is preloaded.

use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::Criterion;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use wosool::clerk::jwt::{VerifyOptions, verify_with_jwks};
use wosool::clerk::session::SessionVerifier;
use wosool::config::ClerkConfig;

/// The test key pair in tests/fixtures (private PEM, and the public modulus for the JWKS).
fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
    .trim()
    .to_owned()
}

const KID: &str = "ins_2GIoQhbUpy0hX7B2cVkuTMinXoD";
const ISSUER: &str = "https://clerk.example.com";
const AZP: &str = "https://app.example.com";

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn token(now: i64) -> String {
    let header = json!({"alg": "RS256", "kid": KID, "typ": "JWT", "cat": "cl_B7d4PD111AAA", "oiat": 1_716_883_200});
    let claims = json!({
        "azp": AZP, "exp": now + 3600, "fea": "o:dashboard,o:teams", "fva": [0, -1], "iat": now,
        "iss": ISSUER, "jti": "004f0096e5cd44911924", "nbf": now - 10,
        "o": {"fpm": "3,2", "id": "org_123", "per": "manage,read", "rol": "admin", "slg": "example-org"},
        "sid": "sess_123", "sub": "user_123", "v": 2
    });
    let message = format!("{}.{}", b64(&header), b64(&claims));
    let der: String = fixture("clerk-test-key.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key = EncodingKey::from_rsa_der(&STANDARD.decode(der).unwrap());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{message}.{signature}")
}

fn config() -> ClerkConfig {
    let all: toml::Table = toml::from_str(wosool::config::DEFAULT_TOML).unwrap();
    let mut clerk: ClerkConfig = all["clerk"].clone().try_into().unwrap();
    clerk.jwks_url = "http://127.0.0.1:9/jwks".into(); // never fetched: keys are preloaded
    clerk.issuer = ISSUER.into();
    clerk.authorized_parties = vec![AZP.into()];
    clerk
}

fn per_op(label: &str, iterations: u32, mut f: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let each = start.elapsed() / iterations;
    println!("clerk: {label}: {each:?} per call");
}

fn main() {
    let rt = Runtime::new().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let jwks = serde_json::to_vec(
        &json!({"keys": [{"use": "sig", "kty": "RSA", "kid": KID, "alg": "RS256", "n": &fixture("clerk-test-key.n"), "e": "AQAB"}]}),
    )
    .unwrap();
    let token = token(now);
    let opts = VerifyOptions {
        issuer: Some(ISSUER.into()),
        authorized_parties: vec![AZP.into()],
        leeway_secs: 5,
        now_unix: now,
    };
    verify_with_jwks(&token, &jwks, &opts).unwrap();

    wosool::install_crypto_provider();
    let client = reqwest::Client::new();
    let cached = SessionVerifier::new(&config(), client.clone());
    cached.jwks().preload(&jwks).unwrap();
    let uncached = SessionVerifier::new(&config(), client).with_token_cache(false);
    uncached.jwks().preload(&jwks).unwrap();
    rt.block_on(cached.verify(&token)).unwrap();
    rt.block_on(uncached.verify(&token)).unwrap();

    // A quick summary first, then criterion's measurements.
    per_op("verify_with_jwks (cold)", 500, || {
        verify_with_jwks(black_box(&token), &jwks, &opts).unwrap();
    });
    per_op("SessionVerifier::verify, token cache off", 500, || {
        rt.block_on(uncached.verify(black_box(&token))).unwrap();
    });
    per_op("SessionVerifier::verify, cached token", 50_000, || {
        rt.block_on(cached.verify(black_box(&token))).unwrap();
    });

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("clerk_verify");
    group.bench_function("verify_with_jwks_cold", |b| {
        b.iter(|| verify_with_jwks(black_box(&token), &jwks, &opts).unwrap())
    });
    group.bench_function("session_verify_cache_off", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.verify(black_box(&token)).await.unwrap() })
    });
    group.bench_function("session_verify_cached", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.verify(black_box(&token)).await.unwrap() })
    });
    group.finish();
    c.final_summary();
    assert_eq!(
        cached.verified_count(),
        1,
        "the cached path must not re-verify"
    );
}
