//! The Salla embedded app's backend ("Open App"): the page's short-lived Salla token is verified with Salla
//! (`introspect.rs`), mapped to the store's tenant and to a person (the owner, or a staff member recorded on
//! first sight, `staff.rs`), and exchanged for a Wosool session (`session.rs`, `wss_…`) that `TenantContext`
//! accepts like an API key or a Clerk session. `routes.rs`: `POST /api/embedded/session` and
//! `POST /api/embedded/standalone` (a Clerk sign-in token to continue outside Salla).
//!
//! A face, like `dashboard/`: it reads the tenant through the directory and asks `salla::install` who installed
//! a store; it never creates a tenant. Owns the global `app_sessions`; writes staff rows of tenant `members`.

pub mod introspect;
pub mod routes;
pub mod session;
pub mod staff;

use std::sync::Arc;

use crate::clerk::api::ClerkApi;
use crate::core::Core;
use crate::jobs::Registry;
use crate::outbound::ClientError;

pub use introspect::{IntrospectError, Introspection, Introspector};
pub use session::{AppSession, AppSessions, PersonKind};

/// What the embedded routes need (cheap to clone): the core, the introspection client (when
/// `embedded.app_id` is set), the sessions and, when Clerk is configured, its Backend API.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    introspector: Option<Introspector>,
    sessions: AppSessions,
    clerk: Option<ClerkApi>,
}

impl Embedded {
    /// Builds the sessions (hooked to the directory's invalidations) and the clients.
    pub fn build(core: &Core) -> Result<Self, ClientError> {
        let config = core.config();
        let introspector = if config.embedded.enabled() {
            Some(Introspector::new(&config.embedded)?)
        } else {
            None
        };
        let clerk = if config.clerk.enabled() {
            let http = core.http(
                "Clerk",
                std::time::Duration::from_secs(config.clerk.request_timeout_secs),
            )?;
            Some(ClerkApi::new(&config.clerk, http))
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                sessions: AppSessions::new(core.db().clone(), core.directory(), &config.embedded),
                core: core.clone(),
                introspector,
                clerk,
            }),
        })
    }

    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    pub fn sessions(&self) -> &AppSessions {
        &self.inner.sessions
    }

    pub fn introspector(&self) -> Option<&Introspector> {
        self.inner.introspector.as_ref()
    }

    pub fn clerk(&self) -> Option<&ClerkApi> {
        self.inner.clerk.as_ref()
    }
}

/// Registers the embedded app's jobs: the periodic session prune and adding staff to Clerk organizations.
pub fn register_jobs(
    registry: &mut Registry,
    embedded: &Embedded,
) -> Result<(), serde_json::Error> {
    let core = embedded.core();
    session::register_jobs(registry, core.db().clone(), &core.config().embedded)?;
    staff::register_jobs(registry, embedded.clone());
    Ok(())
}
