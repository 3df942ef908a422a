//! A store's connection as its merchant sees it (the merchant app's Home and Settings): install state,
//! whether the tokens work, the plan and the app subscription, the last webhook. Never the tokens.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::tenancy::MerchantId;

/// What `salla_stores` says about one store, for its merchant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoreStatus {
    pub merchant_id: MerchantId,
    /// `pending`, `installed`, `needs_reinstall` or `uninstalled`.
    pub status: String,
    pub has_tokens: bool,
    pub access_expires_at: Option<OffsetDateTime>,
    pub last_refresh_at: Option<OffsetDateTime>,
    pub last_refresh_error: Option<String>,
    pub store_name: Option<String>,
    pub store_domain: Option<String>,
    pub store_plan: Option<String>,
    /// `trial`, `active`, `expired` or `canceled`.
    pub subscription_status: Option<String>,
    pub subscription_plan: Option<String>,
    pub subscription_ends_at: Option<OffsetDateTime>,
    pub installed_at: Option<OffsetDateTime>,
    pub last_event_at: Option<OffsetDateTime>,
}

impl StoreStatus {
    /// Salla revoked the tokens (or they are gone while installed): nothing works until a reinstall.
    pub fn needs_reinstall(&self) -> bool {
        self.status == "needs_reinstall" || (self.status == "installed" && !self.has_tokens)
    }
}

/// The store `merchant`, if it ever started installing.
pub async fn of(db: &PgPool, merchant: MerchantId) -> Result<Option<StoreStatus>, sqlx::Error> {
    sqlx::query_as(
        "SELECT merchant_id, status, access_token IS NOT NULL AS has_tokens, access_expires_at, last_refresh_at,
                last_refresh_error, store_name, store_domain, store_plan, subscription_status, subscription_plan,
                subscription_ends_at, installed_at, last_event_at
           FROM salla_stores WHERE merchant_id = $1",
    )
    .bind(merchant)
    .fetch_optional(db)
    .await
}

/// Ready tenants whose store has the app installed (their sync is expected to run): what the notifications'
/// sync check walks.
pub async fn installed_tenants(db: &PgPool) -> Result<Vec<crate::tenancy::TenantId>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "SELECT s.tenant_id FROM salla_stores s WHERE s.status = 'installed' AND s.tenant_id IS NOT NULL AND ",
        crate::tenancy::registry::tenant_sql!(ready "s.tenant_id"),
        " ORDER BY s.tenant_id"
    ))
        .fetch_all(db)
        .await
}
