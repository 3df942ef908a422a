//! History import, in two runs against a fake Merchant API in this process, imported by the real application
//! (install webhook → provisioning → `salla.import` list walks → `salla.order_details` → tenant database):
//!
//! 1. **Throughput**: 50,000 orders (each completed from its order details), 10,000 customers and 5,000
//!    products with no rate limit (the store's budget configured unlimited): wall time from the first import
//!    job to the last order's details, and rows/s; against a single `COPY` of the same rows.
//! 2. **At Salla's rate limit**: the fake enforces the Plus plan's 120 requests per minute in fixed windows
//!    (`X-RateLimit-*` headers, 429 past the limit), time compressed ×10 (20 requests per one-second window):
//!    3,000 orders, 6,000 customers and 3,000 products. Reported: the time until every list is complete and
//!    until every order's details are, each as a ratio to the minimum the limit allows (calls needed ÷
//!    allowed rate; the details only start once the lists are done, so their minimum counts every call).
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (`scripts/bench` provides it).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{Executor, PgPool};
use tokio_util::sync::CancellationToken;
use wosool::config::Config;
use wosool::{Application, Role};

const ORDERS: usize = 50_000;
const CUSTOMERS: usize = 10_000;
const PRODUCTS: usize = 5_000;
const MERCHANT: u64 = 1_234_509_876;
const SECRET: &str = "bench-salla-webhook-secret";

struct Store {
    orders: Vec<Value>,
    order_details: Value,
    customers: Vec<Value>,
    products: Vec<Value>,
    /// The store's plan as `/store/info` says.
    plan: &'static str,
    /// Requests allowed per one-second window (`None`: no limit).
    limit: Option<u32>,
    window: std::sync::Mutex<Window>,
}

/// One fixed, epoch-aligned rate window.
#[derive(Default)]
struct Window {
    second: u64,
    used: u32,
    /// Calls answered 200 and 429, for the report.
    served: u64,
    refused: u64,
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/fixtures/salla/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON")
}

fn fake_store(
    orders: usize,
    customers: usize,
    products: usize,
    plan: &'static str,
    limit: Option<u32>,
) -> Store {
    let order = fixture("api-list-orders.json")["data"][0].clone();
    let customer = fixture("api-list-customers.json")["data"][0].clone();
    let product = fixture("api-product-details.json")["data"].clone();
    let with_id = |template: &Value, id: u64| {
        let mut item = template.clone();
        item["id"] = json!(id);
        item
    };
    Store {
        orders: (0..orders)
            .map(|i| with_id(&order, 3_000_000_000 + i as u64))
            .collect(),
        order_details: fixture("order.created.json")["data"].clone(),
        customers: (0..customers)
            .map(|i| with_id(&customer, 4_000_000_000 + i as u64))
            .collect(),
        products: (0..products)
            .map(|i| with_id(&product, 5_000_000_000 + i as u64))
            .collect(),
        plan,
        limit,
        window: std::sync::Mutex::default(),
    }
}

type Shared = Arc<Store>;

fn page_of(items: &[Value], query: &std::collections::HashMap<String, String>) -> Value {
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(15);
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total_pages = items.len().div_ceil(per_page).max(1);
    let data: Vec<&Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json!({
        "status": 200, "success": true, "data": data,
        "pagination": { "count": data.len(), "total": items.len(), "perPage": per_page,
                        "currentPage": page, "totalPages": total_pages, "links": {} },
    })
}

async fn serve_fake(store: Shared) -> String {
    type Q = Query<std::collections::HashMap<String, String>>;
    let router = Router::new()
        .route("/accounts/oauth2/user/info", get(|| async {
            let mut info = fixture("api-user-info.json");
            info["data"]["merchant"]["id"] = json!(MERCHANT);
            axum::Json(info)
        }))
        .route("/accounts/oauth2/token", post(|| async { axum::http::StatusCode::BAD_REQUEST }))
        .route("/admin/v2/store/info", get(|State(s): State<Shared>| async move {
            axum::Json(json!({ "status": 200, "success": true, "data": { "id": MERCHANT, "name": "Bench Store", "email": "owner@bench.sa", "plan": s.plan, "currency": "SAR" } }))
        }))
        .route("/admin/v2/orders", get(|State(s): State<Shared>, Query(q): Q| async move { axum::Json(page_of(&s.orders, &q)) }))
        .route("/admin/v2/customers", get(|State(s): State<Shared>, Query(q): Q| async move { axum::Json(page_of(&s.customers, &q)) }))
        .route("/admin/v2/products", get(|State(s): State<Shared>, Query(q): Q| async move { axum::Json(page_of(&s.products, &q)) }))
        .route("/admin/v2/carts/abandoned", get(|Query(q): Q| async move { axum::Json(page_of(&[], &q)) }))
        .route("/admin/v2/orders/{id}", get(|State(s): State<Shared>, Path(id): Path<u64>| async move {
            let mut details = s.order_details.clone();
            details["id"] = json!(id);
            if let Some(items) = details["items"].as_array_mut() {
                for (n, item) in items.iter_mut().enumerate() {
                    item["id"] = json!(id * 100 + n as u64);
                }
            }
            axum::Json(json!({ "status": 200, "success": true, "data": details }))
        }))
        .layer(axum::middleware::from_fn_with_state(store.clone(), rate_limit))
        .with_state(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// The store's rate limit on the Merchant API (`/admin/v2/*`): fixed windows of one second aligned to the epoch,
/// `X-RateLimit-Limit` (per minute, as Salla states it: the window's budget × 60), `-Remaining` and `-Reset`
/// (epoch seconds) on every answer, 429 with `Retry-After` once the window's budget is spent.
async fn rate_limit(
    State(store): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (Some(limit), true) = (store.limit, request.uri().path().starts_with("/admin/v2")) else {
        return next.run(request).await;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let second = now.floor() as u64;
    let admitted = {
        let mut window = store.window.lock().expect("window");
        if window.second != second {
            window.second = second;
            window.used = 0;
        }
        let admitted = window.used < limit;
        if admitted {
            window.used += 1;
            window.served += 1;
        } else {
            window.refused += 1;
        }
        admitted.then_some(limit - window.used)
    };
    let headers = |remaining: u32| {
        [
            ("x-ratelimit-limit", (limit * 60).to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", (second + 1).to_string()),
        ]
    };
    match admitted {
        Some(remaining) => {
            let mut response = next.run(request).await;
            for (name, value) in headers(remaining) {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("header"));
            }
            response
        }
        None => {
            let mut response = (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({ "status": 429, "success": false,
                    "error": { "code": 429, "message": "Too Many Attempts." } })),
            )
                .into_response();
            for (name, value) in headers(0) {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("header"));
            }
            response
                .headers_mut()
                .insert("retry-after", "1".parse().expect("header"));
            response
        }
    }
}

/// Installs the app for `store` in a fresh deployment and waits for the whole import; returns the tenant
/// database and the import's timings `(lists_seconds, all_seconds)` from the first list walk's start.
async fn import(
    admin_url: &str,
    name: &str,
    store: Shared,
    extra: &[(&str, String)],
) -> (PgPool, f64, f64) {
    let database_url = common::fresh_database(admin_url, name).await;
    let fake = serve_fake(store).await;
    let config = config(&database_url, &fake, extra);
    if std::env::var_os("WOSOOL_BENCH_LOG").is_some() {
        wosool::telemetry::init_logging(&config.log);
    }
    let app = Application::build(config, Role::All)
        .await
        .expect("app builds");
    let address = app.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));

    let mut authorize = fixture("app.store.authorize.json");
    authorize["merchant"] = json!(MERCHANT);
    authorize["data"]["expires"] =
        json!(time::OffsetDateTime::now_utc().unix_timestamp() + 14 * 86_400);
    let body = serde_json::to_vec(&authorize).expect("body");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(&body);
    let response = reqwest::Client::new()
        .post(format!("http://{address}/webhooks/salla"))
        .header(
            "x-salla-signature",
            hex::encode(mac.finalize().into_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("deliver");
    assert!(response.status().is_success());

    let global = PgPool::connect(&database_url).await.expect("connect");
    let started = Instant::now();
    let db_name: String = loop {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT db_name FROM tenants WHERE salla_merchant_id = $1 AND status = 'ready'",
        )
        .bind(MERCHANT as i64)
        .fetch_optional(&global)
        .await
        .expect("tenant");
        if let Some(name) = found {
            break name;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "tenant never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut tenant_url = url::Url::parse(&database_url).expect("url");
    tenant_url.set_path(&db_name);
    let tenant = PgPool::connect(tenant_url.as_str())
        .await
        .expect("tenant db");
    let (lists, all): (f64, f64) = loop {
        let row: (i64, Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'done'), \
                    extract(epoch FROM max(last_full_import_at) FILTER (WHERE resource <> 'order_details') \
                                       - min(started_at))::float8, \
                    extract(epoch FROM max(last_full_import_at) - min(started_at))::float8 FROM sync_state",
        )
        .fetch_one(&tenant)
        .await
        .expect("sync state");
        if row.0 == 5 {
            break (row.1.expect("timestamps"), row.2.expect("timestamps"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1200),
            "import did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    (tenant, lists, all)
}

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!(
            "salla_import bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)"
        );
        return;
    };
    wosool::install_crypto_provider();

    // 1. Throughput, no rate limit.
    let store = Arc::new(fake_store(ORDERS, CUSTOMERS, PRODUCTS, "special", None));
    let unlimited = [
        (
            "WOSOOL_SALLA__DEFAULT_REQUESTS_PER_MINUTE",
            "100000000".to_owned(),
        ),
        (
            "WOSOOL_SALLA__PLAN_REQUESTS_PER_MINUTE",
            "{special = 100000000}".to_owned(),
        ),
        (
            "WOSOOL_SALLA__CUSTOMERS_REQUESTS_PER_WINDOW",
            "100000000".to_owned(),
        ),
    ];
    let (tenant, lists_seconds, import_seconds) = import(
        &admin_url,
        "wosool_bench_salla_import",
        store.clone(),
        &unlimited,
    )
    .await;
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items), \
                (SELECT count(*) FROM customers), (SELECT count(*) FROM products)",
    )
    .fetch_one(&tenant)
    .await
    .expect("counts");
    assert_eq!(
        (counts.0, counts.2, counts.3),
        (ORDERS as i64, CUSTOMERS as i64, PRODUCTS as i64)
    );
    let rows = (ORDERS + CUSTOMERS + PRODUCTS) as f64;
    let copy_seconds = copy_baseline(&admin_url, &store).await;
    println!(
        "Salla import: {ORDERS} orders (+{} items, from {ORDERS} order details) + {CUSTOMERS} customers + {PRODUCTS} products in {import_seconds:.1} s = {:.0} rows/s (target ≤ 60 s)",
        counts.1,
        rows / import_seconds
    );
    println!(
        "  lists complete after {lists_seconds:.1} s, order details {:.1} s after them",
        import_seconds - lists_seconds
    );
    println!(
        "COPY of the same {} rows:  {copy_seconds:.2} s = {:.0} rows/s; import takes {:.1}x the COPY time",
        rows as u64,
        rows / copy_seconds,
        import_seconds / copy_seconds
    );

    if std::env::var_os("WOSOOL_BENCH_SALLA_THROUGHPUT_ONLY").is_some() {
        return;
    }
    // 2. At the Plus plan's limit, time compressed ×10: 20 requests per second.
    const LIMITED: (usize, usize, usize) = (3_000, 6_000, 3_000);
    const PER_SECOND: u32 = 20;
    let store = Arc::new(fake_store(
        LIMITED.0,
        LIMITED.1,
        LIMITED.2,
        "plus",
        Some(PER_SECOND),
    ));
    let limited = [
        (
            "WOSOOL_SALLA__PLAN_REQUESTS_PER_MINUTE",
            format!("{{plus = {}}}", PER_SECOND * 60),
        ),
        // Salla's /customers limit (500 per 10 minutes) compressed the same way.
        ("WOSOOL_SALLA__CUSTOMERS_WINDOW_SECS", "60".to_owned()),
    ];
    let (tenant, lists_seconds, all_seconds) = import(
        &admin_url,
        "wosool_bench_salla_limited",
        store.clone(),
        &limited,
    )
    .await;
    let detailed: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT order_salla_id) FROM order_items")
            .fetch_one(&tenant)
            .await
            .expect("details");
    assert_eq!(detailed, LIMITED.0 as i64, "every order's details");
    let per_page = 60;
    let list_calls = LIMITED.0.div_ceil(per_page)
        + LIMITED.1.div_ceil(per_page)
        + LIMITED.2.div_ceil(per_page)
        + 1;
    let all_calls = list_calls + LIMITED.0;
    let rate = f64::from(PER_SECOND);
    let (lists_min, all_min) = (list_calls as f64 / rate, all_calls as f64 / rate);
    let window = store.window.lock().expect("window");
    println!(
        "Salla import at the Plus limit (x10 time: {PER_SECOND} req/s): {} orders, {} customers, {} products; \
         {} calls answered, {} refused (429)",
        LIMITED.0, LIMITED.1, LIMITED.2, window.served, window.refused
    );
    println!(
        "  lists complete after {lists_seconds:.1} s = {:.3}x the minimum {lists_min:.1} s ({list_calls} calls; target <= 1.1x)",
        lists_seconds / lists_min
    );
    println!(
        "  details complete after {all_seconds:.1} s = {:.3}x the minimum {all_min:.1} s ({all_calls} calls; target <= 1.05x)",
        all_seconds / all_min
    );
}

async fn copy_baseline(admin_url: &str, store: &Store) -> f64 {
    let url = common::fresh_database(admin_url, "wosool_bench_salla_copy").await;
    let pool = PgPool::connect(&url).await.expect("connect");
    pool.execute(
        "CREATE TABLE orders (salla_id bigint PRIMARY KEY, ordered_at timestamptz NOT NULL, raw jsonb NOT NULL); \
         CREATE TABLE customers (salla_id bigint PRIMARY KEY, raw jsonb NOT NULL); \
         CREATE TABLE products (salla_id bigint PRIMARY KEY, name text NOT NULL, raw jsonb NOT NULL);",
    )
    .await
    .expect("tables");
    let escape = |v: &Value| v.to_string().replace('\\', "\\\\");
    let orders: String = store
        .orders
        .iter()
        .map(|o| format!("{}\t2024-01-01T00:00:00Z\t{}\n", o["id"], escape(o)))
        .collect();
    let customers: String = store
        .customers
        .iter()
        .map(|c| format!("{}\t{}\n", c["id"], escape(c)))
        .collect();
    let products: String = store
        .products
        .iter()
        .map(|p| format!("{}\tproduct\t{}\n", p["id"], escape(p)))
        .collect();
    let started = Instant::now();
    let mut conn = pool.acquire().await.expect("conn");
    for (statement, data) in [
        ("COPY orders (salla_id, ordered_at, raw) FROM STDIN", orders),
        ("COPY customers (salla_id, raw) FROM STDIN", customers),
        ("COPY products (salla_id, name, raw) FROM STDIN", products),
    ] {
        let mut copy = conn.copy_in_raw(statement).await.expect("copy");
        copy.send(data.into_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
    }
    started.elapsed().as_secs_f64()
}

fn config(database_url: &str, fake: &str, extra: &[(&str, String)]) -> Config {
    let mut env = vec![
        ("WOSOOL_DB__URL".to_owned(), database_url.to_owned()),
        ("WOSOOL_SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "WOSOOL_LOG__LEVEL".to_owned(),
            std::env::var("WOSOOL_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ),
        ("WOSOOL_SALLA__CLIENT_ID".to_owned(), "bench".to_owned()),
        (
            "WOSOOL_SALLA__CLIENT_SECRET".to_owned(),
            "bench-secret".to_owned(),
        ),
        (
            "WOSOOL_SALLA__ACCOUNTS_URL".to_owned(),
            format!("{fake}/accounts"),
        ),
        (
            "WOSOOL_SALLA__API_URL".to_owned(),
            format!("{fake}/admin/v2"),
        ),
        (
            "WOSOOL_SALLA__WEBHOOK_SECRETS".to_owned(),
            format!("[\"{SECRET}\"]"),
        ),
        (
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".to_owned(),
            "[\"bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]".to_owned(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Config::load_from(None, env).expect("config")
}
