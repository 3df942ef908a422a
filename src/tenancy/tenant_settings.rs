//! The tenant's settings row (organization name, locale, currency, time zone), read from the tenant's own
//! database and cached in-process. Every authenticated dashboard request shows them, so without the cache
//! each one would cost a round trip to the tenant database. The cache lives in the `TenantDirectory`, which
//! evicts it together with the tenant's other entries (locally and on every replica, over pub/sub).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::model::Tenant;
use super::{PoolError, TenantId, TenantPools};

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TenantSettings {
    pub organization_name: String,
    pub locale: String,
    pub currency: String,
    pub timezone: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub onboarding_completed_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("reading tenant settings: {0}")]
    Db(#[from] sqlx::Error),
}

/// `None` is cached too: a tenant whose database has no settings row (not seeded yet) is answered without a
/// query until the seed step invalidates the tenant.
pub(super) type Cached = Option<Arc<TenantSettings>>;

pub(super) fn cache(max_entries: u64, ttl: Duration) -> Cache<TenantId, Cached> {
    Cache::builder()
        .max_capacity(max_entries)
        .time_to_live(ttl)
        .build()
}

pub(super) async fn load(pools: &TenantPools, tenant: &Tenant) -> Result<Cached, SettingsError> {
    let pool = pools.get(tenant).await?;
    let settings: Option<TenantSettings> = sqlx::query_as(
        "SELECT organization_name, locale, currency, timezone, onboarding_completed_at FROM settings",
    )
    .fetch_optional(&*pool)
    .await?;
    Ok(settings.map(Arc::new))
}

/// The merchant app's preferences, kept in the tenant's `settings.extra` under `app` (the Settings screen
/// writes them; nothing else does): the language pages open in and which notifications the merchant wants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AppPreferences {
    /// `ar` or `en`; `None`: follow the browser.
    pub lang: Option<String>,
    pub notify_daily_summary: bool,
    pub notify_abandoned_carts: bool,
    pub notify_sync_failures: bool,
}

impl Default for AppPreferences {
    fn default() -> Self {
        Self {
            lang: None,
            notify_daily_summary: false,
            notify_abandoned_carts: true,
            notify_sync_failures: true,
        }
    }
}

/// The tenant's app preferences (defaults when never saved, or when the stored value is not readable).
pub async fn app_preferences(pool: &sqlx::PgPool) -> Result<AppPreferences, sqlx::Error> {
    let stored: Option<Option<serde_json::Value>> =
        sqlx::query_scalar("SELECT extra -> 'app' FROM settings")
            .fetch_optional(pool)
            .await?;
    Ok(stored
        .flatten()
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default())
}

/// Replaces the tenant's app preferences.
pub async fn save_app_preferences(
    pool: &sqlx::PgPool,
    preferences: &AppPreferences,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE settings SET extra = jsonb_set(extra, '{app}', $1), updated_at = now()")
        .bind(sqlx::types::Json(preferences))
        .execute(pool)
        .await?;
    Ok(())
}
