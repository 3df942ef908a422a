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

/// A throwaway RSA-2048 key used only by this benchmark.
const KEY_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAk6jF1oLkgIS1S2wVbBiai/eKGxQXNsALLDWQL2cQXN6WMGud
6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Eco+MCp8baBCpI9roNa6EFvamhXwXX
D81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8wt+eqerYayPKspK0I7vDnLIxJDj1E
QfaGxefH5xDF8DK/Rcp+wQwZ4+6n06GzqEwBrjq1Ec9OIJkrMXkxYJ3FcmJOw1sF
dd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadBWPRcn0i/YjUCtXvCoiqoxDYpLq3/
O5lmQQlDrZDLU+dNvf3ufe2xpbtLR5KjKNZLvwIDAQABAoIBAAql+6prYxDKQTa7
XdTJ9hniPpaS/X+THDB9Jl+SFlHUMs7dcT7/o7EcI1ipVga69Bsps3Gss+70iyF4
dJ8NBVHjn5U7gmJq2DsuvKQGhzRKb4WQ6sBMJUxXoDnj6vZWrjoOaGa6sVMZrqSS
aLs+HdR4A554081VBCfrWz8RUWKFbpoWxkmZuXdhCG0EydWf6AJeJZCy/oG4uQeo
3EAe7rk1itHbhE4n2tkCegm3nuIV4LvpYNfdcweynB0TLgzZqHtoJtMYZVPi9lsJ
b857rBxcLGrGNwigiRuwVZB7vDW2r/thEZfHV3bJYXVXjxZS5Eqm1cV97k+WRcZC
K6WCG+kCgYEAz3RH80qHnqmPhIce07EEgx1LwBeRYcKhtWrVA5Ij6EtjgzQm5X95
BdCalhU08JzwCUNe1745WM6dIEo/14Qe4wHLMyCW3kn+N0YQ5kQfwVFmqpPDeVOz
3wg5Vf6rugwIaXvUBB9ta/q8YMaduoTuokeo0Mbq5KcnCvICf2qag8kCgYEAtjZs
yYeo85aif/v8u73vbkGjUeB9xL07yiJH27ycBiGZxwTPoB9n+HtP9N3QIWoAgSYQ
BE2LLsdMjbtNrPDa+hXMaSwDBgyYxot8PaVhlmYFxtRodVySnQZUlWG7AHGWVXKI
96SDMM3n1Z6JdCyeDU176+i73xEpqLq/xCN3R0cCgYBdpMChur/TR/jnutKYfixq
Pvwlnr3aYi/6o1m6PeqFfhpSbGUubUck79AH9VSrVDwqAkY6nrxmMQXOQJXm49XJ
ZNLjpk9T0hS1wKP6PUAUVHlCgGbZSoZEJAM1pTrBRZM6glHm9oS/HDSSfrVOL5lE
mZJDg7ceNbGzCCFGgMl0uQKBgHLQuJwEr6FOOfcLgaWLeWOwWIkvPBDMbPBhyYXc
wzPZ2Fxf27S6FXmtuiRB4PQtJ0Q6B72uXxWK3+IvNDLVUiZjtfpPkVgud9Yj7pWp
sGRkxR8UmP3a50eqxYGbo4oUCPauxT/GmiQWmw8wZsydkLoxKPTuIfPdjLKVemDN
OEvhAoGBALdj5JWAQySjXUt16DBsOXiqecpwH22bFURjJ0DsecAdpn0Dk0L2ePJA
0M4FSc3cPSNHPsZs2zzyQKaH/6jYd9xPFBz831LMh/HCipdV7vzEldgKIMoYj310
LKkquOeRJz7c3/RC6sZ0TO+72YnMCt2kfoqwlzIr6JMq9Xg/iPvT
-----END RSA PRIVATE KEY-----";
const KEY_N: &str = "k6jF1oLkgIS1S2wVbBiai_eKGxQXNsALLDWQL2cQXN6WMGud6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Eco-MCp8baBCpI9roNa6EFvamhXwXXD81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8wt-eqerYayPKspK0I7vDnLIxJDj1EQfaGxefH5xDF8DK_Rcp-wQwZ4-6n06GzqEwBrjq1Ec9OIJkrMXkxYJ3FcmJOw1sFdd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadBWPRcn0i_YjUCtXvCoiqoxDYpLq3_O5lmQQlDrZDLU-dNvf3ufe2xpbtLR5KjKNZLvw";
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
    let der: String = KEY_PEM
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
        &json!({"keys": [{"use": "sig", "kty": "RSA", "kid": KID, "alg": "RS256", "n": KEY_N, "e": "AQAB"}]}),
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
