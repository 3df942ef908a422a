//! Rate limits (`[rate_limits]`, src/ratelimit/): per tenant by plan on every tenant route, shared by two
//! replicas through one Redis, the local share while Redis is down, per client IP on the public routes, the
//! 429 answer and its headers, and the metrics. Limits are tiny and refill once a minute, so the tests never
//! wait for time to pass.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use wosool::Role;

use crate::helpers::{
    OwnRedis, TestApp, answer, closed_port, metric_value, new_key_prefix, render_metrics,
    spawn_app_with, spawn_replica, wait_for_tenant,
};

type Env = Vec<(String, String)>;

/// `WOSOOL_RATE_LIMITS__<RULE>__…`: a burst, then one request a minute.
fn rule(env: &mut Env, rule: &str, burst: u32) {
    env.push((
        format!("WOSOOL_RATE_LIMITS__{rule}__BURST"),
        burst.to_string(),
    ));
    env.push((
        format!("WOSOOL_RATE_LIMITS__{rule}__REQUESTS_PER_MINUTE"),
        "1".into(),
    ));
}

/// A ready tenant on `plan` (created through the admin API, provisioned by the app's worker); its id and an
/// API key.
async fn tenant(app: &TestApp, name: &str, plan: &str) -> (String, String) {
    let created = app
        .call(
            app.admin_post("/api/admin/tenants").json(&json!({
                "organization_name": name,
                "admin_email": "owner@example.sa",
                "plan": plan,
            })),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = created["tenant"]["id"].as_str().expect("id").to_owned();
    wait_for_tenant(app, &id, "ready").await;
    let key = app.api_key(&id).await;
    (id, key)
}

async fn get(app: &TestApp, path: &str, key: &str) -> (StatusCode, HeaderMap, Value) {
    let response = app
        .get(path)
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    let headers = response.headers().clone();
    let (status, body) = answer(response).await;
    (status, headers, body)
}

fn number(headers: &HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from {headers:?}"))
        .to_str()
        .expect("ascii")
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// A refusal: 429 `rate_limited` naming `limit`, with sane Retry-After and RateLimit-* headers.
fn assert_limited(status: StatusCode, headers: &HeaderMap, body: &Value, limit: &str, burst: u64) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["details"]["limit"], limit, "{body}");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    let retry_after = number(headers, "retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(number(headers, "ratelimit-limit"), burst);
    assert_eq!(number(headers, "ratelimit-remaining"), 0);
    let reset = number(headers, "ratelimit-reset");
    assert!(
        reset >= retry_after && reset <= 60 * burst,
        "reset {reset}, retry after {retry_after}"
    );
}

/// Sends the same request `n` times; how many were answered 2xx (anything else but 429 fails the test).
async fn allowed_of(app: &TestApp, path: &str, key: &str, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        let (status, _, body) = get(app, path, key).await;
        match status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{path}: {other} {body}"),
        }
    }
    allowed
}

#[tokio::test]
async fn rate_limits_follow_the_plan_and_one_tenant_never_uses_up_another() {
    let app = spawn_app_with(Role::All, |env| {
        rule(env, "PLANS__FREE", 3);
        rule(env, "PLANS__GROWTH", 6);
    })
    .await;
    let (_, free) = tenant(&app, "Free Store", "free").await;
    let (_, growth) = tenant(&app, "Growth Store", "growth").await;
    let before = app.metrics().await;
    let count = |text: &str, plan: &str, outcome: &str| {
        metric_value(
            text,
            "rate_limit_decisions_total",
            &[("scope", "tenant"), ("rule", plan), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };

    // Allowed answers carry the headers, counting down.
    for remaining in [2, 1, 0] {
        let (status, headers, body) = get(&app, "/api/tenant", &free).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(number(&headers, "ratelimit-limit"), 3);
        assert_eq!(number(&headers, "ratelimit-remaining"), remaining);
        assert!(headers.get("retry-after").is_none());
    }
    let (status, headers, body) = get(&app, "/api/tenant", &free).await;
    assert_limited(status, &headers, &body, "tenant", 3);
    // Every tenant route draws on the same limit: the data API, the merchant app, the CRM proxy.
    for path in ["/api/orders", "/app/home", "/crm/rest/people"] {
        let (status, headers, body) = get(&app, path, &free).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}: {body}");
        assert!(headers.contains_key("retry-after"), "{path}");
    }

    // The growth tenant has its own, larger limit, untouched by the free tenant's exhaustion.
    assert_eq!(allowed_of(&app, "/api/tenant", &growth, 8).await, 6);
    let (status, headers, body) = get(&app, "/api/tenant", &growth).await;
    assert_limited(status, &headers, &body, "tenant", 6);

    let after = app.metrics().await;
    assert_eq!(
        count(&after, "free", "allowed") - count(&before, "free", "allowed"),
        3.0
    );
    assert_eq!(
        count(&after, "free", "limited") - count(&before, "free", "limited"),
        4.0
    );
    assert_eq!(
        count(&after, "growth", "allowed") - count(&before, "growth", "allowed"),
        6.0
    );
    assert!(after.contains("# TYPE rate_limit_decisions_total counter"));
}

#[tokio::test]
async fn rate_limits_hold_across_two_replicas_sharing_redis() {
    let prefix = new_key_prefix();
    // The whole limit to each process were it alone: only Redis keeps the two together at 10.
    let limits = |env: &mut Env| {
        rule(env, "PLANS__FREE", 10);
        env.push(("WOSOOL_RATE_LIMITS__LOCAL_SHARE".into(), "1.0".into()));
    };
    let for_first = prefix.clone();
    let first = spawn_app_with(Role::All, move |env| {
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), for_first));
        limits(env);
    })
    .await;
    let second = spawn_replica(&first.database, &prefix, Role::Api, limits).await;
    let (_, key) = tenant(&first, "Replicated Store", "free").await;
    // Every in-process app records into this process's one registry.
    let fallbacks =
        || metric_value(&render_metrics(), "rate_limit_fallback_total", &[]).unwrap_or(0.0);
    let fallbacks_before = fallbacks();

    // 30 requests at once, alternating replicas.
    let requests = (0..30).map(|i| {
        let (app, key) = (if i % 2 == 0 { &first } else { &second }, key.clone());
        async move { get(app, "/api/tenant", &key).await.0 }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let allowed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(allowed + limited, 30, "{statuses:?}");
    // The burst, plus at most one request refilled while they ran (one a minute).
    assert!((10..=11).contains(&allowed), "{allowed} allowed");
    assert_eq!(fallbacks(), fallbacks_before, "Redis decided every request");
    // Both replicas see the shared state: each refuses now.
    for app in [&first, &second] {
        let (status, headers, body) = get(app, "/api/tenant", &key).await;
        assert_limited(status, &headers, &body, "tenant", 10);
    }
}

/// Leases (`rate_limits.lease_share`): each replica takes a tenth of the burst per Redis round trip, yet the two
/// replicas together allow exactly the burst; what one replica leased and did not use is still its own, and
/// comes back through Redis once its lease has expired.
#[tokio::test]
async fn rate_limits_lease_a_share_per_replica_and_never_exceed_the_limit_together() {
    let prefix = new_key_prefix();
    let limits = |env: &mut Env| {
        rule(env, "PLANS__FREE", 100);
        env.push(("WOSOOL_RATE_LIMITS__LOCAL_SHARE".into(), "1.0".into()));
        env.push(("WOSOOL_RATE_LIMITS__LEASE_SHARE".into(), "0.1".into()));
        // Expired by the time the other replica has used up the rest.
        env.push(("WOSOOL_RATE_LIMITS__LEASE_MS".into(), "1".into()));
    };
    let for_first = prefix.clone();
    let first = spawn_app_with(Role::All, move |env| {
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), for_first));
        limits(env);
    })
    .await;
    let second = spawn_replica(&first.database, &prefix, Role::Api, limits).await;
    let (_, key) = tenant(&first, "Leased Store", "free").await;

    // The first replica leases 10 and uses one: the remaining count includes the 9 it holds.
    let (status, headers, body) = get(&first, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(number(&headers, "ratelimit-remaining"), 99);
    // The second sees the first's lease taken from Redis (90 left there): it leases 10 of those and uses one.
    let (status, headers, body) = get(&second, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(number(&headers, "ratelimit-remaining"), 89);
    // It gets everything Redis has left (90 in all, ten per round trip), then is refused.
    assert_eq!(allowed_of(&second, "/api/tenant", &key, 95).await, 89);
    let (status, headers, body) = get(&second, "/api/tenant", &key).await;
    assert_limited(status, &headers, &body, "tenant", 100);
    // The first replica's 9 were never lost: its expired lease returns them and it takes them again.
    assert_eq!(allowed_of(&first, "/api/tenant", &key, 12).await, 9);
    for app in [&first, &second] {
        let (status, headers, body) = get(app, "/api/tenant", &key).await;
        assert_limited(status, &headers, &body, "tenant", 100);
    }
}

#[tokio::test]
async fn rate_limits_fall_back_to_the_local_share_while_redis_is_down_and_never_5xx() {
    let redis = OwnRedis::start_on(closed_port()).await;
    let url = redis.url();
    let app = spawn_app_with(Role::All, move |env| {
        env.push(("WOSOOL_REDIS__URL".into(), url));
        rule(env, "PLANS__FREE", 10);
        env.push(("WOSOOL_RATE_LIMITS__LOCAL_SHARE".into(), "0.5".into()));
        env.push(("WOSOOL_RATE_LIMITS__REDIS_TIMEOUT_MS".into(), "100".into()));
    })
    .await;
    let (_, key) = tenant(&app, "Fallback Store", "free").await;

    // Through Redis: the whole burst.
    let (status, headers, body) = get(&app, "/api/tenant", &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(number(&headers, "ratelimit-limit"), 10);
    assert_eq!(number(&headers, "ratelimit-remaining"), 9);
    let fallbacks_before =
        metric_value(&app.metrics().await, "rate_limit_fallback_total", &[]).unwrap_or(0.0);

    redis.kill().await;
    // This process alone now allows half the burst; nothing fails for want of Redis.
    let started = std::time::Instant::now();
    let mut allowed = 0;
    for _ in 0..8 {
        let (status, headers, body) = get(&app, "/api/tenant", &key).await;
        match status {
            StatusCode::OK => {
                allowed += 1;
                assert_eq!(number(&headers, "ratelimit-limit"), 5);
            }
            StatusCode::TOO_MANY_REQUESTS => assert_limited(status, &headers, &body, "tenant", 5),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(allowed, 5);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "Redis being down must not hold requests: {:?}",
        started.elapsed()
    );
    let metrics = app.metrics().await;
    let fallbacks = metric_value(&metrics, "rate_limit_fallback_total", &[]).unwrap_or(0.0);
    assert!(fallbacks - fallbacks_before >= 8.0, "{fallbacks}");
    assert_eq!(
        metric_value(&metrics, "rate_limit_redis_unavailable", &[]),
        Some(1.0)
    );
}

async fn post(
    app: &TestApp,
    path: &str,
    body: Value,
    forwarded_for: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = app.client.post(app.url(path)).json(&body);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.expect("request");
    let headers = response.headers().clone();
    let (status, body) = answer(response).await;
    (status, headers, body)
}

fn registration(i: usize) -> Value {
    json!({ "organization_name": format!("Limited {i}"), "admin_email": format!("owner{i}@example.sa") })
}

#[tokio::test]
async fn rate_limits_registration_per_client_ip_and_globally() {
    let app = spawn_app_with(Role::Api, |env| {
        rule(env, "REGISTRATION", 2);
        rule(env, "REGISTRATION_GLOBAL", 3);
        // The test client is the trusted proxy: X-Forwarded-For names the client.
        env.push((
            "WOSOOL_SERVER__TRUSTED_PROXIES".into(),
            "[\"127.0.0.1\"]".into(),
        ));
    })
    .await;
    let path = "/api/auth/register-organization";
    let limited_before = metric_value(
        &app.metrics().await,
        "rate_limit_decisions_total",
        &[("rule", "registration"), ("outcome", "limited")],
    )
    .unwrap_or(0.0);

    for (i, remaining) in [(0, 1), (1, 0)] {
        let (status, headers, body) = post(&app, path, registration(i), Some("203.0.113.1")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(number(&headers, "ratelimit-limit"), 2);
        assert_eq!(number(&headers, "ratelimit-remaining"), remaining);
    }
    let (status, headers, body) = post(&app, path, registration(2), Some("203.0.113.1")).await;
    assert_limited(status, &headers, &body, "registration", 2);

    // Another client has its own allowance, until all registrations together reach the global cap of 3.
    let (status, _, body) = post(&app, path, registration(3), Some("203.0.113.2")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, headers, body) = post(&app, path, registration(4), Some("203.0.113.2")).await;
    assert_limited(status, &headers, &body, "registration_global", 3);
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(tenants, 3, "refused registrations create nothing");

    let limited_after = metric_value(
        &app.metrics().await,
        "rate_limit_decisions_total",
        &[("rule", "registration"), ("outcome", "limited")],
    )
    .unwrap_or(0.0);
    assert_eq!(limited_after - limited_before, 1.0);
}

#[tokio::test]
async fn rate_limits_the_provisioning_status_and_session_minting_per_client_ip() {
    let app = spawn_app_with(Role::Api, |env| {
        rule(env, "PROVISIONING_STATUS", 3);
        rule(env, "SESSION_MINTING", 2);
    })
    .await;
    // No trusted proxy: a forged X-Forwarded-For does not buy a new allowance.
    let status_path = format!("/api/auth/provisioning-status/{}", uuid::Uuid::new_v4());
    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        let forged = format!("198.51.100.{i}");
        let response = app
            .get(&status_path)
            .header("x-forwarded-for", forged)
            .send()
            .await
            .expect("request");
        let headers = response.headers().clone();
        let (status, body) = answer(response).await;
        assert!(
            status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS,
            "{status} {body}"
        );
        assert_eq!(number(&headers, "ratelimit-remaining"), remaining);
    }
    let response = app.get(&status_path).send().await.expect("request");
    let headers = response.headers().clone();
    let (status, body) = answer(response).await;
    assert_limited(status, &headers, &body, "provisioning_status", 3);

    // Both minting routes share one allowance per client.
    let (status, _, body) = post(&app, "/api/embedded/session", json!({}), None).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _, body) = post(&app, "/api/embedded/standalone", json!({}), None).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(status.is_client_error(), "{status} {body}");
    for path in ["/api/embedded/session", "/api/embedded/standalone"] {
        let (status, headers, body) = post(&app, path, json!({}), None).await;
        assert_limited(status, &headers, &body, "session_minting", 2);
    }
    // Routes without a per-IP rule are not limited by it.
    let response = app.get("/health/live").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("ratelimit-limit").is_none());
}
