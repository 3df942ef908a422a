//! `AppState`: what HTTP handlers see. The `Core` (config, databases, jobs, tenancy, secrets) plus the
//! services only the web layer needs, behind accessors: a handler asks for what it uses and cannot swap a
//! service out. Handlers outside the web layer (webhook receivers, the CRM proxy) take their own slice
//! through `FromRef` and never see `AppState`.

use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::clerk::session::SessionVerifier;
use crate::config::Config;
use crate::core::Core;
use crate::crm::proxy::CrmProxy;
use crate::crm::records::CrmRecords;
use crate::crm::sync::CrmSync;
use crate::embedded::{AppSessions, Embedded};
use crate::inbox::Inbox;
use crate::jobs::{JobQueue, Registry};
use crate::provisioning::Provisioner;
use crate::provisioning::lifecycle::TenantLifecycle;
use crate::redis::Redis;
use crate::tenancy::{TenantDirectory, TenantPools};

/// Everything a request handler may need, built once at startup. Cloned for every request (axum hands each
/// handler its own copy), so it is one `Arc`: a single reference-count bump instead of one per service.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    core: Core,
    web: WebServices,
}

/// The services only the web layer holds, besides the core.
pub struct WebServices {
    pub metrics: PrometheusHandle,
    /// The webhook inbox every provider's deliveries are stored through.
    pub inbox: Inbox,
    /// Job kinds this deployment runs (the admin API validates enqueues against it).
    pub job_registry: Arc<Registry>,
    pub provisioner: Provisioner,
    /// The operator service layer (admin API and CLI).
    pub lifecycle: TenantLifecycle,
    /// Clerk session-token verification, when Clerk is configured.
    pub sessions: Option<SessionVerifier>,
    /// The `/crm/*` reverse proxy to Twenty, when Twenty is configured.
    pub crm_proxy: Option<CrmProxy>,
    /// Record sync to the tenants' CRM workspaces, when Twenty is configured (admin status view).
    pub crm_sync: Option<CrmSync>,
    /// The tenants' CRM notes, tasks and opportunities for the app's screens, when Twenty is configured.
    pub crm_records: Option<CrmRecords>,
    /// The Salla embedded app: token introspection and its `wss_` sessions.
    pub embedded: Embedded,
    /// `server.trusted_proxies`, parsed once: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::http::client_ip::TrustedProxies,
    /// Request limits per tenant and per client IP (`[rate_limits]`), shared through Redis.
    pub rate_limiter: crate::ratelimit::RateLimiter,
    /// The global maintenance switch (cached briefly; see `crate::maintenance`).
    pub maintenance: crate::maintenance::Maintenance,
}

impl AppState {
    pub fn new(core: Core, web: WebServices) -> Self {
        Self(Arc::new(Inner { core, web }))
    }

    pub fn core(&self) -> &Core {
        &self.0.core
    }

    pub fn config(&self) -> &Config {
        self.0.core.config()
    }

    /// The global (control-plane) database.
    pub fn db(&self) -> &PgPool {
        self.0.core.db()
    }

    pub fn redis(&self) -> Option<&Redis> {
        self.0.core.redis()
    }

    pub fn jobs(&self) -> &JobQueue {
        self.0.core.jobs()
    }

    /// Tenant resolution (cached) and every change to a tenant.
    pub fn directory(&self) -> &TenantDirectory {
        self.0.core.directory()
    }

    /// Connection pools of tenant databases, under one budget.
    pub fn pools(&self) -> &TenantPools {
        self.0.core.pools()
    }

    pub fn trusted_proxies(&self) -> &crate::http::client_ip::TrustedProxies {
        &self.0.web.trusted_proxies
    }

    pub fn rate_limiter(&self) -> &crate::ratelimit::RateLimiter {
        &self.0.web.rate_limiter
    }

    pub fn maintenance(&self) -> &crate::maintenance::Maintenance {
        &self.0.web.maintenance
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.web.metrics
    }

    pub fn inbox(&self) -> &Inbox {
        &self.0.web.inbox
    }

    pub fn job_registry(&self) -> &Registry {
        &self.0.web.job_registry
    }

    pub fn provisioner(&self) -> &Provisioner {
        &self.0.web.provisioner
    }

    pub fn lifecycle(&self) -> &TenantLifecycle {
        &self.0.web.lifecycle
    }

    pub fn sessions(&self) -> Option<&SessionVerifier> {
        self.0.web.sessions.as_ref()
    }

    pub fn crm_proxy(&self) -> Option<&CrmProxy> {
        self.0.web.crm_proxy.as_ref()
    }

    pub fn crm_sync(&self) -> Option<&CrmSync> {
        self.0.web.crm_sync.as_ref()
    }

    pub fn crm_records(&self) -> Option<&CrmRecords> {
        self.0.web.crm_records.as_ref()
    }

    /// Embedded app sessions (`Bearer wss_…`), verified by `TenantContext`.
    pub fn app_sessions(&self) -> &AppSessions {
        self.0.web.embedded.sessions()
    }
}

// What handlers outside the web layer take instead of the whole state: the webhook receivers their inbox and
// configuration, the CRM proxy itself.
impl FromRef<AppState> for Inbox {
    fn from_ref(state: &AppState) -> Self {
        state.inbox().clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.core().config_arc().clone()
    }
}

impl FromRef<AppState> for Embedded {
    fn from_ref(state: &AppState) -> Self {
        state.0.web.embedded.clone()
    }
}

impl FromRef<AppState> for Option<CrmProxy> {
    fn from_ref(state: &AppState) -> Self {
        state.crm_proxy().cloned()
    }
}

impl FromRef<AppState> for Option<CrmRecords> {
    fn from_ref(state: &AppState) -> Self {
        state.crm_records().cloned()
    }
}

// The CRM proxy writes its audit entries to the tenant's database.
impl FromRef<AppState> for TenantPools {
    fn from_ref(state: &AppState) -> Self {
        state.pools().clone()
    }
}
