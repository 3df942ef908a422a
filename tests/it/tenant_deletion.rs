//! Tenant deletion leaves nothing behind: the database (after its dump), the Twenty workspace with the customer
//! data synced into it (and its owner user), the Clerk organization with its users who belong to no other
//! organization, and every credential; each step recorded, a crash resumed. `keep_data` keeps what holds the
//! data. Deletion dumps are pruned after their retention.

use std::time::Duration;

use serde_json::{Value, json};
use wosool::Role;

use crate::clerk_identity::{clerk_env, fake_clerk};
use crate::fake_twenty::FakeTwentyServer;
use crate::helpers::{self, TestApp, eventually};

const WAIT: Duration = Duration::from_secs(30);

/// An app with Twenty and Clerk (fakes) and a ready tenant; returns the app, the fakes and the tenant id.
async fn ready_tenant(twenty: &FakeTwentyServer, clerk_url: &str) -> (TestApp, String) {
    let env = twenty.env();
    let clerk = clerk_env(clerk_url);
    let app = helpers::spawn_app_with(Role::All, move |e| {
        env(e);
        clerk(e);
        e.push(("WOSOOL_JOBS__RETRY_BASE_MS".into(), "10".into()));
    })
    .await;
    let registered = app.register_ready("Leaving Store").await;
    let tenant_id = registered["tenant_id"].as_str().unwrap().to_owned();
    eventually("the workspace's model applied", WAIT, || async {
        let version: Option<i32> = sqlx::query_scalar(
            "SELECT manifest_version FROM crm_workspaces WHERE tenant_id = $1::uuid",
        )
        .bind(&tenant_id)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        (version == Some(2)).then_some(())
    })
    .await;
    (app, tenant_id)
}

async fn delete_and_wait(app: &TestApp, tenant_id: &str, query: &str) -> Value {
    let response = app
        .admin_delete(&format!("/api/admin/tenants/{tenant_id}{query}"))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    eventually("the tenant deleted", WAIT, || async {
        let details: Value = app
            .admin_get(&format!("/api/admin/tenants/{tenant_id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (details["status"] == "deleted").then_some(details)
    })
    .await
}

fn step<'a>(details: &'a Value, name: &str) -> &'a Value {
    details["deletion"]
        .as_array()
        .expect("deletion steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("step {name} in {details}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_leaves_no_workspace_no_organization_and_no_credentials() {
    let twenty = FakeTwentyServer::start().await;
    let (clerk_url, clerk) = fake_clerk().await;
    let (app, tenant_id) = ready_tenant(&twenty, &clerk_url).await;
    let (workspace, api_key) = {
        let fake = twenty.lock();
        assert_eq!(fake.workspaces.len(), 1);
        let workspace = fake.workspaces[0].id.clone();
        (
            workspace.clone(),
            fake.api_key_tokens(&workspace)[0].clone(),
        )
    };
    let (org, owner) = {
        let fake = clerk.lock().unwrap();
        assert_eq!((fake.orgs.len(), fake.users.len()), (1, 1));
        (
            fake.orgs[0]["id"].as_str().unwrap().to_owned(),
            fake.users[0]["id"].as_str().unwrap().to_owned(),
        )
    };
    // A second member who also belongs to another organization: kept.
    {
        let mut fake = clerk.lock().unwrap();
        fake.users
            .push(json!({ "object": "user", "id": "user_shared", "email_addresses": [] }));
        fake.orgs.push(json!({ "object": "organization", "id": "org_other", "name": "Other", "private_metadata": {} }));
        fake.memberships
            .push((org.clone(), "user_shared".into(), "org:member".into()));
        fake.memberships
            .push(("org_other".into(), "user_shared".into(), "org:admin".into()));
    }
    let wosool_key = app.api_key(&tenant_id).await;
    // The workspace deletion's answer is lost once: the step fails, the job comes back and finds it gone.
    twenty.lock().lose_answer_next("deleteCurrentWorkspace", 1);

    let details = delete_and_wait(&app, &tenant_id, "").await;
    for name in [
        "dump",
        "drop_database",
        "crm_workspace",
        "identity",
        "credentials",
        "finalize",
    ] {
        assert_eq!(
            step(&details, name)["status"],
            "succeeded",
            "{name}: {details}"
        );
    }
    assert_eq!(
        step(&details, "crm_workspace")["attempts"],
        2,
        "resumed after the lost answer"
    );
    assert!(
        step(&details, "crm_workspace")["detail"]
            .as_str()
            .unwrap()
            .contains("already gone"),
        "{details}"
    );
    let backup = step(&details, "dump")["detail"].as_str().unwrap();
    assert!(
        std::path::Path::new(backup).is_file(),
        "the dump exists: {backup}"
    );

    // Twenty: no workspace, no owner user; the workspace's key opens nothing.
    {
        let fake = twenty.lock();
        assert!(fake.workspaces.is_empty(), "workspace {workspace} deleted");
        assert!(fake.users.is_empty(), "the owner user deleted");
        assert_eq!(fake.workspace_of_token(&api_key), None);
    }
    // Clerk: the organization and its owner gone; the shared member kept.
    {
        let fake = clerk.lock().unwrap();
        assert!(!fake.orgs.iter().any(|o| o["id"] == json!(org)));
        assert!(!fake.users.iter().any(|u| u["id"] == json!(owner)));
        assert!(fake.users.iter().any(|u| u["id"] == "user_shared"));
    }
    // Nothing of ours remains that could reach them.
    let crm_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_workspaces")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(crm_rows, 0);
    let sealed_clerk: i64 = sqlx::query_scalar("SELECT count(*) FROM clerk_owner_credentials")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(sealed_clerk, 0);
    let answer = app
        .get("/api/tenant")
        .bearer_auth(&wosool_key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 410, "the tenant's own key says it is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_data_keeps_the_database_and_the_workspace_but_not_the_organization() {
    let twenty = FakeTwentyServer::start().await;
    let (clerk_url, clerk) = fake_clerk().await;
    let (app, tenant_id) = ready_tenant(&twenty, &clerk_url).await;
    let details = delete_and_wait(&app, &tenant_id, "?keep_data=true").await;
    for name in ["drop_database", "crm_workspace"] {
        assert_eq!(step(&details, name)["status"], "skipped", "{details}");
        assert_eq!(step(&details, name)["detail"], "keep_data");
    }
    assert_eq!(step(&details, "identity")["status"], "succeeded");
    assert_eq!(twenty.lock().workspaces.len(), 1, "the workspace is kept");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crm_workspaces WHERE tenant_id = $1::uuid")
            .bind(&tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(kept, 1, "with the credentials to reach it");
    assert!(
        clerk.lock().unwrap().orgs.is_empty(),
        "the organization is gone"
    );
}

#[tokio::test]
async fn deletion_dumps_are_pruned_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().to_owned();
    let app = helpers::spawn_app_with(Role::All, |e| {
        e.push((
            "WOSOOL_TENANCY__BACKUP_DIR".into(),
            backups.display().to_string(),
        ));
        e.push(("WOSOOL_TENANCY__BACKUP_RETENTION_DAYS".into(), "7".into()));
    })
    .await;
    let old = backups.join("old-tenant-1.dump");
    let fresh = backups.join("fresh-tenant-2.dump");
    let other = backups.join("notes.txt");
    for file in [&old, &fresh, &other] {
        std::fs::write(file, b"dump").unwrap();
    }
    let eight_days_ago = std::time::SystemTime::now() - Duration::from_secs(8 * 86_400);
    for file in [&old, &other] {
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(eight_days_ago)
            .unwrap();
    }
    let enqueued = app
        .admin_post("/api/admin/jobs")
        .json(&json!({ "kind": "tenancy.prune_backups", "payload": {} }))
        .send()
        .await
        .unwrap();
    assert!(
        enqueued.status().is_success(),
        "{}",
        enqueued.text().await.unwrap()
    );
    eventually("the old dump removed", WAIT, || async {
        (!old.exists()).then_some(())
    })
    .await;
    assert!(fresh.exists(), "a dump within its retention is kept");
    assert!(other.exists(), "only dumps are pruned");
}
