//! A new user's first steps: the CLI without a database, `scripts/wosool` against the stack `scripts/run`
//! started, and PostgreSQL's data where the `postgres` user can reach it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::helpers::{closed_port, database_url, fresh_database};

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The binary with a clean environment (no DATABASE_URL), as a new user's shell would run it.
fn wosool_without_database(args: &[&str], extra: &[(&str, &str)]) -> (Output, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wosool"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in extra {
        command.env(k, v);
    }
    let started = Instant::now();
    let out = command.output().expect("run wosool");
    (out, started.elapsed())
}

#[test]
fn cli_commands_fail_within_two_seconds_naming_database_url_when_no_database_answers() {
    let closed = format!(
        "postgres://wosool:wosool@127.0.0.1:{}/wosool",
        closed_port()
    );
    // The default URL (nothing set), a closed port, and an address that never answers (or is unroutable).
    let targets: [&[(&str, &str)]; 3] = [
        &[],
        &[("DATABASE_URL", &closed)],
        &[(
            "DATABASE_URL",
            "postgres://wosool:wosool@10.255.255.1:5432/wosool",
        )],
    ];
    for env in targets {
        for args in [
            &["tenants", "list"][..],
            &["jobs", "stats"],
            &["migrate"],
            &["stats"],
        ] {
            let (out, took) = wosool_without_database(args, env);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{args:?} {env:?} must fail");
            assert!(
                took < Duration::from_secs(2),
                "{args:?} {env:?} took {took:?}"
            );
            assert!(
                stderr.contains("DATABASE_URL") && stderr.contains("scripts/wosool"),
                "{args:?} {env:?}: {stderr}"
            );
            assert!(
                !stderr.contains("wosool:wosool@"),
                "password redacted: {stderr}"
            );
        }
    }
}

/// Runs `scripts/<name>` with a clean environment apart from what a shell has, from another directory.
fn script(name: &str, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut command = Command::new(project_root().join("scripts").join(name));
    command.args(args).current_dir(cwd).env_clear();
    for key in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "CARGO_TARGET_DIR",
        "RUSTUP_TOOLCHAIN",
    ] {
        if let Ok(value) = std::env::var(key) {
            command.env(key, value);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run script")
}

#[tokio::test]
async fn scripts_wosool_reads_the_environment_scripts_run_wrote() {
    let url = database_url(&fresh_database().await);
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("env"),
        format!("export DATABASE_URL='{url}'\nexport WOSOOL_SERVER__LISTEN=127.0.0.1:1\n"),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let cwd = elsewhere.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        script(
            "wosool",
            &["--json", "tenants", "list"],
            &[
                ("WOSOOL_DATA_DIR", &data_dir),
                ("WOSOOL_BIN", env!("CARGO_BIN_EXE_wosool")),
            ],
            &cwd,
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(listed.is_array() || listed.is_object(), "{listed}");

    // Without a local stack it says how to get one, and the binary still names DATABASE_URL.
    let empty = tempfile::tempdir().unwrap();
    let empty_dir = empty.path().to_str().unwrap().to_owned();
    let cwd = elsewhere.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        script(
            "wosool",
            &["tenants", "list"],
            &[
                ("WOSOOL_DATA_DIR", &empty_dir),
                ("WOSOOL_BIN", env!("CARGO_BIN_EXE_wosool")),
                (
                    "WOSOOL_DB__URL",
                    &format!("postgres://x@127.0.0.1:{}/x", closed_port()),
                ),
            ],
            &cwd,
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("DATABASE_URL"),
        "{}",
        text(&out.stderr)
    );
}

/// As root, a project under a directory the `postgres` user cannot enter (a clone under /root) still gets its
/// PostgreSQL: the cluster lives where `postgres` can reach it and the data folder links to it.
#[test]
fn postgres_starts_for_a_project_the_postgres_user_cannot_reach() {
    if !nix_is_root() {
        eprintln!("skipped: only root runs PostgreSQL as another user");
        return;
    }
    let closed = tempfile::tempdir().unwrap();
    let closed_dir = closed.path();
    std::fs::set_permissions(
        closed_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let data = closed_dir.join("clone/.data/pg");
    let port = closed_port().to_string();
    let lib = project_root().join("scripts/lib.sh");
    let run = |body: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(format!(". '{}'; {body}", lib.display()))
            .env("DATA", &data)
            .env("PORT", &port)
            .output()
            .expect("bash")
    };
    let started = run(
        r#"start_pg "$DATA" "$PORT" fsync=off && as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qAtc 'SELECT 41 + 1'"#,
    );
    let home = std::fs::read_link(&data).ok();
    let stopped = run(r#"stop_pg "$DATA""#);
    if let Some(home) = &home {
        let _ = std::fs::remove_dir_all(home);
    }
    assert!(started.status.success(), "{}", text(&started.stderr));
    assert_eq!(text(&started.stdout).trim(), "42");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let home = home.expect("the data folder links to where the cluster lives");
    assert!(home.starts_with("/var/lib/wosool-pg"), "{home:?}");
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| text(&out.stdout).trim() == "0")
        .unwrap_or(false)
}
