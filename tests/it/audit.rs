//! The audit trail: tenant API, merchant app and CRM proxy writes land in the tenant's log with actor, IP,
//! user agent and request id; the global log gains the same for operators' changes (with before/after);
//! `GET /api/audit` (tenant admins, their own tenant only) and `GET /api/admin/audit` filter and page without
//! duplicates or gaps; the retention job deletes only old rows; `wosool audit --json` prints a page.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wosool::Role;
use wosool::audit::retention::PruneAudit;

use crate::helpers::{TestApp, database_url, spawn_app_with, tenancy_stack, test_config};
use crate::helpers::{answer, tenant_db, tenant_row, with_query};

const UA: &str = "audit-test/1.0 (integration)";

async fn tenant_with_key(app: &TestApp, name: &str) -> (String, String) {
    let registered = app.register_ready(name).await;
    let id = registered["tenant_id"]
        .as_str()
        .expect("tenant_id")
        .to_owned();
    let key = app.api_key(&id).await;
    (id, key)
}

async fn create_key(app: &TestApp, key: &str, name: &str, request_id: &str) -> Value {
    app.call(
        app.client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(key)
            .header("user-agent", UA)
            .header("x-request-id", request_id)
            .json(&json!({ "name": name })),
        StatusCode::CREATED,
    )
    .await
}

async fn tenant_audit(app: &TestApp, key: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    answer(
        app.get(&with_query("/api/audit", query))
            .bearer_auth(key)
            .send()
            .await
            .expect("audit request"),
    )
    .await
}

/// Every entry of a listing, walking `next_cursor` with pages of `limit`.
async fn walk(app: &TestApp, path: &str, key: Option<&str>, limit: usize) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let limit_text = limit.to_string();
        let mut query = vec![("limit", limit_text.as_str())];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let url = if path.contains('?') {
            format!("{path}&{}", &with_query("", &query)[1..])
        } else {
            with_query(path, &query)
        };
        let request = match key {
            Some(key) => app.get(&url).bearer_auth(key),
            None => app.admin_get(&url),
        };
        let page = app.call(request, StatusCode::OK).await;
        pages += 1;
        let entries = page["entries"].as_array().expect("entries");
        assert!(entries.len() <= limit, "{page}");
        ids.extend(entries.iter().map(|e| e["id"].as_i64().expect("id")));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (ids, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_api_and_app_writes_with_origin_filters_and_pages() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let (a, key_a) = tenant_with_key(&app, "Audit Store A").await;
    let (b, key_b) = tenant_with_key(&app, "Audit Store B").await;

    // API: a key created and revoked by tenant A's key.
    let created = create_key(&app, &key_a, "ci", "req-audit-create").await;
    let key_id = created["api_key"]["id"]
        .as_str()
        .expect("key id")
        .to_owned();
    let revoked = app
        .client
        .delete(app.url(&format!("/api/tenant/api-keys/{key_id}")))
        .bearer_auth(&key_a)
        .header("user-agent", UA)
        .header("x-request-id", "req-audit-revoke")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    // Merchant app: settings saved.
    let saved = app
        .client
        .post(app.url("/app/settings?lang=en"))
        .bearer_auth(&key_a)
        .header("user-agent", UA)
        .header("x-request-id", "req-audit-settings")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=en&notify_daily_summary=on")
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);

    let (status, page) = tenant_audit(&app, &key_a, &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} in {page}"))
            .clone()
    };
    let create = find("api_key.created");
    assert_eq!(create["via"], "api");
    assert_eq!(create["ip"], "127.0.0.1");
    assert_eq!(create["user_agent"], UA);
    assert_eq!(create["request_id"], "req-audit-create");
    assert_eq!(create["resource"], format!("api_key:{key_id}"));
    assert_eq!(create["tenant_id"], a.as_str());
    assert!(
        create["actor"]
            .as_str()
            .unwrap()
            .starts_with("api_key:wsl_"),
        "{create}"
    );
    let revoke = find("api_key.revoked");
    assert_eq!(revoke["request_id"], "req-audit-revoke");
    assert_eq!(revoke["after"]["revoked"], true);
    let settings = find("settings.saved");
    assert_eq!(settings["via"], "app");
    assert_eq!(settings["request_id"], "req-audit-settings");
    assert_eq!(settings["after"]["lang"], "en");
    // No plain key anywhere in the log.
    let plain = created["key"].as_str().unwrap();
    assert!(
        !page.to_string().contains(plain),
        "no secret in the audit log"
    );

    // Filters.
    let (_, only) = tenant_audit(&app, &key_a, &[("action", "api_key.created")]).await;
    let only = only["entries"].as_array().unwrap();
    assert!(!only.is_empty() && only.iter().all(|e| e["action"] == "api_key.created"));
    let resource = format!("api_key:{key_id}");
    let (_, by_resource) = tenant_audit(&app, &key_a, &[("resource", resource.as_str())]).await;
    assert_eq!(
        by_resource["entries"].as_array().unwrap().len(),
        2,
        "{by_resource}"
    );
    let (_, future) = tenant_audit(&app, &key_a, &[("since", "2999-01-01T00:00:00Z")]).await;
    assert_eq!(future["entries"], json!([]));
    for bad in [
        vec![("since", "yesterday")],
        vec![("limit", "0")],
        vec![("limit", "many")],
        vec![("cursor", "garbage")],
        vec![("nonsense", "1")],
    ] {
        let (status, body) = tenant_audit(&app, &key_a, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert!(body["error"]["request_id"].is_string(), "{body}");
    }

    // Tenant B sees none of A's entries, and cannot ask for A's.
    let (_, page_b) = tenant_audit(&app, &key_b, &[]).await;
    assert!(
        page_b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"] == b.as_str() && e["resource"] != resource.as_str()),
        "{page_b}"
    );
    let (status, body) = tenant_audit(&app, &key_b, &[("tenant_id", a.as_str())]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Paging: every entry exactly once, newest first, across pages of 3.
    for i in 0..7 {
        create_key(&app, &key_a, &format!("bulk-{i}"), &format!("req-bulk-{i}")).await;
    }
    let (all, _) = walk(&app, "/api/audit", Some(&key_a), 200).await;
    let (paged, pages) = walk(&app, "/api/audit", Some(&key_a), 3).await;
    assert!(all.len() >= 10, "{all:?}");
    assert_eq!(
        paged, all,
        "pages cover the listing without duplicates or gaps"
    );
    assert_eq!(pages, all.len().div_ceil(3));
    assert!(paged.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), paged.len());

    // Operators: the global log has the same actions with origin and before/after; one tenant's own log too.
    let global = app
        .call(
            app.admin_get(&with_query(
                "/api/admin/audit",
                &[("tenant_id", a.as_str()), ("action", "api_key.revoked")],
            )),
            StatusCode::OK,
        )
        .await;
    let entry = &global["entries"][0];
    assert_eq!(entry["ip"], "127.0.0.1", "{global}");
    assert_eq!(entry["user_agent"], UA);
    assert_eq!(entry["request_id"], "req-audit-revoke");
    assert_eq!(entry["before"]["revoked"], false);
    assert_eq!(entry["tenant_id"], a.as_str());
    let (admin_paged, _) = walk(
        &app,
        &format!("/api/admin/audit?scope=tenant&tenant_id={a}"),
        None,
        4,
    )
    .await;
    assert_eq!(admin_paged, all, "operators read the tenant's own log");
    let (global_paged, _) = walk(&app, "/api/admin/audit", None, 5).await;
    let (global_all, _) = walk(&app, "/api/admin/audit", None, 200).await;
    assert_eq!(global_paged, global_all);
    let bad = app
        .admin_get("/api/admin/audit?tenant_id=not-a-tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // The tenant endpoint is for admins of the tenant: no credentials, no log.
    let anonymous = app.get("/api/audit").send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_crm_proxy_writes_without_bodies() {
    let fake = crate::crm_proxy::fake_twenty().await;
    let setup = crate::crm_proxy::setup(1, 1, &fake.url, |_| {}).await;
    let app = &setup.proxy;
    let tenant = &setup.tenants[0];
    let secret_body = json!({ "name": { "firstName": "Very Secret Name" } });
    let posted = app
        .client
        .post(app.url("/crm/rest/people?token=query-secret"))
        .bearer_auth(&tenant.key)
        .header("user-agent", UA)
        .header("x-request-id", "req-crm-post")
        .json(&secret_body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    let read = app
        .get("/crm/rest/people")
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    for query in [
        "mutation CreateCompany { createCompany(data: {name: \"Secret Co\"}) { id } }",
        "query People { people { edges { node { id } } } }",
    ] {
        let response = app
            .client
            .post(app.url("/crm/graphql"))
            .bearer_auth(&tenant.key)
            .header("user-agent", UA)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let (status, page) = tenant_audit(app, &tenant.key, &[("action", "crm.write")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        2,
        "one REST write and one mutation, no reads: {page}"
    );
    let rest = entries
        .iter()
        .find(|e| e["details"]["method"] == "POST" && e["details"]["target"] == "/crm/rest/people")
        .unwrap_or_else(|| panic!("REST write in {page}"));
    assert_eq!(rest["via"], "crm_proxy");
    assert_eq!(rest["details"]["upstream_status"], 200);
    assert_eq!(rest["request_id"], "req-crm-post");
    assert_eq!(rest["user_agent"], UA);
    assert_eq!(rest["ip"], "127.0.0.1");
    let mutation = entries
        .iter()
        .find(|e| e["details"]["target"] == "graphql:CreateCompany")
        .unwrap_or_else(|| panic!("mutation in {page}"));
    assert_eq!(mutation["resource"], "crm:graphql:CreateCompany");
    let text = page.to_string();
    for secret in [
        "Very Secret Name",
        "Secret Co",
        "query-secret",
        tenant.twenty_key.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "{secret} must not be audited: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_deletes_only_old_rows() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let (id, _key) = tenant_with_key(&app, "Retention Store").await;
    let (_, db_name, _) = tenant_row(&app, &id).await;
    let tenant = tenant_db(&db_name).await;
    for (pool, label) in [(&app.db, "global"), (&tenant, "tenant")] {
        sqlx::query(
            "INSERT INTO audit_log (actor, action, at) \
             SELECT 'test', $1, now() - interval '400 days' FROM generate_series(1, 25)",
        )
        .bind(format!("old.{label}"))
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO audit_log (actor, action, at) VALUES ('test', $1, now() - interval '10 days')",
        )
        .bind(format!("recent.{label}"))
        .execute(pool)
        .await
        .unwrap();
    }
    let config = test_config(&app.database, |_| {});
    let stack = tenancy_stack(&config).await;
    let pruned = PruneAudit {
        retention_days: 365,
        tenant_retention_days: 365,
        batch: 10,
    }
    .run(&stack.core)
    .await
    .expect("prune");
    assert_eq!(pruned.global, 25);
    assert_eq!(pruned.tenant, 25);
    for (pool, label) in [(&app.db, "global"), (&tenant, "tenant")] {
        let (old, recent, total): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE action LIKE 'old.%'), count(*) FILTER (WHERE action LIKE 'recent.%'), \
                    count(*) FROM audit_log",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(old, 0, "{label}: old rows deleted");
        assert_eq!(recent, 1, "{label}: recent rows kept");
        assert!(total >= 1, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wosool_audit_prints_the_log_as_json_and_as_a_table() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let (id, _) = tenant_with_key(&app, "CLI Audit Store").await;
    app.call(
        app.admin_post(&format!("/api/admin/tenants/{id}/suspend"))
            .header("user-agent", UA)
            .json(&json!({ "reason": "audit cli test" })),
        StatusCode::OK,
    )
    .await;
    let run = |args: Vec<String>| {
        let database = app.database.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("WOSOOL_DB__URL", database_url(&database))
                .output()
                .await
                .expect("run wosool")
        }
    };
    let out = run(vec![
        "audit".into(),
        "--json".into(),
        "--action".into(),
        "tenant.suspended".into(),
        "--tenant".into(),
        id.clone(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout).expect("JSON page");
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["details"]["reason"], "audit cli test");
    assert_eq!(entries[0]["user_agent"], UA);
    assert_eq!(entries[0]["before"]["status"], "ready");
    assert_eq!(entries[0]["after"]["status"], "suspended");
    let table = run(vec!["audit".into(), "--tenant".into(), id.clone()]).await;
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("ACTION") && text.contains("tenant.suspended"),
        "{text}"
    );
    let bad = run(vec!["audit".into(), "--since".into(), "yesterday".into()]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("since"));
}
