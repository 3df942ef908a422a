//! `wosool audit`: the audit log for operators at a shell: the global log, or with `--tenant-log` one
//! tenant's own log; the filters of `GET /api/admin/audit`, a table or `--json` (the API's page shape).

use clap::Args;

use super::tenants::{CliError, connect, fail};
use crate::audit::query::{Page, Params};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries by this actor (e.g. `admin:3f9a1c2b`, `api_key:wsl_3f9a1c2b`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (e.g. `tenant.suspended`, `crm.write`).
    #[arg(long)]
    action: Option<String>,
    /// Only entries about this resource (e.g. `tenant:<id>`, `api_key:<id>`).
    #[arg(long)]
    resource: Option<String>,
    /// Only this tenant (id or slug).
    #[arg(long)]
    tenant: Option<String>,
    /// Read the tenant's own log (writes through its API, app and CRM proxy) instead of the global one.
    #[arg(long, requires = "tenant")]
    tenant_log: bool,
    /// Entries at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Entries before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Entries per page, 1 to 200.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// The `next_cursor` of a previous page.
    #[arg(long)]
    cursor: Option<String>,
}

/// Prints a page as a table, or with `json` (the global `--json`) the API's page shape.
pub async fn run(config: &Config, args: AuditArgs, json: bool) -> Result<(), CliError> {
    let stack = connect(config).await?;
    let tenant = match &args.tenant {
        Some(t) => Some(stack.lifecycle.find(t).await.map_err(fail)?),
        None => None,
    };
    let params = Params {
        actor: args.actor,
        action: args.action,
        resource: args.resource,
        tenant_id: tenant.as_ref().map(|t| t.id.to_string()),
        since: args.since,
        until: args.until,
        limit: Some(args.limit),
        cursor: args.cursor,
        scope: None,
    };
    let filter = params
        .validate(true)
        .map_err(|e| fail(format!("invalid filter: {e}")))?;
    let page = match (&tenant, args.tenant_log) {
        (Some(tenant), true) => {
            let pool = stack.provisioner.pools().get(tenant).await.map_err(fail)?;
            let mut page = crate::audit::tenant::list(&pool, &filter)
                .await
                .map_err(fail)?;
            for entry in &mut page.entries {
                entry.tenant_id = Some(tenant.id);
            }
            page
        }
        _ => crate::audit::global::list(stack.provisioner.db(), &filter)
            .await
            .map_err(fail)?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&page).map_err(fail)?);
    } else {
        print_table(&page);
    }
    Ok(())
}

fn print_table(page: &Page) {
    println!(
        "{:>8}  {:<20}  {:<28}  {:<28}  {:<32}  {:<15}",
        "ID", "AT", "ACTOR", "ACTION", "RESOURCE", "IP"
    );
    for e in &page.entries {
        let at =
            e.at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
        let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        println!(
            "{:>8}  {:<20}  {:<28}  {:<28}  {:<32}  {:<15}",
            e.id,
            cut(&at, 19),
            cut(&e.actor, 28),
            cut(&e.action, 28),
            cut(e.resource.as_deref().unwrap_or("-"), 32),
            e.ip.as_deref().unwrap_or("-"),
        );
    }
    if page.entries.is_empty() {
        println!("(no entries)");
    }
    if let Some(cursor) = &page.next_cursor {
        println!("more: --cursor {cursor}");
    }
}
