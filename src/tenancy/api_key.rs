//! Tenant API keys: `wsl_` followed by 40 random hex digits. Only a SHA-256 of the key is stored, so a leaked
//! registry does not leak usable keys; the key itself is shown once, when it is created.

use std::fmt;

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::TenantId;
use crate::access::Scope;

pub const KEY_PREFIX: &str = "wsl_";
const RANDOM_HEX_LEN: usize = 40;
/// Characters of the key kept in listings (`wsl_` + 8).
const SHOWN_LEN: usize = 12;

/// The SHA-256 of a presented key: what lookups and the registry use.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ApiKeyHash {
    // Never print the whole hash: it is as good as the key for a lookup.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", &self.to_hex()[..8])
    }
}

/// A freshly generated key: the only time the plain key exists.
pub struct GeneratedKey {
    pub plain: String,
    pub hash: ApiKeyHash,
    pub prefix: String,
}

impl GeneratedKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; RANDOM_HEX_LEN / 2];
        rand::rng().fill_bytes(&mut bytes);
        let plain = format!("{KEY_PREFIX}{}", hex::encode(bytes));
        Self {
            hash: ApiKeyHash::of(&plain),
            prefix: plain[..SHOWN_LEN].to_owned(),
            plain,
        }
    }
}

/// Whether a presented string has the shape of one of our keys (cheap check before any lookup).
pub fn looks_like_key(candidate: &str) -> bool {
    candidate.len() == KEY_PREFIX.len() + RANDOM_HEX_LEN
        && candidate.starts_with(KEY_PREFIX)
        && candidate[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An API key as listed (never with the key itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    /// What the key may do: `read`, `write` or `admin` (`crate::access::Role::from_scope`).
    #[sqlx(try_from = "String")]
    pub scope: Scope,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_hash_stably() {
        let key = GeneratedKey::generate();
        assert!(looks_like_key(&key.plain));
        assert_eq!(key.hash, ApiKeyHash::of(&key.plain));
        assert!(key.plain.starts_with(&key.prefix));
        assert_ne!(key.plain, GeneratedKey::generate().plain);
        assert!(!looks_like_key("wsl_short"));
        assert!(!format!("{:?}", key.hash).contains(&key.hash.to_hex()));
    }
}
