//! Access cost: `GET /api/tenant` with a tenant API key — key lookup, status gate, the Redis-backed rate limit
//! (one script round trip per request) and the permission check — against `GET /health/live` on the same
//! server in the same run, over loopback HTTP with wrk, on a real PostgreSQL and Redis. Target: a ratio ≥ 0.7.
//! The same route with limits off is measured once, to show what the limiter itself costs.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL, WOSOOL_BENCH_REDIS_URL and `wrk`; `scripts/bench --bench access` provides
//! them.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use wosool::Role;

const SECONDS: &str = "10";
const CONNECTIONS: &str = "32";
const ROUNDS: usize = 3;

struct Run {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[tokio::main]
async fn main() {
    let (Ok(admin_url), Ok(redis_url)) = (
        std::env::var("WOSOOL_BENCH_DATABASE_URL"),
        std::env::var("WOSOOL_BENCH_REDIS_URL"),
    ) else {
        eprintln!(
            "access bench skipped: WOSOOL_BENCH_DATABASE_URL / WOSOOL_BENCH_REDIS_URL not set (run scripts/bench)"
        );
        return;
    };
    wosool::install_crypto_provider();
    let database_url = common::fresh_database(&admin_url, "wosool_bench_access").await;
    let base = common::config(&database_url, &[]);
    let (_pool, stack, registered) = common::ready_tenant(&base, "Access bench").await;
    let (_, api_key) = stack
        .core
        .directory()
        .create_api_key(
            registered.tenant.id,
            "bench",
            wosool::access::Scope::Read,
            "bench",
        )
        .await
        .expect("API key");
    let header = format!("Authorization: Bearer {api_key}");

    // Limits on and shared through Redis, but high enough that wrk is never refused: every request pays
    // for the full check.
    let prefix = format!("bench-access-{}", uuid::Uuid::new_v4().simple());
    let mut limited = vec![
        ("WOSOOL_REDIS__URL", redis_url.clone()),
        ("WOSOOL_REDIS__KEY_PREFIX", prefix),
        ("WOSOOL_RATE_LIMITS__ENABLED", "true".to_owned()),
    ];
    for plan in ["DEFAULT", "FREE", "STARTER", "GROWTH", "ENTERPRISE"] {
        for (field, value) in [("REQUESTS_PER_MINUTE", "100000000"), ("BURST", "10000000")] {
            let key: &'static str = format!("WOSOOL_RATE_LIMITS__PLANS__{plan}__{field}").leak();
            limited.push((key, value.to_owned()));
        }
    }
    let (app, stop) = common::serve(common::config(&database_url, &limited), Role::Api).await;
    let mut unlimited_env = limited.clone();
    unlimited_env.push(("WOSOOL_RATE_LIMITS__ENABLED", "false".to_owned()));
    let (plain, stop_plain) =
        common::serve(common::config(&database_url, &unlimited_env), Role::Api).await;

    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let live = measure(format!("http://{app}/health/live"), None).await;
        let tenant = measure(format!("http://{app}/api/tenant"), Some(header.clone())).await;
        let ratio = tenant.requests_per_sec / live.requests_per_sec;
        println!(
            "round {round}: GET /health/live {:>7.0} req/s (p50 {:.2} ms, p99 {:.2} ms); \
             GET /api/tenant (API key, limiter on) {:>7.0} req/s (p50 {:.2} ms, p99 {:.2} ms): ratio {ratio:.2}",
            live.requests_per_sec,
            live.p50_ms,
            live.p99_ms,
            tenant.requests_per_sec,
            tenant.p50_ms,
            tenant.p99_ms,
        );
        ratios.push(ratio);
    }
    let off = measure(format!("http://{plain}/api/tenant"), Some(header)).await;
    println!(
        "GET /api/tenant with limits off: {:>7.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
        off.requests_per_sec, off.p50_ms, off.p99_ms
    );
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio GET /api/tenant / GET /health/live: {:.2} (target ≥ 0.7)",
        ratios[ratios.len() / 2]
    );
    stop.cancel();
    stop_plain.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn measure(url: String, header: Option<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new("wrk");
        command.args(["-t", "1", "-c", CONNECTIONS, "-d", SECONDS, "--latency"]);
        if let Some(header) = &header {
            command.args(["-H", header]);
        }
        let output = command
            .arg(&url)
            .output()
            .expect("wrk installed (scripts/bench installs it)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            !text.lines().any(|l| l.contains("Non-2xx")),
            "errors while measuring {url}:\n{text}"
        );
        let requests_per_sec = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("could not read wrk output:\n{text}"));
        let percentile = |p: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(p))
                .and_then(|v| milliseconds(v.trim()))
                .unwrap_or_else(|| panic!("no {p} in wrk output:\n{text}"))
        };
        Run {
            requests_per_sec,
            p50_ms: percentile("50%"),
            p99_ms: percentile("99%"),
        }
    })
    .await
    .expect("wrk")
}

/// wrk's latency figures (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn milliseconds(value: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}
