//! The Salla install, end to end: signed webhooks (built from the real fixtures, signed here with `hmac`
//! directly) into `POST /webhooks/salla`, the install lifecycle on the worker, a Clerk identity from the fake
//! Clerk, and the store's whole history imported from the fake Salla; then live events, uninstall and
//! reinstall, duplicates and cross-tenant isolation.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;
use wosool::Role;

use crate::clerk_identity::{clerk_env, fake_clerk};
use crate::fake_salla::{FakeSallaServer, FakeStore, IssuedTokens};
use crate::helpers::{TestApp, database_url, eventually, spawn_app_with};

pub(crate) const WEBHOOK_SECRET: &str = "salla-install-test-webhook-secret";
/// The store of the app.* fixtures.
const MERCHANT: u64 = 1_234_509_876;
const WAIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/fixtures/salla/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) async fn deliver(app: &TestApp, event: &Value) -> (StatusCode, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let response = app
        .client
        .post(app.url("/webhooks/salla"))
        .header("content-type", "application/json")
        .header("x-salla-security-strategy", "Signature")
        .header("x-salla-signature", sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The authorize fixture carrying the tokens the fake issued to the store.
pub(crate) fn authorize(merchant: u64, tokens: &IssuedTokens) -> Value {
    let mut event = fixture("app.store.authorize");
    event["merchant"] = json!(merchant);
    event["data"]["access_token"] = json!(tokens.access_token);
    event["data"]["refresh_token"] = json!(tokens.refresh_token);
    // Absolute expiry here (the token endpoint's is a duration).
    event["data"]["expires"] =
        json!(time::OffsetDateTime::now_utc().unix_timestamp() + 14 * 86_400);
    event
}

pub(crate) fn for_merchant(name: &str, merchant: u64) -> Value {
    let mut event = fixture(name);
    event["merchant"] = json!(merchant);
    event
}

async fn salla_app(salla: &FakeSallaServer) -> (TestApp, crate::clerk_identity::Shared) {
    salla_app_with(salla, |_| {}).await
}

/// An app (worker included) wired to `salla` and a fake Clerk, with more settings from `adjust`.
async fn salla_app_with(
    salla: &FakeSallaServer,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> (TestApp, crate::clerk_identity::Shared) {
    let (clerk_url, clerk) = fake_clerk().await;
    let salla_env = salla.env();
    let app = spawn_app_with(Role::All, |env| {
        clerk_env(&clerk_url)(env);
        salla_env(env);
        env.push((
            "WOSOOL_SALLA__WEBHOOK_SECRETS".into(),
            format!("[\"{WEBHOOK_SECRET}\"]"),
        ));
        env.push(("WOSOOL_JOBS__RETRY_MAX_SECS".into(), "1".into()));
        adjust(env);
    })
    .await;
    (app, clerk)
}

async fn tenant_of(db: &PgPool, merchant: u64) -> Option<(uuid::Uuid, String, String)> {
    sqlx::query_as("SELECT id, status, db_name FROM tenants WHERE salla_merchant_id = $1")
        .bind(merchant as i64)
        .fetch_optional(db)
        .await
        .unwrap()
}

async fn wait_status(db: &PgPool, merchant: u64, status: &str) -> (uuid::Uuid, String) {
    eventually(
        &format!("tenant of store {merchant} {status}"),
        WAIT,
        || async {
            tenant_of(db, merchant)
                .await
                .filter(|(_, s, _)| s == status)
                .map(|(id, _, db_name)| (id, db_name))
        },
    )
    .await
}

async fn count(tenant: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(tenant)
        .await
        .unwrap()
}

/// Waits until every list walk and then the order details are done, then returns the row counts.
async fn imported(tenant: &PgPool) -> (i64, i64, i64, i64) {
    eventually("the history import to finish", WAIT, || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_state WHERE status = 'done'")
            .fetch_one(tenant)
            .await
            .unwrap();
        (done == 5).then_some(())
    })
    .await;
    (
        count(tenant, "products").await,
        count(tenant, "orders").await,
        count(tenant, "customers").await,
        count(tenant, "abandoned_carts").await,
    )
}

#[tokio::test]
async fn installing_the_app_yields_a_ready_tenant_with_identity_and_history_then_uninstall_and_reinstall()
 {
    let salla = FakeSallaServer::start().await;
    let tokens = salla.lock().add_store(
        FakeStore::new(MERCHANT)
            .with_products(70)
            .with_orders(130)
            .with_customers(61)
            .with_abandoned_carts(5),
    );
    let (app, clerk) = salla_app(&salla).await;

    // app.installed first (it waits for the tokens), then the authorize.
    let (status, body) = deliver(&app, &for_merchant("app.installed", MERCHANT)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], false);
    let (status, _) = deliver(&app, &authorize(MERCHANT, &tokens)).await;
    assert_eq!(status, StatusCode::OK);

    let (tenant_id, db_name) = wait_status(&app.db, MERCHANT, "ready").await;
    let tenant = PgPool::connect(&database_url(&db_name)).await.unwrap();
    assert_eq!(
        imported(&tenant).await,
        (70, 130, 61, 5),
        "the fake store's whole history"
    );
    let with_items: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT order_salla_id) FROM order_items")
            .fetch_one(&tenant)
            .await
            .unwrap();
    assert_eq!(with_items, 130, "every order completed from its details");
    {
        // Every list first, then the details, newest orders first.
        let fake = salla.lock();
        let log = &fake.log;
        let first_detail = log
            .iter()
            .position(|(e, _)| e == "GET /orders/{id}")
            .unwrap();
        let last_list = log
            .iter()
            .rposition(|(e, _)| {
                [
                    "GET /products",
                    "GET /orders",
                    "GET /customers",
                    "GET /carts/abandoned",
                ]
                .contains(&e.as_str())
            })
            .unwrap();
        assert!(last_list < first_detail, "lists before details");
        let orders = &fake.stores[&MERCHANT].orders;
        let day_of = |path: &str| -> u32 {
            let id = path.trim_start_matches("/orders/");
            let id: u64 = id.parse().unwrap();
            let order = orders
                .iter()
                .find(|o| o["id"].as_u64() == Some(id))
                .unwrap();
            order["date"]["date"].as_str().unwrap()[8..10]
                .parse()
                .unwrap()
        };
        let days: Vec<u32> = log
            .iter()
            .filter(|(e, _)| e == "GET /orders/{id}")
            .map(|(_, p)| day_of(p))
            .collect();
        let (newer, older) = days.split_at(days.len() / 2);
        let mean = |d: &[u32]| d.iter().sum::<u32>() as f64 / d.len() as f64;
        assert!(mean(newer) > mean(older), "newest orders first: {days:?}");
    }

    // The tenant is named after the store and owned by the Salla user, with a Clerk organization.
    let (name, owner, org): (String, String, Option<String>) =
        sqlx::query_as("SELECT display_name, owner_email, clerk_org_id FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let store = salla.lock().store(MERCHANT).clone();
    assert_eq!(name, store.name);
    assert_eq!(owner, store.email);
    assert!(org.is_some(), "linked to a Clerk organization");
    assert_eq!(clerk.lock().unwrap().orgs.len(), 1);

    // Tokens are sealed at rest: the stored bytes do not contain the token.
    let (sealed, key_id): (Vec<u8>, String) =
        sqlx::query_as("SELECT access_token, key_id FROM salla_stores WHERE merchant_id = $1")
            .bind(MERCHANT as i64)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(key_id, "test-salla");
    let needle = tokens.access_token.as_bytes();
    assert!(!sealed.windows(needle.len()).any(|w| w == needle));

    // The subscription expires: the merchant is told (a plan_ending notice for this tenant, recorded as
    // skipped here because notifications are off), once however often Salla redelivers it.
    for _ in 0..2 {
        deliver(&app, &for_merchant("app.subscription.expired", MERCHANT)).await;
    }
    let notices = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT kind, status FROM notifications WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
    };
    eventually("the plan_ending notice", WAIT, || async {
        notices()
            .await
            .iter()
            .any(|(kind, status)| kind == "plan_ending" && status == "skipped")
            .then_some(())
    })
    .await;
    let plan_ending = notices()
        .await
        .iter()
        .filter(|(kind, _)| kind == "plan_ending")
        .count();
    assert_eq!(
        plan_ending, 1,
        "a redelivered expiry tells the merchant once"
    );

    // Uninstall: tokens gone, tenant suspended, deletion scheduled.
    deliver(&app, &for_merchant("app.uninstalled", MERCHANT)).await;
    wait_status(&app.db, MERCHANT, "suspended").await;
    let (has_tokens, store_status): (bool, String) = sqlx::query_as(
        "SELECT access_token IS NOT NULL, status FROM salla_stores WHERE merchant_id = $1",
    )
    .bind(MERCHANT as i64)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((has_tokens, store_status.as_str()), (false, "uninstalled"));
    // The suspension is visible a moment before the schedule is written (the same event, two writes).
    eventually("deletion scheduled after the grace period", WAIT, || async {
        let grace: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'tenant.delete_after_grace' AND tenant_id = $1 AND state = 'pending'",
        )
        .bind(tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        (grace == 1).then_some(())
    })
    .await;

    // Reinstall within the grace period: the same tenant comes back, with its data.
    let tokens = salla.lock().add_store(
        FakeStore::new(MERCHANT)
            .with_products(70)
            .with_orders(130)
            .with_customers(61)
            .with_abandoned_carts(5),
    );
    deliver(&app, &for_merchant("app.installed", MERCHANT)).await;
    deliver(&app, &authorize(MERCHANT, &tokens)).await;
    let (again, _) = wait_status(&app.db, MERCHANT, "ready").await;
    assert_eq!(again, tenant_id, "the same tenant");
    assert_eq!(count(&tenant, "orders").await, 130, "its data kept");
    eventually("the pending deletion cancelled", WAIT, || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'tenant.delete_after_grace' AND tenant_id = $1 AND state = 'pending'",
        )
        .bind(tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;
    assert_eq!(
        clerk.lock().unwrap().orgs.len(),
        1,
        "no second organization"
    );
    tenant.close().await;
}

#[tokio::test]
async fn live_events_reach_only_their_own_tenant_and_duplicates_have_one_effect() {
    let salla = FakeSallaServer::start().await;
    const OTHER: u64 = 2_000_000_001;
    let a = salla
        .lock()
        .add_store(FakeStore::new(MERCHANT).with_orders(3));
    let b = salla.lock().add_store(FakeStore::new(OTHER).with_orders(2));
    let (app, _clerk) = salla_app(&salla).await;
    deliver(&app, &authorize(MERCHANT, &a)).await;
    deliver(&app, &authorize(OTHER, &b)).await;
    let (_, a_db) = wait_status(&app.db, MERCHANT, "ready").await;
    let (_, b_db) = wait_status(&app.db, OTHER, "ready").await;
    let a_pool = PgPool::connect(&database_url(&a_db)).await.unwrap();
    let b_pool = PgPool::connect(&database_url(&b_db)).await.unwrap();
    imported(&a_pool).await;
    imported(&b_pool).await;
    let b_before = count(&b_pool, "orders").await;

    // The same order.created delivery 10 times at once, for store A.
    let mut order = fixture("order.created");
    order["merchant"] = json!(MERCHANT);
    order["data"]["id"] = json!(7_777_777_777u64);
    let answers = futures_util::future::join_all((0..10).map(|_| deliver(&app, &order))).await;
    let fresh = answers
        .iter()
        .filter(|(s, body)| *s == StatusCode::OK && body["duplicate"] == false)
        .count();
    assert_eq!(fresh, 1, "one stored delivery: {answers:?}");
    eventually("the order in tenant A", WAIT, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE salla_id = 7777777777")
            .fetch_one(&a_pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'salla.delivery'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jobs, 3, "two authorizes and one order: one job each");
    assert_eq!(
        count(&b_pool, "orders").await,
        b_before,
        "tenant B untouched"
    );
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE salla_id = 7777777777")
        .fetch_one(&b_pool)
        .await
        .unwrap();
    assert_eq!(in_b, 0);
    a_pool.close().await;
    b_pool.close().await;
}

#[tokio::test]
async fn webhook_authentication_strategies_and_bad_bodies() {
    let salla = FakeSallaServer::start().await;
    let salla_env = salla.env();
    let app = spawn_app_with(Role::Api, |env| {
        salla_env(env);
        env.push((
            "WOSOOL_SALLA__WEBHOOK_SECRETS".into(),
            format!("[\"new-secret\", \"{WEBHOOK_SECRET}\"]"),
        ));
    })
    .await;
    let body = serde_json::to_vec(&fixture("app.installed")).unwrap();
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = app.client.post(app.url("/webhooks/salla")).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let inbox = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM webhook_inbox")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let refused = [
        (
            "tampered",
            vec![("x-salla-signature", sign(&body))],
            tampered,
        ),
        (
            "wrong secret",
            vec![("x-salla-signature", {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"wrong").unwrap();
                mac.update(&body);
                hex::encode(mac.finalize().into_bytes())
            })],
            body.clone(),
        ),
        ("missing header", vec![], body.clone()),
        (
            "wrong token",
            vec![
                ("x-salla-security-strategy", "Token".into()),
                ("authorization", "nope".into()),
            ],
            body.clone(),
        ),
        (
            "unknown strategy",
            vec![("x-salla-security-strategy", "none".into())],
            body.clone(),
        ),
    ];
    for (what, headers, body) in refused {
        let (status, json) = post(headers, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {json}");
        assert_eq!(json["error"]["code"], "invalid_signature", "{what}");
        assert!(json["error"]["request_id"].is_string());
    }
    assert_eq!(inbox().await, 0, "nothing stored for refused deliveries");

    // Token strategy with the rotated (second) secret, and an uppercase-hex signature.
    let (status, _) = post(
        vec![
            ("x-salla-security-strategy", "Token".into()),
            ("authorization", WEBHOOK_SECRET.into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let other = serde_json::to_vec(&fixture("app.updated")).unwrap();
    let (status, _) = post(
        vec![("x-salla-signature", sign(&other).to_uppercase())],
        other,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox().await, 2);

    // Authenticated but not JSON: kept as rejected, 200.
    let garbage = b"{not json".to_vec();
    let (status, json) = post(vec![("x-salla-signature", sign(&garbage))], garbage).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["rejected"], true);
    let rejected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_inbox WHERE status = 'rejected'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(rejected, 1);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'salla.delivery'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jobs, 2, "no job for the rejected body");
}

#[tokio::test]
async fn the_strategy_can_be_pinned() {
    let salla = FakeSallaServer::start().await;
    let salla_env = salla.env();
    let app = spawn_app_with(Role::Api, |env| {
        salla_env(env);
        env.push((
            "WOSOOL_SALLA__WEBHOOK_SECRETS".into(),
            format!("[\"{WEBHOOK_SECRET}\"]"),
        ));
        env.push(("WOSOOL_SALLA__SECURITY_STRATEGY".into(), "signature".into()));
    })
    .await;
    let body = serde_json::to_vec(&fixture("app.installed")).unwrap();
    let token = app
        .client
        .post(app.url("/webhooks/salla"))
        .header("x-salla-security-strategy", "Token")
        .header("authorization", WEBHOOK_SECRET)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        token.status(),
        StatusCode::UNAUTHORIZED,
        "Token refused when Signature is pinned"
    );
    let (status, _) = deliver(&app, &fixture("app.installed")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_import_that_fails_mid_way_resumes_from_its_checkpoint() {
    let salla = FakeSallaServer::start().await;
    let tokens = salla
        .lock()
        .add_store(FakeStore::new(MERCHANT).with_orders(100));
    // 100 orders in pages of 20 (with their 100 details) stay inside the store's burst of requests.
    // Page 3 of 5 fails once; with no client-side retries the job attempt dies there, as if killed.
    salla
        .lock()
        .fail_page("/orders", 3, 1, crate::fake_salla::Fault::status(500));
    let (app, _clerk) = salla_app_with(&salla, |env| {
        env.push(("WOSOOL_SALLA__MAX_RETRIES".into(), "0".into()));
        env.push(("WOSOOL_SALLA__PER_PAGE".into(), "20".into()));
    })
    .await;
    deliver(&app, &authorize(MERCHANT, &tokens)).await;
    let (_, db_name) = wait_status(&app.db, MERCHANT, "ready").await;
    let tenant = PgPool::connect(&database_url(&db_name)).await.unwrap();
    imported(&tenant).await;
    assert_eq!(count(&tenant, "orders").await, 100, "every order, once");
    assert_eq!(
        salla.lock().calls("GET /orders"),
        6,
        "pages 1, 2, 3 (failed), then 3, 4 and 5: resumed, not restarted"
    );
    let (synced, total): (i64, Option<i64>) = sqlx::query_as(
        "SELECT items_synced, total_expected FROM sync_state WHERE resource = 'orders'",
    )
    .fetch_one(&tenant)
    .await
    .unwrap();
    assert_eq!(
        (synced, total),
        (100, Some(100)),
        "progress counted once per page"
    );
    tenant.close().await;
}

#[tokio::test]
async fn merchants_resync_and_operators_see_stores_and_redacted_deliveries() {
    let salla = FakeSallaServer::start().await;
    let tokens = salla
        .lock()
        .add_store(FakeStore::new(MERCHANT).with_customers(3));
    let (app, _clerk) = salla_app(&salla).await;
    deliver(&app, &authorize(MERCHANT, &tokens)).await;
    let (tenant_id, db_name) = wait_status(&app.db, MERCHANT, "ready").await;
    let tenant = PgPool::connect(&database_url(&db_name)).await.unwrap();
    imported(&tenant).await;

    // A merchant (admin key) asks for a re-scan: the new customers appear.
    salla.lock().store(MERCHANT).customers.clear();
    let store = FakeStore::new(MERCHANT).with_customers(5);
    salla.lock().store(MERCHANT).customers = store.customers;
    let key = app.api_key(&tenant_id.to_string()).await;
    let response = app
        .client
        .post(app.url("/api/sync/resync"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    eventually("the re-scan to bring 5 customers", WAIT, || async {
        (count(&tenant, "customers").await == 5).then_some(())
    })
    .await;

    // Operators: the store's token status, never the tokens.
    let store: Value = app
        .admin_get(&format!("/api/admin/salla/stores/{MERCHANT}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(store["store"]["status"], "installed");
    assert_eq!(store["store"]["has_tokens"], true);
    assert_eq!(store["last_webhook"]["event_type"], "app.store.authorize");
    let text = store.to_string();
    assert!(!text.contains(&tokens.access_token) && !text.contains(&tokens.refresh_token));

    // Stored deliveries, with the tokens of the authorize redacted; a replay processes one again.
    let listed: Value = app
        .admin_get(&format!(
            "/api/admin/webhooks?provider=salla&merchant_id={MERCHANT}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = &listed["deliveries"][0];
    assert_eq!(delivery["payload"]["data"]["access_token"], "[redacted]");
    assert_eq!(delivery["payload"]["data"]["refresh_token"], "[redacted]");
    assert!(!listed.to_string().contains(&tokens.refresh_token));
    let id = delivery["id"].as_i64().unwrap();
    let replayed = app
        .admin_post(&format!("/api/admin/webhooks/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::OK);
    eventually("the replayed delivery processed", WAIT, || async {
        let (status, attempts): (String, i32) =
            sqlx::query_as("SELECT status, attempts FROM webhook_inbox WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        (status == "processed" && attempts == 1).then_some(())
    })
    .await;
    let missing = app
        .admin_post("/api/admin/webhooks/999999/replay")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    tenant.close().await;
}

#[tokio::test]
async fn trials_and_subscriptions_are_recorded_on_the_store_in_any_order() {
    let salla = FakeSallaServer::start().await;
    let (app, _clerk) = salla_app(&salla).await;
    // The trial arrives before anything else about the store (no tokens, no tenant yet).
    deliver(&app, &for_merchant("app.trial.started", MERCHANT)).await;
    let subscription = || async {
        sqlx::query_as::<_, (Option<String>, Option<String>, Option<time::OffsetDateTime>)>(
            "SELECT subscription_status, subscription_plan, subscription_ends_at FROM salla_stores WHERE merchant_id = $1",
        )
        .bind(MERCHANT as i64)
        .fetch_optional(&app.db)
        .await
        .unwrap()
    };
    let trial = eventually("the trial recorded", WAIT, || async {
        subscription()
            .await
            .filter(|s| s.0.as_deref() == Some("trial"))
    })
    .await;
    assert_eq!(trial.1.as_deref(), Some("Diamond Plan"));
    assert!(trial.2.is_some(), "trial end date kept");

    deliver(&app, &for_merchant("app.subscription.started", MERCHANT)).await;
    eventually("the subscription active", WAIT, || async {
        subscription()
            .await
            .filter(|s| s.0.as_deref() == Some("active"))
    })
    .await;
    deliver(&app, &for_merchant("app.subscription.canceled", MERCHANT)).await;
    let canceled = eventually("the subscription canceled", WAIT, || async {
        subscription()
            .await
            .filter(|s| s.0.as_deref() == Some("canceled"))
    })
    .await;
    assert_eq!(
        canceled.1.as_deref(),
        Some("Diamond Plan"),
        "a null plan name keeps the known one"
    );
}

/// The merchant's store webhook row in the admin view, once its webhooks were checked.
async fn checked_store(app: &TestApp, after: Option<&str>) -> Value {
    eventually("the webhooks checked", WAIT, || async {
        let store: Value = app
            .admin_get(&format!("/api/admin/salla/stores/{MERCHANT}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let store = store.get("store").cloned().unwrap_or(store);
        let checked = store["webhooks_checked_at"].as_str()?;
        (Some(checked) != after).then_some(store)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_registered_through_the_api_each_have_their_url_and_our_credential() {
    let base = "https://wosool.example/webhooks/salla";
    let salla = FakeSallaServer::start().await;
    let tokens = salla
        .lock()
        .add_store(FakeStore::new(MERCHANT).with_orders(3));
    {
        // What one URL for every event left behind (Salla kept updating the one webhook), and another app's.
        let mut fake = salla.lock();
        let store = fake.store(MERCHANT);
        store.webhooks.push(json!({ "id": 17, "name": "old", "event": "abandoned.cart.purchased", "url": base,
            "version": 2, "headers": {}, "security_strategy": "signature", "secret": "generated-old" }));
        store.webhooks.push(
            json!({ "id": 18, "name": "theirs", "event": "product.created",
            "url": "https://other-app.example/hook", "version": 2, "headers": {},
            "security_strategy": "signature", "secret": "theirs" }),
        );
    }
    let (app, _) = salla_app_with(&salla, |env| {
        env.push(("WOSOOL_SALLA__WEBHOOK_SUBSCRIBE_URL".into(), base.into()))
    })
    .await;
    deliver(&app, &authorize(MERCHANT, &tokens)).await;
    wait_status(&app.db, MERCHANT, "ready").await;
    let store = checked_store(&app, None).await;
    assert_eq!(store["webhook_drift"], json!([]), "{store}");
    {
        let mut fake = salla.lock();
        let webhooks = fake.store(MERCHANT).webhooks.clone();
        for event in wosool::salla::subscriptions::SUBSCRIBED_EVENTS {
            let url = format!("{base}?event={event}");
            let registered: Vec<&Value> =
                webhooks.iter().filter(|w| w["url"] == json!(url)).collect();
            assert_eq!(registered.len(), 1, "{event}: {webhooks:#?}");
            assert_eq!(registered[0]["event"], json!(event));
            assert_eq!(
                (
                    registered[0]["security_strategy"].as_str(),
                    registered[0]["secret"].as_str()
                ),
                (Some("token"), Some(WEBHOOK_SECRET)),
                "{event} is signed with our secret"
            );
        }
        assert!(
            !webhooks.iter().any(|w| w["url"] == base),
            "the one-URL webhook is gone"
        );
        assert!(
            webhooks.iter().any(|w| w["id"] == 18),
            "another app's webhook is left alone"
        );
    }

    // A delivery as Salla sends it for one of them is accepted and applied.
    let mut event = for_merchant("order.created", MERCHANT);
    event["data"]["id"] = json!(771_000_001_u64);
    let body = serde_json::to_vec(&event).unwrap();
    let (url, headers) = salla
        .lock()
        .store(MERCHANT)
        .delivery("order.created", &body)
        .unwrap();
    let path = url.strip_prefix("https://wosool.example").unwrap();
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);

    // Where Salla ignores the strategy fields at registration, its deliveries still authenticate (our
    // Authorization header rides on each), and the check reports the drift.
    {
        let mut fake = salla.lock();
        fake.ignores_strategy_fields = true;
        let store = fake.store(MERCHANT);
        for webhook in &mut store.webhooks {
            if webhook["event"] == "customer.created" {
                webhook["security_strategy"] = json!("signature");
                webhook["secret"] = json!("generated-by-salla");
            }
        }
    }
    let mut customer = for_merchant("synthetic-customer.created", MERCHANT);
    customer["data"]["id"] = json!(881_000_001_u64);
    let body = serde_json::to_vec(&customer).unwrap();
    let (url, headers) = salla
        .lock()
        .store(MERCHANT)
        .delivery("customer.created", &body)
        .unwrap();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "X-Salla-Security-Strategy" && v == "Signature")
    );
    let path = url.strip_prefix("https://wosool.example").unwrap();
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
    let enqueued = app
        .admin_post("/api/admin/jobs")
        .json(&json!({ "kind": "salla.webhooks", "payload": { "merchant_id": MERCHANT } }))
        .send()
        .await
        .unwrap();
    assert!(enqueued.status().is_success());
    let rechecked = checked_store(&app, store["webhooks_checked_at"].as_str()).await;
    assert_eq!(
        rechecked["webhook_drift"],
        json!([{ "event": "customer.created", "problem": "other_credential" }]),
        "{rechecked}"
    );
}
