//! `[secrets]`: the keys that encrypt stored credentials, with their validation.

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// `<id>:<base64 32 bytes>`; the first encrypts, all decrypt.
    pub encryption_keys: Vec<Secret>,
}

impl SecretsConfig {
    /// The keys parse into a keyring (checked just before `[salla]`).
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if let Err(why) = crate::secrets::Keyring::from_config(self) {
            problem(
                "secrets.encryption_keys",
                why.to_string(),
                "entries \"<id>:<base64 of 32 random bytes>\" with distinct ids",
            );
        }
    }
}
