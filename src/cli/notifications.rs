//! `wosool notifications list`: what was sent to whom (`GET /api/admin/notifications` at a shell): a table,
//! or with `--json` the API's page.

use clap::Subcommand;

use super::tenants::{CliError, connect, fail};
use crate::admin::notifications::Params;
use crate::config::Config;
use crate::notify::record::{self, Page};

#[derive(Debug, Subcommand)]
pub enum NotificationsAction {
    /// Deliveries newest first: kind, tenant, channel, recipient, status, attempts, error.
    List {
        /// Only this tenant (id or slug).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this kind (tenant_ready, store_needs_reinstall, sync_failing, plan_ending, provisioning_failed,
        /// deletion_finished, backup_failed, tenant_move_failed).
        #[arg(long)]
        kind: Option<String>,
        /// Only this status: pending, sent, failed or skipped.
        #[arg(long)]
        status: Option<String>,
        /// How many deliveries, newest first (1–200).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// The `next_cursor` of a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
}

pub async fn run(config: &Config, action: NotificationsAction, json: bool) -> Result<(), CliError> {
    let NotificationsAction::List {
        tenant,
        kind,
        status,
        limit,
        cursor,
    } = action;
    let stack = connect(config).await?;
    let tenant_id = match &tenant {
        Some(t) => Some(stack.lifecycle.find(t).await.map_err(fail)?.id),
        None => None,
    };
    let filter = Params {
        tenant_id,
        kind,
        status,
        limit: Some(limit),
        cursor,
    }
    .validate()
    .map_err(|e| fail(format!("invalid filter: {e}")))?;
    let page = record::list(stack.provisioner.db(), &filter)
        .await
        .map_err(fail)?;
    if json {
        super::output::print(&page);
    } else {
        print_table(&page);
    }
    Ok(())
}

fn print_table(page: &Page) {
    println!(
        "{:>7}  {:<20}  {:<22}  {:<36}  {:<7}  {:<28}  {:<7}  {:>3}  ERROR",
        "ID", "AT", "KIND", "TENANT", "CHANNEL", "RECIPIENT", "STATUS", "TRY"
    );
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    for d in &page.notifications {
        let at = d
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        println!(
            "{:>7}  {:<20}  {:<22}  {:<36}  {:<7}  {:<28}  {:<7}  {:>3}  {}",
            d.id,
            cut(&at, 19),
            d.kind,
            d.tenant_id
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            d.channel,
            cut(&d.recipient, 28),
            d.status,
            d.attempts,
            cut(d.error.as_deref().unwrap_or(""), 80),
        );
    }
    if page.notifications.is_empty() {
        println!("(no notifications)");
    }
    if let Some(cursor) = &page.next_cursor {
        println!("more: --cursor {cursor}");
    }
}
