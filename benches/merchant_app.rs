//! The merchant app's screens under load: server time of Home, Customers and Orders (the htmx fragments the app
//! loads as the merchant navigates, and Home as a full page) on a tenant with 50,000 orders, 10,000 customers
//! and 5,000 products, p50 and p99 under 32 concurrent sessions, each a ratio to `GET /api/tenant` measured the
//! same way in the same run. Every request carries its own `wss_` app session (minted as `POST
//! /api/embedded/session` would), so session verification is part of what is measured.
//!
//! Target (issue 15): Home p99 ≤ 20 ms on this machine.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (`scripts/bench` provides it).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wosool::Role;
use wosool::embedded::session::{AppSessions, NewSession, PersonKind};
use wosool::tenancy::MerchantId;

const CONCURRENCY: usize = 32;
/// Requests per session and path: 32 × 40 = 1,280 samples per path.
const PER_SESSION: usize = 40;
const ORDERS: u32 = 50_000;
const CUSTOMERS: u32 = 10_000;
const PRODUCTS: u32 = 5_000;

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!(
            "merchant_app bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)"
        );
        return;
    };
    wosool::install_crypto_provider();
    let database_url = common::fresh_database(&admin_url, "wosool_bench_merchant_app").await;
    let config = common::config(&database_url, &[]);
    let (pool, stack, registered) = common::ready_tenant(&config, "متجر القياس").await;
    let tenant = registered.tenant.clone();

    let started = Instant::now();
    let mut tenant_url = url::Url::parse(&database_url).expect("url");
    tenant_url.set_path(tenant.db_name.as_str());
    let tenant_pool = sqlx::PgPool::connect(tenant_url.as_str())
        .await
        .expect("tenant database");
    common::fill_store(&tenant_pool, ORDERS, CUSTOMERS, PRODUCTS).await;
    eprintln!(
        "store filled: {ORDERS} orders, {CUSTOMERS} customers, {PRODUCTS} products in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let sessions = AppSessions::new(pool.clone(), stack.core.directory(), &config.embedded);
    let mut tokens = Vec::with_capacity(CONCURRENCY);
    for user in 0..CONCURRENCY {
        let minted = sessions
            .create(&NewSession {
                tenant_id: tenant.id,
                person: format!("salla:1:{user}"),
                kind: PersonKind::Staff,
                member_id: None,
                display_name: Some(format!("موظف {user}")),
                merchant: MerchantId::new(1),
                salla_user_id: user as i64,
            })
            .await
            .expect("session");
        tokens.push(minted.token);
    }
    let tokens = Arc::new(tokens);

    let (address, stop) = common::serve(config, Role::Api).await;
    let base = format!("http://{address}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");

    let paths: [(&str, &str, bool); 5] = [
        ("GET /api/tenant (baseline)", "/api/tenant", false),
        ("Home (fragment)", "/app/home", true),
        ("Home (full page)", "/app/home", false),
        ("Customers (fragment)", "/app/customers", true),
        ("Orders (fragment)", "/app/orders", true),
    ];
    // Home's figures are cached per tenant and period for 30 s: its first load of a period computes them
    // (one pass over the window's orders per figure). Timed once per period, before anything is warm.
    let mut cold_home = Vec::new();
    for period in [7, 30, 90] {
        let url = format!("{base}/app/home?period={period}");
        let started = Instant::now();
        let response = client
            .get(&url)
            .bearer_auth(&tokens[0])
            .header("HX-Request", "true")
            .send()
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await.expect("body");
        cold_home.push((period, started.elapsed()));
    }
    // Warm up: connections, plans, caches.
    for (_, path, fragment) in &paths {
        let _ = run(&client, &base, path, *fragment, &tokens, 3).await;
    }
    let mut results = Vec::new();
    for (name, path, fragment) in &paths {
        let latencies = run(&client, &base, path, *fragment, &tokens, PER_SESSION).await;
        results.push((*name, latencies));
    }
    stop.cancel();

    let (base_p50, base_p99) = (
        percentile(&results[0].1, 50.0),
        percentile(&results[0].1, 99.0),
    );
    println!(
        "merchant_app: {CONCURRENCY} concurrent sessions, {PER_SESSION} requests each per path"
    );
    println!(
        "{:<28} {:>9} {:>9} {:>12} {:>12}",
        "path", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio"
    );
    for (name, latencies) in &results {
        let (p50, p99) = (percentile(latencies, 50.0), percentile(latencies, 99.0));
        println!(
            "{name:<28} {:>9.2} {:>9.2} {:>11.2}× {:>11.2}×",
            ms(p50),
            ms(p99),
            p50.as_secs_f64() / base_p50.as_secs_f64(),
            p99.as_secs_f64() / base_p99.as_secs_f64(),
        );
    }
    for (period, elapsed) in &cold_home {
        println!(
            "Home, figures computed (first load of the {period}-day period): {:.2} ms",
            ms(*elapsed)
        );
    }
    let home_p99 = percentile(&results[1].1, 99.0);
    println!(
        "Home p99 {:.2} ms: target ≤ 20 ms {}",
        ms(home_p99),
        if home_p99 <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// `per_session` sequential requests on each of the sessions at once; every latency, each request checked.
async fn run(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    fragment: bool,
    tokens: &Arc<Vec<String>>,
    per_session: usize,
) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for session in 0..tokens.len() {
        let tokens = Arc::clone(tokens);
        let client = client.clone();
        let url = format!("{base}{path}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_session);
            for _ in 0..per_session {
                let mut request = client.get(&url).bearer_auth(&tokens[session]);
                if fragment {
                    request = request.header("HX-Request", "true");
                }
                let started = Instant::now();
                let response = request.send().await.expect("request");
                let status = response.status();
                let body = response.bytes().await.expect("body");
                latencies.push(started.elapsed());
                assert!(
                    status.is_success(),
                    "{url}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
