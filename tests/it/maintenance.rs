//! Maintenance mode: globally, tenant routes answer 503 `maintenance` with Retry-After while the admin API,
//! health and webhooks keep working (deliveries are stored); per tenant, read-only lets reads through and
//! refuses writes with 503 `tenant_read_only`, other tenants unaffected. Switched off, everything is normal.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sha2::Sha256;
use wosool::Role;

use crate::helpers::answer;
use crate::helpers::{TestApp, spawn_app_with};

const WEBHOOK_SECRET: &str = "maintenance-test-webhook-secret";
const ENCRYPTION_KEY: &str = "test:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn set_maintenance(app: &TestApp, body: Value) -> Value {
    app.call(
        app.admin_post("/api/admin/maintenance").json(&body),
        StatusCode::OK,
    )
    .await
}

async fn deliver_webhook(app: &TestApp, id: u64) -> StatusCode {
    let body = serde_json::to_vec(&json!({
        "event": "order.created",
        "merchant": 987_654_321,
        "created_at": "2026-12-02 10:00:00",
        "data": { "id": id },
    }))
    .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = hex::encode(mac.finalize().into_bytes());
    app.client
        .post(app.url("/webhooks/salla"))
        .header("content-type", "application/json")
        .header("x-salla-security-strategy", "Signature")
        .header("x-salla-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_maintenance_refuses_tenant_routes_and_keeps_admin_health_and_webhooks() {
    let app = spawn_app_with(Role::All, |env| {
        env.push((
            "WOSOOL_SALLA__CLIENT_ID".into(),
            "maintenance-client".into(),
        ));
        env.push((
            "WOSOOL_SALLA__CLIENT_SECRET".into(),
            "maintenance-secret".into(),
        ));
        env.push((
            "WOSOOL_SALLA__WEBHOOK_SECRETS".into(),
            format!("[\"{WEBHOOK_SECRET}\"]"),
        ));
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ));
    })
    .await;
    let registered = app.register_ready("Maintenance Store").await;
    let id = registered["tenant_id"].as_str().unwrap().to_owned();
    let key = app.api_key(&id).await;

    let shown = app
        .call(app.admin_get("/api/admin/maintenance"), StatusCode::OK)
        .await;
    assert_eq!(shown["maintenance"]["enabled"], false);
    assert_eq!(shown["maintenance"]["source"], "config");

    let on = set_maintenance(
        &app,
        json!({ "enabled": true, "message": "Database upgrade until 02:00 UTC", "retry_after_secs": 120 }),
    )
    .await;
    assert_eq!(on["maintenance"]["enabled"], true);
    assert_eq!(on["maintenance"]["source"], "runtime");

    // Tenant routes: API, merchant app, CRM proxy, registration, session minting.
    for (method, path) in [
        ("GET", "/api/tenant"),
        ("GET", "/app/home"),
        ("POST", "/api/tenant/api-keys"),
        ("GET", "/crm/rest/people"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&key)
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get(RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            Some("120"),
            "{path}"
        );
        let (status, body) = answer(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body["error"]["code"], "maintenance", "{path}");
        assert_eq!(body["error"]["message"], "Database upgrade until 02:00 UTC");
    }
    // A browser loading an app page gets a page in its language (not the envelope), same status and
    // Retry-After, reloading itself once that time has passed.
    let page = app
        .get("/app/home?lang=ar")
        .bearer_auth(&key)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()[RETRY_AFTER], "120");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<html lang="ar" dir="rtl""#), "{html}");
    assert!(html.contains("وصول قيد الصيانة"), "{html}");
    assert!(html.contains("Database upgrade until 02:00 UTC"), "{html}");
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="120">"#),
        "{html}"
    );
    // htmx requests keep the envelope (the screen says it in a line).
    let fragment = app
        .get("/app/home")
        .bearer_auth(&key)
        .header("accept", "text/html")
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    let (status, body) = answer(fragment).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "maintenance");

    let (status, body) = app
        .register(
            json!({ "organization_name": "During Maintenance", "admin_email": "m@example.sa" }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let minting = app
        .client
        .post(app.url("/api/embedded/session"))
        .json(&json!({ "token": "abc" }))
        .send()
        .await
        .unwrap();
    assert_eq!(minting.status(), StatusCode::SERVICE_UNAVAILABLE);

    // What keeps working: admin API, health, webhooks (stored).
    app.call(
        app.admin_get(&format!("/api/admin/tenants/{id}")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.get("/health/live").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/health/ready").send().await.unwrap().status(),
        StatusCode::OK
    );
    let delivered = deliver_webhook(&app, 4242).await;
    assert!(delivered.is_success(), "{delivered}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_inbox WHERE provider = 'salla'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, 1);

    // Audited with before/after.
    let (before, after): (Value, Value) =
        sqlx::query_as("SELECT before, after FROM audit_log WHERE action = 'maintenance.enabled'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(before["enabled"], false);
    assert_eq!(after["enabled"], true);

    // Off again: normal.
    set_maintenance(&app, json!({ "enabled": false })).await;
    let response = app
        .get("/api/tenant")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(RETRY_AFTER).is_none());

    // Bad input.
    let bad = app
        .admin_post("/api/admin/maintenance")
        .json(&json!({ "enabled": true, "retry_after_secs": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = app
        .client
        .post(app.url("/api/admin/maintenance"))
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_switched_on_one_replica_reaches_another() {
    let app = spawn_app_with(Role::All, |env| {
        env.push(("WOSOOL_MAINTENANCE__CACHE_SECS".into(), "1".into()));
    })
    .await;
    let replica = crate::helpers::spawn_replica(
        &app.database,
        &crate::helpers::new_key_prefix(),
        Role::Api,
        |env| env.push(("WOSOOL_MAINTENANCE__CACHE_SECS".into(), "1".into())),
    )
    .await;
    let registered = app.register_ready("Replica Maintenance Store").await;
    let key = app.api_key(registered["tenant_id"].as_str().unwrap()).await;
    let status = |app: &TestApp| {
        let request = app.get("/api/tenant").bearer_auth(&key);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(&replica).await, StatusCode::OK);
    set_maintenance(&app, json!({ "enabled": true })).await;
    crate::helpers::eventually(
        "the replica sees maintenance",
        crate::helpers::WAIT,
        || async { (status(&replica).await == StatusCode::SERVICE_UNAVAILABLE).then_some(()) },
    )
    .await;
    set_maintenance(&app, json!({ "enabled": false })).await;
    crate::helpers::eventually("the replica sees it end", crate::helpers::WAIT, || async {
        (status(&replica).await == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_tenant_serves_reads_and_refuses_writes() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let a = app.register_ready("Read Only Store").await;
    let b = app.register_ready("Writable Store").await;
    let a_id = a["tenant_id"].as_str().unwrap().to_owned();
    let key_a = app.api_key(&a_id).await;
    let key_b = app.api_key(b["tenant_id"].as_str().unwrap()).await;
    let create_key = |key: &str| {
        app.client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(key)
            .json(&json!({ "name": "write" }))
    };

    let missing = app
        .admin_post(&format!("/api/admin/tenants/{a_id}/read-only"))
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = app
        .admin_post(&format!(
            "/api/admin/tenants/{}/read-only",
            uuid::Uuid::new_v4()
        ))
        .json(&json!({ "enabled": true, "reason": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let on = app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{a_id}/read-only"))
                .json(&json!({ "enabled": true, "reason": "moving to a new server" })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(on["tenant"]["read_only_reason"], "moving to a new server");

    app.call(app.get("/api/tenant").bearer_auth(&key_a), StatusCode::OK)
        .await;
    let home = app
        .get("/app/home")
        .bearer_auth(&key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let (status, body) = answer(create_key(&key_a).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "tenant_read_only");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("moving to a new server")
    );
    let settings = app
        .client
        .post(app.url("/app/settings"))
        .bearer_auth(&key_a)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=en")
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A form posted by a browser gets the read-only page, in English here, with the reason.
    let settings = app
        .client
        .post(app.url("/app/settings?lang=en"))
        .bearer_auth(&key_a)
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=en")
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = settings.text().await.unwrap();
    assert!(html.contains("Read-only for now"), "{html}");
    assert!(html.contains("moving to a new server"), "{html}");
    assert!(
        !html.contains("http-equiv"),
        "read-only lasts until lifted: {html}"
    );
    // Others are unaffected.
    app.call(create_key(&key_b), StatusCode::CREATED).await;

    app.call(
        app.admin_post(&format!("/api/admin/tenants/{a_id}/read-only"))
            .json(&json!({ "enabled": false })),
        StatusCode::OK,
    )
    .await;
    app.call(create_key(&key_a), StatusCode::CREATED).await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1::uuid AND action LIKE 'tenant.read_only_%'",
    )
    .bind(&a_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 2);
}
