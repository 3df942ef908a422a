//! `wosool backup run|list|verify|prune|drill` and `wosool restore` (docs/backups.md).

use clap::{Args, Subcommand};

use super::output;
use super::tenants::{CliError, fail};
use crate::backup::{Backups, record};
use crate::config::Config;
use crate::core::Core;
use crate::db;

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Take a backup set now: the global database, every live tenant database and the configured Twenty
    /// databases, each checked with pg_restore --list and checksummed. Exits 1 when any database failed.
    Run,
    /// The sets in the backup target, newest first, with their status from the history.
    List,
    /// Download a set again (the newest without SET), compare every checksum and read every dump with
    /// pg_restore --list. Exits 1 when anything does not match.
    Verify {
        /// A set id, e.g. 20261203T055000Z-1f2e.
        set: Option<String>,
    },
    /// Delete the sets the retention policy ([backup.retention]) does not keep.
    Prune,
    /// Restore a tenant's newest backup into a scratch database, compare row counts with the live database,
    /// drop the scratch database. Exits 1 when the drill fails.
    Drill {
        /// A tenant id or slug; a random tenant with a backup when absent.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `wosool restore`: exactly one of --tenant, --confirm, --abort, --global.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["tenant", "confirm", "abort", "global"])))]
pub struct RestoreArgs {
    /// Restore this tenant (id or slug) into a new database on its server, check it, switch the tenant to it
    /// (read-only for the moment of the switch); the previous database is kept until --confirm.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// The set to restore from (default: the newest set holding the tenant / the global database).
    #[arg(long, value_name = "SET")]
    pub at: Option<String>,
    /// The new database's name. Tenants: <current name>_r<a-z0-9> (default: a timestamp suffix). --global:
    /// required, any new plain name.
    #[arg(long, value_name = "NAME")]
    pub into: Option<String>,
    /// Drop the database a restore of this tenant replaced.
    #[arg(long, value_name = "TENANT")]
    pub confirm: Option<String>,
    /// Switch this tenant back to the database its restore replaced, and drop the restored one.
    #[arg(long, value_name = "TENANT")]
    pub abort: Option<String>,
    /// Restore the global database's dump into a new database (--into) on db.url's server and print the
    /// steps to switch to it. Nothing else is changed.
    #[arg(long)]
    pub global: bool,
}

async fn backups(config: &Config) -> Result<Backups, CliError> {
    let pool = db::connect_with_retry(&config.db).await?;
    let redis = crate::redis::Redis::connect(&config.redis)
        .await
        .map_err(|e| fail(format!("Redis: {e}")))?;
    let core = Core::new(config.clone(), pool, redis).map_err(fail)?;
    Backups::new(&core).map_err(fail)
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

pub async fn run(config: &Config, action: BackupAction, json: bool) -> Result<(), CliError> {
    let backups = backups(config).await?;
    match action {
        BackupAction::Run => {
            let report = backups.run().await.map_err(fail)?;
            if json {
                output::print(&report);
            } else {
                println!(
                    "set {} {}: {} databases, {} failed, {} bytes in {:.1} s to {}",
                    report.set_id,
                    report.status,
                    report.databases,
                    report.failures,
                    report.bytes,
                    report.duration_ms as f64 / 1000.0,
                    report.target
                );
                for failed in &report.failed {
                    eprintln!(
                        "failed: {} {}: {}",
                        failed.scope.as_str(),
                        failed.name,
                        failed.error
                    );
                }
            }
            if report.failures > 0 {
                return Err(fail(format!("{} database(s) failed", report.failures)));
            }
        }
        BackupAction::List => {
            let ids = backups.target().set_ids().await.map_err(fail)?;
            let mut rows = Vec::new();
            for id in ids.iter().rev() {
                let known = record::find_set(backups.core().db(), id)
                    .await
                    .map_err(fail)?;
                let manifest = backups.manifest(id).await.ok();
                rows.push(serde_json::json!({
                    "set_id": id,
                    "status": known.as_ref().map(|s| s.status.clone()),
                    "databases": manifest.as_ref().map(|m| m.entries.len()),
                    "failures": manifest.as_ref().map(|m| m.entries.iter().filter(|e| e.status != "succeeded").count()),
                    "bytes": manifest.as_ref().map(|m| m.entries.iter().map(|e| e.size_bytes).sum::<u64>()),
                    "encrypted": manifest.as_ref().map(|m| m.entries.iter().any(|e| e.encrypted)),
                }));
            }
            if json {
                output::print(
                    &serde_json::json!({ "target": backups.target().describe(), "sets": rows }),
                );
            } else {
                println!(
                    "{:<24} {:<10} {:>9} {:>8} {:>14}",
                    "SET", "STATUS", "DATABASES", "FAILED", "BYTES"
                );
                for row in &rows {
                    let show = |v: &serde_json::Value| match v {
                        serde_json::Value::Null => "-".to_owned(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    println!(
                        "{:<24} {:<10} {:>9} {:>8} {:>14}",
                        show(&row["set_id"]),
                        show(&row["status"]),
                        show(&row["databases"]),
                        show(&row["failures"]),
                        show(&row["bytes"])
                    );
                }
                if rows.is_empty() {
                    println!("(no backup sets in {})", backups.target().describe());
                }
            }
        }
        BackupAction::Verify { set } => {
            let report = backups.verify(set.as_deref()).await.map_err(fail)?;
            if json {
                output::print(&report);
            } else {
                for entry in &report.entries {
                    match &entry.error {
                        None => println!("ok       {}", entry.object),
                        Some(error) => println!("FAILED   {}: {error}", entry.object),
                    }
                }
                println!(
                    "set {}: {}",
                    report.set_id,
                    if report.ok {
                        "verified"
                    } else {
                        "NOT verified"
                    }
                );
            }
            if !report.ok {
                return Err(fail(format!("set {} failed verification", report.set_id)));
            }
        }
        BackupAction::Prune => {
            let report = backups.prune().await.map_err(fail)?;
            if json {
                output::print(&report);
            } else {
                println!(
                    "kept {} set(s), pruned {}: {}",
                    report.kept.len(),
                    report.pruned.len(),
                    report.pruned.join(", ")
                );
            }
        }
        BackupAction::Drill { tenant } => {
            let report = backups.drill(tenant.as_deref()).await.map_err(fail)?;
            if json {
                output::print(&report);
            } else {
                println!(
                    "drill {}: tenant {}, set {}, {} tables, {} differing, {} missing",
                    report.outcome,
                    report
                        .tenant_id
                        .map(|t| t.to_string())
                        .unwrap_or("-".into()),
                    report.set_id.as_deref().unwrap_or("-"),
                    report.tables,
                    report.differences.len(),
                    report.missing.len()
                );
                for d in &report.differences {
                    println!(
                        "  {}: restored {} rows, live {}",
                        d.table, d.restored, d.live
                    );
                }
            }
            if report.outcome == "failed" {
                return Err(fail(report.error.unwrap_or_else(|| "drill failed".into())));
            }
        }
    }
    Ok(())
}

pub async fn restore(config: &Config, args: RestoreArgs, json: bool) -> Result<(), CliError> {
    let actor = actor();
    if args.global {
        // The global database may be the thing that is lost: connect lazily, never to it.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy(config.db.url.expose())
            .map_err(fail)?;
        let core = Core::new(config.clone(), pool, None).map_err(fail)?;
        let backups = Backups::new(&core).map_err(fail)?;
        let into = args
            .into
            .as_deref()
            .ok_or_else(|| fail("--global needs --into NAME (the new database)"))?;
        let report = backups
            .restore_global(args.at.as_deref(), into)
            .await
            .map_err(fail)?;
        if json {
            output::print(&report);
        } else {
            println!(
                "restored set {} into database {} ({} tables)",
                report.set_id,
                report.database,
                report.tables.len()
            );
            println!("next steps:");
            for (i, step) in report.steps.iter().enumerate() {
                println!("  {}. {step}", i + 1);
            }
        }
        return Ok(());
    }
    let backups = backups(config).await?;
    if let Some(tenant) = &args.confirm {
        let done = backups
            .confirm_restore(tenant, &actor)
            .await
            .map_err(fail)?;
        if json {
            output::print(&done);
        } else {
            println!(
                "confirmed: tenant {} keeps {}; dropped {}",
                done["tenant_id"], done["database"], done["dropped"]
            );
        }
    } else if let Some(tenant) = &args.abort {
        let done = backups.abort_restore(tenant, &actor).await.map_err(fail)?;
        if json {
            output::print(&done);
        } else {
            println!(
                "aborted: tenant {} is back on {}; dropped {}",
                done["tenant_id"], done["database"], done["dropped"]
            );
        }
    } else if let Some(tenant) = &args.tenant {
        let report = backups
            .restore_tenant(tenant, args.at.as_deref(), args.into.as_deref(), &actor)
            .await
            .map_err(fail)?;
        if json {
            output::print(&report);
        } else {
            println!(
                "tenant {} ({}) restored from set {} into {} (schema version {}, {} tables, read-only {} ms)",
                report.slug,
                report.tenant_id,
                report.set_id,
                report.new_database,
                report.schema_version,
                report.tables.len(),
                report.read_only_ms
            );
            for table in &report.tables {
                println!("  {:<40} {:>12}", table.table, table.rows);
            }
            println!(
                "the previous database {} is kept: `wosool restore --confirm {}` drops it, `--abort {}` switches back",
                report.old_database, report.tenant_id, report.tenant_id
            );
        }
    }
    Ok(())
}
