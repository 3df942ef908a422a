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

// ---------------------------------------------------------------------------------------------------------
// --json on every printing command
// ---------------------------------------------------------------------------------------------------------

/// Runs `wosool` with `env` (an app's whole environment, as an operator's shell would have it); returns the
/// exit code, stdout parsed as JSON (`Null` when it is not JSON) and stderr.
async fn json_cli(
    env: &[(String, String)],
    args: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run wosool");
    let stdout = text(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), json, text(&out.stderr))
}

/// `json_cli` that must succeed with a JSON document.
async fn ok_json(env: &[(String, String)], args: &[&str]) -> serde_json::Value {
    let (code, json, stderr) = json_cli(env, args).await;
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    assert!(!json.is_null(), "{args:?} printed JSON: {stderr}");
    json
}

#[tokio::test]
async fn every_tenant_command_prints_json_with_json() {
    let app = spawn_app().await;
    let env = crate::helpers::test_env(&app.database);

    let created = ok_json(
        &env,
        &[
            "tenants",
            "create",
            "--name",
            "Json Store",
            "--email",
            "j@json.example",
            "--json",
        ],
    )
    .await;
    let id = created["tenant"]["id"]
        .as_str()
        .expect("tenant id")
        .to_owned();
    let run: uuid::Uuid = created["provisioning_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Provisioned by hand (this app runs no worker).
    let config = crate::helpers::test_config(&app.database, |_| {});
    let stack = crate::helpers::tenancy_stack(&config).await;
    stack
        .provisioner
        .execute(run, None)
        .await
        .expect("provisioned");

    let listed = ok_json(&env, &["tenants", "list", "--json"]).await;
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let shown = ok_json(&env, &["tenants", "show", &id, "--json"]).await;
    assert_eq!(shown["status"], "ready", "{shown}");

    // The global flag works before the subcommand too.
    let key = ok_json(
        &env,
        &[
            "--json", "tenants", "api-key", "create", &id, "--name", "ops",
        ],
    )
    .await;
    assert!(key["key"].as_str().unwrap().starts_with("wsl_"), "{key}");
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    let keys = ok_json(&env, &["tenants", "api-key", "list", &id, "--json"]).await;
    assert_eq!(keys["api_keys"][0]["id"], key_id.as_str(), "{keys}");
    assert!(!keys.to_string().contains(key["key"].as_str().unwrap()));
    let revoked = ok_json(
        &env,
        &["tenants", "api-key", "revoke", &id, &key_id, "--json"],
    )
    .await;
    assert_eq!(revoked["revoked"], key_id.as_str());
    // Without --json the listing is a table.
    let (code, table, _) = json_cli(&env, &["tenants", "api-key", "list", &id]).await;
    assert_eq!((code, table), (Some(0), serde_json::Value::Null));

    let suspended = ok_json(
        &env,
        &["tenants", "suspend", &id, "--reason", "unpaid", "--json"],
    )
    .await;
    assert_eq!(suspended["tenant"]["status"], "suspended");
    assert_eq!(suspended["tenant"]["suspended_reason"], "unpaid");
    let resuspended = ok_json(
        &env,
        &["tenants", "suspend", &id, "--reason", "fraud", "--json"],
    )
    .await;
    assert_eq!(resuspended["tenant"]["suspended_reason"], "fraud");
    let activated = ok_json(&env, &["tenants", "activate", &id, "--json"]).await;
    assert_eq!(activated["tenant"]["status"], "ready");

    let stats = ok_json(&env, &["stats", "--json"]).await;
    assert_eq!(stats["tenants_by_status"]["ready"], 1, "{stats}");
    let jobs = ok_json(&env, &["jobs", "stats", "--json"]).await;
    assert!(jobs.is_array(), "{jobs}");
    let status = ok_json(&env, &["migrate", "status", "--json"]).await;
    assert!(status["latest_version"].is_i64(), "{status}");
    let rollout = ok_json(&env, &["migrate", "tenants", "--json"]).await;
    assert_eq!(rollout["failed"], serde_json::json!([]), "{rollout}");
    assert!(rollout["succeeded"].is_u64(), "{rollout}");

    // A failed tenant, retried.
    let other = ok_json(
        &env,
        &[
            "tenants",
            "create",
            "--name",
            "Retried",
            "--email",
            "r@json.example",
            "--json",
        ],
    )
    .await;
    let other_id = other["tenant"]["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE tenants SET status = 'failed' WHERE id = $1::uuid")
        .bind(&other_id)
        .execute(&app.db)
        .await
        .unwrap();
    let retried = ok_json(&env, &["tenants", "retry", &other_id, "--json"]).await;
    assert_eq!(retried["tenant"]["status"], "provisioning", "{retried}");
    assert_eq!(retried["provisioning_id"], other["provisioning_id"]);

    let deleted = ok_json(&env, &["tenants", "delete", &id, "--json"]).await;
    assert_eq!(deleted["tenant"]["status"], "deleting");
    // No key for a tenant being deleted, from the CLI either.
    let (code, _, stderr) = json_cli(&env, &["tenants", "api-key", "create", &id, "--json"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("being deleted"), "{stderr}");
}

#[tokio::test]
async fn health_config_and_migrate_print_json_with_json() {
    let app = spawn_app().await;
    let url = app.url("/health/ready");
    let healthy = ok_json(&[], &["health", "--url", &url, "--json"]).await;
    assert_eq!(healthy["healthy"], true);
    assert_eq!(healthy["status"], 200);
    let closed = format!("http://127.0.0.1:{}/health/ready", closed_port());
    let (code, down, _) = json_cli(&[], &["health", "--url", &closed, "--json"]).await;
    assert_eq!(code, Some(1));
    assert_eq!(down["healthy"], false);
    assert!(down["error"].is_string(), "{down}");

    let secret_env = vec![
        (
            "DATABASE_URL".to_owned(),
            "postgres://app:hunter2-db@db.internal:5432/wosool".to_owned(),
        ),
        (
            "WOSOOL_ADMIN__API_KEYS".to_owned(),
            "[\"super-secret-admin-key-1\"]".to_owned(),
        ),
    ];
    let checked = ok_json(&secret_env, &["config", "check", "--json"]).await;
    assert_eq!(checked["valid"], true);
    assert_eq!(checked["config"]["tenancy"]["self_service"], "off");
    let printed = checked.to_string();
    assert!(printed.contains("db.internal"));
    assert!(
        !printed.contains("hunter2-db") && !printed.contains("super-secret-admin-key-1"),
        "{printed}"
    );
    let bad = vec![("WOSOOL_JOBS__CONCURRENCY".to_owned(), "0".to_owned())];
    let (code, invalid, stderr) = json_cli(&bad, &["config", "check", "--json"]).await;
    assert_eq!(code, Some(2));
    assert_eq!(invalid["valid"], false);
    assert!(
        invalid["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("jobs.concurrency:"),
        "{invalid}"
    );
    assert!(stderr.starts_with("config error: jobs.concurrency:"));

    let env = crate::helpers::test_env(&app.database);
    let migrated = ok_json(&env, &["migrate", "--json"]).await;
    assert_eq!(migrated["global"], "migrated");
    assert_eq!(migrated["tenant_templates"], serde_json::json!(["main"]));

    // serve has no result to print: --json is refused rather than ignored.
    let (code, _, stderr) = json_cli(&env, &["serve", "--json"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--json"), "{stderr}");
}

#[test]
fn help_shows_json_on_every_printing_command() {
    for command in [
        &["tenants", "suspend"][..],
        &["tenants", "api-key", "list"],
        &["health"],
        &["config", "check"],
        &["secrets", "rotate"],
        &["stats"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = wosool(&args, &[]);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("--json"), "{args:?} --help");
    }
    let rotate = text(&wosool(&["secrets", "rotate", "--help"], &[]).stdout);
    assert!(rotate.contains("--dry-run") && rotate.contains("--batch-size"));
}

/// Every subcommand path of the CLI (`["tenants", "api-key", "create"]`, …) with its clap definition.
fn subcommands() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(
        path: Vec<String>,
        command: &clap::Command,
        out: &mut Vec<(Vec<String>, clap::Command)>,
    ) {
        // clap's generated `help` subcommands are not ours.
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = path.clone();
            path.push(sub.get_name().to_owned());
            out.push((path.clone(), sub.clone()));
            walk(path, sub, out);
        }
    }
    let mut root = <wosool::cli::Cli as clap::CommandFactory>::command();
    root.build();
    let mut out = Vec::new();
    walk(Vec::new(), &root, &mut out);
    out
}

/// The CLI's help says what every command and flag does: each subcommand has an about line that its own
/// `--help` prints, and each argument a help text.
#[test]
fn cli_help_describes_every_command_and_flag() {
    let mut problems = Vec::new();
    let commands = subcommands();
    assert!(commands.len() > 20, "{} subcommands", commands.len());
    for (path, command) in &commands {
        let name = path.join(" ");
        let Some(about) = command.get_about().map(|a| a.to_string()) else {
            problems.push(format!("`wosool {name}` has no about line"));
            continue;
        };
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") || arg.is_global_set() {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                problems.push(format!("`wosool {name}`: argument `{id}` has no help"));
            }
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = wosool(&args, &[]);
        let help = text(&out.stdout);
        let first_line = about.lines().next().unwrap_or_default();
        if !out.status.success() || !help.contains(first_line) {
            problems.push(format!(
                "`wosool {name} --help` does not show its about line: {help}"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The command list of the README ("Commands and roles") names only commands clap has, and every top-level
/// command clap has.
#[test]
fn readme_command_list_matches_the_cli() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("## Commands and roles")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("the README's command block");
    let commands = subcommands();
    let known: std::collections::HashSet<String> =
        commands.iter().map(|(path, _)| path.join(" ")).collect();
    let mut listed_top = std::collections::HashSet::new();
    for line in block.lines().filter(|l| l.starts_with("wosool ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let top = words[0];
        assert!(
            known.contains(top),
            "README lists `wosool {top}`, which the CLI lacks"
        );
        listed_top.insert(top.to_owned());
        // `wosool tenants list|show|…`: each alternative is a subcommand.
        if let Some(second) = words
            .get(1)
            .filter(|w| w.chars().next().is_some_and(char::is_alphabetic))
        {
            for alternative in second.split('|') {
                let path = format!("{top} {alternative}");
                assert!(
                    known.contains(&path),
                    "README lists `wosool {path}`, which the CLI lacks"
                );
            }
        }
    }
    for (path, _) in commands
        .iter()
        .filter(|(path, _)| path.len() == 1 && path[0] != "help")
    {
        assert!(
            listed_top.contains(&path[0]),
            "`wosool {}` is not in the README's command list",
            path[0]
        );
    }
}
