//! Command-line interface. Every subcommand loads the same configuration (see `config/default.toml`).

mod audit;
mod backup;
mod crm;
mod moves;
mod notifications;
mod output;
mod secrets;
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

    /// Print the result as one JSON document on stdout instead of text (every command but `serve`, whose
    /// logs follow log.format). Errors stay on stderr, with the same exit codes.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the HTTP API, the job workers, or both.
    ///
    /// Waits for PostgreSQL (db.startup_wait_secs; every other command fails within 2 s naming
    /// DATABASE_URL), applies global migrations when db.migrate_on_start is true, then serves until
    /// SIGTERM/SIGINT, when it stops accepting, drains in-flight requests and lets running jobs finish (or
    /// hands them back to the queue) before exiting 0.
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
    /// Operate tenants: list, show, create, suspend, activate, retry, delete, move, API keys.
    Tenants {
        #[command(subcommand)]
        action: tenants::TenantsAction,
    },
    /// Fleet statistics: tenants by status and plan, provisioning p50/p95, queue depth.
    Stats,
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
    /// Stored third-party credentials (Salla tokens, Twenty keys and passwords, Clerk owner passwords).
    Secrets {
        #[command(subcommand)]
        action: secrets::SecretsAction,
    },
    /// Read the audit log (global, or one tenant's with --tenant-log), newest first.
    Audit(audit::AuditArgs),
    /// Backups of the global, tenant and Twenty databases ([backup], docs/backups.md).
    Backup {
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// Restore a tenant from a backup set (then --confirm or --abort), or the global database (--global).
    Restore(backup::RestoreArgs),
    /// Notifications sent to merchants and operators (email, operator webhook): what, to whom, and how it went.
    Notifications {
        #[command(subcommand)]
        action: notifications::NotificationsAction,
    },
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
    Status,
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
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration and print the effective values as TOML (with --json: {"valid", "config"}),
    /// secrets redacted. Exits 2 with one line per problem on stderr when it is invalid (with --json, also
    /// {"valid": false, "problems": [...]} on stdout).
    Check,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Job counts by kind and state, and how long the oldest due job has waited.
    Stats,
}

/// Exit code for an invalid configuration (distinct from 1, a runtime failure).
const EXIT_CONFIG: u8 = 2;

impl Cli {
    pub async fn execute(self) -> ExitCode {
        let json = self.json;
        if let Command::Health {
            url: Some(url),
            timeout_secs,
        } = &self.command
        {
            return health(url, *timeout_secs, json).await;
        }
        if json && matches!(self.command, Command::Serve { .. }) {
            eprintln!("error: --json does not apply to serve (its logs follow log.format)");
            return ExitCode::from(EXIT_CONFIG);
        }
        let config = match Config::load(self.config.as_deref()) {
            Ok(config) => config,
            Err(error) => {
                for problem in &error.problems {
                    eprintln!("config error: {problem}");
                }
                if json && matches!(self.command, Command::Config { .. }) {
                    output::print(
                        &serde_json::json!({ "valid": false, "problems": error.problems }),
                    );
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
                report(migrate(&config, json).await)
            }
            Command::Migrate {
                target:
                    Some(MigrateTarget::Tenants {
                        concurrency,
                        tenant,
                    }),
            } => report(tenants::migrate_tenants(&config, concurrency, tenant, json).await),
            Command::Migrate {
                target: Some(MigrateTarget::Status),
            } => report(tenants::migrate_status(&config, json).await),
            Command::Tenants { action } => report(tenants::run(&config, action, json).await),
            Command::Stats => report(tenants::stats(&config, json).await),
            Command::Health {
                url: None,
                timeout_secs,
            } => {
                let port = config.server.listen.rsplit(':').next().unwrap_or("8080");
                health(
                    &format!("http://127.0.0.1:{port}/health/ready"),
                    timeout_secs,
                    json,
                )
                .await
            }
            Command::Health { url: Some(_), .. } => unreachable!("handled before loading config"),
            Command::Config {
                action: ConfigAction::Check,
            } => {
                if json {
                    output::print(&serde_json::json!({ "valid": true, "config": config }));
                } else {
                    print!("{}", config.to_redacted_toml());
                }
                eprintln!("config ok");
                ExitCode::SUCCESS
            }
            Command::Jobs {
                action: JobsAction::Stats,
            } => report(jobs_stats(&config, json).await),
            Command::Crm {
                action:
                    CrmAction::ApplyModel {
                        concurrency,
                        tenant,
                    },
            } => report(crm::apply_model(&config, concurrency, tenant, json).await),
            Command::Crm {
                action: CrmAction::Status,
            } => report(crm::status(&config, json).await),
            Command::Secrets { action } => report(secrets::run(&config, action, json).await),
            Command::Audit(args) => report(audit::run(&config, args, json).await),
            Command::Backup { action } => report(backup::run(&config, action, json).await),
            Command::Restore(args) => report(backup::restore(&config, args, json).await),
            Command::Notifications { action } => {
                report(notifications::run(&config, action, json).await)
            }
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

async fn migrate(config: &Config, json: bool) -> Result<(), MigrateError> {
    let pool = db::connect_for_cli(&config.db).await?;
    db::migrate(&pool).await?;
    tracing::info!("global migrations applied");
    let servers = crate::tenancy::TenantServers::from_config(config)?;
    servers.ensure_templates(&pool).await?;
    let templates: Vec<String> = servers.all().iter().map(|s| s.key.clone()).collect();
    servers.close().await;
    tracing::info!("tenant templates migrated");
    if json {
        output::print(&serde_json::json!({
            "global": "migrated",
            "tenant_templates": templates,
        }));
    } else {
        println!(
            "migrated: the global database and the tenant template on {}",
            templates.join(", ")
        );
    }
    Ok(())
}

/// Probes `url`; with `json` the verdict is `{"healthy", "url", "status", "error"}` on stdout (the exit code is
/// the same either way: 0 healthy, 1 not).
async fn health(url: &str, timeout_secs: u64, json: bool) -> ExitCode {
    let (healthy, status, error) = probe(url, timeout_secs).await;
    if json {
        output::print(&serde_json::json!({
            "healthy": healthy,
            "url": url,
            "status": status.map(|s| s.as_u16()),
            "error": error,
        }));
    } else if healthy {
        println!(
            "healthy: {url} answered {}",
            status.map(|s| s.to_string()).unwrap_or_default()
        );
    } else {
        match status {
            Some(status) => eprintln!(
                "unhealthy: {url} answered {status}: {}",
                error.unwrap_or_default()
            ),
            None => eprintln!("unhealthy: {url}: {}", error.unwrap_or_default()),
        }
    }
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether `url` answers 2xx; its status when it answered; why not (the body of a non-2xx answer, or the
/// transport error).
async fn probe(
    url: &str,
    timeout_secs: u64,
) -> (bool, Option<reqwest::StatusCode>, Option<String>) {
    let client = match crate::outbound::client("health", Duration::from_secs(timeout_secs)) {
        Ok(client) => client,
        Err(error) => {
            return (
                false,
                None,
                Some(format!("cannot build HTTP client: {error}")),
            );
        }
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => (true, Some(response.status()), None),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            (false, Some(status), Some(body))
        }
        Err(error) => (false, None, Some(error.to_string())),
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
    let pool = db::connect_for_cli(&config.db).await?;
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
