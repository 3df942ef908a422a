//! The embedded app's sessions end to end: stores installed through signed Salla webhooks (fake Salla, fake
//! Clerk, worker), "Open App" simulated by page tokens the fake Salla's introspection vouches for, then
//! `POST /api/embedded/session`, the `wss_` session on every tenant route and the CRM proxy, its lifetimes,
//! its revocation on uninstall, suspension and deletion (also on a second replica), the standalone sign-in
//! ticket, and the page token never reaching a log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wosool::Role;

use crate::clerk_identity::{Shared as ClerkShared, clerk_env, fake_clerk};
use crate::fake_salla::{ENCRYPTION_KEY, FakeSallaServer, FakeStore, Fault, installer_user_id};

use crate::helpers::{
    TestApp, answer, database_url, eventually, new_key_prefix, spawn_app_with, spawn_replica,
};
use crate::salla_install::{WEBHOOK_SECRET, authorize, deliver, for_merchant};

const STORE_A: u64 = 2_900_000_101;
const STORE_B: u64 = 2_900_000_202;
const STORE_C: u64 = 2_900_000_303;
const WAIT: Duration = Duration::from_secs(60);
const PUBLISHABLE_KEY: &str = "pk_test_ZmFrZS5jbGVyay5hY2NvdW50cy5kZXYk";

/// Installed stores (each tenant ready) on one app with a worker, the fakes, and the Redis prefix (for
/// replicas).
pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) salla: FakeSallaServer,
    clerk: ClerkShared,
    tenants: HashMap<u64, Uuid>,
    prefix: String,
}

impl World {
    pub(crate) fn tenant(&self, merchant: u64) -> Uuid {
        self.tenants[&merchant]
    }

    /// A page token Salla would put in the embedded page's URL for `user` of `merchant`.
    pub(crate) fn page_token(&self, merchant: u64, user: u64, lifetime: time::Duration) -> String {
        let token = format!("salla-page-token-{}", Uuid::new_v4().simple());
        self.salla
            .lock()
            .add_embedded_token(&token, merchant, user, lifetime);
        token
    }

    /// A session for `user` of `merchant` (the installer is the owner).
    async fn session(&self, merchant: u64, user: u64) -> Value {
        let token = self.page_token(merchant, user, time::Duration::minutes(5));
        let (status, body) = open(&self.app, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn owner_session(&self, merchant: u64) -> String {
        let body = self.session(merchant, installer_user_id(merchant)).await;
        body["session"].as_str().unwrap().to_owned()
    }
}

/// Installs `stores` on a new app (plus `adjust`) and waits until each tenant is ready.
pub(crate) async fn world(
    stores: Vec<FakeStore>,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> World {
    let salla = FakeSallaServer::start().await;
    let issued: Vec<_> = stores
        .into_iter()
        .map(|store| (store.merchant_id, salla.lock().add_store(store)))
        .collect();
    let (clerk_url, clerk) = fake_clerk().await;
    let prefix = new_key_prefix();
    let (salla_env, embedded_env, key_prefix) = (salla.env(), salla.embedded_env(), prefix.clone());
    let app = spawn_app_with(Role::All, |env| {
        clerk_env(&clerk_url)(env);
        salla_env(env);
        embedded_env(env);
        env.push((
            "WOSOOL_SALLA__WEBHOOK_SECRETS".into(),
            format!("[\"{WEBHOOK_SECRET}\"]"),
        ));
        env.push(("WOSOOL_JOBS__RETRY_MAX_SECS".into(), "1".into()));
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), key_prefix));
        env.push((
            "WOSOOL_CLERK__PUBLISHABLE_KEY".into(),
            PUBLISHABLE_KEY.into(),
        ));
        adjust(env);
    })
    .await;
    let mut tenants = HashMap::new();
    for (merchant, tokens) in issued {
        let (status, body) = deliver(&app, &authorize(merchant, &tokens)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = eventually(&format!("store {merchant} ready"), WAIT, || async {
            sqlx::query_scalar::<_, Uuid>(
                "SELECT id FROM tenants WHERE salla_merchant_id = $1 AND status = 'ready'",
            )
            .bind(merchant as i64)
            .fetch_optional(&app.db)
            .await
            .unwrap()
        })
        .await;
        tenants.insert(merchant, id);
    }
    World {
        app,
        salla,
        clerk,
        tenants,
        prefix,
    }
}

async fn open(app: &TestApp, token: &str) -> (StatusCode, Value) {
    answer(
        app.client
            .post(app.url("/api/embedded/session"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get_as(app: &TestApp, path: &str, session: &str) -> (StatusCode, Value) {
    answer(app.get(path).bearer_auth(session).send().await.unwrap()).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn tenant_pool(world: &World, merchant: u64) -> sqlx::PgPool {
    let db_name: String = sqlx::query_scalar("SELECT db_name FROM tenants WHERE id = $1")
        .bind(world.tenant(merchant))
        .fetch_one(&world.app.db)
        .await
        .unwrap();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&database_url(&db_name))
        .await
        .unwrap()
}

#[tokio::test]
async fn owner_and_staff_open_the_app_with_members_clerk_users_and_standalone_tickets() {
    let world = world(
        vec![FakeStore::new(STORE_A), FakeStore::new(STORE_B)],
        |_| {},
    )
    .await;

    // The installer was recorded at install, and operators see it.
    let (installer, name, email): (Option<i64>, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT installer_user_id, installer_name, installer_email FROM salla_stores WHERE merchant_id = $1",
    )
    .bind(STORE_A as i64)
    .fetch_one(&world.app.db)
    .await
    .unwrap();
    assert_eq!(installer, Some(installer_user_id(STORE_A) as i64));
    assert_eq!(name.as_deref(), Some("Test User"));
    assert_eq!(email.as_deref(), Some("owner-2900000101@store.example"));
    let store = world
        .app
        .call(
            world
                .app
                .admin_get(&format!("/api/admin/salla/stores/{STORE_A}")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        store["store"]["installer_user_id"],
        json!(installer_user_id(STORE_A))
    );
    assert_eq!(store["store"]["installer_name"], "Test User");

    // The owner.
    let owner = world.session(STORE_A, installer_user_id(STORE_A)).await;
    let session = owner["session"].as_str().unwrap();
    assert!(
        session.starts_with("wss_") && session.len() == 47,
        "{owner}"
    );
    assert_eq!(owner["tenant"]["id"], json!(world.tenant(STORE_A)));
    assert_eq!(
        owner["user"],
        json!({ "kind": "owner", "name": "Test User", "role": "owner" })
    );
    assert_eq!(owner["idle_timeout_secs"], 3600);
    let expires = time::OffsetDateTime::parse(
        owner["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_8h = time::OffsetDateTime::now_utc() + time::Duration::hours(8);
    assert!(
        (expires - in_8h).abs() < time::Duration::minutes(1),
        "{owner}"
    );
    // Salla was asked as the SDK asks it, with our app id (checked by the fake).
    let asked = world.salla.lock().introspections.last().cloned().unwrap();
    assert_eq!(asked["env"], "prod");
    assert_eq!(asked["iss"], "merchant-dashboard");
    assert_eq!(asked["subject"], "embedded-page");
    // Only the hash is stored, with the person and the Salla ids.
    let (person, kind, role, user_id, stored): (String, String, String, i64, i64) = sqlx::query_as(
        "SELECT person, kind, role, salla_user_id, (SELECT count(*) FROM app_sessions WHERE token_hash::text LIKE '%' || $2 || '%') \
           FROM app_sessions WHERE tenant_id = $1",
    )
    .bind(world.tenant(STORE_A))
    .bind(&session[4..])
    .fetch_one(&world.app.db)
    .await
    .unwrap();
    assert!(
        person.starts_with("user_"),
        "the owner's Clerk user: {person}"
    );
    assert_eq!((kind.as_str(), role.as_str()), ("owner", "owner"));
    assert_eq!(user_id, installer_user_id(STORE_A) as i64);
    assert_eq!(stored, 0, "the session itself is never stored");
    // It works like an API key.
    let (status, tenant) = get_as(&world.app, "/api/tenant", session).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["id"], json!(world.tenant(STORE_A)));

    // A staff member: recorded once with the member role, then given a Clerk user in the organization.
    let staff = world.session(STORE_A, 555).await;
    assert_eq!(staff["user"]["kind"], "staff");
    assert_eq!(staff["user"]["role"], "member");
    world.session(STORE_A, 555).await;
    let pool = tenant_pool(&world, STORE_A).await;
    let external = format!("salla:{STORE_A}:555");
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT role_key, email FROM members WHERE external_id = $1")
            .bind(&external)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![("member".to_owned(), None)], "one member row");
    let clerk_user: String = eventually("the staff member linked to Clerk", WAIT, || async {
        sqlx::query_as::<_, (Option<String>, Option<String>)>(
            "SELECT clerk_link, clerk_user_id FROM members WHERE external_id = $1",
        )
        .bind(&external)
        .fetch_one(&pool)
        .await
        .ok()
        .filter(|(link, _)| link.as_deref() == Some("linked"))
        .and_then(|(_, user)| user)
    })
    .await;
    {
        let clerk = world.clerk.lock().unwrap();
        let user = clerk
            .users
            .iter()
            .find(|u| u["id"] == json!(clerk_user))
            .unwrap();
        assert_eq!(user["external_id"], json!(external));
        assert_eq!(user["email_addresses"], json!([]));
        assert!(
            clerk
                .memberships
                .iter()
                .any(|(_, user, role)| *user == clerk_user && role == "org:member"),
            "{:?}",
            clerk.memberships
        );
    }
    let (status, role) = get_as(
        &world.app,
        "/api/tenant/api-keys",
        staff["session"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a member is not an admin: {role}"
    );

    // Standalone: a 60 s sign-in ticket for the person's Clerk user.
    for (body, expected_user) in [(&owner, person.clone()), (&staff, clerk_user.clone())] {
        let answer = world
            .app
            .call(
                world
                    .app
                    .client
                    .post(world.app.url("/api/embedded/standalone"))
                    .bearer_auth(body["session"].as_str().unwrap()),
                StatusCode::OK,
            )
            .await;
        let issued = world
            .clerk
            .lock()
            .unwrap()
            .sign_in_tokens
            .last()
            .cloned()
            .unwrap();
        assert_eq!(issued["user_id"], json!(expected_user));
        assert_eq!(issued["requested_expires_in_seconds"], 60);
        assert_eq!(
            answer["url"],
            json!(format!(
                "/sso?__clerk_ticket={}",
                issued["token"].as_str().unwrap()
            ))
        );
    }
    // API keys have no person to sign in.
    let key = world.app.api_key(&world.tenant(STORE_A).to_string()).await;
    let (status, body) = answer(
        world
            .app
            .client
            .post(world.app.url("/api/embedded/standalone"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "app_session_required")
    );

    // An instance that requires an email refuses staff users: recorded, and the member stays Wosool-only.
    world.clerk.lock().unwrap().email_required = true;
    let refused = world.session(STORE_B, 777).await;
    let pool_b = tenant_pool(&world, STORE_B).await;
    let error: String = eventually("Clerk's refusal recorded", WAIT, || async {
        sqlx::query_as::<_, (Option<String>, Option<String>)>(
            "SELECT clerk_link, clerk_link_error FROM members WHERE external_id = $1",
        )
        .bind(format!("salla:{STORE_B}:777"))
        .fetch_one(&pool_b)
        .await
        .ok()
        .filter(|(link, _)| link.as_deref() == Some("refused"))
        .and_then(|(_, error)| error)
    })
    .await;
    assert!(error.contains("form_param_missing"), "{error}");
    let (status, body) = answer(
        world
            .app
            .client
            .post(world.app.url("/api/embedded/standalone"))
            .bearer_auth(refused["session"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "no_clerk_user"),
        "{body}"
    );
    let (status, _) = get_as(
        &world.app,
        "/api/customers",
        refused["session"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a Wosool-only member still uses the app"
    );
}

#[tokio::test]
async fn salla_refusals_unknown_stores_and_outages_have_their_own_answers() {
    let world = world(vec![FakeStore::new(STORE_A)], |env| {
        env.push(("WOSOOL_EMBEDDED__MAX_RETRIES".into(), "2".into()));
    })
    .await;
    let app = &world.app;

    let unknown = world.page_token(STORE_C, 1, time::Duration::minutes(5));
    let (status, body) = open(app, &unknown).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "store_not_installed"),
        "{body}"
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tenants WHERE salla_merchant_id = $1")
            .bind(STORE_C as i64)
            .fetch_one(&app.db)
            .await
            .unwrap(),
        0,
        "never a new tenant"
    );

    let expired = world.page_token(
        STORE_A,
        installer_user_id(STORE_A),
        time::Duration::seconds(-30),
    );
    let (status, body) = open(app, &expired).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_expired"),
        "{body}"
    );

    let (status, body) = open(app, "not-a-token-salla-knows").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{body}"
    );
    let (status, body) = open(app, "").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{body}"
    );
    let (status, _) = answer(
        app.client
            .post(app.url("/api/embedded/session"))
            .json(&json!({ "nope": 1 }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status.is_client_error(), "bad input is a 4xx: {status}");

    // Salla says the token expired.
    world.salla.lock().fail(
        "/exchange-authority",
        1,
        Fault::Reply {
            status: 401,
            body: json!({ "status": 401, "success": false, "error": { "message": "Token has expired", "code": 0 } }),
        },
    );
    let token = world.page_token(
        STORE_A,
        installer_user_id(STORE_A),
        time::Duration::minutes(5),
    );
    let (status, body) = open(app, &token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_expired"),
        "{body}"
    );

    // 5xx, then 429 with Retry-After, then success: retried.
    let before = world.salla.lock().calls("POST /introspect");
    world
        .salla
        .lock()
        .fail("/exchange-authority", 1, Fault::status(502));
    world.salla.lock().fail(
        "/exchange-authority",
        1,
        Fault::TooManyRequests {
            retry_after: Some(1),
        },
    );
    let (status, body) = open(app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(world.salla.lock().calls("POST /introspect") - before, 3);

    // Down for longer than the retries: 503, after 1 + 2 attempts.
    let before = world.salla.lock().calls("POST /introspect");
    world
        .salla
        .lock()
        .fail("/exchange-authority", 5, Fault::status(503));
    let (status, body) = open(app, &token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "salla_unavailable"),
        "{body}"
    );
    assert_eq!(world.salla.lock().calls("POST /introspect") - before, 3);
    world
        .salla
        .lock()
        .fail("/exchange-authority", 0, Fault::status(503));

    // Our app id is not the one Salla knows: 403 wrong_app (a second app on the same deployment).
    let (salla_env, embedded_env, database) = (
        world.salla.env(),
        world.salla.embedded_env(),
        world.app.database.clone(),
    );
    let wrong = spawn_replica(&database, &world.prefix, Role::Api, |env| {
        salla_env(env);
        embedded_env(env);
        env.push(("WOSOOL_EMBEDDED__APP_ID".into(), "999".into()));
    })
    .await;
    let token = world.page_token(
        STORE_A,
        installer_user_id(STORE_A),
        time::Duration::minutes(5),
    );
    let (status, body) = open(&wrong, &token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "wrong_app"),
        "{body}"
    );

    // Without an app id the embedded app is off.
    let off = spawn_replica(&database, &world.prefix, Role::Api, |_| {}).await;
    let (status, body) = open(&off, &token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "embedded_disabled"),
        "{body}"
    );
    let session = world.owner_session(STORE_A).await;
    let (status, body) = answer(
        off.client
            .post(off.url("/api/embedded/standalone"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "standalone_disabled"),
        "{body}"
    );

    // A session nobody minted.
    let (status, body) = get_as(app, "/api/tenant", &format!("wss_{}", "A".repeat(43))).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_expired"),
        "{body}"
    );
    let (status, body) = get_as(app, "/api/tenant", "wss_short").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_expired"),
        "{body}"
    );
}

#[tokio::test]
async fn a_store_whose_tenant_is_still_provisioning_gets_its_progress() {
    let salla = FakeSallaServer::start().await;
    let (salla_env, embedded_env) = (salla.env(), salla.embedded_env());
    // No worker: a registered tenant stays in provisioning.
    let app = spawn_app_with(Role::Api, |env| {
        salla_env(env);
        embedded_env(env);
    })
    .await;
    let stack =
        crate::helpers::tenancy_stack(&crate::helpers::test_config(&app.database, |_| {})).await;
    let mut registration = wosool::provisioning::RegistrationRequest {
        organization_name: "Still Setting Up".into(),
        admin_email: "owner@example.sa".into(),
        ..Default::default()
    }
    .validate(stack.provisioner.config())
    .unwrap();
    registration.tenant.salla_merchant_id = Some(wosool::tenancy::MerchantId::new(STORE_C as i64));
    let registered = stack
        .provisioner
        .register(registration, None, "test", None)
        .await
        .unwrap();

    let token = format!("salla-page-token-{}", Uuid::new_v4().simple());
    salla
        .lock()
        .add_embedded_token(&token, STORE_C, 1, time::Duration::minutes(5));
    let (status, body) = open(&app, &token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "tenant_not_ready"),
        "{body}"
    );
    let progress = &body["error"]["details"]["provisioning"];
    assert_eq!(progress["progress"], 0, "{body}");
    assert_eq!(progress["step"], "create_database", "{body}");
    assert_eq!(
        progress["provisioning_id"],
        json!(registered.run_id),
        "{body}"
    );
    assert_eq!(body["provisioning"], *progress);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM app_sessions")
            .fetch_one(&app.db)
            .await
            .unwrap(),
        0
    );
}

/// A fake Twenty that echoes the Authorization header it receives.
async fn echo_twenty() -> String {
    let router = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        axum::Json(json!({
            "authorization": headers.get("authorization").and_then(|v| v.to_str().ok()),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// Gives `tenant` a ready CRM workspace whose Twenty key is `key` (sealed as provisioning would).
async fn crm_workspace(world: &World, tenant: Uuid, key: &str) {
    let keyring = wosool::secrets::Keyring::from_config(&wosool::config::SecretsConfig {
        encryption_keys: vec![wosool::config::Secret::new(ENCRYPTION_KEY)],
    })
    .unwrap();
    let id: wosool::tenancy::TenantId = tenant.to_string().parse().unwrap();
    let sealed = keyring
        .seal(&wosool::crm::workspace::api_key_context(id), key.as_bytes())
        .unwrap();
    sqlx::query(
        "INSERT INTO crm_instances (key, base_url, max_workspaces) VALUES ('default', '', 5) ON CONFLICT DO NOTHING",
    )
    .execute(&world.app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO crm_workspaces (tenant_id, owner_email, key_id, api_key_token, workspace_id, step, instance) \
         VALUES ($1, 'owner@example.sa', $2, $3, $4, 'ready', 'default')",
    )
    .bind(tenant)
    .bind(&sealed.key_id)
    .bind(&sealed.bytes)
    .bind(format!("workspace-{tenant}"))
    .execute(&world.app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_session_of_one_store_never_reads_another_stores_data() {
    let world = world(
        vec![
            FakeStore::new(STORE_A)
                .with_orders(2)
                .with_customers(2)
                .with_products(1)
                .with_abandoned_carts(1),
            FakeStore::new(STORE_B)
                .with_orders(3)
                .with_customers(3)
                .with_products(2)
                .with_abandoned_carts(2),
        ],
        |_| {},
    )
    .await;
    let a = world.owner_session(STORE_A).await;
    let b = world.owner_session(STORE_B).await;
    let a_staff = world.session(STORE_A, 4242).await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_key = world.app.api_key(&world.tenant(STORE_A).to_string()).await;
    for (session, orders) in [(&a, 2), (&b, 3)] {
        eventually("the store's history imported", WAIT, || async {
            let (_, body) = get_as(&world.app, "/api/orders", session).await;
            (body["data"].as_array().map(Vec::len) == Some(orders)).then_some(())
        })
        .await;
    }
    let (_, b_orders) = get_as(&world.app, "/api/orders", &b).await;
    let b_order = b_orders["data"][0]["id"].clone();

    let b_tenant = world.tenant(STORE_B).to_string();
    let routes = [
        "/api/tenant",
        "/api/tenant/api-keys",
        "/api/customers",
        "/api/products",
        "/api/orders",
        "/api/carts/abandoned",
        "/api/stats",
        "/api/sync",
        "/api/me",
    ];
    for session in [&a, &a_staff] {
        for route in routes {
            let (status, body) = get_as(&world.app, route, session).await;
            let (key_status, by_key) = get_as(&world.app, route, &a_key).await;
            let text = body.to_string();
            assert!(!text.contains(&b_tenant), "{route}: {text}");
            if status.is_success() && key_status.is_success() && route != "/api/sync" {
                if route == "/api/tenant/api-keys"
                    || route == "/api/stats"
                    || route == "/api/tenant"
                {
                    assert_eq!(
                        body, by_key,
                        "{route}: the session sees what A's API key sees"
                    );
                } else {
                    assert_eq!(body["data"], by_key["data"], "{route}");
                }
            }
            // B's tenant named in X-Tenant-Id changes nothing: refused.
            let (status, body) = answer(
                world
                    .app
                    .get(route)
                    .bearer_auth(session)
                    .header("x-tenant-id", &b_tenant)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "tenant_mismatch"),
                "{route}"
            );
        }
        let (status, body) = get_as(&world.app, &format!("/api/orders/{b_order}"), session).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "order_not_found"),
            "{body}"
        );
    }
    let (status, body) = get_as(&world.app, "/api/me", &a).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The CRM proxy (served by a replica configured with Twenty) injects A's Twenty key, never B's.
    crm_workspace(&world, world.tenant(STORE_A), "twenty-key-of-a").await;
    crm_workspace(&world, world.tenant(STORE_B), "twenty-key-of-b").await;
    let twenty = echo_twenty().await;
    let proxy = spawn_replica(&world.app.database, &world.prefix, Role::Api, |env| {
        env.push(("WOSOOL_CRM__BASE_URL".into(), twenty));
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ));
    })
    .await;
    for session in [&a, &a_staff] {
        let (status, body) = get_as(&proxy, "/crm/rest/people", session).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["authorization"], "Bearer twenty-key-of-a");
        let (status, body) = answer(
            proxy
                .client
                .post(proxy.url("/crm/graphql"))
                .bearer_auth(session)
                .header("x-tenant-id", &b_tenant)
                .json(&json!({ "query": "{ people { edges { node { id } } } }" }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "tenant_mismatch"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn sessions_end_after_their_idle_and_absolute_lifetimes() {
    let world = world(vec![FakeStore::new(STORE_A)], |env| {
        env.push(("WOSOOL_EMBEDDED__SESSION_IDLE_SECS".into(), "2".into()));
        env.push(("WOSOOL_EMBEDDED__SESSION_ABSOLUTE_SECS".into(), "4".into()));
    })
    .await;
    let app = &world.app;

    // Idle: unused for longer than 2 s.
    let idle = world.owner_session(STORE_A).await;
    let (status, _) = get_as(app, "/api/tenant", &idle).await;
    assert_eq!(status, StatusCode::OK);
    let hash: Vec<u8> = {
        use sha2::Digest;
        sha2::Sha256::digest(idle.as_bytes()).to_vec()
    };
    eventually("the session idle for 2 s", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_seen_at < now() - interval '2.2 seconds' FROM app_sessions WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_one(&app.db)
        .await
        .unwrap()
        .then_some(())
    })
    .await;
    let (status, body) = get_as(app, "/api/tenant", &idle).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_expired"),
        "{body}"
    );

    // Absolute: used all the time, still over after 4 s.
    let busy = world.owner_session(STORE_A).await;
    let started = Instant::now();
    eventually(
        "the session's absolute end",
        Duration::from_secs(15),
        || async {
            // Polled every 20 ms: the session is never idle, so only its absolute lifetime can end it.
            let (status, body) = get_as(app, "/api/tenant", &busy).await;
            match status {
                StatusCode::OK => None,
                _ => {
                    assert_eq!(
                        (status, code(&body)),
                        (StatusCode::UNAUTHORIZED, "session_expired")
                    );
                    Some(())
                }
            }
        },
    )
    .await;
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_millis(3500),
        "ended after {lasted:?}"
    );
}

#[tokio::test]
async fn uninstall_suspension_and_deletion_revoke_sessions_on_every_replica() {
    let world = world(
        vec![FakeStore::new(STORE_A), FakeStore::new(STORE_B)],
        |_| {},
    )
    .await;
    let app = &world.app;
    let replica = spawn_replica(&app.database, &world.prefix, Role::Api, |_| {}).await;

    // Uninstall (Salla webhook): suspended, and every session of the store ends, here and on the replica.
    let owner = world.owner_session(STORE_A).await;
    let staff = world.session(STORE_A, 31).await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = world.owner_session(STORE_B).await;
    for session in [&owner, &staff, &other] {
        for server in [app, &replica] {
            let (status, body) = get_as(server, "/api/tenant", session).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let (status, body) = deliver(app, &for_merchant("app.uninstalled", STORE_A)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the uninstall processed", WAIT, || async {
        let (status, _) = get_as(app, "/api/tenant", &owner).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    for session in [&owner, &staff] {
        for server in [app, &replica] {
            let (status, body) = get_as(server, "/api/tenant", session).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, "session_expired"),
                "{body}"
            );
        }
    }
    let (status, _) = get_as(&replica, "/api/tenant", &other).await;
    assert_eq!(status, StatusCode::OK, "another store's sessions live on");
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT revoked_reason FROM app_sessions WHERE tenant_id = $1")
            .bind(world.tenant(STORE_A))
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(reasons, vec!["suspended".to_owned()]);
    // A suspended store mints no session.
    let token = world.page_token(
        STORE_A,
        installer_user_id(STORE_A),
        time::Duration::minutes(5),
    );
    let (status, body) = open(app, &token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "tenant_suspended"),
        "{body}"
    );

    // Suspension by an operator.
    let b = world.tenant(STORE_B);
    world
        .app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{b}/suspend"))
                .json(&json!({ "reason": "unpaid" })),
            StatusCode::OK,
        )
        .await;
    for server in [&replica, app] {
        let (status, body) = get_as(server, "/api/tenant", &other).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "session_expired"),
            "{body}"
        );
    }

    // Deletion.
    world
        .app
        .call(
            app.admin_post(&format!("/api/admin/tenants/{b}/activate")),
            StatusCode::OK,
        )
        .await;
    let again = world.owner_session(STORE_B).await;
    let (status, _) = get_as(&replica, "/api/tenant", &again).await;
    assert_eq!(status, StatusCode::OK);
    world
        .app
        .call(
            app.admin_delete(&format!("/api/admin/tenants/{b}")),
            StatusCode::ACCEPTED,
        )
        .await;
    for server in [&replica, app] {
        let (status, body) = get_as(server, "/api/tenant", &again).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "session_expired"),
            "{body}"
        );
    }
}

/// Log lines written while the test runs on this thread (the app runs on the test's single-threaded runtime).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_page_token_and_the_session_never_reach_a_log_line() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let world = world(vec![FakeStore::new(STORE_A)], |env| {
        env.push(("WOSOOL_LOG__LEVEL".into(), "trace".into()));
    })
    .await;
    let app = &world.app;

    let token = world.page_token(
        STORE_A,
        installer_user_id(STORE_A),
        time::Duration::minutes(5),
    );
    // The page itself is Part B's; whatever answers it, its query string is never logged.
    let _ = app
        .get(&format!("/salla/embedded?token={token}&lang=ar&theme=dark"))
        .send()
        .await
        .unwrap();
    let (status, body) = open(app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = body["session"].as_str().unwrap().to_owned();
    let (status, _) = get_as(app, "/api/customers", &session).await;
    assert_eq!(status, StatusCode::OK);
    // Refused and retried introspections log too.
    world
        .salla
        .lock()
        .fail("/exchange-authority", 1, Fault::status(500));
    let (status, _) = open(app, &token).await;
    assert_eq!(status, StatusCode::OK);
    let expired = world.page_token(STORE_A, 9, time::Duration::seconds(-5));
    let (status, _) = open(app, &expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("embedded app session created") && text.contains("/api/embedded/session"),
        "the capture works: {}",
        &text[..text.len().min(2000)]
    );
    for secret in [
        token.as_str(),
        expired.as_str(),
        session.as_str(),
        &session[4..],
    ] {
        assert!(!text.contains(secret), "{secret} was logged");
    }
}
