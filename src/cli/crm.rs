//! `wosool crm apply-model`: rolls the data-model manifest out to every tenant workspace behind its version.
//! `wosool crm status`: the Twenty instances, checked now, with their capacity and the waiting tenants.

use std::sync::Arc;

use super::tenants::{CliError, connect, fail, rollout_json};
use crate::config::Config;
use crate::crm::bridge::TwentyConnector;
use crate::crm::model::{self, Manifest};
use crate::crm::placement;
use crate::crm::twenty::{PINNED_VERSION, TwentyInstances};
use crate::db;
use crate::tenancy::rollout;

pub async fn apply_model(
    config: &Config,
    concurrency: usize,
    tenant: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    require_crm(config)?;
    let manifest = Arc::new(Manifest::load().map_err(fail)?);
    let instances = TwentyInstances::from_config(&config.crm).map_err(fail)?;
    let stack = connect(config).await?;
    db::migrate(stack.provisioner.db()).await?;
    let only = match tenant {
        Some(t) => Some(stack.lifecycle.find(&t).await.map_err(fail)?.id),
        None => None,
    };
    let report = model::apply_to_all(
        stack.provisioner.db(),
        stack.core.keyring(),
        Arc::new(TwentyConnector(instances)),
        manifest,
        only,
        concurrency.max(1),
        |event| {
            if !json {
                println!(
                    "{}",
                    rollout::progress_line(&event, |total, version| {
                        format!("applying data model v{version} to {total} workspace(s)")
                    })
                )
            }
        },
    )
    .await
    .map_err(fail)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rollout_json(&report)).map_err(fail)?
        );
    } else {
        println!(
            "done: {} applied, {} failed (failed workspaces are retried on the next run)",
            report.succeeded,
            report.failed.len()
        );
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(fail(format!("{} workspace(s) failed", report.failed.len())))
    }
}

fn require_crm(config: &Config) -> Result<(), CliError> {
    if config.crm.enabled() {
        Ok(())
    } else {
        Err(fail(
            "Twenty is not configured (neither crm.base_url nor [[crm.instances]])",
        ))
    }
}

pub async fn status(config: &Config, json: bool) -> Result<(), CliError> {
    require_crm(config)?;
    let stack = connect(config).await?;
    let db = stack.provisioner.db();
    db::migrate(db).await?;
    let Some(twenty) = &stack.twenty else {
        return Err(fail("Twenty is not configured"));
    };
    twenty.sync_instances().await.map_err(fail)?;
    for instance in twenty.instances().iter() {
        crate::crm::capacity::check_instance(db, twenty.keyring(), instance).await;
    }
    let instances = placement::instances(db, twenty.recheck())
        .await
        .map_err(fail)?;
    let waiting = placement::waiting(db).await.map_err(fail)?;
    if json {
        let value = serde_json::json!({
            "pinned_version": PINNED_VERSION,
            "instances": instances,
            "room": instances.iter().map(|i| i.room).sum::<i64>(),
            "waiting_for_capacity": waiting,
        });
        println!("{}", serde_json::to_string_pretty(&value).map_err(fail)?);
        return Ok(());
    }
    println!("Twenty instances (Wosool is pinned to v{PINNED_VERSION})");
    println!(
        "{:<16}  {:<10}  {:>10}  {:>5}  {:<12}  CAPABILITIES",
        "KEY", "VERSION", "WORKSPACES", "ROOM", "STATE"
    );
    for instance in &instances {
        let state = match (&instance.check_error, instance.configured) {
            (_, false) => "removed".to_owned(),
            (Some(_), _) => "unreachable".to_owned(),
            (None, _) if instance.cap_reached_at.is_some() && instance.room == 0 => {
                "at cap".to_owned()
            }
            _ => "ok".to_owned(),
        };
        let capabilities = instance
            .capabilities
            .as_ref()
            .and_then(|c| c["notable"].as_array())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:<16}  {:<10}  {:>10}  {:>5}  {:<12}  {}",
            instance.key,
            instance.version.as_deref().unwrap_or("?"),
            format!("{}/{}", instance.workspaces, instance.effective_cap),
            instance.room,
            state,
            capabilities
        );
        if let Some(version) = &instance.version
            && version.trim_start_matches('v') != PINNED_VERSION
        {
            println!("  note: runs {version}, not the pinned v{PINNED_VERSION}");
        }
        if let Some(error) = &instance.check_error {
            println!("  check failed: {error}");
        }
    }
    println!(
        "{} tenant(s) waiting for capacity{}",
        waiting.len(),
        if waiting.is_empty() {
            ""
        } else {
            ", oldest first:"
        }
    );
    for tenant in &waiting {
        println!(
            "  {}  {}  since {}",
            tenant.tenant_id, tenant.slug, tenant.waiting_since
        );
    }
    Ok(())
}
