//! Operator impersonation: a single-use link opens the merchant app as the chosen member, for a bounded time,
//! with a banner on every screen; both audit logs record it, and writes made meanwhile name the operator and
//! the member. Unknown member 404, missing reason 422, non-ready tenant 409, a used ticket 401.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use uuid::Uuid;
use wosool::Role;

use crate::helpers::{TestApp, spawn_app_with};
use crate::helpers::{answer, tenant_db, tenant_row};

async fn impersonate(app: &TestApp, tenant: &str, body: Value) -> (StatusCode, Value) {
    answer(
        app.admin_post(&format!("/api/admin/tenants/{tenant}/impersonate"))
            .header("user-agent", "operator-console/2")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_opens_the_app_as_a_member_once_for_a_bounded_time_with_a_banner_and_audits() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("Impersonated Store").await;
    let id = registered["tenant_id"].as_str().unwrap().to_owned();
    let (_, db_name, _) = tenant_row(&app, &id).await;
    let tenant = tenant_db(&db_name).await;
    let (member_id, email, role): (Uuid, String, String) =
        sqlx::query_as("SELECT id, email, role_key FROM members LIMIT 1")
            .fetch_one(&tenant)
            .await
            .unwrap();

    // Refusals.
    let (status, body) = impersonate(&app, &id, json!({ "member_id": member_id })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["details"]["fields"]["reason"].is_string(),
        "{body}"
    );
    let (status, _) = impersonate(&app, &id, json!({ "member_id": member_id, "reason": "" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = impersonate(
        &app,
        &id,
        json!({ "member_id": member_id, "reason": "x".repeat(501) }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = impersonate(
        &app,
        &id,
        json!({ "member_id": member_id, "reason": "support", "ttl_secs": 999_999 }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = impersonate(
        &app,
        &id,
        json!({ "member_id": Uuid::new_v4(), "reason": "support" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "member_not_found");
    let (status, _) = impersonate(
        &app,
        &Uuid::new_v4().to_string(),
        json!({ "member_id": member_id, "reason": "support" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The link, by email.
    let reason = "Ticket #4711: the merchant cannot save settings";
    let (status, link) = impersonate(
        &app,
        &id,
        json!({ "email": email.to_uppercase(), "reason": reason, "ttl_secs": 600 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(link["member"]["id"], member_id.to_string());
    let url = link["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/app/impersonate?ticket=wsi_"), "{url}");

    let client = no_redirects();
    let opened = client
        .get(app.url(&url))
        .header("user-agent", "operator-browser/1")
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    assert_eq!(opened.headers()[LOCATION], "/app/home");
    let cookie = opened.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/app")
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("wosool_impersonation=wss_"), "{pair}");

    // Single use.
    let again = client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);

    // The session: the member's role, the operator and reason, at most the asked lifetime.
    let (session_role, lifetime, by): (String, f64, Option<String>) = sqlx::query_as(
        "SELECT role, extract(epoch FROM expires_at - created_at)::float8, impersonated_by \
           FROM app_sessions WHERE tenant_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(session_role, role);
    assert!((599.0..=601.0).contains(&lifetime), "{lifetime}");
    assert!(by.unwrap().starts_with("admin:"));

    // Every screen shows the banner, in English and Arabic.
    for (path, words) in [
        ("/app/home?lang=en", "You are viewing as"),
        ("/app/customers?lang=en", "You are viewing as"),
        ("/app/settings?lang=ar", "أنت تتصفح بصفة"),
    ] {
        let page = client
            .get(app.url(path))
            .header(COOKIE, &pair)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("data-testid=\"impersonation-banner\""),
            "{path}"
        );
        assert!(html.contains(words), "{path}");
        assert!(html.contains("admin:"), "{path}: operator named");
        assert!(html.contains("Ticket #4711"), "{path}: reason shown");
    }
    // A write while impersonating names both the operator and the member.
    let saved = client
        .post(app.url("/app/settings?lang=en"))
        .header(COOKIE, &pair)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=en")
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor FROM audit_log WHERE action = 'settings.saved' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&tenant)
    .await
    .unwrap();
    assert!(actor.starts_with("admin:"), "{actor}");
    assert!(actor.contains(&format!("as member:{member_id}")), "{actor}");

    // Both audit logs.
    let (tenant_actor, details): (String, Value) = sqlx::query_as(
        "SELECT actor, details FROM audit_log WHERE action = 'impersonation.started'",
    )
    .fetch_one(&tenant)
    .await
    .unwrap();
    assert!(tenant_actor.starts_with("admin:"));
    assert_eq!(details["reason"], reason);
    assert_eq!(details["member_id"], member_id.to_string());
    let global: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT action, actor, user_agent FROM audit_log WHERE tenant_id = $1::uuid \
            AND action LIKE 'impersonation.%' ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let actions: Vec<&str> = global.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        actions,
        ["impersonation.requested", "impersonation.started"]
    );
    assert_eq!(global[0].2.as_deref(), Some("operator-console/2"));
    assert_eq!(global[1].2.as_deref(), Some("operator-browser/1"));

    // A tenant that is not ready cannot be opened.
    app.call(
        app.admin_post(&format!("/api/admin/tenants/{id}/suspend"))
            .json(&json!({ "reason": "impersonation test" })),
        StatusCode::OK,
    )
    .await;
    let (status, body) = impersonate(
        &app,
        &id,
        json!({ "member_id": member_id, "reason": "support" }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Suspension revoked the impersonated session too.
    let page = client
        .get(app.url("/app/home"))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_ne!(page.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impersonation_ticket_expires() {
    let app = spawn_app_with(Role::All, |env| {
        env.push(("WOSOOL_IMPERSONATION__TICKET_TTL_SECS".into(), "1".into()));
    })
    .await;
    let registered = app.register_ready("Expiring Ticket Store").await;
    let id = registered["tenant_id"].as_str().unwrap().to_owned();
    let (_, db_name, _) = tenant_row(&app, &id).await;
    let (member_id,): (Uuid,) = sqlx::query_as("SELECT id FROM members LIMIT 1")
        .fetch_one(&tenant_db(&db_name).await)
        .await
        .unwrap();
    let (status, link) = impersonate(
        &app,
        &id,
        json!({ "member_id": member_id, "reason": "expiry test" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    // Age the ticket instead of sleeping.
    sqlx::query("UPDATE impersonation_tickets SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let opened = no_redirects()
        .get(app.url(link["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::UNAUTHORIZED);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM app_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "no session minted");
}
