//! Maintenance mode: globally (every tenant route answers 503 `maintenance` with `Retry-After`) and per tenant
//! (read-only: reads are served, writes answer 503 `tenant_read_only`).
//!
//! The global switch lives in the global database (`maintenance_mode`, this module is its one home) so every
//! replica sees it; each replica re-reads it at most every `maintenance.cache_secs`. Without a row the
//! `[maintenance]` config is the state. The per-tenant flag is a column of the tenant registry, carried in the
//! cached `Tenant` (its changes invalidate the tenant cache everywhere).
//!
//! What stays up during maintenance: the admin API, health, metrics, and webhooks (they are accepted and
//! stored; their processing is queued like always), so no delivery is lost.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::config::MaintenanceConfig;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tenancy::Tenant;

/// The global switch as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = MaintenanceMode)]
pub struct Mode {
    pub enabled: bool,
    pub message: String,
    pub retry_after_secs: u64,
    /// `config` (no operator switched it yet) or `runtime`.
    #[schema(value_type = String)]
    pub source: &'static str,
    pub updated_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// The global switch, cached briefly (cheap to clone).
#[derive(Clone)]
pub struct Maintenance {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    default: Mode,
    cache_for: Duration,
    cached: RwLock<Option<(Instant, Arc<Mode>)>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    enabled: bool,
    message: String,
    retry_after_secs: i32,
    updated_by: String,
    updated_at: OffsetDateTime,
}

impl From<Row> for Mode {
    fn from(row: Row) -> Self {
        Self {
            enabled: row.enabled,
            message: row.message,
            retry_after_secs: row.retry_after_secs.max(1) as u64,
            source: "runtime",
            updated_by: Some(row.updated_by),
            updated_at: Some(row.updated_at),
        }
    }
}

impl Maintenance {
    pub fn new(db: PgPool, config: &MaintenanceConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                default: Mode {
                    enabled: config.enabled,
                    message: config.message.clone(),
                    retry_after_secs: config.retry_after_secs,
                    source: "config",
                    updated_by: None,
                    updated_at: None,
                },
                cache_for: Duration::from_secs(config.cache_secs),
                cached: RwLock::new(None),
            }),
        }
    }

    /// The switch, from this replica's copy when it is fresh. When the database cannot be read, the last known
    /// state (else the config) is kept: a database hiccup neither starts nor ends maintenance.
    pub async fn current(&self) -> Arc<Mode> {
        let inner = &self.inner;
        let known = inner.cached.read().ok().and_then(|c| c.clone());
        if let Some((at, mode)) = &known
            && at.elapsed() < inner.cache_for
        {
            return mode.clone();
        }
        let mode = match self.read().await {
            Ok(mode) => Arc::new(mode),
            Err(error) => {
                tracing::warn!(error = %error, "reading the maintenance switch failed; keeping the last known state");
                known
                    .map(|(_, mode)| mode)
                    .unwrap_or_else(|| Arc::new(inner.default.clone()))
            }
        };
        if let Ok(mut cached) = inner.cached.write() {
            *cached = Some((Instant::now(), mode.clone()));
        }
        mode
    }

    async fn read(&self) -> Result<Mode, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT enabled, message, retry_after_secs, updated_by, updated_at FROM maintenance_mode",
        )
        .fetch_optional(&self.inner.db)
        .await?;
        Ok(row
            .map(Mode::from)
            .unwrap_or_else(|| self.inner.default.clone()))
    }

    /// Switches maintenance for every replica (each sees it within `maintenance.cache_secs`; this one at
    /// once). Returns the state before and after.
    pub async fn set(
        &self,
        enabled: bool,
        message: &str,
        retry_after_secs: u64,
        by: &str,
    ) -> Result<(Mode, Mode), sqlx::Error> {
        let before = self.read().await?;
        let row: Row = sqlx::query_as(
            "INSERT INTO maintenance_mode (singleton, enabled, message, retry_after_secs, updated_by) \
             VALUES (true, $1, $2, $3, $4) \
             ON CONFLICT (singleton) DO UPDATE SET enabled = $1, message = $2, retry_after_secs = $3, \
                 updated_by = $4, updated_at = now() \
             RETURNING enabled, message, retry_after_secs, updated_by, updated_at",
        )
        .bind(enabled)
        .bind(message)
        .bind(retry_after_secs.clamp(1, 86_400) as i32)
        .bind(by)
        .fetch_one(&self.inner.db)
        .await?;
        let after = Mode::from(row);
        if let Ok(mut cached) = self.inner.cached.write() {
            *cached = Some((Instant::now(), Arc::new(after.clone())));
        }
        Ok((before, after))
    }
}

/// 503 `maintenance` with `Retry-After` while global maintenance is on.
pub async fn check_global(state: &AppState) -> Result<(), ApiError> {
    let mode = state.maintenance().current().await;
    if !mode.enabled {
        return Ok(());
    }
    let message = if mode.message.trim().is_empty() {
        "Wosool is under maintenance; try again shortly.".to_owned()
    } else {
        mode.message.clone()
    };
    Err(ApiError::Unavailable {
        code: "maintenance",
        message,
        details: Some(json!({ "retry_after_secs": mode.retry_after_secs })),
    })
}

/// The one check of every tenant request (called by `TenantContext` after the status gate): global
/// maintenance refuses everything, a read-only tenant refuses writes.
pub async fn check(state: &AppState, tenant: &Tenant, is_write: bool) -> Result<(), ApiError> {
    check_global(state).await?;
    if is_write && let Some(reason) = &tenant.read_only_reason {
        return Err(ApiError::Unavailable {
            code: "tenant_read_only",
            message: format!("The organization is read-only for now: {reason}."),
            details: Some(json!({ "reason": reason })),
        });
    }
    Ok(())
}

/// An extractor for tenant-facing routes that do not take a `TenantContext` (registration, session minting):
/// it refuses the request with 503 `maintenance` while global maintenance is on.
pub struct NotInMaintenance;

impl axum::extract::FromRequestParts<AppState> for NotInMaintenance {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_global(state).await.map(|()| Self)
    }
}
