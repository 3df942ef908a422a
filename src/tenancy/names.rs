//! Validated names: tenant slugs, tenant database names, tenant server keys.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::TenantId;

/// Slugs that would collide with routes, subdomains or operator vocabulary.
const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "apps",
    "auth",
    "billing",
    "blog",
    "cdn",
    "crm",
    "dashboard",
    "dev",
    "docs",
    "help",
    "internal",
    "login",
    "logout",
    "mail",
    "metrics",
    "new",
    "null",
    "ops",
    "root",
    "salla",
    "signup",
    "staging",
    "static",
    "status",
    "support",
    "system",
    "template",
    "tenant",
    "tenants",
    "test",
    "twenty",
    "undefined",
    "www",
    "wosool",
];

/// Why a slug or a tenant database name is refused. A slug's message completes the field's name ("slug must be
/// 3 to 48 characters long"), as the registration API shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must be 3 to 48 characters long (got {0})")]
    Length(usize),
    #[error("may only contain lowercase letters a-z, digits and dashes")]
    Characters,
    #[error("may not start or end with a dash")]
    EdgeDash,
    #[error("may not contain two dashes in a row")]
    DoubleDash,
    #[error("\"{0}\" is reserved")]
    Reserved(String),
    #[error("{0:?} is not a tenant database name")]
    NotADbName(String),
}

/// A tenant's URL-safe name: lowercase, 3–48 characters of `[a-z0-9-]`, no leading or trailing dash, no
/// double dash, not reserved. Only constructible through [`Slug::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let len = raw.chars().count();
        if !(3..=48).contains(&len) {
            return Err(NameError::Length(len));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(NameError::Characters);
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(NameError::EdgeDash);
        }
        if raw.contains("--") {
            return Err(NameError::DoubleDash);
        }
        if RESERVED_SLUGS.contains(&raw) {
            return Err(NameError::Reserved(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A slug derived from an organization name: ASCII letters and digits kept, everything else collapsed into
    /// dashes. `None` when too little of the name is ASCII (e.g. an Arabic name); the caller picks another.
    pub fn from_name(name: &str) -> Option<Self> {
        let mut slug = String::with_capacity(name.len());
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let mut slug = slug.trim_end_matches('-').to_owned();
        slug.truncate(40);
        let slug = slug.trim_end_matches('-');
        Self::parse(slug).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for Slug {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a tenant's database: `t_` and the tenant id's 32 hex digits. Derived from the id only, never
/// from user input, so it is always a safe identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DbName(String);

impl DbName {
    pub fn for_tenant(id: TenantId) -> Self {
        Self(format!("t_{}", id.as_uuid().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL (it only holds `[a-z0-9_]`, so quoting is enough).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl DbName {
    /// The name of a database restored for the tenant whose database is `self`: the same base and
    /// `_r<suffix>` (1-20 characters of a-z and 0-9), e.g. `t_<32 hex>_r1764740000`.
    pub fn restored(&self, suffix: &str) -> Result<Self, NameError> {
        Self::try_from(format!("{}_r{suffix}", &self.0[..34]))
    }

    /// The database name the tenant was created with (`t_<32 hex>`), without a restore suffix.
    pub fn base(&self) -> &str {
        &self.0[..34]
    }
}

impl TryFrom<String> for DbName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let base_ok = value.len() >= 34
            && value.starts_with("t_")
            && value[2..34]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        // A restored database: `_r` and 1-20 characters of a-z0-9 (the registry's CHECK says the same).
        let suffix_ok = value.len() == 34
            || value.get(34..36) == Some("_r")
                && (37..=56).contains(&value.len())
                && value[36..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        let valid = base_ok && suffix_ok;
        if valid {
            Ok(Self(value))
        } else {
            Err(NameError::NotADbName(value))
        }
    }
}

impl<'de> Deserialize<'de> for DbName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key of `[[db.tenant_servers]]`: 1–32 characters of `[a-z0-9-]`.
pub fn is_valid_server_key(key: &str) -> bool {
    (1..=32).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A plain SQL identifier we may interpolate (quoted): starts with a letter, then `[a-z0-9_]`, at most 63.
pub fn is_valid_identifier(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_rules() {
        for good in ["abc", "acme-store", "a1b2", &"x".repeat(48)] {
            assert!(Slug::parse(good).is_ok(), "{good} should be valid");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "ABC",
            "a_b",
            "admin",
            "héllo",
            "x'; DROP TABLE tenants; --",
            &"x".repeat(49),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn slugs_derive_from_ascii_names_only() {
        assert_eq!(
            Slug::from_name("  Acme & Sons, Ltd. ").unwrap().as_str(),
            "acme-sons-ltd"
        );
        assert!(Slug::from_name("متجر الرياض").is_none());
    }

    #[test]
    fn database_names_come_from_the_tenant_id() {
        let id = TenantId::new();
        let name = DbName::for_tenant(id);
        assert_eq!(name.as_str().len(), 34);
        assert_eq!(DbName::try_from(name.as_str().to_owned()), Ok(name.clone()));
        assert!(DbName::try_from("t_x\"; drop".to_owned()).is_err());
        let restored = name.restored("1764740000").unwrap();
        assert_eq!(restored.base(), name.as_str());
        assert_eq!(
            DbName::try_from(restored.as_str().to_owned()),
            Ok(restored.clone())
        );
        assert!(name.restored("X;").is_err() && name.restored("").is_err());
        assert!(DbName::try_from(format!("{name}_x1")).is_err());
    }
}
