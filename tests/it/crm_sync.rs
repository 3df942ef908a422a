//! Record sync: commerce writes fill the tenant's `crm_outbox` in the same transaction (triggers), and
//! `crm.sync` pushes the current rows to Twenty's REST batch upsert, ≤60 per request, through 429s and failed
//! batches, without duplicates and with the latest values. The REST upstream is a minimal fake in this file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wosool::Role;
use wosool::crm::model::Manifest;
use wosool::crm::sync::{CrmSync, SyncError, outbox};
use wosool::secrets::Keyring;
use wosool::tenancy::TenantId;

use crate::helpers::{TestApp, database_url, spawn_app_with, tenancy_stack, test_config};

/// `secrets.encryption_keys` entry for these tests: base64 of 32 bytes.
pub(crate) const ENCRYPTION_KEY: &str = "crm-sync:c3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nLWVub3U=";

/// What the fake REST upstream holds and how it misbehaves.
#[derive(Default)]
pub(crate) struct RestState {
    /// plural → externalId → record.
    pub(crate) records: HashMap<String, HashMap<String, Value>>,
    /// (plural, records in the request) of every accepted request.
    pub(crate) batches: Vec<(String, usize)>,
    /// Every record received, in order: (plural, record).
    pub(crate) received: Vec<(String, Value)>,
    /// Answer the next N requests with 429 (Retry-After: 0).
    pub(crate) throttle_next: usize,
    /// Fail the Nth request from now (1 = the next) with a 500, once.
    pub(crate) fail_request: Option<usize>,
    pub(crate) throttled: usize,
    /// Upserts whose `id` disagreed with the stored record of the same externalId.
    pub(crate) conflicts: usize,
    pub(crate) api_key: String,
}

pub(crate) struct FakeRest {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<RestState>>,
}

impl FakeRest {
    pub(crate) async fn start(api_key: &str) -> Self {
        let state = Arc::new(Mutex::new(RestState {
            api_key: api_key.into(),
            ..Default::default()
        }));
        let router = Router::new()
            .route("/rest/batch/{plural}", post(batch))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, RestState> {
        self.state.lock().unwrap()
    }
}

async fn batch(
    State(state): State<Arc<Mutex<RestState>>>,
    Path(plural): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let bearer = format!("Bearer {}", s.api_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        s.throttled += 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response();
    }
    if let Some(n) = s.fail_request {
        if n <= 1 {
            s.fail_request = None;
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        s.fail_request = Some(n - 1);
    }
    if query.get("upsert").map(String::as_str) != Some("true") {
        return (StatusCode::BAD_REQUEST, "not an upsert").into_response();
    }
    let Ok(Value::Array(records)) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not an array").into_response();
    };
    if records.len() > 60 {
        let message =
            json!({"statusCode": 400, "error": "BadRequestException", "messages": ["at most 60"]});
        return (StatusCode::BAD_REQUEST, axum::Json(message)).into_response();
    }
    s.batches.push((plural.clone(), records.len()));
    let mut created = Vec::new();
    for record in records {
        let external = record["externalId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        s.received.push((plural.clone(), record.clone()));
        let stored = s.records.entry(plural.clone()).or_default();
        if stored
            .get(&external)
            .is_some_and(|existing| existing["id"] != record["id"])
        {
            s.conflicts += 1;
        }
        s.records
            .entry(plural.clone())
            .or_default()
            .insert(external, record.clone());
        created.push(record);
    }
    let key = format!("create{}{}", plural[..1].to_uppercase(), &plural[1..]);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "data": { key: created } })),
    )
        .into_response()
}

/// A ready tenant: its id and a connection to its own database.
pub(crate) struct SyncTenant {
    pub(crate) id: TenantId,
    pub(crate) db: PgPool,
}

pub(crate) async fn ready_tenant(app: &TestApp, name: &str) -> SyncTenant {
    let body = app.register_ready(name).await;
    let id: TenantId = body["tenant_id"].as_str().unwrap().parse().unwrap();
    let db_name: String = sqlx::query_scalar("SELECT db_name FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect(&database_url(&db_name))
        .await
        .expect("connect tenant database");
    SyncTenant { id, db }
}

pub(crate) fn keyring() -> Keyring {
    let config = test_config("unused", |env| {
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ))
    });
    Keyring::from_config(&config.secrets).unwrap()
}

/// Records a provisioned workspace for `tenant` with a sealed API key, at `manifest_version`.
pub(crate) async fn insert_workspace(
    app: &TestApp,
    tenant: TenantId,
    api_key: &str,
    manifest_version: i32,
) {
    let sealed = keyring()
        .seal(
            &wosool::crm::workspace::api_key_context(tenant),
            api_key.as_bytes(),
        )
        .unwrap();
    sqlx::query(
        "INSERT INTO crm_instances (key, base_url, max_workspaces) VALUES ('default', '', 5) ON CONFLICT DO NOTHING",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO crm_workspaces (tenant_id, step, owner_email, key_id, workspace_id, api_key_token, manifest_version, instance) \
         VALUES ($1, 'ready', 'owner@crm.example', $2, $3, $4, $5, 'default')",
    )
    .bind(tenant)
    .bind(&sealed.key_id)
    .bind(format!("ws-{tenant}"))
    .bind(&sealed.bytes)
    .bind(manifest_version)
    .execute(&app.db)
    .await
    .unwrap();
}

/// The sync service of `app`'s deployment, pointed at `rest`.
async fn sync_service(app: &TestApp, rest: &FakeRest) -> CrmSync {
    let config = test_config(&app.database, |env| {
        env.push(("WOSOOL_CRM__BASE_URL".into(), rest.url.clone()));
        env.push(("WOSOOL_CRM__REQUESTS_PER_MINUTE".into(), "600000".into()));
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ));
    });
    let stack = tenancy_stack(&config).await;
    CrmSync::new(&stack.core).unwrap()
}

async fn pending(db: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT object, external_id FROM crm_outbox ORDER BY object, external_id::bigint",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// `n` products with Salla ids from `first`, in one statement.
async fn insert_products(db: &PgPool, first: i64, n: i64) {
    sqlx::query(
        "INSERT INTO products (salla_id, name, price, status, raw) \
         SELECT g, 'Product ' || g, 10 + g % 7, 'sale', '{}' FROM generate_series($1::bigint, $1 + $2 - 1) g",
    )
    .bind(first)
    .bind(n)
    .execute(db)
    .await
    .unwrap();
}

async fn insert_customer_with_orders(db: &PgPool, customer: i64, orders: &[(i64, &str, &str)]) {
    sqlx::query(
        "INSERT INTO customers (salla_id, first_name, last_name, email, mobile, mobile_code, city, raw) \
         VALUES ($1, 'Sara', 'Ali', 'sara' || $1 || '@example.sa', '+96650' || $1, '+966', 'Riyadh', '{}')",
    )
    .bind(customer)
    .execute(db)
    .await
    .unwrap();
    for (order, total, status) in orders {
        sqlx::query(
            "INSERT INTO orders (salla_id, reference_id, status_slug, customer_salla_id, total, currency, ordered_at, raw) \
             VALUES ($1, $1::text, $3, $2, $4::numeric, 'SAR', now() - ($1 % 10) * interval '1 day', '{}')",
        )
        .bind(order)
        .bind(customer)
        .bind(status)
        .bind(total)
        .execute(db)
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commerce_writes_record_one_outbox_row_per_record_in_the_same_transaction() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let tenant = ready_tenant(&app, "Outbox Store").await;
    let other = ready_tenant(&app, "Other Store").await;

    let mut tx = tenant.db.begin().await.unwrap();
    sqlx::query("INSERT INTO customers (salla_id, first_name, raw) VALUES (7, 'A', '{}')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO orders (salla_id, customer_salla_id, total, ordered_at, raw) VALUES (70, 7, 5, now(), '{}')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    assert!(
        pending(&tenant.db).await.is_empty(),
        "not visible before commit"
    );
    tx.rollback().await.unwrap();
    assert!(
        pending(&tenant.db).await.is_empty(),
        "rolled back with the write"
    );

    insert_customer_with_orders(&tenant.db, 7, &[(70, "5", "completed")]).await;
    sqlx::query(
        "INSERT INTO abandoned_carts (salla_id, customer_salla_id, raw) VALUES (700, 7, '{}')",
    )
    .execute(&tenant.db)
    .await
    .unwrap();
    insert_products(&tenant.db, 1, 2).await;
    // Coalescing: more writes to the same records add no rows.
    for name in ["B", "C"] {
        sqlx::query("UPDATE customers SET first_name = $1 WHERE salla_id = 7")
            .bind(name)
            .execute(&tenant.db)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO order_items (salla_id, order_salla_id, name, quantity, raw) VALUES (7000, 70, 'x', 1, '{}')",
    )
    .execute(&tenant.db)
    .await
    .unwrap();
    let expected: Vec<(String, String)> = [
        ("person", "7"),
        ("sallaCart", "700"),
        ("sallaOrder", "70"),
        ("sallaProduct", "1"),
        ("sallaProduct", "2"),
    ]
    .iter()
    .map(|(o, id)| (o.to_string(), id.to_string()))
    .collect();
    assert_eq!(pending(&tenant.db).await, expected);

    // An order moving to another customer marks both persons (their aggregates change).
    sqlx::query("DELETE FROM crm_outbox")
        .execute(&tenant.db)
        .await
        .unwrap();
    insert_customer_with_orders(&tenant.db, 8, &[]).await;
    sqlx::query("DELETE FROM crm_outbox")
        .execute(&tenant.db)
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET customer_salla_id = 8 WHERE salla_id = 70")
        .execute(&tenant.db)
        .await
        .unwrap();
    let moved: Vec<(String, String)> = [("person", "7"), ("person", "8"), ("sallaOrder", "70")]
        .iter()
        .map(|(o, id)| (o.to_string(), id.to_string()))
        .collect();
    assert_eq!(pending(&tenant.db).await, moved);

    // Each tenant's outbox lives in its own database: the other tenant's stays empty.
    assert!(pending(&other.db).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_pushes_current_rows_in_batches_of_at_most_60_through_429s_and_failures() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let tenant = ready_tenant(&app, "Sync Store").await;
    let rest = FakeRest::start("twenty-key-a").await;
    let sync = sync_service(&app, &rest).await;
    let shutdown = CancellationToken::new();

    insert_products(&tenant.db, 1, 130).await;
    insert_customer_with_orders(
        &tenant.db,
        501,
        &[
            (9001, "100.50", "completed"),
            (9002, "20", "canceled"),
            (9003, "30", "in_progress"),
        ],
    )
    .await;

    // No workspace yet: nothing is read or pushed, everything stays pending.
    let report = sync.run_tenant(tenant.id, &shutdown).await.unwrap();
    assert!(report.not_configured);
    assert_eq!(pending(&tenant.db).await.len(), 134);
    insert_workspace(&app, tenant.id, "twenty-key-a", 1).await;

    // The second product batch fails (a crash mid-push, as far as the outbox knows), after two 429s.
    {
        let mut s = rest.lock();
        s.throttle_next = 2;
        s.fail_request = Some(2);
    }
    let error = sync.run_tenant(tenant.id, &shutdown).await.unwrap_err();
    assert!(matches!(error, SyncError::Push { .. }), "{error}");
    let left = pending(&tenant.db).await;
    assert!(!left.is_empty() && left.len() < 134, "{}", left.len());
    let status = sync.status(tenant.id).await.unwrap();
    assert_eq!(status.outbox.pending as usize, left.len());
    assert!(
        status
            .outbox
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("500"),
        "{status:?}"
    );
    assert_eq!(rest.lock().throttled, 2);

    // A record updated twice before the next push is pushed once, with its latest values.
    for name in ["Renamed once", "Renamed twice"] {
        sqlx::query("UPDATE products SET name = $1 WHERE salla_id = 5")
            .bind(name)
            .execute(&tenant.db)
            .await
            .unwrap();
    }
    let received_before = rest.lock().received.len();
    let report = sync.run_tenant(tenant.id, &shutdown).await.unwrap();
    assert!(pending(&tenant.db).await.is_empty());
    assert!(report.pushed > 0 && report.requests > 0);

    let s = rest.lock();
    assert!(s.batches.iter().all(|(_, n)| *n <= 60), "{:?}", s.batches);
    assert_eq!(s.records["sallaProducts"].len(), 130);
    assert_eq!(s.records["sallaOrders"].len(), 3);
    assert_eq!(s.records["people"].len(), 1);
    assert_eq!(s.conflicts, 0, "every push of a record carries the same id");
    let product_5: Vec<&Value> = s.received[received_before..]
        .iter()
        .filter(|(plural, r)| plural == "sallaProducts" && r["externalId"] == "5")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(product_5.len(), 1, "pushed once after two updates");
    assert_eq!(product_5[0]["name"], "Renamed twice");

    let person = &s.records["people"]["501"];
    assert_eq!(
        person["name"],
        json!({"firstName": "Sara", "lastName": "Ali"})
    );
    assert_eq!(person["emails"]["primaryEmail"], "sara501@example.sa");
    assert_eq!(person["phones"]["primaryPhoneNumber"], "50501");
    assert_eq!(
        person["totalSpent"], 130.5,
        "canceled orders are not counted"
    );
    assert_eq!(person["ordersCount"], 2);
    assert_eq!(person["sallaCustomerId"], "501");
    assert!(person["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert_eq!(s.records["sallaOrders"]["9002"]["status"], "CANCELED");
    assert_eq!(s.records["sallaOrders"]["9001"]["status"], "COMPLETED");
    // `currency` is reserved in Twenty: the order's currency is the manifest's currencyCode.
    assert_eq!(s.records["sallaOrders"]["9001"]["currencyCode"], "SAR");

    // Every pushed key is a field of the manifest (or a standard person field).
    let manifest = Manifest::load().unwrap();
    for (plural, object) in [
        ("people", "person"),
        ("sallaProducts", "sallaProduct"),
        ("sallaOrders", "sallaOrder"),
        ("sallaCarts", "sallaCart"),
    ] {
        let fields: Vec<String> = manifest
            .fields_of(object)
            .iter()
            .map(|f| f.name.clone())
            .collect();
        for record in s.records.get(plural).into_iter().flat_map(|r| r.values()) {
            for key in record.as_object().unwrap().keys() {
                let standard = ["id", "name", "emails", "phones", "city"].contains(&key.as_str());
                assert!(
                    standard || fields.contains(key),
                    "{object}.{key} is not in the manifest"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_changed_during_a_push_stays_pending_and_the_sweep_enqueues_only_tenants_with_work() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let busy = ready_tenant(&app, "Busy Store").await;
    let idle = ready_tenant(&app, "Idle Store").await;
    let rest = FakeRest::start("twenty-key-b").await;
    let sync = sync_service(&app, &rest).await;
    insert_workspace(&app, busy.id, "twenty-key-b", 1).await;
    insert_workspace(&app, idle.id, "twenty-key-b", 1).await;
    insert_products(&busy.db, 1, 1).await;

    let read = outbox::pending(&busy.db, 10).await.unwrap();
    sqlx::query("UPDATE products SET name = 'changed meanwhile' WHERE salla_id = 1")
        .execute(&busy.db)
        .await
        .unwrap();
    let rows: Vec<&outbox::Pending> = read.iter().collect();
    assert_eq!(outbox::complete(&busy.db, &rows).await.unwrap(), 0);
    assert_eq!(pending(&busy.db).await.len(), 1, "pushed again next time");

    sqlx::query("DELETE FROM jobs WHERE kind = 'crm.sync'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(sync.sweep().await.unwrap(), 1);
    let queued: Vec<Option<TenantId>> =
        sqlx::query_scalar("SELECT tenant_id FROM jobs WHERE kind = 'crm.sync'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(queued, vec![Some(busy.id)]);
}
