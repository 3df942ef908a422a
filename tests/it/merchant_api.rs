//! The merchant data API (`/api/customers`, `/api/products`, `/api/orders`, `/api/carts/abandoned`,
//! `/api/stats`, `/api/sync`) over HTTP against a real tenant database: cursor paging that visits every row
//! once, search with literal `%`/`_`, filters, sorts, order details, hand-computed statistics, sync state,
//! bad parameters, authentication and tenant isolation. Rows are written straight into the tenant database.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use wosool::Role;

use crate::helpers::{TestApp, spawn_app_with};
use crate::helpers::{get_with_key, tenant_db, tenant_row};

/// A ready tenant: its id, its API key and a connection to its database (also the merchant app's tests').
pub(crate) struct Store {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) db: PgPool,
}

pub(crate) async fn app() -> TestApp {
    spawn_app_with(Role::All, |_| {}).await
}

pub(crate) async fn store(app: &TestApp, name: &str) -> Store {
    let registered = app.register_ready(name).await;
    let tenant_id = registered["tenant_id"].as_str().expect("tenant_id");
    let (_, db_name, _) = tenant_row(app, tenant_id).await;
    Store {
        id: tenant_id.to_owned(),
        key: app.api_key(tenant_id).await,
        db: tenant_db(&db_name).await,
    }
}

/// Runs arrangement SQL (several statements allowed) in a tenant database.
pub(crate) async fn exec(db: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(db)
        .await
        .expect("arrange rows");
}

/// `GET path` that must succeed; its JSON.
async fn ok(app: &TestApp, store: &Store, path: &str) -> Value {
    let (status, body) = get_with_key(app, path, &store.key).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Follows `next_cursor` from `path` (which has a query string) to the end; every row seen, in order.
async fn walk(app: &TestApp, store: &Store, path: &str) -> Vec<Value> {
    walk_from(app, store, path, ok(app, store, path).await).await
}

/// The rows of `page` and of every page after it.
async fn walk_from(app: &TestApp, store: &Store, path: &str, mut page: Value) -> Vec<Value> {
    let mut rows = Vec::new();
    loop {
        rows.extend(page["data"].as_array().expect("data").iter().cloned());
        let Some(cursor) = page["next_cursor"].as_str() else {
            return rows;
        };
        page = ok(app, store, &format!("{path}&cursor={cursor}")).await;
    }
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().expect("id")).collect()
}

/// Salla ids of a list answer.
fn data_ids(page: &Value) -> Vec<i64> {
    ids(page["data"].as_array().expect("data"))
}

/// A key for comparing JSON values in sort checks: numbers and decimal strings as numbers, times as times.
fn sort_value(value: &Value) -> Option<f64> {
    match value {
        Value::Null => None,
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            OffsetDateTime::parse(s, &Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp_nanos() as f64)
        }),
        other => panic!("not a sort value: {other}"),
    }
}

/// Asserts that `rows` are ordered by `field` (descending when `descending`) with NULLs last.
fn assert_sorted(rows: &[Value], field: &str, descending: bool) {
    let values: Vec<Option<f64>> = rows.iter().map(|r| sort_value(&r[field])).collect();
    for pair in values.windows(2) {
        let ordered = match (pair[0], pair[1]) {
            (Some(a), Some(b)) => {
                if descending {
                    a >= b
                } else {
                    a <= b
                }
            }
            (Some(_), None) | (None, None) => true,
            (None, Some(_)) => false,
        };
        assert!(ordered, "{field} out of order: {values:?}");
    }
}

/// Walking a list in small pages gives exactly the rows, in the order, of one big page.
async fn assert_walk_matches_one_page(app: &TestApp, store: &Store, path: &str) -> Vec<Value> {
    let whole = ok(app, store, &format!("{path}&limit=200")).await;
    assert!(whole["next_cursor"].is_null(), "{whole}");
    let walked = walk(app, store, &format!("{path}&limit=3")).await;
    assert_eq!(ids(&walked), data_ids(&whole), "{path}");
    let unique: HashSet<i64> = ids(&walked).into_iter().collect();
    assert_eq!(unique.len(), walked.len(), "{path}: a row came twice");
    walked
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("format")
}

// ---------------------------------------------------------------------------------------------------------
// Paging and sorting
// ---------------------------------------------------------------------------------------------------------

/// 25 orders: timestamps in groups of three (ties), totals repeating (ties) and every fifth one NULL.
const TWENTY_FIVE_ORDERS: &str = "
    INSERT INTO orders (salla_id, reference_id, total, status_slug, ordered_at, raw)
    SELECT 5000 + n, 'R' || n,
           CASE WHEN n % 5 = 0 THEN NULL ELSE (n % 4) * 10.25 END,
           'completed',
           timestamptz '2026-01-01 00:00:00+00' + (n / 3) * interval '1 hour',
           '{}'
    FROM generate_series(1, 25) n;";

#[tokio::test]
async fn merchant_api_paging_visits_every_row_once_in_a_stable_order() {
    let app = app().await;
    let shop = store(&app, "Paging Store").await;
    exec(&shop.db, TWENTY_FIVE_ORDERS).await;

    let default = ok(&app, &shop, "/api/orders?limit=7").await;
    assert_eq!(default["data"].as_array().unwrap().len(), 7);
    assert!(default["next_cursor"].is_string());
    let expected: Vec<i64> =
        sqlx::query_scalar("SELECT salla_id FROM orders ORDER BY ordered_at DESC, id DESC")
            .fetch_all(&shop.db)
            .await
            .unwrap();
    let walked = walk(&app, &shop, "/api/orders?limit=7").await;
    assert_eq!(
        ids(&walked),
        expected,
        "default sort: newest first, ties by id"
    );
    assert_eq!(walked[0]["ordered_at"], "2026-01-01T08:00:00Z");

    for (sort, field, descending) in [
        ("ordered_at", "ordered_at", false),
        ("-total", "total", true),
        ("total", "total", false),
    ] {
        let rows =
            assert_walk_matches_one_page(&app, &shop, &format!("/api/orders?sort={sort}")).await;
        assert_eq!(rows.len(), 25, "{sort}");
        assert_sorted(&rows, field, descending);
    }

    // Rows inserted while a client pages: nothing already seen comes again, nothing unseen is skipped.
    let first = ok(&app, &shop, "/api/orders?limit=10").await;
    exec(
        &shop.db,
        "INSERT INTO orders (salla_id, total, ordered_at, raw) VALUES
            (9001, 1.00, timestamptz '2027-01-01 00:00:00+00', '{}'),
            (9002, 1.00, timestamptz '2025-01-01 00:00:00+00', '{}');",
    )
    .await;
    let seen = ids(&walk_from(&app, &shop, "/api/orders?limit=10", first).await);
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no order twice");
    assert!(
        !unique.contains(&9001),
        "the newer order sorts before the cursor"
    );
    assert!(unique.contains(&9002), "the older order comes in its place");
    assert_eq!(seen.len(), 26);
}

#[tokio::test]
async fn merchant_api_customer_aggregates_sort_and_page() {
    let app = app().await;
    let shop = store(&app, "Aggregates Store").await;
    exec(
        &shop.db,
        "INSERT INTO customers (salla_id, first_name, last_name, email, mobile, raw, created_at)
         SELECT 100 + n,
                CASE WHEN n % 4 = 0 THEN NULL ELSE 'Customer' END,
                CASE WHEN n % 4 = 0 THEN NULL ELSE chr(64 + n) END,
                'c' || n || '@example.sa', '+96650000' || lpad(n::text, 4, '0'), '{}',
                timestamptz '2026-01-01 00:00:00+00' + (n / 2) * interval '1 day'
         FROM generate_series(1, 12) n;
         -- Customer 101: two counted orders, a canceled and a deleted one.
         INSERT INTO orders (salla_id, customer_salla_id, total, status_slug, ordered_at, deleted_at, raw) VALUES
            (1, 101, 175.47, 'completed', '2026-02-01T10:00:00Z', NULL, '{}'),
            (2, 101, 24.53, 'delivered', '2026-02-03T10:00:00Z', NULL, '{}'),
            (3, 101, 500.00, 'canceled', '2026-02-04T10:00:00Z', NULL, '{}'),
            (4, 101, 600.00, 'completed', '2026-02-05T10:00:00Z', now(), '{}'),
            (5, 102, 200.00, 'completed', '2026-01-20T10:00:00Z', NULL, '{}'),
            (6, 103, 50.00, 'completed', '2026-01-21T10:00:00Z', NULL, '{}'),
            (7, 103, 50.00, 'completed', '2026-01-22T10:00:00Z', NULL, '{}'),
            (8, 103, 100.00, 'completed', '2026-01-23T10:00:00Z', NULL, '{}');",
    )
    .await;

    let all = ok(&app, &shop, "/api/customers?limit=200").await;
    let by_id = |id: i64| {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap()
    };
    let c101 = by_id(101);
    assert_eq!(c101["orders_count"], 2, "{c101}");
    assert_eq!(c101["total_spent"], "200.00");
    assert_eq!(c101["last_order_at"], "2026-02-03T10:00:00Z");
    assert_eq!(c101["name"], "Customer A");
    assert!(c101.get("raw").is_none(), "no raw payloads in lists");
    let c104 = by_id(104);
    assert_eq!(
        (
            &c104["orders_count"],
            &c104["total_spent"],
            &c104["last_order_at"],
            &c104["name"]
        ),
        (
            &Value::from(0),
            &Value::from("0.00"),
            &Value::Null,
            &Value::Null
        )
    );

    for (sort, field, descending) in [
        ("-created_at", "created_at", true),
        ("created_at", "created_at", false),
        ("-total_spent", "total_spent", true),
        ("-orders_count", "orders_count", true),
        ("-last_order_at", "last_order_at", true),
    ] {
        let rows =
            assert_walk_matches_one_page(&app, &shop, &format!("/api/customers?sort={sort}")).await;
        assert_eq!(rows.len(), 12, "{sort}");
        assert_sorted(&rows, field, descending);
    }
    let by_spent = ok(&app, &shop, "/api/customers?sort=-total_spent&limit=3").await;
    // All three spent 200.00: ties go by row, newest first.
    assert_eq!(data_ids(&by_spent), vec![103, 102, 101]);

    let by_name = assert_walk_matches_one_page(&app, &shop, "/api/customers?sort=name").await;
    let names: Vec<Option<&str>> = by_name.iter().map(|c| c["name"].as_str()).collect();
    let named: Vec<&str> = names.iter().flatten().copied().collect();
    let mut sorted = named.clone();
    sorted.sort();
    assert_eq!(named, sorted);
    assert_eq!(names[9..], [None, None, None], "nameless customers last");

    let products = "INSERT INTO products (salla_id, name, price, raw)
        SELECT 700 + n, 'Product ' || (n % 3), CASE WHEN n % 3 = 0 THEN NULL ELSE n * 1.5 END, '{}'
        FROM generate_series(1, 8) n;";
    exec(&shop.db, products).await;
    for (sort, field, descending) in [("-price", "price", true), ("price", "price", false)] {
        let rows =
            assert_walk_matches_one_page(&app, &shop, &format!("/api/products?sort={sort}")).await;
        assert_eq!(rows.len(), 8);
        assert_sorted(&rows, field, descending);
    }
    let rows = assert_walk_matches_one_page(&app, &shop, "/api/products?sort=name").await;
    assert_eq!(rows[0]["name"], "Product 0");
    assert_eq!(rows[7]["name"], "Product 2");
}

// ---------------------------------------------------------------------------------------------------------
// Search and filters
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn merchant_api_search_is_literal_and_filters_combine() {
    let app = app().await;
    let shop = store(&app, "Search Store").await;
    exec(
        &shop.db,
        "INSERT INTO customers (salla_id, first_name, last_name, email, mobile, raw, created_at, source_updated_at) VALUES
            (1, 'Sara', 'Ali', 'sara@example.sa', '+966501111111', '{}', '2026-03-01T00:00:00Z', '2026-03-20T00:00:00Z'),
            (2, 'Omar', '100% Real', 'omar@example.sa', '+966502222222', '{}', '2026-03-05T12:00:00Z', NULL),
            (3, 'Huda', '1000 Real', 'huda_x@example.sa', '+966503333333', '{}', '2026-03-10T00:00:00Z', NULL),
            (4, 'Lina', 'Saad', 'linaxx@example.sa', '+966504444444', '{}', '2026-03-31T23:00:00Z', NULL);
         INSERT INTO products (salla_id, name, sku, status, raw, deleted_at) VALUES
            (11, 'Discount 50% Shirt', 'AB_1', 'sale', '{}', NULL),
            (12, 'Discount 500 Shirt', 'ABX1', 'sale', '{}', NULL),
            (13, 'Hidden Hat', 'HAT', 'hidden', '{}', NULL),
            (14, 'Gone Scarf', 'SCARF', 'sale', '{}', now());
         INSERT INTO orders (salla_id, reference_id, customer_salla_id, customer_name, customer_mobile,
                             customer_email, total, status_slug, ordered_at, deleted_at, raw) VALUES
            (21, '9001', 1, 'Sara Ali', '+966501111111', 'sara@example.sa', 10.00, 'completed', '2026-04-01T09:00:00Z', NULL, '{}'),
            (22, '9002', 2, 'Omar 100% Real', '+966502222222', 'omar@example.sa', 20.00, 'in_progress', '2026-04-02T09:00:00Z', NULL, '{}'),
            (23, '9003', 1, 'Sara Ali', '+966501111111', 'sara@example.sa', 30.00, 'canceled', '2026-04-03T23:30:00Z', NULL, '{}'),
            (24, '9004', 3, 'Huda', '+966503333333', 'huda_x@example.sa', 40.00, 'completed', '2026-04-04T00:00:00Z', now(), '{}');
         INSERT INTO abandoned_carts (salla_id, customer_name, customer_mobile, customer_email, total, status,
                                      source_updated_at, raw) VALUES
            (31, 'Sara Ali', '+966501111111', 'sara@example.sa', 99.00, NULL, '2026-05-01T00:00:00Z', '{}'),
            (32, 'Omar', '+966502222222', 'omar@example.sa', 15.00, 'purchased', '2026-05-02T00:00:00Z', '{}'),
            (33, 'Huda', '+966503333333', 'huda_x@example.sa', 7.50, 'pending', '2026-05-03T00:00:00Z', '{}');",
    )
    .await;
    let list = |path: &'static str| {
        let (app, shop) = (&app, &shop);
        async move {
            let mut ids = data_ids(&ok(app, shop, path).await);
            ids.sort();
            ids
        }
    };

    // Customers: name (also across first and last name), email, mobile; `%` and `_` are literal.
    assert_eq!(list("/api/customers?q=SARA").await, vec![1]);
    assert_eq!(list("/api/customers?q=sara%20ali").await, vec![1]);
    assert_eq!(list("/api/customers?q=100%25").await, vec![2]);
    assert_eq!(list("/api/customers?q=a_x").await, vec![3]);
    assert_eq!(list("/api/customers?q=503333").await, vec![3]);
    assert_eq!(list("/api/customers?q=%25").await, vec![2]);
    assert_eq!(list("/api/customers?q=nobody").await, Vec::<i64>::new());
    // Dates: by first import (default) or Salla's update; a date `to` includes its whole day.
    assert_eq!(
        list("/api/customers?from=2026-03-05&to=2026-03-31").await,
        vec![2, 3, 4]
    );
    assert_eq!(
        list("/api/customers?from=2026-03-05T12:00:01Z&to=2026-03-10T00:00:00Z").await,
        vec![3]
    );
    assert_eq!(
        list("/api/customers?date_field=source_updated_at&from=2026-03-15").await,
        vec![1]
    );

    // Products: name and SKU, status, soft-deleted hidden unless asked for.
    assert_eq!(list("/api/products?q=50%25").await, vec![11]);
    assert_eq!(list("/api/products?q=ab_").await, vec![11]);
    assert_eq!(list("/api/products?q=shirt").await, vec![11, 12]);
    assert_eq!(list("/api/products").await, vec![11, 12, 13]);
    assert_eq!(list("/api/products?status=hidden").await, vec![13]);
    assert_eq!(
        list("/api/products?status=sale,hidden").await,
        vec![11, 12, 13]
    );
    assert_eq!(
        list("/api/products?include_deleted=true").await,
        vec![11, 12, 13, 14]
    );
    assert_eq!(
        list("/api/products?q=scarf&include_deleted=true").await,
        vec![14]
    );

    // Orders: reference id exactly, customer fields partly; status, customer and date filters.
    assert_eq!(list("/api/orders?q=9002").await, vec![22]);
    assert_eq!(list("/api/orders?q=900").await, Vec::<i64>::new());
    assert_eq!(list("/api/orders?q=sara").await, vec![21, 23]);
    assert_eq!(list("/api/orders?q=100%25").await, vec![22]);
    assert_eq!(list("/api/orders?q=502222222").await, vec![22]);
    assert_eq!(list("/api/orders?status=completed").await, vec![21]);
    assert_eq!(
        list("/api/orders?status=completed,canceled").await,
        vec![21, 23]
    );
    assert_eq!(list("/api/orders?customer_id=1").await, vec![21, 23]);
    assert_eq!(
        list("/api/orders?customer_id=1&status=canceled").await,
        vec![23]
    );
    assert_eq!(
        list("/api/orders?from=2026-04-02&to=2026-04-03").await,
        vec![22, 23]
    );
    assert_eq!(list("/api/orders?to=2026-04-01T09:00:00Z").await, vec![21]);
    assert_eq!(
        list("/api/orders?from=2026-04-04T03:00:00%2B03:00&include_deleted=true").await,
        vec![24]
    );
    assert_eq!(list("/api/orders").await, vec![21, 22, 23]);

    // Carts: customer fields, status, last activity.
    assert_eq!(list("/api/carts/abandoned?q=huda_").await, vec![33]);
    assert_eq!(list("/api/carts/abandoned?q=%2B96650111").await, vec![31]);
    assert_eq!(
        list("/api/carts/abandoned?status=purchased").await,
        vec![32]
    );
    assert_eq!(
        list("/api/carts/abandoned?from=2026-05-02").await,
        vec![32, 33]
    );
    let carts = ok(&app, &shop, "/api/carts/abandoned").await;
    assert_eq!(
        data_ids(&carts),
        vec![33, 32, 31],
        "most recent activity first"
    );
    assert_eq!(carts["data"][2]["total"], "99.00");
}

// ---------------------------------------------------------------------------------------------------------
// Order details
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn merchant_api_order_detail_has_its_items_and_unknown_orders_are_404() {
    let app = app().await;
    let shop = store(&app, "Detail Store").await;
    exec(
        &shop.db,
        "INSERT INTO orders (salla_id, reference_id, status_slug, status_name, customer_salla_id, total, sub_total,
                             tax, currency, items_count, ordered_at, raw) VALUES
            (1234567890123, '77001', 'completed', 'مكتمل', 42, 175.47, 150.00, 22.50, 'SAR', 3,
             '2026-06-01T08:30:00.123456Z', '{\"secret\": \"raw payload\"}');
         INSERT INTO order_items (salla_id, order_salla_id, product_salla_id, name, sku, quantity, price, total, raw) VALUES
            (2, 1234567890123, 55, 'Shirt', 'SH-1', 2, 50.00, 115.00, '{}'),
            (1, 1234567890123, NULL, 'Gift wrap', NULL, 1, 5.00, 5.75, '{}');",
    )
    .await;

    let order = ok(&app, &shop, "/api/orders/1234567890123").await;
    assert_eq!(order["id"], 1234567890123_i64);
    assert_eq!(order["reference_id"], "77001");
    assert_eq!(order["status_name"], "مكتمل");
    assert_eq!(order["customer_id"], 42);
    assert_eq!(order["total"], "175.47");
    assert_eq!(order["sub_total"], "150.00");
    assert_eq!(order["discount"], Value::Null);
    assert_eq!(order["ordered_at"], "2026-06-01T08:30:00.123456Z");
    assert!(order.get("raw").is_none(), "{order}");
    let items = order["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], 1);
    assert_eq!(items[0]["product_id"], Value::Null);
    assert_eq!(items[1]["name"], "Shirt");
    assert_eq!(items[1]["product_id"], 55);
    assert_eq!(items[1]["quantity"], 2);
    assert_eq!(items[1]["price"], "50.00");
    assert_eq!(items[1]["total"], "115.00");

    for path in [
        "/api/orders/1",
        "/api/orders/not-a-number",
        "/api/orders/99999999999999999999",
    ] {
        let (status, body) = get_with_key(&app, path, &shop.key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "order_not_found", "{body}");
        assert!(body["error"]["request_id"].is_string(), "{body}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Statistics and sync state
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn merchant_api_stats_match_numbers_computed_by_hand() {
    let app = app().await;
    let shop = store(&app, "Stats Store").await;
    let empty = ok(&app, &shop, "/api/stats").await;
    assert_eq!(empty["sales"]["last_7_days"]["orders"], 0, "{empty}");
    assert_eq!(empty["sales"]["last_7_days"]["revenue"], "0.00");
    assert_eq!(
        empty["sales"]["last_7_days"]["average_order_value"],
        Value::Null
    );
    assert_eq!(empty["abandoned_carts"]["recovery_rate"], Value::Null);

    let ago = |days: i64| rfc3339(OffsetDateTime::now_utc() - Duration::days(days));
    exec(
        &shop.db,
        &format!(
            "INSERT INTO orders (salla_id, total, status_slug, ordered_at, deleted_at, raw) VALUES
                (1, 100.00, 'completed', '{d1}', NULL, '{{}}'),
                (2, 50.50, 'delivered', '{d3}', NULL, '{{}}'),
                (3, 200.00, 'completed', '{d10}', NULL, '{{}}'),
                (4, 300.25, 'completed', '{d45}', NULL, '{{}}'),
                (5, 1000.00, 'completed', '{d100}', NULL, '{{}}'),
                (6, 999.99, 'canceled', '{d2}', NULL, '{{}}'),
                (7, 500.00, 'completed', '{d2}', now(), '{{}}');
             INSERT INTO order_items (salla_id, order_salla_id, product_salla_id, name, quantity, total, raw) VALUES
                (101, 1, 11, 'Shirt', 2, 60.00, '{{}}'),
                (102, 1, 12, 'Cap', 1, 40.00, '{{}}'),
                (103, 2, 12, 'Cap', 3, 50.50, '{{}}'),
                (104, 2, 15, 'Socks', 1, 1.00, '{{}}'),
                (105, 3, 13, 'Shoes', 1, 200.00, '{{}}'),
                (106, 3, NULL, 'Gift wrap', 5, 5.00, '{{}}'),
                (107, 3, 16, 'Belt', 1, 0.50, '{{}}'),
                (108, 4, 11, 'Shirt', 10, 300.25, '{{}}'),
                (109, 6, 14, 'Canceled thing', 50, 999.99, '{{}}'),
                (110, 7, 14, 'Deleted thing', 50, 500.00, '{{}}');
             INSERT INTO products (salla_id, name, raw) VALUES (11, 'Shirt (new name)', '{{}}');
             INSERT INTO abandoned_carts (salla_id, total, status, raw) VALUES
                (1, 80.00, 'purchased', '{{}}'),
                (2, 120.00, NULL, '{{}}'),
                (3, 30.50, 'pending', '{{}}'),
                (4, 9.50, 'sent', '{{}}');
             INSERT INTO customers (salla_id, raw, created_at) VALUES
                (1, '{{}}', now()), (2, '{{}}', '{d10}'), (3, '{{}}', '{d45}');",
            d1 = ago(1),
            d2 = ago(2),
            d3 = ago(3),
            d10 = ago(10),
            d45 = ago(45),
            d100 = ago(100),
        ),
    )
    .await;

    let stats = ok(&app, &shop, "/api/stats").await;
    let sales = &stats["sales"];
    let window = |w: &str| {
        (
            sales[w]["orders"].as_i64().unwrap(),
            sales[w]["revenue"].as_str().unwrap().to_owned(),
            sales[w]["average_order_value"].as_str().unwrap().to_owned(),
        )
    };
    // 7 days: orders 1 and 2. 30 days: and 3. 90 days: and 4. Canceled, deleted and older ones never.
    assert_eq!(
        window("last_7_days"),
        (2, "150.50".into(), "75.25".into()),
        "{stats}"
    );
    assert_eq!(
        window("last_30_days"),
        (3, "350.50".into(), "116.83".into())
    );
    assert_eq!(
        window("last_90_days"),
        (4, "650.75".into(), "162.69".into())
    );

    let top = |list: &str| -> Vec<(String, i64, String)> {
        stats["top_products_30_days"][list]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["quantity"].as_i64().unwrap(),
                    p["revenue"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let row =
        |name: &str, quantity: i64, revenue: &str| (name.to_owned(), quantity, revenue.to_owned());
    assert_eq!(
        top("by_quantity"),
        vec![
            row("Gift wrap", 5, "5.00"),
            row("Cap", 4, "90.50"),
            row("Shirt (new name)", 2, "60.00"),
            row("Shoes", 1, "200.00"),
            row("Socks", 1, "1.00"),
        ]
    );
    assert_eq!(
        top("by_revenue"),
        vec![
            row("Shoes", 1, "200.00"),
            row("Cap", 4, "90.50"),
            row("Shirt (new name)", 2, "60.00"),
            row("Gift wrap", 5, "5.00"),
            row("Socks", 1, "1.00"),
        ]
    );
    assert_eq!(
        stats["top_products_30_days"]["by_revenue"][0]["product_id"],
        13
    );
    assert_eq!(
        stats["top_products_30_days"]["by_quantity"][0]["product_id"],
        Value::Null
    );

    let carts = &stats["abandoned_carts"];
    assert_eq!(carts["count"], 3);
    assert_eq!(carts["value"], "160.00");
    assert_eq!(carts["purchased"], 1);
    assert_eq!(carts["total"], 4);
    assert_eq!(carts["recovery_rate"], 0.25);
    assert_eq!(stats["customers"]["total"], 3);
    assert_eq!(stats["customers"]["new_last_30_days"], 2);
}

#[tokio::test]
async fn merchant_api_sync_shows_every_resource_missing_ones_idle() {
    let app = app().await;
    let shop = store(&app, "Sync Store").await;
    let fresh = ok(&app, &shop, "/api/sync").await;
    let resources = fresh["resources"].as_array().unwrap();
    let names: Vec<&str> = resources
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "customers",
            "products",
            "orders",
            "abandoned_carts",
            "order_details"
        ]
    );
    for resource in resources {
        assert_eq!(resource["status"], "idle", "{resource}");
        assert_eq!(resource["items_synced"], 0, "{resource}");
    }

    // Provisioning seeds a row per resource; one is missing here, as in a database seeded before it.
    exec(
        &shop.db,
        "DELETE FROM sync_state WHERE resource = 'products';
         UPDATE sync_state SET status = 'running', next_page = 3, items_synced = 60, total_expected = 150,
                started_at = '2026-07-01T10:00:00Z', last_event_at = '2026-07-01T10:05:00Z',
                items_per_minute = 1800
          WHERE resource = 'orders';
         UPDATE sync_state SET status = 'running', items_synced = 40, items_per_minute = 120
          WHERE resource = 'order_details';
         UPDATE sync_state SET status = 'failed', next_page = 2, items_synced = 15, total_expected = 40,
                started_at = '2026-07-01T09:00:00Z', last_full_import_at = '2026-06-01T09:00:00Z',
                last_error = 'Salla answered 500'
          WHERE resource = 'customers';",
    )
    .await;
    exec(
        &shop.db,
        "INSERT INTO orders (salla_id, reference_id, status_slug, total, currency, ordered_at, raw, details_needed)
         SELECT 880000 + n, (880000 + n)::text, 'completed', 10, 'SAR', now() - n * interval '1 hour', '{}', true
           FROM generate_series(1, 30) n;",
    )
    .await;
    let state = ok(&app, &shop, "/api/sync").await;
    assert_eq!(state["resources"].as_array().unwrap().len(), 5, "{state}");
    let customers = &state["resources"][0];
    assert_eq!(customers["status"], "failed");
    assert_eq!(customers["last_error"], "Salla answered 500");
    assert_eq!(customers["last_full_import_at"], "2026-06-01T09:00:00Z");
    let products = &state["resources"][1];
    assert_eq!(products["resource"], "products");
    assert_eq!(products["status"], "idle");
    assert_eq!(products["items_synced"], 0);
    assert_eq!(products["started_at"], Value::Null);
    let orders = &state["resources"][2];
    assert_eq!(orders["status"], "running");
    assert_eq!(orders["next_page"], 3);
    assert_eq!(orders["items_synced"], 60);
    assert_eq!(orders["total_expected"], 150);
    assert_eq!(orders["started_at"], "2026-07-01T10:00:00Z");
    assert_eq!(orders["last_event_at"], "2026-07-01T10:05:00Z");
    assert_eq!(orders["last_error"], Value::Null);
    // 90 to go at 1800 a minute: 3 s.
    assert_eq!(
        (orders["remaining"].as_i64(), orders["eta_secs"].as_i64()),
        (Some(90), Some(3))
    );
    // The details: 40 done, 30 orders still marked, at 120 a minute: 15 s.
    let details = &state["resources"][4];
    assert_eq!(details["resource"], "order_details");
    assert_eq!(
        (
            details["items_synced"].as_i64(),
            details["total_expected"].as_i64()
        ),
        (Some(40), Some(70))
    );
    assert_eq!(
        (details["remaining"].as_i64(), details["eta_secs"].as_i64()),
        (Some(30), Some(15))
    );
}

// ---------------------------------------------------------------------------------------------------------
// Bad input, authentication, isolation
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn merchant_api_bad_parameters_are_400s_naming_them_and_credentials_are_required() {
    let app = app().await;
    let shop = store(&app, "Strict Store").await;
    exec(&shop.db, TWENTY_FIVE_ORDERS).await;
    let by_total = ok(&app, &shop, "/api/orders?sort=-total&limit=2").await;
    let total_cursor = by_total["next_cursor"].as_str().unwrap().to_owned();

    let cases: Vec<(String, &str, &str)> = vec![
        ("/api/orders?limit=0".into(), "invalid_parameter", "`limit`"),
        (
            "/api/orders?limit=201".into(),
            "invalid_parameter",
            "`limit`",
        ),
        (
            "/api/customers?limit=ten".into(),
            "invalid_parameter",
            "`limit`",
        ),
        (
            "/api/orders?sort=price".into(),
            "invalid_parameter",
            "-ordered_at, ordered_at, -total, total",
        ),
        (
            "/api/products?sort=-total_spent".into(),
            "invalid_parameter",
            "`sort`",
        ),
        (
            "/api/orders?cursor=bm90LWEtY3Vyc29y".into(),
            "invalid_cursor",
            "malformed",
        ),
        (
            "/api/carts/abandoned?cursor=%25%25".into(),
            "invalid_cursor",
            "malformed",
        ),
        (
            format!("/api/orders?cursor={total_cursor}"),
            "invalid_cursor",
            "-total",
        ),
        (
            format!("/api/customers?cursor={total_cursor}"),
            "invalid_cursor",
            "-total",
        ),
        (
            "/api/orders?from=yesterday".into(),
            "invalid_parameter",
            "`from`",
        ),
        (
            "/api/orders?to=2026-02-30".into(),
            "invalid_parameter",
            "`to`",
        ),
        (
            "/api/orders?from=2026-02-02&to=2026-02-01".into(),
            "invalid_parameter",
            "`from`",
        ),
        (
            "/api/orders?customer_id=abc".into(),
            "invalid_parameter",
            "`customer_id`",
        ),
        (
            "/api/orders?include_deleted=yes".into(),
            "invalid_parameter",
            "`include_deleted`",
        ),
        (
            "/api/customers?date_field=ordered_at".into(),
            "invalid_parameter",
            "`date_field`",
        ),
        (
            format!("/api/products?q={}", "x".repeat(201)),
            "invalid_parameter",
            "`q`",
        ),
        ("/api/orders?colour=red".into(), "invalid_query", "colour"),
        (
            "/api/carts/abandoned?status=a&status=b".into(),
            "invalid_query",
            "status",
        ),
    ];
    for (path, code, mentions) in &cases {
        let (status, body) = get_with_key(&app, path, &shop.key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], *code, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{path}: {message}");
        assert!(body["error"]["request_id"].is_string(), "{body}");
    }
    // Text PostgreSQL cannot store is refused where the query is parsed, naming the parameter.
    for (path, field) in [
        ("/api/orders?q=a%00b", "q"),
        ("/api/products?status=sale,%00", "status"),
    ] {
        let (status, body) = get_with_key(&app, path, &shop.key).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_text", "{path}: {body}");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{path}: {body}"
        );
    }
    // The cursor of one sort still works with that sort.
    ok(
        &app,
        &shop,
        &format!("/api/orders?sort=-total&cursor={total_cursor}"),
    )
    .await;

    let paths = [
        "/api/customers",
        "/api/products",
        "/api/orders",
        "/api/orders/5001",
        "/api/carts/abandoned",
        "/api/stats",
        "/api/sync",
    ];
    for path in paths {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        let (status, _) =
            get_with_key(&app, path, "wsl_0000000000000000000000000000000000000000").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with an unknown key"
        );
    }
}

#[tokio::test]
async fn merchant_api_one_tenant_never_sees_another_tenants_rows() {
    let app = app().await;
    let alpha = store(&app, "Alpha Store").await;
    let beta = store(&app, "Beta Store").await;
    exec(
        &alpha.db,
        "INSERT INTO customers (salla_id, first_name, raw) VALUES (1, 'Alpha Customer', '{}');
         INSERT INTO products (salla_id, name, raw) VALUES (2, 'Alpha Product', '{}');
         INSERT INTO orders (salla_id, customer_salla_id, total, ordered_at, raw) VALUES (3, 1, 10.00, now(), '{}');
         INSERT INTO order_items (salla_id, order_salla_id, product_salla_id, name, quantity, total, raw)
             VALUES (4, 3, 2, 'Alpha Product', 1, 10.00, '{}');
         INSERT INTO abandoned_carts (salla_id, total, raw) VALUES (5, 20.00, '{}');
         UPDATE sync_state SET status = 'done', items_synced = 1 WHERE resource = 'orders';",
    )
    .await;
    exec(
        &beta.db,
        "INSERT INTO products (salla_id, name, raw) VALUES (6, 'Beta Product', '{}');",
    )
    .await;

    for (path, alpha_ids, beta_ids) in [
        ("/api/customers", vec![1], vec![]),
        ("/api/products", vec![2], vec![6]),
        ("/api/orders", vec![3], vec![]),
        ("/api/carts/abandoned", vec![5], vec![]),
    ] {
        assert_eq!(data_ids(&ok(&app, &alpha, path).await), alpha_ids, "{path}");
        assert_eq!(data_ids(&ok(&app, &beta, path).await), beta_ids, "{path}");
    }
    assert_eq!(ok(&app, &alpha, "/api/orders/3").await["items"][0]["id"], 4);
    let (status, body) = get_with_key(&app, "/api/orders/3", &beta.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "order_not_found");

    let stats = ok(&app, &beta, "/api/stats").await;
    assert_eq!(stats["sales"]["last_7_days"]["orders"], 0, "{stats}");
    assert_eq!(stats["customers"]["total"], 0);
    assert_eq!(stats["abandoned_carts"]["total"], 0);
    let sync = ok(&app, &beta, "/api/sync").await;
    assert_eq!(sync["resources"][2]["status"], "idle", "{sync}");
    assert_eq!(
        ok(&app, &alpha, "/api/sync").await["resources"][2]["status"],
        "done"
    );
}
