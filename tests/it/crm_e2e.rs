//! The CRM end to end against the fake Twenty (which rejects what real Twenty rejects): a new tenant gets a
//! workspace with no onboarding left and the Wosool data model applied by provisioning itself; applying the
//! model again changes nothing; tenant rows flow into the workspace through the outbox and the sync job.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use wosool::Role;

use crate::fake_twenty::FakeTwentyServer;
use crate::helpers::{database_url, eventually, spawn_app_with};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_new_tenant_gets_a_ready_workspace_with_the_data_model_and_its_data_flows_in() {
    let twenty = FakeTwentyServer::start().await;
    let env = twenty.env();
    let app = spawn_app_with(Role::All, |vars| {
        env(vars);
        vars.push(("WOSOOL_JOBS__RETRY_BASE_MS".into(), "10".into()));
    })
    .await;
    let registered = app.register_ready("Twenty Linked Store").await;
    let tenant_id = registered["tenant_id"].as_str().unwrap().to_owned();

    let (workspace, step, version, error, db_name): (String, String, i32, Option<String>, String) =
        sqlx::query_as(
            "SELECT w.workspace_id, w.step, w.manifest_version, w.manifest_error, t.db_name \
         FROM crm_workspaces w JOIN tenants t ON t.id = w.tenant_id WHERE w.tenant_id = $1::uuid",
        )
        .bind(&tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(step, "ready");
    assert_eq!(
        (version, error),
        (2, None),
        "the manifest was applied during provisioning"
    );
    {
        let fake = twenty.lock();
        assert_eq!(
            fake.onboarding_status(&workspace),
            "COMPLETED",
            "no wizard, ever"
        );
        for object in [
            "sallaProduct",
            "sallaOrder",
            "sallaCart",
            "agentSetting",
            "voiceCall",
        ] {
            let found = fake
                .object(&workspace, object)
                .unwrap_or_else(|| panic!("{object} created"));
            if object.starts_with("salla") {
                let external = found
                    .fields
                    .iter()
                    .find(|f| f.name == "externalId")
                    .expect("externalId");
                assert!(external.is_unique, "{object}.externalId is unique");
            }
            assert!(
                !found.fields.iter().any(|f| f.name == "name" && f.is_custom),
                "no custom name on {object}"
            );
        }
        let person = fake.object(&workspace, "person").expect("person");
        assert!(person.fields.iter().any(|f| f.name == "sallaCustomerId"));
    }
    let creates = {
        let fake = twenty.lock();
        fake.calls("createOneField") + fake.calls("createOneObject")
    };
    assert!(creates > 20, "the model was created ({creates} calls)");

    // Applying again (the rollout) finds nothing to do.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
        .args(["crm", "apply-model"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(crate::helpers::test_env(&app.database))
        .envs([("WOSOOL_CRM__BASE_URL".to_owned(), twenty.url())])
        .envs(twenty_env(&twenty))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("applying data model v2 to 0 workspace(s)"),
        "{stdout}"
    );
    let again = {
        let fake = twenty.lock();
        fake.calls("createOneField") + fake.calls("createOneObject")
    };
    assert_eq!(again, creates, "nothing created the second time");

    // A product written to the tenant database reaches the workspace through the outbox.
    let tenant = PgPool::connect(&database_url(&db_name)).await.unwrap();
    sqlx::query(
        "INSERT INTO products (salla_id, name, sku, price, currency, status, raw) \
         VALUES (5000000001, 'Oud perfume', 'OUD-1', 175.50, 'SAR', 'sale', '{}'::jsonb)",
    )
    .execute(&tenant)
    .await
    .unwrap();
    let enqueued = app
        .admin_post("/api/admin/jobs")
        .json(&json!({ "kind": "crm.sync", "payload": { "tenant_id": tenant_id } }))
        .send()
        .await
        .unwrap();
    assert!(
        enqueued.status().is_success(),
        "{}",
        enqueued.text().await.unwrap()
    );
    let record: Value = eventually("the product in the workspace", WAIT, || async {
        twenty
            .lock()
            .records(&workspace, "sallaProducts")
            .into_iter()
            .find(|r| r["externalId"] == "5000000001")
    })
    .await;
    assert_eq!(record["name"], "Oud perfume");
    let status: Value = app
        .admin_get(&format!("/api/admin/tenants/{tenant_id}/crm"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["crm"]["manifest_version"], 2, "{status}");
    assert_eq!(status["crm"]["state"], "ready", "{status}");
    assert_eq!(status["crm"]["instance"], "default", "{status}");
    tenant.close().await;
}

/// The encryption key and Twenty URL the fake's env sets, for the CLI process.
fn twenty_env(twenty: &FakeTwentyServer) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    twenty.env()(&mut vars);
    vars
}
