//! Authenticated request cost: requests/second of `GET /api/tenant` with a valid Clerk session token (RS256
//! verification + tenant resolution + gate + a query on the tenant's database) against `GET /health/live` on the
//! same server, with the verified-token cache on, and again with it off, measured with wrk on loopback.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL and `wrk`; `scripts/bench` provides both. Signing keys are served by a tiny
//! JWKS endpoint in this process (the key pair is tests/fixtures/clerk-test-key.*).

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sqlx::{Executor, PgPool};
use tokio_util::sync::CancellationToken;
use wosool::config::Config;
use wosool::provisioning::RegistrationRequest;
use wosool::{Application, Role, TenancyStack};

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
    let database_url = fresh_database(&admin_url).await;
    let jwks_url = serve_jwks().await;

    // A ready tenant linked to a Clerk organization (provisioned without Clerk, then linked).
    let base = config(&database_url, &[]);
    let pool = wosool::db::connect_with_retry(&base.db)
        .await
        .expect("connect");
    wosool::db::migrate(&pool).await.expect("migrate");
    let stack = TenancyStack::build(&base, pool.clone(), None).expect("stack");
    stack
        .provisioner
        .servers()
        .ensure_templates(&pool)
        .await
        .expect("template");
    let request = RegistrationRequest {
        organization_name: "Auth bench".into(),
        admin_email: "owner@example.sa".into(),
        ..RegistrationRequest::default()
    };
    let valid = request.validate(&base.tenancy).expect("valid");
    let registered = stack
        .provisioner
        .register(valid, None, "bench", None)
        .await
        .expect("register");
    stack
        .provisioner
        .execute(registered.run_id, None)
        .await
        .expect("provision");
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
    let cached = serve(config(&database_url, &clerk)).await;
    // Zero (no token cache) is refused for operators by validation; the bench sets it on the loaded config.
    let mut uncached_config = config(&database_url, &clerk);
    uncached_config.clerk.token_cache_entries = 0;
    let uncached = serve(uncached_config).await;

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

fn config(database_url: &str, extra: &[(&str, String)]) -> Config {
    let mut env = vec![
        ("WOSOOL_DB__URL".to_owned(), database_url.to_owned()),
        ("WOSOOL_SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("WOSOOL_LOG__LEVEL".to_owned(), "warn".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Config::load_from(None, env).expect("config")
}

async fn serve(config: Config) -> (std::net::SocketAddr, CancellationToken) {
    let app = Application::build(config, Role::Api)
        .await
        .expect("app builds");
    let address = app.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    (address, stop)
}

async fn fresh_database(admin_url: &str) -> String {
    let admin = PgPool::connect(admin_url).await.expect("connect");
    admin
        .execute("DROP DATABASE IF EXISTS wosool_bench_auth WITH (FORCE)")
        .await
        .expect("drop");
    admin
        .execute("CREATE DATABASE wosool_bench_auth")
        .await
        .expect("create");
    let mut url = url::Url::parse(admin_url).expect("url");
    url.set_path("wosool_bench_auth");
    url.to_string()
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
