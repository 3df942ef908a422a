//! The merchant app in a real browser: Debian's Chromium driven by Playwright for Python
//! (`tests/browser/embedded_app.py`), the app framed cross-site by a stand-in for Salla's dashboard that
//! answers the Embedded SDK's messages (`tests/browser/host.html`).
//!
//! This test installs two stores through the fake Salla (webhooks, import, provisioning: the real path), gives
//! the fake Salla page tokens for their owners (valid, expired, invalid), and hands the browser script a spec of
//! what each screen must show. `scripts/test` installs Chromium, the fonts and Playwright
//! (`WOSOOL_TEST_PYTHON`); screenshots of every screen in Arabic and English, light and dark, are written to
//! `target/browser-screenshots/merchant_app/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::embedded_sessions::{World, world};
use crate::fake_salla::{APP_ID, FakeStore, installer_user_id};
use crate::fake_twenty::FakeTwentyServer;
use crate::helpers::*;

const STORE_A: u64 = 2_910_000_101;
const STORE_B: u64 = 2_910_000_202;
/// Hours between consecutive orders of a store: 21 orders fall in the last 30 days, the rest in the 30 before.
const ORDER_SPACING_HOURS: i64 = 35;

/// A store whose orders are recent (the Home's KPIs cover the last 30 days and the 30 before), its customers
/// named after `tag` so that one store's people are recognisable in the other's screens.
fn recent_store(merchant: u64, orders: usize, customers: usize, tag: &str) -> FakeStore {
    let mut store = FakeStore::new(merchant)
        .with_orders(orders)
        .with_customers(customers)
        .with_products(8)
        .with_abandoned_carts(4);
    let now = OffsetDateTime::now_utc() + time::Duration::hours(3); // Asia/Riyadh, as Salla's dates are
    for (i, order) in store.orders.iter_mut().enumerate() {
        let at = now - time::Duration::hours(1 + i as i64 * ORDER_SPACING_HOURS);
        order["date"] = json!({
            "date": format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.000000",
                at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second()
            ),
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        });
        if order["customer"].is_object() {
            order["customer"]["first_name"] = json!(format!("زبون-{tag}"));
        }
    }
    for (i, customer) in store.customers.iter_mut().enumerate() {
        customer["first_name"] = json!(format!("زبون-{tag}-{i}"));
    }
    store
}

/// Purchases (not canceled) of the fake store ordered in the last 30 days: what the Home's order tile shows.
fn orders_in_last_30_days(store: &FakeStore) -> usize {
    store
        .orders
        .iter()
        .enumerate()
        .filter(|(i, order)| {
            (1 + *i as i64 * ORDER_SPACING_HOURS) < 30 * 24 && order["status"]["slug"] != "canceled"
        })
        .count()
}

/// Waits until the store's whole history is imported (every list walk and the order details).
async fn imported(world: &World, merchant: u64) {
    let db_name: String = sqlx::query_scalar("SELECT db_name FROM tenants WHERE id = $1")
        .bind(world.tenant(merchant))
        .fetch_one(&world.app.db)
        .await
        .unwrap();
    let tenant = sqlx::PgPool::connect(&database_url(&db_name))
        .await
        .unwrap();
    eventually(
        &format!("store {merchant}'s import"),
        Duration::from_secs(60),
        || async {
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM sync_state WHERE status = 'done'")
                    .fetch_one(&tenant)
                    .await
                    .unwrap();
            (done == 5).then_some(())
        },
    )
    .await;
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser-screenshots").join("merchant_app")
}

/// Runs the browser script with `spec` for `scenarios`; its JSON lines, or the failure it reported. Awaited,
/// never blocking: the app under test serves from this test's runtime.
async fn run_browser(spec: &Value, scenarios: &[&str]) -> Vec<Value> {
    let python = std::env::var("WOSOOL_TEST_PYTHON").expect(
        "WOSOOL_TEST_PYTHON is not set: run the tests with scripts/test, which installs Chromium and Playwright",
    );
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(spec).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/embedded_app.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(&spec_path)
        .args(scenarios)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser suite failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test]
async fn a_merchant_opens_the_app_from_salla_and_sees_their_store_in_arabic() {
    let store_a = recent_store(STORE_A, 40, 12, "أ");
    let store_b = recent_store(STORE_B, 6, 5, "ب");
    let expected_a = orders_in_last_30_days(&store_a);
    let expected_b = orders_in_last_30_days(&store_b);
    let a_names: Vec<String> = (0..12).map(|i| format!("زبون-أ-{i}")).collect();
    let b_names: Vec<String> = (0..5).map(|i| format!("زبون-ب-{i}")).collect();
    let a_order = store_a.orders[0]["id"].as_u64().unwrap();
    assert!(
        expected_a > expected_b && expected_b > 0,
        "the stores' figures tell them apart"
    );

    // The host page is served on http://localhost:<any port>; the app on 127.0.0.1 (another site). Each
    // tenant gets its CRM workspace in the fake Twenty, so the CRM screens show records.
    let twenty = FakeTwentyServer::start().await;
    let twenty_env = twenty.env();
    let world = world(vec![store_a, store_b], |env| {
        twenty_env(env);
        env.push((
            "WOSOOL_APP__FRAME_ANCESTORS".into(),
            "[\"http://localhost:*\"]".into(),
        ))
    })
    .await;
    imported(&world, STORE_A).await;
    imported(&world, STORE_B).await;

    let token = |merchant: u64, minutes: i64| {
        world.page_token(
            merchant,
            installer_user_id(merchant),
            time::Duration::minutes(minutes),
        )
    };
    let folder = screenshots();
    let spec = json!({
        "app_url": world.app.url(""),
        "app_id": APP_ID,
        "chromium": std::env::var("WOSOOL_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        "screenshots": folder,
        "tenants": {
            "a": {
                "token": token(STORE_A, 30),
                "expired_token": token(STORE_A, -5),
                "invalid_token": "a-token-salla-never-issued",
                "expect": { "kpi-orders-value": expected_a.to_string() },
                "names": a_names,
                "order_path": format!("/app/orders/{a_order}"),
            },
            "b": {
                "token": token(STORE_B, 30),
                "expect": { "kpi-orders-value": expected_b.to_string() },
                "names": b_names,
            },
        },
    });
    let results = run_browser(
        &spec,
        &["happy", "refresh", "invalid", "isolation", "crm", "screens"],
    )
    .await;
    for result in &results {
        assert_eq!(result["ok"], true, "{result}");
    }
    let screens = results
        .iter()
        .find(|r| r["scenario"] == "screens")
        .expect("the screens scenario ran");
    // 9 screens × 2 languages × 2 themes.
    assert_eq!(screens["screenshots"], 36, "{screens}");
    assert!(folder.join("home-ar-light.png").is_file());
    assert!(folder.join("customers-en-dark.png").is_file());
    // The pages' requests carried the session, and only the page token went to Salla.
    let introspected: Vec<String> = world
        .salla
        .lock()
        .introspections
        .iter()
        .filter_map(|body| body["token"].as_str().map(str::to_owned))
        .collect();
    assert!(introspected.contains(&"a-token-salla-never-issued".to_owned()));
    // The note the merchant wrote in the CRM screen is in their own Twenty workspace.
    let note = results
        .iter()
        .find(|r| r["scenario"] == "crm")
        .and_then(|r| r["note"].as_str())
        .expect("the crm scenario ran")
        .to_owned();
    let workspace: String =
        sqlx::query_scalar("SELECT workspace_id FROM crm_workspaces WHERE tenant_id = $1")
            .bind(world.tenant(STORE_A))
            .fetch_one(&world.app.db)
            .await
            .unwrap();
    let stored = twenty.lock().records(&workspace, "notes");
    assert!(
        stored.iter().any(|n| n["title"] == note.as_str()),
        "the note is not in Twenty: {stored:?}"
    );
    eprintln!("screenshots: {}", folder.display());
}

/// Largest contentful paint of a cold Home and what it transferred: a measurement, run by `scripts/bench`
/// (`--run-ignored`), never by the test suite.
#[tokio::test]
#[ignore = "a benchmark: scripts/bench runs it"]
async fn bench_largest_contentful_paint_of_a_cold_home() {
    let store = recent_store(STORE_A, 200, 60, "أ");
    let expected = orders_in_last_30_days(&store);
    let world = world(vec![store], |env| {
        env.push((
            "WOSOOL_APP__FRAME_ANCESTORS".into(),
            "[\"http://localhost:*\"]".into(),
        ));
        env.push(("WOSOOL_LOG__LEVEL".into(), "warn".into()));
    })
    .await;
    imported(&world, STORE_A).await;
    let token = world.page_token(
        STORE_A,
        installer_user_id(STORE_A),
        time::Duration::minutes(30),
    );
    let spec = json!({
        "app_url": world.app.url(""),
        "app_id": APP_ID,
        "chromium": std::env::var("WOSOOL_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        "screenshots": screenshots(),
        "lcp_runs": 7,
        "tenants": { "a": { "token": token, "expect": { "kpi-orders-value": expected.to_string() } } },
    });
    let results = run_browser(&spec, &["lcp"]).await;
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
}
