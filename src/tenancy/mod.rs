//! Tenancy: the tenant registry, resolution with caching, per-tenant connection pools, and the tenant
//! servers their databases live on.

mod api_key;
mod directory;
mod id;
mod key;
mod l2;
mod model;
mod names;
mod pools;
pub mod registry;
pub mod rollout;
pub mod servers;
pub mod settings;
mod status;
mod tenant_settings;

pub use api_key::{ApiKeyHash, ApiKeyInfo, looks_like_key};
pub use directory::{EvictionHook, TenantDirectory};
pub use id::{MerchantId, TenantId};
pub use key::LookupKey;
pub use model::{NewTenant, Tenant};
pub use names::{DbName, NameError, Slug, is_valid_identifier, is_valid_server_key};
pub use pools::{PoolError, TenantPool, TenantPools};
pub use registry::RegistryError;
pub use servers::{TenantServer, TenantServers};
pub use status::{TenantStatus, UnknownStatus};
pub use tenant_settings::{
    AppPreferences, SettingsError, TenantSettings, app_preferences, save_app_preferences,
};

/// Refreshes the `tenants{status}` gauge (every replica reports the same registry-wide numbers), called by the
/// fleet gauges' loop (`telemetry::fleet`).
pub async fn record_status_gauges(db: &sqlx::PgPool) {
    match sqlx::query_as::<_, (String, i64)>("SELECT status, count(*) FROM tenants GROUP BY status")
        .fetch_all(db)
        .await
    {
        Ok(rows) => {
            for status in TenantStatus::ALL {
                let count = rows
                    .iter()
                    .find(|(s, _)| s == status.as_str())
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("tenants", "status" => status.as_str()).set(count as f64);
            }
        }
        Err(error) => tracing::debug!(error = %error, "cannot refresh tenant gauges"),
    }
}
