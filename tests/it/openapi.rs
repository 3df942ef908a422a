//! The API reference (`src/openapi/`, `docs/api.md`): the OpenAPI document covers the router's own route table
//! (`wosool::router::table()`, what the attack suite walks) — every route and method, a request body where the
//! handler reads one, a success response with its shape, the error envelope on errors — and nothing else; it is
//! valid OpenAPI 3.1 (`openapi-spec-validator`); real answers of representative routes validate against the
//! schemas it gives them (`jsonschema`); and `/api/docs` shows every operation without loading anything.
//!
//! The merchant app's HTML pages and static files are left out on purpose (`wosool::openapi::NOT_IN_DOCUMENT`).

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wosool::access::{Access, RouteInfo};
use wosool::openapi::{NOT_IN_DOCUMENT, excluded, same_route};

use crate::helpers::{ADMIN_KEY, TestApp};
use crate::merchant_api::{Store, app, exec, store};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn document() -> Value {
    serde_json::to_value(wosool::openapi::document()).expect("the document is JSON")
}

/// The document's operations: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn method_of(name: &str) -> Method {
    name.to_ascii_uppercase().parse().expect("a method")
}

/// The schema of `status`'s JSON answer to `method path`.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: no JSON schema for {status}: {response}"
    );
    schema.clone()
}

#[test]
fn openapi_document_covers_every_route_of_the_router() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let table = wosool::router::table();
    let ops = operations(&doc);
    let tags: HashSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().expect("tag name"))
        .collect();

    // Every route of the router is in the document, or declared out of it.
    let mut missing = Vec::new();
    for route in &table {
        let documented: Vec<_> = ops
            .iter()
            .filter(|(m, p, _)| same_route(route, &method_of(m), p))
            .collect();
        if excluded(&route.path) {
            assert!(
                documented.is_empty(),
                "{route:?} is declared out of the document but is in it"
            );
        } else if documented.is_empty() {
            missing.push(format!("{:?} {}", route.method, route.path));
        }
    }
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:#?}"
    );
    for (prefix, _) in NOT_IN_DOCUMENT {
        assert!(
            table.iter().any(|r| r.path.starts_with(prefix)),
            "{prefix} is declared out of the document but the router serves nothing there"
        );
    }

    // Every operation is a route, with a unique id, a declared tag, a success answer and enveloped errors.
    let mut ids = HashSet::new();
    for (method, path, op) in &ops {
        let what = format!("{method} {path}");
        let route: &RouteInfo = table
            .iter()
            .find(|r| same_route(r, &method_of(method), path))
            .unwrap_or_else(|| panic!("{what} is documented but the router does not serve it"));
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "{what}: operationId {id} twice");
        let tag = op["tags"][0].as_str().unwrap_or_default();
        assert!(tags.contains(tag), "{what}: tag {tag:?} is not declared");
        let responses = op["responses"].as_object().expect("responses");
        let success: Vec<_> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert!(!success.is_empty(), "{what}: no success response");
        for status in success {
            if status != "204" {
                let content = responses[status]["content"].as_object();
                assert!(
                    content.is_some_and(|c| c.values().all(|m| m["schema"].is_object())),
                    "{what}: {status} has no body schema"
                );
            }
        }
        for (status, response) in responses {
            if status == "default" || status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope",
                    "{what}: {status} is not the error envelope"
                );
            }
        }
        // The security follows the route's declared access.
        let schemes: Vec<Vec<String>> = op["security"]
            .as_array()
            .map(|alternatives| {
                alternatives
                    .iter()
                    .map(|a| {
                        a.as_object()
                            .expect("requirement")
                            .keys()
                            .cloned()
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        match route.access {
            Access::Operator => assert_eq!(schemes, [["admin_key"]], "{what}"),
            Access::Tenant(..) | Access::TenantDynamic => assert!(
                schemes.contains(&vec!["bearer".to_owned()])
                    && schemes.contains(&vec!["api_key".to_owned(), "tenant_id".to_owned()]),
                "{what}: {schemes:?}"
            ),
            Access::Public | Access::Webhook => assert!(schemes.is_empty(), "{what}"),
        }
    }
    // The `/admin/*` aliases of the operators' routes are there too.
    assert!(doc["paths"]["/admin/tenants"]["get"]["x-alias-of"] == "/api/admin/tenants");
}

/// A tenant with store rows, for answers with data in them.
async fn world() -> (TestApp, Store) {
    let app = app().await;
    let shop = store(&app, "OpenAPI Store").await;
    exec(
        &shop.db,
        "INSERT INTO customers (salla_id, first_name, raw) VALUES (501, 'Noura', '{}');
         INSERT INTO products (salla_id, name, raw) VALUES (502, 'Dates', '{}');
         INSERT INTO orders (salla_id, customer_salla_id, total, ordered_at, raw)
             VALUES (503, 501, 10.00, now(), '{}');
         INSERT INTO order_items (salla_id, order_salla_id, product_salla_id, name, quantity, total, raw)
             VALUES (504, 503, 502, 'Dates', 1, 10.00, '{}');
         INSERT INTO abandoned_carts (salla_id, total, raw) VALUES (505, 20.00, '{}');",
    )
    .await;
    (app, shop)
}

/// `path` with every `{param}` an id that names nothing (a handler reached answers 404, not an action).
fn nowhere(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closed") + start;
        out.push_str(&rest[..start]);
        let value = match &rest[start + 1..end] {
            "id" if path.contains("/jobs/") || path.contains("/webhooks/") => {
                "987654321".to_owned()
            }
            "merchant_id" => "987654321".to_owned(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn openapi_request_bodies_are_the_ones_the_handlers_read() {
    let (app, shop) = world().await;
    let doc = document();
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for route in wosool::router::table() {
        // Webhooks read raw bytes (their signature first); the CRM proxy forwards whatever it gets.
        let Some(method) = route.method.clone() else {
            continue;
        };
        if excluded(&route.path) || route.access == Access::Webhook || method == Method::GET {
            continue;
        }
        let op = &doc["paths"][&route.path][method.as_str().to_ascii_lowercase()];
        let documented = op["requestBody"]["content"]["application/json"].is_object();
        // No body and no content type: a handler that reads a JSON body answers 415 before it acts.
        let answer = client
            .request(method.clone(), app.url(&nowhere(&route.path)))
            .bearer_auth(&shop.key)
            .header("x-admin-key", ADMIN_KEY)
            .send()
            .await
            .expect("request");
        let reads_json = answer.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE;
        if reads_json != documented {
            failures.push(format!(
                "{method} {}: documented body {documented}, handler answered {}",
                route.path,
                answer.status()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn openapi_document_is_valid_and_real_answers_match_it() {
    let (app, shop) = world().await;
    let client = reqwest::Client::new();

    // The served document is the generated one; the page lists every operation and loads nothing.
    let served: Value = client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("JSON");
    let doc = document();
    assert_eq!(served, doc);
    let page = client.get(app.url("/api/docs")).send().await.expect("docs");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let html = page.text().await.expect("html");
    assert!(!html.contains("<script"), "the page runs nothing");
    for (method, path, op) in operations(&doc) {
        if op.get("x-alias-of").is_none() {
            assert!(
                html.contains(&format!("id=\"{}\"", op["operationId"].as_str().unwrap())),
                "{method} {path} is not on the page"
            );
        }
    }

    // Real answers, each with the schema the document gives its status.
    let created: Value = client
        .post(app.url("/api/tenant/api-keys"))
        .bearer_auth(&shop.key)
        .json(&json!({ "name": "OpenAPI", "scope": "read" }))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("JSON");
    let mut cases = vec![(
        "post".to_owned(),
        "/api/tenant/api-keys".to_owned(),
        201,
        created,
    )];
    let tenant = format!("/api/admin/tenants/{}", shop.id);
    let calls: Vec<(&str, String, String, u16, bool)> = vec![
        ("/health/live", "/health/live".into(), 200, false),
        ("/health/ready", "/health/ready".into(), 200, false),
        ("/api/version", "/api/version".into(), 200, false),
        ("/api/tenant", "/api/tenant".into(), 200, false),
        (
            "/api/tenant/api-keys",
            "/api/tenant/api-keys".into(),
            200,
            false,
        ),
        ("/api/customers", "/api/customers".into(), 200, false),
        ("/api/products", "/api/products".into(), 200, false),
        ("/api/orders", "/api/orders".into(), 200, false),
        ("/api/orders/{id}", "/api/orders/503".into(), 200, false),
        ("/api/orders/{id}", "/api/orders/999".into(), 404, false),
        (
            "/api/carts/abandoned",
            "/api/carts/abandoned".into(),
            200,
            false,
        ),
        ("/api/stats", "/api/stats".into(), 200, false),
        ("/api/sync", "/api/sync".into(), 200, false),
        ("/api/audit", "/api/audit".into(), 200, false),
        (
            "/api/customers",
            "/api/customers?limit=0".into(),
            400,
            false,
        ),
        ("/api/admin/tenants", "/api/admin/tenants".into(), 200, true),
        ("/api/admin/tenants/{id}", tenant.clone(), 200, true),
        (
            "/api/admin/tenants/{id}/api-keys",
            format!("{tenant}/api-keys"),
            200,
            true,
        ),
        ("/api/admin/stats", "/api/admin/stats".into(), 200, true),
        ("/api/admin/jobs", "/api/admin/jobs".into(), 200, true),
        (
            "/api/admin/jobs/stats",
            "/api/admin/jobs/stats".into(),
            200,
            true,
        ),
        (
            "/api/admin/maintenance",
            "/api/admin/maintenance".into(),
            200,
            true,
        ),
        (
            "/api/admin/webhooks",
            "/api/admin/webhooks".into(),
            200,
            true,
        ),
        ("/api/admin/audit", "/api/admin/audit".into(), 200, true),
        (
            "/api/admin/salla/stores",
            "/api/admin/salla/stores".into(),
            200,
            true,
        ),
        (
            "/api/admin/jobs/{id}",
            "/api/admin/jobs/987654321".into(),
            404,
            true,
        ),
    ]
    .into_iter()
    .map(|(path, url, status, admin)| ("get", path.to_owned(), url, status, admin))
    .collect();
    for (method, path, url, status, admin) in calls {
        let request = client.get(app.url(&url));
        let request = if admin {
            request.header("x-admin-key", ADMIN_KEY)
        } else {
            request.bearer_auth(&shop.key)
        };
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{url}");
        let body: Value = response.json().await.expect("JSON");
        cases.push((method.to_owned(), path, status, body));
    }
    let cases: Vec<Value> = cases
        .into_iter()
        .map(|(method, path, status, instance)| {
            json!({
                "what": format!("{method} {path} {status}"),
                "schema": response_schema(&doc, &method, &path, status),
                "instance": instance,
            })
        })
        .collect();
    validate_with_python(&doc, &cases);
}

/// `openapi-spec-validator` on the document, then `jsonschema` (2020-12, the dialect of OpenAPI 3.1) on
/// every case, its `$ref`s resolved against the document's components.
fn validate_with_python(doc: &Value, cases: &[Value]) {
    let python = std::env::var("WOSOOL_TEST_PYTHON").expect(
        "WOSOOL_TEST_PYTHON is not set: run the tests with scripts/test, which installs \
         openapi-spec-validator and jsonschema (tests/browser/requirements.txt)",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let doc_path = dir.path().join("openapi.json");
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&doc_path, serde_json::to_vec(doc).unwrap()).unwrap();
    std::fs::write(&cases_path, serde_json::to_vec(cases).unwrap()).unwrap();
    let script = r#"
import json, sys
from openapi_spec_validator import validate
from jsonschema import Draft202012Validator
doc = json.load(open(sys.argv[1]))
validate(doc)
failures = []
for case in json.load(open(sys.argv[2])):
    schema = dict(case["schema"])
    schema["components"] = doc["components"]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in Draft202012Validator(schema).iter_errors(case["instance"])]
    if errors:
        failures.append(case["what"] + ": " + "; ".join(errors[:5]))
print("\n".join(failures))
sys.exit(1 if failures else 0)
"#;
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&doc_path)
        .arg(&cases_path)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the document or an answer does not validate:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
