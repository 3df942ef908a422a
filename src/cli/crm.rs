//! `wosool crm apply-model`: rolls the data-model manifest out to every tenant workspace behind its version.

use std::sync::Arc;

use super::tenants::{CliError, connect, fail};
use crate::config::Config;
use crate::crm::bridge::TwentyConnector;
use crate::crm::model::{self, Manifest, RolloutEvent};
use crate::crm::twenty::TwentyClient;
use crate::db;
use crate::secrets::Keyring;

pub async fn apply_model(
    config: &Config,
    concurrency: usize,
    tenant: Option<String>,
) -> Result<(), CliError> {
    if !config.crm.enabled() {
        return Err(fail("Twenty is not configured (crm.base_url is empty)"));
    }
    let manifest = Arc::new(Manifest::load().map_err(fail)?);
    let keyring = Keyring::from_config(&config.secrets).map_err(fail)?;
    let client = TwentyClient::new(&config.crm).map_err(fail)?;
    let stack = connect(config).await?;
    db::migrate(stack.provisioner.db()).await?;
    let only = match tenant {
        Some(t) => Some(stack.admin.find(&t).await.map_err(fail)?.id),
        None => None,
    };
    let report = model::apply_to_all(
        stack.provisioner.db(),
        &keyring,
        Arc::new(TwentyConnector(client)),
        manifest,
        only,
        concurrency.max(1),
        |event| match event {
            RolloutEvent::Started {
                workspaces,
                version,
            } => {
                println!("applying data model v{version} to {workspaces} workspace(s)")
            }
            RolloutEvent::Applied {
                done,
                total,
                slug,
                report,
                ..
            } => {
                println!("[{done}/{total}] {slug}: ok ({} created)", report.created())
            }
            RolloutEvent::Failed {
                done,
                total,
                slug,
                error,
                ..
            } => {
                println!("[{done}/{total}] {slug}: FAILED: {error}")
            }
        },
    )
    .await
    .map_err(fail)?;
    println!(
        "done: {} applied, {} failed (failed workspaces are retried on the next run)",
        report.applied,
        report.failed.len()
    );
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(fail(format!("{} workspace(s) failed", report.failed.len())))
    }
}
