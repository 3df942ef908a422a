//! What can be notified: one variant per notification, each carrying what its templates need and the tenant
//! it concerns. The notice decides its audience and its dedupe key (the same notice for the same tenant and
//! period goes to a recipient once).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::tenancy::{MerchantId, TenantId};

/// One notification, as the code that has something to say builds it. Stored as the JSON of the
/// `notify.dispatch` job, so a variant's fields may only be added with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    // ---- merchants ----
    /// Their tenant is ready: welcome, with the link to the app.
    TenantReady { tenant_id: TenantId },
    /// Salla revoked the store's tokens: nothing syncs until the merchant reinstalls the app.
    StoreNeedsReinstall {
        tenant_id: TenantId,
        merchant_id: MerchantId,
    },
    /// The store's Salla sync has been failing for a day (`resources` that fail, since when).
    SyncFailing {
        tenant_id: TenantId,
        resources: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        failing_since: OffsetDateTime,
    },
    /// The store's Wosool app trial or subscription ended (expired or canceled), as Salla told us.
    PlanEnding {
        tenant_id: TenantId,
        /// `trial` or `subscription`.
        plan_kind: String,
        /// `expired` or `canceled`.
        change: String,
        plan_name: Option<String>,
        #[serde(with = "time::serde::rfc3339::option")]
        ends_at: Option<OffsetDateTime>,
    },

    // ---- operators ----
    /// Provisioning gave up after its last attempt; the tenant is `failed`.
    ProvisioningFailed {
        tenant_id: TenantId,
        run_id: Uuid,
        error: String,
    },
    /// A tenant's deletion pipeline finished.
    DeletionFinished {
        tenant_id: TenantId,
        keep_data: bool,
        /// Where the final dump was written, if one was.
        backup: Option<String>,
    },
    /// A backup set failed, for the whole fleet (`tenant_id` None) or one tenant.
    BackupFailed {
        set_id: String,
        /// `global`, `tenant`, `crm`, … (what the backup covered).
        scope: String,
        tenant_id: Option<TenantId>,
        error: String,
    },
    /// Moving a tenant's database to another server failed.
    TenantMoveFailed {
        tenant_id: TenantId,
        from_server: String,
        to_server: String,
        error: String,
    },
}

/// Who a notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The tenant's owner, by email, in their language.
    Merchant,
    /// The operators: `notify.operator_emails` and the operator webhook.
    Operator,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merchant => "merchant",
            Self::Operator => "operator",
        }
    }
}

impl Notice {
    /// Every kind, for documentation and for checking the templates.
    pub const KINDS: &'static [&'static str] = &[
        "tenant_ready",
        "store_needs_reinstall",
        "sync_failing",
        "plan_ending",
        "provisioning_failed",
        "deletion_finished",
        "backup_failed",
        "tenant_move_failed",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Self::TenantReady { .. } => "tenant_ready",
            Self::StoreNeedsReinstall { .. } => "store_needs_reinstall",
            Self::SyncFailing { .. } => "sync_failing",
            Self::PlanEnding { .. } => "plan_ending",
            Self::ProvisioningFailed { .. } => "provisioning_failed",
            Self::DeletionFinished { .. } => "deletion_finished",
            Self::BackupFailed { .. } => "backup_failed",
            Self::TenantMoveFailed { .. } => "tenant_move_failed",
        }
    }

    pub fn audience(&self) -> Audience {
        match self {
            Self::TenantReady { .. }
            | Self::StoreNeedsReinstall { .. }
            | Self::SyncFailing { .. }
            | Self::PlanEnding { .. } => Audience::Merchant,
            Self::ProvisioningFailed { .. }
            | Self::DeletionFinished { .. }
            | Self::BackupFailed { .. }
            | Self::TenantMoveFailed { .. } => Audience::Operator,
        }
    }

    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::TenantReady { tenant_id }
            | Self::StoreNeedsReinstall { tenant_id, .. }
            | Self::SyncFailing { tenant_id, .. }
            | Self::PlanEnding { tenant_id, .. }
            | Self::ProvisioningFailed { tenant_id, .. }
            | Self::DeletionFinished { tenant_id, .. }
            | Self::TenantMoveFailed { tenant_id, .. } => Some(*tenant_id),
            Self::BackupFailed { tenant_id, .. } => *tenant_id,
        }
    }

    /// The notice's identity over time, given when it is raised (`now`): a recipient gets each key once.
    /// Daily keys let a condition that lasts (a sync failing, a store left without tokens) be repeated at
    /// most once a day; one-off events (ready, deleted) are keyed by the tenant alone.
    pub fn dedupe_key(&self, now: OffsetDateTime) -> String {
        let day = now.date();
        let kind = self.kind();
        match self {
            Self::TenantReady { tenant_id } | Self::DeletionFinished { tenant_id, .. } => {
                format!("{kind}:{tenant_id}")
            }
            Self::StoreNeedsReinstall { tenant_id, .. } | Self::SyncFailing { tenant_id, .. } => {
                format!("{kind}:{tenant_id}:{day}")
            }
            Self::PlanEnding {
                tenant_id,
                plan_kind,
                change,
                ends_at,
                ..
            } => match ends_at {
                Some(at) => format!("{kind}:{tenant_id}:{plan_kind}:{change}:{}", at.date()),
                None => format!("{kind}:{tenant_id}:{plan_kind}:{change}:{day}"),
            },
            Self::ProvisioningFailed {
                tenant_id, run_id, ..
            } => format!("{kind}:{tenant_id}:{run_id}:{day}"),
            Self::BackupFailed {
                set_id,
                scope,
                tenant_id,
                ..
            } => match tenant_id {
                Some(tenant) => format!("{kind}:{set_id}:{scope}:{tenant}"),
                None => format!("{kind}:{set_id}:{scope}"),
            },
            Self::TenantMoveFailed {
                tenant_id,
                to_server,
                ..
            } => format!("{kind}:{tenant_id}:{to_server}:{day}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_and_serialised_as_their_tag() {
        let tenant = TenantId::new();
        let notices = [
            Notice::TenantReady { tenant_id: tenant },
            Notice::BackupFailed {
                set_id: "s1".into(),
                scope: "global".into(),
                tenant_id: None,
                error: "disk full".into(),
            },
        ];
        for notice in notices {
            assert!(Notice::KINDS.contains(&notice.kind()));
            let json = serde_json::to_value(&notice).unwrap();
            assert_eq!(json["kind"], notice.kind());
            assert_eq!(serde_json::from_value::<Notice>(json).unwrap(), notice);
        }
    }

    #[test]
    fn lasting_conditions_repeat_daily_and_events_once() {
        let tenant = TenantId::new();
        // 2026-12-07 10:00 and 2026-12-08 09:00 UTC.
        let monday = OffsetDateTime::from_unix_timestamp(1_796_637_600).unwrap();
        let tuesday = monday + time::Duration::hours(23);
        let failing = Notice::SyncFailing {
            tenant_id: tenant,
            resources: vec!["orders".into()],
            failing_since: monday,
        };
        assert_eq!(
            failing.dedupe_key(monday),
            failing.dedupe_key(monday + time::Duration::hours(5))
        );
        assert_ne!(failing.dedupe_key(monday), failing.dedupe_key(tuesday));
        let ready = Notice::TenantReady { tenant_id: tenant };
        assert_eq!(ready.dedupe_key(monday), ready.dedupe_key(tuesday));
    }
}
