//! Fleet migrations: bring every tenant database to the latest tenant migration. Template first, then the
//! tenants with bounded parallelism; one failing tenant does not stop the others (its error is recorded in
//! the registry and it is retried on the next run, which only picks tenants not yet at the latest version).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use super::pipeline::{ProvisionError, Provisioner};
use crate::tenancy::registry;
pub use crate::tenancy::registry::FailingTenant;
use crate::tenancy::rollout::{self, RolloutEvent, RolloutReport, Target};
use crate::tenancy::servers::{self, ServerError, latest_tenant_version};
use crate::tenancy::{Tenant, TenantId};

/// Progress of a fleet migration; each migrated tenant reports the schema version it reached.
pub type FleetEvent = RolloutEvent<SchemaVersion>;

/// The schema version a tenant database reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion(pub i64);

impl std::fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "version {}", self.0)
    }
}

/// `wosool migrate status`: tenants by schema version, and the ones whose last migration failed.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub latest_version: i64,
    pub templates: BTreeMap<String, i64>,
    pub tenants_by_version: BTreeMap<i64, i64>,
    pub failing: Vec<FailingTenant>,
}

impl Provisioner {
    pub async fn migrate_fleet(
        &self,
        concurrency: usize,
        only: Option<TenantId>,
        progress: impl Fn(FleetEvent),
    ) -> Result<RolloutReport, ProvisionError> {
        self.servers().ensure_templates(self.db()).await?;
        let target = latest_tenant_version();
        let tenants = registry::migration_targets(self.db(), target, only).await?;
        let targets = tenants
            .iter()
            .map(|t| Target {
                tenant: t.id,
                slug: t.slug.to_string(),
            })
            .collect();
        let tenants: Arc<HashMap<TenantId, Tenant>> =
            Arc::new(tenants.into_iter().map(|t| (t.id, t)).collect());
        let report = rollout::run(
            targets,
            target,
            concurrency,
            |target| {
                let (this, tenants) = (self.clone(), tenants.clone());
                async move {
                    let tenant = &tenants[&target.tenant];
                    this.migrate_one(tenant).await.map(SchemaVersion)
                }
            },
            progress,
        )
        .await;
        Ok(report)
    }

    /// Migrates one tenant database and records the outcome in the registry.
    async fn migrate_one(&self, tenant: &Tenant) -> Result<i64, ServerError> {
        let result = async {
            let server = self.servers().get(&tenant.db_server)?;
            servers::migrate_database(server.tenant_options(&tenant.db_name)).await
        }
        .await;
        let recorded = match &result {
            Ok(version) => {
                self.directory()
                    .set_schema_version(tenant.id, *version, None)
                    .await
            }
            Err(error) => {
                // Migrations apply one by one: the ones before the failing one stay applied.
                let reached = self
                    .applied_version(tenant)
                    .await
                    .unwrap_or(tenant.schema_version);
                self.directory()
                    .set_schema_version(tenant.id, reached, Some(&error.to_string()))
                    .await
            }
        };
        if let Err(error) = recorded {
            tracing::error!(tenant_id = %tenant.id, error = %error, "cannot record the migration outcome");
        }
        result
    }

    /// The newest migration applied to a tenant database, when it can be read.
    async fn applied_version(&self, tenant: &Tenant) -> Option<i64> {
        let server = self.servers().get(&tenant.db_server).ok()?;
        let mut conn = PgConnection::connect_with(&server.tenant_options(&tenant.db_name))
            .await
            .ok()?;
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await
                .ok()?;
        let _ = conn.close().await;
        version
    }

    pub async fn fleet_status(&self) -> Result<FleetStatus, ProvisionError> {
        let templates: Vec<(String, i64)> = sqlx::query_as(
            "SELECT db_server, schema_version FROM tenant_templates ORDER BY db_server",
        )
        .fetch_all(self.db())
        .await?;
        let versions = registry::count_by_schema_version(self.db()).await?;
        let failing = registry::failing_migrations(self.db()).await?;
        Ok(FleetStatus {
            latest_version: latest_tenant_version(),
            templates: templates.into_iter().collect(),
            tenants_by_version: versions.into_iter().collect(),
            failing,
        })
    }
}
