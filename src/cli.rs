//! Command-line interface. Every subcommand loads the same configuration (see `config/default.toml`).

mod audit;
mod crm;
mod tenants;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::jobs::JobQueue;
use crate::{Role, db, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "wosool",
    version,
    about = "Wosool control plane: turns a headless Twenty CRM into a multi-tenant SaaS for Salla merchants.",
    long_about = "Wosool control plane: turns a headless Twenty CRM into a multi-tenant SaaS for Salla merchants.\n\n\
        Configuration comes from config/default.toml (built in), an optional --config file, DATABASE_URL / \
        REDIS_URL, and WOSOOL_<SECTION>__<KEY> environment variables (e.g. WOSOOL_SERVER__LISTEN=0.0.0.0:9000). \
        Run `wosool config check` to see the effective values."
)]
pub struct Cli {
    /// TOML file overriding the built-in defaults (any subset of keys).
    #[arg(long, global = true, env = "WOSOOL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the HTTP API, the job workers, or both.
    ///
    /// Waits for PostgreSQL (db.startup_wait_secs), applies global migrations when db.migrate_on_start is
    /// true, then serves until SIGTERM/SIGINT, when it stops accepting, drains in-flight requests and lets
    /// running jobs finish (or hands them back to the queue) before exiting 0.
    Serve {
        /// api: HTTP only; worker: jobs and periodic tasks only (plus /health and /metrics); all: both.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Apply pending migrations, then exit.
    ///
    /// Without a target: the global (control-plane) database and the tenant template of every tenant server.
    /// Safe to run while servers are up and from several places at once (advisory locks serialise runs).
    Migrate {
        #[command(subcommand)]
        target: Option<MigrateTarget>,
    },
    /// Operate tenants: list, show, create, suspend, activate, retry, delete, API keys.
    Tenants {
        #[command(subcommand)]
        action: tenants::TenantsAction,
    },
    /// Fleet statistics: tenants by status and plan, provisioning p50/p95, queue depth.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Probe a running server's readiness: exit 0 when it answers 2xx, 1 otherwise.
    ///
    /// Used by the Docker HEALTHCHECK. Without --url it asks http://127.0.0.1:<port of server.listen>/health/ready.
    Health {
        /// Full URL to probe instead of the configured listener's /health/ready.
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// The tenants' Twenty workspaces.
    Crm {
        #[command(subcommand)]
        action: CrmAction,
    },
    /// Inspect the job queue.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Read the audit log (global, or one tenant's with --tenant-log), newest first.
    Audit(audit::AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum MigrateTarget {
    /// Roll every tenant database to the latest tenant migration: template first, then the tenants with
    /// bounded parallelism. A failing tenant does not stop the others; it is reported and retried next run.
    Tenants {
        /// Tenant databases migrated at the same time.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Only this tenant (id or slug).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Tenants by schema version, template versions, and tenants whose last migration failed.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrmAction {
    /// Apply the data-model manifest (config/crm-model.json) to every workspace behind its version: only what
    /// is missing is created; a failing workspace is reported and retried on the next run.
    ApplyModel {
        /// Workspaces updated at the same time.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Only this tenant (id or slug).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Each Twenty instance checked now (version, capabilities, reachable), its workspaces against its cap,
    /// and the tenants waiting for capacity.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration and print the effective values as TOML, secrets redacted.
    /// Exits 2 with one line per problem when it is invalid.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Job counts by kind and state, and how long the oldest due job has waited.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Exit code for an invalid configuration (distinct from 1, a runtime failure).
const EXIT_CONFIG: u8 = 2;

impl Cli {
    pub async fn execute(self) -> ExitCode {
        if let Command::Health {
            url: Some(url),
            timeout_secs,
        } = &self.command
        {
            return health(url, *timeout_secs).await;
        }
        let config = match Config::load(self.config.as_deref()) {
            Ok(config) => config,
            Err(error) => {
                for problem in &error.problems {
                    eprintln!("config error: {problem}");
                }
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        match self.command {
            Command::Serve { role } => {
                telemetry::init_logging(&config.log);
                report(crate::run(config, role).await)
            }
            Command::Migrate { target: None } => {
                telemetry::init_logging(&config.log);
                report(migrate(&config).await)
            }
            Command::Migrate {
                target:
                    Some(MigrateTarget::Tenants {
                        concurrency,
                        tenant,
                    }),
            } => report(tenants::migrate_tenants(&config, concurrency, tenant).await),
            Command::Migrate {
                target: Some(MigrateTarget::Status { json }),
            } => report(tenants::migrate_status(&config, json).await),
            Command::Tenants { action } => report(tenants::run(&config, action).await),
            Command::Stats { json } => report(tenants::stats(&config, json).await),
            Command::Health {
                url: None,
                timeout_secs,
            } => {
                let port = config.server.listen.rsplit(':').next().unwrap_or("8080");
                health(
                    &format!("http://127.0.0.1:{port}/health/ready"),
                    timeout_secs,
                )
                .await
            }
            Command::Health { url: Some(_), .. } => unreachable!("handled before loading config"),
            Command::Config {
                action: ConfigAction::Check,
            } => {
                print!("{}", config.to_redacted_toml());
                eprintln!("config ok");
                ExitCode::SUCCESS
            }
            Command::Jobs {
                action: JobsAction::Stats { json },
            } => report(jobs_stats(&config, json).await),
            Command::Crm {
                action:
                    CrmAction::ApplyModel {
                        concurrency,
                        tenant,
                    },
            } => report(crm::apply_model(&config, concurrency, tenant).await),
            Command::Crm {
                action: CrmAction::Status { json },
            } => report(crm::status(&config, json).await),
            Command::Audit(args) => report(audit::run(&config, args).await),
        }
    }
}

fn report<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum MigrateError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Servers(#[from] crate::tenancy::servers::ServerError),
}

async fn migrate(config: &Config) -> Result<(), MigrateError> {
    let pool = db::connect_with_retry(&config.db).await?;
    db::migrate(&pool).await?;
    tracing::info!("global migrations applied");
    let servers = crate::tenancy::TenantServers::from_config(config)?;
    servers.ensure_templates(&pool).await?;
    servers.close().await;
    tracing::info!("tenant templates migrated");
    Ok(())
}

async fn health(url: &str, timeout_secs: u64) -> ExitCode {
    let client = match crate::outbound::client("health", Duration::from_secs(timeout_secs)) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("unhealthy: cannot build HTTP client: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("healthy: {url} answered {}", response.status());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("unhealthy: {url} answered {status}: {body}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StatsError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("querying jobs failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("rendering JSON failed: {0}")]
    Json(#[from] serde_json::Error),
}

async fn jobs_stats(config: &Config, json: bool) -> Result<(), StatsError> {
    let pool = db::connect_with_retry(&config.db).await?;
    let stats = JobQueue::new(pool, config.jobs.default_max_attempts)
        .stats()
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let states = ["pending", "running", "succeeded", "discarded", "cancelled"];
    println!(
        "{:<32} {:>9} {:>9} {:>10} {:>10} {:>10} {:>14}",
        "KIND", "PENDING", "RUNNING", "SUCCEEDED", "DISCARDED", "CANCELLED", "OLDEST DUE (s)"
    );
    for kind in &stats {
        let count = |state: &str| kind.by_state.get(state).copied().unwrap_or(0);
        let oldest = kind
            .oldest_due_pending_secs
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<32} {:>9} {:>9} {:>10} {:>10} {:>10} {:>14}",
            kind.kind,
            count(states[0]),
            count(states[1]),
            count(states[2]),
            count(states[3]),
            count(states[4]),
            oldest
        );
    }
    if stats.is_empty() {
        println!("(no jobs)");
    }
    Ok(())
}
