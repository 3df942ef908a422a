//! HTTP base overhead: requests/second of `GET /health/live` through the full middleware stack against the
//! same route on a bare axum router, both served by this process, measured with wrk on loopback.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (the app needs its database to start) and `wrk`; `scripts/bench` provides both.

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use wosool::config::Config;
use wosool::{Application, Role};

const SECONDS: &str = "10";

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!("http bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)");
        return;
    };
    let env = vec![
        ("DATABASE_URL".to_string(), admin_url),
        (
            "WOSOOL_SERVER__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("WOSOOL_LOG__LEVEL".to_string(), "warn".to_string()),
    ];
    let config = Config::load_from(None, env).expect("config");
    wosool::telemetry::init_logging(&config.log);
    let app = Application::build(config, Role::Api)
        .await
        .expect("app builds");
    let full = app.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run(stop.clone()));

    let bare = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bare_addr = bare.local_addr().expect("addr");
    let bare_router = Router::new().route(
        "/health/live",
        get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    tokio::spawn(async move { axum::serve(bare, bare_router).await });

    // wrk blocks; run it off the runtime's worker threads.
    let bare_rps =
        tokio::task::spawn_blocking(move || wrk(&format!("http://{bare_addr}/health/live")))
            .await
            .expect("wrk");
    let full_rps = tokio::task::spawn_blocking(move || wrk(&format!("http://{full}/health/live")))
        .await
        .expect("wrk");
    println!("bare axum router:      {bare_rps:.0} req/s");
    println!("full middleware stack: {full_rps:.0} req/s");
    println!("ratio full/bare:       {:.2}", full_rps / bare_rps);

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
}

fn wrk(url: &str) -> f64 {
    let output = Command::new("wrk")
        .args(["-t", "1", "-c", "32", "-d", SECONDS, "--latency", url])
        .output()
        .expect("wrk installed (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("could not read wrk output:\n{text}"))
}
