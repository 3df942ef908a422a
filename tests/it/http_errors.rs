//! Every error path of the HTTP base answers the JSON envelope with the right status and the request id.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

/// Asserts the envelope shape and returns `(code, request_id)`.
async fn error_of(response: reqwest::Response, status: StatusCode) -> (String, String) {
    assert_eq!(response.status(), status);
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header on every response")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = response.json().await.expect("JSON error body");
    let error = &body["error"];
    let code = error["code"].as_str().expect("error.code").to_owned();
    assert!(
        code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "snake_case code: {code}"
    );
    assert!(!error["message"].as_str().expect("error.message").is_empty());
    assert_eq!(
        error["request_id"].as_str(),
        Some(header_id.as_str()),
        "body and header carry the same id"
    );
    (code, header_id)
}

fn post_jobs(app: &TestApp) -> reqwest::RequestBuilder {
    app.admin_post("/admin/jobs")
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let response = post_jobs(&app)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(code, "malformed_json");
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_422() {
    let app = spawn_app().await;
    let response = post_jobs(&app)
        .json(&serde_json::json!({ "kind": 42 }))
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(code, "invalid_body");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let response = post_jobs(&app)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(code, "unsupported_media_type");
}

#[tokio::test]
async fn oversized_body_is_413_with_or_without_content_length() {
    let app = spawn_app_with_limit(1024).await;
    let big = format!(
        "{{\"kind\":\"jobs.prune\",\"payload\":\"{}\"}}",
        "x".repeat(4096)
    );

    let declared = post_jobs(&app)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(declared, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(code, "payload_too_large");

    // Chunked: no Content-Length to refuse up front, so the limit must bite while reading.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let chunked = post_jobs(&app)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(chunked, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(code, "payload_too_large");
}

async fn spawn_app_with_limit(limit: usize) -> TestApp {
    crate::helpers::spawn_app_with(wosool::Role::Api, |env| {
        env.push(("WOSOOL_SERVER__BODY_LIMIT_BYTES".into(), limit.to_string()))
    })
    .await
}

#[tokio::test]
async fn unknown_route_is_404_naming_the_path() {
    let app = spawn_app().await;
    let response = app.get("/no/such/thing").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /no/such/thing")
    );
}

#[tokio::test]
async fn wrong_method_is_405() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(response, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(code, "method_not_allowed");
}

#[tokio::test]
async fn an_incoming_request_id_is_kept_and_echoed() {
    let app = spawn_app().await;
    let response = app
        .get("/nowhere")
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    let (_, id) = error_of(response, StatusCode::NOT_FOUND).await;
    assert_eq!(id, "trace-abc-123");

    let ok = app.get("/health/live").send().await.unwrap();
    let generated = ok
        .headers()
        .get("x-request-id")
        .expect("generated id")
        .to_str()
        .unwrap();
    assert_eq!(
        generated.len(),
        36,
        "a UUID is generated when the client sends none"
    );
}

#[tokio::test]
async fn admin_api_refuses_missing_and_wrong_keys() {
    let app = spawn_app().await;
    let missing = app.get("/admin/jobs").send().await.unwrap();
    let (code, _) = error_of(missing, StatusCode::UNAUTHORIZED).await;
    assert_eq!(code, "unauthorized");

    let wrong = app
        .get("/admin/jobs")
        .header("x-admin-key", "not-the-key-at-all-000")
        .send()
        .await
        .unwrap();
    error_of(wrong, StatusCode::UNAUTHORIZED).await;

    let right = app.admin_get("/admin/jobs").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_api_is_disabled_without_keys() {
    let app = crate::helpers::spawn_app_with(wosool::Role::Api, |env| {
        env.push(("WOSOOL_ADMIN__API_KEYS".into(), "[]".into()))
    })
    .await;
    let response = app.admin_get("/admin/jobs").send().await.unwrap();
    let (code, _) = error_of(response, StatusCode::FORBIDDEN).await;
    assert_eq!(code, "admin_api_disabled");
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_400() {
    let app = spawn_app().await;
    let (code, _) = error_of(
        app.admin_get("/admin/jobs/abc").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code, "invalid_path");
    let (code, _) = error_of(
        app.admin_get("/admin/jobs?limit=many")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code, "invalid_query");
    let (code, _) = error_of(
        app.admin_get("/admin/jobs?state=sleeping")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code, "invalid_query");
}

#[tokio::test]
async fn enqueue_validates_kind_and_payload_and_reports_duplicates() {
    let app = spawn_app().await;
    let unknown = post_jobs(&app)
        .json(&serde_json::json!({ "kind": "no.such.kind" }))
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(unknown, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(code, "unknown_job_kind");

    let bad_payload = post_jobs(&app)
        .json(
            &serde_json::json!({ "kind": "jobs.prune", "payload": { "retention_hours": "soon" } }),
        )
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(bad_payload, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(code, "invalid_payload");

    let job = serde_json::json!({
        "kind": "jobs.prune",
        "payload": { "retention_hours": 1, "discarded_retention_hours": 2 },
        "unique_key": "manual",
        "run_at": "2999-01-01T00:00:00Z",
    });
    let first = post_jobs(&app).json(&job).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = post_jobs(&app).json(&job).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["job"]["id"], second["job"]["id"]);

    let id = first["job"]["id"].as_i64().unwrap();
    let cancelled = app
        .admin_post(&format!("/admin/jobs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let again = app
        .admin_post(&format!("/admin/jobs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(again, StatusCode::CONFLICT).await;
    assert_eq!(code, "invalid_job_state");
    let retried: Value = app
        .admin_post(&format!("/admin/jobs/{id}/retry"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(retried["state"], "pending");
    let missing = app.admin_get("/admin/jobs/999999999").send().await.unwrap();
    let (code, _) = error_of(missing, StatusCode::NOT_FOUND).await;
    assert_eq!(code, "job_not_found");
}

#[tokio::test]
async fn version_reports_the_crate_version() {
    let app = spawn_app().await;
    let body: Value = app
        .get("/api/version")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["name"], "wosool");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

/// Text PostgreSQL cannot store (a NUL character) is the client's error, refused where the query is parsed
/// (422 `invalid_text`), never a 500.
#[tokio::test]
async fn a_nul_character_in_a_filter_is_422_before_the_database() {
    let app = spawn_app().await;
    for path in [
        "/admin/tenants?search=a%00b",
        "/admin/tenants?plan=pro%00",
        "/admin/jobs?kind=x%00y",
    ] {
        let response = app.admin_get(path).send().await.unwrap();
        let (code, _) = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(code, "invalid_text", "{path}");
    }
}

#[tokio::test]
async fn text_that_cannot_be_stored_is_422_invalid_text() {
    let app = spawn_app().await;
    let response = post_jobs(&app)
        .header("content-type", "application/json")
        .body(r#"{"kind": "jobs.prune\u0000", "payload": {}}"#)
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(code, "invalid_text");
}

#[tokio::test]
async fn too_many_headers_are_431_with_the_envelope() {
    let app = spawn_app().await;
    let mut request = app.get("/health/live");
    for i in 0..120 {
        request = request.header(format!("x-h-{i}"), "v");
    }
    let (code, _) = error_of(
        request.send().await.unwrap(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    )
    .await;
    assert_eq!(code, "headers_too_large");
}
