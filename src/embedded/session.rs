//! Embedded-app sessions (`wss_…`): the one home of the global `app_sessions` table.
//!
//! A session is minted after Salla vouched for the page's token (`routes.rs`): 32 random bytes, base64url,
//! prefixed `wss_`; only its SHA-256 is stored, so a leaked table holds no usable session, and verifying is a
//! primary-key lookup of the hash (no byte-by-byte comparison of secrets). A session ends at its absolute
//! expiry (`embedded.session_absolute_secs`), after `embedded.session_idle_secs` without a request, or when
//! revoked: every session of a tenant is revoked when the tenant is suspended or deleted (the Salla uninstall
//! suspends), by [`revoke_tenant`], which `TenantLifecycle` calls.
//!
//! Verified sessions are remembered in-process for `embedded.session_cache_secs` (≤ 5 s). A revocation evicts
//! them on every replica: [`revoke_tenant`] invalidates the tenant through the directory, whose pub/sub
//! invalidation runs [`AppSessions`]'s eviction hook on each replica. `last_seen_at` is written at most once a
//! minute per session and replica (a conditional `UPDATE` that also re-checks that the session is alive).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::future::Cache;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::EmbeddedConfig;
use crate::jobs::{Job, JobError, NewJob, Registry};
use crate::tenancy::{MerchantId, TenantDirectory, TenantId};

pub const SESSION_PREFIX: &str = "wss_";
const RANDOM_BYTES: usize = 32;
/// `wss_` + 43 base64url characters (32 bytes, no padding).
const SESSION_LEN: usize = SESSION_PREFIX.len() + 43;
/// Characters of a session named in audit records and logs (`wss_` + 8).
const SHOWN_LEN: usize = 12;
/// `last_seen_at` is written at most this often per session (shorter when the idle timeout is short).
const MAX_TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Whether `candidate` has the shape of one of our sessions (cheap check before any lookup).
pub fn looks_like_session(candidate: &str) -> bool {
    candidate.len() == SESSION_LEN
        && candidate.starts_with(SESSION_PREFIX)
        && candidate[SESSION_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonKind {
    /// The store's installer: the tenant's owner.
    Owner,
    /// Anyone else of the store's dashboard users.
    Staff,
}

impl PersonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Staff => "staff",
        }
    }

    /// The role the person acts with in the tenant.
    pub fn role(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Staff => "member",
        }
    }
}

/// A live, verified session.
#[derive(Debug, Clone)]
pub struct AppSession {
    pub tenant_id: TenantId,
    /// The owner's Clerk user id, or the staff external id `salla:{merchant}:{user}`.
    pub person: String,
    pub kind: PersonKind,
    /// The person's row in the tenant's `members`.
    pub member_id: Option<Uuid>,
    pub display_name: Option<String>,
    pub merchant: MerchantId,
    pub salla_user_id: i64,
    /// `owner` or `member`.
    pub role: String,
    pub expires_at: OffsetDateTime,
    /// `wss_` + 8 characters: names the session in audit records, never usable.
    pub shown: String,
    /// The operator who opened the app as this member (impersonation), and why.
    pub impersonation: Option<Impersonation>,
}

/// An operator acting as a member (`POST /api/admin/tenants/{id}/impersonate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    pub operator: String,
    pub reason: String,
}

impl AppSession {
    /// Who acts, for audit records: the session, or the operator *as* the member while impersonating.
    pub fn actor(&self) -> String {
        match &self.impersonation {
            None => format!("app_session:{}", self.shown),
            Some(by) => format!(
                "{} as member:{} ({})",
                by.operator,
                self.member_id
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| self.person.clone()),
                self.shown
            ),
        }
    }
}

/// What a new session is for.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub tenant_id: TenantId,
    pub person: String,
    pub kind: PersonKind,
    pub member_id: Option<Uuid>,
    pub display_name: Option<String>,
    pub merchant: MerchantId,
    pub salla_user_id: i64,
}

/// A freshly minted session: the only time the plain token exists.
pub struct Minted {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown, expired (absolute or idle) or revoked: the client must get a new one.
    #[error("the session has expired or was revoked")]
    Expired,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

struct Entry {
    session: Arc<AppSession>,
    /// Unix seconds of the last `last_seen_at` this replica knows of.
    last_seen: AtomicI64,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    person: String,
    kind: String,
    member_id: Option<Uuid>,
    display_name: Option<String>,
    salla_merchant_id: MerchantId,
    salla_user_id: i64,
    role: String,
    expires_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    impersonated_by: Option<String>,
    impersonation_reason: Option<String>,
}

/// Minting, verifying and revoking sessions (cheap to clone).
#[derive(Clone)]
pub struct AppSessions {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    cache: Option<Cache<[u8; 32], Arc<Entry>>>,
    /// Bumped by every eviction, so a load that raced one is not cached.
    generation: AtomicU64,
    absolute: Duration,
    idle: Duration,
    touch_every: Duration,
}

impl AppSessions {
    /// Sessions on `db`, their cache evicted with the tenant by `directory` (on every replica).
    pub fn new(db: PgPool, directory: &TenantDirectory, config: &EmbeddedConfig) -> Self {
        let idle = Duration::from_secs(config.session_idle_secs.max(1));
        let cache = (config.session_cache_secs > 0).then(|| {
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(config.session_cache_secs))
                .support_invalidation_closures()
                .build()
        });
        let sessions = Self {
            inner: Arc::new(Inner {
                db,
                cache,
                generation: AtomicU64::new(0),
                absolute: Duration::from_secs(config.session_absolute_secs.max(1)),
                idle,
                touch_every: (idle / 2).clamp(Duration::from_secs(1), MAX_TOUCH_EVERY),
            }),
        };
        let hooked = sessions.clone();
        directory.on_eviction(Arc::new(move |tenant| hooked.evict(tenant)));
        sessions
    }

    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle
    }

    /// Drops cached sessions of `tenant` (all of them for `None`).
    fn evict(&self, tenant: Option<TenantId>) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let Some(cache) = &self.inner.cache else {
            return;
        };
        match tenant {
            Some(tenant) => {
                let _ =
                    cache.invalidate_entries_if(move |_, entry| entry.session.tenant_id == tenant);
            }
            None => cache.invalidate_all(),
        }
    }

    /// Mints a session for `new`; the plain token is returned once and never stored.
    pub async fn create(&self, new: &NewSession) -> Result<Minted, sqlx::Error> {
        self.mint(new, new.kind.role(), self.inner.absolute, None)
            .await
    }

    /// Mints a session for an operator impersonating a member: the member's `role`, `ttl` long (bounded by
    /// the absolute lifetime), naming the operator and the reason.
    pub async fn create_impersonated(
        &self,
        new: &NewSession,
        role: &str,
        ttl: Duration,
        by: &Impersonation,
    ) -> Result<Minted, sqlx::Error> {
        self.mint(new, role, ttl.min(self.inner.absolute), Some(by))
            .await
    }

    async fn mint(
        &self,
        new: &NewSession,
        role: &str,
        lifetime: Duration,
        by: Option<&Impersonation>,
    ) -> Result<Minted, sqlx::Error> {
        let mut bytes = [0u8; RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("{SESSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let expires_at: OffsetDateTime = sqlx::query_scalar(
            "INSERT INTO app_sessions (token_hash, tenant_id, person, kind, member_id, display_name, \
               salla_merchant_id, salla_user_id, role, expires_at, impersonated_by, impersonation_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10), $11, $12) \
             RETURNING expires_at",
        )
        .bind(hash(&token).as_slice())
        .bind(new.tenant_id)
        .bind(&new.person)
        .bind(new.kind.as_str())
        .bind(new.member_id)
        .bind(&new.display_name)
        .bind(new.merchant)
        .bind(new.salla_user_id)
        .bind(role)
        .bind(lifetime.as_secs_f64())
        .bind(by.map(|by| by.operator.as_str()))
        .bind(by.map(|by| by.reason.as_str()))
        .fetch_one(&self.inner.db)
        .await?;
        Ok(Minted { token, expires_at })
    }

    /// The live session behind `token`, or [`SessionError::Expired`].
    pub async fn verify(&self, token: &str) -> Result<Arc<AppSession>, SessionError> {
        if !looks_like_session(token) {
            return Err(SessionError::Expired);
        }
        let key = hash(token);
        let now = OffsetDateTime::now_utc();
        if let Some(cache) = &self.inner.cache
            && let Some(entry) = cache.get(&key).await
        {
            if now >= entry.session.expires_at {
                cache.invalidate(&key).await;
                return Err(SessionError::Expired);
            }
            let last = entry.last_seen.load(Ordering::Acquire);
            if now.unix_timestamp() - last < self.inner.touch_every.as_secs() as i64 {
                return Ok(entry.session.clone());
            }
            return match self.touch(&key).await? {
                Some(seen) => {
                    entry
                        .last_seen
                        .store(seen.unix_timestamp(), Ordering::Release);
                    Ok(entry.session.clone())
                }
                None => {
                    cache.invalidate(&key).await;
                    Err(SessionError::Expired)
                }
            };
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        let row: Option<Row> = sqlx::query_as(
            "SELECT tenant_id, person, kind, member_id, display_name, salla_merchant_id, salla_user_id, role, \
                    expires_at, last_seen_at, impersonated_by, impersonation_reason \
               FROM app_sessions \
              WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() \
                AND last_seen_at > now() - make_interval(secs => $2)",
        )
        .bind(key.as_slice())
        .bind(self.inner.idle.as_secs_f64())
        .fetch_optional(&self.inner.db)
        .await?;
        let row = row.ok_or(SessionError::Expired)?;
        let mut last_seen = row.last_seen_at;
        if now - last_seen >= self.inner.touch_every {
            last_seen = self.touch(&key).await?.ok_or(SessionError::Expired)?;
        }
        let session = Arc::new(AppSession {
            tenant_id: row.tenant_id,
            person: row.person,
            kind: if row.kind == "owner" {
                PersonKind::Owner
            } else {
                PersonKind::Staff
            },
            member_id: row.member_id,
            display_name: row.display_name,
            merchant: row.salla_merchant_id,
            salla_user_id: row.salla_user_id,
            role: row.role,
            expires_at: row.expires_at,
            shown: token[..SHOWN_LEN].to_owned(),
            impersonation: row
                .impersonated_by
                .zip(row.impersonation_reason)
                .map(|(operator, reason)| Impersonation { operator, reason }),
        });
        if let Some(cache) = &self.inner.cache {
            cache
                .insert(
                    key,
                    Arc::new(Entry {
                        session: session.clone(),
                        last_seen: AtomicI64::new(last_seen.unix_timestamp()),
                    }),
                )
                .await;
            // An eviction (a revocation) that ran during the load may predate this entry: drop it.
            if self.inner.generation.load(Ordering::Acquire) != generation {
                cache.invalidate(&key).await;
            }
        }
        Ok(session)
    }

    /// Records activity, only while the session is alive; its new `last_seen_at`, or `None` when it ended.
    async fn touch(&self, key: &[u8; 32]) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE app_sessions SET last_seen_at = now() \
              WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() \
                AND last_seen_at > now() - make_interval(secs => $2) \
             RETURNING last_seen_at",
        )
        .bind(key.as_slice())
        .bind(self.inner.idle.as_secs_f64())
        .fetch_optional(&self.inner.db)
        .await
    }
}

/// Revokes every live session of `tenant` and evicts them from every replica's cache (through the directory's
/// invalidation). Called by `TenantLifecycle` whenever a tenant stops being served (suspension, deletion).
pub async fn revoke_tenant(
    db: &PgPool,
    directory: &TenantDirectory,
    tenant: TenantId,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let revoked = sqlx::query(
        "UPDATE app_sessions SET revoked_at = now(), revoked_reason = $2 \
          WHERE tenant_id = $1 AND revoked_at IS NULL",
    )
    .bind(tenant)
    .bind(reason)
    .execute(db)
    .await?
    .rows_affected();
    directory.invalidate(tenant, &[]).await;
    if revoked > 0 {
        tracing::info!(tenant_id = %tenant, revoked, reason, "embedded app sessions revoked");
    }
    Ok(revoked)
}

/// Deletes ended sessions: past their absolute expiry, idle beyond the timeout, or revoked a day ago.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneSessions {
    pub idle_secs: u64,
}

impl Job for PruneSessions {
    const KIND: &'static str = "embedded.prune_sessions";
    const MAX_ATTEMPTS: Option<i32> = Some(3);
}

const PRUNE_BATCH: i64 = 10_000;

impl PruneSessions {
    pub async fn run(&self, db: &PgPool) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM app_sessions WHERE token_hash IN ( \
                   SELECT token_hash FROM app_sessions \
                    WHERE expires_at < now() \
                       OR last_seen_at < now() - make_interval(secs => $1) \
                       OR revoked_at < now() - interval '1 day' \
                    LIMIT $2)",
            )
            .bind(self.idle_secs as f64)
            .bind(PRUNE_BATCH)
            .execute(db)
            .await?
            .rows_affected();
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// Registers the periodic prune of ended sessions.
pub fn register_jobs(
    registry: &mut Registry,
    db: PgPool,
    config: &EmbeddedConfig,
) -> Result<(), serde_json::Error> {
    registry.register(move |_ctx, job: PruneSessions| {
        let db = db.clone();
        async move {
            let deleted = job.run(&db).await.map_err(JobError::retry)?;
            tracing::info!(deleted, "pruned ended embedded app sessions");
            Ok(())
        }
    });
    registry.periodic(
        PruneSessions::KIND,
        Duration::from_secs(config.prune_interval_secs),
        NewJob::new(&PruneSessions {
            idle_secs: config.session_idle_secs,
        })?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_have_one_shape() {
        let token = format!("{SESSION_PREFIX}{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(token.len(), SESSION_LEN);
        assert!(looks_like_session(&token));
        assert!(!looks_like_session(&token[..SESSION_LEN - 1]));
        assert!(!looks_like_session(&token.replace("wss_", "wsl_")));
        assert!(!looks_like_session(&format!(
            "{}=",
            &token[..SESSION_LEN - 1]
        )));
    }
}
