//! The values a notice's texts are filled with: the notice's own fields plus what the dispatcher knows (the
//! tenant's name, the app's links). Stored with each delivery (`notifications.vars`), so a retry sends the
//! same text; nothing secret ever goes in here.

use std::collections::BTreeMap;

use time::{OffsetDateTime, UtcOffset};

use super::notice::Notice;

/// What the dispatcher adds to a notice.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The tenant's display name, when the notice concerns a tenant that still exists.
    pub tenant_name: Option<String>,
    /// `notify.public_url` (empty: no link to the app).
    pub public_url: String,
    /// `app.salla_app_url`: the app's Salla App Store page (empty: none).
    pub salla_app_url: String,
}

pub fn values(notice: &Notice, context: &Context) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let mut set = |name: &str, value: String| {
        values.insert(name.to_string(), value);
    };
    let app_url = if context.public_url.is_empty() {
        String::new()
    } else {
        format!("{}/app", context.public_url.trim_end_matches('/'))
    };
    if let Some(tenant) = notice.tenant() {
        set("tenant_id", tenant.to_string());
        set(
            "tenant_name",
            context
                .tenant_name
                .clone()
                .unwrap_or_else(|| tenant.to_string()),
        );
    } else {
        set("tenant_id", String::new());
    }
    match notice {
        Notice::TenantReady { .. } => set("app_url", app_url),
        Notice::StoreNeedsReinstall { merchant_id, .. } => {
            set("merchant_id", merchant_id.to_string());
            set("reinstall_url", context.salla_app_url.clone());
        }
        Notice::SyncFailing {
            resources,
            failing_since,
            ..
        } => {
            set("resources", resources.join(","));
            set("failing_since", minute(*failing_since));
            set("app_url", app_url);
        }
        Notice::PlanEnding {
            plan_kind,
            change,
            plan_name,
            ends_at,
            ..
        } => {
            set("plan_kind", plan_kind.clone());
            set("change", change.clone());
            set("plan_name", plan_name.clone().unwrap_or_default());
            set("ends_at", ends_at.map(day).unwrap_or_default());
            set("reinstall_url", context.salla_app_url.clone());
        }
        Notice::ProvisioningFailed { run_id, error, .. } => {
            set("run_id", run_id.to_string());
            set("error", error.clone());
        }
        Notice::DeletionFinished {
            keep_data, backup, ..
        } => {
            set("keep_data", if *keep_data { "yes" } else { "no" }.into());
            set("backup", backup.clone().unwrap_or_default());
        }
        Notice::BackupFailed {
            set_id,
            scope,
            error,
            ..
        } => {
            set("set_id", set_id.clone());
            set("scope", scope.clone());
            set("error", error.clone());
        }
        Notice::TenantMoveFailed {
            from_server,
            to_server,
            error,
            ..
        } => {
            set("from_server", from_server.clone());
            set("to_server", to_server.clone());
            set("error", error.clone());
        }
    }
    values
}

fn minute(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", day(at), at.hour(), at.minute())
}

fn day(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!("{}-{:02}-{:02}", at.year(), u8::from(at.month()), at.day())
}
