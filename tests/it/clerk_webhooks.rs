//! `POST /webhooks/clerk` against the real application: Svix signatures (signed here with `hmac` directly,
//! independently of the verifier), the durable inbox, dedupe under concurrency, and the `clerk.event` job
//! turning `organization.*` events into tenant changes. Bodies are the documentation fixtures in
//! `../shared/fixtures/clerk/`, sent byte for byte as signed.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgPool;
use wosool::Role;

use crate::helpers::{TestApp, eventually, spawn_app_with};

/// base64("wosool-clerk-webhook-test-secret!")
pub(crate) const SECRET: &str = "whsec_d29zb29sLWNsZXJrLXdlYmhvb2stdGVzdC1zZWNyZXQh";
/// base64("another-secret-entirely-0123456")
const WRONG_SECRET: &str = "whsec_YW5vdGhlci1zZWNyZXQtZW50aXJlbHktMDEyMzQ1Ng==";
const ORG_ID: &str = "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S";
const WAIT: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../shared/fixtures/clerk/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the Svix scheme.
fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

pub(crate) fn signed_headers(id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = now();
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", ts.to_string()),
        ("svix-signature", signature(SECRET, id, ts, body)),
    ]
}

async fn clerk_app() -> TestApp {
    clerk_app_with(|_| {}).await
}

/// An app (worker included) that accepts deliveries signed with `SECRET`, with more settings from `adjust`.
async fn clerk_app_with(adjust: impl FnOnce(&mut Vec<(String, String)>)) -> TestApp {
    spawn_app_with(Role::All, |env| {
        env.push((
            "WOSOOL_CLERK__WEBHOOK_SECRETS".into(),
            format!("[\"{SECRET}\"]"),
        ));
        adjust(env);
    })
    .await
}

pub(crate) async fn deliver(
    app: &TestApp,
    headers: &[(&str, String)],
    body: &[u8],
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(app.url("/webhooks/clerk"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("webhook request");
    let status = response.status();
    let json = response.json().await.expect("JSON answer");
    (status, json)
}

async fn inbox_rows(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_inbox")
        .fetch_one(db)
        .await
        .expect("count inbox")
}

async fn clerk_jobs(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'clerk.event'")
        .fetch_one(db)
        .await
        .expect("count jobs")
}

async fn inbox_status(db: &PgPool, svix_id: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT status FROM webhook_inbox WHERE provider = 'clerk' AND dedupe_key = $1",
    )
    .bind(svix_id)
    .fetch_optional(db)
    .await
    .expect("inbox status")
}

pub(crate) async fn wait_inbox_status(db: &PgPool, svix_id: &str, expected: &str) {
    eventually(&format!("inbox {svix_id} {expected}"), WAIT, || async {
        let status = inbox_status(db, svix_id).await;
        assert_ne!(status.as_deref(), Some("failed"), "{svix_id} failed");
        (status.as_deref() == Some(expected)).then_some(())
    })
    .await;
}

async fn tenant_statuses(db: &PgPool, org_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM tenants WHERE clerk_org_id = $1")
        .bind(org_id)
        .fetch_all(db)
        .await
        .expect("tenants of org")
}

async fn wait_tenant_status(db: &PgPool, org_id: &str, expected: &str) {
    eventually(&format!("tenant of {org_id} {expected}"), WAIT, || async {
        let statuses = tenant_statuses(db, org_id).await;
        assert!(statuses.len() <= 1, "several tenants: {statuses:?}");
        assert_ne!(statuses.first().map(String::as_str), Some("failed"));
        (statuses.first().map(String::as_str) == Some(expected)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn organization_created_is_stored_and_provisions_a_ready_tenant() {
    let app = clerk_app().await;
    let body = fixture("organization.created");
    let (status, json) = deliver(&app, &signed_headers("msg_created_1", &body), &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({ "received": true, "duplicate": false })
    );

    // Durably stored before the answer: the row and its job exist now.
    let (provider, event_type, payload, headers): (String, String, Value, Value) = sqlx::query_as(
        "SELECT provider, event_type, payload, headers FROM webhook_inbox WHERE dedupe_key = 'msg_created_1'",
    )
    .fetch_one(&app.db)
    .await
    .expect("inbox row");
    assert_eq!(provider, "clerk");
    assert_eq!(event_type, "organization.created");
    assert_eq!(payload, serde_json::from_slice::<Value>(&body).unwrap());
    assert_eq!(headers["id"], "msg_created_1");
    assert!(headers.get("signature").is_none(), "{headers}");
    assert_eq!(clerk_jobs(&app.db).await, 1);

    wait_tenant_status(&app.db, ORG_ID, "ready").await;
    wait_inbox_status(&app.db, "msg_created_1", "processed").await;
    let (slug, name, owner, inbox_tenant): (String, String, String, Option<uuid::Uuid>) =
        sqlx::query_as(
            "SELECT t.slug, t.display_name, t.owner_email, i.tenant_id FROM tenants t \
             JOIN webhook_inbox i ON i.dedupe_key = 'msg_created_1' WHERE t.clerk_org_id = $1",
        )
        .bind(ORG_ID)
        .fetch_one(&app.db)
        .await
        .expect("tenant");
    assert_eq!(slug, "acme-corp", "the org slug seeds the tenant slug");
    assert_eq!(name, "Acme Corp");
    assert_eq!(owner, "owner+org_2g7np7hrk0sn6kj5edmldaknl0s@clerk.invalid");
    assert!(inbox_tenant.is_some(), "the inbox row names its tenant");

    // The same event under another delivery id (not a redelivery): processed, still one tenant.
    let (status, json) = deliver(&app, &signed_headers("msg_created_2", &body), &body).await;
    assert_eq!(
        (status, json["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(false))
    );
    wait_inbox_status(&app.db, "msg_created_2", "processed").await;
    assert_eq!(tenant_statuses(&app.db, ORG_ID).await, vec!["ready"]);

    // organization.deleted suspends it.
    let deleted = fixture("organization.deleted");
    let (status, _) = deliver(&app, &signed_headers("msg_deleted_1", &deleted), &deleted).await;
    assert_eq!(status, StatusCode::OK);
    wait_inbox_status(&app.db, "msg_deleted_1", "processed").await;
    assert_eq!(tenant_statuses(&app.db, ORG_ID).await, vec!["suspended"]);
    // …and schedules its deletion after the grace period (30 days by default), once.
    let scheduled: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - now())::float8 FROM jobs \
         WHERE kind = 'tenant.delete_after_grace' AND state = 'pending'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(scheduled.len(), 1, "one scheduled deletion");
    assert!(
        (29.0 * 86_400.0..=30.0 * 86_400.0 + 60.0).contains(&scheduled[0]),
        "{scheduled:?}"
    );
}

#[tokio::test]
async fn organization_updated_renames_the_tenant_and_its_settings_on_every_replica() {
    let prefix = crate::helpers::new_key_prefix();
    let app = clerk_app_with(|env| {
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
    })
    .await;
    let replica = crate::helpers::spawn_replica(&app.database, &prefix, Role::Api, |_| {}).await;
    crate::tenant_cache::wait_for_listeners(&app.database, &prefix, 2).await;
    deliver_all(&app, &[("msg_org", fixture("organization.created"))]).await;
    wait_tenant_status(&app.db, ORG_ID, "ready").await;
    let (id, db_name): (String, String) =
        sqlx::query_as("SELECT id::text, db_name FROM tenants WHERE clerk_org_id = $1")
            .bind(ORG_ID)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // The other replica reads (and caches) the settings before the rename.
    let key = app.api_key(&id).await;
    let organization_name = |app: &TestApp| {
        let request = app.get("/api/tenant").bearer_auth(&key);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["settings"]["organization_name"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let before = organization_name(&replica).await.expect("settings shown");
    assert_ne!(before, "Acme Renamed");

    let mut updated: Value = serde_json::from_slice(&fixture("organization.updated")).unwrap();
    updated["data"]["id"] = Value::from(ORG_ID);
    updated["data"]["name"] = Value::from("Acme Renamed");
    deliver_all(&app, &[("msg_upd", serde_json::to_vec(&updated).unwrap())]).await;
    wait_all_settled(&app, &["msg_upd"]).await;
    let name: String =
        sqlx::query_scalar("SELECT display_name FROM tenants WHERE clerk_org_id = $1")
            .bind(ORG_ID)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(name, "Acme Renamed");
    let tenant = PgPool::connect(&crate::helpers::database_url(&db_name))
        .await
        .unwrap();
    let setting: String = sqlx::query_scalar("SELECT organization_name FROM settings")
        .fetch_one(&tenant)
        .await
        .unwrap();
    tenant.close().await;
    assert_eq!(setting, "Acme Renamed");
    // Both replicas show the new name well before the cache TTL (60 s) would have expired the old one.
    for (which, app) in [("worker replica", &app), ("API replica", &replica)] {
        eventually(which, Duration::from_secs(5), || async {
            (organization_name(app).await.as_deref() == Some("Acme Renamed")).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn bad_deliveries_get_401_and_store_nothing() {
    let app = clerk_app().await;
    let body = fixture("organization.created");
    let id = "msg_bad";
    let ts = now();
    let good = signature(SECRET, id, ts, &body);
    let headers = |ts: i64, signature: String| {
        vec![
            ("svix-id", id.to_owned()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", signature),
        ]
    };

    let mut tampered = body.clone();
    let at = tampered
        .windows(9)
        .position(|w| w == b"Acme Corp")
        .expect("name in fixture");
    tampered[at] = b'X';

    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        ("tampered body", headers(ts, good.clone()), tampered),
        (
            "wrong secret",
            headers(ts, signature(WRONG_SECRET, id, ts, &body)),
            body.clone(),
        ),
        (
            "stale timestamp",
            headers(ts - 310, signature(SECRET, id, ts - 310, &body)),
            body.clone(),
        ),
        (
            "future timestamp",
            headers(ts + 310, signature(SECRET, id, ts + 310, &body)),
            body.clone(),
        ),
        (
            "signature of another timestamp",
            headers(ts + 1, good.clone()),
            body.clone(),
        ),
        (
            "missing svix-id",
            headers(ts, good.clone())
                .into_iter()
                .filter(|(n, _)| *n != "svix-id")
                .collect(),
            body.clone(),
        ),
        (
            "missing svix-timestamp",
            headers(ts, good.clone())
                .into_iter()
                .filter(|(n, _)| *n != "svix-timestamp")
                .collect(),
            body.clone(),
        ),
        (
            "missing svix-signature",
            headers(ts, good.clone())
                .into_iter()
                .filter(|(n, _)| *n != "svix-signature")
                .collect(),
            body.clone(),
        ),
        ("no headers", vec![], body.clone()),
        (
            "only other versions",
            headers(ts, good.replacen("v1,", "v1a,", 1)),
            body.clone(),
        ),
    ];
    for (case, headers, body) in cases {
        let (status, json) = deliver(&app, &headers, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {json}");
        assert_eq!(json["error"]["code"], "invalid_signature", "{case}: {json}");
        assert!(json["error"]["request_id"].is_string(), "{case}: {json}");
    }
    assert_eq!(inbox_rows(&app.db).await, 0);
    assert_eq!(clerk_jobs(&app.db).await, 0);
    assert!(tenant_statuses(&app.db, ORG_ID).await.is_empty());

    // A signed body that is not JSON: 400, nothing stored.
    let junk = b"not json at all".to_vec();
    let (status, json) = deliver(&app, &signed_headers("msg_junk", &junk), &junk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "malformed_json");
    assert_eq!(inbox_rows(&app.db).await, 0);
}

#[tokio::test]
async fn several_signatures_with_one_valid_and_webhook_header_names_are_accepted() {
    let app = clerk_app().await;
    let body = fixture("session.created");
    let ts = now();
    let list = format!(
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {} v1a,xyz {}",
        signature(WRONG_SECRET, "msg_multi", ts, &body),
        signature(SECRET, "msg_multi", ts, &body)
    );
    let headers = vec![
        ("svix-id", "msg_multi".to_owned()),
        ("svix-timestamp", ts.to_string()),
        ("svix-signature", list),
    ];
    let (status, json) = deliver(&app, &headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    let headers = vec![
        ("webhook-id", "msg_whitelabel".to_owned()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            signature(SECRET, "msg_whitelabel", ts, &body),
        ),
    ];
    let (status, json) = deliver(&app, &headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(inbox_status(&app.db, "msg_whitelabel").await.is_some());
    assert_eq!(inbox_rows(&app.db).await, 2);
}

#[tokio::test]
async fn the_same_delivery_ten_times_concurrently_has_one_effect() {
    let app = clerk_app().await;
    let body = fixture("organization.created");
    let headers = signed_headers("msg_concurrent", &body);
    let answers =
        futures_util::future::join_all((0..10).map(|_| deliver(&app, &headers, &body))).await;
    let mut fresh = 0;
    for (status, json) in &answers {
        assert_eq!(*status, StatusCode::OK, "{json}");
        assert_eq!(json["received"], true);
        if json["duplicate"] == false {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one delivery stored: {answers:?}");
    assert_eq!(inbox_rows(&app.db).await, 1);
    assert_eq!(clerk_jobs(&app.db).await, 1);

    wait_tenant_status(&app.db, ORG_ID, "ready").await;
    wait_inbox_status(&app.db, "msg_concurrent", "processed").await;
    assert_eq!(tenant_statuses(&app.db, ORG_ID).await.len(), 1);

    // A redelivery after processing is still a no-op.
    let (status, json) = deliver(&app, &headers, &body).await;
    assert_eq!(
        (status, json["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true))
    );
    assert_eq!(clerk_jobs(&app.db).await, 1);
}

#[tokio::test]
async fn unknown_event_types_are_stored_and_ignored() {
    let app = clerk_app().await;
    let body = fixture("session.created");
    let (status, json) = deliver(&app, &signed_headers("msg_session", &body), &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    wait_inbox_status(&app.db, "msg_session", "ignored").await;
    let (event_type, note): (String, Option<String>) = sqlx::query_as(
        "SELECT event_type, last_error FROM webhook_inbox WHERE dedupe_key = 'msg_session'",
    )
    .fetch_one(&app.db)
    .await
    .expect("row");
    assert_eq!(event_type, "session.created");
    assert!(note.is_some_and(|n| n.contains("not handled")));
}

#[tokio::test]
async fn a_deletion_seen_before_the_creation_prevents_the_tenant() {
    let app = clerk_app().await;
    let deleted = fixture("organization.deleted");
    let (status, _) = deliver(&app, &signed_headers("msg_del_first", &deleted), &deleted).await;
    assert_eq!(status, StatusCode::OK);
    wait_inbox_status(&app.db, "msg_del_first", "ignored").await;

    let created = fixture("organization.created");
    let (status, _) = deliver(
        &app,
        &signed_headers("msg_created_late", &created),
        &created,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_inbox_status(&app.db, "msg_created_late", "ignored").await;
    assert!(tenant_statuses(&app.db, ORG_ID).await.is_empty());
}

#[tokio::test]
async fn without_a_webhook_secret_deliveries_are_refused() {
    let app = spawn_app_with(Role::Api, |_| {}).await;
    let body = fixture("organization.created");
    let (status, json) = deliver(&app, &signed_headers("msg_unconfigured", &body), &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(json["error"]["code"], "clerk_webhooks_not_configured");
    assert_eq!(inbox_rows(&app.db).await, 0);
}

/// A membership delivery built from the fixture: `kind` is created/updated/deleted.
fn membership(
    kind: &str,
    membership_id: &str,
    user_id: &str,
    email: &str,
    role: &str,
    updated_at: i64,
) -> Vec<u8> {
    let mut event: Value =
        serde_json::from_slice(&fixture("organizationMembership.created")).unwrap();
    event["type"] = Value::from(format!("organizationMembership.{kind}"));
    let data = &mut event["data"];
    data["id"] = Value::from(membership_id);
    data["role"] = Value::from(role);
    data["updated_at"] = Value::from(updated_at);
    data["public_user_data"]["user_id"] = Value::from(user_id);
    data["public_user_data"]["identifier"] = Value::from(email);
    data["public_user_data"]["first_name"] = Value::from(user_id);
    serde_json::to_vec(&event).unwrap()
}

/// (clerk user id, email, role) of every member of the organization's tenant database.
async fn members(app: &TestApp, org_id: &str) -> Vec<(Option<String>, String, String)> {
    let db_name: String = sqlx::query_scalar("SELECT db_name FROM tenants WHERE clerk_org_id = $1")
        .bind(org_id)
        .fetch_one(&app.db)
        .await
        .expect("tenant of org");
    let tenant = PgPool::connect(&crate::helpers::database_url(&db_name))
        .await
        .expect("tenant db");
    let rows = sqlx::query_as("SELECT clerk_user_id, email, role_key FROM members ORDER BY email")
        .fetch_all(&tenant)
        .await
        .expect("members");
    tenant.close().await;
    rows
}

async fn deliver_all(app: &TestApp, deliveries: &[(&str, Vec<u8>)]) {
    for (id, body) in deliveries {
        let (status, answer) = deliver(app, &signed_headers(id, body), body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
}

async fn wait_all_settled(app: &TestApp, ids: &[&str]) {
    eventually("deliveries settled", WAIT, || async {
        for id in ids {
            let status = inbox_status(&app.db, id).await;
            assert_ne!(status.as_deref(), Some("failed"), "{id} failed");
            if !matches!(status.as_deref(), Some("processed" | "ignored")) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test]
async fn membership_events_in_any_order_leave_the_latest_state() {
    let app = clerk_app().await;
    let created = fixture("organization.created");
    deliver_all(&app, &[("msg_org", created)]).await;
    wait_tenant_status(&app.db, ORG_ID, "ready").await;

    // Alice joins as member, then becomes admin; Bob joins and leaves. Delivered newest first, mixed.
    let deliveries = [
        (
            "msg_bob_del",
            membership(
                "deleted",
                "orgmem_bob",
                "user_bob",
                "bob@acme.com",
                "org:member",
                2000,
            ),
        ),
        (
            "msg_alice_upd",
            membership(
                "updated",
                "orgmem_alice",
                "user_alice",
                "alice@acme.com",
                "org:admin",
                2000,
            ),
        ),
        (
            "msg_bob_new",
            membership(
                "created",
                "orgmem_bob",
                "user_bob",
                "bob@acme.com",
                "org:member",
                1000,
            ),
        ),
        (
            "msg_alice_new",
            membership(
                "created",
                "orgmem_alice",
                "user_alice",
                "alice@acme.com",
                "org:member",
                1000,
            ),
        ),
    ];
    deliver_all(&app, &deliveries).await;
    let ids: Vec<&str> = deliveries.iter().map(|(id, _)| *id).collect();
    wait_all_settled(&app, &ids).await;
    // A repeated old delivery changes nothing.
    let replay = membership(
        "created",
        "orgmem_alice",
        "user_alice",
        "alice@acme.com",
        "org:member",
        1000,
    );
    deliver_all(&app, &[("msg_alice_replay", replay)]).await;
    wait_all_settled(&app, &["msg_alice_replay"]).await;

    let members = members(&app, ORG_ID).await;
    let alice: Vec<_> = members
        .iter()
        .filter(|m| m.0.as_deref() == Some("user_alice"))
        .collect();
    assert_eq!(alice.len(), 1, "{members:?}");
    assert_eq!(alice[0].1, "alice@acme.com");
    assert_eq!(alice[0].2, "admin", "the latest role wins");
    assert!(
        !members
            .iter()
            .any(|m| m.0.as_deref() == Some("user_bob") || m.1 == "bob@acme.com"),
        "Bob left: {members:?}"
    );
    assert!(
        members.iter().any(|m| m.2 == "owner"),
        "the owner stays: {members:?}"
    );
}

#[tokio::test]
async fn a_membership_that_arrives_before_its_organization_is_applied_once_the_tenant_is_ready() {
    let app = clerk_app().await;
    // The creator's membership first: it must link to the owner row seeded for the tenant, not add a second.
    let creator = membership(
        "created",
        "orgmem_creator",
        "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
        "founder@acme.com",
        "org:admin",
        1000,
    );
    deliver_all(&app, &[("msg_creator", creator)]).await;
    deliver_all(&app, &[("msg_org", fixture("organization.created"))]).await;
    wait_tenant_status(&app.db, ORG_ID, "ready").await;
    wait_all_settled(&app, &["msg_creator"]).await;

    let members = members(&app, ORG_ID).await;
    assert_eq!(members.len(), 1, "one member, the owner: {members:?}");
    assert_eq!(
        members[0].0.as_deref(),
        Some("user_2g7np7Hrk0SN6kj5EDMLDaKNL0S")
    );
    assert_eq!(
        members[0].1, "founder@acme.com",
        "the placeholder email is replaced"
    );
    assert_eq!(members[0].2, "owner");
    let owner: String =
        sqlx::query_scalar("SELECT owner_email FROM tenants WHERE clerk_org_id = $1")
            .bind(ORG_ID)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(owner, "founder@acme.com", "the registry's owner email too");
}

#[tokio::test]
async fn user_updates_and_deletions_reach_the_members_of_their_tenants() {
    let app = clerk_app().await;
    deliver_all(&app, &[("msg_org", fixture("organization.created"))]).await;
    wait_tenant_status(&app.db, ORG_ID, "ready").await;
    let user = "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S";
    let joined = membership(
        "created",
        "orgmem_john",
        user,
        "john@acme.com",
        "org:member",
        1000,
    );
    deliver_all(&app, &[("msg_join", joined)]).await;
    wait_all_settled(&app, &["msg_join"]).await;

    let mut updated: Value = serde_json::from_slice(&fixture("user.updated")).unwrap();
    updated["data"]["id"] = Value::from(user);
    updated["data"]["primary_email_address_id"] = Value::from("idn_1");
    updated["data"]["email_addresses"] =
        serde_json::json!([{ "id": "idn_1", "email_address": "John.New@Acme.com" }]);
    deliver_all(
        &app,
        &[("msg_user_upd", serde_json::to_vec(&updated).unwrap())],
    )
    .await;
    wait_all_settled(&app, &["msg_user_upd"]).await;
    let members_now = members(&app, ORG_ID).await;
    assert!(
        members_now
            .iter()
            .any(|m| m.0.as_deref() == Some(user) && m.1 == "john.new@acme.com"),
        "{members_now:?}"
    );

    let mut deleted: Value = serde_json::from_slice(&fixture("user.deleted")).unwrap();
    deleted["data"]["id"] = Value::from(user);
    deliver_all(
        &app,
        &[("msg_user_del", serde_json::to_vec(&deleted).unwrap())],
    )
    .await;
    wait_all_settled(&app, &["msg_user_del"]).await;
    let members_after = members(&app, ORG_ID).await;
    assert!(
        !members_after.iter().any(|m| m.0.as_deref() == Some(user)),
        "{members_after:?}"
    );
}

#[tokio::test]
async fn deliveries_from_another_clerk_instance_are_stored_but_not_acted_on() {
    let app = clerk_app_with(|env| {
        env.push((
            "WOSOOL_CLERK__INSTANCE_ID".into(),
            "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S".into(),
        ));
    })
    .await;
    let mut foreign: Value = serde_json::from_slice(&fixture("organization.created")).unwrap();
    foreign["instance_id"] = Value::from("ins_development_instance");
    deliver_all(
        &app,
        &[("msg_foreign", serde_json::to_vec(&foreign).unwrap())],
    )
    .await;
    wait_inbox_status(&app.db, "msg_foreign", "ignored").await;
    assert!(tenant_statuses(&app.db, ORG_ID).await.is_empty());

    // The same event from our own instance (the fixture's) is applied.
    deliver_all(&app, &[("msg_ours", fixture("organization.created"))]).await;
    wait_tenant_status(&app.db, ORG_ID, "ready").await;
}
