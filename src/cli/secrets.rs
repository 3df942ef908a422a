//! `wosool secrets rotate`: re-seal every stored credential with the active key ([`crate::secrets::rotate`]).

use clap::Subcommand;

use super::tenants::{CliError, fail};
use crate::config::Config;
use crate::db;
use crate::secrets::Keyring;
use crate::secrets::rotate::{RotateOptions, RotationReport, rotate};

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Re-seal every stored credential (Salla tokens, Twenty API keys and owner passwords, Clerk owner
    /// passwords) with the first key of secrets.encryption_keys, so older keys can be removed afterwards.
    ///
    /// Resumable and idempotent: each row is re-sealed in its own short transaction, only if it still holds
    /// what was read; a rerun continues where a crash stopped and re-seals nothing already current. Reports per
    /// kind what was scanned, re-sealed, already current, changed meanwhile and failed (with why); exits 1 when
    /// any row failed (e.g. sealed with a key no longer configured, or corrupt). Never prints a secret.
    Rotate {
        /// Open every stale value and report what would be re-sealed, without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Rows read per query.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
    },
}

pub async fn run(config: &Config, action: SecretsAction, json: bool) -> Result<(), CliError> {
    let SecretsAction::Rotate {
        dry_run,
        batch_size,
    } = action;
    let keyring = Keyring::from_config(&config.secrets).map_err(fail)?;
    let pool = db::connect_for_cli(&config.db).await?;
    let report = rotate(
        &pool,
        &keyring,
        RotateOptions {
            dry_run,
            batch_size,
        },
    )
    .await
    .map_err(fail)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(fail)?);
    } else {
        print_report(&report);
    }
    match report.failed() {
        0 => Ok(()),
        n => Err(fail(format!(
            "{n} credential row(s) could not be re-sealed (listed above); the rest are done"
        ))),
    }
}

fn print_report(report: &RotationReport) {
    let verb = if report.dry_run {
        "would re-seal"
    } else {
        "re-sealed"
    };
    println!(
        "active key: {}{}",
        report.active_key,
        if report.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    println!(
        "{:<24} {:>8} {:>16} {:>14} {:>18} {:>7}",
        "KIND",
        "SCANNED",
        "ALREADY CURRENT",
        verb.to_uppercase(),
        "CHANGED MEANWHILE",
        "FAILED"
    );
    for kind in &report.kinds {
        println!(
            "{:<24} {:>8} {:>16} {:>14} {:>18} {:>7}",
            kind.kind,
            kind.scanned,
            kind.already_current,
            kind.resealed,
            kind.changed_meanwhile,
            kind.failed.len()
        );
    }
    for kind in &report.kinds {
        for failure in &kind.failed {
            println!("FAILED {} {}: {}", kind.kind, failure.row, failure.reason);
        }
    }
}
