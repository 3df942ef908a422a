//! Salla commerce data in real tenant databases: every store fixture lands in typed columns, writes are
//! idempotent, stale payloads never win, granular events patch only their fields, deletes are soft, customer
//! aggregates follow orders, and one tenant's writes never touch another's database.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use time::OffsetDateTime;
use time::macros::datetime;
use wosool::Role;
use wosool::commerce::{self, Applied, UpsertCounts};
use wosool::salla::events::{self, EventKind};
use wosool::salla::model::{Cart, Customer, Order, Product, parse_items};

use crate::helpers::{TestApp, database_url, spawn_app_with};

const COMMERCE_TABLES: [&str; 5] = [
    "customers",
    "products",
    "orders",
    "order_items",
    "abandoned_carts",
];

/// An app with `count` ready tenants, and a pool on each tenant database (in creation order).
async fn tenant_databases(count: usize) -> (TestApp, Vec<PgPool>) {
    let app = spawn_app_with(Role::All, |_| {}).await;
    for i in 0..count {
        app.register_ready(&format!("Salla Data Store {i}")).await;
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT db_name FROM tenants ORDER BY created_at")
        .fetch_all(&app.db)
        .await
        .expect("tenant databases");
    assert_eq!(names.len(), count);
    let mut pools = Vec::new();
    for name in names {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&database_url(&name))
            .await
            .expect("connect tenant database");
        pools.push(pool);
    }
    (app, pools)
}

async fn tenant_database() -> (TestApp, PgPool) {
    let (app, mut pools) = tenant_databases(1).await;
    let pool = pools.pop().expect("one tenant");
    (app, pool)
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/salla")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("fixture JSON")
}

/// A webhook body for `event` with `data`.
fn body(event: &str, data: Value) -> Value {
    json!({"event": event, "merchant": 1305146709, "created_at": "Sun Jun 26 2022 12:21:48 GMT+0300", "data": data})
}

fn kind_of(body: &Value) -> EventKind {
    events::parse(body.to_string().as_bytes())
        .expect("event parses")
        .into_kind()
}

async fn conn(db: &PgPool) -> PoolConnection<Postgres> {
    db.acquire().await.expect("tenant connection")
}

async fn apply(db: &PgPool, body: &Value) -> Applied {
    commerce::apply_event(&mut *conn(db).await, &kind_of(body))
        .await
        .expect("apply event")
}

async fn apply_fixture(db: &PgPool, name: &str) -> Applied {
    apply(db, &fixture(name)).await
}

/// A Carbon date as Salla sends it.
fn carbon(date: &str) -> Value {
    json!({"date": format!("{date}.000000"), "timezone_type": 3, "timezone": "Asia/Riyadh"})
}

/// The columns of one row as text (times in UTC), by column name.
async fn row(db: &PgPool, table: &str, salla_id: i64) -> HashMap<String, Option<String>> {
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let pairs: Vec<(String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key, value FROM {table} t, jsonb_each_text(to_jsonb(t)) WHERE t.salla_id = $1"
    )))
    .bind(salla_id)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(!pairs.is_empty(), "no {table} row {salla_id}");
    pairs.into_iter().collect()
}

/// Asserts columns of a row: `(column, Some(text))` or `(column, None)` for NULL.
async fn assert_row(db: &PgPool, table: &str, salla_id: i64, expected: &[(&str, Option<&str>)]) {
    let row = row(db, table, salla_id).await;
    for (column, value) in expected {
        let actual = row
            .get(*column)
            .unwrap_or_else(|| panic!("{table} has no column {column}"));
        assert_eq!(actual.as_deref(), *value, "{table} {salla_id}: {column}");
    }
}

/// Every commerce table's rows, as JSON (to compare before and after).
async fn snapshot(db: &PgPool) -> Value {
    let mut tables = serde_json::Map::new();
    for table in COMMERCE_TABLES {
        let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(jsonb_agg(to_jsonb(t) ORDER BY t.salla_id), '[]') FROM {table} t"
        )))
        .fetch_one(db)
        .await
        .unwrap();
        tables.insert(table.into(), rows);
    }
    Value::Object(tables)
}

/// The names of the columns that differ between two rows.
fn changed_columns(
    before: &HashMap<String, Option<String>>,
    after: &HashMap<String, Option<String>>,
) -> Vec<String> {
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(column, value)| before.get(*column) != Some(value))
        .map(|(column, _)| column.clone())
        .filter(|column| !matches!(column.as_str(), "synced_at" | "updated_at"))
        .collect();
    changed.sort();
    changed
}

/// The store fixtures in an order that makes sense, with what applying each must do (the synthetic copies
/// repeat their source's data, so they change nothing).
const STORE_FIXTURES: &[(&str, Applied)] = &[
    ("customer.login.json", Applied::Changed),
    ("synthetic-customer.created.json", Applied::Unchanged),
    ("synthetic-customer.updated.json", Applied::Unchanged),
    ("product.created.json", Applied::Changed),
    ("synthetic-product.updated.json", Applied::Unchanged),
    ("product.price.updated.json", Applied::Changed),
    ("product.status.updated.json", Applied::Changed),
    ("product.image.updated.json", Applied::Changed),
    ("product.category.updated.json", Applied::Changed),
    ("product.brand.updated.json", Applied::Changed),
    ("product.tags.updated.json", Applied::Changed),
    ("order.created.json", Applied::Changed),
    ("synthetic-order.updated.json", Applied::Unchanged),
    ("synthetic-order.cancelled.json", Applied::Unchanged),
    ("abandoned.cart.json", Applied::Changed),
    ("coupon.applied.json", Applied::Changed),
    ("abandoned.cart.status.changed.json", Applied::Changed),
    ("synthetic-product.deleted.json", Applied::Changed),
];

/// The products the granular fixtures patch, seeded from `product.created` under their ids.
async fn seed_patched_products(db: &PgPool) {
    let base = fixture("product.created.json")["data"].clone();
    let products: Vec<Product> = [1462551237i64, 1234540307, 799860060]
        .into_iter()
        .map(|id| {
            let mut data = base.clone();
            data["id"] = json!(id);
            data["name"] = json!(format!("Product {id}"));
            Product::from_value(data).unwrap()
        })
        .collect();
    let counts = commerce::upsert_products(&mut *conn(db).await, &products)
        .await
        .unwrap();
    assert_eq!(counts.inserted, 3);
}

async fn apply_every_fixture(db: &PgPool) -> Vec<(String, Applied)> {
    let mut outcomes = Vec::new();
    for (name, _) in STORE_FIXTURES {
        outcomes.push((name.to_string(), apply_fixture(db, name).await));
    }
    outcomes
}

#[tokio::test]
async fn every_store_fixture_lands_in_typed_columns() {
    let (_app, db) = tenant_database().await;
    seed_patched_products(&db).await;
    let outcomes = apply_every_fixture(&db).await;
    let expected: Vec<(String, Applied)> = STORE_FIXTURES
        .iter()
        .map(|(n, a)| (n.to_string(), *a))
        .collect();
    assert_eq!(outcomes, expected);

    // Every webhook fixture is either a store fixture above or an event this layer does not apply.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/salla");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("api-")
            || name.starts_with("oauth-")
            || STORE_FIXTURES.iter().any(|(n, _)| *n == name)
        {
            continue;
        }
        assert_eq!(
            apply_fixture(&db, &name).await,
            Applied::NotApplicable,
            "{name}"
        );
    }

    assert_row(
        &db,
        "customers",
        225167971,
        &[
            ("first_name", Some("User")),
            ("last_name", Some("Mohammed")),
            ("mobile", Some("+966555555555")),
            ("mobile_code", Some("+966")),
            ("birthday", Some("1997-06-03")),
            ("currency", Some("AED")),
            ("location", Some("14")),
            ("country_code", Some("SA")),
            ("groups", Some("[]")),
            ("is_notifications_enabled", Some("true")),
            ("source_updated_at", Some("2022-01-24T11:26:55+00:00")),
        ],
    )
    .await;

    assert_row(
        &db,
        "orders",
        2116149737,
        &[
            ("reference_id", Some("41027662")),
            ("status_id", Some("566146469")),
            ("status_slug", Some("under_review")),
            ("status_name", Some("بإنتظار المراجعة")),
            ("customer_salla_id", Some("225167971")),
            ("customer_name", Some("Mohammed Ali")),
            ("customer_mobile", Some("+966501806978")),
            ("customer_email", Some("usertest@gmail.com")),
            ("total", Some("196.00")),
            ("sub_total", Some("186.00")),
            ("shipping_cost", Some("15.00")),
            ("cash_on_delivery", Some("0.00")),
            ("discount", Some("5.00")),
            ("tax", Some("0.00")),
            ("currency", Some("SAR")),
            ("payment_method", Some("bank")),
            ("items_count", Some("1")),
            ("source", Some("store")),
            ("source_device", Some("desktop")),
            ("shipping_country", Some("SA")),
            ("shipping_city", Some("جدة")),
            ("ordered_at", Some("2022-06-26T09:21:45+00:00")),
            ("deleted_at", None),
            ("source_updated_at", None),
        ],
    )
    .await;
    assert_row(
        &db,
        "order_items",
        70815337,
        &[
            ("order_salla_id", Some("2116149737")),
            ("product_salla_id", Some("720881993")),
            ("name", Some("بيتزا")),
            ("sku", Some("54534534")),
            ("quantity", Some("1")),
            ("price", Some("186.00")),
            ("discount", Some("5.00")),
            ("tax", Some("0.00")),
            ("total", Some("186.00")),
            ("currency", Some("SAR")),
        ],
    )
    .await;
    let raw: Value = sqlx::query_scalar("SELECT raw FROM orders WHERE salla_id = 2116149737")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        raw,
        fixture("order.created.json")["data"],
        "raw keeps the payload as received"
    );

    assert_row(
        &db,
        "products",
        1025569331,
        &[
            ("name", Some("Product-Booking-API-Date-and-Time")),
            ("sku", None),
            ("type", Some("booking")),
            ("status", Some("hidden")),
            ("is_available", Some("false")),
            ("price", Some("299.00")),
            ("sale_price", None),
            ("regular_price", Some("299.00")),
            ("cost_price", None),
            ("currency", Some("SAR")),
            ("quantity", Some("20")),
            ("sold_quantity", Some("0")),
            ("brand", None),
            ("source_updated_at", Some("2023-04-17T09:14:21+00:00")),
        ],
    )
    .await;
    let deleted: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT deleted_at FROM products WHERE salla_id = 1025569331")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(deleted.is_some(), "product.deleted is a soft delete");

    assert_row(
        &db,
        "products",
        1462551237,
        &[
            ("name", Some("Product 1462551237")),
            ("sku", Some("PRO-7644")),
            ("price", Some("150.00")),
            ("sale_price", Some("85.00")),
            ("sale_end", Some("2025-12-01")),
            ("regular_price", Some("150.00")),
            ("cost_price", Some("60.00")),
            (
                "main_image",
                Some("https://cdn.salla.sa/AzqOeQ/RsoIlcNiVFOaXRsyQU9rBT05yWQeiQ4CzIMHAh5m.png"),
            ),
        ],
    )
    .await;
    assert_row(
        &db,
        "products",
        799860060,
        &[("status", Some("hidden")), ("sku", Some("SKU122"))],
    )
    .await;
    let (categories, tags, brand): (Value, Value, Option<Value>) =
        sqlx::query_as("SELECT categories, tags, brand FROM products WHERE salla_id = 1234540307")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(categories, json!([{"id": 601049212, "name": "العطور"}]));
    assert_eq!(tags.as_array().map(Vec::len), Some(2));
    assert_eq!(brand, Some(json!({"id": 1972405558, "name": "Brand1"})));

    assert_row(
        &db,
        "abandoned_carts",
        1097962121,
        &[
            ("customer_salla_id", Some("225167971")),
            ("customer_name", Some("User Name")),
            ("customer_mobile", Some("+977612917082")),
            ("customer_email", Some("customer@email.com")),
            ("total", Some("100.00")),
            ("subtotal", Some("60.00")),
            ("total_discount", Some("10.00")),
            ("currency", Some("SAR")),
            ("items_count", Some("3")),
            ("coupon_code", Some("wizefriend")),
            (
                "checkout_url",
                Some("https://salla.sa/dev-wofftr4xsra5xtlv/checkout/1097962121"),
            ),
            ("status", None),
            ("source_created_at", Some("2025-01-21T14:09:39+00:00")),
            ("source_updated_at", Some("2025-01-21T14:09:39+00:00")),
        ],
    )
    .await;
    assert_row(
        &db,
        "abandoned_carts",
        746780865,
        &[
            ("total", Some("2910.00")),
            ("customer_mobile", Some("+251944130250")),
        ],
    )
    .await;
    assert_row(
        &db,
        "abandoned_carts",
        1305879817,
        &[("status", Some("purchased")), ("total", None)],
    )
    .await;

    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_state WHERE last_event_at IS NOT NULL \
         AND resource IN ('customers', 'products', 'orders', 'abandoned_carts')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(events, 4, "each resource records its last event");
}

#[tokio::test]
async fn applying_the_same_events_and_pages_twice_changes_nothing() {
    let (_app, db) = tenant_database().await;
    seed_patched_products(&db).await;
    apply_every_fixture(&db).await;
    let customers = parse_items(
        fixture("api-list-customers.json")["data"]
            .as_array()
            .unwrap(),
        Customer::from_value,
    )
    .0;
    let orders = parse_items(
        fixture("api-list-orders.json")["data"].as_array().unwrap(),
        Order::from_value,
    )
    .0;
    let product = Product::from_value(fixture("api-product-details.json")["data"].clone()).unwrap();
    let legacy_cart = Cart::from_value(json!({"id": 55, "subtotal": "15.00", "currency": "SAR", "total": "50.14",
        "coupon_code": null, "customer": {"id": 9, "avatar": "https://x", "name": "N", "mobile": "+966500000000"}}))
    .unwrap();
    let mut c = conn(&db).await;
    assert_eq!(
        commerce::upsert_customers(&mut c, &customers)
            .await
            .unwrap()
            .inserted,
        2
    );
    assert_eq!(
        commerce::upsert_orders(&mut c, &orders)
            .await
            .unwrap()
            .inserted,
        2
    );
    assert_eq!(
        commerce::upsert_products(&mut c, std::slice::from_ref(&product))
            .await
            .unwrap()
            .inserted,
        1
    );
    assert_eq!(
        commerce::upsert_carts(&mut c, std::slice::from_ref(&legacy_cart))
            .await
            .unwrap()
            .inserted,
        1
    );
    let before = snapshot(&db).await;

    for (name, applied) in apply_every_fixture(&db).await {
        assert_eq!(applied, Applied::Unchanged, "{name} again");
    }
    let unchanged = |n| UpsertCounts {
        unchanged: n,
        ..UpsertCounts::default()
    };
    assert_eq!(
        commerce::upsert_customers(&mut c, &customers)
            .await
            .unwrap(),
        unchanged(2)
    );
    assert_eq!(
        commerce::upsert_orders(&mut c, &orders).await.unwrap(),
        unchanged(2)
    );
    assert_eq!(
        commerce::upsert_products(&mut c, &[product.clone(), product])
            .await
            .unwrap(),
        unchanged(2)
    );
    assert_eq!(
        commerce::upsert_carts(&mut c, &[legacy_cart])
            .await
            .unwrap(),
        unchanged(1)
    );
    assert_eq!(
        snapshot(&db).await,
        before,
        "no row changed, not even synced_at"
    );
}

/// `order.created`'s order as an `order.updated` carrying `updated_at`, with a status and total of its own.
fn dated_order(updated_at: &str, slug: &str, total: f64, item_quantity: u32) -> Value {
    let mut data = fixture("order.created.json")["data"].clone();
    data["updated_at"] = carbon(updated_at);
    data["status"] = json!({"id": 1, "name": slug, "slug": slug});
    data["amounts"]["total"] = json!({"amount": total, "currency": "SAR"});
    data["items"][0]["quantity"] = json!(item_quantity);
    body("order.updated", data)
}

#[tokio::test]
async fn an_older_order_payload_never_overwrites_a_newer_one() {
    let (_app, db) = tenant_database().await;
    let id = 2116149737;
    assert_eq!(
        apply(
            &db,
            &dated_order("2022-06-27 10:00:00", "completed", 300.0, 2)
        )
        .await,
        Applied::Changed
    );
    assert_eq!(
        apply(
            &db,
            &dated_order("2022-06-27 09:00:00", "in_progress", 250.0, 5)
        )
        .await,
        Applied::Stale
    );
    let newest = [
        ("status_slug", Some("completed")),
        ("total", Some("300.00")),
        ("items_count", Some("2")),
    ];
    assert_row(&db, "orders", id, &newest).await;
    assert_row(&db, "order_items", 70815337, &[("quantity", Some("2"))]).await;

    // Undated payloads of unknown age only fill gaps in a dated row: the List Orders item (status and total,
    // no customer, item summaries) and the docs' order.created alike.
    let mut listed = fixture("api-list-orders.json")["data"][0].clone();
    listed["id"] = json!(id);
    let listed = Order::from_value(listed).unwrap();
    let counts = commerce::upsert_orders(&mut *conn(&db).await, &[listed])
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.stale), (0, 0), "{counts:?}");
    let raw: Value = sqlx::query_scalar("SELECT raw FROM orders WHERE salla_id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        raw["status"]["slug"], "completed",
        "raw keeps the dated values too"
    );
    assert!(
        raw.get("exchange_rate").is_some(),
        "and gains the keys it lacked"
    );
    assert_eq!(
        apply_fixture(&db, "order.created.json").await,
        Applied::Unchanged
    );
    assert_row(&db, "orders", id, &newest).await;
    assert_row(
        &db,
        "orders",
        id,
        &[
            ("customer_mobile", Some("+966501806978")),
            ("payment_method", Some("bank")),
        ],
    )
    .await;
    assert_row(&db, "order_items", 70815337, &[("quantity", Some("2"))]).await;

    // A newer dated payload wins, items included.
    assert_eq!(
        apply(
            &db,
            &dated_order("2022-06-28 10:00:00", "delivered", 310.0, 3)
        )
        .await,
        Applied::Changed
    );
    assert_row(
        &db,
        "orders",
        id,
        &[
            ("status_slug", Some("delivered")),
            ("total", Some("310.00")),
        ],
    )
    .await;
    assert_row(&db, "order_items", 70815337, &[("quantity", Some("3"))]).await;

    // order.status.updated: older than the stored payload is stale, newer sets the status.
    let status = |at: &str, name: &str, slug: &str| {
        let mut order = fixture("order.created.json")["data"].clone();
        order["status"] = json!({"id": 7, "name": name, "slug": slug});
        body(
            "order.status.updated",
            json!({"id": 1, "status": name, "customized": null, "note": "",
            "created_at": carbon(at), "order": order}),
        )
    };
    assert_eq!(
        apply(&db, &status("2022-06-28 09:00:00", "ملغي", "canceled")).await,
        Applied::Stale
    );
    assert_row(&db, "orders", id, &[("status_slug", Some("delivered"))]).await;
    assert_eq!(
        apply(
            &db,
            &status("2022-06-29 09:00:00", "تم التنفيذ", "completed")
        )
        .await,
        Applied::Changed
    );
    assert_row(
        &db,
        "orders",
        id,
        &[
            ("status_slug", Some("completed")),
            ("status_name", Some("تم التنفيذ")),
            ("status_id", Some("7")),
            ("total", Some("310.00")),
        ],
    )
    .await;
    assert_eq!(
        apply(
            &db,
            &status("2022-06-29 09:00:00", "تم التنفيذ", "completed")
        )
        .await,
        Applied::Unchanged
    );

    // On an undated row, undated payloads apply (last write wins) and keep what they do not carry.
    let mut listed = fixture("api-list-orders.json")["data"][1].clone();
    listed["id"] = json!(42);
    let mut full = fixture("order.created.json")["data"].clone();
    full["id"] = json!(42);
    full["items"][0]["id"] = json!(4242);
    assert_eq!(
        apply(&db, &body("order.created", full)).await,
        Applied::Changed
    );
    let counts =
        commerce::upsert_orders(&mut *conn(&db).await, &[Order::from_value(listed).unwrap()])
            .await
            .unwrap();
    assert_eq!(counts.updated, 1);
    assert_row(
        &db,
        "orders",
        42,
        &[
            ("status_slug", Some("canceled")),
            ("total", Some("0.00")),
            ("items_count", Some("3")),
            ("customer_name", Some("Mohammed Ali")),
            ("sub_total", Some("186.00")),
        ],
    )
    .await;
    let items: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_items WHERE order_salla_id = 42")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(items, 1, "list item summaries keep the stored lines");
}

#[tokio::test]
async fn granular_product_events_patch_only_their_fields() {
    let (_app, db) = tenant_database().await;
    let mut base = fixture("api-product-details.json")["data"].clone();
    base["id"] = json!(1462551237);
    let base = Product::from_value(base).unwrap();
    commerce::upsert_products(&mut *conn(&db).await, &[base])
        .await
        .unwrap();
    let before = row(&db, "products", 1462551237).await;

    assert_eq!(
        apply_fixture(&db, "product.price.updated.json").await,
        Applied::Changed
    );
    let after = row(&db, "products", 1462551237).await;
    assert_eq!(
        changed_columns(&before, &after),
        [
            "cost_price",
            "gtin",
            "mpn",
            "price",
            "raw",
            "regular_price",
            "sale_end",
            "sale_price",
            "sku"
        ]
    );
    assert_eq!(after["price"].as_deref(), Some("150.00"));
    assert_eq!(after["sale_price"].as_deref(), Some("85.00"));
    let raw: Value = sqlx::query_scalar("SELECT raw FROM products WHERE salla_id = 1462551237")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        raw["price"],
        json!({"amount": 100, "currency": "SAR"}),
        "raw keeps the full payload's shapes"
    );
    assert_eq!(raw["sku"], "PRO-7644");
    assert_eq!(
        apply_fixture(&db, "product.price.updated.json").await,
        Applied::Unchanged
    );

    let mut status = fixture("product.status.updated.json");
    status["data"]["id"] = json!(1462551237);
    status["data"]["sku"] = json!("PRO-7644");
    status["data"]["mpn"] = json!("MPN888");
    status["data"]["gtin"] = json!("38374622");
    assert_eq!(apply(&db, &status).await, Applied::Changed);
    let patched = row(&db, "products", 1462551237).await;
    assert_eq!(changed_columns(&after, &patched), ["raw", "status"]);
    assert_eq!(patched["status"].as_deref(), Some("hidden"));

    let image = apply_fixture(&db, "product.image.updated.json").await;
    assert_eq!(image, Applied::Changed);
    let imaged = row(&db, "products", 1462551237).await;
    assert_eq!(changed_columns(&patched, &imaged), ["main_image", "raw"]);

    // A patch for a product we do not have waits for the full product.
    assert_eq!(
        apply_fixture(&db, "product.tags.updated.json").await,
        Applied::Missing
    );
    let known: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(known, 1);

    // The next full payload (newer) replaces the patched values.
    let mut newer = fixture("api-product-details.json")["data"].clone();
    newer["id"] = json!(1462551237);
    newer["updated_at"] = json!("2026-01-01 00:00:00");
    assert_eq!(
        apply(&db, &body("product.updated", newer)).await,
        Applied::Changed
    );
    assert_row(
        &db,
        "products",
        1462551237,
        &[
            ("price", Some("100.00")),
            ("status", Some("sale")),
            ("sale_price", None),
        ],
    )
    .await;
}

#[tokio::test]
async fn cart_status_and_purchase() {
    let (_app, db) = tenant_database().await;
    let id = 1097962121;
    assert_eq!(
        apply_fixture(&db, "abandoned.cart.json").await,
        Applied::Changed
    );
    let changed = body(
        "abandoned.cart.status.changed",
        json!({"id": id, "status": "recovered"}),
    );
    assert_eq!(apply(&db, &changed).await, Applied::Changed);
    assert_eq!(apply(&db, &changed).await, Applied::Unchanged);
    // A redelivered cart payload (no status) keeps the status.
    assert_eq!(
        apply_fixture(&db, "abandoned.cart.json").await,
        Applied::Unchanged
    );
    assert_row(
        &db,
        "abandoned_carts",
        id,
        &[("status", Some("recovered")), ("total", Some("100.00"))],
    )
    .await;

    let purchased = body(
        "abandoned.cart.purchased",
        json!({"id": id, "status": "purchased", "currency": "SAR",
        "total": 34.99, "subtotal": 30.43, "total_discount": 0}),
    );
    assert_eq!(apply(&db, &purchased).await, Applied::Changed);
    assert_eq!(apply(&db, &purchased).await, Applied::Unchanged);
    assert_row(
        &db,
        "abandoned_carts",
        id,
        &[
            ("status", Some("purchased")),
            ("total", Some("34.99")),
            ("subtotal", Some("30.43")),
            ("total_discount", Some("0.00")),
            ("currency", Some("SAR")),
            ("coupon_code", Some("wizefriend")),
            ("customer_mobile", Some("+977612917082")),
        ],
    )
    .await;

    // A purchase of a cart we never saw creates it.
    let unknown = body(
        "abandoned.cart.purchased",
        json!({"id": 77, "status": "purchased", "currency": "SAR",
        "total": "12.50", "subtotal": 12.5, "total_discount": 0}),
    );
    assert_eq!(apply(&db, &unknown).await, Applied::Changed);
    assert_row(
        &db,
        "abandoned_carts",
        77,
        &[("status", Some("purchased")), ("total", Some("12.50"))],
    )
    .await;
}

#[tokio::test]
async fn deletes_are_soft_and_stick() {
    let (_app, db) = tenant_database().await;
    assert_eq!(
        apply_fixture(&db, "product.created.json").await,
        Applied::Changed
    );
    assert_eq!(
        apply_fixture(&db, "synthetic-product.deleted.json").await,
        Applied::Changed
    );
    assert_eq!(
        apply_fixture(&db, "synthetic-product.deleted.json").await,
        Applied::Unchanged
    );
    let mut newer = fixture("synthetic-product.updated.json");
    newer["data"]["updated_at"] = json!("2024-01-01 00:00:00");
    newer["data"]["name"] = json!("Renamed");
    assert_eq!(apply(&db, &newer).await, Applied::Changed);
    let (name, deleted): (String, Option<OffsetDateTime>) =
        sqlx::query_as("SELECT name, deleted_at FROM products WHERE salla_id = 1025569331")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(name, "Renamed");
    assert!(
        deleted.is_some(),
        "a later payload never revives a deleted product"
    );

    assert_eq!(
        apply_fixture(&db, "order.created.json").await,
        Applied::Changed
    );
    let deleted = body("order.deleted", json!({"id": 2116149737}));
    assert_eq!(apply(&db, &deleted).await, Applied::Changed);
    assert_eq!(apply(&db, &deleted).await, Applied::Unchanged);
    let items: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_items WHERE order_salla_id = 2116149737")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(items, 1, "the row and its lines stay for history");

    // A delete that overtakes its create leaves a tombstone the create fills in without reviving.
    assert_eq!(
        apply(&db, &body("order.deleted", json!({"id": 99}))).await,
        Applied::Changed
    );
    let mut late = fixture("order.created.json")["data"].clone();
    late["id"] = json!(99);
    late["items"] = json!([]);
    assert_eq!(
        apply(&db, &body("order.created", late)).await,
        Applied::Changed
    );
    let (ordered_at, deleted): (OffsetDateTime, Option<OffsetDateTime>) =
        sqlx::query_as("SELECT ordered_at, deleted_at FROM orders WHERE salla_id = 99")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(ordered_at, datetime!(2022-06-26 12:21:45 +03:00));
    assert!(deleted.is_some());
}

#[tokio::test]
async fn customer_aggregates_follow_orders() {
    let (_app, db) = tenant_database().await;
    let customer = 225167971;
    let order = |id: i64, date: &str, total: &str, slug: &str, customer: i64| {
        let mut data = fixture("order.created.json")["data"].clone();
        data["id"] = json!(id);
        data["date"] = carbon(date);
        data["amounts"]["total"] = json!({"amount": total, "currency": "SAR"});
        data["status"] = json!({"id": 1, "name": slug, "slug": slug});
        data["customer"]["id"] = json!(customer);
        data["items"] = json!([]);
        body("order.created", data)
    };
    apply(
        &db,
        &order(1, "2024-01-01 10:00:00", "100.50", "completed", customer),
    )
    .await;
    apply(
        &db,
        &order(2, "2024-02-01 10:00:00", "20.25", "under_review", customer),
    )
    .await;
    apply(
        &db,
        &order(3, "2024-03-01 10:00:00", "999", "in_progress", customer),
    )
    .await;
    apply(
        &db,
        &order(4, "2024-04-01 10:00:00", "5", "completed", 31337),
    )
    .await;

    let aggregates = |ids: Vec<i64>| {
        let db = db.clone();
        async move {
            commerce::customer_aggregates(&mut *conn(&db).await, &ids)
                .await
                .unwrap()
        }
    };
    let all = aggregates(vec![customer, 31337, 404]).await;
    let mine = &all[&customer];
    assert_eq!(mine.orders_count, 3);
    assert_eq!(mine.total_spent.to_string(), "1119.75");
    assert_eq!(
        mine.last_order_at,
        Some(datetime!(2024-03-01 10:00:00 +03:00))
    );
    assert_eq!(all[&31337].orders_count, 1);
    assert_eq!(
        all[&404],
        commerce::CustomerAggregates::default(),
        "no orders"
    );

    // Cancel the newest, delete another: neither counts.
    apply(
        &db,
        &order(3, "2024-03-01 10:00:00", "999", "canceled", customer),
    )
    .await;
    apply(&db, &body("order.deleted", json!({"id": 2}))).await;
    let mine = aggregates(vec![customer]).await.remove(&customer).unwrap();
    assert_eq!(mine.orders_count, 1);
    assert_eq!(mine.total_spent.to_string(), "100.50");
    assert_eq!(
        mine.last_order_at,
        Some(datetime!(2024-01-01 10:00:00 +03:00))
    );
}

#[tokio::test]
async fn one_tenants_writes_never_touch_another() {
    let (_app, dbs) = tenant_databases(2).await;
    let (a, b) = (&dbs[0], &dbs[1]);
    let empty = snapshot(b).await;
    seed_patched_products(a).await;
    apply_every_fixture(a).await;
    assert_eq!(snapshot(b).await, empty, "tenant B is untouched");
    let a_before = snapshot(a).await;
    assert_ne!(a_before, empty);

    // The same ids in B are B's own rows.
    let mut other = fixture("order.created.json");
    other["data"]["amounts"]["total"] = json!({"amount": 1, "currency": "SAR"});
    assert_eq!(apply(b, &other).await, Applied::Changed);
    assert_row(b, "orders", 2116149737, &[("total", Some("1.00"))]).await;
    assert_row(a, "orders", 2116149737, &[("total", Some("196.00"))]).await;
    assert_eq!(snapshot(a).await, a_before);
}
