//! The attack suite: walks the router's own route table (`wosool::router::table()`, the data the router is
//! built from), so every route — today's and every future one — is tried without credentials, with another
//! tenant's credentials, with a viewer's (a `read` API key) and with malformed input (bad ids, NUL in a JSON
//! body and in a query parameter, an oversized body). Never a 5xx for bad input, always the JSON envelope; a
//! tenant route below its minimum role is 403 `insufficient_role`; tenant B's data never reaches tenant A.
//!
//! Two tenants are made with the merchant API's helpers; B's rows carry a marker that must never appear in an
//! answer to A.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wosool::access::{Access, Role, RouteInfo, minimum};

use crate::helpers::TestApp;
use crate::merchant_api::{Store, app, exec, store};

const ADMIN_KEY: &str = crate::helpers::ADMIN_KEY;
/// In every row of tenant B that an answer could show.
const MARKER: &str = "BETAMARKER";
const B_ORDER: i64 = 7001;
const B_CUSTOMER: i64 = 7002;

struct World {
    app: TestApp,
    /// Follows no redirect: `/app` answers a redirect to Home, which is the answer under test.
    client: reqwest::Client,
    a: Store,
    b: Store,
    /// A `read` key of A: a viewer.
    a_viewer: String,
    b_key_id: String,
}

async fn world() -> World {
    let app = app().await;
    let a = store(&app, "Attack Store A").await;
    let b = store(&app, "Attack Store B").await;
    exec(
        &b.db,
        &format!(
            "INSERT INTO customers (salla_id, first_name, raw) VALUES ({B_CUSTOMER}, '{MARKER} Customer', '{{}}');
             INSERT INTO products (salla_id, name, raw) VALUES (7003, '{MARKER} Product', '{{}}');
             INSERT INTO orders (salla_id, customer_salla_id, total, ordered_at, raw)
                 VALUES ({B_ORDER}, {B_CUSTOMER}, 10.00, now(), '{{}}');
             INSERT INTO order_items (salla_id, order_salla_id, product_salla_id, name, quantity, total, raw)
                 VALUES (7004, {B_ORDER}, 7003, '{MARKER} Item', 1, 10.00, '{{}}');
             INSERT INTO abandoned_carts (salla_id, total, raw) VALUES (7005, 20.00, '{{}}');"
        ),
    )
    .await;
    let a_viewer = app.scoped_api_key(&a.id, "read").await;
    let keys: Value = app
        .admin_get(&format!("/api/admin/tenants/{}/api-keys", b.id))
        .send()
        .await
        .expect("list keys")
        .json()
        .await
        .expect("JSON");
    let b_key_id = keys["api_keys"][0]["id"]
        .as_str()
        .expect("key id")
        .to_owned();
    World {
        app,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        a,
        b,
        a_viewer,
        b_key_id,
    }
}

/// The route's path with each `{param}` filled: B's ids where the route takes one (so that A's credentials
/// are tried on B's data), valid values elsewhere.
fn fill(route: &RouteInfo, w: &World) -> String {
    fill_with(&route.path, |name, path| match name {
        "id" if path.contains("/orders/") => B_ORDER.to_string(),
        "id" if path.contains("/customers/") => B_CUSTOMER.to_string(),
        "id" if path.contains("/tenants/") => w.b.id.clone(),
        "key_id" => w.b_key_id.clone(),
        "kind" => "notes".into(),
        "merchant_id" => "1".into(),
        "file" => "app.js".into(),
        "*path" => "people".into(),
        _ => uuid::Uuid::new_v4().to_string(),
    })
}

/// `path` with every `{param}` replaced by `value(param, path)`.
fn fill_with(path: &str, value: impl Fn(&str, &str) -> String) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closed param") + start;
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[start + 1..end], path));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The methods a route answers (`None` in the table: any; tried as GET and POST).
fn methods(route: &RouteInfo) -> Vec<Method> {
    match &route.method {
        Some(method) => vec![method.clone()],
        None => vec![Method::GET, Method::POST],
    }
}

struct Answer {
    status: StatusCode,
    text: String,
    json: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, text, json }
}

fn request(w: &World, method: &Method, path: &str) -> reqwest::RequestBuilder {
    w.client.request(method.clone(), w.app.url(path))
}

/// Errors are the envelope; a 5xx only ever says a feature is not available here (501, 503), never that
/// input broke something.
fn check_answer(answer: &Answer, what: &str, failures: &mut Vec<String>) {
    if answer.status.is_server_error() && !matches!(answer.status.as_u16(), 501 | 503) {
        failures.push(format!("{what}: {} {}", answer.status, answer.text));
        return;
    }
    if (answer.status.is_client_error() || answer.status.is_server_error())
        && (!answer.json["error"]["code"].is_string()
            || !answer.json["error"]["request_id"].is_string())
    {
        failures.push(format!(
            "{what}: not the envelope: {} {:?}",
            answer.status, answer.text
        ));
    }
    if answer.code() == "access_undeclared" {
        failures.push(format!(
            "{what}: a tenant handler on a route declared otherwise"
        ));
    }
}

fn is_tenant(access: Access) -> bool {
    matches!(access, Access::Tenant(..) | Access::TenantDynamic)
}

#[tokio::test]
async fn attack_suite_every_route_holds() {
    let table = wosool::router::table();
    // Every route declares an access the table can decide (by construction of the router; checked anyway).
    let mut seen = HashSet::new();
    for route in &table {
        assert!(
            seen.insert((route.method.clone(), route.path.clone())),
            "{route:?} listed twice"
        );
        if let Access::Tenant(resource, action) = route.access {
            assert!(
                minimum(resource, action).is_some(),
                "{route:?}: a permission the table does not have"
            );
        }
    }
    assert!(
        table.iter().any(|r| r.path == "/api/tenant"),
        "the table is the router's"
    );
    assert!(table.len() > 50, "{} routes", table.len());

    let w = world().await;
    let app = &w.app;
    let mut failures = Vec::new();

    // 1. No credentials.
    for route in &table {
        let path = fill(route, &w);
        for method in methods(route) {
            let what = format!("no credentials: {method} {path}");
            let answer = send(request(&w, &method, &path).json(&json!({}))).await;
            check_answer(&answer, &what, &mut failures);
            let ok = match route.access {
                Access::Tenant(..) | Access::TenantDynamic => {
                    answer.status == StatusCode::UNAUTHORIZED
                }
                Access::Operator => matches!(answer.status.as_u16(), 401 | 403),
                // Not 5xx for input (`check_answer`); 503 "not configured" for a provider is fine.
                Access::Public | Access::Webhook => true,
            };
            if !ok {
                failures.push(format!("{what}: {} {}", answer.status, answer.text));
            }
        }
    }

    // 2. Tenant A's credentials on B's ids: never B's data; A's key naming B is refused.
    for route in &table {
        let path = fill(route, &w);
        for method in methods(route) {
            let what = format!("A's key: {method} {path}");
            let answer = send(
                request(&w, &method, &path)
                    .bearer_auth(&w.a.key)
                    .json(&json!({})),
            )
            .await;
            check_answer(&answer, &what, &mut failures);
            if answer.text.contains(MARKER) || answer.text.contains(&w.b.id) {
                failures.push(format!("{what}: B's data leaked: {}", answer.text));
            }
            if route.access == Access::Operator && answer.status.is_success() {
                failures.push(format!(
                    "{what}: a tenant key on an operator route: {}",
                    answer.status
                ));
            }
            if is_tenant(route.access) {
                let named = send(
                    request(&w, &method, &path)
                        .bearer_auth(&w.a.key)
                        .header("x-tenant-id", &w.b.id)
                        .json(&json!({})),
                )
                .await;
                if named.status != StatusCode::FORBIDDEN || named.code() != "tenant_mismatch" {
                    failures.push(format!(
                        "{what} with X-Tenant-Id of B: {} {}",
                        named.status, named.text
                    ));
                }
            }
        }
    }
    // A's key could not revoke B's key.
    let (status, _) = crate::helpers::get_with_key(app, "/api/tenant", &w.b.key).await;
    assert_eq!(status, StatusCode::OK, "B's key survived A's attempts");

    // 3. A viewer (a read key): every route above viewer is 403 insufficient_role; viewer routes let it in.
    for route in &table {
        if !is_tenant(route.access) {
            continue;
        }
        let path = fill(route, &w);
        for method in methods(route) {
            let what = format!("viewer: {method} {path}");
            let answer = send(
                request(&w, &method, &path)
                    .bearer_auth(&w.a_viewer)
                    .json(&json!({})),
            )
            .await;
            check_answer(&answer, &what, &mut failures);
            let needed = match route.access {
                Access::Tenant(resource, action) => minimum(resource, action),
                // The CRM proxy: reading methods read, the rest write (GraphQL is decided by its body).
                _ if path == "/crm/graphql" => None,
                _ if method == Method::GET => Some(Role::Viewer),
                _ => Some(Role::Member),
            };
            let refused =
                answer.status == StatusCode::FORBIDDEN && answer.code() == "insufficient_role";
            match needed {
                Some(role) if role > Role::Viewer && !refused => {
                    failures.push(format!(
                        "{what}: needs {role}, got {} {}",
                        answer.status, answer.text
                    ));
                }
                Some(Role::Viewer) if refused || answer.status == StatusCode::UNAUTHORIZED => {
                    failures.push(format!(
                        "{what}: a viewer is refused: {} {}",
                        answer.status, answer.text
                    ));
                }
                _ => {}
            }
        }
    }

    // 4. Malformed input, with credentials that pass (A's admin key, and the operator key for operator routes).
    let authed = |method: &Method, path: &str| {
        request(&w, method, path)
            .bearer_auth(&w.a.key)
            .header("x-admin-key", ADMIN_KEY)
    };
    let oversized = vec![b'a'; 1024 * 1024 + 4096];
    let nul_bodies = [
        json!({ "name": "\u{0}" }),
        json!({ "name": "key\u{0}", "scope": "read" }),
        json!({ "reason": "because\u{0}" }),
        json!({ "kind": "\u{0}" }),
        json!({ "organization_name": "Nul\u{0}Org", "admin_email": "a\u{0}@example.sa" }),
    ];
    for route in &table {
        let has_params = route.path.contains('{');
        for method in methods(route) {
            // Bad ids in every path parameter.
            if has_params {
                for bad in [
                    "not-a-valid-id",
                    "99999999999999999999999",
                    "%00",
                    "..%2F..%2Fetc",
                ] {
                    let path = fill_with(&route.path, |name, _| match name {
                        "*path" => format!("people/{bad}"),
                        _ => bad.to_owned(),
                    });
                    let what = format!("bad id: {method} {path}");
                    let answer = send(authed(&method, &path)).await;
                    check_answer(&answer, &what, &mut failures);
                }
            }
            let path = fill(route, &w);
            // Only bodies for POSTs: a DELETE with real ids would act.
            if method == Method::POST {
                for body in &nul_bodies {
                    let what = format!("NUL body {body}: POST {path}");
                    let answer = send(authed(&method, &path).json(body)).await;
                    check_answer(&answer, &what, &mut failures);
                }
                let what = format!("oversized body: POST {path}");
                let answer = send(
                    authed(&method, &path)
                        .header("content-type", "application/json")
                        .body(oversized.clone()),
                )
                .await;
                check_answer(&answer, &what, &mut failures);
            }
            if method == Method::GET {
                // One parameter at a time: a bad `limit` refused first would hide a NUL `search`.
                for name in ["search", "plan", "kind", "status", "q", "cursor", "lang"] {
                    let what = format!("NUL query: GET {path}?{name}=a%00b");
                    let answer = send(authed(&method, &format!("{path}?{name}=a%00b"))).await;
                    check_answer(&answer, &what, &mut failures);
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
