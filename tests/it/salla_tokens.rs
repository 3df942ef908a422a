//! The Salla token store against the fake OAuth server and a real database: single-flight refresh (refresh
//! tokens are single use), both tokens persisted sealed, `invalid_grant` stopping for good, the proactive window.

use wosool::Role;
use wosool::salla::accounts::AccountsApi;
use wosool::salla::tokens::{NewTokens, TokenError, TokenStore};
use wosool::secrets::Keyring;

use crate::fake_salla::{FakeSallaServer, FakeStore, IssuedTokens, MERCHANT, MERCHANT_ID};
use crate::helpers::{TestApp, spawn_app_with};

async fn store_with_tokens(
    window_secs: u64,
) -> (TestApp, FakeSallaServer, TokenStore, IssuedTokens) {
    let salla = FakeSallaServer::start().await;
    let env = salla.env();
    let app = spawn_app_with(Role::Api, env).await;
    let config = salla.config(|_| {});
    let tokens = TokenStore::new(
        app.db.clone(),
        Keyring::from_config(&config.secrets).unwrap(),
        AccountsApi::new(&config.salla).unwrap(),
        window_secs,
    );
    let issued = salla.lock().add_store(FakeStore::new(MERCHANT));
    tokens
        .save_authorized(
            MERCHANT_ID,
            &NewTokens {
                access_token: &issued.access_token,
                refresh_token: &issued.refresh_token,
                access_expires_at: time::OffsetDateTime::now_utc() + time::Duration::days(14),
                scope: Some("offline_access"),
            },
        )
        .await
        .unwrap();
    (app, salla, tokens, issued)
}

#[tokio::test]
async fn twenty_concurrent_refreshes_make_one_call_and_persist_both_tokens() {
    let (app, salla, tokens, issued) = store_with_tokens(3 * 86_400).await;
    let seen = tokens.current(MERCHANT_ID).await.unwrap().token_version;
    let results =
        futures_util::future::join_all((0..20).map(|_| tokens.refresh(MERCHANT_ID, seen))).await;
    assert_eq!(
        salla.lock().calls("POST /oauth2/token"),
        1,
        "exactly one call to the token endpoint"
    );
    let refreshed: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every caller gets tokens"))
        .collect();
    let first = &refreshed[0];
    assert!(refreshed.iter().all(|t| t.access_token == first.access_token && t.token_version == first.token_version));
    assert_ne!(first.access_token, issued.access_token);

    // Both new tokens are what is stored (the fake accepts exactly the latest pair).
    let stored = tokens.current(MERCHANT_ID).await.unwrap();
    assert_eq!(stored.access_token, first.access_token);
    assert_eq!(stored.refresh_token, first.refresh_token);
    assert_eq!(stored.token_version, seen + 1);
    let expires = stored.access_expires_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        expires > time::Duration::days(13),
        "expires_in is a duration: {expires}"
    );
    // And the stored refresh token still works (it was not spent twice).
    tokens
        .refresh(MERCHANT_ID, stored.token_version)
        .await
        .unwrap();
    assert_eq!(salla.lock().calls("POST /oauth2/token"), 2);
    drop(app);
}

#[tokio::test]
async fn invalid_grant_marks_the_store_for_reinstall_and_stops() {
    let (app, salla, tokens, _) = store_with_tokens(3 * 86_400).await;
    // The store belongs to a tenant, whose merchant must hear of it.
    let (status, registered) = app
        .register(serde_json::json!({"organization_name": "Revoked Store", "admin_email": "owner@revoked.sa"}))
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{registered}");
    let tenant: uuid::Uuid = registered["tenant_id"].as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE salla_stores SET tenant_id = $2 WHERE merchant_id = $1")
        .bind(MERCHANT_ID)
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    salla.lock().revoke_tokens(MERCHANT);
    let seen = tokens.current(MERCHANT_ID).await.unwrap().token_version;
    assert!(matches!(
        tokens.refresh(MERCHANT_ID, seen).await,
        Err(TokenError::NeedsReinstall(_))
    ));
    let status: String =
        sqlx::query_scalar("SELECT status FROM salla_stores WHERE merchant_id = $1")
            .bind(MERCHANT_ID)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "needs_reinstall");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'salla.needs_reinstall'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(audited, 1);
    // The store_needs_reinstall notice was raised with the status change (a dispatch job for the tenant).
    let raised: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM jobs WHERE kind = 'notify.dispatch' AND tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        raised
            .iter()
            .any(|p| p.to_string().contains("store_needs_reinstall")),
        "{raised:?}"
    );
    // No loop: later attempts do not call Salla again.
    for _ in 0..3 {
        assert!(matches!(
            tokens.usable(MERCHANT_ID).await,
            Err(TokenError::NeedsReinstall(_))
        ));
    }
    assert_eq!(salla.lock().calls("POST /oauth2/token"), 1);
}

#[tokio::test]
async fn tokens_inside_the_window_are_refreshed_and_fresh_ones_are_not() {
    // A 20-day window: the 14-day token is always inside it.
    let (_app, salla, eager, _) = store_with_tokens(20 * 86_400).await;
    assert_eq!(
        eager.expiring(10).await.unwrap().len(),
        1,
        "due for the sweep"
    );
    eager.usable(MERCHANT_ID).await.unwrap();
    assert_eq!(salla.lock().calls("POST /oauth2/token"), 1);

    let (_app, salla, lazy, _) = store_with_tokens(3 * 86_400).await;
    assert!(lazy.expiring(10).await.unwrap().is_empty());
    lazy.usable(MERCHANT_ID).await.unwrap();
    assert_eq!(salla.lock().calls("POST /oauth2/token"), 0);
}
