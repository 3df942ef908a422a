//! The Salla clients (Merchant API, OAuth server, rate limits) against the fake Salla: pagination, 429 and
//! `Retry-After`, the one refresh on an invalid token, bounded retries, timeouts, single-use refresh tokens,
//! expiry forms, `X-RateLimit-*` correction and the `/customers*` limit shared through Redis.

use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use wosool::config::Config;
use wosool::redis::Redis;
use wosool::salla::accounts::{AccountsApi, RefreshError};
use wosool::salla::api::{MerchantApi, MerchantId, Resource, SallaApiError};
use wosool::salla::limits::SallaLimits;

use crate::fake_salla::{
    Expiry, FakeSallaServer, FakeStore, Fault, IssuedTokens, MERCHANT, MERCHANT_ID, MemoryTokens,
    RateWindow, TOKEN_LIFETIME_SECS,
};
use crate::helpers::{self, OwnRedis, eventually};

const STORE: MerchantId = MERCHANT_ID;

/// A fake Salla with one store, and clients configured against it (`settings` as `WOSOOL_*` pairs).
struct Setup {
    salla: FakeSallaServer,
    config: Config,
    api: MerchantApi,
    accounts: AccountsApi,
    tokens: MemoryTokens,
}

async fn setup(store: FakeStore, settings: &[(&str, &str)]) -> Setup {
    let salla = FakeSallaServer::start().await;
    let issued = salla.lock().add_store(store);
    let config = salla.config(|env| {
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    });
    let api = MerchantApi::new(&config.salla, SallaLimits::new(&config.salla, None))
        .expect("Merchant API client");
    let accounts = AccountsApi::new(&config.salla).expect("accounts client");
    let tokens = MemoryTokens::new(accounts.clone(), issued);
    Setup {
        salla,
        config,
        api,
        accounts,
        tokens,
    }
}

/// Every item of `resource`, walking pages while `currentPage < totalPages`; and the pages' `total`s.
async fn walk(setup: &Setup, resource: Resource) -> (Vec<Value>, Vec<Option<u64>>) {
    let (mut items, mut totals) = (Vec::new(), Vec::new());
    let mut page_number = 1;
    loop {
        let page = setup
            .api
            .list_page(STORE, &setup.tokens, resource, page_number)
            .await
            .unwrap_or_else(|e| panic!("{resource:?} page {page_number}: {e}"));
        assert_eq!(page.current_page, page_number);
        items.extend(page.items.iter().cloned());
        totals.push(page.total);
        if !page.has_more() {
            return (items, totals);
        }
        page_number += 1;
    }
}

fn ids(items: &[Value]) -> Vec<u64> {
    items
        .iter()
        .map(|i| i["id"].as_u64().expect("numeric id"))
        .collect()
}

#[tokio::test]
async fn salla_api_pagination_walks_every_page_of_every_list() {
    wosool::telemetry::metrics_handle();
    let store = FakeStore::new(MERCHANT)
        .with_products(130)
        .with_orders(61)
        .with_customers(5)
        .with_abandoned_carts(3)
        .with_legacy_abandoned_carts(2);
    let setup = setup(store, &[]).await;
    let expected = setup.salla.lock().store(MERCHANT).clone();

    for (resource, list, pages) in [
        (Resource::Products, &expected.products, 3),
        (Resource::Orders, &expected.orders, 2),
        (Resource::Customers, &expected.customers, 1),
        (Resource::AbandonedCarts, &expected.abandoned_carts, 1),
    ] {
        let (items, totals) = walk(&setup, resource).await;
        assert_eq!(
            ids(&items),
            ids(list),
            "{resource:?}: every item once, in order"
        );
        assert!(ids(&items).iter().all(|id| *id > 1 << 31));
        assert_eq!(totals, vec![Some(list.len() as u64); pages], "{resource:?}");
        let endpoint = format!("GET {}", resource.path());
        assert_eq!(
            setup.salla.lock().calls(&endpoint),
            pages as u32,
            "{endpoint}"
        );
    }

    let metrics = helpers::render_metrics();
    let ok = helpers::metric_value(
        &metrics,
        "salla_api_requests_total",
        &[("endpoint", "products"), ("outcome", "ok")],
    );
    assert!(ok.unwrap_or(0.0) >= 3.0, "{metrics}");
}

#[tokio::test]
async fn salla_api_empty_lists_are_one_empty_page() {
    let setup = setup(FakeStore::new(MERCHANT), &[]).await;
    let page = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::AbandonedCarts, 1)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!((page.total, page.has_more()), (Some(0), false));
}

#[tokio::test]
async fn salla_api_429_waits_for_retry_after_then_succeeds() {
    let setup = setup(FakeStore::new(MERCHANT).with_orders(3), &[]).await;
    setup.salla.lock().throttle_next(1, Some(1));

    let page = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Orders, 1)
        .await
        .expect("answered after the wait");
    assert_eq!(page.items.len(), 3);
    assert_eq!(setup.salla.lock().calls("GET /orders"), 2);
    assert!(setup.api.limits().recently_throttled(STORE));
}

#[tokio::test]
async fn salla_api_429_longer_than_allowed_is_rate_limited_without_waiting() {
    let settings = [("WOSOOL_SALLA__MAX_RETRY_AFTER_SECS", "5")];
    let setup = setup(FakeStore::new(MERCHANT).with_orders(1), &settings).await;
    setup.salla.lock().throttle_next(1, Some(120));

    let error = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Orders, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(error, SallaApiError::RateLimited { retry_after } if retry_after == Duration::from_secs(120)),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
    // The store is held back: the next call does not even reach Salla.
    let again = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Products, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(again, SallaApiError::RateLimited { .. }),
        "{again:?}"
    );
    assert_eq!(setup.salla.lock().api_calls(), 1);

    // Without Retry-After, Salla's documented 60 s is assumed.
    let other = setup_other_store(&setup).await;
    setup.salla.lock().throttle_next(1, None);
    let error = setup
        .api
        .list_page(
            MerchantId::new(MERCHANT as i64 + 1),
            &other,
            Resource::Orders,
            1,
        )
        .await
        .unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
}

/// A second store on the same fake; its tokens.
async fn setup_other_store(setup: &Setup) -> MemoryTokens {
    let issued = setup.salla.lock().add_store(
        FakeStore::new(MERCHANT + 1)
            .with_orders(1)
            .with_customers(1),
    );
    MemoryTokens::new(setup.accounts.clone(), issued)
}

#[tokio::test]
async fn salla_api_invalid_token_is_refreshed_once_then_the_call_succeeds() {
    let setup = setup(FakeStore::new(MERCHANT).with_products(2), &[]).await;
    let before = setup.tokens.current();
    setup.salla.lock().expire_access_token(MERCHANT);

    let page = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Products, 1)
        .await
        .expect("answered with the refreshed token");
    assert_eq!(page.items.len(), 2);
    assert_eq!(setup.tokens.refreshes(), 1);
    let fake = setup.salla.lock();
    assert_eq!(fake.calls("POST /oauth2/token"), 1);
    assert_eq!(fake.calls("GET /products"), 2);
    let after = setup.tokens.current();
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(after.refresh_token, before.refresh_token);
}

#[tokio::test]
async fn salla_api_second_invalid_token_answer_is_unauthorized() {
    let setup = setup(FakeStore::new(MERCHANT).with_products(2), &[]).await;
    setup.salla.lock().fail("*", 2, Fault::invalid_token());

    let error = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Products, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SallaApiError::Unauthorized(m) if m == "The access token is invalid"),
        "{error:?}"
    );
    assert_eq!(setup.tokens.refreshes(), 1);
    assert_eq!(setup.salla.lock().calls("GET /products"), 2);
}

#[tokio::test]
async fn salla_api_missing_scope_is_forbidden_without_refresh() {
    let setup = setup(FakeStore::new(MERCHANT), &[]).await;
    setup.salla.lock().fail("*", 1, Fault::missing_scope());

    let error = setup
        .api
        .store_info(STORE, &setup.tokens)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SallaApiError::Forbidden(m) if m.contains("scopes")),
        "{error:?}"
    );
    assert_eq!(setup.tokens.refreshes(), 0);
    assert!(!error.is_transient());
}

#[tokio::test]
async fn salla_api_403_after_429_is_backed_off_but_a_lone_403_is_forbidden() {
    let setup = setup(FakeStore::new(MERCHANT).with_orders(1), &[]).await;
    {
        let mut fake = setup.salla.lock();
        fake.throttle_next(1, Some(1));
        fake.fail(
            "*",
            1,
            Fault::Blocked {
                retry_after: Some(1),
            },
        );
    }
    let page = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Orders, 1)
        .await
        .expect("answered after backing off");
    assert_eq!(page.items.len(), 1);
    assert_eq!(setup.salla.lock().calls("GET /orders"), 3);

    let other = setup_other_store(&setup).await;
    setup
        .salla
        .lock()
        .fail("*", 1, Fault::Blocked { retry_after: None });
    let error = setup
        .api
        .list_page(
            MerchantId::new(MERCHANT as i64 + 1),
            &other,
            Resource::Orders,
            1,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, SallaApiError::Forbidden(_)), "{error:?}");
    assert_eq!(setup.salla.lock().calls("GET /orders"), 4);
}

#[tokio::test]
async fn salla_api_server_errors_are_retried_a_bounded_number_of_times() {
    let settings = [("WOSOOL_SALLA__MAX_RETRIES", "2")];
    let setup = setup(FakeStore::new(MERCHANT).with_customers(4), &settings).await;

    setup.salla.lock().fail_next(2, 500);
    let page = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Customers, 1)
        .await
        .expect("third attempt answers");
    assert_eq!(page.items.len(), 4);
    assert_eq!(setup.salla.lock().calls("GET /customers"), 3);

    setup.salla.lock().fail_next(10, 503);
    let error = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Customers, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(error, SallaApiError::Upstream(503, _)),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(
        setup.salla.lock().calls("GET /customers"),
        6,
        "1 + 2 retries"
    );
}

#[tokio::test]
async fn salla_api_a_failed_page_is_retried_alone() {
    let setup = setup(FakeStore::new(MERCHANT).with_orders(150), &[]).await;
    setup
        .salla
        .lock()
        .fail_page("/orders", 2, 1, Fault::status(502));
    let (items, _) = walk(&setup, Resource::Orders).await;
    assert_eq!(items.len(), 150);
    assert_eq!(
        setup.salla.lock().calls("GET /orders"),
        4,
        "3 pages + 1 retry of page 2"
    );
}

#[tokio::test]
async fn salla_api_slow_answers_time_out_in_bounded_time() {
    let settings = [
        ("WOSOOL_SALLA__REQUEST_TIMEOUT_SECS", "1"),
        ("WOSOOL_SALLA__MAX_RETRIES", "1"),
    ];
    let setup = setup(FakeStore::new(MERCHANT).with_products(1), &settings).await;
    setup
        .salla
        .lock()
        .slow_next("*", 5, Duration::from_secs(10));

    let started = Instant::now();
    let error = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Products, 1)
        .await
        .unwrap_err();
    assert!(matches!(error, SallaApiError::Timeout), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(setup.salla.lock().calls("GET /products"), 2, "1 + 1 retry");
}

#[tokio::test]
async fn salla_api_webhook_subscription_is_posted_once_and_not_retried_after_a_5xx() {
    let setup = setup(FakeStore::new(MERCHANT), &[]).await;
    let url = "https://wosool.example/webhooks/salla";

    setup.salla.lock().fail("/webhooks", 1, Fault::status(500));
    let error = setup
        .api
        .subscribe_webhook(STORE, &setup.tokens, "order.created", url, "s3cret")
        .await
        .unwrap_err();
    assert!(
        matches!(error, SallaApiError::Upstream(500, _)),
        "{error:?}"
    );
    assert_eq!(setup.salla.lock().calls("POST /webhooks/subscribe"), 1);

    let webhook = setup
        .api
        .subscribe_webhook(STORE, &setup.tokens, "order.created", url, "s3cret")
        .await
        .expect("subscribed");
    assert_eq!(webhook["event"], "order.created");
    assert!(
        webhook.get("secret").is_none(),
        "Salla never shows the secret"
    );
    let listed = setup
        .api
        .list_webhooks(STORE, &setup.tokens)
        .await
        .expect("listed");
    assert_eq!(listed.len(), 1);
    let mut fake = setup.salla.lock();
    let kept = &fake.store(MERCHANT).webhooks[0];
    assert_eq!(kept["url"], url);
    assert_eq!(kept["version"], 2);
    assert_eq!(
        (kept["security_strategy"].as_str(), kept["secret"].as_str()),
        (Some("token"), Some("s3cret")),
        "our credential, not one Salla generates"
    );
    assert_eq!(
        kept["headers"],
        serde_json::json!({ "Authorization": "s3cret" })
    );
    assert!(kept["name"].as_str().is_some_and(|n| !n.is_empty()));
}

#[tokio::test]
async fn salla_api_order_details_and_store_info() {
    let store = FakeStore::new(MERCHANT).with_plan("special").with_orders(2);
    let setup = setup(store, &[]).await;
    let order_id = setup.salla.lock().store(MERCHANT).orders[1]["id"]
        .as_u64()
        .unwrap();

    let details = setup
        .api
        .order_details(STORE, &setup.tokens, order_id)
        .await
        .unwrap();
    assert_eq!(details["id"].as_u64(), Some(order_id));
    assert!(details["amounts"]["total"]["amount"].is_number());
    assert!(details["items"].is_array());
    let missing = setup
        .api
        .order_details(STORE, &setup.tokens, 1)
        .await
        .unwrap_err();
    assert!(matches!(missing, SallaApiError::NotFound), "{missing:?}");

    let info = setup.api.store_info(STORE, &setup.tokens).await.unwrap();
    assert_eq!(info.id, STORE);
    assert_eq!(info.plan.as_deref(), Some("special"));
    assert_eq!(info.currency.as_deref(), Some("SAR"));
    assert_eq!(setup.api.limits().requests_per_minute(STORE), Some(720));
}

#[tokio::test]
async fn salla_api_rate_limit_headers_correct_the_store_bucket() {
    let settings = [("WOSOOL_SALLA__MAX_RETRY_AFTER_SECS", "5")];
    let setup = setup(FakeStore::new(MERCHANT).with_products(1), &settings).await;
    let reset = OffsetDateTime::now_utc().unix_timestamp() as u64 + 30;
    setup.salla.lock().store(MERCHANT).rate = Some(RateWindow {
        limit: 7,
        remaining: 1,
        reset,
    });
    assert_eq!(setup.api.limits().requests_per_minute(STORE), None);
    setup.api.limits().set_plan(STORE, Some("pro"));
    assert_eq!(setup.api.limits().requests_per_minute(STORE), Some(360));

    setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Products, 1)
        .await
        .expect("the last request of the window");
    assert_eq!(setup.api.limits().requests_per_minute(STORE), Some(7));

    // Remaining 0: nothing until the reset, which is further away than we hold a worker.
    let error = setup
        .api
        .list_page(STORE, &setup.tokens, Resource::Products, 1)
        .await
        .unwrap_err();
    let retry_after = error.retry_after().expect("rate limited");
    assert!(retry_after > Duration::from_secs(20), "{retry_after:?}");
    assert_eq!(setup.salla.lock().calls("GET /products"), 1);
}

#[tokio::test]
async fn salla_api_customers_limit_is_shared_by_clients_through_redis() {
    let settings = [
        ("WOSOOL_SALLA__CUSTOMERS_REQUESTS_PER_WINDOW", "3"),
        ("WOSOOL_SALLA__MAX_RETRY_AFTER_SECS", "5"),
    ];
    let setup = setup(FakeStore::new(MERCHANT).with_customers(2), &settings).await;
    let other = setup_other_store(&setup).await;
    // Two replicas: their own Redis connections, the deployment's key prefix.
    let client = |redis: Redis| {
        MerchantApi::new(
            &setup.config.salla,
            SallaLimits::new(&setup.config.salla, Some(redis)),
        )
        .unwrap()
    };
    let connect = || async {
        Redis::connect(&setup.config.redis)
            .await
            .unwrap()
            .expect("Redis configured")
    };
    let (a, b) = (client(connect().await), client(connect().await));
    let other_store = MerchantId::new(MERCHANT as i64 + 1);

    for _ in 0..2 {
        a.list_page(STORE, &setup.tokens, Resource::Customers, 1)
            .await
            .unwrap();
    }
    b.list_page(other_store, &other, Resource::Customers, 1)
        .await
        .unwrap();
    for (api, store, tokens) in [(&b, other_store, &other), (&a, STORE, &setup.tokens)] {
        let error = api
            .list_page(store, tokens, Resource::Customers, 1)
            .await
            .unwrap_err();
        let retry_after = error.retry_after().expect("rate limited");
        assert!(retry_after > Duration::from_secs(5), "{retry_after:?}");
    }
    assert_eq!(setup.salla.lock().calls("GET /customers"), 3);
    // Other lists are not held back by the customers limit.
    b.list_page(other_store, &other, Resource::Orders, 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn salla_api_customers_limit_falls_back_to_the_process_when_redis_fails() {
    let redis_server = OwnRedis::start_on(helpers::closed_port()).await;
    let redis_url = redis_server.url();
    let settings = [
        ("WOSOOL_SALLA__CUSTOMERS_REQUESTS_PER_WINDOW", "2"),
        ("WOSOOL_SALLA__MAX_RETRY_AFTER_SECS", "5"),
        ("WOSOOL_REDIS__URL", redis_url.as_str()),
        ("WOSOOL_REDIS__TIMEOUT_SECS", "1"),
    ];
    let setup = setup(FakeStore::new(MERCHANT).with_customers(1), &settings).await;
    let redis = Redis::connect(&setup.config.redis)
        .await
        .unwrap()
        .expect("Redis configured");
    let api = MerchantApi::new(
        &setup.config.salla,
        SallaLimits::new(&setup.config.salla, Some(redis)),
    )
    .unwrap();
    api.list_page(STORE, &setup.tokens, Resource::Customers, 1)
        .await
        .unwrap();
    redis_server.kill().await;

    api.list_page(STORE, &setup.tokens, Resource::Customers, 1)
        .await
        .expect("counted in process");
    api.list_page(STORE, &setup.tokens, Resource::Customers, 1)
        .await
        .expect("counted in process");
    let error = api
        .list_page(STORE, &setup.tokens, Resource::Customers, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(error, SallaApiError::RateLimited { .. }),
        "{error:?}"
    );
    assert_eq!(setup.salla.lock().calls("GET /customers"), 3);
}

#[tokio::test]
async fn salla_api_refresh_rotates_and_reuse_is_invalid_grant_revoking_the_store() {
    let setup = setup(FakeStore::new(MERCHANT).with_products(1), &[]).await;
    let first = setup.tokens.current();

    let before = OffsetDateTime::now_utc();
    let set = setup
        .accounts
        .refresh(&first.refresh_token)
        .await
        .expect("refreshed");
    let after = OffsetDateTime::now_utc();
    assert_ne!(set.refresh_token, first.refresh_token);
    assert_ne!(set.access_token, first.access_token);
    let lifetime = time::Duration::seconds(TOKEN_LIFETIME_SECS as i64);
    assert!(
        set.expires_at >= before + lifetime && set.expires_at <= after + lifetime,
        "expires_in is a duration"
    );
    assert!(
        set.scope
            .as_deref()
            .is_some_and(|s| s.contains("offline_access"))
    );
    assert!(
        !format!("{set:?}").contains(&set.access_token),
        "Debug hides tokens"
    );
    assert_eq!(
        setup.salla.lock().store(MERCHANT).access_token.as_deref(),
        Some(set.access_token.as_str())
    );

    // Spending the old refresh token again: invalid_grant, and Salla revokes everything.
    let reused = setup
        .accounts
        .refresh(&first.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(reused, RefreshError::InvalidGrant), "{reused:?}");
    let revoked = setup
        .accounts
        .refresh(&set.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(revoked, RefreshError::InvalidGrant), "{revoked:?}");
    let tokens = MemoryTokens::new(
        setup.accounts.clone(),
        IssuedTokens {
            access_token: set.access_token.clone(),
            refresh_token: set.refresh_token.clone(),
        },
    );
    let error = setup.api.store_info(STORE, &tokens).await.unwrap_err();
    assert!(
        matches!(error, SallaApiError::Token(_)),
        "the refresh failed: {error:?}"
    );

    // Some servers say invalid_grant with 401.
    setup.salla.lock().invalid_grant_status = 401;
    let unknown = setup
        .accounts
        .refresh("ory_rt_never_issued")
        .await
        .unwrap_err();
    assert!(matches!(unknown, RefreshError::InvalidGrant), "{unknown:?}");
}

#[tokio::test]
async fn salla_api_refresh_reads_an_absolute_expires() {
    let setup = setup(FakeStore::new(MERCHANT), &[]).await;
    let at = OffsetDateTime::now_utc().unix_timestamp() as u64 + 3600;
    setup.salla.lock().expiry = Expiry::ExpiresAt(at);
    let set = setup
        .accounts
        .refresh(&setup.tokens.current().refresh_token)
        .await
        .unwrap();
    assert_eq!(set.expires_at.unix_timestamp() as u64, at);
}

#[tokio::test]
async fn salla_api_refresh_timeout_is_ambiguous_and_never_retried() {
    let settings = [("WOSOOL_SALLA__REQUEST_TIMEOUT_SECS", "1")];
    let setup = setup(FakeStore::new(MERCHANT), &settings).await;
    let first = setup.tokens.current();
    setup
        .salla
        .lock()
        .slow_next("/oauth2/token", 1, Duration::from_secs(2));

    let error = setup
        .accounts
        .refresh(&first.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(error, RefreshError::Ambiguous(_)), "{error:?}");
    assert_eq!(setup.salla.lock().calls("POST /oauth2/token"), 1);
    // Salla went on and rotated the tokens: resending the old refresh token would now revoke the store.
    eventually(
        "the fake rotated the tokens",
        Duration::from_secs(10),
        || async {
            let mut fake = setup.salla.lock();
            (fake.store(MERCHANT).refresh_token.as_deref() != Some(first.refresh_token.as_str()))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn salla_api_refresh_failures_that_keep_the_refresh_token_usable_and_the_ambiguous_5xx() {
    let setup = setup(FakeStore::new(MERCHANT), &[]).await;
    let refresh_token = setup.tokens.current().refresh_token;
    {
        let mut fake = setup.salla.lock();
        fake.fail(
            "/oauth2/token",
            1,
            Fault::TooManyRequests {
                retry_after: Some(7),
            },
        );
        fake.fail("/oauth2/token", 1, Fault::status(503));
        fake.fail("/oauth2/token", 1, Fault::status(502));
    }
    let throttled = setup.accounts.refresh(&refresh_token).await.unwrap_err();
    assert!(
        matches!(throttled, RefreshError::Unavailable { retry_after: Some(d) } if d == Duration::from_secs(7)),
        "{throttled:?}"
    );
    let down = setup.accounts.refresh(&refresh_token).await.unwrap_err();
    assert!(
        matches!(down, RefreshError::Ambiguous(_)),
        "a 5xx may come after the rotation: {down:?}"
    );
    let gateway = setup.accounts.refresh(&refresh_token).await.unwrap_err();
    assert!(
        matches!(gateway, RefreshError::Ambiguous(_)),
        "a gateway cannot tell: {gateway:?}"
    );

    let wrong_client = setup.salla.config(|env| {
        env.push((
            "WOSOOL_SALLA__CLIENT_SECRET".into(),
            "not-the-secret".into(),
        ));
    });
    let wrong = AccountsApi::new(&wrong_client.salla)
        .unwrap()
        .refresh(&refresh_token)
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, RefreshError::Other(m) if m.contains("invalid_client")),
        "{wrong:?}"
    );

    setup
        .accounts
        .refresh(&refresh_token)
        .await
        .expect("the refresh token was never spent");
    assert_eq!(setup.salla.lock().calls("POST /oauth2/token"), 5);
}

#[tokio::test]
async fn salla_api_connection_refused_refresh_is_unavailable() {
    let setup = setup(FakeStore::new(MERCHANT), &[]).await;
    let closed = format!("http://127.0.0.1:{}/accounts", helpers::closed_port());
    let config = setup
        .salla
        .config(|env| env.push(("WOSOOL_SALLA__ACCOUNTS_URL".into(), closed)));
    let error = AccountsApi::new(&config.salla)
        .unwrap()
        .refresh(&setup.tokens.current().refresh_token)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RefreshError::Unavailable { retry_after: None }),
        "{error:?}"
    );
}

#[tokio::test]
async fn salla_api_user_info_names_the_store() {
    let setup = setup(FakeStore::new(MERCHANT).with_plan("plus"), &[]).await;
    let access_token = setup.tokens.current().access_token;
    setup
        .salla
        .lock()
        .fail("/oauth2/user", 1, Fault::status(500));

    let user = setup
        .accounts
        .user_info(&access_token)
        .await
        .expect("user info after one retry");
    assert_eq!(user.merchant.id, STORE);
    assert_eq!(user.merchant.plan.as_deref(), Some("plus"));
    assert_eq!(user.email, format!("owner-{MERCHANT}@store.example"));
    assert_eq!(user.role.as_deref(), Some("user"));
    assert_eq!(setup.salla.lock().calls("GET /oauth2/user/info"), 2);
    // Without the data envelope, the same user.
    setup.salla.lock().bare_user_info = true;
    let bare = setup.accounts.user_info(&access_token).await.unwrap();
    assert_eq!((bare.merchant.id, bare.email), (STORE, user.email.clone()));

    let error = setup
        .accounts
        .user_info("ory_at_unknown")
        .await
        .unwrap_err();
    assert!(matches!(error, SallaApiError::Unauthorized(_)), "{error:?}");
}
