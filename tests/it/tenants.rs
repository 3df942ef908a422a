//! Tenancy and provisioning end to end against real PostgreSQL and Redis: registration until `ready`, the
//! seeded tenant database, crash-resume after every step, failure and retry, concurrent registration, the
//! tenant gate, cross-tenant isolation of API keys, and deletion with its dump.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wosool::Role;
use wosool::provisioning::{RunOutcome, Step};

use crate::helpers::{
    TestApp, WAIT, answer, database_count, eventually, get_with_key, register_ok, run_steps,
    spawn_app_with, spawn_driven, tenant_db, tenant_row, tenant_status, wait_for_run,
    wait_for_tenant, with_query,
};

fn org(name: &str) -> Value {
    json!({ "organization_name": name, "admin_email": "owner@example.sa" })
}

fn s(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, got {value}"))
}

fn step_names(steps: &Value) -> Vec<&str> {
    steps
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

const STEP_ORDER: [&str; 6] = [
    "create_database",
    "migrate",
    "seed",
    "identity",
    "crm",
    "finalize",
];

/// Every step of a finished run: done once, with identity and CRM skipped as not configured.
fn assert_all_steps_done(steps: &Value, attempts: &[(&str, i64)]) {
    assert_eq!(step_names(steps), STEP_ORDER, "{steps}");
    for step in steps.as_array().unwrap() {
        let name = s(&step["name"]);
        let expected_attempts = attempts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .unwrap_or(1);
        assert_eq!(step["attempts"], expected_attempts, "attempts of {step}");
        assert!(step["error"].is_null(), "{step}");
        assert!(step["duration_ms"].as_i64().is_some(), "{step}");
        match name {
            "identity" | "crm" => {
                assert_eq!(step["status"], "skipped", "{step}");
                assert_eq!(step["detail"], "skipped: not configured", "{step}");
            }
            _ => assert_eq!(step["status"], "succeeded", "{step}"),
        }
    }
}

/// The seeded content of a tenant database.
async fn assert_seeded(db_name: &str, email: &str, locale: &str, currency: &str, timezone: &str) {
    let db = tenant_db(db_name).await;
    let (got_locale, got_currency, got_timezone, onboarded): (
        String,
        String,
        String,
        Option<time::OffsetDateTime>,
    ) = sqlx::query_as("SELECT locale, currency, timezone, onboarding_completed_at FROM settings")
        .fetch_one(&db)
        .await
        .expect("exactly one settings row");
    assert_eq!(
        (
            got_locale.as_str(),
            got_currency.as_str(),
            got_timezone.as_str()
        ),
        (locale, currency, timezone)
    );
    assert!(onboarded.is_some(), "onboarding is complete from the start");

    let roles: Vec<(String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT r.key, r.is_system, coalesce(array_agg(p.permission ORDER BY p.permission) \
                FILTER (WHERE p.permission IS NOT NULL), '{}') \
         FROM roles r LEFT JOIN role_permissions p ON p.role_key = r.key GROUP BY r.key, r.is_system ORDER BY r.key",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let keys: Vec<&str> = roles.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(keys, ["admin", "member", "owner", "viewer"]);
    for (key, system, permissions) in &roles {
        assert!(system, "{key} is a system role");
        assert!(!permissions.is_empty(), "{key} has permissions");
        assert!(permissions.contains(&"crm.read".to_owned()), "{key}");
    }
    let permissions_of = |key: &str| {
        roles
            .iter()
            .find(|r| r.0 == key)
            .map(|r| r.2.clone())
            .unwrap()
    };
    assert!(permissions_of("owner").contains(&"tenant.manage".to_owned()));
    assert!(!permissions_of("admin").contains(&"tenant.manage".to_owned()));
    assert!(!permissions_of("viewer").contains(&"crm.write".to_owned()));

    let stages: Vec<(String, i32, bool, bool)> = sqlx::query_as(
        "SELECT s.key, s.position, s.is_won, s.is_lost FROM pipeline_stages s \
         JOIN pipelines p ON p.id = s.pipeline_id WHERE p.key = 'sales' AND p.is_default ORDER BY s.position",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        stages.len() >= 3,
        "the sales pipeline has stages: {stages:?}"
    );
    assert_eq!(stages.iter().filter(|s| s.2).count(), 1, "one won stage");
    assert_eq!(stages.iter().filter(|s| s.3).count(), 1, "one lost stage");
    let pipelines: i64 = sqlx::query_scalar("SELECT count(*) FROM pipelines")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(pipelines, 1);

    let members: Vec<(String, String, String)> =
        sqlx::query_as("SELECT email, role_key, status FROM members")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        members,
        [(email.to_owned(), "owner".to_owned(), "active".to_owned())]
    );

    let sync: Vec<String> = sqlx::query_scalar("SELECT resource FROM sync_state ORDER BY resource")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        sync,
        [
            "abandoned_carts",
            "customers",
            "order_details",
            "orders",
            "products"
        ]
    );
    db.close().await;
}

// ---------------------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_registration_provisions_a_seeded_database_at_the_latest_version() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = register_ok(
        &app,
        json!({ "organization_name": "Acme Riyadh", "admin_email": "  Owner@Example.SA " }),
    )
    .await;
    assert_eq!(registered["status"], "pending");
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    let run_id = s(&registered["provisioning_id"]).to_owned();
    assert!(tenant_id.parse::<Uuid>().is_ok());
    assert!(
        s(&registered["slug"]).starts_with("acme-riyadh-"),
        "{registered}"
    );
    assert_eq!(
        registered["status_url"],
        format!("/api/auth/provisioning-status/{run_id}")
    );

    let done = wait_for_run(&app, &run_id, "ready").await;
    assert_eq!(done["progress"], 100);
    assert!(done["step"].is_null(), "{done}");
    assert_eq!(done["message"], "Your organization is ready.");
    assert_eq!(step_names(&done["steps"]), STEP_ORDER);
    assert_all_steps_done(&run_steps(&app, &run_id).await, &[]);

    // The registry: ready, on the (only) server, at the newest tenant migration.
    let (db_server, db_name, schema_version, ready_at): (
        String,
        String,
        i64,
        Option<time::OffsetDateTime>,
    ) = sqlx::query_as(
        "SELECT db_server, db_name, schema_version, ready_at FROM tenants WHERE id = $1::uuid AND status = 'ready'",
    )
    .bind(&tenant_id)
    .fetch_one(&app.db)
    .await
    .expect("a ready tenant");
    assert_eq!(db_server, "main");
    assert_eq!(
        db_name,
        format!("t_{}", tenant_id.parse::<Uuid>().unwrap().simple())
    );
    assert!(ready_at.is_some());
    assert_eq!(
        schema_version,
        wosool::tenancy::servers::latest_tenant_version()
    );
    assert!(schema_version > 0);
    assert_eq!(database_count(&db_name).await, 1);

    // The tenant database is at that version and seeded.
    let db = tenant_db(&db_name).await;
    let applied: i64 =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(applied, schema_version);
    let organization: String = sqlx::query_scalar("SELECT organization_name FROM settings")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(organization, "Acme Riyadh");
    db.close().await;
    assert_seeded(&db_name, "owner@example.sa", "ar-SA", "SAR", "Asia/Riyadh").await;

    // Its API key sees it, with the settings read from its own database.
    let key = app.api_key(&tenant_id).await;
    let (status, tenant) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["id"], tenant_id.as_str());
    assert_eq!(tenant["status"], "ready");
    assert_eq!(tenant["plan"], "free");
    assert_eq!(tenant["name"], "Acme Riyadh");
    assert!(tenant["ready_at"].is_string());
    assert_eq!(tenant["settings"]["organization_name"], "Acme Riyadh");
    assert_eq!(tenant["settings"]["locale"], "ar-SA");
    assert_eq!(tenant["settings"]["currency"], "SAR");
    assert_eq!(tenant["settings"]["timezone"], "Asia/Riyadh");
    assert!(tenant["settings"]["onboarding_completed_at"].is_string());

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tenant_created_total"),
        "tenant_created_total is exported"
    );
    assert!(metrics.contains("tenant_provisioning_duration_seconds"));
}

#[tokio::test]
async fn tenants_registration_overrides_land_in_the_registry_and_the_tenant_settings() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = register_ok(
        &app,
        json!({
            "organization_name": "Dukkan Global",
            "admin_email": "boss@dukkan.example",
            "plan": "growth",
            "slug": "dukkan-global",
            "locale": "en-US",
            "currency": "USD",
            "timezone": "America/New_York",
        }),
    )
    .await;
    assert_eq!(registered["slug"], "dukkan-global");
    // Everything but the plan: a self-served tenant gets tenancy.default_plan whatever it asks for.
    assert_eq!(registered["plan"], "free");
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    wait_for_run(&app, s(&registered["provisioning_id"]), "ready").await;

    let (plan, locale, currency, timezone, owner): (String, String, String, String, String) =
        sqlx::query_as(
            "SELECT plan, locale, currency, timezone, owner_email FROM tenants WHERE id = $1::uuid",
        )
        .bind(&tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        (
            plan.as_str(),
            locale.as_str(),
            currency.as_str(),
            timezone.as_str(),
            owner.as_str()
        ),
        (
            "free",
            "en-US",
            "USD",
            "America/New_York",
            "boss@dukkan.example"
        )
    );
    let (_, db_name, _) = tenant_row(&app, &tenant_id).await;
    assert_seeded(
        &db_name,
        "boss@dukkan.example",
        "en-US",
        "USD",
        "America/New_York",
    )
    .await;

    let key = app.api_key(&tenant_id).await;
    let (status, tenant) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant["slug"], "dukkan-global");
    assert_eq!(tenant["plan"], "free");
    assert_eq!(tenant["settings"]["locale"], "en-US");
    assert_eq!(tenant["settings"]["currency"], "USD");
    assert_eq!(tenant["settings"]["timezone"], "America/New_York");
}

/// Status reads that race the pipeline's own changes must never keep an older state cached: once the registry
/// says ready, the API says so too (not after a cache TTL of a minute).
#[tokio::test]
async fn tenants_progress_polled_hard_reaches_ready_without_a_stale_cache() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    for i in 0..25 {
        let registered = register_ok(&app, org(&format!("Polled {i}"))).await;
        let tenant_id = s(&registered["tenant_id"]).to_owned();
        let path = format!(
            "/api/auth/provisioning-status/{}",
            s(&registered["provisioning_id"])
        );
        // Polled concurrently while the pipeline changes the tenant; once the registry says ready, the API
        // must agree within moments (a fill that raced an invalidation would stick for the cache TTL).
        let registry_ready_since = std::cell::Cell::new(None::<std::time::Instant>);
        eventually(&format!("tenant {i} ready in the API"), WAIT, || async {
            let polls = (0..4)
                .map(|_| async { app.get(&path).send().await.ok()?.json::<Value>().await.ok() });
            let answers = futures_util::future::join_all(polls).await;
            if answers
                .iter()
                .all(|a| a.as_ref().is_some_and(|b| b["status"] == "ready"))
            {
                return Some(());
            }
            if tenant_status(&app, &tenant_id).await == "ready" {
                let since = registry_ready_since
                    .get()
                    .unwrap_or_else(std::time::Instant::now);
                registry_ready_since.set(Some(since));
                assert!(
                    since.elapsed() < Duration::from_secs(3),
                    "tenant {i} has been ready for 3 s but the API still answers {:?}",
                    answers
                        .iter()
                        .map(|a| a.as_ref().map(|b| b["status"].clone()))
                        .collect::<Vec<_>>()
                );
            }
            None
        })
        .await;
    }
}

#[tokio::test]
async fn tenants_provisioning_resumes_after_a_crash_after_every_step_with_one_database() {
    let driven = spawn_driven(Role::Api, &[]).await;
    let app = &driven.app;
    let stack = driven.stack().await;
    let latest = wosool::tenancy::servers::latest_tenant_version();

    for (index, &crash_after) in Step::ALL.iter().enumerate() {
        let registered = register_ok(app, org(&format!("Crash {}", crash_after.name()))).await;
        let tenant_id = s(&registered["tenant_id"]).to_owned();
        let run_id: Uuid = s(&registered["provisioning_id"]).parse().unwrap();
        let (_, db_name, _) = tenant_row(app, &tenant_id).await;

        let outcome = stack
            .provisioner
            .execute(run_id, Some(crash_after))
            .await
            .unwrap_or_else(|e| panic!("run up to {}: {e}", crash_after.name()));
        if crash_after == Step::Finalize {
            assert_eq!(outcome, RunOutcome::Ready);
        } else {
            assert_eq!(outcome, RunOutcome::StoppedAfter(crash_after));
        }

        // What the registrant sees while "crashed": the steps so far done, the next one pending.
        let progress: Value = app
            .get(&format!("/api/auth/provisioning-status/{run_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let public = step_names(&progress["steps"]);
        assert_eq!(public, STEP_ORDER, "{progress}");
        let steps = run_steps(app, &run_id.to_string()).await;
        let steps = steps.as_array().unwrap();
        for (position, step) in steps.iter().enumerate() {
            if position <= index {
                assert!(
                    step["status"] == "succeeded" || step["status"] == "skipped",
                    "after {}: {step}",
                    crash_after.name()
                );
            } else {
                assert_eq!(step["status"], "pending", "after {}", crash_after.name());
                assert_eq!(step["attempts"], 0);
            }
        }
        if crash_after == Step::Finalize {
            assert_eq!(progress["status"], "ready");
            assert_eq!(progress["progress"], 100);
        } else {
            assert_eq!(progress["status"], "provisioning", "{progress}");
            assert_eq!(progress["step"], STEP_ORDER[index + 1]);
            assert_eq!(progress["progress"], (index + 1) * 100 / 6);
        }
        assert_eq!(database_count(&db_name).await, 1);

        // The retry after the crash completes it, without redoing what was done.
        let outcome = stack.provisioner.execute(run_id, None).await.unwrap();
        assert_eq!(
            outcome,
            RunOutcome::Ready,
            "resuming after {}",
            crash_after.name()
        );
        assert_eq!(database_count(&db_name).await, 1);
        let (status, _, version) = tenant_row(app, &tenant_id).await;
        assert_eq!(status, "ready", "after {}", crash_after.name());
        assert_eq!(version, latest);
        wait_for_run(app, &run_id.to_string(), "ready").await;
        assert_all_steps_done(&run_steps(app, &run_id.to_string()).await, &[]);
        let run_status: String =
            sqlx::query_scalar("SELECT status FROM provisioning_runs WHERE id = $1")
                .bind(run_id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(run_status, "succeeded");
        assert_seeded(&db_name, "owner@example.sa", "ar-SA", "SAR", "Asia/Riyadh").await;
    }
}

#[tokio::test]
async fn tenants_provisioning_killed_inside_a_step_redoes_it_without_a_second_database_or_duplicates()
 {
    let driven = spawn_driven(Role::Api, &[]).await;
    let app = &driven.app;
    let stack = driven.stack().await;

    let registered = register_ok(app, org("Killed Midway")).await;
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    let run_id: Uuid = s(&registered["provisioning_id"]).parse().unwrap();
    let (_, db_name, _) = tenant_row(app, &tenant_id).await;

    // Killed after CREATE DATABASE but before the step was recorded as done.
    let outcome = stack
        .provisioner
        .execute(run_id, Some(Step::CreateDatabase))
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::StoppedAfter(Step::CreateDatabase));
    assert_eq!(database_count(&db_name).await, 1);
    let rewind = |step: &'static str| {
        sqlx::query(
            "UPDATE provisioning_steps SET status = 'running', finished_at = NULL, duration_ms = NULL, detail = NULL \
             WHERE run_id = $1 AND name = $2",
        )
        .bind(run_id)
        .bind(step)
    };
    rewind("create_database").execute(&app.db).await.unwrap();

    // Killed again, this time after the seed transaction committed but before the step was recorded.
    let outcome = stack
        .provisioner
        .execute(run_id, Some(Step::Seed))
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::StoppedAfter(Step::Seed));
    rewind("seed").execute(&app.db).await.unwrap();

    let outcome = stack.provisioner.execute(run_id, None).await.unwrap();
    assert_eq!(outcome, RunOutcome::Ready);
    assert_eq!(database_count(&db_name).await, 1);
    assert_eq!(tenant_status(app, &tenant_id).await, "ready");

    wait_for_run(app, &run_id.to_string(), "ready").await;
    let steps = run_steps(app, &run_id.to_string()).await;
    assert_all_steps_done(&steps, &[("create_database", 2), ("seed", 2)]);
    let create = &steps[0];
    assert!(
        s(&create["detail"]).contains("already existed"),
        "the second attempt found the database: {create}"
    );
    // The seed ran twice; every row exists once.
    assert_seeded(&db_name, "owner@example.sa", "ar-SA", "SAR", "Asia/Riyadh").await;
    let db = tenant_db(&db_name).await;
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM settings), (SELECT count(*) FROM roles), \
                (SELECT count(*) FROM pipeline_stages), (SELECT count(*) FROM audit_log WHERE action = 'tenant.seeded')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((counts.0, counts.1, counts.3), (1, 4, 1), "{counts:?}");
    assert_eq!(counts.2, 6, "sales stages seeded once");
}

#[tokio::test]
async fn tenants_failed_provisioning_marks_the_tenant_failed_and_admin_retry_finishes_it() {
    // An API-only app (nothing runs the job yet), one attempt per job: the first failure is final.
    let driven = spawn_driven(
        Role::Api,
        &[("WOSOOL_TENANCY__PROVISION_MAX_ATTEMPTS", "1")],
    )
    .await;
    let app = &driven.app;
    let stack = driven.stack().await;
    let registered = register_ok(app, org("Broken Seed")).await;
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    let run_id = s(&registered["provisioning_id"]).to_owned();
    let key = app.api_key(&tenant_id).await;

    // Database created and migrated; then the schema is sabotaged so that seeding fails.
    let outcome = stack
        .provisioner
        .execute(run_id.parse().unwrap(), Some(Step::Migrate))
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::StoppedAfter(Step::Migrate));
    let (_, db_name, _) = tenant_row(app, &tenant_id).await;
    let db = tenant_db(&db_name).await;
    sqlx::query("ALTER TABLE roles RENAME TO roles_broken")
        .execute(&db)
        .await
        .unwrap();

    // A worker replica picks the queued job up; it resumes at seed, fails, and gives up.
    let (stop_worker, worker) = driven.worker().await;
    let failed = wait_for_run(app, &run_id, "failed").await;
    let failure: Option<String> =
        sqlx::query_scalar("SELECT failure_reason FROM tenants WHERE id = $1::uuid")
            .bind(&tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        failure.as_deref().is_some_and(|f| f.contains("seed")),
        "the failure names the step: {failure:?}"
    );
    assert_eq!(failed["step"], "seed");
    assert_eq!(failed["steps"][2]["status"], "failed");
    // The registrant learns that it failed, not why (the error names tables of the tenant database).
    assert!(
        !failed.to_string().contains("roles") && failed.get("error").is_none(),
        "{failed}"
    );
    let steps = run_steps(app, &run_id).await;
    let seed = &steps[2];
    assert_eq!(seed["name"], "seed");
    assert_eq!(seed["status"], "failed");
    assert_eq!(seed["attempts"], 1);
    assert!(s(&seed["error"]).contains("roles"), "{seed}");
    assert_eq!(steps[0]["attempts"], 1);
    assert_eq!(steps[3]["status"], "pending");
    let (status, body) = get_with_key(app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "tenant_failed");
    let failure_audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1::uuid AND action = 'tenant.provisioning_failed' AND actor = 'system'",
    )
    .bind(&tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(failure_audit, 1);

    // Repaired, and retried by an operator: resumes from the failed step.
    sqlx::query("ALTER TABLE roles_broken RENAME TO roles")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let request_id = format!("retry-{}", Uuid::new_v4());
    let (status, body) = answer(
        app.admin_post(&format!("/api/admin/tenants/{tenant_id}/retry"))
            .header("x-request-id", &request_id)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["provisioning_id"], run_id.as_str());
    assert!(
        body["tenant"]["status"] == "provisioning" || body["tenant"]["status"] == "ready",
        "{body}"
    );

    wait_for_run(app, &run_id, "ready").await;
    assert_all_steps_done(&run_steps(app, &run_id).await, &[("seed", 2)]);
    assert_eq!(database_count(&db_name).await, 1);
    assert_seeded(&db_name, "owner@example.sa", "ar-SA", "SAR", "Asia/Riyadh").await;
    let (status, body) = get_with_key(app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    let retried: (String, String) = sqlx::query_as(
        "SELECT actor, action FROM audit_log WHERE request_id = $1 AND tenant_id = $2::uuid",
    )
    .bind(&request_id)
    .bind(&tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(retried.0.starts_with("admin:"));
    assert_eq!(retried.1, "tenant.provisioning_retried");

    // Retrying a ready tenant is not a lifecycle move.
    let body = app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{tenant_id}/retry")),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(body["error"]["code"], "illegal_transition");

    stop_worker.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn tenants_concurrent_registrations_of_one_slug_make_one_tenant_and_409s() {
    let app = spawn_app_with(Role::Api, |_| {}).await;
    let attempts = (0..8).map(|i| {
        app.register(json!({
            "organization_name": format!("Racer {i}"),
            "admin_email": format!("racer{i}@example.sa"),
            "slug": "contested-slug",
        }))
    });
    let answers = futures_util::future::join_all(attempts).await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        if *status != StatusCode::ACCEPTED {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["error"]["code"], "slug_taken", "{body}");
        }
    }
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, slug FROM tenants WHERE slug = 'contested-slug'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.to_string(), s(&accepted[0]["tenant_id"]));
    let (tenants, runs, jobs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM provisioning_runs), \
                (SELECT count(*) FROM jobs WHERE kind = 'tenant.provision')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (tenants, runs, jobs),
        (1, 1, 1),
        "the losers left nothing behind"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The tenant gate and API keys
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_api_key_of_one_tenant_never_reaches_another() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let a = app.register_ready("Tenant Alpha").await;
    let b = app.register_ready("Tenant Beta").await;
    let (a_id, b_id) = (s(&a["tenant_id"]), s(&b["tenant_id"]));
    let key_a = app.api_key(a_id).await;
    let key_b = app.api_key(b_id).await;

    // Bearer: the key decides; an X-Tenant-Id header naming another tenant is refused (docs/security.md).
    let (status, body) = get_with_key(&app, "/api/tenant", &key_a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], a_id);
    assert_eq!(body["settings"]["organization_name"], "Tenant Alpha");
    let body = app
        .call(
            app.get("/api/tenant")
                .bearer_auth(&key_a)
                .header("x-tenant-id", b_id),
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(body["error"]["code"], "tenant_mismatch");
    assert!(!body.to_string().contains("Tenant Beta"));

    // X-Tenant-Id + X-Api-Key: the pair must agree.
    let pair = |tenant: &str, key: &str| {
        app.get("/api/tenant")
            .header("x-tenant-id", tenant)
            .header("x-api-key", key)
    };
    let (status, body) = answer(pair(b_id, &key_a).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "tenant_mismatch");
    assert!(body.get("id").is_none() && !body.to_string().contains("Tenant Beta"));
    let (status, body) = answer(pair(a_id, &key_a).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], a_id);

    // Listing keys with A's key shows A's keys only.
    let (status, listed) = get_with_key(&app, "/api/tenant/api-keys", &key_a).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed["api_keys"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|k| k["tenant_id"] == a_id), "{listed:?}");
    assert!(listed.iter().any(|k| key_a.starts_with(s(&k["prefix"]))));
    assert!(!listed.iter().any(|k| key_b.starts_with(s(&k["prefix"]))));
    assert!(
        !serde_json::to_string(listed).unwrap().contains(&key_a),
        "listings never show a key"
    );

    // A key created with A's key belongs to A (naming B beside it is refused).
    let refused = app
        .call(
            app.client
                .post(app.url("/api/tenant/api-keys"))
                .bearer_auth(&key_a)
                .header("x-tenant-id", b_id)
                .json(&json!({ "name": "ci" })),
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(refused["error"]["code"], "tenant_mismatch");
    let created = app
        .call(
            app.client
                .post(app.url("/api/tenant/api-keys"))
                .bearer_auth(&key_a)
                .json(&json!({ "name": "ci" })),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["api_key"]["tenant_id"], a_id);
    let new_key = s(&created["key"]).to_owned();
    assert!(new_key.starts_with(s(&created["api_key"]["prefix"])));
    let (_, body) = get_with_key(&app, "/api/tenant", &new_key).await;
    assert_eq!(body["id"], a_id);

    // Revoking one of B's keys with A's key: not found, and B's key keeps working.
    let (_, b_keys) = answer(
        app.admin_get(&format!("/api/admin/tenants/{b_id}/api-keys"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let b_key_id = s(&b_keys["api_keys"][0]["id"]).to_owned();
    let body = app
        .call(
            app.client
                .delete(app.url(&format!("/api/tenant/api-keys/{b_key_id}")))
                .bearer_auth(&key_a),
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(body["error"]["code"], "api_key_not_found");
    let (status, body) = get_with_key(&app, "/api/tenant", &key_b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], b_id);
    let (_, b_keys_after) = answer(
        app.admin_get(&format!("/api/admin/tenants/{b_id}/api-keys"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(b_keys_after["api_keys"][0]["revoked_at"].is_null());

    // A tenant key is no admin key.
    for path in [
        "/api/admin/tenants",
        &format!("/api/admin/tenants/{b_id}"),
        "/api/admin/stats",
    ] {
        let (status, body) = get_with_key(&app, path, &key_a).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
}

#[tokio::test]
async fn tenants_revoked_key_is_refused_immediately() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let tenant = app.register_ready("Revoker").await;
    let tenant_id = s(&tenant["tenant_id"]);
    let owner_key = app.api_key(tenant_id).await;

    for revoke_as_admin in [false, true] {
        let (_, created) = answer(
            app.client
                .post(app.url("/api/tenant/api-keys"))
                .bearer_auth(&owner_key)
                .json(&json!({ "name": "short-lived" }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let key = s(&created["key"]).to_owned();
        let key_id = s(&created["api_key"]["id"]).to_owned();
        // Used once, so it is cached.
        assert_eq!(
            get_with_key(&app, "/api/tenant", &key).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get_with_key(&app, "/api/tenant", &key).await.0,
            StatusCode::OK
        );

        let response = if revoke_as_admin {
            app.admin_delete(&format!("/api/admin/tenants/{tenant_id}/api-keys/{key_id}"))
                .send()
                .await
                .unwrap()
        } else {
            app.client
                .delete(app.url(&format!("/api/tenant/api-keys/{key_id}")))
                .bearer_auth(&owner_key)
                .send()
                .await
                .unwrap()
        };
        assert_eq!(response.status(), StatusCode::NO_CONTENT);

        let (status, body) = get_with_key(&app, "/api/tenant", &key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        app.call(
            app.get("/api/tenant")
                .header("x-tenant-id", tenant_id)
                .header("x-api-key", &key),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        // The other keys are untouched.
        assert_eq!(
            get_with_key(&app, "/api/tenant", &owner_key).await.0,
            StatusCode::OK
        );
        let (_, listed) = get_with_key(&app, "/api/tenant/api-keys", &owner_key).await;
        let revoked = listed["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == key_id.as_str())
            .expect("a revoked key stays listed");
        assert!(revoked["revoked_at"].is_string());
    }
}

#[tokio::test]
async fn tenants_gate_answers_each_status() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let tenant = app.register_ready("Gatekeeper").await;
    let tenant_id = s(&tenant["tenant_id"]);
    let key = app.api_key(tenant_id).await;
    assert_eq!(
        get_with_key(&app, "/api/tenant", &key).await.0,
        StatusCode::OK
    );

    let (status, body) = answer(
        app.admin_post(&format!("/api/admin/tenants/{tenant_id}/suspend"))
            .json(&json!({ "reason": "unpaid invoice #42" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant"]["status"], "suspended");
    for path in ["/api/tenant", "/api/tenant/api-keys"] {
        let (status, body) = get_with_key(&app, path, &key).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "tenant_suspended");
        assert!(
            s(&body["error"]["message"]).contains("unpaid invoice #42"),
            "{body}"
        );
    }

    let (status, body) = answer(
        app.admin_post(&format!("/api/admin/tenants/{tenant_id}/activate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant"]["status"], "ready");
    assert!(body["tenant"]["suspended_reason"].is_null());
    let (status, body) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");

    let (status, body) = answer(
        app.admin_delete(&format!("/api/admin/tenants/{tenant_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["tenant"]["status"], "deleting");
    let (status, body) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "tenant_deleted");
    wait_for_tenant(&app, tenant_id, "deleted").await;
    let (status, body) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "tenant_deleted");

    // A deleted tenant cannot come back.
    let body = app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{tenant_id}/activate")),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(body["error"]["code"], "illegal_transition");
}

#[tokio::test]
async fn tenants_gate_answers_409_with_progress_while_provisioning() {
    let driven = spawn_driven(Role::Api, &[]).await;
    let app = &driven.app;
    let registered = register_ok(app, org("Still Cooking")).await;
    let tenant_id = s(&registered["tenant_id"]);
    let run_id = s(&registered["provisioning_id"]);
    let key = app.api_key(tenant_id).await;

    let (status, body) = get_with_key(app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "tenant_provisioning");
    assert!(body["error"]["request_id"].is_string());
    assert_eq!(body["provisioning"]["step"], "create_database");
    assert_eq!(body["provisioning"]["progress"], 0);
    assert_eq!(body["provisioning"]["provisioning_id"], run_id);
    let (status, body) = get_with_key(app, "/api/tenant/api-keys", &key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Progress moves with the pipeline.
    let stack = driven.stack().await;
    stack
        .provisioner
        .execute(run_id.parse().unwrap(), Some(Step::Migrate))
        .await
        .unwrap();
    let (status, body) = get_with_key(app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["provisioning"]["step"], "seed");
    assert_eq!(body["provisioning"]["progress"], 33);

    stack
        .provisioner
        .execute(run_id.parse().unwrap(), None)
        .await
        .unwrap();
    let body = eventually("the gate opens", WAIT, || async {
        let (status, body) = get_with_key(app, "/api/tenant", &key).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "ready");
}

// ---------------------------------------------------------------------------------------------------------
// Deletion
// ---------------------------------------------------------------------------------------------------------

/// The dumps in `dir` of one tenant database.
fn dumps_of(dir: &std::path::Path, slug: &str, db_name: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{slug}-{db_name}-")) && name.ends_with(".dump")
        })
        .collect()
}

/// A ready tenant with a customer row in its database; returns (tenant id, slug, db name, key).
async fn ready_tenant_with_data(app: &TestApp, name: &str) -> (String, String, String, String) {
    let registered = app.register_ready(name).await;
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    let slug = s(&registered["slug"]).to_owned();
    let (_, db_name, _) = tenant_row(app, &tenant_id).await;
    let db = tenant_db(&db_name).await;
    sqlx::query("INSERT INTO customers (salla_id, first_name, raw) VALUES (1001, 'Noura', '{}')")
        .execute(&db)
        .await
        .expect("insert a customer");
    db.close().await;
    let key = app.api_key(&tenant_id).await;
    // The tenant pool is open (resident) when deletion starts.
    assert_eq!(
        get_with_key(app, "/api/tenant", &key).await.0,
        StatusCode::OK
    );
    (tenant_id, slug, db_name, key)
}

#[tokio::test]
async fn tenants_delete_dumps_then_drops_the_database() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_owned();
    let app = spawn_app_with(Role::All, |env| {
        env.push((
            "WOSOOL_TENANCY__BACKUP_DIR".into(),
            dir.display().to_string(),
        ))
    })
    .await;
    let (tenant_id, slug, db_name, key) = ready_tenant_with_data(&app, "Doomed Store").await;
    let request_id = format!("delete-{}", Uuid::new_v4());

    let (status, body) = answer(
        app.admin_delete(&format!("/api/admin/tenants/{slug}"))
            .header("x-request-id", &request_id)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["tenant"]["id"], tenant_id.as_str());
    wait_for_tenant(&app, &tenant_id, "deleted").await;

    let dumps = dumps_of(backups.path(), &slug, &db_name);
    assert_eq!(dumps.len(), 1, "one dump: {dumps:?}");
    let size = std::fs::metadata(&dumps[0]).unwrap().len();
    assert!(size > 0, "the dump is not empty");
    // It is a real custom-format dump holding the tenant's data.
    let listing = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&dumps[0])
        .output()
        .expect("pg_restore runs");
    assert!(listing.status.success(), "{listing:?}");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("TABLE DATA public customers"), "{listing}");
    assert!(
        !std::fs::read_dir(backups.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")),
        "no partial dump is left behind"
    );

    assert_eq!(database_count(&db_name).await, 0, "the database is dropped");
    let deleted_at: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT deleted_at FROM tenants WHERE id = $1::uuid")
            .bind(&tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(deleted_at.is_some());
    let (status, body) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "tenant_deleted");

    let actions: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT action, actor, request_id FROM audit_log WHERE tenant_id = $1::uuid \
         AND action IN ('tenant.deletion_requested', 'tenant.deleted') ORDER BY id",
    )
    .bind(&tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0].0, "tenant.deletion_requested");
    assert!(actions[0].1.starts_with("admin:"));
    assert_eq!(actions[0].2.as_deref(), Some(request_id.as_str()));
    assert_eq!(actions[1].0, "tenant.deleted");

    // The admin view of a deleted tenant: no database, no counts.
    let (status, shown) = answer(
        app.admin_get(&format!("/api/admin/tenants/{tenant_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["status"], "deleted");
    assert!(shown["database_size_bytes"].is_null());
    assert!(shown["counts"].is_null());

    // Deleting again is refused, and nothing is dumped twice.
    let body = app
        .call(
            app.admin_delete(&format!("/api/admin/tenants/{tenant_id}")),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(body["error"]["code"], "illegal_transition");
}

#[tokio::test]
async fn tenants_delete_with_keep_data_dumps_and_keeps_the_database() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_owned();
    let app = spawn_app_with(Role::All, |env| {
        env.push((
            "WOSOOL_TENANCY__BACKUP_DIR".into(),
            dir.display().to_string(),
        ))
    })
    .await;
    let (tenant_id, slug, db_name, key) = ready_tenant_with_data(&app, "Archived Store").await;

    app.call(
        app.admin_delete(&with_query(
            &format!("/api/admin/tenants/{tenant_id}"),
            &[("keep_data", "true")],
        )),
        StatusCode::ACCEPTED,
    )
    .await;
    wait_for_tenant(&app, &tenant_id, "deleted").await;

    let dumps = dumps_of(backups.path(), &slug, &db_name);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert!(std::fs::metadata(&dumps[0]).unwrap().len() > 0);
    assert_eq!(database_count(&db_name).await, 1, "the data is kept");
    let db = tenant_db(&db_name).await;
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(customers, 1);
    db.close().await;
    let (status, _) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::GONE);
    let details: Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE tenant_id = $1::uuid AND action = 'tenant.deleted'",
    )
    .bind(&tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(details["keep_data"], true);
    assert!(s(&details["backup"]).ends_with(".dump"));
}

#[tokio::test]
async fn tenants_delete_of_a_pending_tenant_without_a_database_finishes() {
    let driven = spawn_driven(Role::Api, &[]).await;
    let app = &driven.app;
    let registered = register_ok(app, org("Never Started")).await;
    let tenant_id = s(&registered["tenant_id"]);
    let (status, body) = answer(
        app.admin_delete(&format!("/api/admin/tenants/{tenant_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["tenant"]["status"], "deleting");

    // A worker replica runs both queued jobs: provisioning must not resurrect the tenant or create its
    // database, and deletion finishes.
    let (stop, worker) = driven.worker().await;
    wait_for_tenant(app, tenant_id, "deleted").await;
    eventually("both jobs finished", WAIT, || async {
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1::uuid AND state IN ('pending', 'running')",
        )
        .bind(tenant_id)
        .fetch_one(&app.db)
        .await
        .ok()?;
        (live == 0).then_some(())
    })
    .await;
    let (status, db_name, _) = tenant_row(app, tenant_id).await;
    assert_eq!(status, "deleted");
    assert_eq!(database_count(&db_name).await, 0);
    stop.cancel();
    worker.await.unwrap().unwrap();
}
