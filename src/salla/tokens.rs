//! The Salla token store (shared/reference/salla.md §1.5): one `salla_stores` row per merchant holds the sealed
//! access and refresh tokens, and that row is the lock for every token change.
//!
//! Refresh tokens are single-use and rotate: spending one twice (two workers refreshing at once) makes Salla
//! revoke both tokens and the merchant has to reinstall. So a refresh:
//! 1. locks the store row (`SELECT … FOR UPDATE`) and re-reads it: when `token_version` moved since the caller
//!    read it, another worker (or an `app.store.authorize`) already replaced the tokens — use those;
//! 2. calls the token endpoint while holding the lock, and writes both new tokens in the same transaction;
//! 3. never retries a call that may have reached Salla (timeout): the job fails, and its retry starts again at
//!    step 1 with whatever is stored by then;
//! 4. on `invalid_grant` marks the store `needs_reinstall` and stops: nothing retries it in a loop.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::accounts::{AccountsApi, RefreshError, TokenSet};
use crate::secrets::{Keyring, SecretsError};
use crate::tenancy::{MerchantId, TenantId};

/// The tokens of one store, opened.
#[derive(Clone)]
pub struct StoreTokens {
    pub merchant_id: MerchantId,
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: Option<OffsetDateTime>,
    pub token_version: i64,
}

impl std::fmt::Debug for StoreTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTokens")
            .field("merchant_id", &self.merchant_id)
            .field("access_expires_at", &self.access_expires_at)
            .field("token_version", &self.token_version)
            .finish_non_exhaustive()
    }
}

/// A token grant to store: from `app.store.authorize` (absolute expiry) or the token endpoint (converted).
pub struct NewTokens<'a> {
    pub access_token: &'a str,
    pub refresh_token: &'a str,
    pub access_expires_at: OffsetDateTime,
    pub scope: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("store {0} has no tokens (not authorized yet, or uninstalled)")]
    NoTokens(MerchantId),
    #[error("store {0} needs to reinstall the app: Salla revoked its tokens")]
    NeedsReinstall(MerchantId),
    #[error(
        "the token refresh of store {0} may or may not have reached Salla; re-read before trying again"
    )]
    Ambiguous(MerchantId),
    #[error("Salla's token endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error("token refresh failed: {0}")]
    Refresh(String),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct Row {
    status: String,
    key_id: Option<String>,
    access_token: Option<Vec<u8>>,
    refresh_token: Option<Vec<u8>>,
    access_expires_at: Option<OffsetDateTime>,
    token_version: i64,
}

#[derive(Clone)]
pub struct TokenStore {
    db: PgPool,
    keyring: Keyring,
    accounts: AccountsApi,
    /// Refresh when the access token expires within this.
    window: time::Duration,
}

/// Sealing context of a store's `access` or `refresh` token (also used by `wosool secrets rotate`).
pub fn context(merchant: MerchantId, which: &str) -> String {
    format!("salla:{merchant}:{which}")
}

impl TokenStore {
    pub fn new(db: PgPool, keyring: Keyring, accounts: AccountsApi, window_secs: u64) -> Self {
        Self {
            db,
            keyring,
            accounts,
            window: time::Duration::seconds(window_secs as i64),
        }
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Stores tokens Salla handed over (`app.store.authorize`), replacing whatever is there — a newer authorize
    /// wins — under the store lock, and marks the store installed. Returns the new token version.
    pub async fn save_authorized(
        &self,
        merchant: MerchantId,
        tokens: &NewTokens<'_>,
    ) -> Result<i64, TokenError> {
        let mut tx = self.db.begin().await?;
        ensure_row(&mut tx, merchant).await?;
        lock(&mut tx, merchant).await?;
        let version = self.write(&mut tx, merchant, tokens).await?;
        sqlx::query(
            "UPDATE salla_stores SET status = 'installed', installed_at = coalesce(installed_at, now()), \
             uninstalled_at = NULL, last_refresh_error = NULL WHERE merchant_id = $1",
        )
        .bind(merchant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Seals and writes both tokens, bumping the version (inside the caller's locked transaction).
    async fn write(
        &self,
        conn: &mut PgConnection,
        merchant: MerchantId,
        tokens: &NewTokens<'_>,
    ) -> Result<i64, TokenError> {
        let access = self
            .keyring
            .seal(&context(merchant, "access"), tokens.access_token.as_bytes())?;
        let refresh = self.keyring.seal(
            &context(merchant, "refresh"),
            tokens.refresh_token.as_bytes(),
        )?;
        // One key id for both: they are sealed together with the active key.
        let version: i64 = sqlx::query_scalar(
            "UPDATE salla_stores SET key_id = $2, access_token = $3, refresh_token = $4, access_expires_at = $5, \
             refresh_obtained_at = now(), scope = coalesce($6, scope), token_version = token_version + 1, \
             updated_at = now() WHERE merchant_id = $1 RETURNING token_version",
        )
        .bind(merchant)
        .bind(&access.key_id)
        .bind(&access.bytes)
        .bind(&refresh.bytes)
        .bind(tokens.access_expires_at)
        .bind(tokens.scope)
        .fetch_one(&mut *conn)
        .await?;
        Ok(version)
    }

    fn open(&self, merchant: MerchantId, row: Row) -> Result<StoreTokens, TokenError> {
        if row.status == "needs_reinstall" {
            return Err(TokenError::NeedsReinstall(merchant));
        }
        let (Some(key_id), Some(access), Some(refresh)) =
            (row.key_id, row.access_token, row.refresh_token)
        else {
            return Err(TokenError::NoTokens(merchant));
        };
        Ok(StoreTokens {
            merchant_id: merchant,
            access_token: self.keyring.open_string(
                &context(merchant, "access"),
                &key_id,
                &access,
            )?,
            refresh_token: self.keyring.open_string(
                &context(merchant, "refresh"),
                &key_id,
                &refresh,
            )?,
            access_expires_at: row.access_expires_at,
            token_version: row.token_version,
        })
    }

    /// The stored tokens (no refresh).
    pub async fn current(&self, merchant: MerchantId) -> Result<StoreTokens, TokenError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT status, key_id, access_token, refresh_token, access_expires_at, token_version \
             FROM salla_stores WHERE merchant_id = $1",
        )
        .bind(merchant)
        .fetch_optional(&self.db)
        .await?;
        self.open(merchant, row.ok_or(TokenError::NoTokens(merchant))?)
    }

    /// Tokens whose access token is good for longer than the refresh window, refreshing first if needed.
    pub async fn usable(&self, merchant: MerchantId) -> Result<StoreTokens, TokenError> {
        let tokens = self.current(merchant).await?;
        let fresh = tokens
            .access_expires_at
            .is_some_and(|at| at - OffsetDateTime::now_utc() > self.window);
        if fresh {
            return Ok(tokens);
        }
        self.refresh(merchant, tokens.token_version).await
    }

    /// Refreshes the store's tokens unless they changed since the caller saw `seen_version` (then the newer
    /// tokens are returned without calling Salla). At most one refresh per store runs at a time.
    pub async fn refresh(
        &self,
        merchant: MerchantId,
        seen_version: i64,
    ) -> Result<StoreTokens, TokenError> {
        let mut tx = self.db.begin().await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT status, key_id, access_token, refresh_token, access_expires_at, token_version \
             FROM salla_stores WHERE merchant_id = $1 FOR UPDATE",
        )
        .bind(merchant)
        .fetch_optional(&mut *tx)
        .await?;
        let current = self.open(merchant, row.ok_or(TokenError::NoTokens(merchant))?)?;
        if current.token_version != seen_version {
            // Someone refreshed (or Salla re-authorized) while we waited for the lock: their tokens are newer.
            metrics::counter!("salla_token_refreshes_total", "outcome" => "reused").increment(1);
            return Ok(current);
        }
        let started = std::time::Instant::now();
        let result = self.accounts.refresh(&current.refresh_token).await;
        metrics::histogram!("salla_token_refresh_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(set) => {
                let version = self.write(&mut tx, merchant, &new_tokens(&set)).await?;
                sqlx::query(
                    "UPDATE salla_stores SET last_refresh_at = now(), last_refresh_error = NULL WHERE merchant_id = $1",
                )
                .bind(merchant)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                metrics::counter!("salla_token_refreshes_total", "outcome" => "refreshed")
                    .increment(1);
                tracing::info!(
                    merchant = merchant.as_i64(),
                    token_version = version,
                    "Salla tokens refreshed"
                );
                Ok(StoreTokens {
                    merchant_id: merchant,
                    access_token: set.access_token.clone(),
                    refresh_token: set.refresh_token.clone(),
                    access_expires_at: Some(set.expires_at),
                    token_version: version,
                })
            }
            Err(RefreshError::InvalidGrant) => {
                sqlx::query(
                    "UPDATE salla_stores SET status = 'needs_reinstall', last_refresh_error = $2, updated_at = now() \
                     WHERE merchant_id = $1",
                )
                .bind(merchant)
                .bind("invalid_grant: Salla revoked the tokens; the merchant must reinstall the app")
                .execute(&mut *tx)
                .await?;
                let tenant: Option<TenantId> =
                    sqlx::query_scalar("SELECT tenant_id FROM salla_stores WHERE merchant_id = $1")
                        .bind(merchant)
                        .fetch_one(&mut *tx)
                        .await?;
                crate::tenancy::registry::audit(
                    &mut tx,
                    crate::tenancy::registry::AuditEntry {
                        actor: "salla",
                        action: "salla.needs_reinstall",
                        tenant_id: tenant,
                        request_id: None,
                        details: serde_json::json!({ "merchant_id": merchant }),
                    },
                )
                .await?;
                if let Some(tenant_id) = tenant {
                    // With the status change, so the merchant hears of it iff it is recorded; in a savepoint,
                    // so a notice that cannot be raised never undoes the status change.
                    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
                    let notice = crate::notify::Notice::StoreNeedsReinstall {
                        tenant_id,
                        merchant_id: merchant,
                    };
                    match crate::notify::enqueue_in(&mut savepoint, &notice).await {
                        Ok(_) => savepoint.commit().await?,
                        Err(error) => {
                            tracing::error!(tenant_id = %tenant_id, error = %error, "cannot raise store_needs_reinstall");
                        }
                    }
                }
                tx.commit().await?;
                metrics::counter!("salla_token_refreshes_total", "outcome" => "invalid_grant")
                    .increment(1);
                tracing::error!(merchant = merchant.as_i64(), tenant_id = ?tenant, "Salla refused the refresh token (invalid_grant); the store needs a reinstall");
                Err(TokenError::NeedsReinstall(merchant))
            }
            Err(RefreshError::Ambiguous(why)) => {
                let _ = record_error(&mut tx, merchant, &format!("ambiguous: {why}")).await;
                tx.commit().await?;
                metrics::counter!("salla_token_refreshes_total", "outcome" => "ambiguous")
                    .increment(1);
                Err(TokenError::Ambiguous(merchant))
            }
            Err(RefreshError::Unavailable { .. }) => {
                let _ = record_error(&mut tx, merchant, "token endpoint unavailable").await;
                tx.commit().await?;
                metrics::counter!("salla_token_refreshes_total", "outcome" => "unavailable")
                    .increment(1);
                Err(TokenError::Unavailable("rate limited or down".into()))
            }
            Err(RefreshError::Other(why)) => {
                let _ = record_error(&mut tx, merchant, &why).await;
                tx.commit().await?;
                metrics::counter!("salla_token_refreshes_total", "outcome" => "failed")
                    .increment(1);
                Err(TokenError::Refresh(why))
            }
        }
    }

    /// Uninstall: the tokens are deleted (Salla revokes them anyway).
    pub async fn forget(&self, merchant: MerchantId) -> Result<(), TokenError> {
        let mut tx = self.db.begin().await?;
        ensure_row(&mut tx, merchant).await?;
        lock(&mut tx, merchant).await?;
        sqlx::query(
            "UPDATE salla_stores SET key_id = NULL, access_token = NULL, refresh_token = NULL, \
             access_expires_at = NULL, token_version = token_version + 1, status = 'uninstalled', \
             uninstalled_at = now(), updated_at = now() WHERE merchant_id = $1",
        )
        .bind(merchant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores whose access token expires within the window (the proactive refresh sweep), oldest first.
    pub async fn expiring(&self, limit: i64) -> Result<Vec<(MerchantId, i64)>, TokenError> {
        Ok(sqlx::query_as(
            "SELECT merchant_id, token_version FROM salla_stores \
             WHERE status = 'installed' AND access_token IS NOT NULL \
               AND (access_expires_at IS NULL OR access_expires_at < now() + $1) \
             ORDER BY access_expires_at NULLS FIRST LIMIT $2",
        )
        .bind(self.window)
        .bind(limit)
        .fetch_all(&self.db)
        .await?)
    }
}

fn new_tokens(set: &TokenSet) -> NewTokens<'_> {
    NewTokens {
        access_token: &set.access_token,
        refresh_token: &set.refresh_token,
        access_expires_at: set.expires_at,
        scope: set.scope.as_deref(),
    }
}

/// Creates the store's row if it does not exist (events may name a store before its tokens arrive).
pub async fn ensure_row(conn: &mut PgConnection, merchant: MerchantId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO salla_stores (merchant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(merchant)
        .execute(conn)
        .await?;
    Ok(())
}

async fn lock(conn: &mut PgConnection, merchant: MerchantId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM salla_stores WHERE merchant_id = $1 FOR UPDATE")
        .bind(merchant)
        .execute(conn)
        .await?;
    Ok(())
}

async fn record_error(
    conn: &mut PgConnection,
    merchant: MerchantId,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE salla_stores SET last_refresh_error = $2, updated_at = now() WHERE merchant_id = $1")
        .bind(merchant)
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}
