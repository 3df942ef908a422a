//! Twenty's workspace cap as capacity (`crm::placement`, `crm::capacity`): two instances, each a fake Twenty
//! with Twenty v2.43's real cap. A tenant is placed on the instance with the most room; an instance that
//! refuses at its cap (whatever the config believed) sends the tenant to the next one, never retried
//! blindly; with no room anywhere the tenant is ready without its CRM (`waiting_for_capacity`, shown by the
//! admin API, the CLI and the metrics; the proxy answers 503), and gets its workspace once the cap is raised.

use std::time::Duration;

use serde_json::{Value, json};
use wosool::Role;

use crate::fake_twenty::{ENCRYPTION_KEY, FakeTwentyServer};
use crate::helpers::{TestApp, eventually, new_key_prefix, spawn_replica, test_env};

const WAIT: Duration = Duration::from_secs(20);

/// The environment of an app with instances `a` and `b` (their configured caps given) and a shared Redis
/// prefix.
fn instances_env(
    a: &FakeTwentyServer,
    a_cap: u32,
    b: &FakeTwentyServer,
    b_cap: u32,
    prefix: &str,
) -> impl FnOnce(&mut Vec<(String, String)>) + use<> {
    let instances = format!(
        "[{{key=\"a\",base_url=\"{}\",max_workspaces={a_cap}}},{{key=\"b\",base_url=\"{}\",max_workspaces={b_cap}}}]",
        a.url(),
        b.url()
    );
    let prefix = prefix.to_owned();
    move |env: &mut Vec<(String, String)>| {
        env.push(("WOSOOL_CRM__INSTANCES".into(), instances));
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ));
        env.push(("WOSOOL_CRM__MAX_RETRIES".into(), "1".into()));
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix));
    }
}

async fn crm_status(app: &TestApp, tenant: &str) -> Value {
    let status: Value = app
        .admin_get(&format!("/api/admin/tenants/{tenant}/crm"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["crm"].clone()
}

/// The `crm` step of a tenant's provisioning run.
async fn crm_step(app: &TestApp, registered: &Value) -> Value {
    crate::helpers::run_steps(app, registered["provisioning_id"].as_str().unwrap())
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crm")
        .cloned()
        .expect("crm step")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_capacity_a_refusal_moves_the_tenant_and_a_full_fleet_waits_until_room_appears()
{
    let (a, b) = (
        FakeTwentyServer::start().await,
        FakeTwentyServer::start().await,
    );
    // Both run Twenty v2.43 without an Enterprise key: five workspaces each. The operator's config believes
    // `a` holds ten (wrong) and allows `b` one.
    assert_eq!(a.lock().max_workspaces, Some(5));
    let database = crate::helpers::fresh_database().await;
    let prefix = new_key_prefix();
    let app = spawn_replica(
        &database,
        &prefix,
        Role::All,
        instances_env(&a, 10, &b, 1, &prefix),
    )
    .await;

    let mut tenants = vec![];
    for i in 1..=7 {
        let registered = app.register_ready(&format!("Capacity {i}")).await;
        tenants.push(registered);
    }
    let instance_of = |status: &Value| status["instance"].as_str().map(str::to_owned);
    for registered in &tenants[..5] {
        let status = crm_status(&app, registered["tenant_id"].as_str().unwrap()).await;
        assert_eq!(
            (status["state"].as_str(), instance_of(&status).as_deref()),
            (Some("ready"), Some("a"))
        );
    }
    // The sixth went to `a` (most room by the config), was refused at Twenty's real cap, and landed on `b`.
    let sixth = crm_status(&app, tenants[5]["tenant_id"].as_str().unwrap()).await;
    assert_eq!(
        (sixth["state"].as_str(), instance_of(&sixth).as_deref()),
        (Some("ready"), Some("b")),
        "{sixth}"
    );
    assert_eq!(
        a.lock().calls("signUpInNewWorkspace"),
        6,
        "one refusal, not retried"
    );
    assert_eq!(a.lock().workspaces.len(), 5);
    assert_eq!(b.lock().workspaces.len(), 1);

    // The seventh: no room anywhere. The tenant is ready without its CRM.
    let seventh_id = tenants[6]["tenant_id"].as_str().unwrap().to_owned();
    let seventh = crm_status(&app, &seventh_id).await;
    assert_eq!(seventh["state"], "waiting_for_capacity", "{seventh}");
    assert!(seventh["instance"].is_null() && seventh["waiting_since"].is_string());
    let step = crm_step(&app, &tenants[6]).await;
    assert_eq!(step["status"], "skipped", "{step}");
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .starts_with("waiting_for_capacity"),
        "{step}"
    );
    assert_eq!(
        b.lock().workspaces.len(),
        1,
        "b was never asked beyond its configured cap"
    );

    // Operators see it: the admin API, the metrics, the CLI.
    let fleet: Value = app
        .admin_get("/api/admin/crm")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fleet["room"], 0, "{fleet}");
    assert_eq!(
        fleet["waiting_for_capacity"][0]["tenant_id"],
        json!(seventh_id),
        "{fleet}"
    );
    let a_status = &fleet["instances"][0];
    assert_eq!(
        (a_status["key"].as_str(), a_status["workspaces"].as_i64()),
        (Some("a"), Some(5))
    );
    assert_eq!(
        a_status["effective_cap"], 5,
        "the refusal lowered a's cap to what Twenty holds: {fleet}"
    );
    let metrics = eventually("the capacity gauges", WAIT, || async {
        let text = app.metrics().await;
        crate::helpers::metric_value(&text, "crm_workspaces_waiting_for_capacity", &[])
            .filter(|v| *v == 1.0)
            .map(|_| text)
    })
    .await;
    assert_eq!(
        crate::helpers::metric_value(
            &metrics,
            "crm_workspace_cap_refusals_total",
            &[("instance", "a")]
        ),
        Some(1.0)
    );
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
        .args(["crm", "status", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs({
            let mut env = test_env(&database);
            instances_env(&a, 10, &b, 1, &prefix)(&mut env);
            env
        })
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).expect("JSON status");
    assert_eq!(
        cli["waiting_for_capacity"].as_array().map(Vec::len),
        Some(1),
        "{cli}"
    );
    let checked = &cli["instances"][1];
    assert_eq!(
        checked["version"],
        format!("v{}", wosool::crm::twenty::PINNED_VERSION),
        "{cli}"
    );
    assert_eq!(checked["check_error"], Value::Null, "{cli}");
    assert_eq!(
        checked["capabilities"]["provisional"], false,
        "production Twenty refuses anonymous introspection: learnt with a workspace's API key: {cli}"
    );
    assert!(
        checked["capabilities"]["notable"]
            .as_array()
            .is_some_and(|n| n.contains(&json!("updateWorkspaceMemberSettings"))),
        "{cli}"
    );

    // Its CRM answers 503 naming the reason; everything else works.
    let key = app.api_key(&seventh_id).await;
    let proxied = app
        .get("/crm/rest/companies")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 503);
    assert_eq!(proxied.headers()["retry-after"], "60");
    let body: Value = proxied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "crm_unavailable", "{body}");
    assert_eq!(
        body["error"]["details"]["reason"], "waiting_for_capacity",
        "{body}"
    );
    let tenant = app
        .get("/api/tenant")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 200);

    // The operator raises b's cap (b's Twenty holds five): at its next start the waiting tenant gets its
    // workspace, without anyone touching it.
    app.shutdown.cancel();
    let _ = app.server.await;
    let app = spawn_replica(
        &database,
        &prefix,
        Role::All,
        instances_env(&a, 10, &b, 2, &prefix),
    )
    .await;
    let placed = eventually(
        "the waiting workspace provisioned, its model applied",
        WAIT,
        || async {
            let status = crm_status(&app, &seventh_id).await;
            (status["state"] == "ready" && status["manifest_version"] == 2).then_some(status)
        },
    )
    .await;
    assert_eq!(placed["instance"], "b", "{placed}");
    assert!(placed["waiting_since"].is_null());
    assert_eq!(b.lock().workspaces.len(), 2);
    assert_eq!(
        a.lock().calls("signUpInNewWorkspace"),
        6,
        "a, still at its cap, was not asked again"
    );
    let proxied = app
        .get("/crm/rest/companies")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200, "{}", proxied.text().await.unwrap());
}

#[tokio::test]
async fn a_lost_new_workspace_answer_is_found_again_and_a_failed_listing_never_creates_a_second() {
    let twenty = FakeTwentyServer::start().await;
    let database = crate::helpers::fresh_database().await;
    let prefix = new_key_prefix();
    let env = twenty.env();
    let app = spawn_replica(&database, &prefix, Role::Api, move |e| {
        env(e);
        e.push(("WOSOOL_CRM__MAX_RETRIES".into(), "0".into()));
    })
    .await;
    let (status, registered) = app
        .register(json!({ "organization_name": "Lost Answer", "admin_email": "owner@example.sa" }))
        .await;
    assert_eq!(status, 202, "{registered}");
    let tenant: wosool::tenancy::Tenant =
        sqlx::query_as("SELECT * FROM tenants WHERE id = $1::uuid")
            .bind(registered["tenant_id"].as_str().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    let env = twenty.env();
    let config = crate::helpers::test_config(&database, |e| {
        env(e);
        e.push(("WOSOOL_CRM__MAX_RETRIES".into(), "0".into()));
    });
    let crm = wosool::crm::twenty::TwentyCrm::new(
        &wosool::core::Core::new(config.clone(), app.db.clone(), None).unwrap(),
    )
    .unwrap();
    use wosool::provisioning::CrmBackend;

    // Created in Twenty, answer lost; then the listing of the owner's workspaces fails too.
    twenty.lock().lose_answer_next("signUpInNewWorkspace", 1);
    assert!(crm.provision_workspace(&tenant).await.is_err());
    twenty.lock().fail_next("currentUser", 1);
    let error = crm
        .provision_workspace(&tenant)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("currentUser"), "{error}");
    assert_eq!(
        twenty.lock().workspaces.len(),
        1,
        "no second workspace when the listing failed"
    );
    // The next run finds it through availableWorkspaces (v2.43) and finishes.
    crm.provision_workspace(&tenant).await.unwrap();
    let fake = twenty.lock();
    assert_eq!(fake.workspaces.len(), 1);
    assert_eq!(fake.calls("signUpInNewWorkspace"), 1);
    assert_eq!(fake.onboarding_status(&fake.workspaces[0].id), "COMPLETED");
}
