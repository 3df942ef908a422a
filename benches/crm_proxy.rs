//! CRM proxy overhead: `GET /crm/rest/people` through the app (tenant API key → tenant resolution → gate → rate
//! limit → cached Twenty credentials → pooled upstream connection → streamed response) against the same
//! request through nginx (`proxy_pass` with upstream keep-alive), both to one fast in-process upstream that
//! answers a small JSON, measured with wrk on loopback. Targets: requests/s ratio ≥ 0.7, added p99 ≤ 1 ms.
//!
//! On a shared 2-core machine one 10-second run of each drifts by ±7% between runs, so nginx and the proxy are
//! measured alternately in several rounds and the ratio is the median of the rounds' ratios.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL, `wrk` and `nginx`; `scripts/bench` provides them.

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use wosool::Role;
use wosool::config::Config;
use wosool::secrets::Keyring;

const SECONDS: &str = "5";
const ROUNDS: usize = 5;
const CONNECTIONS: &str = "32";
const ENCRYPTION_KEY: &str = "bench:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const TWENTY_KEY: &str = "twenty-bench-key";
const PEOPLE: &str = r#"{"data":{"people":[{"id":"0b1c7e1e-5b0a-4c7e-9f55-1d2a3b4c5d6e","name":{"firstName":"Sara","lastName":"Al-Harbi"},"emails":{"primaryEmail":"sara@example.sa"}}]},"pageInfo":{"hasNextPage":false,"startCursor":"a","endCursor":"a"},"totalCount":1}"#;

/// What wrk measured.
struct Run {
    requests_per_sec: f64,
    p99_ms: f64,
}

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!("crm_proxy bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)");
        return;
    };
    wosool::install_crypto_provider();
    let database_url = common::fresh_database(&admin_url, "wosool_bench_crm_proxy").await;
    let upstream = serve_upstream().await;

    // A ready tenant (provisioned without Twenty), an API key and a workspace row with a sealed Twenty key.
    let base = config(&database_url, &[]);
    let (pool, stack, registered) = common::ready_tenant(&base, "CRM proxy bench").await;
    let tenant = registered.tenant.id;
    let (_, api_key) = stack
        .core
        .directory()
        .create_api_key(tenant, "bench", wosool::access::Scope::Write, "bench")
        .await
        .expect("API key");
    let keyring = Keyring::from_config(&config(&database_url, &[]).secrets).expect("keyring");
    let sealed = keyring
        .seal(
            &wosool::crm::workspace::api_key_context(tenant),
            TWENTY_KEY.as_bytes(),
        )
        .expect("seal");
    sqlx::query(
        "INSERT INTO crm_instances (key, base_url, max_workspaces) VALUES ('default', '', 5) ON CONFLICT DO NOTHING",
    )
    .execute(&pool)
    .await
    .expect("instance row");
    sqlx::query(
        "INSERT INTO crm_workspaces (tenant_id, owner_email, key_id, api_key_token, workspace_id, step, instance) \
         VALUES ($1, 'owner+bench@crm.example.com', $2, $3, 'bench-workspace', 'ready', 'default')",
    )
    .bind(tenant.as_uuid())
    .bind(&sealed.key_id)
    .bind(&sealed.bytes)
    .execute(&pool)
    .await
    .expect("workspace row");

    let (app, stop) = common::serve(
        config(
            &database_url,
            &[
                ("WOSOOL_CRM__BASE_URL", format!("http://{upstream}")),
                (
                    "WOSOOL_CRM__PROXY_REQUESTS_PER_MINUTE",
                    u32::MAX.to_string(),
                ),
            ],
        ),
        Role::Api,
    )
    .await;
    let nginx = Nginx::start(upstream);

    let direct = measure(
        format!("http://{upstream}/rest/people"),
        Some(format!("Authorization: Bearer {TWENTY_KEY}")),
    )
    .await;
    println!(
        "upstream directly:         {:>8.0} req/s, p99 {:.2} ms",
        direct.requests_per_sec, direct.p99_ms
    );
    let mut ratios = Vec::new();
    let mut added_p99s = Vec::new();
    for round in 1..=ROUNDS {
        let through_nginx = measure(format!("http://{}/rest/people", nginx.address), None).await;
        let through_proxy = measure(
            format!("http://{app}/crm/rest/people"),
            Some(format!("Authorization: Bearer {api_key}")),
        )
        .await;
        let ratio = through_proxy.requests_per_sec / through_nginx.requests_per_sec;
        let added_p99 = through_proxy.p99_ms - through_nginx.p99_ms;
        println!(
            "round {round}: nginx {:>6.0} req/s (p99 {:.2} ms), /crm/rest/people {:>6.0} req/s (p99 {:.2} ms): \
             ratio {ratio:.2}, added p99 {added_p99:.2} ms",
            through_nginx.requests_per_sec,
            through_nginx.p99_ms,
            through_proxy.requests_per_sec,
            through_proxy.p99_ms,
        );
        ratios.push(ratio);
        added_p99s.push(added_p99);
    }
    drop(nginx);
    println!(
        "median ratio vs nginx: {:.2} (target ≥ 0.7); median added p99: {:.2} ms (target ≤ 1 ms)",
        median(&mut ratios),
        median(&mut added_p99s)
    );
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn config(database_url: &str, extra: &[(&str, String)]) -> Config {
    let mut extra = extra.to_vec();
    extra.push((
        "WOSOOL_SECRETS__ENCRYPTION_KEYS",
        format!("[\"{ENCRYPTION_KEY}\"]"),
    ));
    common::config(database_url, &extra)
}

/// The fake Twenty: `GET /rest/people` answers a small findMany envelope, if the key is the tenant's.
async fn serve_upstream() -> SocketAddr {
    let router = Router::new().route(
        "/rest/people",
        get(|headers: HeaderMap| async move {
            let expected = format!("Bearer {TWENTY_KEY}");
            let status = match headers.get(AUTHORIZATION) {
                Some(value) if value.as_bytes() == expected.as_bytes() => StatusCode::OK,
                _ => StatusCode::UNAUTHORIZED,
            };
            (status, [(CONTENT_TYPE, "application/json")], PEOPLE).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// nginx in the foreground on a free port, with keep-alive connections to the upstream; stopped on drop.
struct Nginx {
    address: SocketAddr,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let path = dir.path().display();
        let conf = format!(
            r#"worker_processes auto;
daemon off;
pid {path}/nginx.pid;
error_log {path}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {path}/body;
    proxy_temp_path {path}/proxy;
    fastcgi_temp_path {path}/fastcgi;
    uwsgi_temp_path {path}/uwsgi;
    scgi_temp_path {path}/scgi;
    upstream twenty {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://twenty;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {TWENTY_KEY}";
        }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx installed (scripts/bench installs it)");
        // Owned (and killed on drop) before waiting, so a failed start does not leave it running.
        let nginx = Self {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(nginx.address).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not start; see its error.log");
    }
}

impl Drop for Nginx {
    /// SIGTERM (fast shutdown) to the master, which stops its workers; SIGKILL would orphan them.
    fn drop(&mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
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
        let non2xx = text.lines().any(|l| l.contains("Non-2xx"));
        assert!(!non2xx, "errors while measuring {url}:\n{text}");
        let requests_per_sec = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("could not read wrk output:\n{text}"));
        let p99_ms = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("99%"))
            .and_then(|v| milliseconds(v.trim()))
            .unwrap_or_else(|| panic!("no p99 in wrk output:\n{text}"));
        Run {
            requests_per_sec,
            p99_ms,
        }
    })
    .await
    .expect("wrk")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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
