//! Third-party credentials at rest (Salla tokens, Twenty API keys): AES-256-GCM under a keyring from config
//! (`secrets.encryption_keys`). A sealed value is `nonce (12 bytes) ‖ ciphertext+tag`, stored next to the id of
//! the key that sealed it, so keys rotate without a flag day: new values use the first key, old ones still
//! open with theirs. The associated data binds a ciphertext to where it belongs (e.g. `salla:<merchant>:access`),
//! so a sealed value copied into another row or column does not open. `wosool secrets rotate` ([`rotate`])
//! re-seals every stored value with the active key, after which older keys can be removed.

pub mod rotate;

use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;

use crate::config::SecretsConfig;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no encryption key is configured (secrets.encryption_keys)")]
    NoKey,
    #[error("the value was sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the sealed value does not open (wrong key, wrong context or tampered)")]
    Corrupt,
}

/// A `secrets.encryption_keys` list that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("secrets.encryption_keys[{index}] {why}")]
    BadEntry { index: usize, why: KeyEntryError },
    #[error("secrets.encryption_keys has the id {0:?} twice")]
    DuplicateId(String),
}

/// Why one `secrets.encryption_keys` entry cannot be used; the message completes the entry's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyEntryError {
    #[error("is not <id>:<base64 key>")]
    NotIdAndKey,
    #[error("has an id that is not 1-32 characters of a-z, 0-9, - and _")]
    BadId,
    #[error("has a key that is not base64")]
    NotBase64,
    #[error("has a {0}-byte key")]
    KeyLength(usize),
}

/// A sealed secret: the key id and `nonce ‖ ciphertext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    /// The id new values are sealed with (the first configured key); `None` when no key is configured.
    active: Option<String>,
    keys: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.inner.active)
            .field("keys", &self.inner.keys.len())
            .finish()
    }
}

/// Parses one `"<id>:<base64 32 bytes>"` entry.
pub fn parse_key(entry: &str) -> Result<(String, [u8; 32]), KeyEntryError> {
    let (id, key) = entry.split_once(':').ok_or(KeyEntryError::NotIdAndKey)?;
    if id.is_empty()
        || id.len() > 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(KeyEntryError::BadId);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| KeyEntryError::NotBase64)?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyEntryError::KeyLength(b.len()))?;
    Ok((id.to_owned(), key))
}

impl Keyring {
    pub fn from_config(config: &SecretsConfig) -> Result<Self, KeyringError> {
        let mut keys = HashMap::new();
        let mut active = None;
        for (i, entry) in config.encryption_keys.iter().enumerate() {
            let (id, key) = parse_key(entry.expose())
                .map_err(|why| KeyringError::BadEntry { index: i, why })?;
            if keys
                .insert(id.clone(), Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)))
                .is_some()
            {
                return Err(KeyringError::DuplicateId(id));
            }
            active.get_or_insert(id);
        }
        Ok(Self {
            inner: Arc::new(Inner { active, keys }),
        })
    }

    /// Whether values can be sealed (a key is configured).
    pub fn is_configured(&self) -> bool {
        self.inner.active.is_some()
    }

    /// Seals `plaintext` for `context` (e.g. `salla:1234:refresh`) with the active key and a fresh nonce.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, SecretsError> {
        let id = self.inner.active.as_ref().ok_or(SecretsError::NoKey)?;
        let cipher = &self.inner.keys[id];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Corrupt)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(Sealed {
            key_id: id.clone(),
            bytes,
        })
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, key_id: &str, bytes: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let cipher = self
            .inner
            .keys
            .get(key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretsError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretsError::Corrupt)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Corrupt)
    }

    /// Opens a value sealed for `context` as UTF-8 text.
    pub fn open_string(
        &self,
        context: &str,
        key_id: &str,
        bytes: &[u8],
    ) -> Result<String, SecretsError> {
        String::from_utf8(self.open(context, key_id, bytes)?).map_err(|_| SecretsError::Corrupt)
    }

    /// The id of the key new values are sealed with, when one is configured.
    pub fn active_key(&self) -> Option<&str> {
        self.inner.active.as_deref()
    }

    /// Whether `key_id` is not the active key (the value should be re-sealed).
    pub fn is_stale(&self, key_id: &str) -> bool {
        self.inner.active.as_deref() != Some(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn keyring(entries: &[&str]) -> Keyring {
        Keyring::from_config(&SecretsConfig {
            encryption_keys: entries.iter().map(|e| Secret::new(*e)).collect(),
        })
        .unwrap()
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=";

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let ring = keyring(&[K1]);
        let sealed = ring.seal("salla:1:access", b"token-value").unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.bytes.windows(11).any(|w| w == b"token-value"));
        assert_eq!(
            ring.open("salla:1:access", "k1", &sealed.bytes).unwrap(),
            b"token-value"
        );
        assert!(matches!(
            ring.open("salla:2:access", "k1", &sealed.bytes),
            Err(SecretsError::Corrupt)
        ));
        let mut tampered = sealed.bytes.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            ring.open("salla:1:access", "k1", &tampered),
            Err(SecretsError::Corrupt)
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_seals_with_the_first_key() {
        let old = keyring(&[K1]).seal("ctx", b"secret").unwrap();
        let rotated = keyring(&[K2, K1]);
        assert_eq!(rotated.open("ctx", "k1", &old.bytes).unwrap(), b"secret");
        assert!(rotated.is_stale("k1"));
        assert_eq!(rotated.seal("ctx", b"x").unwrap().key_id, "k2");
        assert!(matches!(
            keyring(&[K2]).open("ctx", "k1", &old.bytes),
            Err(SecretsError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "nokey",
            "k1:notbase64!!",
            "k1:AAEC",
            ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
        assert!(
            Keyring::from_config(&SecretsConfig {
                encryption_keys: vec![Secret::new(K1), Secret::new(K1)],
            })
            .is_err()
        );
        assert!(!keyring(&[]).is_configured());
    }
}
