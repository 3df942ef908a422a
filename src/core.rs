//! The core every service is built from, once per process: configuration, the global database, Redis, the
//! job queue, tenant resolution, tenant servers and pools, and the keyring. Integrations (Clerk, Salla,
//! Twenty) take a `&Core` and keep what they need; none reaches into the HTTP state or another service for it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::Config;
use crate::jobs::JobQueue;
use crate::outbound::{self, ClientError};
use crate::redis::Redis;
use crate::secrets::{Keyring, KeyringError};
use crate::tenancy::servers::ServerError;
use crate::tenancy::{TenantDirectory, TenantPools, TenantServers};

/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Core(Arc<Inner>);

struct Inner {
    config: Arc<Config>,
    db: PgPool,
    redis: Option<Redis>,
    jobs: JobQueue,
    directory: TenantDirectory,
    servers: TenantServers,
    pools: TenantPools,
    keyring: Keyring,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("tenant servers: {0}")]
    Servers(#[from] ServerError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

impl Core {
    /// Builds the core on a connected global database (and Redis, when configured).
    pub fn new(config: Config, db: PgPool, redis: Option<Redis>) -> Result<Self, CoreError> {
        let servers = TenantServers::from_config(&config)?;
        let directory = TenantDirectory::new(db.clone(), redis.clone(), &config.tenancy.cache);
        let pools = TenantPools::new(servers.clone(), config.tenancy.pools.clone());
        let jobs = JobQueue::new(db.clone(), config.jobs.default_max_attempts);
        let keyring = Keyring::from_config(&config.secrets)?;
        Ok(Self(Arc::new(Inner {
            config: Arc::new(config),
            db,
            redis,
            jobs,
            directory,
            servers,
            pools,
            keyring,
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The configuration as a shareable handle.
    pub fn config_arc(&self) -> &Arc<Config> {
        &self.0.config
    }

    /// The global (control-plane) database.
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }

    pub fn redis(&self) -> Option<&Redis> {
        self.0.redis.as_ref()
    }

    pub fn jobs(&self) -> &JobQueue {
        &self.0.jobs
    }

    /// Tenant resolution (cached) and every change to a tenant.
    pub fn directory(&self) -> &TenantDirectory {
        &self.0.directory
    }

    /// The PostgreSQL servers tenant databases live on.
    pub fn servers(&self) -> &TenantServers {
        &self.0.servers
    }

    /// Connection pools of tenant databases, under one budget.
    pub fn pools(&self) -> &TenantPools {
        &self.0.pools
    }

    /// Seals third-party credentials at rest.
    pub fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }

    /// An HTTP client for `service`, with `timeout` per request (see [`outbound::client`]).
    pub fn http(
        &self,
        service: &'static str,
        timeout: Duration,
    ) -> Result<reqwest::Client, ClientError> {
        outbound::client(service, timeout)
    }
}
