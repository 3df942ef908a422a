//! The tenant lifecycle (DESIGN §5). The only place that says which status may follow which.

use crate::string_enum::string_enum;

string_enum! {
    pub enum TenantStatus {
        Pending = "pending",
        Provisioning = "provisioning",
        Ready = "ready",
        Failed = "failed",
        Suspended = "suspended",
        Deleting = "deleting",
        Deleted = "deleted",
    }
}

impl TenantStatus {
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

/// A stored status this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tenant status {0:?}")]
pub struct UnknownStatus(pub String);

impl TryFrom<String> for TenantStatus {
    type Error = UnknownStatus;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or(UnknownStatus(value))
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
