//! Roles and permissions through the real HTTP stack (`docs/security.md`): each role against a representative
//! route of each permission, Clerk roles (a token with an organization and no role is a viewer), API key
//! scopes and their escalation, every form of conflicting or repeated credentials, the case of the scheme,
//! and the CRM proxy's read/write split (REST methods, GraphQL operation types) against a fake Twenty.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clerk_sessions::{self, AZP, ISSUER, KID};
use crate::crm_proxy::{fake_twenty, setup};
use crate::helpers::{TestApp, answer};
use crate::merchant_api::{app, store};

/// `method path` with `Authorization: Bearer key` (and a form body for POSTs): status and JSON.
async fn call(app: &TestApp, method: &str, path: &str, key: &str) -> (StatusCode, Value) {
    let request = match method {
        "GET" => app.get(path),
        "POST" => app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("title=A+note&body=text&name=k"),
        "DELETE" => app.client.delete(app.url(path)),
        other => panic!("{other}"),
    };
    let response = request.bearer_auth(key).send().await.expect("request");
    let status = response.status();
    // Screens answer HTML; only errors (the envelope) need reading.
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_insufficient(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
    assert_eq!(body["error"]["code"], "insufficient_role", "{what}: {body}");
}

#[tokio::test]
async fn access_each_scope_reaches_exactly_its_permissions() {
    let app = app().await;
    let store = store(&app, "Access Store").await;
    let read = app.scoped_api_key(&store.id, "read").await;
    let write = app.scoped_api_key(&store.id, "write").await;
    let admin = app.scoped_api_key(&store.id, "admin").await;
    // (method, path, least scope allowed: 0 read, 1 write, 2 admin)
    let routes = [
        ("GET", "/api/tenant", 0),
        ("GET", "/api/orders", 0),
        ("GET", "/api/sync", 0),
        ("GET", "/app/settings", 0),
        ("POST", "/app/crm/notes", 1),
        ("GET", "/app/crm/notes/new", 1),
        ("POST", "/api/sync/resync", 2),
        ("POST", "/app/sync/resync", 2),
        ("POST", "/app/settings", 2),
        ("GET", "/api/tenant/api-keys", 2),
    ];
    for (method, path, least) in routes {
        for (rank, key) in [&read, &write, &admin].into_iter().enumerate() {
            let (status, body) = call(&app, method, path, key).await;
            let what = format!("{method} {path} with scope #{rank}");
            if rank < least {
                assert_insufficient(status, &body, &what);
                let message = body["error"]["message"].as_str().unwrap_or_default();
                let needed = ["viewer", "member", "admin"][least];
                assert!(
                    message.contains(needed),
                    "{what}: names the role needed: {body}"
                );
            } else {
                assert!(
                    status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE,
                    "{what}: {status} {body}"
                );
                assert_ne!(body["error"]["code"], "insufficient_role", "{what}: {body}");
            }
        }
    }
    // Listings show each key's scope.
    let (_, listed) = call(&app, "GET", "/api/tenant/api-keys", &admin).await;
    let mut scopes: Vec<&str> = listed["api_keys"]
        .as_array()
        .expect("api_keys")
        .iter()
        .map(|k| k["scope"].as_str().expect("scope"))
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["admin", "admin", "read", "write"], "{listed}");
}

#[tokio::test]
async fn access_key_scopes_default_to_read_and_never_escalate() {
    let app = app().await;
    let store = store(&app, "Scope Store").await;
    let create = |key: String, body: Value| {
        let request = app
            .client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(key)
            .json(&body);
        async move { answer(request.send().await.expect("request")).await }
    };
    // A leaked read or write key cannot mint anything, let alone an admin key.
    for scope in ["read", "write"] {
        let key = app.scoped_api_key(&store.id, scope).await;
        let (status, body) = create(key, json!({ "name": "mine", "scope": "admin" })).await;
        assert_insufficient(status, &body, scope);
    }
    // Admin keys create keys; without a scope they are read keys, and a read key is a viewer.
    let (status, created) = create(store.key.clone(), json!({ "name": "reader" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["api_key"]["scope"], "read");
    let reader = created["key"].as_str().expect("key").to_owned();
    let (status, body) = call(&app, "POST", "/api/sync/resync", &reader).await;
    assert_insufficient(status, &body, "a default key");
    let (status, created) =
        create(store.key.clone(), json!({ "name": "w", "scope": "write" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["api_key"]["scope"], "write");
    // A bad scope is a 422 naming the field, on the tenant and the admin API alike.
    let (status, body) = create(store.key.clone(), json!({ "name": "x", "scope": "root" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("scope"), "{body}");
    let (status, body) = answer(
        app.admin_post(&format!("/api/admin/tenants/{}/api-keys", store.id))
            .json(&json!({ "name": "x", "scope": "superuser" }))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("scope"), "{body}");
    let (status, body) = answer(
        app.admin_post(&format!("/api/admin/tenants/{}/api-keys", store.id))
            .json(&json!({ "name": "default" }))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["api_key"]["scope"], "read");
}

#[tokio::test]
async fn access_conflicting_or_repeated_credentials_get_one_answer() {
    let app = app().await;
    let a = store(&app, "Credentials A").await;
    let b = store(&app, "Credentials B").await;
    let send = |request: reqwest::RequestBuilder| async move {
        answer(request.send().await.expect("request")).await
    };
    let expect = |(status, body): (StatusCode, Value), want: StatusCode, code: &str, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(body["error"]["request_id"].is_string(), "{what}: {body}");
    };
    let tenant = || app.get("/api/tenant");

    // Conflicting tenants: 403 in every form.
    expect(
        send(tenant().bearer_auth(&a.key).header("x-tenant-id", &b.id)).await,
        StatusCode::FORBIDDEN,
        "tenant_mismatch",
        "Bearer key of A, X-Tenant-Id of B",
    );
    expect(
        send(
            tenant()
                .header("x-api-key", &a.key)
                .header("x-tenant-id", &b.id),
        )
        .await,
        StatusCode::FORBIDDEN,
        "tenant_mismatch",
        "X-Api-Key of A, X-Tenant-Id of B",
    );
    expect(
        send(
            tenant()
                .bearer_auth(&a.key)
                .header("x-tenant-id", "not-a-tenant"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_tenant_id",
        "X-Tenant-Id not an id",
    );
    // The matching tenant is fine.
    let (status, body) = send(tenant().bearer_auth(&a.key).header("x-tenant-id", &a.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["id"].as_str().or(body["tenant"]["id"].as_str()),
        Some(a.id.as_str()),
        "{body}"
    );

    // Repeated credential headers, and two kinds at once: 400, whichever would have won.
    let bearer = |key: &str| format!("Bearer {key}");
    for (what, request) in [
        (
            "two Authorization headers",
            tenant()
                .header("authorization", bearer(&a.key))
                .header("authorization", bearer(&b.key)),
        ),
        (
            "the same Authorization twice",
            tenant()
                .header("authorization", bearer(&a.key))
                .header("authorization", bearer(&a.key)),
        ),
        (
            "two X-Tenant-Id",
            tenant()
                .header("x-api-key", &a.key)
                .header("x-tenant-id", &a.id)
                .header("x-tenant-id", &b.id),
        ),
        (
            "two X-Api-Key",
            tenant()
                .header("x-api-key", &a.key)
                .header("x-api-key", &b.key)
                .header("x-tenant-id", &a.id),
        ),
        (
            "Authorization and X-Api-Key",
            tenant()
                .bearer_auth(&a.key)
                .header("x-api-key", &a.key)
                .header("x-tenant-id", &a.id),
        ),
    ] {
        expect(
            send(request).await,
            StatusCode::BAD_REQUEST,
            "ambiguous_credentials",
            what,
        );
    }

    // The scheme is case-insensitive; another scheme is not a credential.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let (status, body) =
            send(tenant().header("authorization", format!("{scheme} {}", a.key))).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
    }
    expect(
        send(tenant().header("authorization", format!("Basic {}", a.key))).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Basic",
    );
}

/// A session token with an active organization and no role at all.
fn token_without_role(user: &str, org: &str) -> String {
    let now = clerk_sessions::now();
    clerk_sessions::sign(
        &json!({
            "sub": user, "sid": "sess_norole", "iss": ISSUER, "azp": AZP,
            "iat": now - 5, "nbf": now - 10, "exp": now + 60,
            "org_id": org, "org_slug": "acme",
        }),
        KID,
    )
}

#[tokio::test]
async fn access_clerk_roles_missing_or_unknown_are_viewers_and_sessions_name_their_tenant() {
    let (app, (a_id, a_org), (b_id, _)) = clerk_sessions::app_with_two_tenants().await;
    let create_key = |token: String| {
        let request = app
            .client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(token)
            .json(&json!({ "name": "from a session", "scope": "read" }));
        async move { answer(request.send().await.expect("request")).await }
    };
    for (what, token) in [
        ("no role", token_without_role("user_n", &a_org)),
        (
            "a custom role",
            clerk_sessions::v2_token("user_c", &a_org, "billing_clerk"),
        ),
    ] {
        let (status, body) = create_key(token.clone()).await;
        assert_insufficient(status, &body, what);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("viewer"),
            "{body}"
        );
        // Still a member of the organization: it reads.
        let (status, body) = call(&app, "GET", "/api/tenant", &token).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
    }
    let member = clerk_sessions::v2_token("user_m", &a_org, "member");
    let (status, body) = call(&app, "POST", "/api/sync/resync", &member).await;
    assert_insufficient(status, &body, "member resync");
    let admin = clerk_sessions::v2_token("user_a", &a_org, "admin");
    let (status, body) = create_key(admin.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A session whose organization is A's tenant, naming B: refused; naming A: served; lower-case scheme.
    let (status, body) = answer(
        app.get("/api/tenant")
            .bearer_auth(&admin)
            .header("x-tenant-id", &b_id)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "tenant_mismatch");
    let (status, body) = answer(
        app.get("/api/tenant")
            .header("authorization", format!("bearer {admin}"))
            .header("x-tenant-id", &a_id)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn access_crm_proxy_splits_reads_from_writes() {
    let fake = fake_twenty().await;
    let setup = setup(1, 1, &fake.url, |_| {}).await;
    let tenant = &setup.tenants[0];
    let read = setup.plain.scoped_api_key(&tenant.id, "read").await;
    let write = setup.plain.scoped_api_key(&tenant.id, "write").await;
    let proxy = &setup.proxy;
    let graphql = |key: &str, body: Value| {
        let request = proxy
            .client
            .post(proxy.url("/crm/graphql"))
            .bearer_auth(key)
            .json(&body);
        async move { answer(request.send().await.expect("request")).await }
    };
    let rest = |key: &str, method: reqwest::Method| {
        let request = proxy
            .client
            .request(method, proxy.url("/crm/rest/notes"))
            .bearer_auth(key)
            .json(&json!({ "title": "x" }));
        async move { answer(request.send().await.expect("request")).await }
    };
    let mutation = json!({ "query": "mutation { createNote(data: {title: \"x\"}) { id } }" });
    let query = json!({ "query": "{ notes { edges { node { id } } } }" });
    let both =
        "query Q { notes { edges { node { id } } } } mutation M { deleteNote(id: \"1\") { id } }";

    // A viewer reads, through either API, and writes through neither.
    let (status, body) = graphql(&read, mutation.clone()).await;
    assert_insufficient(status, &body, "viewer mutation");
    let (status, body) = graphql(&read, json!({ "query": "subscription { onNote { id } }" })).await;
    assert_insufficient(status, &body, "viewer subscription");
    let (status, body) = graphql(&read, json!({ "query": both, "operationName": "M" })).await;
    assert_insufficient(status, &body, "viewer named mutation");
    let (status, body) = graphql(&read, json!({ "query": both })).await;
    assert_insufficient(status, &body, "viewer, several operations and no name");
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let (status, body) = rest(&read, method.clone()).await;
        assert_insufficient(status, &body, method.as_str());
    }
    let (status, body) = graphql(&read, query.clone()).await;
    assert_eq!(status, StatusCode::OK, "viewer query forwarded: {body}");
    assert_eq!(body["path"], "/graphql", "{body}");
    let (status, body) = graphql(&read, json!({ "query": both, "operationName": "Q" })).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "viewer named query forwarded: {body}"
    );
    let (status, body) = rest(&read, reqwest::Method::GET).await;
    assert_eq!(status, StatusCode::OK, "viewer GET forwarded: {body}");
    assert_eq!(body["method"], "GET");

    // A member writes.
    let (status, body) = graphql(&write, mutation).await;
    assert_eq!(status, StatusCode::OK, "member mutation forwarded: {body}");
    let (status, body) = rest(&write, reqwest::Method::POST).await;
    assert_eq!(status, StatusCode::OK, "member POST forwarded: {body}");
    assert_eq!(body["method"], "POST");
}
