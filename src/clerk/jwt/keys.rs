//! The RSA signing keys of a Clerk JWKS document, parsed by `kid` and ready for RS256 verification.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::AuthError;

/// The RSA signing keys of a JWKS, by `kid`, ready for verification.
#[derive(Clone, Default)]
pub struct Jwks {
    pub(super) keys: HashMap<String, DecodingKey>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("Jwks").field("kids", &kids).finish()
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kid: Option<String>,
    kty: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[{kid, kty:"RSA", alg:"RS256", use:"sig", n, e}, …]}`). Keys that are not
    /// RSA signing keys usable with RS256, or that have no `kid`, are skipped; a document that is not a JWKS is an
    /// error.
    pub fn parse(jwks_json: &[u8]) -> Result<Self, AuthError> {
        let raw: RawJwks = serde_json::from_slice(jwks_json)
            .map_err(|e| AuthError::InvalidJwks(format!("not a JWKS document: {e}")))?;
        let mut keys = HashMap::with_capacity(raw.keys.len());
        for key in raw.keys {
            let (Some(kid), Some(n), Some(e)) = (key.kid, key.n, key.e) else {
                continue;
            };
            if key.kty.as_deref() != Some("RSA")
                || key.alg.as_deref().is_some_and(|alg| alg != "RS256")
                || key.use_.as_deref().is_some_and(|u| u != "sig")
            {
                continue;
            }
            let (Ok(n), Ok(e)) = (
                URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')),
                URL_SAFE_NO_PAD.decode(e.trim_end_matches('=')),
            ) else {
                continue;
            };
            if n.is_empty() || e.is_empty() {
                continue;
            }
            keys.insert(kid, DecodingKey::from_rsa_raw_components(&n, &e));
        }
        Ok(Self { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this `kid` is present.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The key ids, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}
