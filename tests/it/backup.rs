//! Backups (docs/backups.md): real pg_dump / pg_restore against the test server, a local directory and a real
//! S3-compatible server (moto) as targets. Restores are checked on the data (rows), not on exit codes.

use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use wosool::Role;
use wosool::backup::Backups;
use wosool::config::Config;
use wosool::core::Core;

use crate::helpers::{
    TestApp, WAIT, admin_database_url, database_count, eventually, get_with_key, metric_value,
    render_metrics, spawn_app_with, tenant_db, tenant_row, test_env,
};

const KEY_B1: &str = "b1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The backup settings of a test: a local target in a directory of its own.
fn local_backup_env(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "WOSOOL_BACKUP__DIR".into(),
            dir.join("sets").display().to_string(),
        ),
        (
            "WOSOOL_BACKUP__STAGING_DIR".into(),
            dir.join("staging").display().to_string(),
        ),
        ("WOSOOL_BACKUP__CONCURRENCY".into(), "3".into()),
    ]
}

/// An app (API and worker) whose backups go to `extra`'s target, and the backup service the test drives.
struct Setup {
    app: TestApp,
    backups: Backups,
    env: Vec<(String, String)>,
}

async fn setup(mut extra: Vec<(String, String)>) -> Setup {
    extra.push((
        "WOSOOL_REDIS__KEY_PREFIX".into(),
        crate::helpers::new_key_prefix(),
    ));
    let for_app = extra.clone();
    let app = spawn_app_with(Role::All, move |env| env.extend(for_app)).await;
    let mut env = test_env(&app.database);
    env.extend(extra);
    // The app's Redis namespace, so that a restore driven here invalidates the app's caches.
    let backups = backups_for(&env, &app).await;
    Setup { app, backups, env }
}

async fn backups_for(env: &[(String, String)], app: &TestApp) -> Backups {
    let config = Config::load_from(None, env.to_vec()).expect("config");
    let redis = wosool::redis::Redis::connect(&config.redis)
        .await
        .expect("redis");
    let core = Core::new(config, app.db.clone(), redis).expect("core");
    wosool::telemetry::metrics_handle();
    Backups::new(&core).expect("backups")
}

/// Registers a ready tenant with `customers` rows; returns (tenant id, its database).
async fn tenant_with_customers(app: &TestApp, name: &str, customers: &[&str]) -> (String, String) {
    let body = app.register_ready(name).await;
    let id = body["tenant_id"].as_str().expect("tenant_id").to_owned();
    let db_name = tenant_row(app, &id).await.1;
    let pool = tenant_db(&db_name).await;
    for (i, customer) in customers.iter().enumerate() {
        sqlx::query("INSERT INTO customers (salla_id, first_name, raw) VALUES ($1, $2, '{}')")
            .bind(1000 + i as i64)
            .bind(customer)
            .execute(&pool)
            .await
            .expect("insert customer");
    }
    pool.close().await;
    (id, db_name)
}

async fn customer_names(db_name: &str) -> Vec<String> {
    let pool = tenant_db(db_name).await;
    let names = sqlx::query_scalar("SELECT first_name FROM customers ORDER BY salla_id")
        .fetch_all(&pool)
        .await
        .expect("names");
    pool.close().await;
    names
}

async fn exec_on(db_name: &str, sql: &str) {
    let pool = tenant_db(db_name).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .expect("statement");
    pool.close().await;
}

#[tokio::test]
async fn backup_then_restore_brings_back_deleted_rows_and_confirm_drops_the_old_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = setup(local_backup_env(dir.path())).await;
    let (tenant, old_db) =
        tenant_with_customers(&s.app, "Restore Store", &["Amal", "Badr", "Call"]).await;
    let key = s.app.api_key(&tenant).await;
    // The app's pool on the tenant database is warm before the restore.
    let (status, before) = get_with_key(&s.app, "/api/customers", &key).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert!(before.to_string().contains("Badr"));

    let report = s.backups.run().await.expect("backup run");
    assert_eq!(report.status, "succeeded", "{report:?}");
    assert_eq!(report.failures, 0);
    assert!(report.databases >= 2, "global and the tenant: {report:?}");
    // The manifest describes the tenant's dump.
    let manifest = s.backups.manifest(&report.set_id).await.expect("manifest");
    let entry = manifest
        .tenant_entry(tenant.parse().unwrap())
        .expect("tenant entry");
    assert_eq!(
        entry.schema_version,
        Some(wosool::tenancy::servers::latest_tenant_version())
    );
    assert_eq!(entry.sha256.len(), 64);
    assert!(entry.size_bytes > 0 && !entry.encrypted && entry.toc_entries > 10);

    // Damage: a customer deleted, another renamed, one added.
    exec_on(
        &old_db,
        "DELETE FROM customers WHERE first_name = 'Amal'; UPDATE customers SET first_name = 'Changed' \
         WHERE first_name = 'Badr'; INSERT INTO customers (salla_id, first_name, raw) VALUES (9, 'Later', '{}')",
    )
    .await;
    assert_eq!(
        customer_names(&old_db).await,
        vec!["Later", "Changed", "Call"]
    );

    let restored = s
        .backups
        .restore_tenant(&tenant, Some(&report.set_id), None, "test")
        .await
        .expect("restore");
    assert_ne!(restored.new_database, old_db);
    assert!(
        restored
            .tables
            .iter()
            .any(|t| t.table == "customers" && t.rows == 3)
    );
    let (_, now_db, version) = tenant_row(&s.app, &tenant).await;
    assert_eq!(now_db, restored.new_database);
    assert_eq!(version, wosool::tenancy::servers::latest_tenant_version());
    assert_eq!(customer_names(&now_db).await, vec!["Amal", "Badr", "Call"]);
    // The tenant is writable again, and the app serves the restored rows (its cache was invalidated through
    // Redis and its pool follows the new database).
    let read_only: Option<String> =
        sqlx::query_scalar("SELECT read_only_reason FROM tenants WHERE id = $1::uuid")
            .bind(&tenant)
            .fetch_one(&s.app.db)
            .await
            .unwrap();
    assert_eq!(read_only, None);
    eventually("the app serves the restored rows", WAIT, || async {
        let (_, body) = get_with_key(&s.app, "/api/customers", &key).await;
        let text = body.to_string();
        (text.contains("Amal") && !text.contains("Later")).then_some(())
    })
    .await;
    // The old database is kept until confirmed, and a second restore waits for that.
    assert_eq!(database_count(&old_db).await, 1);
    assert!(
        s.backups
            .restore_tenant(&tenant, None, None, "test")
            .await
            .is_err()
    );
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'tenant.restored' AND tenant_id = $1::uuid",
    )
    .bind(&tenant)
    .fetch_one(&s.app.db)
    .await
    .unwrap();
    assert_eq!(audit, 1);

    s.backups
        .confirm_restore(&tenant, "test")
        .await
        .expect("confirm");
    assert_eq!(database_count(&old_db).await, 0);
    assert_eq!(database_count(&restored.new_database).await, 1);
}

#[tokio::test]
async fn abort_switches_the_tenant_back_and_drops_the_restored_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = setup(local_backup_env(dir.path())).await;
    let (tenant, old_db) = tenant_with_customers(&s.app, "Abort Store", &["One"]).await;
    s.backups.run().await.expect("backup");
    exec_on(
        &old_db,
        "INSERT INTO customers (salla_id, first_name, raw) VALUES (2, 'Two', '{}')",
    )
    .await;
    let restored = s
        .backups
        .restore_tenant(&tenant, None, None, "test")
        .await
        .expect("restore");
    assert_eq!(customer_names(&restored.new_database).await, vec!["One"]);
    s.backups
        .abort_restore(&tenant, "test")
        .await
        .expect("abort");
    assert_eq!(tenant_row(&s.app, &tenant).await.1, old_db);
    assert_eq!(customer_names(&old_db).await, vec!["Two", "One"]);
    assert_eq!(database_count(&restored.new_database).await, 0);
}

/// moto's S3 server on a free loopback port, killed (by pid) when dropped.
struct Moto {
    port: u16,
    child: std::process::Child,
}

impl Moto {
    async fn start() -> Self {
        wosool::install_crypto_provider();
        let program = std::env::var("WOSOOL_TEST_MOTO_SERVER")
            .expect("WOSOOL_TEST_MOTO_SERVER is not set: run the tests with scripts/test");
        let port = crate::helpers::closed_port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self { port, child };
        eventually("moto answers", Duration::from_secs(30), || async {
            reqwest::get(moto.url("/")).await.ok().map(drop)
        })
        .await;
        moto
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3_env(moto: &Moto, bucket: &str, staging: &std::path::Path) -> Vec<(String, String)> {
    [
        ("WOSOOL_BACKUP__TARGET", "s3".to_owned()),
        ("WOSOOL_BACKUP__S3__BUCKET", bucket.to_owned()),
        ("WOSOOL_BACKUP__S3__ENDPOINT", moto.url("")),
        ("WOSOOL_BACKUP__S3__ALLOW_HTTP", "true".into()),
        ("WOSOOL_BACKUP__S3__ACCESS_KEY_ID", "testing".into()),
        ("WOSOOL_BACKUP__S3__SECRET_ACCESS_KEY", "testing".into()),
        ("WOSOOL_BACKUP__S3__PREFIX", "wosool/prod".into()),
        ("WOSOOL_BACKUP__S3__SERVER_SIDE_ENCRYPTION", "AES256".into()),
        ("WOSOOL_BACKUP__ENCRYPTION_KEYS", format!("[\"{KEY_B1}\"]")),
        ("WOSOOL_BACKUP__STAGING_DIR", staging.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test]
async fn encrypted_sets_in_s3_restore_verify_and_detect_a_corrupted_object() {
    let moto = Moto::start().await;
    let bucket = "wosool-backups";
    let created = reqwest::Client::new()
        .put(moto.url(&format!("/{bucket}")))
        .send()
        .await
        .expect("create bucket");
    assert!(created.status().is_success(), "{created:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let s = setup(s3_env(&moto, bucket, dir.path())).await;
    let (tenant, old_db) =
        tenant_with_customers(&s.app, "Cloud Store", &["Plaintext-Marker-Zubair"]).await;

    let report = s.backups.run().await.expect("backup to S3");
    assert_eq!(report.status, "succeeded", "{report:?}");
    let manifest = s.backups.manifest(&report.set_id).await.expect("manifest");
    let entry = manifest
        .tenant_entry(tenant.parse().unwrap())
        .expect("entry")
        .clone();
    assert!(entry.encrypted);
    assert_eq!(entry.key_id.as_deref(), Some("b1"));

    // What S3 holds is our envelope, not a pg_dump archive with the customer's name in it.
    let raw = reqwest::get(moto.url(&format!("/{bucket}/wosool/prod/{}", entry.object)))
        .await
        .expect("get object")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(raw.len() as u64, entry.size_bytes);
    assert!(raw.starts_with(b"WSLBAK01"));
    assert!(!raw.windows(5).any(|w| w == b"PGDMP"));
    let marker: &[u8] = b"Plaintext-Marker-Zubair";
    assert!(!raw.windows(marker.len()).any(|w| w == marker));

    let verified = s
        .backups
        .verify(Some(&report.set_id))
        .await
        .expect("verify");
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.entries.len(), report.databases);

    // Restore from the encrypted S3 copy brings back the rows.
    exec_on(&old_db, "DELETE FROM customers").await;
    let restored = s
        .backups
        .restore_tenant(&tenant, None, None, "test")
        .await
        .expect("restore from S3");
    assert_eq!(
        customer_names(&restored.new_database).await,
        vec!["Plaintext-Marker-Zubair"]
    );

    // A corrupted object fails verification (and names it).
    let mut bad = raw.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 0x55;
    s.backups
        .target()
        .overwrite(&entry.object, bad)
        .await
        .expect("corrupt");
    let verified = s
        .backups
        .verify(Some(&report.set_id))
        .await
        .expect("verify");
    assert!(!verified.ok);
    let failed: Vec<_> = verified.entries.iter().filter(|e| !e.ok).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].object, entry.object);
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("checksum"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_tenant_whose_backup_fails_is_visible_in_the_admin_api_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = setup(local_backup_env(dir.path())).await;
    let (healthy, _) = tenant_with_customers(&s.app, "Healthy Store", &["A"]).await;
    let (broken, broken_db) = tenant_with_customers(&s.app, "Broken Store", &["B"]).await;
    // Its database disappears behind the registry's back: pg_dump cannot dump it.
    let admin = PgPool::connect(&admin_database_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{broken_db}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;

    let report = s.backups.run().await.expect("run");
    assert_eq!(report.status, "partial");
    assert_eq!(report.failures, 1);
    assert!(
        report.failed[0].name.starts_with("broken-store"),
        "{report:?}"
    );

    let list = s
        .app
        .call(s.app.admin_get("/api/admin/backups"), StatusCode::OK)
        .await;
    assert_eq!(list["sets"][0]["id"], report.set_id.as_str());
    assert_eq!(list["sets"][0]["status"], "partial");
    let failing = list["failing_tenants"].as_array().unwrap();
    assert_eq!(failing.len(), 1, "{list}");
    assert_eq!(failing[0]["tenant_id"], broken.as_str());
    assert!(failing[0]["error"].as_str().unwrap().contains("pg_dump"));

    let set = s
        .app
        .call(
            s.app
                .admin_get(&format!("/api/admin/backups/{}", report.set_id)),
            StatusCode::OK,
        )
        .await;
    let entries = set["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["tenant_id"] == healthy.as_str() && e["status"] == "succeeded")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["tenant_id"] == broken.as_str() && e["status"] == "failed")
    );
    s.app
        .call(
            s.app.admin_get("/api/admin/backups/20990101T000000Z-0000"),
            StatusCode::NOT_FOUND,
        )
        .await;
    let shown = s
        .app
        .call(
            s.app.admin_get(&format!("/api/admin/tenants/{broken}")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(shown["backup"]["failing"], true, "{shown}");
    let shown = s
        .app
        .call(
            s.app.admin_get(&format!("/api/admin/tenants/{healthy}")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(shown["backup"]["failing"], false);
    assert_eq!(
        shown["backup"]["last_success"]["set_id"],
        report.set_id.as_str()
    );
    s.app
        .call(s.app.get("/api/admin/backups"), StatusCode::UNAUTHORIZED)
        .await;

    let metrics = render_metrics();
    assert_eq!(
        metric_value(&metrics, "backup_tenants_failing", &[]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "backup_failures_total", &[("scope", "tenant")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "backup_runs_total", &[("outcome", "partial")]),
        Some(1.0)
    );
    assert!(
        metric_value(
            &metrics,
            "backup_last_success_timestamp_seconds",
            &[("scope", "global")]
        )
        .is_some()
    );
    assert!(
        metric_value(
            &metrics,
            "backup_last_success_timestamp_seconds",
            &[("scope", "tenant")]
        )
        .is_none()
    );
    assert!(metric_value(&metrics, "backup_bytes_total", &[]).unwrap_or(0.0) > 0.0);
}

#[tokio::test]
async fn the_drill_restores_into_a_scratch_database_and_reports_rows_written_since() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = setup(local_backup_env(dir.path())).await;
    let (tenant, db) = tenant_with_customers(&s.app, "Drill Store", &["X", "Y"]).await;
    let skipped = s.backups.drill(None).await.expect("drill without backups");
    assert_eq!(skipped.outcome, "skipped");
    let report = s.backups.run().await.expect("run");
    exec_on(
        &db,
        "INSERT INTO customers (salla_id, first_name, raw) VALUES (77, 'Since', '{}')",
    )
    .await;

    let drill = s.backups.drill(None).await.expect("drill");
    assert_eq!(drill.outcome, "passed", "{drill:?}");
    assert_eq!(drill.tenant_id.map(|t| t.to_string()), Some(tenant.clone()));
    assert_eq!(drill.set_id.as_deref(), Some(report.set_id.as_str()));
    assert!(drill.tables > 10);
    let customers = drill
        .differences
        .iter()
        .find(|d| d.table == "customers")
        .expect("customers differ");
    assert_eq!((customers.restored, customers.live), (2, 3));
    assert_eq!(
        database_count(drill.scratch_database.as_deref().unwrap()).await,
        0
    );
    let metrics = render_metrics();
    assert_eq!(
        metric_value(
            &metrics,
            "backup_restore_drill_total",
            &[("outcome", "passed")]
        ),
        Some(1.0)
    );
    let list = s
        .app
        .call(s.app.admin_get("/api/admin/backups"), StatusCode::OK)
        .await;
    assert_eq!(list["last_drill"]["outcome"], "passed");
}

#[tokio::test]
async fn prune_keeps_what_the_retention_policy_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = local_backup_env(dir.path());
    extra.extend([
        ("WOSOOL_BACKUP__RETENTION__DAILY".to_owned(), "2".to_owned()),
        (
            "WOSOOL_BACKUP__RETENTION__WEEKLY".to_owned(),
            "0".to_owned(),
        ),
        (
            "WOSOOL_BACKUP__RETENTION__MONTHLY".to_owned(),
            "2".to_owned(),
        ),
    ]);
    let s = setup(extra).await;
    // Sets of earlier days (as a year of runs would leave), and one real one.
    let old = [
        "20260115T020000Z-0001",
        "20260131T020000Z-0002",
        "20260201T020000Z-0003",
        "20260227T020000Z-0004",
        "20260228T020000Z-0005",
    ];
    for id in old {
        s.backups
            .target()
            .overwrite(&format!("{id}/manifest.json"), b"{}".to_vec())
            .await
            .unwrap();
        s.backups
            .target()
            .overwrite(&format!("{id}/global.dump"), b"x".to_vec())
            .await
            .unwrap();
    }
    let real = s.backups.run().await.expect("run").set_id;
    let report = s.backups.prune().await.expect("prune");
    // Daily 2: the real set's day and 2026-02-28; monthly 2: this month (real) and February (02-28).
    let mut kept = report.kept.clone();
    kept.sort();
    assert_eq!(kept, vec!["20260228T020000Z-0005".to_owned(), real.clone()]);
    assert_eq!(report.pruned.len(), 4);
    assert_eq!(
        s.backups.target().set_ids().await.unwrap(),
        vec!["20260228T020000Z-0005".to_owned(), real]
    );
    assert!(
        !dir.path()
            .join("sets/20260115T020000Z-0001")
            .join("global.dump")
            .exists()
    );
}

fn wosool(args: &[&str], env: &[(String, String)]) -> Output {
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

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The commands of docs/backups.md, as an operator runs them.
#[tokio::test]
async fn the_cli_runs_lists_verifies_restores_and_prunes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = local_backup_env(dir.path());
    extra.push((
        "WOSOOL_BACKUP__ENCRYPTION_KEYS".into(),
        format!("[\"{KEY_B1}\"]"),
    ));
    let s = setup(extra).await;
    let (tenant, db) = tenant_with_customers(&s.app, "Cli Store", &["Cli"]).await;
    let env = s.env.clone();

    let run = json_of(&wosool(&["backup", "run", "--json"], &env));
    assert_eq!(run["status"], "succeeded", "{run}");
    let set = run["set_id"].as_str().unwrap().to_owned();
    let list = json_of(&wosool(&["backup", "list", "--json"], &env));
    assert_eq!(list["sets"][0]["set_id"], set.as_str());
    assert_eq!(list["sets"][0]["encrypted"], true);
    let verify = json_of(&wosool(&["backup", "verify", &set, "--json"], &env));
    assert_eq!(verify["ok"], true, "{verify}");

    exec_on(&db, "DELETE FROM customers").await;
    let restored = json_of(&wosool(
        &["restore", "--tenant", &tenant, "--at", &set, "--json"],
        &env,
    ));
    let new_db = restored["new_database"].as_str().unwrap().to_owned();
    assert_eq!(customer_names(&new_db).await, vec!["Cli"]);
    let confirmed = json_of(&wosool(&["restore", "--confirm", &tenant, "--json"], &env));
    assert_eq!(confirmed["dropped"], db.as_str());
    assert_eq!(database_count(&db).await, 0);

    // The global database into a new one, named by the operator; its tenants table holds the tenant.
    let into = format!("restored_{}", &s.app.database[5..20]);
    let global = json_of(&wosool(
        &["restore", "--global", "--into", &into, "--json"],
        &env,
    ));
    assert_eq!(global["database"], into.as_str());
    assert!(global["steps"].as_array().unwrap().len() >= 3);
    let copy = PgPool::connect(&crate::helpers::database_url(&into))
        .await
        .unwrap();
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1::uuid")
        .bind(&tenant)
        .fetch_one(&copy)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
    copy.close().await;

    let drill = json_of(&wosool(
        &["backup", "drill", "--tenant", &tenant, "--json"],
        &env,
    ));
    assert_eq!(drill["outcome"], "passed", "{drill}");
    let prune = json_of(&wosool(&["backup", "prune", "--json"], &env));
    assert_eq!(prune["kept"][0], set.as_str());
    let text = wosool(&["backup", "list"], &env);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&set));
}

#[tokio::test]
async fn enabled_backups_run_on_schedule_in_the_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = local_backup_env(dir.path());
    extra.push(("WOSOOL_BACKUP__ENABLED".into(), "true".into()));
    let app = spawn_app_with(Role::All, move |env| env.extend(extra)).await;
    // A new schedule fires at once.
    let status: String = eventually("a scheduled backup set", WAIT, || async {
        sqlx::query_scalar("SELECT status FROM backup_sets WHERE status <> 'running' LIMIT 1")
            .fetch_optional(&app.db)
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(status, "succeeded");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM periodic_jobs ORDER BY kind")
        .fetch_all(&app.db)
        .await
        .unwrap();
    for kind in ["backup.drill", "backup.prune", "backup.run"] {
        assert!(kinds.iter().any(|k| k == kind), "{kinds:?}");
    }
}

/// The backup gauges come from the history, not from the process that ran the set: a replica that never ran a
/// backup (here an API replica, started after the set) reports the age per scope and the failing tenants, so
/// the `BackupTooOld` alert survives restarts.
#[tokio::test]
async fn every_replica_reports_the_backup_age_from_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = local_backup_env(dir.path());
    extra.push(("WOSOOL_BACKUP__ENABLED".into(), "true".into()));
    extra.push(("WOSOOL_JOBS__STATS_INTERVAL_SECS".into(), "1".into()));
    let app = spawn_app_with(Role::Api, move |env| env.extend(extra)).await;
    // An older set where everything succeeded, a newer one where the global dump failed.
    sqlx::raw_sql(
        "INSERT INTO backup_sets (id, started_at, finished_at, status, target) VALUES \
           ('s1', '2026-11-30T01:00:00Z', '2026-11-30T01:10:00Z', 'succeeded', 'local'), \
           ('s2', '2026-12-01T01:00:00Z', '2026-12-01T01:10:00Z', 'partial', 'local'); \
         INSERT INTO backup_entries (set_id, scope, name, database, status, object) VALUES \
           ('s1', 'global', 'global', 'wosool', 'succeeded', 's1/global.dump'), \
           ('s1', 'tenant', 't1', 't_1', 'succeeded', 's1/t1.dump'), \
           ('s2', 'global', 'global', 'wosool', 'failed', 's2/global.dump'), \
           ('s2', 'tenant', 't1', 't_1', 'succeeded', 's2/t1.dump');",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let at = |day: &str| {
        time::OffsetDateTime::parse(day, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp() as f64
    };
    let metrics = eventually("the backup gauges", WAIT, || async {
        let text = app.metrics().await;
        metric_value(
            &text,
            "backup_last_success_timestamp_seconds",
            &[("scope", "tenant")],
        )
        .is_some()
        .then_some(text)
    })
    .await;
    let value = |scope| {
        metric_value(
            &metrics,
            "backup_last_success_timestamp_seconds",
            &[("scope", scope)],
        )
    };
    assert_eq!(value("tenant"), Some(at("2026-12-01T01:10:00Z")));
    assert_eq!(
        value("global"),
        Some(at("2026-11-30T01:10:00Z")),
        "the newest set whose global dump succeeded"
    );
    assert_eq!(
        metric_value(&metrics, "backup_tenants_failing", &[]),
        Some(0.0)
    );
}
