//! Authenticated request cost: requests/second of `GET /api/tenant` with a valid Clerk session token (RS256
//! verification + tenant resolution + gate + a query on the tenant's database) against `GET /health/live` on the
//! same server, with the verified-token cache on, and again with it off, measured with wrk on loopback.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL and `wrk`; `scripts/bench` provides both. Signing keys are served by a tiny
//! JWKS endpoint in this process (the key pair is tests/fixtures/clerk-test-key.*).

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use wosool::Role;

const SECONDS: &str = "10";
const ISSUER: &str = "https://clerk.bench.test";
const ORG: &str = "org_bench";

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!("auth bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)");
        return;
    };
    wosool::install_crypto_provider();
    let database_url = common::fresh_database(&admin_url, "wosool_bench_auth").await;
    let jwks_url = serve_jwks().await;

    // A ready tenant linked to a Clerk organization (provisioned without Clerk, then linked).
    let base = common::config(&database_url, &[]);
    let (pool, _stack, _registered) = common::ready_tenant(&base, "Auth bench").await;
    sqlx::query("UPDATE tenants SET clerk_org_id = $1")
        .bind(ORG)
        .execute(&pool)
        .await
        .expect("link");

    let clerk = [
        ("WOSOOL_CLERK__SECRET_KEY", "sk_test_bench".to_owned()),
        ("WOSOOL_CLERK__JWKS_URL", jwks_url.clone()),
        ("WOSOOL_CLERK__ISSUER", ISSUER.to_owned()),
    ];
    let token = sign();
    let cached = common::serve(common::config(&database_url, &clerk), Role::Api).await;
    // Zero (no token cache) is refused for operators by validation; the bench sets it on the loaded config.
    let mut uncached_config = common::config(&database_url, &clerk);
    uncached_config.clerk.token_cache_entries = 0;
    let uncached = common::serve(uncached_config, Role::Api).await;

    let live = measure(cached.0, "/health/live", None).await;
    let with_cache = measure(cached.0, "/api/tenant", Some(token.clone())).await;
    let without_cache = measure(uncached.0, "/api/tenant", Some(token)).await;
    println!("GET /health/live:                         {live:.0} req/s");
    println!(
        "GET /api/tenant, Clerk token, cache on:  {with_cache:.0} req/s (ratio {:.2} vs /health/live; target ≥ 0.5)",
        with_cache / live
    );
    println!(
        "GET /api/tenant, Clerk token, cache off: {without_cache:.0} req/s (ratio {:.2} vs /health/live)",
        without_cache / live
    );
    cached.1.cancel();
    uncached.1.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

async fn serve_jwks() -> String {
    let jwks = json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "bench", "n": fixture("clerk-test-key.n").trim(), "e": "AQAB",
    }] });
    let router = Router::new().route(
        "/jwks",
        get(move || async move { axum::Json(jwks.clone()) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}/jwks")
}

/// A v2 session token for the bench organization, valid for the whole run.
fn sign() -> String {
    let pem = fixture("clerk-test-key.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("pem");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "v": 2, "sub": "user_bench", "sid": "sess_bench", "iss": ISSUER,
        "iat": now, "nbf": now - 10, "exp": now + 3600, "o": { "id": ORG, "rol": "admin", "slg": "bench" },
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(&der)).expect("sign")
}

async fn measure(address: std::net::SocketAddr, path: &str, token: Option<String>) -> f64 {
    let url = format!("http://{address}{path}");
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new("wrk");
        command.args(["-t", "1", "-c", "32", "-d", SECONDS]);
        if let Some(token) = &token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let output = command
            .arg(&url)
            .output()
            .expect("wrk installed (scripts/bench installs it)");
        let text = String::from_utf8_lossy(&output.stdout);
        let non2xx = text.lines().any(|l| l.contains("Non-2xx"));
        assert!(!non2xx, "errors while measuring {url}:\n{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("could not read wrk output:\n{text}"))
    })
    .await
    .expect("wrk")
}
