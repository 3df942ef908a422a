//! Notifications end to end: a real SMTP sink on loopback (aiosmtpd from the test virtualenv,
//! `tests/smtp/sink.py`) and a local operator webhook receive what the real flows raise; retries while SMTP is
//! down, permanent refusals, dedupe, the admin listing and the skipped record when notifications are off.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use wosool::Role;
use wosool::notify::{Enqueued, Notice};
use wosool::tenancy::TenantId;

use crate::helpers::{self, TestApp, eventually};
use crate::helpers::{answer, spawn_driven, wait_for_run};

const WAIT: Duration = Duration::from_secs(30);

/// aiosmtpd on a loopback port, writing each message as JSON into a temporary directory; killed on drop.
struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start(port: u16) -> Self {
        let python = std::env::var("WOSOOL_TEST_PYTHON")
            .expect("WOSOOL_TEST_PYTHON is not set: run the tests with scripts/test");
        let dir = tempfile::tempdir().expect("tempdir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py");
        let child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .spawn()
            .expect("start the SMTP sink");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "SMTP sink not listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir }
    }

    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
            .collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<Value> {
        eventually("emails in the SMTP sink", WAIT, || async {
            let messages = self.messages();
            (messages.len() >= count).then_some(messages)
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An operator webhook: records each call's headers and JSON body.
#[derive(Clone, Default)]
struct Hook {
    calls: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Hook {
    async fn start() -> (Self, String) {
        let hook = Self::default();
        let recorder = hook.clone();
        let app = axum::Router::new().route(
            "/hooks/T123/secret-token",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let recorder = recorder.clone();
                async move {
                    recorder.calls.lock().unwrap().push((headers, body));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/T123/secret-token",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (hook, url)
    }

    async fn wait_for(&self, kind: &str) -> (HeaderMap, Value) {
        eventually("an operator webhook call", WAIT, || async {
            self.calls.lock().unwrap().iter().find_map(|(h, b)| {
                let body: Value = serde_json::from_slice(b).ok()?;
                (body["kind"] == kind).then(|| (h.clone(), body))
            })
        })
        .await
    }
}

const HOOK_SECRET: &str = "hook-signing-secret";

fn notify_env(smtp_port: u16, hook_url: &str, operators: &str) -> Vec<(String, String)> {
    [
        ("WOSOOL_NOTIFY__ENABLED", "true".to_owned()),
        ("WOSOOL_NOTIFY__SMTP_HOST", "127.0.0.1".into()),
        ("WOSOOL_NOTIFY__SMTP_PORT", smtp_port.to_string()),
        ("WOSOOL_NOTIFY__SMTP_TLS", "none".into()),
        (
            "WOSOOL_NOTIFY__FROM",
            "Wosool <no-reply@wosool.test>".into(),
        ),
        ("WOSOOL_NOTIFY__PUBLIC_URL", "https://wosool.test".into()),
        ("WOSOOL_NOTIFY__DEFAULT_LOCALE", "en".into()),
        ("WOSOOL_NOTIFY__OPERATOR_EMAILS", operators.into()),
        ("WOSOOL_NOTIFY__OPERATOR_WEBHOOK_URL", hook_url.into()),
        (
            "WOSOOL_NOTIFY__OPERATOR_WEBHOOK_SECRET",
            if hook_url.is_empty() { "" } else { HOOK_SECRET }.into(),
        ),
        ("WOSOOL_NOTIFY__MAX_ATTEMPTS", "20".into()),
        ("WOSOOL_JOBS__RETRY_BASE_MS", "100".into()),
        ("WOSOOL_JOBS__RETRY_MAX_SECS", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn app_with(env: Vec<(String, String)>) -> TestApp {
    helpers::spawn_app_with(Role::All, move |e| e.extend(env)).await
}

async fn notifications(app: &TestApp, query: &str) -> Vec<Value> {
    let body = app
        .call(
            app.admin_get(&format!("/api/admin/notifications?{query}")),
            reqwest::StatusCode::OK,
        )
        .await;
    body["notifications"].as_array().unwrap().clone()
}

async fn wait_status(app: &TestApp, query: &str, status: &str) -> Value {
    eventually(
        &format!("a notification {query} {status}"),
        WAIT,
        || async {
            notifications(app, query)
                .await
                .into_iter()
                .find(|n| n["status"] == status)
        },
    )
    .await
}

#[tokio::test]
async fn notify_welcome_email_in_arabic_reaches_the_smtp_sink_when_a_tenant_is_ready() {
    let port = helpers::closed_port();
    let sink = SmtpSink::start(port);
    let (_hook, hook_url) = Hook::start().await;
    let app = app_with(notify_env(port, &hook_url, "[\"ops@wosool.test\"]")).await;

    let registered = app.register_ready("متجر الورد").await;
    let tenant = registered["tenant_id"].as_str().unwrap().to_owned();

    let messages = sink.wait_for(1).await;
    let mail = &messages[0];
    assert_eq!(mail["rcpt_tos"], json!(["owner@example.sa"]), "{mail}");
    assert_eq!(mail["mail_from"], "no-reply@wosool.test");
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.contains("أهلاً بك في وصول") && subject.contains("متجر الورد"),
        "{subject}"
    );
    // The Arabic subject travels RFC 2047-encoded as UTF-8, the body as UTF-8 text.
    assert!(
        mail["raw_subject"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .starts_with("=?utf-8?"),
        "{mail}"
    );
    assert_eq!(mail["charset"], "utf-8");
    assert_eq!(mail["content_language"], "ar");
    let body = mail["body"].as_str().unwrap();
    assert!(body.contains("تم تجهيز حساب متجر الورد"), "{body}");
    assert!(body.contains("https://wosool.test/app"), "{body}");

    let sent = wait_status(
        &app,
        &format!("tenant_id={tenant}&kind=tenant_ready"),
        "sent",
    )
    .await;
    assert_eq!(sent["channel"], "email");
    assert_eq!(sent["recipient"], "owner@example.sa");
    assert_eq!(sent["locale"], "ar");
    assert_eq!(sent["attempts"], 1);
    let metrics = app.metrics().await;
    assert_eq!(
        helpers::metric_value(
            &metrics,
            "notifications_sent_total",
            &[
                ("channel", "email"),
                ("kind", "tenant_ready"),
                ("outcome", "sent")
            ]
        ),
        Some(1.0),
        "{metrics}"
    );

    // The same notice again (a finalize re-run): nothing more is sent.
    let tenant_id: TenantId = tenant.parse().unwrap();
    let again = wosool::notify::enqueue(&app.db, &Notice::TenantReady { tenant_id })
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate);
    assert_eq!(
        notifications(&app, &format!("tenant_id={tenant}&kind=tenant_ready"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn notify_operators_hear_of_a_finished_deletion_by_email_and_signed_webhook() {
    let port = helpers::closed_port();
    let sink = SmtpSink::start(port);
    let (hook, hook_url) = Hook::start().await;
    let app = app_with(notify_env(port, &hook_url, "[\"ops@wosool.test\"]")).await;
    let registered = app.register_ready("Rose Boutique").await;
    let tenant = registered["tenant_id"].as_str().unwrap().to_owned();
    sink.wait_for(1).await;

    app.call(
        app.admin_delete(&format!("/api/admin/tenants/{tenant}")),
        reqwest::StatusCode::ACCEPTED,
    )
    .await;

    let (headers, body) = hook.wait_for("deletion_finished").await;
    assert_eq!(body["tenant_id"], tenant.as_str());
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("Tenant deleted: Rose Boutique") && text.contains(&tenant),
        "{text}"
    );
    assert_eq!(body["fields"]["keep_data"], "no");
    // The signature covers the timestamp and the exact body.
    let signature = headers["x-wosool-signature"].to_str().unwrap();
    let at: i64 = signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    let raw = {
        let calls = hook.calls.lock().unwrap();
        calls
            .iter()
            .find(|(_, b)| {
                serde_json::from_slice::<Value>(b).unwrap()["kind"] == "deletion_finished"
            })
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        signature,
        wosool::notify::webhook::sign(&wosool::config::Secret::new(HOOK_SECRET), at, &raw)
    );

    let messages = sink.wait_for(2).await;
    let ops = messages
        .iter()
        .find(|m| m["rcpt_tos"] == json!(["ops@wosool.test"]))
        .expect("an operator email");
    assert_eq!(ops["subject"], "[Wosool] Tenant deleted: Rose Boutique");
    let rows = notifications(&app, &format!("tenant_id={tenant}&kind=deletion_finished")).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    // The webhook's recipient is its host, never the URL's token.
    assert!(
        rows.iter()
            .all(|r| !r["recipient"].as_str().unwrap().contains("secret-token"))
    );
}

#[tokio::test]
async fn notify_provisioning_failed_after_the_last_attempt_reaches_operators_and_the_message_is_true()
 {
    let port = helpers::closed_port();
    let _sink = SmtpSink::start(port);
    let (hook, hook_url) = Hook::start().await;
    let mut extra: Vec<(String, String)> = notify_env(port, &hook_url, "[]");
    extra.push(("WOSOOL_TENANCY__PROVISION_MAX_ATTEMPTS".into(), "1".into()));
    let extra_refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let driven = spawn_driven(Role::Api, &extra_refs).await;
    let app = &driven.app;
    let stack = driven.stack().await;
    let registered = app
        .call(
            app.client
                .post(app.url("/api/auth/register-organization"))
                .json(&json!({ "organization_name": "Broken", "admin_email": "owner@example.sa" })),
            reqwest::StatusCode::ACCEPTED,
        )
        .await;
    let tenant = registered["tenant_id"].as_str().unwrap().to_owned();
    let run = registered["provisioning_id"].as_str().unwrap().to_owned();
    stack
        .provisioner
        .execute(
            run.parse().unwrap(),
            Some(wosool::provisioning::Step::Migrate),
        )
        .await
        .unwrap();
    let (_, db_name, _) = crate::helpers::tenant_row(app, &tenant).await;
    let db = crate::helpers::tenant_db(&db_name).await;
    sqlx::query("ALTER TABLE roles RENAME TO roles_broken")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let (stop, worker) = driven.worker().await;
    wait_for_run(app, &run, "failed").await;

    let (_, body) = hook.wait_for("provisioning_failed").await;
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("Provisioning failed: Broken") && text.contains("seed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("wosool tenants retry {tenant}")),
        "{text}"
    );

    // What the tenant's callers read is true: recorded for the operators (who were just notified).
    let key = app.api_key(&tenant).await;
    let (status, answer) = crate::helpers::get_with_key(app, "/api/tenant", &key).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(!message.contains("support has been notified"), "{message}");
    assert!(message.contains("recorded for the operators"), "{message}");
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn notify_retries_while_smtp_is_down_then_delivers() {
    let port = helpers::closed_port();
    let app = app_with(notify_env(port, "", "[\"ops@wosool.test\"]")).await;
    let notice = Notice::BackupFailed {
        set_id: "set-1".into(),
        scope: "global".into(),
        tenant_id: None,
        error: "pg_dump exited 1".into(),
    };
    wosool::notify::enqueue(&app.db, &notice).await.unwrap();

    // Nothing listens: the attempts fail as transient and the delivery stays pending.
    let pending = eventually("a failed attempt", WAIT, || async {
        notifications(&app, "kind=backup_failed")
            .await
            .into_iter()
            .find(|n| n["status"] == "pending" && n["attempts"].as_i64() >= Some(2))
    })
    .await;
    assert!(
        pending["error"].as_str().unwrap().starts_with("SMTP"),
        "{pending}"
    );

    let sink = SmtpSink::start(port);
    let sent = wait_status(&app, "kind=backup_failed", "sent").await;
    assert!(sent["attempts"].as_i64().unwrap() >= 3, "{sent}");
    assert!(sent["error"].is_null());
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(mail["subject"], "[Wosool] Backup failed (global)");
    assert!(mail["body"].as_str().unwrap().contains("pg_dump exited 1"));
}

#[tokio::test]
async fn notify_a_permanent_refusal_is_recorded_as_failed_at_once() {
    let port = helpers::closed_port();
    let sink = SmtpSink::start(port);
    let app = app_with(notify_env(
        port,
        "",
        "[\"reject@wosool.test\", \"ops@wosool.test\"]",
    ))
    .await;
    let tenant_id = TenantId::new();
    let notice = Notice::TenantMoveFailed {
        tenant_id,
        from_server: "main".into(),
        to_server: "second".into(),
        error: "row counts differ".into(),
    };
    wosool::notify::enqueue(&app.db, &notice).await.unwrap();
    let failed = wait_status(&app, "kind=tenant_move_failed&status=failed", "failed").await;
    assert_eq!(failed["recipient"], "reject@wosool.test");
    assert_eq!(failed["attempts"], 1);
    assert!(
        failed["error"].as_str().unwrap().contains("550"),
        "{failed}"
    );
    // The other operator still gets it.
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(mail["rcpt_tos"], json!(["ops@wosool.test"]));
    // Bad filters are 400s.
    let (status, body) = answer(
        app.admin_get("/api/admin/notifications?status=lost")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");
}

#[tokio::test]
async fn notify_sync_failing_for_a_day_tells_the_merchant_once_a_day() {
    let port = helpers::closed_port();
    let sink = SmtpSink::start(port);
    let app = app_with(notify_env(port, "", "[]")).await;
    let registered = app.register_ready("Sync Store").await;
    let tenant = registered["tenant_id"].as_str().unwrap().to_owned();
    sink.wait_for(1).await; // the welcome
    sqlx::query(
        "INSERT INTO salla_stores (merchant_id, tenant_id, status) VALUES ($1, $2::uuid, 'installed')",
    )
    .bind(777_001_i64)
    .bind(&tenant)
    .execute(&app.db)
    .await
    .unwrap();
    let (_, db_name, _) = crate::helpers::tenant_row(&app, &tenant).await;
    let db = crate::helpers::tenant_db(&db_name).await;
    sqlx::query(
        "UPDATE sync_state SET last_error = 'page 3: 500', failing_since = now() - interval '25 hours' \
         WHERE resource = 'orders'",
    )
    .execute(&db)
    .await
    .unwrap();

    let check = || async {
        app.call(
            app.admin_post("/api/admin/jobs")
                .json(&json!({ "kind": "notify.sync_check", "payload": {} })),
            reqwest::StatusCode::CREATED,
        )
        .await;
    };
    check().await;
    let messages = sink.wait_for(2).await;
    let mail = &messages[1];
    assert_eq!(mail["rcpt_tos"], json!(["owner@example.sa"]));
    let body = mail["body"].as_str().unwrap();
    assert!(body.contains("الطلبات"), "{body}");
    wait_status(
        &app,
        &format!("tenant_id={tenant}&kind=sync_failing"),
        "sent",
    )
    .await;

    // Checked again the same day: nothing new.
    check().await;
    eventually("the second check ran", WAIT, || async {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'notify.sync_check' AND state IN ('pending', 'running')",
        )
        .fetch_one(&app.db)
        .await
        .ok()?;
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(
        notifications(&app, &format!("tenant_id={tenant}&kind=sync_failing"))
            .await
            .len(),
        1
    );
    assert_eq!(sink.messages().len(), 2);
    db.close().await;
}

#[tokio::test]
async fn notify_when_off_a_notice_is_recorded_as_skipped_with_the_reason() {
    let app = helpers::spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("Quiet Store").await;
    let tenant = registered["tenant_id"].as_str().unwrap();
    let skipped = wait_status(&app, &format!("tenant_id={tenant}"), "skipped").await;
    assert_eq!(skipped["kind"], "tenant_ready");
    assert_eq!(skipped["channel"], "none");
    assert!(
        skipped["error"]
            .as_str()
            .unwrap()
            .contains("notify.enabled = false"),
        "{skipped}"
    );
}
