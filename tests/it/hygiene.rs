//! Input hygiene, request ids and connection handling (docs/security.md): text PostgreSQL cannot store is
//! refused with 422 where it is parsed, webhooks holding it are kept byte for byte and processed, forged
//! request ids are replaced, and slow or greedy clients are cut off.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wosool::Role;

use crate::helpers::{ADMIN_KEY, TestApp, eventually, metric_value, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(30);

/// Asserts a 422 `invalid_text` envelope naming `field`.
async fn assert_invalid_text(response: reqwest::Response, field: &str, what: &str) {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_text", "{what}: {body}");
    assert!(
        body["error"]["details"]["fields"].get(field).is_some(),
        "{what}: names {field}: {body}"
    );
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn text_that_cannot_be_stored_is_422_naming_the_field() {
    let app = spawn_app().await;
    let tenant = uuid::Uuid::new_v4();
    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "registration email",
            app.client
                .post(app.url("/api/auth/register-organization"))
                .json(&json!({ "organization_name": "Acme", "admin_email": "owner\u{0}@example.sa" })),
            "/admin_email",
        ),
        (
            "registration name with U+FFFF",
            app.client
                .post(app.url("/api/auth/register-organization"))
                .json(&json!({ "organization_name": "Acme\u{FFFF}", "admin_email": "owner@example.sa" })),
            "/organization_name",
        ),
        (
            "admin create email",
            app.admin_post("/api/admin/tenants")
                .json(&json!({ "organization_name": "Acme", "admin_email": "\u{0}" })),
            "/admin_email",
        ),
        (
            "suspend reason",
            app.admin_post(&format!("/api/admin/tenants/{tenant}/suspend"))
                .json(&json!({ "reason": "because\u{0}" })),
            "/reason",
        ),
        (
            "tenant search",
            app.admin_get("/api/admin/tenants?search=%00acme"),
            "search",
        ),
        ("tenant plan", app.admin_get("/api/admin/tenants?plan=free%00"), "plan"),
        ("job kind", app.admin_get("/api/admin/jobs?kind=jobs.prune%00"), "kind"),
        (
            "job kind, noncharacter",
            app.admin_get("/api/admin/jobs?kind=%EF%BF%BE"),
            "kind",
        ),
        ("path parameter", app.admin_get("/api/admin/tenants/a%00b"), "id"),
    ];
    for (what, request, field) in cases {
        assert_invalid_text(request.send().await.expect(what), field, what).await;
    }
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 0, "nothing was created");

    // The text `\u0000` (an escaped backslash) is not a NUL: accepted.
    let response = app
        .admin_get("/api/admin/tenants?search=%5Cu0000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

// ---- webhooks ----------------------------------------------------------------------------------------------

const SALLA_SECRET: &str = "hygiene-salla-webhook-secret";

fn salla_signature(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SALLA_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post_salla(app: &TestApp, body: &[u8]) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/webhooks/salla"))
        .header("content-type", "application/json")
        .header("x-salla-security-strategy", "Signature")
        .header("x-salla-signature", salla_signature(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// A stored delivery: status, payload, raw bytes, repaired flag.
async fn inbox_row(
    app: &TestApp,
    provider: &str,
    key: &str,
) -> (String, Value, Option<Vec<u8>>, bool) {
    sqlx::query_as(
        "SELECT status, payload, raw, payload_repaired FROM webhook_inbox WHERE provider = $1 AND dedupe_key = $2",
    )
    .bind(provider)
    .bind(key)
    .fetch_one(&app.db)
    .await
    .expect("inbox row")
}

async fn wait_finished(app: &TestApp, provider: &str, key: &str) -> String {
    eventually(&format!("{provider} delivery processed"), WAIT, || async {
        let (status, ..) = inbox_row(app, provider, key).await;
        assert_ne!(status, "failed");
        (status != "pending").then_some(status)
    })
    .await
}

fn sha256_hex(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(body))
}

#[tokio::test]
async fn salla_deliveries_with_unstorable_json_are_kept_byte_for_byte_and_processed() {
    let salla = crate::fake_salla::FakeSallaServer::start().await;
    let salla_env = salla.env();
    let app = spawn_app_with(Role::All, |env| {
        salla_env(env);
        env.push((
            "WOSOOL_SALLA__WEBHOOK_SECRETS".into(),
            format!("[\"{SALLA_SECRET}\"]"),
        ));
    })
    .await;
    let fixture = std::fs::read(format!(
        "{}/../shared/fixtures/salla/order.created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut event: Value = serde_json::from_slice(&fixture).unwrap();
    // An event we do not act on: processed to `ignored` without a tenant (an order would wait for its store).
    event["event"] = json!("hygiene.unhandled");
    let mut clean = event.clone();
    clean["data"]["id"] = json!(1);
    let clean = serde_json::to_vec(&clean).unwrap();
    event["data"]["notes"] = json!("gift\u{0} wrap");
    // A NUL escape and a lone surrogate (which serde_json would not even build a string from).
    let body = serde_json::to_string(&event)
        .unwrap()
        .replacen('{', "{\"x\":\"\\ud800\",", 1)
        .into_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\\u0000"));

    // Sent together, so they may share a group commit: the repaired one must not spoil the other.
    let ((status, answer), (clean_status, _)) =
        tokio::join!(post_salla(&app, &body), post_salla(&app, &clean));
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert_eq!(clean_status, StatusCode::OK);

    let key = sha256_hex(&body);
    let (_, payload, raw, repaired) = inbox_row(&app, "salla", &key).await;
    assert_eq!(
        raw.as_deref(),
        Some(body.as_slice()),
        "raw bytes kept byte for byte"
    );
    assert!(repaired);
    assert_eq!(payload["data"]["notes"], "gift\u{FFFD} wrap");
    assert_eq!(payload["x"], "\u{FFFD}");
    let (_, _, clean_raw, clean_repaired) = inbox_row(&app, "salla", &sha256_hex(&clean)).await;
    assert_eq!(
        (clean_raw, clean_repaired),
        (None, false),
        "nothing to repair, nothing copied"
    );

    let finished = wait_finished(&app, "salla", &key).await;
    assert!(
        ["processed", "ignored"].contains(&finished.as_str()),
        "{finished}"
    );
    // A redelivery of the same bytes is a duplicate, as for any delivery.
    let (status, answer) = post_salla(&app, &body).await;
    assert_eq!(
        (status, answer["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );

    // Authenticated, not JSON, holding a 0 byte: kept as rejected, byte for byte.
    let garbage = b"{\"a\":\"\x00\xff\"".to_vec();
    let (status, answer) = post_salla(&app, &garbage).await;
    assert_eq!(
        (status, answer["rejected"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (status, _, raw, _) = inbox_row(&app, "salla", &sha256_hex(&garbage)).await;
    assert_eq!(status, "rejected");
    assert_eq!(raw.as_deref(), Some(garbage.as_slice()));
}

#[tokio::test]
async fn clerk_deliveries_with_unstorable_json_are_kept_byte_for_byte_and_processed() {
    let app = spawn_app_with(Role::All, |env| {
        env.push((
            "WOSOOL_CLERK__WEBHOOK_SECRETS".into(),
            format!("[\"{}\"]", crate::clerk_webhooks::SECRET),
        ));
    })
    .await;
    let fixture = std::fs::read_to_string(format!(
        "{}/../shared/fixtures/clerk/organization.created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(fixture.contains("\"Acme Corp\""));
    let body = fixture
        .replacen("\"Acme Corp\"", "\"Acme\\u0000 Corp\\udc00\"", 1)
        .into_bytes();
    let headers = crate::clerk_webhooks::signed_headers("msg_nul_1", &body);
    let (status, answer) = crate::clerk_webhooks::deliver(&app, &headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (_, payload, raw, repaired) = inbox_row(&app, "clerk", "msg_nul_1").await;
    assert_eq!(
        raw.as_deref(),
        Some(body.as_slice()),
        "raw bytes kept byte for byte"
    );
    assert!(repaired);
    assert_eq!(payload["data"]["name"], "Acme\u{FFFD} Corp\u{FFFD}");
    crate::clerk_webhooks::wait_inbox_status(&app.db, "msg_nul_1", "processed").await;
    let name: String = sqlx::query_scalar("SELECT display_name FROM tenants")
        .fetch_one(&app.db)
        .await
        .expect("the event created its tenant");
    assert_eq!(name, "Acme\u{FFFD} Corp\u{FFFD}");
}

// ---- request ids -------------------------------------------------------------------------------------------

/// The id in the header and the envelope of a 404 answered to a request sent with `id`.
async fn ids_for(app: &TestApp, id: reqwest::header::HeaderValue, twice: bool) -> (String, String) {
    let mut request = app.get("/no-such-route").header("x-request-id", id.clone());
    if twice {
        request = request.header("x-request-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let header = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    (
        header,
        body["error"]["request_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn only_safe_client_request_ids_are_kept() {
    let app = spawn_app().await;
    let value = |s: &[u8]| reqwest::header::HeaderValue::from_bytes(s).unwrap();

    let kept = "trace-1.a_b:C";
    assert_eq!(
        ids_for(&app, value(kept.as_bytes()), false).await,
        (kept.to_owned(), kept.to_owned())
    );
    let longest = "x".repeat(64);
    assert_eq!(
        ids_for(&app, value(longest.as_bytes()), false).await.0,
        longest
    );

    let forged: [&[u8]; 5] = [
        &[b'y'; 65],
        b"has\ttab",
        b"\"quoted\"",
        "caf\u{e9}".as_bytes(),
        b"a b",
    ];
    for id in forged {
        let (header, body) = ids_for(&app, value(id), false).await;
        assert_eq!(header, body, "one id everywhere");
        assert!(
            uuid::Uuid::parse_str(&header).is_ok(),
            "a generated id, not {header:?}"
        );
    }
    let (header, body) = ids_for(&app, value(b"dup"), true).await;
    assert_eq!(header, body);
    assert_ne!(header, "dup", "a repeated id is not used");
    assert!(uuid::Uuid::parse_str(&header).is_ok());
}

// ---- connections -------------------------------------------------------------------------------------------

/// Reads until the server closes the connection; returns what it sent. Fails after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut received)).await {
        Ok(_) => received,
        Err(_) => panic!("{what}: still open after {within:?}"),
    }
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    let app = spawn_app_with(Role::Api, |env| {
        env.push(("WOSOOL_SERVER__HEADER_READ_TIMEOUT_SECS".into(), "1".into()));
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    for (i, stream) in slow.iter_mut().enumerate() {
        let sent = closed_within(stream, Duration::from_secs(5), &format!("slow client {i}")).await;
        assert!(!String::from_utf8_lossy(&sent).contains("200 OK"));
    }

    // An idle keep-alive connection is closed too, after its request was answered.
    let mut idle = TcpStream::connect(app.address).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut idle, Duration::from_secs(5), "idle keep-alive").await;
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"));

    let metrics = app.metrics().await;
    let closed = metric_value(
        &metrics,
        "http_connections_closed_total",
        &[("reason", "header_timeout")],
    );
    assert!(closed.is_some_and(|n| n >= 5.0), "{closed:?}");
}

#[tokio::test]
async fn the_per_ip_connection_cap_refuses_the_next_connection() {
    let app = spawn_app_with(Role::Api, |env| {
        env.push(("WOSOOL_SERVER__MAX_CONNECTIONS_PER_IP".into(), "3".into()));
    })
    .await;
    // Three keep-alive connections, each known to be accepted (answered).
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        open.push(stream);
    }
    let mut fourth = TcpStream::connect(app.address).await.unwrap();
    let _ = fourth
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), fourth.read_to_end(&mut answer))
        .await
        .expect("the fourth connection is closed at once");
    assert!(read.is_err() || answer.is_empty(), "not served: {answer:?}");

    // A closed connection frees its place.
    open.pop();
    let metrics = eventually("a place to free up", Duration::from_secs(10), || async {
        app.client
            .get(app.url("/metrics"))
            .header("connection", "close")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
    .await;
    let refused = metric_value(
        &metrics,
        "http_connections_refused_total",
        &[("reason", "per_ip_limit")],
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431_with_the_envelope() {
    let app = spawn_app().await;
    let mut request = app.get("/health/live");
    for i in 0..150 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("JSON envelope");
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");
    assert_eq!(body["error"]["request_id"], header_id);

    let response = app
        .get("/health/live")
        .header("x-big", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let body: Value = response.json().await.expect("JSON envelope");
    assert_eq!(body["error"]["code"], "headers_too_large");

    // Under the limits: served.
    let mut request = app.get("/health/live");
    for i in 0..80 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_body_still_gets_the_request_timeout() {
    let app = spawn_app_with(Role::Api, |env| {
        env.push(("WOSOOL_SERVER__REQUEST_TIMEOUT_SECS".into(), "1".into()));
        env.push((
            "WOSOOL_SERVER__HEADER_READ_TIMEOUT_SECS".into(),
            "30".into(),
        ));
    })
    .await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /admin/jobs HTTP/1.1\r\nhost: test\r\nx-admin-key: {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"kind\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Read until the error body is in (it may arrive after the head).
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&answer).contains("request_timeout") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("answered before the body completes")
            .unwrap();
        assert!(
            n > 0,
            "closed without the 408: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn merchant_app_forms_refuse_unstorable_text_without_a_5xx() {
    let app = crate::merchant_api::app().await;
    let shop = crate::merchant_api::store(&app, "Hygiene Store").await;
    let post = |path: &str, body: &'static str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&shop.key)
            .header("HX-Request", "true")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let cases = [
        ("settings", post("/app/settings", "lang=en%00"), "lang"),
        (
            "CRM create",
            post("/app/crm/notes", "title=Call&body=a%00b"),
            "body",
        ),
        (
            "CRM update",
            post(
                &format!("/app/crm/notes/{}", uuid::Uuid::new_v4()),
                "title=%EF%BF%BF",
            ),
            "title",
        ),
        (
            "form on a query string",
            app.get("/app/customers?search=%00").bearer_auth(&shop.key),
            "search",
        ),
    ];
    for (what, request, field) in cases {
        let response = request.send().await.expect(what);
        assert!(!response.status().is_server_error(), "{what}");
        assert_invalid_text(response, field, what).await;
    }
}
