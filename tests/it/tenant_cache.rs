//! Tenant resolution through L1 (moka) → L2 (Redis) → L3 (PostgreSQL): invalidation across replicas, working
//! through a Redis outage, coalesced and negatively cached misses, and collision-free cache keys.

use std::time::{Duration, Instant};

use fred::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wosool::Role;
use wosool::provisioning::RegistrationRequest;
use wosool::tenancy::{ApiKeyHash, LookupKey, MerchantId, Slug, TenantId};

use crate::helpers::{
    OwnRedis, TestApp, closed_port, eventually, fresh_database, metric_value, new_key_prefix,
    render_metrics, spawn_app_with, spawn_replica, tenancy_stack, test_config,
};

/// Far below the L1 TTL (60 s): a replica that answers within this saw the change pushed, not expired.
const PROMPTLY: Duration = Duration::from_secs(2);

/// `GET /api/tenant` with a tenant API key: status and error code (when any).
async fn tenant_api(app: &TestApp, key: &str) -> (StatusCode, Value) {
    let response = app
        .get("/api/tenant")
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /api/tenant");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls replica `app` until `key` gets `expected`, failing after [`PROMPTLY`].
async fn answers_promptly(app: &TestApp, key: &str, expected: StatusCode, what: &str) -> Value {
    eventually(what, PROMPTLY, || async {
        let (status, body) = tenant_api(app, key).await;
        (status == expected).then_some(body)
    })
    .await
}

/// Waits until `count` processes listen on the invalidation channel of `key_prefix` (replicas subscribe in
/// the background once they run).
pub(crate) async fn wait_for_listeners(database: &str, key_prefix: &str, count: i64) {
    let config = test_config(database, |env| {
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), key_prefix.into()));
    });
    let redis = wosool::redis::Redis::connect(&config.redis)
        .await
        .expect("connect Redis")
        .expect("Redis configured");
    let channel = redis.key("tenant:invalidate");
    eventually(
        "every replica to listen for invalidations",
        Duration::from_secs(10),
        || async {
            let reply: Vec<fred::types::Value> =
                redis.client().pubsub_numsub(channel.clone()).await.ok()?;
            (reply.get(1)?.as_i64()? >= count).then_some(())
        },
    )
    .await;
    redis.quit().await;
}

/// Two replicas (A with the worker, B API only) on one global database and one Redis key prefix.
async fn two_replicas() -> (TestApp, TestApp) {
    let prefix = new_key_prefix();
    let a = spawn_app_with(Role::All, |env| {
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
    })
    .await;
    let b = spawn_replica(&a.database, &prefix, Role::Api, |_| {}).await;
    wait_for_listeners(&a.database, &prefix, 2).await;
    (a, b)
}

#[tokio::test]
async fn a_suspension_through_one_replica_reaches_the_other_replicas_cache_at_once() {
    let (a, b) = two_replicas().await;
    let tenant = a.register_ready("Replica Trading").await;
    let id = tenant["tenant_id"].as_str().unwrap();
    let key = a.api_key(id).await;

    // B resolves the key once; from now on its L1 (TTL 60 s) holds the tenant as ready.
    for _ in 0..2 {
        assert_eq!(tenant_api(&b, &key).await.0, StatusCode::OK);
    }

    let suspended = a
        .admin_post(&format!("/api/admin/tenants/{id}/suspend"))
        .json(&json!({ "reason": "unpaid invoice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), StatusCode::OK);
    let (status, body) = tenant_api(&a, &key).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the replica that made the change"
    );
    assert_eq!(body["error"]["code"], "tenant_suspended");

    let body = answers_promptly(
        &b,
        &key,
        StatusCode::FORBIDDEN,
        "replica B to see the suspension",
    )
    .await;
    assert_eq!(body["error"]["code"], "tenant_suspended", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unpaid invoice"),
        "{body}"
    );
    // And B keeps answering 403 (its L1 now holds the suspended tenant, not a stale ready one).
    assert_eq!(tenant_api(&b, &key).await.0, StatusCode::FORBIDDEN);

    let activated = a
        .admin_post(&format!("/api/admin/tenants/{id}/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), StatusCode::OK);
    answers_promptly(&b, &key, StatusCode::OK, "replica B to see the activation").await;
    assert_eq!(tenant_api(&a, &key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_by_every_replica() {
    let (a, b) = two_replicas().await;
    let tenant = a.register_ready("Revocation Goods").await;
    let id = tenant["tenant_id"].as_str().unwrap();
    let created: Value = a
        .admin_post(&format!("/api/admin/tenants/{id}/api-keys"))
        .json(&json!({ "name": "to revoke" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key, key_id) = (
        created["key"].as_str().unwrap().to_owned(),
        created["api_key"]["id"].as_str().unwrap().to_owned(),
    );
    let other_key = a.api_key(id).await;
    for app in [&a, &b] {
        assert_eq!(tenant_api(app, &key).await.0, StatusCode::OK);
        assert_eq!(tenant_api(app, &other_key).await.0, StatusCode::OK);
    }

    let revoked = a
        .admin_delete(&format!("/api/admin/tenants/{id}/api-keys/{key_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        tenant_api(&a, &key).await.0,
        StatusCode::UNAUTHORIZED,
        "the revoking replica refuses the key on the next request"
    );
    answers_promptly(
        &b,
        &key,
        StatusCode::UNAUTHORIZED,
        "replica B to refuse the revoked key",
    )
    .await;
    for app in [&a, &b] {
        assert_eq!(
            tenant_api(app, &other_key).await.0,
            StatusCode::OK,
            "the tenant's other key still works"
        );
    }
}

/// A syntactically valid API key that no tenant has.
fn unknown_key() -> String {
    let hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    format!("wsl_{}", &hex[..40])
}

/// `GET /api/tenant` under a deadline: Redis trouble may cost a cache timeout, never the request.
async fn timed(app: &TestApp, key: &str) -> StatusCode {
    let started = Instant::now();
    let (status, _) = tenant_api(app, key).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        started.elapsed()
    );
    status
}

#[tokio::test]
async fn requests_keep_working_while_redis_is_down_and_the_cache_uses_it_again_when_it_returns() {
    let redis = OwnRedis::start_on(closed_port()).await;
    let (port, url) = (redis.port, redis.url());
    let prefix = new_key_prefix();
    let app = spawn_app_with(Role::All, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), url.clone()));
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
        env.push(("WOSOOL_TENANCY__CACHE__REDIS_RETRY_SECS".into(), "1".into()));
    })
    .await;
    let tenant = app.register_ready("Outage Supplies").await;
    let id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let known = app.api_key(&id).await;
    assert_eq!(timed(&app, &known).await, StatusCode::OK);
    assert_eq!(timed(&app, &known).await, StatusCode::OK);
    let up = |text: &str| metric_value(text, "tenant_cache_redis_up", &[]);
    let metrics = app.metrics().await;
    assert_eq!(up(&metrics), Some(1.0), "{metrics}");
    assert!(
        metric_value(
            &metrics,
            "tenant_cache_requests_total",
            &[("level", "l1"), ("outcome", "hit")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "L1 hits are counted:\n{metrics}"
    );

    redis.kill().await;

    assert_eq!(timed(&app, &known).await, StatusCode::OK);
    // A key created during the outage: its lookup misses L1, cannot use L2, and must reach PostgreSQL.
    let fresh = app.api_key(&id).await;
    for key in [&fresh, &known, &fresh] {
        assert_eq!(timed(&app, key).await, StatusCode::OK);
    }
    assert_eq!(timed(&app, &unknown_key()).await, StatusCode::UNAUTHORIZED);
    let errors = |text: &str| metric_value(text, "tenant_cache_redis_errors_total", &[]);
    let metrics = app.metrics().await;
    let errors_so_far = errors(&metrics).unwrap_or(0.0);
    assert!(
        errors_so_far >= 1.0,
        "Redis failures are counted:\n{metrics}"
    );
    assert_eq!(up(&metrics), Some(0.0));
    // The breaker: after a failure Redis is skipped for redis_retry_secs (1 s), not tried by every miss.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(timed(&app, &unknown_key()).await, StatusCode::UNAUTHORIZED);
    }
    let tried = errors(&app.metrics().await).unwrap() - errors_so_far;
    assert!(
        tried <= 1.0 + started.elapsed().as_secs_f64().ceil(),
        "{tried} Redis attempts for 20 misses in {:?}",
        started.elapsed()
    );
    // Changes made during the outage still apply on this replica.
    let suspended = app
        .admin_post(&format!("/api/admin/tenants/{id}/suspend"))
        .json(&json!({ "reason": "outage drill" }))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), StatusCode::OK);
    assert_eq!(timed(&app, &known).await, StatusCode::FORBIDDEN);
    let activated = app
        .admin_post(&format!("/api/admin/tenants/{id}/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), StatusCode::OK);
    assert_eq!(timed(&app, &known).await, StatusCode::OK);

    let _back = OwnRedis::start_on(port).await;
    eventually(
        "the tenant cache to use Redis again",
        Duration::from_secs(20),
        || async {
            // An unknown key misses L1, so each probe makes the cache try Redis (after the retry delay).
            assert_eq!(timed(&app, &unknown_key()).await, StatusCode::UNAUTHORIZED);
            (up(&app.metrics().await) == Some(1.0)).then_some(())
        },
    )
    .await;

    // L2 is written again: a new key's lookup lands in Redis under its typed cache key.
    let newest = app.api_key(&id).await;
    assert_eq!(timed(&app, &newest).await, StatusCode::OK);
    assert_eq!(timed(&app, &known).await, StatusCode::OK);
    let config = test_config(&app.database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), url.clone()));
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
    });
    let direct = wosool::redis::Redis::connect(&config.redis)
        .await
        .unwrap()
        .unwrap();
    let cached = direct.key(&LookupKey::ApiKey(ApiKeyHash::of(&newest)).cache_key());
    let exists: i64 = direct.client().exists(cached.clone()).await.unwrap();
    assert_eq!(exists, 1, "{cached} is in Redis");
    direct.quit().await;
}

#[tokio::test]
async fn a_hung_redis_costs_a_short_timeout_and_missed_invalidations_are_replayed_when_it_answers_again()
 {
    let redis = OwnRedis::start_on(closed_port()).await;
    let url = redis.url();
    let prefix = new_key_prefix();
    let app = spawn_app_with(Role::All, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), url.clone()));
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
        env.push(("WOSOOL_TENANCY__CACHE__REDIS_RETRY_SECS".into(), "1".into()));
    })
    .await;
    let tenant = app.register_ready("Frozen Dates").await;
    let id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let known = app.api_key(&id).await;
    assert_eq!(timed(&app, &known).await, StatusCode::OK);
    // What other replicas would read: the tenant, ready, in L2.
    let config = test_config(&app.database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), url.clone()));
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
    });
    let direct = wosool::redis::Redis::connect(&config.redis)
        .await
        .unwrap()
        .unwrap();
    let cached = direct.key(&LookupKey::ApiKey(ApiKeyHash::of(&known)).cache_key());
    let in_l2 = || async {
        let exists: i64 = direct.client().exists(cached.clone()).await.unwrap();
        exists == 1
    };
    assert!(in_l2().await);

    // Redis hangs: connections stay open, nothing answers (the client's own timeout is 5 s).
    redis.freeze();
    let started = Instant::now();
    let fresh = app.api_key(&id).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "creating a key while Redis hangs took {:?}",
        started.elapsed()
    );
    assert_eq!(timed(&app, &fresh).await, StatusCode::OK);
    assert_eq!(timed(&app, &unknown_key()).await, StatusCode::UNAUTHORIZED);
    // A change while Redis hangs: applied here at once; L2 cannot be told yet.
    let suspended = app
        .admin_post(&format!("/api/admin/tenants/{id}/suspend"))
        .json(&json!({ "reason": "frozen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), StatusCode::OK);
    for key in [&known, &fresh] {
        assert_eq!(timed(&app, key).await, StatusCode::FORBIDDEN);
    }
    let metrics = app.metrics().await;
    assert!(
        metric_value(&metrics, "tenant_cache_redis_errors_total", &[]).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );

    redis.thaw();
    // Once Redis answers, the invalidation that could not be delivered is replayed: the stale "ready" entry
    // other replicas would have read from L2 is deleted.
    eventually(
        "the missed invalidation to reach Redis",
        Duration::from_secs(15),
        || async { (!in_l2().await).then_some(()) },
    )
    .await;
    assert_eq!(timed(&app, &known).await, StatusCode::FORBIDDEN);
    direct.quit().await;
}

/// The number of L3 (PostgreSQL) loads this process's tenant caches made.
fn l3_loads() -> f64 {
    metric_value(
        &render_metrics(),
        "tenant_cache_requests_total",
        &[("level", "l3")],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_lookups_of_an_unknown_key_loads_it_once_and_remembers_it() {
    let database = fresh_database().await;
    let config = test_config(&database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), String::new()));
        env.push((
            "WOSOOL_TENANCY__CACHE__NEGATIVE_TTL_SECS".into(),
            "60".into(),
        ));
    });
    let stack = tenancy_stack(&config).await;
    let key = LookupKey::Slug(Slug::parse("nobody-by-that-name").unwrap());

    let before = l3_loads();
    let lookups: Vec<_> = (0..200)
        .map(|_| {
            let (directory, key) = (stack.core.directory().clone(), key.clone());
            tokio::spawn(async move { directory.resolve(&key).await })
        })
        .collect();
    for lookup in lookups {
        assert!(
            lookup.await.unwrap().expect("resolves").is_none(),
            "unknown"
        );
    }
    assert_eq!(
        l3_loads() - before,
        1.0,
        "200 concurrent misses of one key make one registry query"
    );

    // Remembered as unknown: more lookups do not reach PostgreSQL.
    for _ in 0..50 {
        assert!(
            stack
                .core
                .directory()
                .resolve(&key)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(l3_loads() - before, 1.0);
    // Other keys are not affected by that entry.
    let other = LookupKey::ClerkOrg("nobody-by-that-name".into());
    assert!(
        stack
            .core
            .directory()
            .resolve(&other)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(l3_loads() - before, 2.0);
}

/// A registration as the HTTP API would make it, for `slug`.
fn registration(
    stack: &wosool::TenancyStack,
    slug: &str,
) -> wosool::provisioning::ValidRegistration {
    RegistrationRequest {
        organization_name: format!("Org {slug}"),
        admin_email: "owner@example.sa".into(),
        slug: Some(slug.into()),
        ..RegistrationRequest::default()
    }
    .validate(stack.provisioner.config())
    .expect("valid registration")
}

#[tokio::test]
async fn a_slug_remembered_as_unknown_resolves_as_soon_as_a_tenant_takes_it() {
    let database = fresh_database().await;
    let config = test_config(&database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), String::new()));
        env.push((
            "WOSOOL_TENANCY__CACHE__NEGATIVE_TTL_SECS".into(),
            "60".into(),
        ));
    });
    let stack = tenancy_stack(&config).await;
    let slug = LookupKey::Slug(Slug::parse("late-comer").unwrap());
    assert!(
        stack
            .core
            .directory()
            .resolve(&slug)
            .await
            .unwrap()
            .is_none()
    );

    let registered = stack
        .provisioner
        .register(registration(&stack, "late-comer"), None, "test", None)
        .await
        .expect("registers");
    let found = stack
        .core
        .directory()
        .resolve(&slug)
        .await
        .unwrap()
        .expect("the negative entry was evicted by the registration");
    assert_eq!(found.id, registered.tenant.id);
}

#[tokio::test]
async fn negative_entries_expire_after_their_ttl() {
    let database = fresh_database().await;
    let config = test_config(&database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), String::new()));
        env.push((
            "WOSOOL_TENANCY__CACHE__NEGATIVE_TTL_SECS".into(),
            "3".into(),
        ));
    });
    let watcher = tenancy_stack(&config).await;
    // Another process without Redis: its registrations cannot reach the watcher's cache.
    let elsewhere = tenancy_stack(&config).await;
    let slug = LookupKey::Slug(Slug::parse("quiet-arrival").unwrap());
    assert!(
        watcher
            .core
            .directory()
            .resolve(&slug)
            .await
            .unwrap()
            .is_none()
    );
    let cached_at = Instant::now();

    let registered = elsewhere
        .provisioner
        .register(
            registration(&elsewhere, "quiet-arrival"),
            None,
            "test",
            None,
        )
        .await
        .expect("registers");
    let still_unknown = watcher
        .core
        .directory()
        .resolve(&slug)
        .await
        .unwrap()
        .is_none();
    if cached_at.elapsed() < Duration::from_secs(2) {
        assert!(
            still_unknown,
            "within the negative TTL the cached answer is used"
        );
    }
    let found = eventually(
        "the negative entry to expire",
        Duration::from_secs(10),
        || async { watcher.core.directory().resolve(&slug).await.unwrap() },
    )
    .await;
    assert_eq!(found.id, registered.tenant.id);
}

#[test]
fn cache_keys_of_different_kinds_never_collide() {
    let id: TenantId = uuid::Uuid::new_v4().to_string().parse().unwrap();
    let keys = [
        LookupKey::Id(id),
        LookupKey::Slug(Slug::parse("acme").unwrap()),
        LookupKey::ClerkOrg("acme".into()),
        LookupKey::Domain("acme".into()),
        LookupKey::SallaMerchant(MerchantId::new(42)),
        LookupKey::ClerkOrg("42".into()),
        LookupKey::Domain("42".into()),
        LookupKey::ClerkOrg(id.to_string()),
        LookupKey::ApiKey(ApiKeyHash::of("acme")),
        LookupKey::Domain(ApiKeyHash::of("acme").to_hex()),
    ];
    for (i, a) in keys.iter().enumerate() {
        assert!(a.cache_key().contains(a.kind()), "{a:?}");
        for b in &keys[i + 1..] {
            assert_ne!(a.cache_key(), b.cache_key(), "{a:?} vs {b:?}");
        }
    }
    assert_eq!(
        LookupKey::Slug(Slug::parse("acme").unwrap()).cache_key(),
        "tenant:v1:slug:acme"
    );
    assert_eq!(
        LookupKey::ClerkOrg("acme".into()).cache_key(),
        "tenant:v1:clerk_org:acme"
    );
}

#[tokio::test]
async fn a_slug_and_a_clerk_org_with_the_same_text_stay_apart_in_redis() {
    let database = fresh_database().await;
    let config = test_config(&database, |_| {});
    let first = tenancy_stack(&config).await;
    let slug_owner = first
        .provisioner
        .register(registration(&first, "acme-shop"), None, "test", None)
        .await
        .unwrap()
        .tenant;
    let org_owner = first
        .provisioner
        .register(registration(&first, "other-shop"), None, "test", None)
        .await
        .unwrap()
        .tenant;
    sqlx::query("UPDATE tenants SET clerk_org_id = 'acme-shop' WHERE id = $1")
        .bind(org_owner.id)
        .execute(first.provisioner.db())
        .await
        .unwrap();
    let by_slug = LookupKey::Slug(Slug::parse("acme-shop").unwrap());
    let by_org = LookupKey::ClerkOrg("acme-shop".into());
    // The first process fills L2 from PostgreSQL...
    assert_eq!(
        first
            .core
            .directory()
            .resolve(&by_slug)
            .await
            .unwrap()
            .unwrap()
            .id,
        slug_owner.id
    );
    assert_eq!(
        first
            .core
            .directory()
            .resolve(&by_org)
            .await
            .unwrap()
            .unwrap()
            .id,
        org_owner.id
    );

    // ...and a second one, with an empty L1 on the same Redis prefix, answers both from L2.
    let second = tenancy_stack(&config).await;
    let l2_hits = || {
        metric_value(
            &render_metrics(),
            "tenant_cache_requests_total",
            &[("level", "l2"), ("outcome", "hit")],
        )
        .unwrap_or(0.0)
    };
    let (hits, loads) = (l2_hits(), l3_loads());
    assert_eq!(
        second
            .core
            .directory()
            .resolve(&by_slug)
            .await
            .unwrap()
            .unwrap()
            .id,
        slug_owner.id
    );
    assert_eq!(
        second
            .core
            .directory()
            .resolve(&by_org)
            .await
            .unwrap()
            .unwrap()
            .id,
        org_owner.id
    );
    assert_eq!(l2_hits() - hits, 2.0, "both came from Redis");
    assert_eq!(l3_loads(), loads, "without asking PostgreSQL");
}
