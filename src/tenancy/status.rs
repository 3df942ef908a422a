//! The tenant lifecycle (DESIGN §5). The only place that says which status may follow which.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Pending,
    Provisioning,
    Ready,
    Failed,
    Suspended,
    Deleting,
    Deleted,
}

impl TenantStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Provisioning,
        Self::Ready,
        Self::Failed,
        Self::Suspended,
        Self::Deleting,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Suspended => "suspended",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The statuses a tenant may move to `self` from:
    ///
    /// ```text
    /// pending ──► provisioning ──► ready ──► suspended ──► deleting ──► deleted
    ///                  │  ▲                     │
    ///                  ▼  │ (retry)             └──► ready (reactivate)
    ///                failed
    /// ```
    ///
    /// plus deletion of a tenant that never became ready (pending, failed), and `failed` straight from
    /// `pending` when the job cannot even start. A ready tenant is suspended before it is deleted.
    pub fn allowed_sources(self) -> &'static [TenantStatus] {
        use TenantStatus::*;
        match self {
            Pending => &[],
            Provisioning => &[Pending, Failed],
            Ready => &[Provisioning, Suspended],
            Failed => &[Pending, Provisioning],
            Suspended => &[Ready],
            Deleting => &[Suspended, Failed, Pending],
            Deleted => &[Deleting],
        }
    }

    pub fn can_become(self, next: TenantStatus) -> bool {
        next.allowed_sources().contains(&self)
    }
}

impl TryFrom<String> for TenantStatus {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("unknown tenant status {value:?}"))
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::TenantStatus::*;

    #[test]
    fn lifecycle_allows_the_designed_moves_only() {
        assert!(Pending.can_become(Provisioning));
        assert!(Provisioning.can_become(Ready));
        assert!(Failed.can_become(Provisioning));
        assert!(Ready.can_become(Suspended));
        assert!(Suspended.can_become(Ready));
        assert!(Suspended.can_become(Deleting));
        assert!(Deleting.can_become(Deleted));
        assert!(!Ready.can_become(Deleted));
        assert!(!Deleted.can_become(Ready));
        assert!(!Ready.can_become(Pending));
        assert!(!Ready.can_become(Deleting));
    }
}
