//! CRM record sync throughput: records/second pushed from a tenant's outbox to a fast in-process Twenty REST
//! fake with batches of 60 (`POST /rest/batch/sallaProducts?upsert=true`) against the same code path with
//! batches of one record (one request per record), in the same run, on the same data (5,000 products).
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (`scripts/bench` provides it).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wosool::TenancyStack;
use wosool::config::Config;
use wosool::crm::sync::CrmSync;
use wosool::secrets::Keyring;

const PRODUCTS: usize = 5_000;
const KEY: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!("crm_sync bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)");
        return;
    };
    wosool::install_crypto_provider();
    let database_url = common::fresh_database(&admin_url, "wosool_bench_crm_sync").await;
    let received = Arc::new(AtomicUsize::new(0));
    let upstream = serve_upstream(received.clone()).await;

    // Provisioned without Twenty (the workspace row is written below); the sync itself gets the upstream.
    let base = config(&database_url, "", 60);
    let (pool, stack, registered) = common::ready_tenant(&base, "CRM sync bench").await;
    let tenant = registered.tenant.id;

    // A provisioned workspace with its sealed API key.
    let keyring = Keyring::from_config(&base.secrets).expect("keyring");
    let sealed = keyring
        .seal(
            &wosool::crm::workspace::api_key_context(tenant),
            b"bench-api-key",
        )
        .expect("seal");
    sqlx::query(
        "INSERT INTO crm_instances (key, base_url, max_workspaces) VALUES ('default', '', 5) ON CONFLICT DO NOTHING",
    )
    .execute(&pool)
    .await
    .expect("instance row");
    sqlx::query(
        "INSERT INTO crm_workspaces (tenant_id, step, owner_email, key_id, workspace_id, api_key_token, manifest_version, instance) \
         VALUES ($1, 'ready', 'owner@bench.invalid', $2, 'ws-bench', $3, 1, 'default')",
    )
    .bind(tenant)
    .bind(&sealed.key_id)
    .bind(&sealed.bytes)
    .execute(&pool)
    .await
    .expect("workspace row");

    let mut tenant_url = url::Url::parse(&database_url).expect("url");
    tenant_url.set_path(&registered.tenant.db_name.to_string());
    let tenant_db = PgPool::connect(tenant_url.as_str())
        .await
        .expect("tenant db");
    sqlx::query(
        "INSERT INTO products (salla_id, name, sku, price, currency, status, quantity, raw) \
         SELECT 6000000000 + i, 'Product ' || i, 'SKU-' || i, 10 + i % 90, 'SAR', 'sale', i % 50, '{}'::jsonb \
         FROM generate_series(1, $1) AS i",
    )
    .bind(PRODUCTS as i32)
    .execute(&tenant_db)
    .await
    .expect("products");

    let batched = push(&config(&database_url, &upstream, 60), &stack, tenant).await;
    let pushed_batched = received.swap(0, Ordering::Relaxed);
    // Mark every product changed again, and push them one request per record.
    sqlx::query("UPDATE products SET updated_at = now()")
        .execute(&tenant_db)
        .await
        .expect("touch");
    let single = push(&config(&database_url, &upstream, 1), &stack, tenant).await;
    let pushed_single = received.swap(0, Ordering::Relaxed);
    assert_eq!(
        (pushed_batched, pushed_single),
        (PRODUCTS, PRODUCTS),
        "every record pushed once per run"
    );
    let rate = |seconds: f64| PRODUCTS as f64 / seconds;
    println!(
        "CRM sync, batches of 60:  {PRODUCTS} records in {batched:.2} s = {:.0} records/s",
        rate(batched)
    );
    println!(
        "CRM sync, one per request: {PRODUCTS} records in {single:.2} s = {:.0} records/s; batching is {:.1}x faster",
        rate(single),
        single / batched
    );
}

async fn push(config: &Config, stack: &TenancyStack, tenant: wosool::tenancy::TenantId) -> f64 {
    let pool = stack.provisioner.db().clone();
    let core = wosool::core::Core::new(config.clone(), pool, None).expect("core");
    let sync = CrmSync::new(&core).expect("sync");
    let started = Instant::now();
    let report = sync
        .run_tenant(tenant, &CancellationToken::new())
        .await
        .expect("sync run");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(report.pushed >= PRODUCTS, "pushed {}", report.pushed);
    elapsed
}

async fn serve_upstream(received: Arc<AtomicUsize>) -> String {
    let router = Router::new()
        .route(
            "/rest/batch/{plural}",
            post(
                |State(count): State<Arc<AtomicUsize>>, body: axum::Json<Value>| async move {
                    let records = body.0.as_array().cloned().unwrap_or_default();
                    count.fetch_add(records.len(), Ordering::Relaxed);
                    axum::Json(json!({ "data": { "createSallaProducts": records } }))
                },
            ),
        )
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn config(database_url: &str, upstream: &str, batch: u32) -> Config {
    common::config(
        database_url,
        &[
            ("WOSOOL_CRM__BASE_URL", upstream.to_owned()),
            ("WOSOOL_CRM__SYNC_BATCH_SIZE", batch.to_string()),
            // No pacing: the bench measures our side.
            ("WOSOOL_CRM__REQUESTS_PER_MINUTE", "100000000".to_owned()),
            ("WOSOOL_SECRETS__ENCRYPTION_KEYS", format!("[\"{KEY}\"]")),
        ],
    )
}
