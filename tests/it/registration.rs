//! Self-service registration in each `tenancy.self_service` mode: `off` refuses everyone, `clerk` needs a
//! verified Clerk session and makes its user the owner, `open` takes anyone; in every mode the plan is the
//! configured default, never the body's. Also what the public progress endpoint shows.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wosool::Role;

use crate::clerk_identity::{Shared, clerk_env, fake_clerk};
use crate::clerk_sessions::{AZP, ISSUER, KID, jwks, v1_token};
use crate::helpers::{self, TestApp, eventually, run_steps};

fn mode(value: &'static str) -> impl FnOnce(&mut Vec<(String, String)>) {
    move |env| env.push(("WOSOOL_TENANCY__SELF_SERVICE".into(), value.into()))
}

fn body(name: &str) -> Value {
    json!({ "organization_name": name, "admin_email": "owner@example.sa", "plan": "enterprise" })
}

async fn tenant_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn registration_off_refuses_everyone_and_operators_still_create_tenants() {
    let app = helpers::spawn_app_with(Role::Api, mode("off")).await;
    let (status, answer) = app.register(body("Nobody's Store")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "self_service_disabled");
    assert!(answer["error"]["request_id"].is_string(), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operators"),
        "{answer}"
    );
    assert_eq!(tenant_count(&app).await, 0);

    // Operators choose freely, plan included.
    let created = app
        .call(
            app.admin_post("/api/admin/tenants")
                .json(&body("Operator Store")),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(created["tenant"]["plan"], "enterprise");
}

#[tokio::test]
async fn registration_open_takes_anyone_on_the_default_plan() {
    let app = helpers::spawn_app_with(Role::Api, |env| {
        mode("open")(env);
        env.push(("WOSOOL_TENANCY__DEFAULT_PLAN".into(), "starter".into()));
    })
    .await;
    let (status, answer) = app.register(body("Open Store")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["plan"], "starter", "{answer}");
    let plan: String = sqlx::query_scalar("SELECT plan FROM tenants WHERE id = $1::uuid")
        .bind(answer["tenant_id"].as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(plan, "starter", "the body asked for enterprise");
    // Not even a plan that does not exist makes a difference.
    let (status, answer) = app
        .register(json!({ "organization_name": "Odd Plan", "admin_email": "o@example.sa", "plan": "platinum" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["plan"], "starter");
}

#[tokio::test]
async fn registration_progress_shows_progress_only() {
    let app = helpers::spawn_app_with(Role::All, mode("open")).await;
    let registered = app.register_ready("Progress Only").await;
    let run_id = registered["provisioning_id"].as_str().unwrap();
    let tenant_id = registered["tenant_id"].as_str().unwrap();
    let progress: Value = app
        .get(&format!("/api/auth/provisioning-status/{run_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = progress
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "message",
            "progress",
            "provisioning_id",
            "status",
            "step",
            "steps"
        ]
    );
    assert_eq!(progress["status"], "ready");
    assert_eq!(progress["progress"], 100);
    for step in progress["steps"].as_array().unwrap() {
        let fields: Vec<&str> = step
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["name", "status"], "{step}");
    }
    let (db_name, db_server): (String, String) =
        sqlx::query_as("SELECT db_name, db_server FROM tenants WHERE id = $1::uuid")
            .bind(tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let text = progress.to_string();
    for secret in [tenant_id, db_name.as_str(), db_server.as_str()] {
        assert!(!text.contains(secret), "{secret} leaks: {text}");
    }
    // Operators still see every detail.
    let steps = run_steps(&app, run_id).await;
    assert!(steps[0]["detail"].as_str().is_some(), "{steps}");
}

/// A Clerk user as Clerk's Backend API returns it, with one primary email.
fn clerk_user(id: &str, email: &str, verified: bool) -> Value {
    json!({
        "object": "user", "id": id, "external_id": null,
        "primary_email_address_id": format!("idn_{id}"),
        "email_addresses": [{
            "id": format!("idn_{id}"), "email_address": email,
            "verification": { "status": if verified { "verified" } else { "unverified" } },
        }],
    })
}

/// An app in `clerk` mode against the fake Clerk (which serves the JWKS the test signs with), with a worker.
async fn clerk_app() -> (TestApp, Shared) {
    let (api_url, fake) = fake_clerk().await;
    fake.lock().unwrap().jwks = jwks(&[KID]);
    let app = helpers::spawn_app_with(Role::All, |env| {
        clerk_env(&api_url)(env);
        mode("clerk")(env);
        env.push(("WOSOOL_CLERK__ISSUER".into(), ISSUER.into()));
        env.push((
            "WOSOOL_CLERK__AUTHORIZED_PARTIES".into(),
            format!("[\"{AZP}\"]"),
        ));
    })
    .await;
    (app, fake)
}

async fn register_as(app: &TestApp, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(app.url("/api/auth/register-organization"))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    helpers::answer(request.send().await.unwrap()).await
}

#[tokio::test]
async fn registration_clerk_needs_a_verified_session() {
    let (app, fake) = clerk_app().await;
    fake.lock()
        .unwrap()
        .users
        .push(clerk_user("user_unverified", "new@owner.example", false));
    for (token, code) in [
        (None, "session_required"),
        // One of our API keys is not a session.
        (
            Some("wsl_0123456789abcdef0123456789abcdef"),
            "session_required",
        ),
        (Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), "token_invalid"),
    ] {
        let (status, answer) = register_as(&app, token, body("Anonymous")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {answer}");
        if code == "session_required" {
            assert_eq!(answer["error"]["code"], code, "{answer}");
        }
    }
    // A session whose user has no verified email cannot own an organization.
    let token = v1_token("user_unverified", None, "");
    let (status, answer) = register_as(&app, Some(&token), body("Unverified")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "email_required");
    // A session of a user Clerk does not know (deleted since the token was issued).
    let token = v1_token("user_gone", None, "");
    let (status, answer) = register_as(&app, Some(&token), body("Gone")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"]["code"], "user_not_found");
    assert_eq!(tenant_count(&app).await, 0);
}

#[tokio::test]
async fn registration_clerk_makes_the_session_user_the_owner() {
    let (app, fake) = clerk_app().await;
    fake.lock()
        .unwrap()
        .users
        .push(clerk_user("user_owner1", "real@owner.example", true));
    let token = v1_token("user_owner1", None, "");
    // The body names another email and a plan: the owner is the session's user, the plan the default.
    let (status, answer) = register_as(
        &app,
        Some(&token),
        json!({ "organization_name": "Clerk Owned", "admin_email": "someone@else.example", "plan": "enterprise" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["plan"], "free");
    let tenant_id = answer["tenant_id"].as_str().unwrap().to_owned();
    // Without any admin_email at all, too.
    let (status, other) = register_as(
        &app,
        Some(&token),
        json!({ "organization_name": "Clerk Owned Too" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");

    let org_id = eventually(
        "the tenant linked to its organization",
        helpers::WAIT,
        || async {
            let (status, org): (String, Option<String>) =
                sqlx::query_as("SELECT status, clerk_org_id FROM tenants WHERE id = $1::uuid")
                    .bind(&tenant_id)
                    .fetch_one(&app.db)
                    .await
                    .ok()?;
            assert_ne!(status, "failed");
            (status == "ready").then_some(org).flatten()
        },
    )
    .await;
    let (owner_email, plan, recorded): (String, String, String) = sqlx::query_as(
        "SELECT t.owner_email, t.plan, o.user_id FROM tenants t \
         JOIN tenant_owner_users o ON o.tenant_id = t.id WHERE t.id = $1::uuid",
    )
    .bind(&tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (owner_email.as_str(), plan.as_str(), recorded.as_str()),
        ("real@owner.example", "free", "user_owner1")
    );
    // Whoever asked is recorded as the actor of the registration.
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE tenant_id = $1::uuid AND action = 'tenant.registered'",
    )
    .bind(&tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(actor, "clerk:user_owner1");
    {
        let fake = fake.lock().unwrap();
        assert_eq!(fake.users.len(), 1, "no Clerk user was created");
        let org = fake.orgs.iter().find(|o| o["id"] == json!(org_id)).unwrap();
        assert_eq!(org["created_by"], "user_owner1");
        assert!(
            fake.memberships
                .iter()
                .any(|(o, u, role)| *o == org_id && u == "user_owner1" && role == "org:admin"),
            "the session's user is the organization's admin: {:?}",
            fake.memberships
        );
    }

    // Deleting the tenant deletes its organization but never the owner's own Clerk account.
    let response = app
        .admin_delete(&format!("/api/admin/tenants/{tenant_id}"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.status());
    eventually("the tenant deleted", helpers::WAIT, || async {
        let details: Value = app
            .admin_get(&format!("/api/admin/tenants/{tenant_id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (details["status"] == "deleted").then_some(())
    })
    .await;
    let fake = fake.lock().unwrap();
    assert!(
        !fake.orgs.iter().any(|o| o["id"] == json!(org_id)),
        "the organization is deleted"
    );
    assert!(
        fake.users.iter().any(|u| u["id"] == "user_owner1"),
        "the owner's own account is kept: {:?}",
        fake.users
    );
}

#[test]
fn registration_modes_are_validated_when_the_config_loads() {
    let load = |pairs: &[(&str, &str)]| {
        wosool::config::Config::load_from(
            None,
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    };
    let defaults = load(&[]).expect("defaults load");
    assert_eq!(
        defaults.tenancy.self_service,
        wosool::config::SelfService::Off,
        "off is the default"
    );
    assert_eq!(defaults.tenancy.default_plan, "free");

    let error = load(&[("WOSOOL_TENANCY__SELF_SERVICE", "clerk")]).unwrap_err();
    assert!(
        error.problems.iter().any(
            |p| p.starts_with("tenancy.self_service:") && p.contains("Clerk is not configured")
        ),
        "{error:?}"
    );
    let clerk = load(&[
        ("WOSOOL_TENANCY__SELF_SERVICE", "clerk"),
        ("WOSOOL_CLERK__SECRET_KEY", "sk_test_x"),
    ]);
    assert!(clerk.is_ok(), "{clerk:?}");
    assert!(load(&[("WOSOOL_TENANCY__SELF_SERVICE", "everyone")]).is_err());
    let error = load(&[("WOSOOL_TENANCY__DEFAULT_PLAN", "platinum")]).unwrap_err();
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.starts_with("tenancy.default_plan:")),
        "{error:?}"
    );
}
