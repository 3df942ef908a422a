//! The manifest of a backup set: `<set id>/manifest.json` next to its dumps, so a set is self-describing
//! (a restore of the global database needs nothing but the target).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::tenancy::TenantId;

/// Version of the manifest layout.
pub const FORMAT: u32 = 1;

/// What a dump holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The global (control-plane) database.
    Global,
    Tenant,
    /// A Twenty instance's own database.
    Crm,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Tenant => "tenant",
            Self::Crm => "crm",
        }
    }

    pub const ALL: [Scope; 3] = [Scope::Global, Scope::Tenant, Scope::Crm];
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub set_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// `local:/dir` or `s3://bucket/prefix` at the time of the backup.
    pub target: String,
    pub entries: Vec<Entry>,
}

/// One database of a set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub scope: Scope,
    /// `global`, the tenant's slug, or the CRM instance key.
    pub name: String,
    pub tenant_id: Option<TenantId>,
    /// The tenant server (tenants), or empty.
    pub server: String,
    pub database: String,
    /// Latest applied tenant migration (tenants).
    pub schema_version: Option<i64>,
    /// `succeeded` or `failed`.
    pub status: String,
    pub error: Option<String>,
    /// The object, relative to the target (`<set>/tenants/<id>.dump`).
    pub object: String,
    /// Size and SHA-256 of the stored object (encrypted bytes when encrypted).
    pub size_bytes: u64,
    pub sha256: String,
    /// Size of the dump itself.
    pub dump_bytes: u64,
    /// Entries in the dump's table of contents (`pg_restore --list`).
    pub toc_entries: usize,
    pub duration_ms: u64,
    pub encrypted: bool,
    pub key_id: Option<String>,
}

impl Manifest {
    pub fn object(set_id: &str) -> String {
        format!("{set_id}/manifest.json")
    }

    /// The tenant's successful entry, if any.
    pub fn tenant_entry(&self, tenant: TenantId) -> Option<&Entry> {
        self.entries.iter().find(|e| {
            e.scope == Scope::Tenant && e.tenant_id == Some(tenant) && e.status == "succeeded"
        })
    }
}

/// A new set id: the UTC start time to the second and 4 random hex digits, e.g. `20261203T055000Z-1f2e`;
/// ids sort chronologically.
pub fn new_set_id(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:04x}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        rand::random::<u16>()
    )
}

/// Whether `id` looks like a set id (anything else under the target is not ours).
pub fn is_set_id(id: &str) -> bool {
    id.len() == 21
        && id.as_bytes()[8] == b'T'
        && id.as_bytes()[15] == b'Z'
        && id.as_bytes()[16] == b'-'
        && id[..8].bytes().all(|b| b.is_ascii_digit())
        && id[9..15].bytes().all(|b| b.is_ascii_digit())
        && id[17..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The start time encoded in a set id.
pub fn set_time(id: &str) -> Option<OffsetDateTime> {
    if !is_set_id(id) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| id[r].parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        n(0..4)? as i32,
        time::Month::try_from(n(4..6)? as u8).ok()?,
        n(6..8)? as u8,
    )
    .ok()?;
    let clock = time::Time::from_hms(n(9..11)? as u8, n(11..13)? as u8, n(13..15)? as u8).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ids_encode_their_time_and_sort() {
        let at = time::PrimitiveDateTime::new(
            time::Date::from_calendar_date(2026, time::Month::December, 3).unwrap(),
            time::Time::from_hms(5, 50, 7).unwrap(),
        )
        .assume_utc();
        let id = new_set_id(at);
        assert!(is_set_id(&id), "{id}");
        assert_eq!(set_time(&id), Some(at));
        assert!(new_set_id(at)[..16] < new_set_id(at + time::Duration::seconds(1))[..16]);
        assert!(!is_set_id("manifest.json"));
    }
}
