use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::admin::TenantAdmin;
use crate::clerk::session::SessionVerifier;
use crate::config::Config;
use crate::crm::proxy::CrmProxy;
use crate::jobs::{JobQueue, Registry};
use crate::provisioning::Provisioner;
use crate::redis::Redis;
use crate::tenancy::{TenantDirectory, TenantPools};

/// Everything a request handler may need, built once at startup. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The global (control-plane) database.
    pub db: PgPool,
    pub redis: Option<Redis>,
    pub metrics: PrometheusHandle,
    pub jobs: JobQueue,
    /// Job kinds this deployment runs (the admin API validates enqueues against it).
    pub job_registry: Arc<Registry>,
    /// Tenant resolution (cached) and every change to a tenant.
    pub directory: TenantDirectory,
    /// Connection pools of tenant databases, under one budget.
    pub pools: TenantPools,
    pub provisioner: Provisioner,
    /// The operator service layer (admin API and CLI).
    pub admin: TenantAdmin,
    /// Clerk session-token verification, when Clerk is configured.
    pub sessions: Option<SessionVerifier>,
    /// The `/crm/*` reverse proxy to Twenty, when Twenty is configured.
    pub crm_proxy: Option<CrmProxy>,
    /// Record sync to the tenants' CRM workspaces, when Twenty is configured (admin status view).
    pub crm_sync: Option<crate::crm::sync::CrmSync>,
}
