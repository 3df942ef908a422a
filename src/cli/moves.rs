//! `wosool tenants move ID --to SERVER [--wait]`, `--abort`, `--status`: moving a tenant's database to another
//! tenant server (docs/moves.md), on the same service as the admin API. The move itself runs on a worker.

use std::time::{Duration, Instant};

use clap::Args;

use super::tenants::{CliError, fail};
use crate::TenancyStack;
use crate::provisioning::lifecycle::Actor;
use crate::provisioning::moves::{MoveState, TenantMove, TenantMoves};

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The tenant (id or slug).
    pub tenant: String,
    /// The key of the `[[db.tenant_servers]]` entry to move the tenant's database to.
    #[arg(long, value_name = "SERVER", required_unless_present_any = ["abort", "status"], conflicts_with_all = ["abort", "status"])]
    pub to: Option<String>,
    /// Roll back the tenant's move that has not switched yet (the tenant stays where it was).
    #[arg(long, conflicts_with = "status")]
    pub abort: bool,
    /// Show the tenant's latest move.
    #[arg(long)]
    pub status: bool,
    /// Wait until the move switched, failed or was aborted (a worker must be running); exit 1 unless it
    /// switched (or, with --abort, was aborted).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub timeout_secs: u64,
}

pub async fn run(stack: &TenancyStack, args: MoveArgs, json: bool) -> Result<(), CliError> {
    let moves = TenantMoves::new(stack.core.clone());
    let actor = Actor::cli();
    let mut record = if args.status {
        moves.latest(&args.tenant).await.map_err(fail)?
    } else if args.abort {
        moves.abort(&args.tenant, &actor).await.map_err(fail)?
    } else {
        let to = args.to.as_deref().unwrap_or_default();
        moves.start(&args.tenant, to, &actor).await.map_err(fail)?
    };
    if args.wait {
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        let mut shown = None;
        while record.state.is_before_switch() {
            if !json && shown != Some(record.state) {
                eprintln!("move {}: {}", record.id, record.state);
                shown = Some(record.state);
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "the move is still {} after {} s (is a worker running?)",
                    record.state, args.timeout_secs
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            record = moves
                .get(record.id)
                .await
                .map_err(fail)?
                .ok_or_else(|| fail("the move disappeared"))?;
        }
    }
    print(&record, json)?;
    let expected = if args.abort {
        MoveState::Aborted
    } else {
        MoveState::Switched
    };
    if args.wait && record.state != expected && record.state != MoveState::SourceDropped {
        return Err(fail(format!(
            "the move ended {}: {}",
            record.state,
            record.error.as_deref().unwrap_or("no error recorded")
        )));
    }
    Ok(())
}

fn print(record: &TenantMove, json: bool) -> Result<(), CliError> {
    if json {
        let text =
            serde_json::to_string_pretty(&serde_json::json!({ "move": record })).map_err(fail)?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "move {} of tenant {}: {} -> {}, {}",
        record.id, record.tenant_id, record.source_server, record.target_server, record.state
    );
    if let Some(seconds) = record.read_only_seconds {
        println!("read-only for {seconds:.2} s");
    }
    if let Some(error) = &record.error {
        println!("error: {error}");
    }
    if let Some(at) = record.drop_source_at {
        println!("old database dropped at {at}");
    }
    Ok(())
}
