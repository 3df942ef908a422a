use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::clerk::session::SessionVerifier;
use crate::config::Config;
use crate::crm::proxy::CrmProxy;
use crate::jobs::{JobQueue, Registry};
use crate::provisioning::Provisioner;
use crate::provisioning::lifecycle::TenantLifecycle;
use crate::redis::Redis;
use crate::tenancy::{TenantDirectory, TenantPools};

/// Everything a request handler may need, built once at startup. Cloned for every request (axum hands each
/// handler its own copy), so it is one `Arc`: a single reference-count bump instead of one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

// What handlers outside the web layer take instead of the whole state: the webhook receivers their inbox and
// configuration, the CRM proxy itself. They never see `AppState`.
impl FromRef<AppState> for crate::inbox::Inbox {
    fn from_ref(state: &AppState) -> Self {
        state.inbox.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}

impl FromRef<AppState> for Option<CrmProxy> {
    fn from_ref(state: &AppState) -> Self {
        state.crm_proxy.clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind `AppState`.
pub struct Services {
    pub config: Arc<Config>,
    /// The global (control-plane) database.
    pub db: PgPool,
    pub redis: Option<Redis>,
    pub metrics: PrometheusHandle,
    pub jobs: JobQueue,
    /// The webhook inbox every provider's deliveries are stored through.
    pub inbox: crate::inbox::Inbox,
    /// Job kinds this deployment runs (the admin API validates enqueues against it).
    pub job_registry: Arc<Registry>,
    /// Tenant resolution (cached) and every change to a tenant.
    pub directory: TenantDirectory,
    /// Connection pools of tenant databases, under one budget.
    pub pools: TenantPools,
    pub provisioner: Provisioner,
    /// The operator service layer (admin API and CLI).
    pub lifecycle: TenantLifecycle,
    /// Clerk session-token verification, when Clerk is configured.
    pub sessions: Option<SessionVerifier>,
    /// The `/crm/*` reverse proxy to Twenty, when Twenty is configured.
    pub crm_proxy: Option<CrmProxy>,
    /// Record sync to the tenants' CRM workspaces, when Twenty is configured (admin status view).
    pub crm_sync: Option<crate::crm::sync::CrmSync>,
}
