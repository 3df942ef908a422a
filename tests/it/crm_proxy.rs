//! The `/crm/*` reverse proxy against a small fake Twenty of its own that echoes what it receives: the
//! tenant's Twenty key injected (and only that tenant's), the caller's credentials and hop-by-hop headers
//! dropped both ways, API keys / webhooks / roles / metadata out of reach, responses streamed, body limit,
//! timeouts, an unreachable or unconfigured Twenty, a tenant without a workspace, and the rate limit.
//!
//! Tenants are registered by an app without Twenty (provisioning would otherwise create real workspaces);
//! a second app on the same database, with `crm.base_url` set, serves the proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use wosool::Role;
use wosool::config::{Secret, SecretsConfig};
use wosool::secrets::Keyring;
use wosool::tenancy::TenantId;

use crate::helpers::{
    TestApp, closed_port, metric_value, new_key_prefix, spawn_app_with, spawn_replica,
};

const ENCRYPTION_KEY: &str = "test:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const MB: usize = 1024 * 1024;

/// A fake Twenty: `/rest/stream` sends 10 MB, waits for `release`, then 10 MB more; `/rest/slow` answers
/// after 5 s; `/rest/revoked` is a 401; `/rest/cookies` sets cookies and hop-by-hop headers; anything else
/// echoes the request as JSON.
pub(crate) struct FakeTwenty {
    pub(crate) url: String,
    release: Arc<Notify>,
    /// TCP connections accepted so far.
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) async fn fake_twenty() -> FakeTwenty {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let router = Router::new()
        .route(
            "/rest/stream",
            axum::routing::get(move || {
                let gate = gate.clone();
                async move {
                    let chunks = futures_util::stream::iter(0..20).then(move |i| {
                        let gate = gate.clone();
                        async move {
                            if i == 10 {
                                gate.notified().await;
                            }
                            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; MB]))
                        }
                    });
                    Body::from_stream(chunks)
                }
            }),
        )
        .route(
            "/rest/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/rest/revoked",
            axum::routing::get(|| async { (StatusCode::UNAUTHORIZED, "Unauthorized") }),
        )
        .route(
            "/rest/cookies",
            axum::routing::get(|| async {
                (
                    [
                        ("set-cookie", "tokenPair=secret; HttpOnly"),
                        ("connection", "x-hop"),
                        ("x-hop", "1"),
                        ("x-request-id", "twenty-request"),
                        ("x-twenty", "kept"),
                    ],
                    axum::Json(json!({ "data": {} })),
                )
            }),
        )
        .fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake Twenty");
    let address = listener.local_addr().expect("address");
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = connections.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
        accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    FakeTwenty {
        url: format!("http://{address}"),
        release,
        connections,
    }
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * MB)
        .await
        .expect("request body");
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
        .collect();
    axum::Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "authorization_count": parts.headers.get_all("authorization").iter().count(),
        "body_len": body.len(),
        "body": if body.len() <= 65536 { String::from_utf8_lossy(&body).into_owned() } else { String::new() },
    }))
    .into_response()
}

/// A ready tenant, its Wosool API key, and the Twenty key stored for it (if any).
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) twenty_key: String,
}

pub(crate) struct Setup {
    /// The app serving the proxy.
    pub(crate) proxy: TestApp,
    /// The app tenants were registered with (no Twenty configured).
    pub(crate) plain: TestApp,
    pub(crate) tenants: Vec<Tenant>,
}

/// Registers `count` ready tenants (each with an API key); the first `with_workspace` of them get a
/// `crm_workspaces` row with a sealed Twenty key. The proxy app points at `base_url` and is adjusted by
/// `adjust`.
pub(crate) async fn setup(
    count: usize,
    with_workspace: usize,
    base_url: &str,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> Setup {
    let prefix = new_key_prefix();
    let prefix_for_plain = prefix.clone();
    let plain = spawn_app_with(Role::All, move |env| {
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix_for_plain));
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ));
    })
    .await;
    let keyring = Keyring::from_config(&SecretsConfig {
        encryption_keys: vec![Secret::new(ENCRYPTION_KEY)],
    })
    .expect("keyring");
    let mut tenants = Vec::new();
    for i in 0..count {
        let registered = plain.register_ready(&format!("CRM Proxy Store {i}")).await;
        let id = registered["tenant_id"]
            .as_str()
            .expect("tenant_id")
            .to_owned();
        let key = plain.api_key(&id).await;
        let twenty_key = format!("twenty-key-{i}-{}", uuid::Uuid::new_v4().simple());
        if i < with_workspace {
            let tenant: TenantId = id.parse().expect("tenant id");
            let sealed = keyring
                .seal(
                    &wosool::crm::workspace::api_key_context(tenant),
                    twenty_key.as_bytes(),
                )
                .expect("seal");
            sqlx::query(
                "INSERT INTO crm_instances (key, base_url, max_workspaces) VALUES ('default', '', 5) \
                 ON CONFLICT DO NOTHING",
            )
            .execute(&plain.db)
            .await
            .expect("instance row");
            sqlx::query(
                "INSERT INTO crm_workspaces (tenant_id, owner_email, key_id, api_key_token, workspace_id, step, instance) \
                 VALUES ($1, $2, $3, $4, $5, 'ready', 'default')",
            )
            .bind(tenant.as_uuid())
            .bind(format!("owner+{i}@crm.example.com"))
            .bind(&sealed.key_id)
            .bind(&sealed.bytes)
            .bind(format!("workspace-{i}"))
            .execute(&plain.db)
            .await
            .expect("insert crm_workspaces");
        }
        tenants.push(Tenant {
            id,
            key,
            twenty_key,
        });
    }
    let base_url = base_url.to_owned();
    let proxy = spawn_replica(&plain.database, &prefix, Role::Api, move |env| {
        env.push(("WOSOOL_CRM__BASE_URL".into(), base_url));
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{ENCRYPTION_KEY}\"]"),
        ));
        adjust(env);
    })
    .await;
    Setup {
        proxy,
        plain,
        tenants,
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn json_of(response: reqwest::Response) -> (StatusCode, HeaderMap, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"));
    (status, headers, body)
}

async fn get(app: &TestApp, path: &str, key: &str) -> (StatusCode, HeaderMap, Value) {
    json_of(
        app.get(path)
            .header("authorization", bearer(key))
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn graphql(app: &TestApp, key: &str, query: &str) -> (StatusCode, Value) {
    let (status, _, body) = json_of(
        app.client
            .post(app.url("/crm/graphql"))
            .header("authorization", bearer(key))
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("request"),
    )
    .await;
    (status, body)
}

/// `GET path` over a bare connection, byte for byte (no client-side path normalisation); the status code.
async fn raw_get_status(app: &TestApp, path: &str, key: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response}"))
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["request_id"].is_string(), "{body}");
}

#[tokio::test]
async fn crm_proxy_injects_only_the_callers_tenant_key_and_drops_caller_credentials() {
    let fake = fake_twenty().await;
    let setup = setup(2, 2, &fake.url, |_| {}).await;
    let app = &setup.proxy;
    let [a, b] = &setup.tenants[..] else {
        panic!("two tenants")
    };

    let response = app
        .get("/crm/rest/people?limit=5&filter=name.firstName%5Beq%5D:%22A%22")
        .header("authorization", bearer(&a.key))
        .header("cookie", "__session=caller-session; other=1")
        .header("x-twenty-api-key", "smuggled")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "req-crm-1")
        .send()
        .await
        .expect("request");
    let (status, headers, echoed) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/rest/people");
    assert_eq!(
        echoed["query"],
        "limit=5&filter=name.firstName%5Beq%5D:%22A%22"
    );
    let sent = &echoed["headers"];
    assert_eq!(sent["authorization"], bearer(&a.twenty_key), "{echoed}");
    assert_eq!(echoed["authorization_count"], 1);
    for header in ["cookie", "x-twenty-api-key", "x-hop", "x-forwarded-for"] {
        assert!(sent.get(header).is_none(), "{header} forwarded: {echoed}");
    }
    assert_eq!(sent["x-request-id"], "req-crm-1");
    assert_eq!(headers["x-request-id"], "req-crm-1");
    // Twenty's own host, and a GET without a body goes out without one (not as an empty chunked stream).
    assert_eq!(
        sent["host"].as_str(),
        fake.url.strip_prefix("http://"),
        "{echoed}"
    );
    for framing in ["transfer-encoding", "content-length"] {
        assert!(sent.get(framing).is_none(), "{framing} on a GET: {echoed}");
    }
    assert!(
        !echoed.to_string().contains(&a.key),
        "the caller's key reached Twenty"
    );

    // The other tenant, the other credential style, the same fake: its own key, never A's.
    let response = app
        .client
        .post(app.url("/crm/rest/batch/people?upsert=true"))
        .header("x-tenant-id", &b.id)
        .header("x-api-key", &b.key)
        .json(&json!([{ "name": { "firstName": "B" } }]))
        .send()
        .await
        .expect("request");
    let (status, _, echoed) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["headers"]["authorization"], bearer(&b.twenty_key));
    assert!(echoed["headers"].get("x-api-key").is_none(), "{echoed}");
    assert!(echoed["headers"].get("x-tenant-id").is_none(), "{echoed}");
    assert!(!echoed.to_string().contains(&a.twenty_key));
    assert_eq!(echoed["body"], r#"[{"name":{"firstName":"B"}}]"#);

    // Sequential requests reuse one pooled keep-alive connection to Twenty.
    let before = fake.connections.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        let (status, _, _) = get(app, "/crm/rest/people", &a.key).await;
        assert_eq!(status, StatusCode::OK);
    }
    let opened = fake.connections.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        opened <= 1,
        "20 requests opened {opened} connections to Twenty"
    );

    // Interleaved, concurrently: each request carries its own tenant's key.
    let requests = (0..20).map(|i| {
        let tenant = if i % 2 == 0 { a } else { b };
        async move {
            let (_, _, echoed) = get(app, "/crm/rest/companies", &tenant.key).await;
            assert_eq!(
                echoed["headers"]["authorization"],
                bearer(&tenant.twenty_key)
            );
        }
    });
    futures_util::future::join_all(requests).await;

    // GraphQL, and Twenty's cookies and hop-by-hop headers do not come back.
    let (status, echoed) = graphql(app, &a.key, "{ people { edges { node { id } } } }").await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["path"], "/graphql");
    assert_eq!(echoed["headers"]["authorization"], bearer(&a.twenty_key));
    let (status, headers, _) = get(app, "/crm/rest/cookies", &a.key).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("set-cookie").is_none());
    assert!(headers.get("x-hop").is_none());
    assert_eq!(headers["x-twenty"], "kept");
    assert_ne!(headers["x-request-id"], "twenty-request");

    // No credential at all: our 401, nothing forwarded.
    let (status, _, body) =
        json_of(app.get("/crm/rest/people").send().await.expect("request")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let metrics = app.metrics().await;
    assert!(
        metric_value(&metrics, "crm_proxy_requests_total", &[("status", "200")])
            .is_some_and(|n| n >= 24.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("crm_proxy_upstream_duration_seconds"),
        "{metrics}"
    );
    assert!(!metrics.contains(&a.id), "tenant ids are not labels");
}

#[tokio::test]
async fn crm_proxy_blocks_metadata_api_keys_webhooks_and_roles() {
    let fake = fake_twenty().await;
    let setup = setup(1, 1, &fake.url, |_| {}).await;
    let app = &setup.proxy;
    let key = &setup.tenants[0].key;

    for path in ["/crm/metadata", "/crm/rest", "/crm/graphql/extra", "/crm"] {
        let (status, _, body) = get(app, path, key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    for path in [
        "/crm/rest/apiKeys",
        "/crm/rest/apiKeys/6a4e3c1e-0000-4000-8000-000000000000",
        "/crm/rest/webhooks",
        "/crm/rest/batch/webhooks",
        "/crm/rest/roles",
        "/crm/rest/metadata/objects",
        "/crm/rest/open-api/metadata",
        "/crm/rest/%61piKeys",
    ] {
        let (status, _, body) = get(app, path, key).await;
        assert_error(
            status,
            &body,
            StatusCode::FORBIDDEN,
            "crm_operation_forbidden",
        );
    }
    // Dot segments (which a client library would resolve before sending) and encoded separators.
    for path in [
        "/crm/rest/people/../apiKeys",
        "/crm/rest/people/%2e%2e/%2e%2e/metadata",
        "/crm/rest/people%2F..%2FapiKeys",
    ] {
        let status = raw_get_status(app, path, key).await;
        assert_eq!(status, 400, "{path}");
    }
    for query in [
        "{ apiKeys { id } }",
        "query { keys: apiKeys { id } }",
        "mutation { createApiKey(input: {name: \"x\"}) { id } }",
        "mutation { createWebhook(data: {targetUrl: \"https://evil.example\"}) { id } }",
        "query { getRoles { id } }",
        "query { people { id } ...K } fragment K on Query { webhooks { id } }",
    ] {
        let (status, body) = graphql(app, key, query).await;
        assert_error(
            status,
            &body,
            StatusCode::FORBIDDEN,
            "crm_operation_forbidden",
        );
    }
    let (status, _, body) = get(app, "/crm/graphql?query=%7BapiKeys%7Bid%7D%7D", key).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // Twenty refusing our key is our problem, not the caller's 401.
    let (status, _, body) = get(app, "/crm/rest/revoked", key).await;
    assert_error(status, &body, StatusCode::BAD_GATEWAY, "crm_unavailable");
}

#[tokio::test]
async fn crm_proxy_streams_large_responses_and_enforces_its_own_body_limit() {
    let fake = fake_twenty().await;
    let setup = setup(1, 1, &fake.url, |env| {
        env.push(("WOSOOL_SERVER__BODY_LIMIT_BYTES".into(), "1024".into()));
        env.push(("WOSOOL_CRM__PROXY_BODY_LIMIT_BYTES".into(), "8192".into()));
    })
    .await;
    let app = &setup.proxy;
    let key = &setup.tenants[0].key;

    // The first half arrives while the fake still holds the second one back: nothing is buffered whole.
    let response = app
        .get("/crm/rest/stream")
        .header("authorization", bearer(key))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut received = 0usize;
    let mut released = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the proxy streams (no chunk for 10 s)")
    {
        received += chunk.expect("chunk").len();
        if !released && received >= 10 * MB {
            fake.release.notify_one();
            released = true;
        }
        assert!(Instant::now() < deadline);
    }
    assert!(released, "the first half was not streamed before the rest");
    assert_eq!(received, 20 * MB);

    // Above the server's limit but within the proxy's: forwarded. Above the proxy's: 413, declared or not.
    let response = app
        .client
        .post(app.url("/crm/rest/attachments"))
        .header("authorization", bearer(key))
        .header("content-type", "application/octet-stream")
        .body(vec![b'a'; 4096])
        .send()
        .await
        .expect("request");
    let (status, _, echoed) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["body_len"], 4096);
    let response = app
        .client
        .post(app.url("/crm/rest/attachments"))
        .header("authorization", bearer(key))
        .body(vec![b'a'; 16384])
        .send()
        .await
        .expect("request");
    let (status, _, body) = json_of(response).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 4096]))),
    );
    let response = app
        .client
        .post(app.url("/crm/rest/attachments"))
        .header("authorization", bearer(key))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("request");
    let (status, _, body) = json_of(response).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

#[tokio::test]
async fn crm_proxy_answers_504_when_twenty_is_slow_and_429_over_the_rate_limit() {
    let fake = fake_twenty().await;
    let setup = setup(2, 2, &fake.url, |env| {
        env.push(("WOSOOL_CRM__PROXY_TIMEOUT_SECS".into(), "1".into()));
        // The tenant limit (`[rate_limits]`) covers /crm/* too: a burst of 3, then one a minute.
        env.push(("WOSOOL_RATE_LIMITS__PLANS__FREE__BURST".into(), "3".into()));
        env.push((
            "WOSOOL_RATE_LIMITS__PLANS__FREE__REQUESTS_PER_MINUTE".into(),
            "1".into(),
        ));
    })
    .await;
    let app = &setup.proxy;
    let (slow, limited) = (&setup.tenants[0], &setup.tenants[1]);

    let started = Instant::now();
    let (status, _, body) = get(app, "/crm/rest/slow", &slow.key).await;
    assert_error(status, &body, StatusCode::GATEWAY_TIMEOUT, "crm_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    for _ in 0..3 {
        let (status, _, body) = get(app, "/crm/rest/people", &limited.key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, headers, body) = get(app, "/crm/rest/people", &limited.key).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The other tenant's bucket is its own (one request used by the timeout above).
    let (status, _, body) = get(app, "/crm/rest/people", &slow.key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn crm_proxy_answers_502_501_and_409_when_it_cannot_forward() {
    let down = format!("http://127.0.0.1:{}", closed_port());
    let setup = setup(2, 1, &down, |_| {}).await;
    let (ready, without_workspace) = (&setup.tenants[0], &setup.tenants[1]);

    let (status, _, body) = get(&setup.proxy, "/crm/rest/people", &ready.key).await;
    assert_error(status, &body, StatusCode::BAD_GATEWAY, "crm_unavailable");

    let (status, _, body) = get(&setup.proxy, "/crm/rest/people", &without_workspace.key).await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "crm_workspace_not_ready",
    );

    // The registering app has no Twenty configured.
    let (status, _, body) = get(&setup.plain, "/crm/rest/people", &ready.key).await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_IMPLEMENTED,
        "crm_not_configured",
    );
    let (status, body) = graphql(&setup.plain, &ready.key, "{ people { id } }").await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_IMPLEMENTED,
        "crm_not_configured",
    );
}
