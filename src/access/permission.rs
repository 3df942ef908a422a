//! The one permission table: for each resource and action, the least role that may perform it. Routes name a
//! (resource, action) pair (`router.rs`), UI flags ask the same table, and the names (`crm.write`,
//! `api_keys.manage`, …) are those of the tenant database's `role_permissions`.

use std::fmt;

use super::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The tenant itself: its profile (read), deleting it (manage).
    Tenant,
    /// The plan and billing.
    Billing,
    /// Store data synced from Salla: customers, products, orders, carts, figures.
    Commerce,
    /// CRM records (notes, tasks, opportunities, …), in the app and through the CRM proxy.
    Crm,
    /// The Salla sync: its state (read) and a full resync (manage).
    Sync,
    Settings,
    Members,
    ApiKeys,
    /// The tenant's audit log.
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
    Manage,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Billing => "billing",
            Self::Commerce => "commerce",
            Self::Crm => "crm",
            Self::Sync => "sync",
            Self::Settings => "settings",
            Self::Members => "members",
            Self::ApiKeys => "api_keys",
            Self::Audit => "audit",
        }
    }
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Manage => "manage",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub resource: Resource,
    pub action: Action,
    pub minimum: Role,
}

impl fmt::Display for Permission {
    /// `resource.action`, as in `role_permissions`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.resource.as_str(), self.action.as_str())
    }
}

const fn p(resource: Resource, action: Action, minimum: Role) -> Permission {
    Permission {
        resource,
        action,
        minimum,
    }
}

use Action::{Manage, Read, Write};
use Resource::*;
use Role::{Admin, Member, Owner, Viewer};

/// Viewers read; members write CRM records; admins manage keys, settings, members, the sync and read the
/// audit log; owners delete the tenant and change its plan.
pub const TABLE: &[Permission] = &[
    p(Tenant, Read, Viewer),
    p(Tenant, Manage, Owner),
    p(Billing, Manage, Owner),
    p(Commerce, Read, Viewer),
    p(Crm, Read, Viewer),
    p(Crm, Write, Member),
    p(Sync, Read, Viewer),
    p(Sync, Manage, Admin),
    p(Settings, Read, Viewer),
    p(Settings, Manage, Admin),
    p(Members, Read, Viewer),
    p(Members, Manage, Admin),
    p(ApiKeys, Manage, Admin),
    p(Audit, Read, Admin),
];

/// The least role allowed to perform `action` on `resource`; `None` when the table has no such pair (which
/// no role may then perform).
pub fn minimum(resource: Resource, action: Action) -> Option<Role> {
    TABLE
        .iter()
        .find(|p| p.resource == resource && p.action == action)
        .map(|p| p.minimum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_documented_policy() {
        assert_eq!(minimum(Crm, Read), Some(Viewer));
        assert_eq!(minimum(Crm, Write), Some(Member));
        assert_eq!(minimum(ApiKeys, Manage), Some(Admin));
        assert_eq!(minimum(Audit, Read), Some(Admin));
        assert_eq!(minimum(Tenant, Manage), Some(Owner));
        assert_eq!(minimum(Billing, Manage), Some(Owner));
        assert_eq!(minimum(Commerce, Write), None);
        // One row per pair, and the names are `role_permissions`' form.
        for (i, a) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..]
                    .iter()
                    .all(|b| (a.resource, a.action) != (b.resource, b.action))
            );
        }
        assert_eq!(p(ApiKeys, Manage, Admin).to_string(), "api_keys.manage");
    }
}
