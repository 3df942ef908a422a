//! The provisioning `identity` step against a fake Clerk Backend API speaking Clerk's wire format
//! (`../shared/reference/clerk.md` §2.4, §3; error bodies from Clerk's error catalogue, clerk-docs
//! `data/api_errors.json`): users and organizations are created once, linked both ways, and a retry after a
//! crash converges on the same user and organization, on instances with and without organization slugs and
//! with and without required passwords. The `organization.created` echo of our own organization links it to
//! its tenant in every interleaving with the step's crash and retry.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use wosool::Role;
use wosool::provisioning::Step;

use crate::helpers::{self, TestApp};

pub(crate) const SECRET: &str = "sk_test_fake_clerk_secret";

#[derive(Default)]
pub(crate) struct Fake {
    /// What `GET /v1/jwks` serves, and how often it was asked.
    pub(crate) jwks: Value,
    pub(crate) jwks_fetches: u32,
    pub(crate) users: Vec<Value>,
    pub(crate) orgs: Vec<Value>,
    pub(crate) memberships: Vec<(String, String, String)>,
    /// The instance has organization slugs disabled (the default for apps created since October 2025).
    pub(crate) slugs_disabled: bool,
    /// Password is a required sign-in method: users cannot be created without one.
    pub(crate) password_required: bool,
    /// Email address is a required identifier: users without one (known by `external_id` only) are refused.
    pub(crate) email_required: bool,
    /// Sign-in tokens issued (`POST /v1/sign_in_tokens`), as Clerk returns them.
    pub(crate) sign_in_tokens: Vec<Value>,
    /// Passwords users were created with, by user id (Clerk never returns them; for assertions).
    pub(crate) passwords: std::collections::HashMap<String, String>,
    next_id: u32,
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
    clerk_error_meta(status, code, message, Value::Null)
}

fn clerk_error_meta(status: StatusCode, code: &str, message: &str, meta: Value) -> Response {
    let mut error = json!({ "code": code, "message": message, "long_message": message });
    if !meta.is_null() {
        error["meta"] = meta;
    }
    (
        status,
        axum::Json(json!({ "errors": [error], "clerk_trace_id": "t" })),
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
    let external_ids: Vec<&String> = q
        .iter()
        .filter(|(k, _)| k == "external_id")
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
                || external_ids.iter().any(|e| u["external_id"] == json!(e))
        })
        .cloned()
        .collect();
    axum::Json(Value::Array(found)).into_response()
}

async fn create_user(State(fake): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut fake = fake.lock().unwrap();
    let email = body["email_address"][0].clone();
    if email.is_null() && fake.email_required {
        // Clerk's refusal of a user without a required identifier (clerk-docs data/api_errors.json).
        return clerk_error_meta(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "email_address must be included.",
            json!({ "param_name": "email_address" }),
        );
    }
    if !email.is_null()
        && fake
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
    let password = body["password"].as_str().map(str::to_owned);
    if password.is_none() && (fake.password_required || body["skip_password_requirement"] != true) {
        return clerk_error_meta(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_data_missing",
            "[\"password\"] data doesn't match user requirements set for this instance",
            json!({ "param_names": ["password"] }),
        );
    }
    if let Some(password) = &password
        && !(8..=72).contains(&password.len())
    {
        return clerk_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_password_length_too_short",
            "Passwords must be 8 characters or more.",
        );
    }
    fake.next_id += 1;
    let id = format!("user_{}", fake.next_id);
    let user = json!({
        "object": "user", "id": id,
        "external_id": body["external_id"],
        "first_name": body["first_name"],
        "email_addresses": if email.is_null() { json!([]) } else { json!([{ "email_address": email }]) },
        "password_enabled": password.is_some(),
    });
    if let Some(password) = password {
        fake.passwords.insert(id, password);
    }
    fake.users.push(user.clone());
    axum::Json(user).into_response()
}

/// `GET /v1/users/{id}`.
async fn get_user(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    let fake = fake.lock().unwrap();
    match fake.users.iter().find(|u| u["id"] == json!(id)) {
        Some(user) => axum::Json(user.clone()).into_response(),
        None => clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("No user was found with id {id}"),
        ),
    }
}

/// `DELETE /v1/users/{id}`: the user and its memberships.
async fn delete_user(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    let mut fake = fake.lock().unwrap();
    let Some(index) = fake.users.iter().position(|u| u["id"] == json!(id)) else {
        return clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("No user was found with id {id}"),
        );
    };
    fake.users.remove(index);
    fake.memberships.retain(|(_, user, _)| *user != id);
    axum::Json(json!({ "object": "user", "id": id, "deleted": true })).into_response()
}

/// `GET /v1/users/{id}/organization_memberships`: each with its whole organization.
async fn user_memberships(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    let fake = fake.lock().unwrap();
    let data: Vec<Value> = fake
        .memberships
        .iter()
        .filter(|(_, user, _)| *user == id)
        .filter_map(|(org, _, role)| {
            let organization = fake.orgs.iter().find(|o| o["id"] == json!(org))?;
            Some(json!({ "object": "organization_membership", "role": role, "organization": organization,
                         "public_user_data": { "user_id": id } }))
        })
        .collect();
    axum::Json(json!({ "total_count": data.len(), "data": data })).into_response()
}

/// `GET /v1/organizations/{id}/memberships`.
async fn org_memberships(State(fake): State<Shared>, Path(org): Path<String>) -> Response {
    let fake = fake.lock().unwrap();
    if !fake.orgs.iter().any(|o| o["id"] == json!(org)) {
        return clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "Given organization not found.",
        );
    }
    let data: Vec<Value> = fake
        .memberships
        .iter()
        .filter(|(o, _, _)| *o == org)
        .map(|(_, user, role)| {
            json!({ "object": "organization_membership", "role": role,
                                       "public_user_data": { "user_id": user } })
        })
        .collect();
    axum::Json(json!({ "total_count": data.len(), "data": data })).into_response()
}

/// `DELETE /v1/organizations/{id}`: the organization with its memberships.
async fn delete_org(State(fake): State<Shared>, Path(org): Path<String>) -> Response {
    let mut fake = fake.lock().unwrap();
    let Some(index) = fake.orgs.iter().position(|o| o["id"] == json!(org)) else {
        return clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "Given organization not found.",
        );
    };
    let removed = fake.orgs.remove(index);
    fake.memberships.retain(|(o, _, _)| *o != org);
    axum::Json(
        json!({ "object": "organization", "id": org, "slug": removed["slug"], "deleted": true }),
    )
    .into_response()
}

async fn get_org(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    let fake = fake.lock().unwrap();
    // By id, or by slug where the instance has slugs.
    match fake
        .orgs
        .iter()
        .find(|o| o["id"] == json!(id) || (!o["slug"].is_null() && o["slug"] == json!(id)))
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
    if fake.slugs_disabled && body.get("slug").is_some() {
        return clerk_error_meta(
            StatusCode::FORBIDDEN,
            "organization_slugs_disabled",
            "This instance does not have slugs enabled for organizations.",
            Value::Null,
        );
    }
    if !body["slug"].is_null() && fake.orgs.iter().any(|o| o["slug"] == body["slug"]) {
        return clerk_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_identifier_exists",
            "That slug is taken.",
        );
    }
    fake.next_id += 1;
    let org = json!({
        "object": "organization", "id": format!("org_{}", fake.next_id),
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

/// `POST /v1/sign_in_tokens`: a single-use ticket for an existing user (Clerk's `SignInToken`).
async fn create_sign_in_token(
    State(fake): State<Shared>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let user = body["user_id"].as_str().unwrap_or_default().to_owned();
    if !fake.users.iter().any(|u| u["id"] == json!(user)) {
        return clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("No user was found with id {user}"),
        );
    }
    fake.next_id += 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let token = format!("eyJ.fake-ticket-{}.sig", fake.next_id);
    let issued = json!({
        "object": "sign_in_token", "id": format!("sit_{}", fake.next_id), "status": "pending",
        "user_id": user, "token": token,
        "url": format!("https://accounts.example.dev/sign-in#__clerk_ticket={token}"),
        "created_at": now, "updated_at": now,
        // Not part of Clerk's answer: what the fake was asked for, for assertions.
        "requested_expires_in_seconds": body["expires_in_seconds"],
    });
    fake.sign_in_tokens.push(issued.clone());
    let mut answer = issued;
    answer
        .as_object_mut()
        .unwrap()
        .remove("requested_expires_in_seconds");
    axum::Json(answer).into_response()
}

/// Starts the fake Clerk Backend API; returns its base URL (`…/v1`) and its state.
pub(crate) async fn fake_clerk() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let router = Router::new()
        .route("/v1/jwks", get(jwks))
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}", get(get_user).delete(delete_user))
        .route(
            "/v1/users/{id}/organization_memberships",
            get(user_memberships),
        )
        .route("/v1/sign_in_tokens", post(create_sign_in_token))
        .route("/v1/organizations", post(create_org))
        .route("/v1/organizations/{id}", get(get_org).delete(delete_org))
        .route(
            "/v1/organizations/{id}/memberships",
            post(add_member).get(org_memberships),
        )
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

/// The Clerk instance settings every identity test runs against: (slugs disabled, password required).
const SETTINGS: [(bool, bool); 3] = [(false, false), (true, false), (false, true)];

fn with_settings(fake: &Shared, (slugs_disabled, password_required): (bool, bool)) {
    let mut fake = fake.lock().unwrap();
    fake.slugs_disabled = slugs_disabled;
    fake.password_required = password_required;
}

/// Clerk's env plus an encryption key (generated passwords are sealed with it) and the webhook secret.
fn identity_env(api_url: &str) -> impl FnOnce(&mut Vec<(String, String)>) + '_ {
    move |env| {
        clerk_env(api_url)(env);
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{}\"]", crate::fake_twenty::ENCRYPTION_KEY),
        ));
        env.push((
            "WOSOOL_CLERK__WEBHOOK_SECRETS".into(),
            format!("[\"{}\"]", crate::clerk_webhooks::SECRET),
        ));
    }
}

#[tokio::test]
async fn registering_with_clerk_configured_creates_one_user_and_one_linked_organization() {
    for settings in SETTINGS {
        let (api_url, fake) = fake_clerk().await;
        with_settings(&fake, settings);
        fake.lock().unwrap().throttle_next_org = true;
        let app = helpers::spawn_app_with(Role::All, identity_env(&api_url)).await;

        let registered = app.register_ready("Clerk Linked Store").await;
        let tenant_id = registered["tenant_id"].as_str().unwrap();

        let (org_id, slug): (Option<String>, String) =
            sqlx::query_as("SELECT clerk_org_id, slug FROM tenants WHERE id = $1::uuid")
                .bind(tenant_id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        let sealed: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, password FROM clerk_owner_credentials WHERE tenant_id = $1::uuid",
        )
        .bind(tenant_id)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        let fake = fake.lock().unwrap();
        assert_eq!(fake.users.len(), 1, "one Clerk user {settings:?}");
        let user = &fake.users[0];
        assert_eq!(
            user["email_addresses"][0]["email_address"],
            "owner@example.sa"
        );
        assert_eq!(fake.orgs.len(), 1, "one Clerk organization {settings:?}");
        let org = &fake.orgs[0];
        assert_eq!(
            org_id.as_deref(),
            org["id"].as_str(),
            "the tenant records its organization"
        );
        if settings.0 {
            assert!(org["slug"].is_null(), "no slug where slugs are disabled");
        } else {
            assert_eq!(org["slug"], json!(slug));
        }
        assert_eq!(
            org["private_metadata"]["wosool_tenant_id"],
            json!(tenant_id),
            "the organization names its tenant"
        );
        assert_eq!(
            org["created_by"], user["id"],
            "the owner created (and administers) it"
        );
        assert_eq!(
            fake.throttled, 1,
            "the 429 was answered and the call retried after Retry-After"
        );
        match (settings.1, sealed) {
            (true, Some((key_id, bytes))) => {
                let password = fake.passwords[user["id"].as_str().unwrap()].clone();
                assert!(password.len() >= 32, "a strong generated password");
                assert!(
                    !bytes
                        .windows(password.len())
                        .any(|w| w == password.as_bytes()),
                    "stored sealed, never in clear"
                );
                let keyring = wosool::secrets::Keyring::from_config(
                    &helpers::test_config(&app.database, identity_env(&api_url)).secrets,
                )
                .unwrap();
                let context = format!("clerk:{tenant_id}:owner_password");
                assert_eq!(
                    keyring.open_string(&context, &key_id, &bytes).unwrap(),
                    password
                );
            }
            (false, None) => assert_eq!(user["password_enabled"], false),
            (required, stored) => panic!("password required {required}, stored {stored:?}"),
        }
    }
}

#[tokio::test]
async fn a_crash_inside_the_identity_step_converges_on_the_same_user_and_organization() {
    for settings in SETTINGS {
        let (api_url, fake) = fake_clerk().await;
        with_settings(&fake, settings);
        // No worker: the test drives the pipeline.
        let app = helpers::spawn_app_with(Role::Api, identity_env(&api_url)).await;
        let (run, tenant_id) = crash_after_the_organization_is_created(&app, &api_url, &fake).await;
        let stack =
            helpers::tenancy_stack(&helpers::test_config(&app.database, identity_env(&api_url)))
                .await;
        stack
            .provisioner
            .execute(run, None)
            .await
            .expect("resumes to ready");
        assert_one_linked(&app, &fake, &tenant_id, settings).await;
    }
}

/// Registers a tenant and runs its provisioning through the identity step, then undoes what was recorded
/// after Clerk created the organization (as if the process died there): the step is running and the tenant
/// knows no organization. Returns the run and the tenant id.
async fn crash_after_the_organization_is_created(
    app: &TestApp,
    api_url: &str,
    fake: &Shared,
) -> (uuid::Uuid, String) {
    let stack =
        helpers::tenancy_stack(&helpers::test_config(&app.database, identity_env(api_url))).await;
    let (status, body) = app
        .register(json!({ "organization_name": "Crash Store", "admin_email": "crash@example.sa" }))
        .await;
    assert_eq!(status, 202, "{body}");
    // The queued job is this test's to run.
    sqlx::query("DELETE FROM jobs WHERE kind = 'tenant.provision'")
        .execute(&app.db)
        .await
        .unwrap();
    let run: uuid::Uuid = body["provisioning_id"].as_str().unwrap().parse().unwrap();
    let tenant_id = body["tenant_id"].as_str().unwrap().to_owned();
    stack
        .provisioner
        .execute(run, Some(Step::Identity))
        .await
        .expect("up to identity");
    assert_eq!(fake.lock().unwrap().orgs.len(), 1);
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
        .core
        .directory()
        .invalidate(tenant_id.parse().unwrap(), &[])
        .await;
    (run, tenant_id)
}

async fn assert_one_linked(app: &TestApp, fake: &Shared, tenant_id: &str, settings: (bool, bool)) {
    let tenants: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id::text, status, clerk_org_id FROM tenants")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let fake = fake.lock().unwrap();
    assert_eq!(fake.users.len(), 1, "still one user {settings:?}");
    assert_eq!(fake.orgs.len(), 1, "still one organization {settings:?}");
    assert_eq!(
        tenants,
        [(
            tenant_id.to_owned(),
            "ready".to_owned(),
            fake.orgs[0]["id"].as_str().map(str::to_owned)
        )],
        "one tenant, ready, linked to the one organization {settings:?}"
    );
    let admins = fake
        .memberships
        .iter()
        .filter(|(_, _, role)| role == "org:admin")
        .count();
    assert_eq!(admins, 1, "the owner is a member once");
}

/// Delivers Clerk's `organization.created` for `org` (as Clerk sends it: the organization object, private
/// metadata included) and waits until a worker has handled it.
async fn deliver_echo(app: &TestApp, org: &Value, svix_id: &str) {
    let body = serde_json::to_vec(&json!({
        "data": org, "object": "event", "type": "organization.created",
        "timestamp": 1_716_883_200_000_i64, "instance_id": "ins_test",
    }))
    .unwrap();
    let (status, answer) = crate::clerk_webhooks::deliver(
        app,
        &crate::clerk_webhooks::signed_headers(svix_id, &body),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn the_echo_of_our_own_organization_never_makes_a_second_tenant() {
    for echo_before_retry in [true, false] {
        let (api_url, fake) = fake_clerk().await;
        let database = helpers::fresh_database().await;
        let prefix = helpers::new_key_prefix();
        let app =
            helpers::spawn_replica(&database, &prefix, Role::Api, identity_env(&api_url)).await;
        let (run, tenant_id) = crash_after_the_organization_is_created(&app, &api_url, &fake).await;
        let org = fake.lock().unwrap().orgs[0].clone();
        let stack =
            helpers::tenancy_stack(&helpers::test_config(&database, identity_env(&api_url))).await;
        if !echo_before_retry {
            stack
                .provisioner
                .execute(run, None)
                .await
                .expect("resumes to ready");
        }
        // A worker handles the echo (the only job queued).
        let worker =
            helpers::spawn_replica(&database, &prefix, Role::Worker, identity_env(&api_url)).await;
        deliver_echo(&app, &org, &format!("msg_echo_{echo_before_retry}")).await;
        crate::clerk_webhooks::wait_inbox_status(
            &app.db,
            &format!("msg_echo_{echo_before_retry}"),
            "processed",
        )
        .await;
        worker.shutdown.cancel();
        let _ = worker.server.await;
        if echo_before_retry {
            let linked: Option<String> =
                sqlx::query_scalar("SELECT clerk_org_id FROM tenants WHERE id = $1::uuid")
                    .bind(&tenant_id)
                    .fetch_one(&app.db)
                    .await
                    .unwrap();
            assert_eq!(
                linked.as_deref(),
                org["id"].as_str(),
                "the echo linked the organization"
            );
            stack
                .provisioner
                .execute(run, None)
                .await
                .expect("resumes to ready");
        }
        assert_one_linked(&app, &fake, &tenant_id, (false, false)).await;
    }
}

#[tokio::test]
async fn without_clerk_the_identity_step_is_skipped_and_registration_works() {
    let app = helpers::spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("No Clerk Store").await;
    let steps = helpers::run_steps(&app, registered["provisioning_id"].as_str().unwrap()).await;
    let identity = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "identity")
        .unwrap()
        .clone();
    assert_eq!(identity["status"], "skipped");
    assert_eq!(identity["detail"], "skipped: not configured");
}
