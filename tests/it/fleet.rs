//! Fleet migrations (`wosool migrate tenants|status`): tenants that lag a migration are brought to the latest
//! version, one broken tenant is reported without stopping the others, and a rerun fixes it.

use std::sync::Mutex;

use futures_util::future::join_all;
use serde_json::Value;
use sqlx::PgPool;
use wosool::Role;
use wosool::provisioning::{FleetEvent, SchemaVersion};
use wosool::tenancy::servers::latest_tenant_version;
use wosool::tenancy::{TenantId, TenantStatus};

use crate::helpers::{TestApp, database_url, spawn_app_with, tenancy_stack, test_config};

/// The newest tenant migration: `sync_state.failing_since` (when a resource's Salla sync began failing).
/// `UNDO_LATEST` removes it; the column added beforehand (of another type) makes the migration fail (and roll
/// back whole).
const LATEST: i64 = 20261206100001;
const LATEST_MARK: &str = "failing_since";
const BREAK_LATEST: &str = "ALTER TABLE sync_state ADD COLUMN failing_since int";
const UNBREAK_LATEST: &str = "ALTER TABLE sync_state DROP COLUMN failing_since";
const UNDO_LATEST: &str = "ALTER TABLE sync_state DROP COLUMN failing_since;";
/// The one before: the audit log's origin columns (`via`, `ip`, `user_agent`, `before`, `after`) and its
/// filter indexes.
const PREVIOUS: i64 = 20261203100002;
const UNDO_PREVIOUS: &str = "DROP INDEX audit_log_actor_id_idx; \
     DROP INDEX audit_log_action_id_idx; \
     DROP INDEX audit_log_subject_id_idx; \
     ALTER TABLE audit_log DROP COLUMN via, DROP COLUMN ip, DROP COLUMN user_agent, DROP COLUMN before, \
     DROP COLUMN after;";

struct FleetTenant {
    id: TenantId,
    slug: String,
    db: PgPool,
}

async fn ready_tenants(app: &TestApp, count: usize) -> Vec<FleetTenant> {
    let names: Vec<String> = (0..count).map(|i| format!("Fleet Store {i}")).collect();
    join_all(names.iter().map(|name| app.register_ready(name))).await;
    let rows: Vec<(TenantId, String, String)> =
        sqlx::query_as("SELECT id, slug, db_name FROM tenants ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut tenants = Vec::new();
    for (id, slug, db_name) in rows {
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&database_url(&db_name))
            .await
            .expect("connect tenant database");
        tenants.push(FleetTenant { id, slug, db });
    }
    tenants
}

/// Rolls a tenant back to before the latest migration, as if it had been provisioned by an older release.
async fn make_lag(app: &TestApp, tenant: &FleetTenant) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "{UNDO_LATEST} DELETE FROM _sqlx_migrations WHERE version = {LATEST};"
    )))
    .execute(&tenant.db)
    .await
    .expect("roll back the latest migration");
    sqlx::query("UPDATE tenants SET schema_version = $2 WHERE id = $1")
        .bind(tenant.id)
        .bind(PREVIOUS)
        .execute(&app.db)
        .await
        .unwrap();
}

/// `(schema_version, migration_error)` in the registry.
async fn registry_row(app: &TestApp, tenant: &FleetTenant) -> (i64, Option<String>) {
    sqlx::query_as("SELECT schema_version, migration_error FROM tenants WHERE id = $1")
        .bind(tenant.id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// A table that takes the name of the latest migration's last index, so that the migration fails.
async fn break_latest(tenant: &FleetTenant) {
    sqlx::raw_sql(BREAK_LATEST)
        .execute(&tenant.db)
        .await
        .unwrap();
}

async fn unbreak_latest(tenant: &FleetTenant) {
    sqlx::raw_sql(UNBREAK_LATEST)
        .execute(&tenant.db)
        .await
        .unwrap();
}

/// Whether the tenant database has the latest migration's column (of its type, not the breaking one) and has
/// recorded the latest migration.
async fn has_latest(tenant: &FleetTenant) -> bool {
    let (index, recorded): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'sync_state' \
                 AND column_name = 'failing_since' AND data_type = 'timestamp with time zone'), \
                EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND success)",
    )
    .bind(LATEST)
    .fetch_one(&tenant.db)
    .await
    .unwrap();
    assert_eq!(index, recorded, "schema and migration record agree");
    index
}

/// Runs the `wosool` binary against the app's global database (no Redis); returns exit code and stdout.
async fn wosool(app: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WOSOOL_DB__URL", database_url(&app.database))
        .output()
        .await
        .expect("run wosool");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_migration_with_one_broken_tenant_migrates_the_others_and_a_rerun_fixes_it() {
    assert_eq!(
        latest_tenant_version(),
        LATEST,
        "this test rolls back the newest tenant migration; update LATEST/PREVIOUS when adding one"
    );
    let app = spawn_app_with(Role::All, |_| {}).await;
    let tenants = ready_tenants(&app, 4).await;
    assert_eq!(tenants.len(), 4);
    for tenant in &tenants {
        assert!(
            has_latest(tenant).await,
            "provisioned at the latest version"
        );
        make_lag(&app, tenant).await;
        assert!(!has_latest(tenant).await);
    }
    let broken = &tenants[1];
    break_latest(broken).await;

    let stack = tenancy_stack(&test_config(&app.database, |_| {})).await;
    // A suspended tenant keeps its database, so it is migrated like the ready ones.
    stack
        .core
        .directory()
        .transition(tenants[3].id, TenantStatus::Suspended, Some("unpaid"), None)
        .await
        .unwrap();
    let events = Mutex::new(Vec::new());
    let report = stack
        .provisioner
        .migrate_fleet(2, None, |event| events.lock().unwrap().push(event))
        .await
        .expect("the fleet run completes despite a failing tenant");
    assert_eq!(report.target, LATEST);
    assert_eq!(report.succeeded, 3);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, broken.id);
    assert!(
        report.failed[0].1.contains(LATEST_MARK),
        "{}",
        report.failed[0].1
    );

    let events = events.into_inner().unwrap();
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        matches!(events[0], FleetEvent::Started { total: 4, target } if target == LATEST),
        "{events:?}"
    );
    let mut done_counts = Vec::new();
    for event in &events[1..] {
        match event {
            FleetEvent::Succeeded {
                done,
                total,
                tenant,
                output: SchemaVersion(version),
                ..
            } => {
                assert_ne!(*tenant, broken.id);
                assert_eq!((*total, *version), (4, LATEST));
                done_counts.push(*done);
            }
            FleetEvent::Failed {
                done,
                total,
                tenant,
                slug,
                error,
            } => {
                assert_eq!(
                    (*tenant, slug.as_str(), *total),
                    (broken.id, broken.slug.as_str(), 4)
                );
                assert!(error.contains(LATEST_MARK), "{error}");
                done_counts.push(*done);
            }
            FleetEvent::Started { .. } => panic!("started twice: {events:?}"),
        }
    }
    done_counts.sort_unstable();
    assert_eq!(
        done_counts,
        [1, 2, 3, 4],
        "progress counts every tenant once"
    );

    for tenant in &tenants {
        let (version, error) = registry_row(&app, tenant).await;
        if tenant.id == broken.id {
            assert_eq!(
                version, PREVIOUS,
                "a failed migration does not advance the version"
            );
            assert!(
                error.as_deref().is_some_and(|e| e.contains(LATEST_MARK)),
                "{error:?}"
            );
            assert!(!has_latest(tenant).await);
        } else {
            assert_eq!((version, error), (LATEST, None));
            assert!(has_latest(tenant).await, "{} migrated", tenant.slug);
        }
    }
    let status = stack.provisioner.fleet_status().await.unwrap();
    assert_eq!(status.latest_version, LATEST);
    assert_eq!(status.templates.get("main"), Some(&LATEST));
    assert_eq!(status.tenants_by_version.get(&PREVIOUS), Some(&1));
    assert_eq!(status.tenants_by_version.get(&LATEST), Some(&3));
    assert_eq!(status.failing.len(), 1);
    assert_eq!(
        (status.failing[0].id, status.failing[0].schema_version),
        (broken.id, PREVIOUS)
    );

    // The operator's view, from the real binary.
    let (code, stdout, stderr) = wosool(&app, &["migrate", "status", "--json"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(json["latest_version"], LATEST);
    assert_eq!(
        json["tenants_by_version"][PREVIOUS.to_string()],
        1,
        "{json}"
    );
    assert_eq!(json["tenants_by_version"][LATEST.to_string()], 3, "{json}");
    assert_eq!(json["failing"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["failing"][0]["slug"], broken.slug.as_str());
    assert_eq!(json["failing"][0]["schema_version"], PREVIOUS);
    assert!(
        json["failing"][0]["migration_error"]
            .as_str()
            .unwrap()
            .contains(LATEST_MARK)
    );
    // Still broken: `migrate tenants` retries only the failing tenant, reports it, and exits non-zero.
    let (code, stdout, _) = wosool(&app, &["migrate", "tenants", "--concurrency", "2"]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("migrating 1 tenant database(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("[1/1] {}: FAILED", broken.slug)),
        "{stdout}"
    );
    assert!(stdout.contains("done: 0 migrated, 1 failed"), "{stdout}");

    // The operator removes the conflicting object; the next run fixes the tenant.
    unbreak_latest(broken).await;
    let report = stack
        .provisioner
        .migrate_fleet(2, None, |_| {})
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (1, 0));
    assert_eq!(registry_row(&app, broken).await, (LATEST, None));
    assert!(has_latest(broken).await);
    let status = stack.provisioner.fleet_status().await.unwrap();
    assert!(status.failing.is_empty());
    assert_eq!(
        status.tenants_by_version.into_iter().collect::<Vec<_>>(),
        [(LATEST, 4)]
    );

    // Nothing left to do.
    let started = Mutex::new(None);
    let report = stack
        .provisioner
        .migrate_fleet(2, None, |event| {
            if let FleetEvent::Started { total, .. } = event {
                *started.lock().unwrap() = Some(total);
            }
        })
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (0, 0));
    assert_eq!(started.into_inner().unwrap(), Some(0));

    // `--tenant` migrates that tenant only.
    let (target, bystander) = (&tenants[2], &tenants[3]);
    make_lag(&app, target).await;
    make_lag(&app, bystander).await;
    let (code, stdout, stderr) =
        wosool(&app, &["migrate", "tenants", "--tenant", &target.slug]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("[1/1] {}: ok (version {LATEST})", target.slug)),
        "{stdout}"
    );
    assert_eq!(registry_row(&app, target).await, (LATEST, None));
    assert!(has_latest(target).await);
    assert_eq!(registry_row(&app, bystander).await, (PREVIOUS, None));
    assert!(!has_latest(bystander).await);
}

#[tokio::test]
async fn a_tenant_whose_provisioning_failed_before_its_database_existed_is_left_to_its_retry() {
    let database = crate::helpers::fresh_database().await;
    let stack = tenancy_stack(&test_config(&database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), String::new()));
    }))
    .await;
    let registration = wosool::provisioning::RegistrationRequest {
        organization_name: "Never Made".into(),
        admin_email: "owner@example.sa".into(),
        ..Default::default()
    }
    .validate(stack.provisioner.config())
    .unwrap();
    let tenant = stack
        .provisioner
        .register(registration, None, "test", None)
        .await
        .unwrap()
        .tenant;
    // Provisioning gave up before its first step (say, the tenant server was unreachable): no database.
    stack
        .core
        .directory()
        .transition(
            tenant.id,
            TenantStatus::Failed,
            Some("server unreachable"),
            None,
        )
        .await
        .unwrap();
    assert!(
        !stack
            .provisioner
            .servers()
            .get(&tenant.db_server)
            .unwrap()
            .database_exists(tenant.db_name.as_str())
            .await
            .unwrap()
    );

    let report = stack
        .provisioner
        .migrate_fleet(2, None, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.succeeded, report.failed.clone()),
        (0, vec![]),
        "no tenant database to migrate: not a migration failure (its provisioning retry creates and migrates it)"
    );
    let status = stack.provisioner.fleet_status().await.unwrap();
    assert!(status.failing.is_empty(), "{:?}", status.failing);
}

#[tokio::test]
async fn a_tenant_that_fails_part_way_records_the_version_it_reached() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let tenants = ready_tenants(&app, 1).await;
    let tenant = &tenants[0];
    // Two migrations behind; the second one will fail.
    make_lag(&app, tenant).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "{UNDO_PREVIOUS} DELETE FROM _sqlx_migrations WHERE version = {PREVIOUS};"
    )))
    .execute(&tenant.db)
    .await
    .unwrap();
    break_latest(tenant).await;
    const OLDEST: i64 = 20261121100001;
    sqlx::query("UPDATE tenants SET schema_version = $2 WHERE id = $1")
        .bind(tenant.id)
        .bind(OLDEST)
        .execute(&app.db)
        .await
        .unwrap();

    let stack = tenancy_stack(&test_config(&app.database, |_| {})).await;
    let report = stack
        .provisioner
        .migrate_fleet(1, None, |_| {})
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (0, 1));
    let applied: i64 =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&tenant.db)
            .await
            .unwrap();
    assert_eq!(applied, PREVIOUS, "the first pending migration went in");
    let (version, error) = registry_row(&app, tenant).await;
    assert_eq!(
        version, PREVIOUS,
        "the registry records the version the database is at"
    );
    assert!(error.is_some());
    let status = stack.provisioner.fleet_status().await.unwrap();
    assert_eq!(status.failing[0].schema_version, PREVIOUS);

    unbreak_latest(tenant).await;
    let report = stack
        .provisioner
        .migrate_fleet(1, None, |_| {})
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (1, 0));
    assert_eq!(registry_row(&app, tenant).await, (LATEST, None));
    assert!(has_latest(tenant).await);
}
