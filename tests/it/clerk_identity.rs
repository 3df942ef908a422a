//! The provisioning `identity` step against a fake Clerk Backend API speaking Clerk's wire format
//! (`../shared/reference/clerk.md` §2.4, §3): users and organizations are created once, linked both ways, and a
//! retry after a crash converges on the same user and organization.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use wosool::Role;
use wosool::provisioning::Step;

use crate::helpers::{self, eventually};

pub(crate) const SECRET: &str = "sk_test_fake_clerk_secret";

#[derive(Default)]
pub(crate) struct Fake {
    /// What `GET /v1/jwks` serves, and how often it was asked.
    pub(crate) jwks: Value,
    pub(crate) jwks_fetches: u32,
    pub(crate) users: Vec<Value>,
    pub(crate) orgs: Vec<Value>,
    memberships: Vec<(String, String, String)>,
    /// Answer the next organization creation with 429 + Retry-After: 1.
    throttle_next_org: bool,
    throttled: u32,
}

pub(crate) type Shared = Arc<Mutex<Fake>>;

async fn jwks(State(fake): State<Shared>) -> Response {
    let mut fake = fake.lock().unwrap();
    fake.jwks_fetches += 1;
    axum::Json(fake.jwks.clone()).into_response()
}

fn clerk_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errors": [{ "code": code, "message": message, "long_message": message }], "clerk_trace_id": "t" })),
    )
        .into_response()
}

/// Clerk's authentication, for every route of the fake: the secret key and a pinned API version.
async fn require_auth(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if authorized(request.headers()) {
        next.run(request).await
    } else {
        clerk_error(
            StatusCode::UNAUTHORIZED,
            "authentication_invalid",
            "bad key",
        )
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET}"))
        && headers.contains_key("clerk-api-version")
}

async fn list_users(
    State(fake): State<Shared>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let emails: Vec<&String> = q
        .iter()
        .filter(|(k, _)| k == "email_address")
        .map(|(_, v)| v)
        .collect();
    let fake = fake.lock().unwrap();
    let found: Vec<Value> = fake
        .users
        .iter()
        .filter(|u| {
            emails
                .iter()
                .any(|e| u["email_addresses"][0]["email_address"] == json!(e))
        })
        .cloned()
        .collect();
    axum::Json(Value::Array(found)).into_response()
}

async fn create_user(State(fake): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut fake = fake.lock().unwrap();
    let email = body["email_address"][0].clone();
    if fake
        .users
        .iter()
        .any(|u| u["email_addresses"][0]["email_address"] == email)
    {
        return clerk_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_identifier_exists",
            "That email address is taken.",
        );
    }
    let user = json!({
        "object": "user", "id": format!("user_{}", fake.users.len() + 1),
        "external_id": body["external_id"],
        "email_addresses": [{ "email_address": email }],
    });
    fake.users.push(user.clone());
    axum::Json(user).into_response()
}

async fn get_org(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    let fake = fake.lock().unwrap();
    match fake
        .orgs
        .iter()
        .find(|o| o["id"] == json!(id) || o["slug"] == json!(id))
    {
        Some(org) => axum::Json(org.clone()).into_response(),
        None => clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "Given organization not found.",
        ),
    }
}

async fn create_org(State(fake): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut fake = fake.lock().unwrap();
    if fake.throttle_next_org {
        fake.throttle_next_org = false;
        fake.throttled += 1;
        let mut response = clerk_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests, retry later",
        );
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        return response;
    }
    if fake.orgs.iter().any(|o| o["slug"] == body["slug"]) {
        return clerk_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_identifier_exists",
            "That slug is taken.",
        );
    }
    let org = json!({
        "object": "organization", "id": format!("org_{}", fake.orgs.len() + 1),
        "name": body["name"], "slug": body["slug"], "created_by": body["created_by"],
        "private_metadata": body["private_metadata"], "public_metadata": {},
    });
    let creator = body["created_by"].as_str().unwrap_or_default().to_owned();
    fake.memberships.push((
        org["id"].as_str().unwrap().to_owned(),
        creator,
        "org:admin".into(),
    ));
    fake.orgs.push(org.clone());
    axum::Json(org).into_response()
}

async fn add_member(
    State(fake): State<Shared>,
    Path(org): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let user = body["user_id"].as_str().unwrap_or_default().to_owned();
    if fake
        .memberships
        .iter()
        .any(|(o, u, _)| *o == org && *u == user)
    {
        return clerk_error(
            StatusCode::BAD_REQUEST,
            "already_a_member_in_organization",
            "already a member",
        );
    }
    fake.memberships.push((
        org,
        user,
        body["role"].as_str().unwrap_or_default().to_owned(),
    ));
    axum::Json(json!({ "object": "organization_membership" })).into_response()
}

async fn merge_metadata(
    State(fake): State<Shared>,
    Path(org): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let Some(found) = fake.orgs.iter_mut().find(|o| o["id"] == json!(org)) else {
        return clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "Given organization not found.",
        );
    };
    if let (Some(target), Some(source)) = (
        found["private_metadata"].as_object_mut(),
        body["private_metadata"].as_object(),
    ) {
        for (k, v) in source {
            target.insert(k.clone(), v.clone());
        }
    }
    axum::Json(found.clone()).into_response()
}

/// Starts the fake Clerk Backend API; returns its base URL (`…/v1`) and its state.
pub(crate) async fn fake_clerk() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let router = Router::new()
        .route("/v1/jwks", get(jwks))
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/organizations", post(create_org))
        .route("/v1/organizations/{id}", get(get_org))
        .route("/v1/organizations/{id}/memberships", post(add_member))
        .route("/v1/organizations/{id}/metadata", patch(merge_metadata))
        .layer(axum::middleware::from_fn(require_auth))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/v1"), fake)
}

pub(crate) fn clerk_env(api_url: &str) -> impl FnOnce(&mut Vec<(String, String)>) + '_ {
    move |env| {
        env.push(("WOSOOL_CLERK__SECRET_KEY".into(), SECRET.into()));
        env.push(("WOSOOL_CLERK__API_URL".into(), api_url.into()));
        env.push(("WOSOOL_JOBS__RETRY_BASE_MS".into(), "10".into()));
    }
}

#[tokio::test]
async fn registering_with_clerk_configured_creates_one_user_and_one_linked_organization() {
    let (api_url, fake) = fake_clerk().await;
    fake.lock().unwrap().throttle_next_org = true;
    let app = helpers::spawn_app_with(Role::All, clerk_env(&api_url)).await;

    let registered = app.register_ready("Clerk Linked Store").await;
    let tenant_id = registered["tenant_id"].as_str().unwrap();

    let (org_id, slug): (Option<String>, String) =
        sqlx::query_as("SELECT clerk_org_id, slug FROM tenants WHERE id = $1::uuid")
            .bind(tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let fake = fake.lock().unwrap();
    assert_eq!(fake.users.len(), 1, "one Clerk user");
    assert_eq!(
        fake.users[0]["email_addresses"][0]["email_address"],
        "owner@example.sa"
    );
    assert_eq!(fake.orgs.len(), 1, "one Clerk organization");
    let org = &fake.orgs[0];
    assert_eq!(
        org_id.as_deref(),
        org["id"].as_str(),
        "the tenant records its organization"
    );
    assert_eq!(org["slug"], json!(slug));
    assert_eq!(
        org["private_metadata"]["wosool_tenant_id"],
        json!(tenant_id),
        "the organization names its tenant"
    );
    assert_eq!(
        org["created_by"], fake.users[0]["id"],
        "the owner created (and administers) it"
    );
    assert_eq!(
        fake.throttled, 1,
        "the 429 was answered and the call retried after Retry-After"
    );
}

#[tokio::test]
async fn a_crash_inside_the_identity_step_converges_on_the_same_user_and_organization() {
    let (api_url, fake) = fake_clerk().await;
    // No worker: the test drives the pipeline.
    let app = helpers::spawn_app_with(Role::Api, clerk_env(&api_url)).await;
    let config = helpers::test_config(&app.database, clerk_env(&api_url));
    let stack = helpers::tenancy_stack(&config).await;
    let (status, body) = app
        .register(json!({ "organization_name": "Crash Store", "admin_email": "crash@example.sa" }))
        .await;
    assert_eq!(status, 202, "{body}");
    let run: uuid::Uuid = body["provisioning_id"].as_str().unwrap().parse().unwrap();
    let tenant_id = body["tenant_id"].as_str().unwrap().to_owned();

    stack
        .provisioner
        .execute(run, Some(Step::Identity))
        .await
        .expect("up to identity");
    assert_eq!(fake.lock().unwrap().orgs.len(), 1);
    // As if the process died after Clerk created the organization but before the step and the link were
    // recorded: the step is still running and the tenant knows no organization.
    sqlx::query(
        "UPDATE provisioning_steps SET status = 'running' WHERE run_id = $1 AND name = 'identity'",
    )
    .bind(run)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("UPDATE tenants SET clerk_org_id = NULL WHERE id = $1::uuid")
        .bind(&tenant_id)
        .execute(&app.db)
        .await
        .unwrap();
    stack
        .directory
        .invalidate(tenant_id.parse().unwrap(), &[])
        .await;

    stack
        .provisioner
        .execute(run, None)
        .await
        .expect("resumes to ready");
    let org_id: Option<String> =
        sqlx::query_scalar("SELECT clerk_org_id FROM tenants WHERE id = $1::uuid")
            .bind(&tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let fake = fake.lock().unwrap();
    assert_eq!(fake.users.len(), 1, "still one user");
    assert_eq!(fake.orgs.len(), 1, "still one organization");
    assert_eq!(
        org_id.as_deref(),
        fake.orgs[0]["id"].as_str(),
        "relinked to the same organization"
    );
    let admins = fake
        .memberships
        .iter()
        .filter(|(_, _, role)| role == "org:admin")
        .count();
    assert_eq!(admins, 1, "the owner is a member once");
}

#[tokio::test]
async fn without_clerk_the_identity_step_is_skipped_and_registration_works() {
    let app = helpers::spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("No Clerk Store").await;
    let url = format!(
        "/api/auth/provisioning-status/{}",
        registered["provisioning_id"].as_str().unwrap()
    );
    let status: Value = eventually("status", Duration::from_secs(5), || async {
        app.get(&url).send().await.ok()?.json().await.ok()
    })
    .await;
    let identity = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "identity")
        .unwrap()
        .clone();
    assert_eq!(identity["status"], "skipped");
    assert_eq!(identity["detail"], "skipped: not configured");
}
