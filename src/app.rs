//! Building the application state once and running the HTTP server and/or the job worker under one
//! cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clerk::api::ClerkApi;
use crate::clerk::identity::ClerkIdentity;
use crate::clerk::session::SessionVerifier;
use crate::config::Config;
use crate::core::{Core, CoreError};
use crate::crm::CrmSetupError;
use crate::crm::twenty::TwentyCrm;
use crate::jobs::{Registry, Worker, WorkerOptions};
use crate::outbound::ClientError;
use crate::provisioning::lifecycle::TenantLifecycle;
use crate::provisioning::{CrmBackend, IdentityProvider, NotConfigured, Provisioner};
use crate::redis::Redis;
use crate::state::{AppState, WebServices};
use crate::tenancy::servers::ServerError;
use crate::{db, http, jobs, provisioning, telemetry};

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The HTTP API only.
    Api,
    /// Job workers and periodic tasks only (plus /health and /metrics for probes and scrapes).
    Worker,
    /// Both: what a single small server runs.
    All,
}

impl Role {
    fn runs_api(self) -> bool {
        matches!(self, Self::Api | Self::All)
    }
    fn runs_worker(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("Redis at {url} not reachable: {source}")]
    Redis {
        url: String,
        source: fred::error::Error,
    },
    #[error("cannot listen on {address} ({key}): {source}")]
    Bind {
        key: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error("cannot set up job handlers: {0}")]
    Jobs(#[from] serde_json::Error),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Worker(#[from] jobs::WorkerError),
    #[error("tenant servers: {0}")]
    TenantServers(#[from] ServerError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    HttpClient(#[from] ClientError),
    #[error("the CRM: {0}")]
    Crm(#[from] CrmSetupError),
    #[error("backups: {0}")]
    Backup(#[from] crate::backup::BackupError),
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::NotifierError),
}

/// The tenancy services every entry point needs (server, CLI, benchmarks), wired the same way everywhere on
/// one [`Core`].
pub struct TenancyStack {
    pub core: Core,
    /// Clerk session verification, when Clerk is configured.
    pub sessions: Option<SessionVerifier>,
    pub provisioner: Provisioner,
    pub lifecycle: TenantLifecycle,
    /// Twenty, when configured: the provisioning `crm` backend, also used by the capacity jobs.
    pub twenty: Option<Arc<TwentyCrm>>,
}

impl TenancyStack {
    /// Builds the core on a connected global database (and Redis) and the services on it.
    pub fn connect(
        config: &Config,
        pool: sqlx::PgPool,
        redis: Option<Redis>,
    ) -> Result<Self, StartupError> {
        Self::build(Core::new(config.clone(), pool, redis)?)
    }

    pub fn build(core: Core) -> Result<Self, StartupError> {
        let config = core.config();
        let (identity, sessions): (Arc<dyn IdentityProvider>, _) = if config.clerk.enabled() {
            // One client for Clerk's Backend API and JWKS, with the configured timeout.
            let http = core.http(
                "Clerk",
                std::time::Duration::from_secs(config.clerk.request_timeout_secs),
            )?;
            let api = ClerkApi::new(&config.clerk, http.clone());
            (
                Arc::new(ClerkIdentity::new(api, &core)),
                Some(SessionVerifier::new(&config.clerk, http)),
            )
        } else {
            (Arc::new(NotConfigured), None)
        };
        let twenty = if config.crm.enabled() {
            let twenty = TwentyCrm::new(&core)?;
            // Every new workspace gets the data model as the last part of its provisioning.
            let manifest = crate::crm::model::Manifest::load().map_err(CrmSetupError::from)?;
            let hook = crate::crm::bridge::ApplyModelHook {
                db: core.db().clone(),
                manifest: Arc::new(manifest),
            };
            Some(Arc::new(twenty.with_ready_hook(Arc::new(hook))))
        } else {
            None
        };
        let crm: Arc<dyn CrmBackend> = match &twenty {
            Some(twenty) => twenty.clone(),
            None => Arc::new(NotConfigured),
        };
        let provisioner = Provisioner::new(core.clone(), identity, crm);
        // A Salla store's tenant continues its onboarding (history import) once it is ready.
        let provisioner = if config.salla.enabled() {
            provisioner.with_ready_follow_up(crate::salla::install::ready_follow_up)
        } else {
            provisioner
        };
        Ok(Self {
            sessions,
            lifecycle: TenantLifecycle::new(provisioner.clone()),
            provisioner,
            twenty,
            core,
        })
    }
}

/// A built, not yet running, application: state created, migrations applied, sockets bound.
pub struct Application {
    state: AppState,
    role: Role,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    registry: Registry,
}

impl Application {
    /// Connects (waiting for PostgreSQL up to `db.startup_wait_secs`), migrates when `db.migrate_on_start`, and
    /// binds the listeners, so that once this returns the ports are known and the app can run.
    pub async fn build(config: Config, role: Role) -> Result<Self, StartupError> {
        crate::outbound::install_crypto_provider();
        // Before anything registers a metric: handles taken while no recorder is installed record nothing,
        // forever (the tenant cache keeps its counters, and sets `tenant_cache_redis_up`, when it is built).
        let metrics = telemetry::metrics_handle();
        let pool = db::connect_with_retry(&config.db).await?;
        if config.db.migrate_on_start {
            db::migrate(&pool).await?;
            tracing::info!("global migrations applied");
        }
        let redis = Redis::connect(&config.redis)
            .await
            .map_err(|source| StartupError::Redis {
                url: config.redis.url.redacted(),
                source,
            })?;

        let core = Core::new(config, pool.clone(), redis.clone())?;
        let config = core.config_arc().clone();
        let tenancy = TenancyStack::build(core.clone())?;
        if config.db.migrate_on_start {
            core.servers().ensure_templates(&pool).await?;
        }

        let mut registry = Registry::new();
        jobs::register_builtin(&mut registry, pool.clone(), &config.jobs)?;
        provisioning::register_jobs(&mut registry, tenancy.provisioner.clone())?;
        crate::provisioning::lifecycle::register_jobs(&mut registry, tenancy.lifecycle.clone());
        crate::provisioning::moves::register_jobs(
            &mut registry,
            crate::provisioning::moves::TenantMoves::new(core.clone()),
        );
        crate::clerk::webhook::register_jobs(
            &mut registry,
            tenancy.provisioner.clone(),
            tenancy.lifecycle.clone(),
            &config.clerk,
        );
        let crm_sync = if config.crm.enabled() {
            let sync = crate::crm::sync::CrmSync::new(&core)?;
            crate::crm::sync::register_jobs(&mut registry, sync.clone())?;
            if let Some(twenty) = &tenancy.twenty {
                let capacity = crate::crm::capacity::Capacity::new(twenty.clone(), &core);
                crate::crm::capacity::register_jobs(&mut registry, capacity)?;
            }
            Some(sync)
        } else {
            None
        };
        let embedded = crate::embedded::Embedded::build(&core)?;
        crate::embedded::register_jobs(&mut registry, &embedded)?;
        crate::audit::retention::register_jobs(&mut registry, core.clone())?;
        // The backup target is opened (a local directory created) only when backups are on.
        if config.backup.enabled {
            let backups = crate::backup::Backups::new(&core)?;
            crate::backup::jobs::register_jobs(&mut registry, backups)?;
        }
        crate::notify::register_jobs(&mut registry, crate::notify::Notifier::build(&core)?)?;
        if let Some(salla) = crate::salla::build(&core, tenancy.lifecycle.clone())? {
            crate::salla::register_jobs(&mut registry, salla)?;
        }

        let listener = bind("server.listen", &config.server.listen).await?;
        let metrics_listener = match config.server.metrics_listen.as_str() {
            "" => None,
            address => Some(bind("server.metrics_listen", address).await?),
        };
        let crm_proxy = crate::crm::proxy::CrmProxy::build(&core)?;
        let crm_records = crate::crm::records::CrmRecords::build(&core)?;
        let inbox = crate::inbox::Inbox::new(
            pool.clone(),
            core.jobs().clone(),
            &[
                &crate::salla::routes::SallaWebhooks(&config.salla),
                &crate::clerk::routes::ClerkWebhooks(&config.clerk),
            ],
        );
        let state = AppState::new(
            core,
            WebServices {
                inbox,
                metrics,
                job_registry: Arc::new(registry.clone()),
                provisioner: tenancy.provisioner,
                lifecycle: tenancy.lifecycle,
                sessions: tenancy.sessions,
                crm_proxy,
                crm_sync,
                crm_records,
                embedded,
                trusted_proxies: crate::http::client_ip::TrustedProxies::parse(
                    &config.server.trusted_proxies,
                ),
                rate_limiter: crate::ratelimit::RateLimiter::new(&config.rate_limits, redis),
                maintenance: crate::maintenance::Maintenance::new(
                    pool.clone(),
                    &config.maintenance,
                ),
            },
        );
        Ok(Self {
            state,
            role,
            listener,
            metrics_listener,
            registry,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address the HTTP server is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Runs until `shutdown` is cancelled (or a part fails, which cancels the others), then drains: requests
    /// get `server.shutdown_timeout_secs`, jobs `jobs.shutdown_timeout_secs`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let Self {
            state,
            role,
            listener,
            metrics_listener,
            registry,
        } = self;
        let serving = http::ServeOptions::from_config(&state.config().server);
        let mut tasks: JoinSet<Result<(), StartupError>> = JoinSet::new();

        let router = if role.runs_api() {
            crate::router::api(state.clone())
        } else {
            crate::router::ops_only(state.clone())
        };
        tracing::info!(address = %listener.local_addr().map_err(StartupError::Serve)?, ?role, "HTTP server listening");
        tasks.spawn(serve(listener, router, shutdown.clone(), serving));
        if let Some(listener) = metrics_listener {
            tracing::info!(address = %listener.local_addr().map_err(StartupError::Serve)?, "metrics listening");
            tasks.spawn(serve(
                listener,
                crate::router::metrics_only(state.clone()),
                shutdown.clone(),
                serving,
            ));
        }
        if role.runs_worker() {
            if state.config().crm.enabled() {
                // A raised cap or a new instance is used at once, not at the next sweep.
                if let Err(error) = crate::crm::capacity::sweep_now(state.jobs()).await {
                    tracing::warn!(error = %error, "cannot enqueue the CRM capacity sweep");
                }
            }
            let worker = Worker::new(
                state.db().clone(),
                registry,
                WorkerOptions::from_config(&state.config().jobs),
            );
            let token = shutdown.clone();
            tasks.spawn(async move { worker.run(token).await.map_err(StartupError::from) });
        }
        let listener_stop = shutdown.clone();
        let directory = state.directory().clone();
        tasks.spawn(async move {
            directory.run_listener(listener_stop).await;
            Ok(())
        });
        if let Some(sessions) = state.sessions().cloned() {
            let jwks_stop = shutdown.clone();
            tasks.spawn(async move {
                sessions.jwks().clone().run_refresher(jwks_stop).await;
                Ok(())
            });
        }
        let reaper_stop = shutdown.clone();
        let pools = state.pools().clone();
        tasks.spawn(async move {
            pools.run_reaper(reaper_stop).await;
            Ok(())
        });
        let gauges_stop = shutdown.clone();
        let gauges = telemetry::fleet::FleetGauges {
            db: state.db().clone(),
            redis: state.redis().cloned(),
            pools: state.pools().clone(),
            backups: state.config().backup.enabled,
        };
        let every = std::time::Duration::from_secs(state.config().jobs.stats_interval_secs);
        tasks.spawn(async move {
            gauges.run(every, gauges_stop).await;
            Ok(())
        });
        let upkeep_stop = shutdown.clone();
        let handle = state.metrics().clone();
        tasks.spawn(async move {
            telemetry::run_metrics_upkeep(handle, upkeep_stop).await;
            Ok(())
        });

        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.unwrap_or_else(|e| {
                Err(StartupError::Serve(std::io::Error::other(format!(
                    "task crashed: {e}"
                ))))
            });
            if let Err(error) = result {
                tracing::error!(error = %error, "a component failed; shutting down");
                shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        if let Some(redis) = state.redis() {
            redis.quit().await;
        }
        state.provisioner().servers().close().await;
        state.db().close().await;
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
    options: http::ServeOptions,
) -> Result<(), StartupError> {
    http::serve(listener, router, shutdown, options)
        .await
        .map_err(StartupError::Serve)
}

async fn bind(key: &'static str, address: &str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Bind {
            key,
            address: address.to_string(),
            source,
        })
}

/// `wosool serve`: build, run until SIGTERM/SIGINT, drain, return.
pub async fn run(config: Config, role: Role) -> Result<(), StartupError> {
    let app = Application::build(config, role).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.run(shutdown).await
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
    token.cancel();
}
