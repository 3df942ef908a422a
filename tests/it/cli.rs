//! The `wosool` binary as an operator uses it.

use std::process::{Command, Output};

use crate::helpers::{closed_port, database_url, fresh_database, spawn_app};

fn wosool(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wosool"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run wosool")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_explains_every_command() {
    let out = wosool(&["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["serve", "migrate", "health", "config", "jobs"] {
        assert!(help.contains(command), "--help mentions {command}");
    }
    let serve = text(&wosool(&["serve", "--help"], &[]).stdout);
    assert!(serve.contains("--role") && serve.contains("worker"));
}

#[test]
fn invalid_config_exits_2_with_one_line_per_problem() {
    let out = wosool(
        &["config", "check"],
        &[
            ("WOSOOL_SERVER__LISTEN", "not-an-address"),
            ("WOSOOL_JOBS__CONCURRENCY", "0"),
            ("DATABASE_URL", "mysql://nope"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("config error: server.listen:") && l.contains("expected"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("config error: jobs.concurrency:"))
    );
    assert!(lines.iter().any(|l| l.starts_with("config error: db.url:")));
}

#[test]
fn a_typo_in_a_variable_name_is_an_error_not_a_silent_default() {
    let out = wosool(
        &["config", "check"],
        &[("WOSOOL_SERVER__LISTN", "0.0.0.0:1")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("listn"),
        "names the unknown key: {}",
        text(&out.stderr)
    );
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let out = wosool(
        &["config", "check"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:hunter2-db@db.internal:5432/wosool",
            ),
            ("WOSOOL_ADMIN__API_KEYS", "[\"super-secret-admin-key-1\"]"),
            ("WOSOOL_JOBS__CONCURRENCY", "7"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("concurrency = 7"));
    assert!(
        printed.contains("db.internal"),
        "where the database is stays visible"
    );
    assert!(
        !printed.contains("hunter2-db") && !printed.contains("super-secret-admin-key-1"),
        "{printed}"
    );
}

#[tokio::test]
async fn health_exits_0_for_a_ready_server_and_1_otherwise() {
    let app = spawn_app().await;
    let url = app.url("/health/ready");
    let ok = tokio::task::spawn_blocking(move || wosool(&["health", "--url", &url], &[]))
        .await
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));

    let closed = format!("http://127.0.0.1:{}/health/ready", closed_port());
    let down = tokio::task::spawn_blocking(move || wosool(&["health", "--url", &closed], &[]))
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(text(&down.stderr).starts_with("unhealthy"));
}

#[tokio::test]
async fn migrate_applies_the_global_migrations_to_an_empty_database() {
    // A database created without the template: nothing applied yet.
    let template_clone = fresh_database().await;
    let empty = format!("{template_clone}_empty");
    let admin = sqlx::PgPool::connect(&crate::helpers::admin_database_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {empty}")))
        .execute(&admin)
        .await
        .unwrap();
    let url = database_url(&empty);
    let url_for_cli = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        wosool(&["migrate"], &[("DATABASE_URL", &url_for_cli)])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    assert!(wosool::db::migrations_applied(&pool).await.unwrap());
    let stats =
        tokio::task::spawn_blocking(move || wosool(&["jobs", "stats"], &[("DATABASE_URL", &url)]))
            .await
            .unwrap();
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    assert!(text(&stats.stdout).contains("KIND"));
}

#[tokio::test]
async fn serve_drains_and_exits_0_on_sigterm() {
    let database = fresh_database().await;
    let port = closed_port();
    let mut env: Vec<(String, String)> = crate::helpers::test_env(&database);
    env.retain(|(k, _)| k != "WOSOOL_SERVER__LISTEN");
    env.push(("WOSOOL_SERVER__LISTEN".into(), format!("127.0.0.1:{port}")));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
        .args(["serve", "--role", "all"])
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wosool serve");
    wosool::install_crypto_provider();
    let client = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/health/ready");
    crate::helpers::eventually(
        "the server to be ready",
        std::time::Duration::from_secs(30),
        || async {
            let response = client.get(&ready).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("exits within the drain timeout")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}
