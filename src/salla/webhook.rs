//! Salla webhook authentication (shared/reference/salla.md §1.1–1.3), on the raw body bytes.
//!
//! Salla signs deliveries one of two ways, named by `X-Salla-Security-Strategy`:
//! - `Signature`: `X-Salla-Signature` is the lowercase-hex HMAC-SHA256 of the raw body keyed with the secret's
//!   bytes as they are (not decoded). Either hex case is accepted; the comparison is constant-time.
//! - `Token`: `Authorization` equals the secret (no scheme; a `Bearer ` prefix is tolerated), constant-time.
//!
//! Webhooks we register through the Merchant API (`subscriptions`) also carry our secret as an `Authorization`
//! header of every delivery: where Salla ignored the strategy we asked for and signed with a secret of its
//! own, that header authenticates the delivery (unless the strategy is pinned to `signature`).
//!
//! There is no timestamp or delivery id, so no replay window exists: replays are made harmless downstream
//! (the inbox dedupes on the body's hash and every effect is an idempotent upsert).

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::SallaStrategy;

pub const PROVIDER: &str = "salla";

const STRATEGY_HEADER: &str = "x-salla-security-strategy";
const SIGNATURE_HEADER: &str = "x-salla-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryAuthError {
    #[error("no webhook secret is configured")]
    NoSecret,
    #[error("the delivery carries no credential (neither X-Salla-Signature nor Authorization)")]
    MissingCredential,
    #[error("unknown security strategy {0:?}")]
    UnknownStrategy(String),
    #[error("the delivery uses the {got} strategy but this server accepts only {expected}")]
    WrongStrategy {
        expected: &'static str,
        got: &'static str,
    },
    #[error("X-Salla-Signature is not a 64-character hex HMAC")]
    MalformedSignature,
    #[error("the signature does not match the body")]
    InvalidSignature,
    #[error("the Authorization token does not match")]
    InvalidToken,
}

impl DeliveryAuthError {
    /// A problem on our side (no secret), not the sender's.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::NoSecret)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Signature,
    Token,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Self::Signature => "Signature",
            Self::Token => "Token",
        }
    }
}

/// Verifies a delivery signed with `secret`, by whatever strategy its `X-Salla-Security-Strategy` header names
/// (when the header is missing: `Signature` if `X-Salla-Signature` is present, else `Token`).
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), DeliveryAuthError> {
    verify_any(&[secret], SallaStrategy::Any, headers, body)
}

/// Verifies against any of `secrets` (two during a rotation), with the accepted strategy pinned or not.
pub fn verify_any(
    secrets: &[&str],
    pinned: SallaStrategy,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), DeliveryAuthError> {
    let secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() {
        return Err(DeliveryAuthError::NoSecret);
    }
    let strategy = strategy_of(headers, pinned)?;
    let verified = check(&secrets, strategy, headers, body);
    match verified {
        Err(DeliveryAuthError::InvalidSignature | DeliveryAuthError::MalformedSignature)
            if pinned == SallaStrategy::Any
                && header(headers, "authorization").is_some()
                && check(&secrets, Strategy::Token, headers, body).is_ok() =>
        {
            Ok(())
        }
        other => other,
    }
}

fn check(
    secrets: &[&str],
    strategy: Strategy,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), DeliveryAuthError> {
    match strategy {
        Strategy::Signature => {
            let given =
                header(headers, SIGNATURE_HEADER).ok_or(DeliveryAuthError::MissingCredential)?;
            let given = given.trim();
            if given.len() != 64 {
                return Err(DeliveryAuthError::MalformedSignature);
            }
            let given = hex::decode(given).map_err(|_| DeliveryAuthError::MalformedSignature)?;
            let matches = secrets.iter().any(|secret| {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(body);
                mac.verify_slice(&given).is_ok()
            });
            if matches {
                Ok(())
            } else {
                Err(DeliveryAuthError::InvalidSignature)
            }
        }
        Strategy::Token => {
            let given =
                header(headers, "authorization").ok_or(DeliveryAuthError::MissingCredential)?;
            let given = given.trim();
            let given = given
                .strip_prefix("Bearer ")
                .or_else(|| given.strip_prefix("bearer "))
                .unwrap_or(given);
            // Every secret is compared (no early exit), each in constant time.
            let matched = secrets.iter().fold(subtle::Choice::from(0), |acc, secret| {
                acc | given.as_bytes().ct_eq(secret.as_bytes())
            });
            if bool::from(matched) {
                Ok(())
            } else {
                Err(DeliveryAuthError::InvalidToken)
            }
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
}

fn strategy_of(headers: &HeaderMap, pinned: SallaStrategy) -> Result<Strategy, DeliveryAuthError> {
    let named = match header(headers, STRATEGY_HEADER) {
        Some(value) if value.trim().eq_ignore_ascii_case("signature") => Some(Strategy::Signature),
        Some(value) if value.trim().eq_ignore_ascii_case("token") => Some(Strategy::Token),
        Some(other) => return Err(DeliveryAuthError::UnknownStrategy(other.trim().to_owned())),
        None => None,
    };
    let expected = match pinned {
        SallaStrategy::Signature => Some(Strategy::Signature),
        SallaStrategy::Token => Some(Strategy::Token),
        SallaStrategy::Any => None,
    };
    match (expected, named) {
        (Some(expected), Some(got)) if expected != got => Err(DeliveryAuthError::WrongStrategy {
            expected: expected.name(),
            got: got.name(),
        }),
        (Some(expected), _) => Ok(expected),
        (None, Some(named)) => Ok(named),
        (None, None) if header(headers, SIGNATURE_HEADER).is_some() => Ok(Strategy::Signature),
        (None, None) if header(headers, "authorization").is_some() => Ok(Strategy::Token),
        (None, None) => Err(DeliveryAuthError::MissingCredential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "salla-webhook-secret";
    /// `printf '%s' '{"event":"app.installed","merchant":1}' | openssl dgst -sha256 -hmac salla-webhook-secret`
    const BODY: &[u8] = br#"{"event":"app.installed","merchant":1}"#;

    fn signature(secret: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn signature_strategy() {
        let sig = signature(SECRET, BODY);
        let ok = headers(&[
            ("X-Salla-Security-Strategy", "Signature"),
            ("X-Salla-Signature", &sig),
        ]);
        assert_eq!(verify(SECRET, &ok, BODY), Ok(()));
        let upper = headers(&[("X-Salla-Signature", &sig.to_uppercase())]);
        assert_eq!(
            verify(SECRET, &upper, BODY),
            Ok(()),
            "either hex case; strategy inferred"
        );
        let mut tampered = BODY.to_vec();
        tampered[2] ^= 1;
        assert_eq!(
            verify(SECRET, &ok, &tampered),
            Err(DeliveryAuthError::InvalidSignature)
        );
        assert_eq!(
            verify("other", &ok, BODY),
            Err(DeliveryAuthError::InvalidSignature)
        );
        let short = headers(&[("X-Salla-Signature", "abcd")]);
        assert_eq!(
            verify(SECRET, &short, BODY),
            Err(DeliveryAuthError::MalformedSignature)
        );
        let no_sig = headers(&[("X-Salla-Security-Strategy", "signature")]);
        assert_eq!(
            verify(SECRET, &no_sig, BODY),
            Err(DeliveryAuthError::MissingCredential)
        );
    }

    #[test]
    fn arabic_and_escaped_bodies_are_signed_as_bytes() {
        let body = "{\"event\":\"order.created\",\"data\":{\"name\":\"متجر\",\"url\":\"https:\\/\\/s.salla.sa\"}}".as_bytes();
        let sig = signature(SECRET, body);
        let h = headers(&[("X-Salla-Signature", &sig)]);
        assert_eq!(verify(SECRET, &h, body), Ok(()));
        // The same JSON re-serialized (unescaped slashes) is different bytes and must fail.
        let reserialized =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap())
                .unwrap();
        assert_eq!(
            verify(SECRET, &h, &reserialized),
            Err(DeliveryAuthError::InvalidSignature)
        );
    }

    #[test]
    fn token_strategy() {
        let ok = headers(&[
            ("X-Salla-Security-Strategy", "Token"),
            ("Authorization", SECRET),
        ]);
        assert_eq!(verify(SECRET, &ok, BODY), Ok(()));
        let bearer = headers(&[
            ("X-Salla-Security-Strategy", "Token"),
            ("Authorization", "Bearer salla-webhook-secret"),
        ]);
        assert_eq!(verify(SECRET, &bearer, BODY), Ok(()));
        let wrong = headers(&[
            ("X-Salla-Security-Strategy", "Token"),
            ("Authorization", "nope"),
        ]);
        assert_eq!(
            verify(SECRET, &wrong, BODY),
            Err(DeliveryAuthError::InvalidToken)
        );
        assert_eq!(
            verify(SECRET, &HeaderMap::new(), BODY),
            Err(DeliveryAuthError::MissingCredential)
        );
    }

    #[test]
    fn pinned_strategy_and_rotation() {
        let token = headers(&[
            ("X-Salla-Security-Strategy", "Token"),
            ("Authorization", SECRET),
        ]);
        assert!(matches!(
            verify_any(&[SECRET], SallaStrategy::Signature, &token, BODY),
            Err(DeliveryAuthError::WrongStrategy { .. })
        ));
        let sig = headers(&[("X-Salla-Signature", &signature(SECRET, BODY))]);
        assert_eq!(
            verify_any(
                &["new-secret", SECRET],
                SallaStrategy::Signature,
                &sig,
                BODY
            ),
            Ok(())
        );
        assert_eq!(
            verify_any(&[], SallaStrategy::Any, &sig, BODY),
            Err(DeliveryAuthError::NoSecret)
        );
        let unknown = headers(&[("X-Salla-Security-Strategy", "none")]);
        assert!(matches!(
            verify(SECRET, &unknown, BODY),
            Err(DeliveryAuthError::UnknownStrategy(_))
        ));
    }

    #[test]
    fn a_registration_header_authenticates_a_delivery_salla_signed_with_its_own_secret() {
        let theirs = signature("secret-salla-generated", BODY);
        let ours = headers(&[
            ("X-Salla-Security-Strategy", "Signature"),
            ("X-Salla-Signature", &theirs),
            ("Authorization", SECRET),
        ]);
        assert_eq!(
            verify_any(&[SECRET], SallaStrategy::Any, &ours, BODY),
            Ok(())
        );
        // Pinned to signatures: only a valid signature will do.
        assert_eq!(
            verify_any(&[SECRET], SallaStrategy::Signature, &ours, BODY),
            Err(DeliveryAuthError::InvalidSignature)
        );
        // Without our header, or with another value, it stays refused.
        let forged = headers(&[
            ("X-Salla-Security-Strategy", "Signature"),
            ("X-Salla-Signature", &theirs),
            ("Authorization", "guess"),
        ]);
        assert_eq!(
            verify_any(&[SECRET], SallaStrategy::Any, &forged, BODY),
            Err(DeliveryAuthError::InvalidSignature)
        );
    }
}
