//! `wosool tenants …`, `wosool stats` and `wosool migrate tenants|status`: the operator CLI, on the same
//! service layer as the admin API.

use std::time::Duration;

use clap::Subcommand;
use uuid::Uuid;

use crate::config::Config;
use crate::provisioning::RegistrationRequest;
use crate::provisioning::lifecycle::{Actor, TenantLifecycle, parse_time};
use crate::tenancy::registry::TenantFilter;
use crate::tenancy::rollout;
use crate::tenancy::{Tenant, TenantStatus};
use crate::{TenancyStack, db};

#[derive(Debug, Subcommand)]
pub enum TenantsAction {
    /// List tenants, newest first.
    List {
        /// Only this status: pending, provisioning, ready, failed, suspended, deleting or deleted.
        #[arg(long)]
        status: Option<String>,
        /// Only this plan (one of tenancy.plans).
        #[arg(long)]
        plan: Option<String>,
        /// Substring of slug, name or owner email.
        #[arg(long)]
        search: Option<String>,
        /// RFC 3339 time, e.g. 2026-11-01T00:00:00Z.
        #[arg(long)]
        created_after: Option<String>,
        /// RFC 3339 time: only tenants created before it.
        #[arg(long)]
        created_before: Option<String>,
        /// Most tenants listed, 1 to 200.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Everything about one tenant (by id or slug).
    Show {
        /// The tenant's id or slug.
        tenant: String,
    },
    /// Register a tenant and start provisioning it.
    Create {
        /// The organization's name (1 to 200 characters).
        #[arg(long)]
        name: String,
        /// The owner's email.
        #[arg(long)]
        email: String,
        /// URL-safe name (3 to 48 of a-z, 0-9, -); derived from the name when absent.
        #[arg(long)]
        slug: Option<String>,
        /// One of tenancy.plans (default tenancy.default_plan).
        #[arg(long)]
        plan: Option<String>,
        /// Locale, e.g. ar-SA (default tenancy.default_locale).
        #[arg(long)]
        locale: Option<String>,
        /// ISO 4217 currency, e.g. SAR.
        #[arg(long)]
        currency: Option<String>,
        /// IANA time zone, e.g. Asia/Riyadh.
        #[arg(long)]
        timezone: Option<String>,
        /// Tenant server key (default: the one with the fewest tenants).
        #[arg(long)]
        server: Option<String>,
        /// Wait (up to 60 s) until the tenant is ready or failed; needs a running worker.
        #[arg(long)]
        wait: bool,
    },
    /// Suspend a tenant: its users get 403 with the reason. Suspending a suspended tenant with another reason
    /// replaces the reason.
    Suspend {
        /// The tenant's id or slug.
        tenant: String,
        /// Why (1 to 500 characters): shown to its users.
        #[arg(long)]
        reason: String,
    },
    /// Reactivate a suspended tenant.
    Activate {
        /// The tenant's id or slug.
        tenant: String,
    },
    /// Resume a failed provisioning from its failed step.
    Retry {
        /// The tenant's id or slug.
        tenant: String,
    },
    /// Delete a tenant: dump its database to tenancy.backup_dir, drop it, mark the tenant deleted.
    Delete {
        /// The tenant's id or slug.
        tenant: String,
        /// Dump but do not drop the database.
        #[arg(long)]
        keep_data: bool,
    },
    /// Move a tenant's database to another tenant server: read-only while it is copied (pg_dump | pg_restore),
    /// row counts verified, switched on every replica, the old database dropped after
    /// tenancy.moves.drop_source_after_secs. Runs on a worker; --wait follows it. See docs/moves.md.
    Move(super::moves::MoveArgs),
    /// Manage a tenant's API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyAction {
    /// Create a key; it is printed once (with --json: {"api_key", "key"}).
    Create {
        /// The tenant's id or slug.
        tenant: String,
        /// The key's display name (1 to 100 characters).
        #[arg(long, default_value = "cli")]
        name: String,
        /// What the key may do: read, write or admin.
        #[arg(long, default_value = "read")]
        scope: crate::access::Scope,
    },
    /// The tenant's keys, revoked ones included (never the keys themselves).
    List {
        /// The tenant's id or slug.
        tenant: String,
    },
    /// Revoke a key: requests with it get 401 at once.
    Revoke {
        /// The tenant's id or slug.
        tenant: String,
        /// The key's id (from `api-key list`).
        key_id: Uuid,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("{0}")]
    Failed(String),
}

pub(super) fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

/// Connects to the registry (and Redis, so changes reach the servers' caches) and builds the services.
pub(super) async fn connect(config: &Config) -> Result<TenancyStack, CliError> {
    let pool = db::connect_for_cli(&config.db).await?;
    let redis = crate::redis::Redis::connect(&config.redis)
        .await
        .map_err(|e| fail(format!("Redis: {e}")))?;
    TenancyStack::connect(config, pool, redis).map_err(fail)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(value).map_err(fail)?);
    Ok(())
}

/// `{"tenant": …}` with `--json`, else `<slug> <status>` and an optional note.
fn print_tenant(tenant: &Tenant, note: &str, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&serde_json::json!({ "tenant": tenant }));
    }
    println!("{} {}{note}", tenant.slug, tenant.status);
    Ok(())
}

fn print_table(tenants: &[Tenant]) {
    println!(
        "{:<36}  {:<24}  {:<12}  {:<10}  {:>7}  {:<20}",
        "ID", "SLUG", "STATUS", "PLAN", "SCHEMA", "CREATED"
    );
    for t in tenants {
        let created = t
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        println!(
            "{:<36}  {:<24}  {:<12}  {:<10}  {:>7}  {:<20}",
            t.id,
            t.slug,
            t.status,
            t.plan,
            t.schema_version,
            &created[..created.len().min(19)]
        );
    }
    if tenants.is_empty() {
        println!("(no tenants)");
    }
}

pub async fn run(config: &Config, action: TenantsAction, json: bool) -> Result<(), CliError> {
    let stack = connect(config).await?;
    let admin = &stack.lifecycle;
    let actor = Actor::cli();
    match action {
        TenantsAction::List {
            status,
            plan,
            search,
            created_after,
            created_before,
            limit,
        } => {
            let filter = TenantFilter {
                status: status
                    .map(|s| {
                        TenantStatus::parse(&s).ok_or_else(|| fail(format!("unknown status {s:?}")))
                    })
                    .transpose()?,
                plan,
                search,
                created_after: created_after
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .map_err(fail)?,
                created_before: created_before
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .map_err(fail)?,
                after: None,
                limit: limit.clamp(1, 10_000),
            };
            let tenants = admin.list(&filter).await.map_err(fail)?;
            if json {
                print_json(&tenants)?;
            } else {
                print_table(&tenants);
            }
        }
        TenantsAction::Show { tenant } => {
            let details = admin.show(&tenant).await.map_err(fail)?;
            if json {
                print_json(&details)?;
            } else {
                print_details(&details);
            }
        }
        TenantsAction::Create {
            name,
            email,
            slug,
            plan,
            locale,
            currency,
            timezone,
            server,
            wait,
        } => {
            let request = RegistrationRequest {
                organization_name: name,
                admin_email: email,
                plan,
                slug,
                locale,
                currency,
                timezone,
            };
            let valid = request.validate(&config.tenancy).map_err(|fields| {
                fail(
                    fields
                        .iter()
                        .map(|(f, why)| format!("{f}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            let registered = admin
                .create(valid, server.as_deref(), &actor)
                .await
                .map_err(fail)?;
            let mut tenant = registered.tenant;
            if wait {
                tenant = wait_until_settled(admin, &tenant.id.to_string()).await?;
            }
            if json {
                print_json(
                    &serde_json::json!({ "tenant": tenant, "provisioning_id": registered.run_id }),
                )?;
            } else {
                println!("{} {} {}", tenant.id, tenant.slug, tenant.status);
            }
        }
        TenantsAction::Suspend { tenant, reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(fail("--reason must be 1 to 500 characters"));
            }
            let t = admin.suspend(&tenant, reason, &actor).await.map_err(fail)?;
            print_tenant(&t, "", json)?;
        }
        TenantsAction::Activate { tenant } => {
            let t = admin.activate(&tenant, &actor).await.map_err(fail)?;
            print_tenant(&t, "", json)?;
        }
        TenantsAction::Retry { tenant } => {
            let (t, run) = admin.retry(&tenant, &actor).await.map_err(fail)?;
            if json {
                print_json(&serde_json::json!({ "tenant": t, "provisioning_id": run }))?;
            } else {
                println!("{} {} (provisioning run {run})", t.slug, t.status);
            }
        }
        TenantsAction::Delete { tenant, keep_data } => {
            let t = admin
                .delete(&tenant, keep_data, &actor)
                .await
                .map_err(fail)?;
            print_tenant(&t, " (a worker dumps and drops the database)", json)?;
        }
        TenantsAction::ApiKey { action } => api_key(admin, action, &actor, json).await?,
        TenantsAction::Move(args) => super::moves::run(&stack, args, json).await?,
    }
    Ok(())
}

async fn api_key(
    admin: &TenantLifecycle,
    action: ApiKeyAction,
    actor: &Actor,
    json: bool,
) -> Result<(), CliError> {
    match action {
        ApiKeyAction::Create {
            tenant,
            name,
            scope,
        } => {
            let name = crate::dashboard::check_key_name(&name).map_err(fail)?;
            let t = admin.find(&tenant).await.map_err(fail)?;
            let (info, plain) = admin
                .create_api_key(t.id, &name, scope, actor)
                .await
                .map_err(fail)?;
            if json {
                print_json(&serde_json::json!({ "api_key": info, "key": plain }))?;
            } else {
                eprintln!("key {} created; it is shown only now:", info.id);
                println!("{plain}");
            }
        }
        ApiKeyAction::List { tenant } => {
            let t = admin.find(&tenant).await.map_err(fail)?;
            let keys = admin.list_api_keys(t.id).await.map_err(fail)?;
            if json {
                print_json(&serde_json::json!({ "api_keys": keys }))?;
            } else {
                print_keys(&keys);
            }
        }
        ApiKeyAction::Revoke { tenant, key_id } => {
            let t = admin.find(&tenant).await.map_err(fail)?;
            if !admin
                .revoke_api_key(t.id, key_id, actor)
                .await
                .map_err(fail)?
            {
                return Err(fail("no such API key"));
            }
            if json {
                print_json(&serde_json::json!({ "revoked": key_id }))?;
            } else {
                println!("revoked {key_id}");
            }
        }
    }
    Ok(())
}

fn print_keys(keys: &[crate::tenancy::ApiKeyInfo]) {
    println!(
        "{:<36}  {:<14}  {:<24}  {:<20}  REVOKED",
        "ID", "PREFIX", "NAME", "CREATED"
    );
    let time = |t: &time::OffsetDateTime| {
        let text = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        text[..text.len().min(19)].to_owned()
    };
    for key in keys {
        println!(
            "{:<36}  {:<14}  {:<24}  {:<20}  {}",
            key.id,
            key.prefix,
            key.name,
            time(&key.created_at),
            key.revoked_at
                .as_ref()
                .map(time)
                .unwrap_or_else(|| "-".into())
        );
    }
    if keys.is_empty() {
        println!("(no API keys)");
    }
}

async fn wait_until_settled(admin: &TenantLifecycle, id: &str) -> Result<Tenant, CliError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tenant = admin.find(id).await.map_err(fail)?;
        if matches!(tenant.status, TenantStatus::Ready | TenantStatus::Failed)
            || std::time::Instant::now() > deadline
        {
            return Ok(tenant);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_details(details: &crate::provisioning::lifecycle::TenantDetails) {
    let t = &details.tenant;
    println!("id:             {}", t.id);
    println!("slug:           {}", t.slug);
    println!("name:           {}", t.display_name);
    println!("status:         {}", t.status);
    if let Some(reason) = t.suspended_reason.as_ref().or(t.failure_reason.as_ref()) {
        println!("reason:         {reason}");
    }
    println!("plan:           {}", t.plan);
    println!("owner:          {}", t.owner_email);
    println!("database:       {} on {}", t.db_name, t.db_server);
    println!(
        "size:           {}",
        details
            .database_size_bytes
            .map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
    );
    println!("schema version: {}", t.schema_version);
    println!(
        "settings:       {} / {} / {}",
        t.locale, t.currency, t.timezone
    );
    if let Some(counts) = &details.counts {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("rows:           {}", parts.join(", "));
    }
    if let Some(run) = &details.latest_run {
        println!("provisioning:   {} (run {})", run.run.status, run.run.id);
        for step in &run.steps {
            println!(
                "  {:<16} {:<10} {:>6} ms  {}",
                step.name,
                step.status,
                step.duration_ms.unwrap_or(0),
                step.error
                    .as_deref()
                    .or(step.detail.as_deref())
                    .unwrap_or("")
            );
        }
    }
    println!("api keys:       {}", details.api_keys.len());
    for key in &details.api_keys {
        println!(
            "  {} {}… {}{}",
            key.id,
            key.prefix,
            key.name,
            if key.revoked_at.is_some() {
                " (revoked)"
            } else {
                ""
            }
        );
    }
}

pub async fn stats(config: &Config, json: bool) -> Result<(), CliError> {
    let stack = connect(config).await?;
    let stats = stack.lifecycle.stats().await.map_err(fail)?;
    if json {
        return print_json(&stats);
    }
    println!("tenants by status:");
    for (status, count) in &stats.tenants_by_status {
        println!("  {status:<14} {count}");
    }
    println!("tenants by plan:");
    for (plan, count) in &stats.tenants_by_plan {
        println!("  {plan:<14} {count}");
    }
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ms"));
    println!(
        "provisioning (last {} runs): p50 {}, p95 {}",
        stats.provisioning.runs,
        ms(stats.provisioning.p50_ms),
        ms(stats.provisioning.p95_ms)
    );
    println!("jobs due:       {}", stats.queue_depth);
    Ok(())
}

/// `wosool migrate tenants`: prints one line per tenant (with `json`, only the report at the end); fails when
/// any tenant failed.
pub async fn migrate_tenants(
    config: &Config,
    concurrency: usize,
    tenant: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let stack = connect(config).await?;
    db::migrate(stack.provisioner.db()).await?;
    let only = match tenant {
        Some(t) => Some(stack.lifecycle.find(&t).await.map_err(fail)?.id),
        None => None,
    };
    let report = stack
        .provisioner
        .migrate_fleet(concurrency, only, |event| {
            if !json {
                println!(
                    "{}",
                    rollout::progress_line(&event, |total, target| {
                        format!("migrating {total} tenant database(s) to version {target}")
                    })
                )
            }
        })
        .await
        .map_err(fail)?;
    if json {
        print_json(&rollout_json(&report))?;
    } else {
        println!(
            "done: {} migrated, {} failed (failed tenants are retried on the next run)",
            report.succeeded,
            report.failed.len()
        );
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "{} tenant(s) failed to migrate",
            report.failed.len()
        )))
    }
}

/// A rollout report as `--json` prints it: `{"target", "succeeded", "failed": [{"tenant_id", "error"}]}`.
pub(super) fn rollout_json(report: &rollout::RolloutReport) -> serde_json::Value {
    let failed: Vec<serde_json::Value> = report
        .failed
        .iter()
        .map(|(tenant, error)| serde_json::json!({ "tenant_id": tenant, "error": error }))
        .collect();
    serde_json::json!({
        "target": report.target,
        "succeeded": report.succeeded,
        "failed": failed,
    })
}

pub async fn migrate_status(config: &Config, json: bool) -> Result<(), CliError> {
    let stack = connect(config).await?;
    let status = stack.provisioner.fleet_status().await.map_err(fail)?;
    if json {
        return print_json(&status);
    }
    println!("latest tenant version: {}", status.latest_version);
    for (server, version) in &status.templates {
        println!("template on {server}: version {version}");
    }
    println!("tenants by schema version:");
    for (version, count) in &status.tenants_by_version {
        let marker = if *version == status.latest_version {
            ""
        } else {
            "  (behind)"
        };
        println!("  {version:<16} {count}{marker}");
    }
    for failing in &status.failing {
        println!(
            "FAILING {} (version {}): {}",
            failing.slug, failing.schema_version, failing.migration_error
        );
    }
    Ok(())
}
