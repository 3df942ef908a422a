//! A configuration value that must never appear in logs or printed config.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string (password, key, token, URL with credentials).
///
/// `Debug` and `Serialize` print it redacted: a URL keeps its scheme, host and path with the password masked
/// (so an operator can still see where it points); anything else becomes `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

const REDACTED: &str = "[redacted]";

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value: call only where the secret is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A printable form: empty stays empty, URLs lose their password, everything else is masked.
    pub fn redacted(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.has_host() => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("redacted"));
                }
                url.set_query(None);
                url.to_string()
            }
            _ => REDACTED.to_string(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl Visitor<'_> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            // Environment values that look like numbers arrive as numbers; a numeric secret is still a secret.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        deserializer.deserialize_any(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_host_but_lose_password() {
        let s = Secret::new("postgres://app:hunter2@db:5432/wosool");
        assert_eq!(s.redacted(), "postgres://app:redacted@db:5432/wosool");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn plain_secrets_are_fully_masked() {
        assert_eq!(Secret::new("k3y-value").redacted(), REDACTED);
        assert_eq!(Secret::new("").redacted(), "");
    }
}
