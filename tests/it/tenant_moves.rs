//! Moving a tenant between two real PostgreSQL servers (scripts/test starts the second one and exports
//! WOSOOL_TEST_DATABASE_URL_2): rows arrive intact, the tenant is served from the new server, writes in the
//! read-only window answer 503 `tenant_read_only` (and the source refuses them itself), an interrupted move
//! resumes, an abort rolls back, a second move is refused with 409, an unknown server is a clear 422, and every
//! step is audited.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use wosool::Role;
use wosool::provisioning::moves::{MoveState, TenantMoves};

use crate::helpers::{Driven, TestApp, WAIT, admin_database_url, answer, eventually, spawn_driven};

/// The second test server (its `postgres` database).
fn second_server_url() -> String {
    std::env::var("WOSOOL_TEST_DATABASE_URL_2")
        .expect("WOSOOL_TEST_DATABASE_URL_2 is not set: run the tests with scripts/test")
}

/// `database` on the server of `server_url`.
fn on_server(server_url: &str, database: &str) -> String {
    let mut url = url::Url::parse(server_url).expect("URL");
    url.set_path(database);
    url.to_string()
}

fn server_url(key: &str) -> String {
    match key {
        "one" => admin_database_url(),
        "two" => second_server_url(),
        other => panic!("no test server {other}"),
    }
}

/// Both test servers as tenant servers `one` and `two`; the old database dropped 1 s after the switch (the
/// tenant cache lives 1 s, which the drop delay may not undercut).
fn two_servers() -> Vec<(&'static str, String)> {
    let servers = format!(
        "[{{key=\"one\",url=\"{}\"}},{{key=\"two\",url=\"{}\"}}]",
        admin_database_url(),
        second_server_url()
    );
    vec![
        ("WOSOOL_DB__TENANT_SERVERS", servers),
        ("WOSOOL_TENANCY__CACHE__TTL_SECS", "1".into()),
        ("WOSOOL_TENANCY__MOVES__DROP_SOURCE_AFTER_SECS", "1".into()),
        (
            "WOSOOL_TENANCY__MOVES__PG_RESTORE_PATH",
            std::env::var("WOSOOL_TEST_PG_RESTORE").unwrap_or_else(|_| "pg_restore".into()),
        ),
    ]
}

async fn spawn(role: Role) -> Driven {
    let settings = two_servers();
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_driven(role, &extra).await
}

async fn database_exists(server: &str, database: &str) -> bool {
    let pool = PgPool::connect(&server_url(server)).await.expect("connect");
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(&pool)
        .await
        .expect("look up database");
    pool.close().await;
    exists
}

async fn tenant_pool(server: &str, database: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&on_server(&server_url(server), database))
        .await
        .expect("connect to a tenant database")
}

/// `(db_server, db_name, read_only_reason)` of a tenant in the registry.
async fn location(driven: &Driven, tenant: &str) -> (String, String, Option<String>) {
    sqlx::query_as("SELECT db_server, db_name, read_only_reason FROM tenants WHERE id = $1::uuid")
        .bind(tenant)
        .fetch_one(&driven.app.db)
        .await
        .expect("tenant row")
}

/// Fills the tenant's customers table with `count` rows (as an import would).
async fn seed_customers(pool: &PgPool, count: i64) {
    sqlx::query(
        "INSERT INTO customers (salla_id, first_name, email, raw) \
         SELECT g, 'عميل ' || g, 'c' || g || '@example.sa', jsonb_build_object('id', g) \
         FROM generate_series(1, $1) g",
    )
    .bind(count)
    .execute(pool)
    .await
    .expect("seed customers");
}

async fn customers(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), coalesce(sum(salla_id), 0)::bigint FROM customers")
        .fetch_one(pool)
        .await
        .expect("count customers")
}

async fn wait_for_state(driven: &Driven, tenant: &str, want: &[&str]) -> Value {
    let path = format!("/api/admin/tenants/{tenant}/move");
    eventually(&format!("the move becomes {want:?}"), WAIT, || async {
        let body: Value = driven
            .app
            .admin_get(&path)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        assert_ne!(body["move"]["state"], "failed", "{body}");
        want.contains(&body["move"]["state"].as_str()?)
            .then_some(body["move"].clone())
    })
    .await
}

async fn audit_actions(
    driven: &Driven,
    tenant: &str,
) -> Vec<(String, Option<Value>, Option<Value>)> {
    sqlx::query_as(
        "SELECT action, before, after FROM audit_log WHERE tenant_id = $1::uuid AND action LIKE 'tenant.move%' \
         ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&driven.app.db)
    .await
    .expect("audit entries")
}

/// Runs the `wosool` binary with the app's environment (what an operator's shell would have).
async fn cli(driven: &Driven, args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wosool"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &driven.env {
        command.env(k, v);
    }
    command.output().await.expect("run wosool")
}

async fn provisioned(driven: &Driven, name: &str) -> (String, String, String) {
    let registered = driven.app.register_ready(name).await;
    let tenant = registered["tenant_id"]
        .as_str()
        .expect("tenant_id")
        .to_owned();
    let key = driven.app.api_key(&tenant).await;
    let (server, db_name, _) = location(driven, &tenant).await;
    assert_eq!(
        server, "one",
        "the first tenant goes to the first of two empty servers"
    );
    (tenant, key, db_name)
}

#[tokio::test]
async fn a_move_copies_every_row_serves_the_tenant_from_the_new_server_and_drops_the_old_database()
{
    let driven = spawn(Role::All).await;
    let app = &driven.app;
    let (tenant, key, db_name) = provisioned(&driven, "Move Me").await;
    let source = tenant_pool("one", &db_name).await;
    seed_customers(&source, 2_000).await;
    let before = customers(&source).await;
    source.close().await;

    let started = app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{tenant}/move"))
                .json(&json!({ "to": "two" })),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(started["move"]["source_server"], "one");
    assert_eq!(started["move"]["target_server"], "two");
    let move_id = started["move"]["id"].as_str().unwrap().to_owned();

    let switched = wait_for_state(&driven, &tenant, &["switched", "source_dropped"]).await;
    assert_eq!(
        switched["row_counts"]["public.customers"], 2_000,
        "{switched}"
    );
    assert!(
        switched["read_only_seconds"].as_f64().unwrap() < 10.0,
        "{switched}"
    );
    let (server, _, read_only) = location(&driven, &tenant).await;
    assert_eq!(server, "two");
    assert_eq!(read_only, None, "writable again after the switch");

    // The rows arrived intact, and the tenant's API reads them from the new server.
    let target = tenant_pool("two", &db_name).await;
    assert_eq!(customers(&target).await, before);
    let (status, body) = answer(
        app.get("/api/customers?limit=1")
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A write goes to the new server.
    app.call(
        app.client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(&key)
            .json(&json!({ "name": "after the move" })),
        StatusCode::CREATED,
    )
    .await;
    target.close().await;

    // After the grace period the old database is gone, and only it.
    eventually("the source database is dropped", WAIT, || async {
        (!database_exists("one", &db_name).await).then_some(())
    })
    .await;
    assert!(database_exists("two", &db_name).await);
    let by_id = app
        .call(
            app.admin_get(&format!("/api/admin/moves/{move_id}")),
            StatusCode::OK,
        )
        .await;
    eventually("the move is source_dropped", WAIT, || async {
        let body: Value = app
            .admin_get(&format!("/api/admin/moves/{move_id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["move"]["state"] == "source_dropped").then_some(())
    })
    .await;
    assert_eq!(by_id["move"]["id"], move_id.as_str());

    let audit = audit_actions(&driven, &tenant).await;
    let actions: Vec<&str> = audit.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.move_requested",
            "tenant.moved",
            "tenant.move_source_dropped"
        ]
    );
    let moved = &audit[1];
    assert_eq!(moved.1, Some(json!({ "db_server": "one" })));
    assert_eq!(moved.2, Some(json!({ "db_server": "two" })));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tenant_moves_total{outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tenant_move_read_only_seconds_bucket"));
}

#[tokio::test]
async fn writes_in_the_read_only_window_answer_503_and_an_interrupted_move_resumes() {
    let driven = spawn(Role::Api).await;
    let app = &driven.app;
    let (stop, worker) = driven.worker().await;
    let (tenant, key, db_name) = provisioned(&driven, "Window Shop").await;
    stop.cancel();
    worker.await.unwrap().unwrap();
    let source = tenant_pool("one", &db_name).await;
    seed_customers(&source, 300).await;
    source.close().await;

    let path = format!("/api/admin/tenants/{tenant}/move");
    let started = app
        .call(
            app.admin_post(&path).json(&json!({ "to": "two" })),
            StatusCode::ACCEPTED,
        )
        .await;
    let move_id: uuid::Uuid = started["move"]["id"].as_str().unwrap().parse().unwrap();
    // One move at a time.
    let second = app
        .call(
            app.admin_post(&path).json(&json!({ "to": "two" })),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(second["error"]["code"], "move_in_progress");

    // The move stops in its read-only window, as if its worker had crashed there.
    let stack = driven.stack().await;
    let moves = TenantMoves::new(stack.core.clone());
    let record = moves
        .advance_to(move_id, MoveState::ReadOnly)
        .await
        .unwrap();
    assert_eq!(record.state, MoveState::ReadOnly);

    // Reads are served; writes through the API answer 503 tenant_read_only...
    let (status, _) = answer(
        app.get("/api/customers")
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(
        app.client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(&key)
            .json(&json!({ "name": "in the window" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "tenant_read_only");
    // ...and the source database itself refuses any writer that did not look at the flag (a background job,
    // a replica with a stale cache).
    let direct = tenant_pool("one", &db_name).await;
    let refused = sqlx::query("DELETE FROM customers")
        .execute(&direct)
        .await
        .expect_err("the source is read-only");
    assert!(wosool::db::violation::is_read_only(&refused), "{refused}");
    direct.close().await;

    // A worker picks the move's job up and resumes it from the window.
    let (stop, worker) = driven.worker().await;
    let switched = wait_for_state(&driven, &tenant, &["switched", "source_dropped"]).await;
    assert_eq!(switched["row_counts"]["public.customers"], 300);
    assert_eq!(location(&driven, &tenant).await.0, "two");
    let target = tenant_pool("two", &db_name).await;
    assert_eq!(customers(&target).await.0, 300);
    target.close().await;
    writes_succeed(app, &key, "the key can be created again", "after").await;
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_abort_rolls_back_and_bad_targets_are_refused_clearly() {
    let driven = spawn(Role::Api).await;
    let app = &driven.app;
    let (stop, worker) = driven.worker().await;
    let (tenant, key, db_name) = provisioned(&driven, "Stay Put").await;
    stop.cancel();
    worker.await.unwrap().unwrap();
    let path = format!("/api/admin/tenants/{tenant}/move");

    let unknown = app
        .call(
            app.admin_post(&path).json(&json!({ "to": "nowhere" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    let message = unknown["error"]["details"]["fields"]["to"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("nowhere") && message.contains("one, two"),
        "{unknown}"
    );
    // The CLI says the same, naming the servers there are.
    let out = cli(&driven, &["tenants", "move", &tenant, "--to", "nowhere"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown tenant server \"nowhere\"") && stderr.contains("one, two"),
        "{stderr}"
    );
    let same = app
        .call(
            app.admin_post(&path).json(&json!({ "to": "one" })),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(same["error"]["code"], "same_server");
    app.call(app.admin_get(&path), StatusCode::NOT_FOUND).await;

    let started = app
        .call(
            app.admin_post(&path).json(&json!({ "to": "two" })),
            StatusCode::ACCEPTED,
        )
        .await;
    let move_id: uuid::Uuid = started["move"]["id"].as_str().unwrap().parse().unwrap();
    let stack = driven.stack().await;
    let moves = TenantMoves::new(stack.core.clone());
    moves.advance_to(move_id, MoveState::Copied).await.unwrap();
    assert!(database_exists("two", &db_name).await, "the copy exists");

    let aborting = app
        .call(
            app.admin_post(&format!("{path}/abort")),
            StatusCode::ACCEPTED,
        )
        .await;
    assert!(
        aborting["move"]["abort_requested_by"]
            .as_str()
            .unwrap()
            .starts_with("admin:")
    );
    let (stop, worker) = driven.worker().await;
    wait_for_state(&driven, &tenant, &["aborted"]).await;
    stop.cancel();
    worker.await.unwrap().unwrap();

    // Back to normal on the source: the copy dropped, the tenant writable, the database too.
    assert!(
        !database_exists("two", &db_name).await,
        "the half-made copy is dropped"
    );
    let (server, _, read_only) = location(&driven, &tenant).await;
    assert_eq!((server.as_str(), read_only), ("one", None));
    let direct = tenant_pool("one", &db_name).await;
    seed_customers(&direct, 1).await;
    direct.close().await;
    writes_succeed(
        app,
        &key,
        "writes through the API work again",
        "after the abort",
    )
    .await;
    let out = cli(&driven, &["tenants", "move", &tenant, "--status", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["move"]["state"], "aborted");
    assert_eq!(shown["move"]["id"], move_id.to_string());
    let again = app
        .call(
            app.admin_post(&format!("{path}/abort")),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(again["error"]["code"], "move_not_abortable");
    let actions: Vec<String> = audit_actions(&driven, &tenant)
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.move_requested",
            "tenant.move_abort_requested",
            "tenant.move_aborted"
        ]
    );
}

#[tokio::test]
async fn a_failing_copy_rolls_the_move_back_and_says_why() {
    let mut settings = two_servers();
    for (key, value) in &mut settings {
        if *key == "WOSOOL_TENANCY__MOVES__PG_RESTORE_PATH" {
            *value = "/nonexistent/pg_restore".into();
        }
    }
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let driven = spawn_driven(Role::All, &extra).await;
    let app = &driven.app;
    let (tenant, _key, db_name) = provisioned(&driven, "Broken Pipe").await;
    app.call(
        app.admin_post(&format!("/api/admin/tenants/{tenant}/move"))
            .json(&json!({ "to": "two" })),
        StatusCode::ACCEPTED,
    )
    .await;
    let failed = eventually("the move fails", WAIT, || async {
        let body: Value = app
            .admin_get(&format!("/api/admin/tenants/{tenant}/move"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["move"]["state"] == "failed").then_some(body["move"].clone())
    })
    .await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("read_only:") && error.contains("/nonexistent/pg_restore"),
        "{failed}"
    );
    let (server, _, read_only) = location(&driven, &tenant).await;
    assert_eq!((server.as_str(), read_only), ("one", None));
    assert!(
        !database_exists("two", &db_name).await,
        "the target is dropped"
    );
    let direct = tenant_pool("one", &db_name).await;
    seed_customers(&direct, 1).await;
    direct.close().await;
    let actions: Vec<String> = audit_actions(&driven, &tenant)
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert_eq!(actions, ["tenant.move_requested", "tenant.move_failed"]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tenant_moves_total{outcome=\"failed\"}"),
        "{metrics}"
    );
}

/// Polls until the tenant accepts a write through the API again (an API key named `name` is created).
async fn writes_succeed(app: &TestApp, key: &str, what: &str, name: &str) {
    eventually(what, WAIT, || async {
        let response = app
            .client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(key)
            .json(&json!({ "name": name }))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::CREATED).then_some(())
    })
    .await;
}
