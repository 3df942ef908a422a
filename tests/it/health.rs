//! Readiness follows its dependencies: database, migrations, Redis.

use std::process::{Child, Command};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{admin_database_url, closed_port, eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn live_and_ready_when_everything_is_up() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/health/live").send().await.unwrap().status(),
        StatusCode::OK
    );
    let response = app.get("/health/ready").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["migrations"]["status"], "ok");
    assert_eq!(body["checks"]["redis"]["status"], "ok");
}

#[tokio::test]
async fn not_ready_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.db.close().await;
    let mut admin = PgConnection::connect(&admin_database_url()).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            app.database
        )))
        .await
        .unwrap();

    let response = app.get("/health/ready").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database"),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["checks"]["database"]["status"],
        "failing"
    );
    // Liveness is about the process, not its dependencies.
    assert_eq!(
        app.get("/health/live").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn not_ready_while_a_migration_is_missing() {
    let app = spawn_app().await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let response = app.get("/health/ready").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["details"]["checks"]["migrations"]["status"],
        "failing"
    );
    assert_eq!(
        body["error"]["details"]["checks"]["database"]["status"],
        "ok"
    );
}

/// A Redis of this test's own, so it can be stopped without disturbing other tests.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Self {
        Self::start_on(closed_port())
    }

    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/test installs it)");
        Self { child, port }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn not_ready_when_redis_stops_and_ready_again_when_it_returns() {
    let mut redis = OwnRedis::start();
    let port = redis.port;
    eventually(
        "own redis accepting connections",
        Duration::from_secs(10),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        },
    )
    .await;
    let app = spawn_app_with(wosool::Role::Api, |env| {
        env.push((
            "WOSOOL_REDIS__URL".into(),
            format!("redis://127.0.0.1:{port}"),
        ));
        env.push(("WOSOOL_REDIS__TIMEOUT_SECS".into(), "1".into()));
    })
    .await;
    assert_eq!(
        app.get("/health/ready").send().await.unwrap().status(),
        StatusCode::OK
    );

    redis.child.kill().unwrap();
    redis.child.wait().unwrap();
    let body: Value = eventually(
        "readiness to notice Redis is gone",
        Duration::from_secs(15),
        || async {
            let response = app.get("/health/ready").send().await.ok()?;
            (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())?;
            response.json().await.ok()
        },
    )
    .await;
    assert_eq!(
        body["error"]["details"]["checks"]["redis"]["status"],
        "failing"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("redis"));

    let _back = OwnRedis::start_on(port);
    eventually(
        "readiness to recover once Redis is back",
        Duration::from_secs(30),
        || async {
            let response = app.get("/health/ready").send().await.ok()?;
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn startup_fails_clearly_when_postgres_never_comes() {
    let database = crate::helpers::fresh_database().await;
    let mut env = crate::helpers::test_env(&database);
    env.push((
        "WOSOOL_DB__URL".into(),
        format!("postgres://postgres@127.0.0.1:{}/x", closed_port()),
    ));
    env.push(("WOSOOL_DB__STARTUP_WAIT_SECS".into(), "1".into()));
    let config = wosool::config::Config::load_from(None, env).unwrap();
    let error = wosool::Application::build(config, wosool::Role::Api)
        .await
        .err()
        .expect("startup fails");
    let message = error.to_string();
    assert!(message.contains("not reachable"), "{message}");
}
