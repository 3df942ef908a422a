use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant's identifier. Only ever built from a verified source (the registry, a verified token, a job row),
/// and carried as this type so a tenant id can't be confused with any other UUID.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// A fresh id for a new tenant (UUIDv7: time-ordered, so registry inserts stay index-friendly).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TenantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A Salla store's id (Salla calls it the merchant id: webhooks' `merchant`, user info's `merchant.id`, store
/// info's `id`). It lives here, next to [`TenantId`], because a tenant records the store it was created for
/// and is looked up by it; `salla` re-exports it (`salla::MerchantId`) and speaks of stores only through it.
///
/// Salla's ids are positive integers that fit Postgres' `bigint` (`salla_stores.merchant_id`,
/// `tenants.salla_merchant_id`), so the id is an `i64` in the database, in JSON (a plain number, as in job
/// payloads and cached tenants) and in path and query parameters (parsed as an `i64` is).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct MerchantId(i64);

impl MerchantId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub const fn as_i64(self) -> i64 {
        self.0
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MerchantId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Salla's APIs model ids as unsigned: any that fits a `bigint`.
impl TryFrom<u64> for MerchantId {
    type Error = std::num::TryFromIntError;
    fn try_from(id: u64) -> Result<Self, Self::Error> {
        i64::try_from(id).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_ids_are_plain_numbers_in_json_and_text() {
        let id = MerchantId::new(2_847_769_313);
        assert_eq!(serde_json::to_string(&id).unwrap(), "2847769313");
        assert_eq!(
            serde_json::from_str::<MerchantId>("2847769313").unwrap(),
            id
        );
        assert_eq!(id.to_string(), "2847769313");
        assert_eq!("2847769313".parse::<MerchantId>().unwrap(), id);
        assert!("abc".parse::<MerchantId>().is_err());
        assert_eq!(MerchantId::try_from(2_847_769_313u64).unwrap(), id);
        assert!(MerchantId::try_from(u64::MAX).is_err());
    }
}
