//! Salla webhook ingest: verified deliveries accepted per second into the durable inbox (HMAC-SHA256 signature
//! on the raw bytes, inbox row + processing job, group-committed with concurrent deliveries: one transaction and one fsync per batch, each answer after its own row is durable, 200), with p50/p99 latency, against
//! `GET /health/live` on the same server with the same client in the same run.
//!
//! Bodies are the real `order.created` fixture (~12 KiB), each with a distinct order id (the inbox dedupes on
//! the body hash), signed up front so the client spends no time on HMAC. The client is this process: 32
//! concurrent keep-alive connections. The server runs the API role only (no workers compete for the CPU).
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (`scripts/bench` provides it).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use wosool::Role;
use wosool::config::Config;

const SECRET: &str = "bench-salla-webhook-secret";
const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 32;

/// Signed deliveries: body and its `X-Salla-Signature`.
type Deliveries = Arc<Vec<(Vec<u8>, String)>>;

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!(
            "salla_ingest bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)"
        );
        return;
    };
    wosool::install_crypto_provider();
    let database_url = common::fresh_database(&admin_url, "wosool_bench_salla_ingest").await;
    let (address, stop) = common::serve(config(&database_url), Role::Api).await;
    let base = format!("http://{address}");

    let fixture = std::fs::read(format!(
        "{}/../shared/fixtures/salla/order.created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("order.created fixture");
    let template: serde_json::Value = serde_json::from_slice(&fixture).expect("fixture is JSON");
    let deliveries: Deliveries = Arc::new(
        (0..REQUESTS)
            .map(|i| {
                let mut event = template.clone();
                event["data"]["id"] = serde_json::Value::from(5_000_000_000u64 + i as u64);
                let body = serde_json::to_vec(&event).expect("body");
                let mut mac =
                    <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
                mac.update(&body);
                let signature = hex::encode(mac.finalize().into_bytes());
                (body, signature)
            })
            .collect(),
    );
    let size = deliveries[0].0.len();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    // Warm up both paths (connections, the inbox's indexes, the code).
    let _ = run(&client, &base, None, 500).await;

    let live = run(&client, &base, None, REQUESTS).await;
    let ingest = run(&client, &base, Some(deliveries), REQUESTS).await;
    let stored: i64 = {
        let pool = PgPool::connect(&database_url).await.expect("connect");
        sqlx::query_scalar("SELECT count(*) FROM webhook_inbox WHERE provider = 'salla'")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    assert_eq!(stored as usize, REQUESTS, "every delivery is in the inbox");
    println!(
        "GET /health/live:        {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        live.rps, live.p50, live.p99
    );
    println!(
        "POST /webhooks/salla:    {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({size} B bodies; ratio {:.2} vs /health/live; target ≥ 5,000/s with p99 ≤ 20 ms)",
        ingest.rps,
        ingest.p50,
        ingest.p99,
        ingest.rps / live.rps
    );
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

struct Measured {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// `count` requests over `CONCURRENCY` connections: webhook deliveries when `deliveries` is given, else
/// `GET /health/live`.
async fn run(
    client: &reqwest::Client,
    base: &str,
    deliveries: Option<Deliveries>,
    count: usize,
) -> Measured {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, base, next, deliveries) = (
            client.clone(),
            base.to_owned(),
            next.clone(),
            deliveries.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let began = Instant::now();
                let response = match &deliveries {
                    Some(deliveries) => {
                        let (body, signature) = &deliveries[i % deliveries.len()];
                        client
                            .post(format!("{base}/webhooks/salla"))
                            .header("content-type", "application/json")
                            .header("x-salla-security-strategy", "Signature")
                            .header("x-salla-signature", signature)
                            .body(body.clone())
                            .send()
                            .await
                    }
                    None => client.get(format!("{base}/health/live")).send().await,
                }
                .expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                let _ = response.bytes().await;
                latencies.push(began.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(part) = tasks.join_next().await {
        latencies.extend(part.expect("task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Measured {
        rps: count as f64 / elapsed.as_secs_f64(),
        p50: percentile(0.50).as_secs_f64() * 1e3,
        p99: percentile(0.99).as_secs_f64() * 1e3,
    }
}

fn config(database_url: &str) -> Config {
    common::config(
        database_url,
        &[
            ("WOSOOL_DB__MAX_CONNECTIONS", "16".to_owned()),
            ("WOSOOL_SALLA__CLIENT_ID", "bench-client".to_owned()),
            (
                "WOSOOL_SALLA__CLIENT_SECRET",
                "bench-client-secret".to_owned(),
            ),
            ("WOSOOL_SALLA__WEBHOOK_SECRETS", format!("[\"{SECRET}\"]")),
            (
                "WOSOOL_SECRETS__ENCRYPTION_KEYS",
                "[\"bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]".to_owned(),
            ),
        ],
    )
}
