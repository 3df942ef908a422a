//! The roles a caller can act with in a tenant, ordered from least to most powerful, and how each kind of
//! credential maps to one. Anything unknown or missing maps to the least privilege, never the most.

use std::fmt;

use super::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    /// The key of the system role in the tenant database's `roles` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// A Clerk organization role (`org_role`, already without `org:`). Custom roles and a missing role are
    /// viewers: a token must name a known role to get more than reading.
    pub fn from_clerk(org_role: Option<&str>) -> Self {
        match org_role {
            Some("owner") => Self::Owner,
            Some("admin") => Self::Admin,
            Some("member") => Self::Member,
            _ => Self::Viewer,
        }
    }

    /// The role stored with a merchant app session (`owner` for the store's owner, `member` for staff).
    pub fn from_app_session(role: &str) -> Self {
        match role {
            "owner" => Self::Owner,
            "member" => Self::Member,
            _ => Self::Viewer,
        }
    }

    /// The role an API key of `scope` acts with.
    pub fn from_scope(scope: Scope) -> Self {
        match scope {
            Scope::Read => Self::Viewer,
            Scope::Write => Self::Member,
            Scope::Admin => Self::Admin,
        }
    }

    /// The widest API key scope this role may create (a key never gets more than its creator).
    pub fn max_scope(self) -> Scope {
        match self {
            Self::Viewer => Scope::Read,
            Self::Member => Scope::Write,
            Self::Admin | Self::Owner => Scope::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_unknown_or_missing_roles_are_viewers() {
        assert!(
            Role::Viewer < Role::Member && Role::Member < Role::Admin && Role::Admin < Role::Owner
        );
        assert_eq!(Role::from_clerk(None), Role::Viewer);
        assert_eq!(Role::from_clerk(Some("billing_clerk")), Role::Viewer);
        assert_eq!(Role::from_clerk(Some("admin")), Role::Admin);
        assert_eq!(Role::from_clerk(Some("member")), Role::Member);
        assert_eq!(Role::from_clerk(Some("owner")), Role::Owner);
        assert_eq!(Role::from_app_session("owner"), Role::Owner);
        assert_eq!(Role::from_app_session("member"), Role::Member);
        assert_eq!(Role::from_app_session(""), Role::Viewer);
        for scope in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(Role::from_scope(scope).max_scope(), scope);
        }
    }
}
