//! The tenant as recorded in the registry.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DbName, MerchantId, Slug, TenantId, TenantStatus};

/// One row of `tenants`. Cached (L1/L2) as a whole, so it is also (de)serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    #[sqlx(try_from = "String")]
    pub slug: Slug,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    pub plan: String,
    pub db_server: String,
    #[sqlx(try_from = "String")]
    pub db_name: DbName,
    pub schema_version: i64,
    pub migration_error: Option<String>,
    pub clerk_org_id: Option<String>,
    pub salla_merchant_id: Option<MerchantId>,
    pub owner_email: String,
    pub locale: String,
    pub currency: String,
    pub timezone: String,
    pub suspended_reason: Option<String>,
    pub failure_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    pub version: i64,
    /// Why an operator made the tenant read-only (reads served, writes refused); `None`: writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub read_only_reason: Option<String>,
}

/// What registration needs to create a tenant (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: TenantId,
    pub slug: Slug,
    pub display_name: String,
    pub plan: String,
    pub db_server: String,
    pub owner_email: String,
    pub locale: String,
    pub currency: String,
    pub timezone: String,
    pub clerk_org_id: Option<String>,
    pub salla_merchant_id: Option<MerchantId>,
}
