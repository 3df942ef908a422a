//! The tenant admin API (`/api/admin/tenants`, `/api/admin/stats`) and bad input on every tenancy endpoint.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wosool::Role;

use crate::helpers::{ADMIN_KEY, TestApp, spawn_app, spawn_app_with};
use crate::helpers::{answer, get_with_key, tenant_db, tenant_row, wait_for_tenant, with_query};

fn s(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, got {value}"))
}

/// `POST /api/admin/tenants` (no provisioning happens without a worker); returns the created tenant.
async fn admin_create(app: &TestApp, body: Value) -> Value {
    let created = app
        .call(
            app.admin_post("/api/admin/tenants").json(&body),
            StatusCode::ACCEPTED,
        )
        .await;
    created["tenant"].clone()
}

async fn list(app: &TestApp, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    answer(
        app.admin_get(&with_query("/api/admin/tenants", pairs))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn slugs(listing: &Value) -> Vec<String> {
    listing["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| s(&t["slug"]).to_owned())
        .collect()
}

/// The actor an admin key is recorded as: `admin:` and 8 hex digits of its SHA-256.
fn admin_actor() -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(ADMIN_KEY.as_bytes());
    format!("admin:{}", hex::encode(&digest[..4]))
}

async fn error_code(response: reqwest::Response, status: StatusCode) -> Value {
    let (got, body) = answer(response).await;
    assert_eq!(got, status, "{body}");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    assert!(!s(&body["error"]["message"]).is_empty());
    body
}

#[tokio::test]
async fn tenants_admin_list_filters_by_status_plan_search_and_created_range() {
    let app = spawn_app().await;
    let alpha = admin_create(
        &app,
        json!({ "organization_name": "Alpha Dates", "admin_email": "a@alpha.example", "slug": "alpha-dates", "plan": "growth" }),
    )
    .await;
    let beta = admin_create(
        &app,
        json!({ "organization_name": "Beta Perfumes", "admin_email": "owner@beta.example", "slug": "beta-perfumes" }),
    )
    .await;
    let gamma = admin_create(
        &app,
        json!({ "organization_name": "100% Gamma", "admin_email": "g@gamma.example", "slug": "gamma-shop", "plan": "growth" }),
    )
    .await;
    // Beta is on its way out: status `deleting` (no worker runs the deletion).
    app.call(
        app.admin_delete(&format!("/api/admin/tenants/{}", s(&beta["id"]))),
        StatusCode::ACCEPTED,
    )
    .await;

    let (status, all) = list(&app, &[]).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        slugs(&all),
        ["gamma-shop", "beta-perfumes", "alpha-dates"],
        "newest first"
    );
    assert!(all["next_cursor"].is_null());

    let (_, pending) = list(&app, &[("status", "pending")]).await;
    assert_eq!(slugs(&pending), ["gamma-shop", "alpha-dates"]);
    let (_, deleting) = list(&app, &[("status", "deleting")]).await;
    assert_eq!(slugs(&deleting), ["beta-perfumes"]);
    let (_, ready) = list(&app, &[("status", "ready")]).await;
    assert_eq!(slugs(&ready), Vec::<String>::new());

    let (_, growth) = list(&app, &[("plan", "growth")]).await;
    assert_eq!(slugs(&growth), ["gamma-shop", "alpha-dates"]);
    let (_, growth_pending) = list(&app, &[("plan", "growth"), ("status", "pending")]).await;
    assert_eq!(slugs(&growth_pending), ["gamma-shop", "alpha-dates"]);
    let (_, free) = list(&app, &[("plan", "free")]).await;
    assert_eq!(slugs(&free), ["beta-perfumes"]);

    // Search: slug, name or owner email, case-insensitive; LIKE wildcards are literal.
    for (term, expected) in [
        ("PERFUM", vec!["beta-perfumes"]),
        ("alpha.example", vec!["alpha-dates"]),
        ("gamma-sh", vec!["gamma-shop"]),
        ("%", vec!["gamma-shop"]),
        ("_", vec![]),
        ("a", vec!["gamma-shop", "beta-perfumes", "alpha-dates"]),
        ("' OR 1=1 --", vec![]),
    ] {
        let (status, found) = list(&app, &[("search", term)]).await;
        assert_eq!(status, StatusCode::OK, "{term}: {found}");
        assert_eq!(slugs(&found), expected, "search {term:?}");
    }

    // Created range: after is inclusive, before exclusive.
    let created = |t: &Value| s(&t["created_at"]).to_owned();
    let (_, from_beta) = list(&app, &[("created_after", &created(&beta))]).await;
    assert_eq!(slugs(&from_beta), ["gamma-shop", "beta-perfumes"]);
    let (_, before_beta) = list(&app, &[("created_before", &created(&beta))]).await;
    assert_eq!(slugs(&before_beta), ["alpha-dates"]);
    let (_, window) = list(
        &app,
        &[
            ("created_after", &created(&alpha)),
            ("created_before", &created(&gamma)),
        ],
    )
    .await;
    assert_eq!(slugs(&window), ["beta-perfumes", "alpha-dates"]);
    let (_, future) = list(&app, &[("created_after", "2999-01-01T00:00:00Z")]).await;
    assert_eq!(slugs(&future), Vec::<String>::new());
    let (_, offset) = list(&app, &[("created_before", "2999-01-01T03:00:00+03:00")]).await;
    assert_eq!(slugs(&offset).len(), 3);
}

#[tokio::test]
async fn tenants_admin_list_pages_through_every_tenant_once() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let tenant = admin_create(
            &app,
            json!({ "organization_name": format!("Paged {i}"), "admin_email": "p@example.sa", "slug": format!("paged-{i}") }),
        )
        .await;
        created.push(s(&tenant["id"]).to_owned());
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut pairs = vec![("limit", "3".to_owned())];
        if let Some(c) = &cursor {
            pairs.push(("cursor", c.clone()));
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = list(&app, &pairs).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids: Vec<String> = page["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| s(&t["id"]).to_owned())
            .collect();
        pages.push(ids.len());
        seen.extend(ids);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() < 10, "pagination terminates");
    }
    assert_eq!(pages, [3, 3, 1]);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 7, "no duplicates: {seen:?}");
    created.reverse();
    assert_eq!(seen, created, "newest first, across pages");

    // Filters apply across pages too.
    let (_, first) = list(&app, &[("limit", "2"), ("search", "paged-")]).await;
    let next = s(&first["next_cursor"]).to_owned();
    let (_, second) = list(
        &app,
        &[("limit", "2"), ("search", "paged-"), ("cursor", &next)],
    )
    .await;
    assert_eq!(slugs(&first), ["paged-6", "paged-5"]);
    assert_eq!(slugs(&second), ["paged-4", "paged-3"]);
}

#[tokio::test]
async fn tenants_admin_show_has_counts_the_latest_run_and_keys() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("Shown Store").await;
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    let slug = s(&registered["slug"]).to_owned();
    let key = app.api_key(&tenant_id).await;
    let (_, db_name, _) = tenant_row(&app, &tenant_id).await;
    let db = tenant_db(&db_name).await;
    sqlx::query(
        "INSERT INTO customers (salla_id, first_name, raw) VALUES (1, 'Sara', '{}'), (2, 'Omar', '{}')",
    )
    .execute(&db)
    .await
    .unwrap();
    db.close().await;

    for id_or_slug in [tenant_id.as_str(), slug.as_str()] {
        let (status, shown) = answer(
            app.admin_get(&format!("/api/admin/tenants/{id_or_slug}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["id"], tenant_id.as_str());
        assert_eq!(shown["slug"], slug.as_str());
        assert_eq!(shown["status"], "ready");
        assert_eq!(shown["db_name"], db_name.as_str());
        assert_eq!(
            shown["schema_version"],
            wosool::tenancy::servers::latest_tenant_version()
        );
        assert!(shown["database_size_bytes"].as_i64().unwrap() > 0);
        assert_eq!(
            shown["counts"],
            json!({ "customers": 2, "products": 0, "orders": 0, "abandoned_carts": 0 })
        );
        let run = &shown["latest_run"];
        assert_eq!(run["id"], registered["provisioning_id"]);
        assert_eq!(run["status"], "succeeded");
        assert!(run["finished_at"].is_string());
        let steps: Vec<&str> = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "create_database",
                "migrate",
                "seed",
                "identity",
                "crm",
                "finalize"
            ]
        );
        let keys = shown["api_keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(key.starts_with(s(&keys[0]["prefix"])));
        assert!(
            !shown.to_string().contains(&key),
            "the key itself is never shown"
        );
    }

    // Admin key management: create, list, revoke.
    let created = app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{slug}/api-keys"))
                .json(&json!({ "name": "zapier" })),
            StatusCode::CREATED,
        )
        .await;
    let new_key = s(&created["key"]).to_owned();
    assert_eq!(
        get_with_key(&app, "/api/tenant", &new_key).await.0,
        StatusCode::OK
    );
    let (_, listed) = answer(
        app.admin_get(&format!("/api/admin/tenants/{tenant_id}/api-keys"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tenants_admin_stats_count_the_fleet() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let a = app.register_ready("Stats One").await;
    let b = app.register_ready("Stats Two").await;
    app.call(
        app.admin_post(&format!(
            "/api/admin/tenants/{}/suspend",
            s(&b["tenant_id"])
        ))
        .json(&json!({ "reason": "fraud review" })),
        StatusCode::OK,
    )
    .await;
    let key = app.api_key(s(&a["tenant_id"])).await;
    assert_eq!(
        get_with_key(&app, "/api/tenant", &key).await.0,
        StatusCode::OK
    );

    let stats = app
        .call(app.admin_get("/api/admin/stats"), StatusCode::OK)
        .await;
    assert_eq!(
        stats["tenants_by_status"],
        json!({ "pending": 0, "provisioning": 0, "ready": 1, "failed": 0, "suspended": 1, "deleting": 0, "deleted": 0 })
    );
    assert_eq!(stats["tenants_by_plan"], json!({ "free": 2 }));
    assert_eq!(stats["provisioning"]["runs"], 2);
    let p50 = stats["provisioning"]["p50_ms"].as_f64().unwrap();
    let p95 = stats["provisioning"]["p95_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p95 >= p50, "{stats}");
    assert!(p95 < 30_000.0, "{stats}");
    assert!(stats["queue_depth"].as_i64().is_some());
    assert!(
        stats["resident_tenant_pools"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(stats["open_tenant_connections"].as_u64().is_some());
}

#[tokio::test]
async fn tenants_admin_actions_are_audited_with_actor_and_request_id() {
    let app = spawn_app().await;
    let actor = admin_actor();
    let send = |request: reqwest::RequestBuilder, action: &'static str| {
        let request_id = format!("{action}-{}", Uuid::new_v4());
        (request.header("x-request-id", &request_id), request_id)
    };

    let (request, create_id) = send(app.admin_post("/api/admin/tenants"), "create");
    let (status, created) = answer(
        request
            .json(&json!({ "organization_name": "Audited", "admin_email": "a@audit.example", "slug": "audited" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let tenant_id = s(&created["tenant"]["id"]).to_owned();

    let (request, key_id_request) = send(
        app.admin_post(&format!("/api/admin/tenants/{tenant_id}/api-keys")),
        "key",
    );
    let (status, key) = answer(
        request
            .json(&json!({ "name": "audit" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let key_id = s(&key["api_key"]["id"]).to_owned();
    let (request, revoke_id) = send(
        app.admin_delete(&format!("/api/admin/tenants/{tenant_id}/api-keys/{key_id}")),
        "revoke",
    );
    assert_eq!(
        request.send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let (request, delete_id) = send(
        app.admin_delete(&format!("/api/admin/tenants/{tenant_id}")),
        "delete",
    );
    assert_eq!(request.send().await.unwrap().status(), StatusCode::ACCEPTED);

    // Self-service registration is audited too, with its request id.
    let self_service_id = format!("register-{}", Uuid::new_v4());
    let registered = app
        .call(
            app.client
                .post(app.url("/api/auth/register-organization"))
                .header("x-request-id", &self_service_id)
                .json(
                    &json!({ "organization_name": "Self Served", "admin_email": "s@self.example" }),
                ),
            StatusCode::ACCEPTED,
        )
        .await;
    let self_tenant = s(&registered["tenant_id"]).to_owned();

    for (request_id, who, action, tenant) in [
        (&create_id, actor.as_str(), "tenant.registered", &tenant_id),
        (
            &key_id_request,
            actor.as_str(),
            "api_key.created",
            &tenant_id,
        ),
        (&revoke_id, actor.as_str(), "api_key.revoked", &tenant_id),
        (
            &delete_id,
            actor.as_str(),
            "tenant.deletion_requested",
            &tenant_id,
        ),
        (
            &self_service_id,
            "self-service",
            "tenant.registered",
            &self_tenant,
        ),
    ] {
        let rows: Vec<(String, String, Option<Uuid>, Value)> = sqlx::query_as(
            "SELECT actor, action, tenant_id, details FROM audit_log WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        assert_eq!(rows.len(), 1, "{request_id}: {rows:?}");
        let (got_actor, got_action, got_tenant, details) = &rows[0];
        assert_eq!(got_actor, who, "{request_id}");
        assert_eq!(got_action, action, "{request_id}");
        assert_eq!(
            got_tenant.map(|t| t.to_string()).as_deref(),
            Some(tenant.as_str())
        );
        assert!(details.is_object());
    }
    let leaks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE strpos(details::text, $1) > 0")
            .bind(s(&key["key"]))
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(leaks, 0, "no plain key in the audit log");
    assert!(actor.len() == "admin:".len() + 8 && actor[6..].bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn tenants_admin_suspend_and_activate_are_audited() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("Audit Lifecycle").await;
    let tenant_id = s(&registered["tenant_id"]);
    let suspend_id = format!("suspend-{}", Uuid::new_v4());
    let activate_id = format!("activate-{}", Uuid::new_v4());
    let response = app
        .admin_post(&format!("/api/admin/tenants/{tenant_id}/suspend"))
        .header("x-request-id", &suspend_id)
        .json(&json!({ "reason": "chargebacks" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .admin_post(&format!("/api/admin/tenants/{tenant_id}/activate"))
        .header("x-request-id", &activate_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    wait_for_tenant(&app, tenant_id, "ready").await;

    let rows: Vec<(String, String, String, Value)> = sqlx::query_as(
        "SELECT request_id, actor, action, details FROM audit_log \
         WHERE tenant_id = $1::uuid AND request_id IN ($2, $3) ORDER BY id",
    )
    .bind(tenant_id)
    .bind(&suspend_id)
    .bind(&activate_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.as_str()),
        (
            suspend_id.as_str(),
            admin_actor().as_str(),
            "tenant.suspended"
        )
    );
    assert_eq!(rows[0].3["reason"], "chargebacks");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].2.as_str()),
        (activate_id.as_str(), "tenant.activated")
    );
    let system: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1::uuid AND actor = 'system' AND action = 'tenant.ready'",
    )
    .bind(tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(system, 1);
}

// ---------------------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------------------

fn registration(overrides: Value) -> Value {
    let mut body = json!({ "organization_name": "Valid Org", "admin_email": "owner@example.sa" });
    for (k, v) in overrides.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn tenants_registration_refuses_invalid_fields_with_422_naming_them() {
    let app = spawn_app().await;
    for (overrides, field) in [
        (json!({ "slug": "Acme" }), "slug"),
        (json!({ "slug": "admin" }), "slug"),
        (json!({ "slug": "ab" }), "slug"),
        (json!({ "slug": "x'; DROP TABLE tenants; --" }), "slug"),
        (json!({ "slug": "-acme" }), "slug"),
        (json!({ "slug": "a".repeat(49) }), "slug"),
        (
            json!({ "organization_name": "x".repeat(201) }),
            "organization_name",
        ),
        (
            json!({ "organization_name": "ب".repeat(201) }),
            "organization_name",
        ),
        (json!({ "organization_name": "   " }), "organization_name"),
        (json!({ "admin_email": "not-an-email" }), "admin_email"),
        (json!({ "admin_email": "a@b" }), "admin_email"),
        (json!({ "locale": "arabic" }), "locale"),
        (json!({ "currency": "riyal" }), "currency"),
        (
            json!({ "timezone": "Asia/Riyadh; DROP TABLE tenants" }),
            "timezone",
        ),
    ] {
        let (status, body) = app.register(registration(overrides.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{overrides}: {body}"
        );
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
        let fields = body["error"]["details"]["fields"].as_object().unwrap();
        assert!(fields.contains_key(field), "{overrides}: {body}");
        assert_eq!(fields.len(), 1, "only {field} is wrong: {body}");
        assert!(body["error"]["request_id"].is_string());
    }
    // A NUL is refused where the body is parsed (before the field checks), naming the field by its pointer.
    let (status, body) = app
        .register(registration(
            json!({ "organization_name": "bad\u{0000}name" }),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_text", "{body}");
    assert!(
        body["error"]["details"]["fields"]["/organization_name"].is_string(),
        "{body}"
    );
    // Every problem at once.
    let (status, body) = app
        .register(
            json!({ "organization_name": "", "admin_email": "x", "slug": "UP", "plan": "nope" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = body["error"]["details"]["fields"].as_object().unwrap();
    // The plan is not the registrant's to choose: ignored, so not a problem either.
    assert_eq!(fields.len(), 3, "{body}");
    assert!(!fields.contains_key("plan"), "{body}");

    // None of that left a trace.
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 0);

    // The limits themselves are accepted; SQL-ish names are just names.
    for name in [
        "x".repeat(200),
        "ب".repeat(200),
        "x'; DROP TABLE tenants; --".to_owned(),
    ] {
        let (status, body) = app
            .register(registration(json!({ "organization_name": name })))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let stored: String =
            sqlx::query_scalar("SELECT display_name FROM tenants WHERE id = $1::uuid")
                .bind(s(&body["tenant_id"]))
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(stored, name);
    }
    // A duplicate chosen slug is a conflict.
    let first = app
        .register(registration(json!({ "slug": "taken-slug" })))
        .await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    let (status, body) = app
        .register(registration(json!({ "slug": "taken-slug" })))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "slug_taken");
}

#[tokio::test]
async fn tenants_registration_refuses_malformed_bodies() {
    let app = spawn_app().await;
    let post = || app.client.post(app.url("/api/auth/register-organization"));
    let json_body = |body: String| post().header("content-type", "application/json").body(body);

    let body = error_code(
        json_body(r#"{"organization_name": 5, "admin_email": "a@b.example"}"#.into())
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_body");
    let body = error_code(
        json_body(r#"{"admin_email": "a@b.example"}"#.into())
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_body", "missing name");
    let body = error_code(
        json_body(
            r#"{"organization_name": "A", "admin_email": "a@b.example", "status": "ready"}"#.into(),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body["error"]["code"], "invalid_body",
        "unknown fields are refused"
    );
    let body = error_code(
        json_body("[1, 2]".into()).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_body");
    let body = error_code(
        json_body(r#"{"organization_name": "#.into())
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "malformed_json");
    let body = error_code(
        post()
            .body(r#"{"organization_name": "A", "admin_email": "a@b.example"}"#)
            .send()
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    // 2 MB: far over the body limit.
    let huge =
        json!({ "organization_name": "x".repeat(2 * 1024 * 1024), "admin_email": "a@b.example" });
    let body = error_code(
        json_body(huge.to_string()).send().await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(body["error"]["code"], "payload_too_large");

    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 0);
}

#[tokio::test]
async fn tenants_admin_endpoints_refuse_missing_and_wrong_admin_keys() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let key_id = Uuid::now_v7();
    let endpoints: Vec<(reqwest::Method, String)> = vec![
        (reqwest::Method::GET, "/api/admin/tenants".into()),
        (reqwest::Method::POST, "/api/admin/tenants".into()),
        (reqwest::Method::GET, format!("/api/admin/tenants/{id}")),
        (reqwest::Method::DELETE, format!("/api/admin/tenants/{id}")),
        (
            reqwest::Method::POST,
            format!("/api/admin/tenants/{id}/suspend"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/admin/tenants/{id}/activate"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/admin/tenants/{id}/retry"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/admin/tenants/{id}/api-keys"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/admin/tenants/{id}/api-keys"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/admin/tenants/{id}/api-keys/{key_id}"),
        ),
        (reqwest::Method::GET, "/api/admin/stats".into()),
    ];
    for (method, path) in &endpoints {
        for key in [
            None,
            Some("wrong-key"),
            Some(""),
            Some("test-admin-key-012345678"),
        ] {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .json(&json!({ "organization_name": "X Org", "admin_email": "x@y.example", "reason": "r", "name": "n" }));
            if let Some(key) = key {
                request = request.header("x-admin-key", key);
            }
            let body = error_code(request.send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
            assert_eq!(
                body["error"]["code"], "unauthorized",
                "{method} {path} {key:?}"
            );
        }
    }
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 0, "nothing was created without a valid key");
}

#[tokio::test]
async fn tenants_endpoints_refuse_bad_paths_queries_and_bodies() {
    let app = spawn_app().await;
    let tenant = admin_create(
        &app,
        json!({ "organization_name": "Target", "admin_email": "t@example.sa", "slug": "target" }),
    )
    .await;
    let tenant_id = s(&tenant["id"]).to_owned();
    let get = |path: &str| app.get(path).send();
    let admin_get = |path: String| app.admin_get(&path).send();

    // Provisioning status: not a uuid, unknown uuid.
    let body = error_code(
        get("/api/auth/provisioning-status/not-a-uuid")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_path");
    let body = error_code(
        get("/api/auth/provisioning-status/1%27%20OR%20%271%27=%271")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_path");
    let body = error_code(
        get(&format!("/api/auth/provisioning-status/{}", Uuid::now_v7()))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["error"]["code"], "provisioning_not_found");
    // A tenant id is not a provisioning id.
    let body = error_code(
        get(&format!("/api/auth/provisioning-status/{tenant_id}"))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["error"]["code"], "provisioning_not_found");

    // Admin paths: unknown ids and slugs, malformed key ids.
    for missing in [
        Uuid::now_v7().to_string(),
        "no-such-slug".to_owned(),
        "NOT%20A%20SLUG".to_owned(),
        "x%27%3B%20DROP%20TABLE%20tenants%3B%20--".to_owned(),
    ] {
        let body = error_code(
            admin_get(format!("/api/admin/tenants/{missing}"))
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(body["error"]["code"], "tenant_not_found", "{missing}");
        let body = error_code(
            app.admin_post(&format!("/api/admin/tenants/{missing}/suspend"))
                .json(&json!({ "reason": "r" }))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(body["error"]["code"], "tenant_not_found");
    }
    let body = error_code(
        app.admin_delete(&format!(
            "/api/admin/tenants/{tenant_id}/api-keys/not-a-uuid"
        ))
        .send()
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_path");
    let body = error_code(
        app.admin_delete(&format!(
            "/api/admin/tenants/{tenant_id}/api-keys/{}",
            Uuid::now_v7()
        ))
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["error"]["code"], "api_key_not_found");

    // Listing: unknown status, bad cursor, bad dates, bad limits, unknown parameters.
    for pairs in [
        vec![("status", "bogus")],
        vec![("status", "READY")],
        vec![("cursor", "garbage")],
        vec![("cursor", "123.not-a-uuid")],
        vec![("cursor", "x.0190a6f0-0000-7000-8000-000000000000")],
        vec![("created_after", "yesterday")],
        vec![("created_after", "2026-11-20")],
        vec![("created_before", "2026-13-45T99:00:00Z")],
        vec![("limit", "0")],
        vec![("limit", "201")],
        vec![("limit", "ten")],
        vec![("search", &"s".repeat(101))],
        vec![("sort", "name")],
    ] {
        let body = error_code(
            app.admin_get(&with_query("/api/admin/tenants", &pairs))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["error"]["code"], "invalid_query", "{pairs:?}: {body}");
    }

    // Bodies of admin actions.
    let post = |path: String, body: Value| app.admin_post(&path).json(&body).send();
    let body = error_code(
        post(
            format!("/api/admin/tenants/{tenant_id}/suspend"),
            json!({ "reason": "  " }),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["error"]["details"]["fields"]["reason"].is_string());
    let body = error_code(
        post(
            format!("/api/admin/tenants/{tenant_id}/suspend"),
            json!({ "reason": 42 }),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_body");
    let body = error_code(
        post(
            format!("/api/admin/tenants/{tenant_id}/suspend"),
            json!({ "reason": "r".repeat(501) }),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "validation_failed");
    for name in [json!(""), json!("n".repeat(101)), json!("tab\there")] {
        let body = error_code(
            post(
                format!("/api/admin/tenants/{tenant_id}/api-keys"),
                json!({ "name": name }),
            )
            .await
            .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["error"]["code"], "validation_failed", "{name}");
    }
    let body = error_code(
        post(
            format!("/api/admin/tenants/{tenant_id}/api-keys"),
            json!({ "name": ["list"] }),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_body");
    let body = error_code(
        app.admin_post(&with_query("/api/admin/tenants", &[("server", "nowhere")]))
            .json(&json!({ "organization_name": "Placed", "admin_email": "p@example.sa" }))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "unknown_server");
    let body = error_code(
        app.admin_post("/api/admin/tenants")
            .json(&json!({ "organization_name": "x".repeat(201), "admin_email": "p@example.sa", "slug": "Admin" }))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["code"], "validation_failed");
    let body = error_code(
        app.admin_delete(&with_query(
            &format!("/api/admin/tenants/{tenant_id}"),
            &[("keep_data", "maybe")],
        ))
        .send()
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_query");

    // Lifecycle moves that the status does not allow.
    for action in ["activate", "suspend"] {
        let body = error_code(
            post(
                format!("/api/admin/tenants/{tenant_id}/{action}"),
                json!({ "reason": "r" }),
            )
            .await
            .unwrap(),
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(body["error"]["code"], "illegal_transition", "{action}");
    }
    // The placement override: the one configured server by name.
    let placed = app
        .call(
            app.admin_post(&with_query("/api/admin/tenants", &[("server", "main")]))
                .json(&json!({ "organization_name": "Placed", "admin_email": "p@example.sa" })),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(placed["tenant"]["db_server"], "main");

    // Still only the two valid tenants, each unchanged.
    let (status, target) = answer(
        admin_get(format!("/api/admin/tenants/{tenant_id}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(target["status"], "pending");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 2);
}

#[tokio::test]
async fn tenants_tenant_endpoints_refuse_bad_credentials_and_paths() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("Credential Checks").await;
    let tenant_id = s(&registered["tenant_id"]).to_owned();
    let key = app.api_key(&tenant_id).await;
    let unknown_key = format!("wsl_{}", "0".repeat(40));

    for path in ["/api/tenant", "/api/tenant/api-keys"] {
        for (headers, status, code) in [
            (vec![], StatusCode::UNAUTHORIZED, "unauthorized"),
            (
                vec![("authorization", format!("Basic {key}"))],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![("authorization", "Bearer wsl_short".to_owned())],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![("authorization", format!("Bearer {unknown_key}"))],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![("authorization", format!("Bearer {}", key.to_uppercase()))],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![("authorization", "Bearer x' OR '1'='1".to_owned())],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![("x-api-key", key.clone())],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![("x-tenant-id", tenant_id.clone())],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                vec![
                    ("x-tenant-id", "not-a-uuid".to_owned()),
                    ("x-api-key", key.clone()),
                ],
                StatusCode::BAD_REQUEST,
                "invalid_tenant_id",
            ),
            (
                vec![
                    ("x-tenant-id", tenant_id.clone()),
                    ("x-api-key", unknown_key.clone()),
                ],
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
        ] {
            let mut request = app.get(path);
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            let body = error_code(request.send().await.unwrap(), status).await;
            assert_eq!(body["error"]["code"], code, "{path} {headers:?}");
        }
    }

    // Key ids that are not UUIDs, and a bad body for a new key.
    let body = error_code(
        app.client
            .delete(app.url("/api/tenant/api-keys/not-a-uuid"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "invalid_path");
    let body = error_code(
        app.client
            .delete(app.url(&format!("/api/tenant/api-keys/{}", Uuid::now_v7())))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["error"]["code"], "api_key_not_found");
    for (payload, code) in [
        (json!({ "name": "" }), "validation_failed"),
        (json!({ "name": 7 }), "invalid_body"),
        (
            json!({ "name": "ok", "tenant_id": tenant_id }),
            "invalid_body",
        ),
    ] {
        let body = error_code(
            app.client
                .post(app.url("/api/tenant/api-keys"))
                .bearer_auth(&key)
                .json(&payload)
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["error"]["code"], code, "{payload}");
    }
    // The tenant still has exactly the one key.
    let (_, listed) = get_with_key(&app, "/api/tenant/api-keys", &key).await;
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// Loose ends: re-suspension, keys of tenants going away
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_admin_suspending_a_suspended_tenant_with_a_new_reason_updates_it() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("Twice Suspended").await;
    let tenant_id = s(&registered["tenant_id"]);
    let key = app.api_key(tenant_id).await;
    let suspend = |reason: &str| {
        app.admin_post(&format!("/api/admin/tenants/{tenant_id}/suspend"))
            .json(&json!({ "reason": reason }))
    };
    let first = app.call(suspend("chargebacks"), StatusCode::OK).await;
    assert_eq!(first["tenant"]["suspended_reason"], "chargebacks");

    let second = app.call(suspend("fraud review"), StatusCode::OK).await;
    assert_eq!(second["tenant"]["status"], "suspended");
    assert_eq!(second["tenant"]["suspended_reason"], "fraud review");
    // The tenant's callers see the new reason at once (the cached tenant was invalidated).
    let (status, body) = get_with_key(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        s(&body["error"]["message"]).contains("fraud review"),
        "{body}"
    );

    // The same reason again: nothing changes, nothing more is recorded.
    let third = app.call(suspend("fraud review"), StatusCode::OK).await;
    assert_eq!(third["tenant"]["suspended_reason"], "fraud review");
    assert_eq!(third["tenant"]["version"], second["tenant"]["version"]);

    let audit: Vec<(String, Value)> = sqlx::query_as(
        "SELECT action, details FROM audit_log WHERE tenant_id = $1::uuid \
         AND action LIKE 'tenant.suspen%' ORDER BY id",
    )
    .bind(tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0].0, "tenant.suspended");
    assert_eq!(audit[1].0, "tenant.suspension_reason_changed");
    assert_eq!(audit[1].1["reason"], "fraud review");
    assert_eq!(audit[1].1["previous_reason"], "chargebacks");
}

#[tokio::test]
async fn tenants_admin_no_api_key_for_a_tenant_being_deleted_or_deleted() {
    // No worker: a deleted tenant stays `deleting` until the test finishes the deletion by hand.
    let app = spawn_app().await;
    let tenant = admin_create(
        &app,
        json!({ "organization_name": "Going Away", "admin_email": "g@away.example" }),
    )
    .await;
    let tenant_id = s(&tenant["id"]).to_owned();
    let create_key = || {
        app.admin_post(&format!("/api/admin/tenants/{tenant_id}/api-keys"))
            .json(&json!({ "name": "late" }))
            .send()
    };
    // A pending tenant may get keys (they work once it is ready).
    let (status, body) = answer(create_key().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    app.call(
        app.admin_delete(&format!("/api/admin/tenants/{tenant_id}")),
        StatusCode::ACCEPTED,
    )
    .await;
    let body = error_code(create_key().await.unwrap(), StatusCode::CONFLICT).await;
    assert_eq!(body["error"]["code"], "tenant_deleting", "{body}");

    sqlx::query("UPDATE tenants SET status = 'deleted', deleted_at = now() WHERE id = $1::uuid")
        .bind(&tenant_id)
        .execute(&app.db)
        .await
        .unwrap();
    let body = error_code(create_key().await.unwrap(), StatusCode::GONE).await;
    assert_eq!(body["error"]["code"], "tenant_deleted", "{body}");

    // The service layer refuses the same way (the CLI and integrations go through it).
    let config = crate::helpers::test_config(&app.database, |_| {});
    let stack = crate::helpers::tenancy_stack(&config).await;
    let refused = stack
        .lifecycle
        .create_api_key(
            tenant_id.parse().unwrap(),
            "direct",
            wosool::access::Scope::Read,
            &wosool::provisioning::lifecycle::Actor::cli(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(wosool::provisioning::lifecycle::ApiKeyError::Deleted)
        ),
        "{refused:?}"
    );
    let keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenant_api_keys WHERE tenant_id = $1::uuid")
            .bind(&tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(keys, 1, "only the key made while the tenant was pending");
}
