//! Clerk session-token (JWT) verification: pure functions, no I/O, injected clock.
//!
//! A Clerk session token is an RS256 JWT whose `kid` names a key of the instance JWKS. [`verify_with_jwks`] checks,
//! in this order (see `../shared/reference/clerk.md` §1):
//!
//! 1. the header, parsed leniently (unknown parameters such as Clerk's integer `oiat` are ignored): `alg` must be
//!    exactly `RS256` (`none`, `HS*`, `ES*`, `RS384`… are refused before any key is looked up), `typ`, if present,
//!    is `JWT`, and `cat`, if present, is a session category (template and M2M tokens share the signing key);
//! 2. the key: `kid` must name an RSA key of the JWKS, else [`AuthError::UnknownKid`] (the caller may refetch);
//! 3. the RS256 signature, before any claim is trusted;
//! 4. the claims: `exp` (required), `nbf` and `iat` with `leeway_secs` of clock skew against `now_unix` (never the
//!    system clock), exact `iss` when an issuer is configured, `azp` in the authorized parties when any are
//!    configured (a missing `azp` is then refused), and a non-empty `sub`.
//!
//! The claims of both token versions are normalised into [`SessionClaims`]: v1 (`org_id`, `org_role`, `org_slug`,
//! `org_permissions`) and v2 (`v: 2`, compact `o: {id, rol, slg, per, fpm}` plus `fea`).

mod claims;
mod keys;
#[cfg(test)]
pub(crate) mod test_support;
mod token;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

pub use claims::SessionClaims;
pub use keys::Jwks;

use claims::{RawClaims, check_claims, claims_error};
use token::{CheckedHeader, Parts, check_header, split_token};

/// Tokens longer than this are refused without further work (Clerk's cookie limit is 4 KB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// `cat` of a session token.
pub const CATEGORY_SESSION: &str = "cl_B7d4PD111AAA";
/// `cat` Clerk documents as "ignore" (accepted like a session token by clerk-js).
pub const CATEGORY_IGNORE: &str = "cl_I7d4PD111III";

/// Why a session token (or the key material to check it) was refused. Messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no session token in the request")]
    MissingToken,
    #[error("malformed session token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm {0:?}: only RS256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("not a session token (token category {0:?})")]
    WrongTokenCategory(String),
    #[error("no signing key with kid {0:?} in the JWKS")]
    UnknownKid(String),
    #[error("invalid token signature")]
    InvalidSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("token issuer (iss) does not match the configured issuer")]
    InvalidIssuer,
    #[error("token authorized party (azp) is missing or not allowed")]
    InvalidAuthorizedParty,
    #[error("token has no subject (sub)")]
    MissingSubject,
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
    #[error("signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// A stable, machine-readable code for API error bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed(_) | Self::InvalidClaims(_) | Self::MissingSubject => "invalid_token",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::WrongTokenCategory(_) => "wrong_token_category",
            Self::UnknownKid(_) => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_active",
            Self::IssuedInFuture => "token_issued_in_future",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAuthorizedParty => "invalid_authorized_party",
            Self::InvalidJwks(_) => "invalid_jwks",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    /// Whether the failure is on our side (keys could not be obtained) rather than the token's fault: answer 503
    /// rather than 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_) | Self::InvalidJwks(_))
    }
}

/// What [`verify_with_jwks`] checks besides the signature.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Exact expected `iss` (the instance's Frontend API URL). `None`: not checked.
    pub issuer: Option<String>,
    /// Allowed `azp` values (frontend origins). Empty: not checked; otherwise a missing `azp` is refused.
    pub authorized_parties: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (Clerk uses 5).
    pub leeway_secs: u64,
    /// The current time, in Unix seconds.
    pub now_unix: i64,
}

/// Verifies a Clerk session token against a JWKS document and returns its normalised claims.
///
/// Pure: no I/O, and time comes from `opts.now_unix`. See the module documentation for the checks and their order.
/// An unknown `kid` gives [`AuthError::UnknownKid`] so a caller holding a cached JWKS can refetch it once.
pub fn verify_with_jwks(
    token: &str,
    jwks_json: &[u8],
    opts: &VerifyOptions,
) -> Result<SessionClaims, AuthError> {
    // Header checks come first: a token with a refused algorithm never costs a JWKS parse.
    let parts = split_token(token)?;
    let header = check_header(parts.header)?;
    let jwks = Jwks::parse(jwks_json)?;
    verify_parts(&parts, &header, &jwks, opts)
}

/// [`verify_with_jwks`] with an already parsed JWKS (what the JWKS cache uses).
pub fn verify_with_keys(
    token: &str,
    jwks: &Jwks,
    opts: &VerifyOptions,
) -> Result<SessionClaims, AuthError> {
    let parts = split_token(token)?;
    let header = check_header(parts.header)?;
    verify_parts(&parts, &header, jwks, opts)
}

/// The `kid` of a token whose header passes the algorithm checks, without verifying anything else.
pub fn token_kid(token: &str) -> Result<String, AuthError> {
    let parts = split_token(token)?;
    Ok(check_header(parts.header)?.kid)
}

fn verify_parts(
    parts: &Parts<'_>,
    header: &CheckedHeader,
    jwks: &Jwks,
    opts: &VerifyOptions,
) -> Result<SessionClaims, AuthError> {
    let Some(key) = jwks.keys.get(&header.kid) else {
        let mut kid = header.kid.clone();
        if kid.len() > 64 {
            let mut end = 64;
            while !kid.is_char_boundary(end) {
                end -= 1;
            }
            kid.truncate(end);
        }
        return Err(AuthError::UnknownKid(kid));
    };
    // Signature before any claim is trusted.
    match jsonwebtoken::crypto::verify(
        parts.signature,
        parts.signed.as_bytes(),
        key,
        Algorithm::RS256,
    ) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(AuthError::InvalidSignature),
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| AuthError::Malformed("payload is not base64url"))?;
    let raw: RawClaims =
        serde_json::from_slice(&payload).map_err(|e| AuthError::InvalidClaims(claims_error(&e)))?;
    check_claims(raw, opts)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::test_support::*;
    use super::*;

    fn opts() -> VerifyOptions {
        VerifyOptions {
            issuer: Some(ISSUER.into()),
            authorized_parties: vec![AZP.into()],
            leeway_secs: 5,
            now_unix: NOW,
        }
    }

    fn keys() -> Vec<u8> {
        jwks(&[(KID1, KEY1_N), (KID2, KEY2_N)])
    }

    fn verify(token: &str) -> Result<SessionClaims, AuthError> {
        verify_with_jwks(token, &keys(), &opts())
    }

    fn with(mut claims: Value, field: &str, value: Value) -> Value {
        claims[field] = value;
        claims
    }

    fn without(mut claims: Value, field: &str) -> Value {
        claims.as_object_mut().unwrap().remove(field);
        claims
    }

    #[test]
    fn valid_v1_token_is_normalised() {
        let claims = verify(&v1_token(NOW)).unwrap();
        assert_eq!(claims.user_id(), "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr");
        assert_eq!(
            claims.session_id(),
            Some("sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9")
        );
        assert_eq!(claims.version(), 1);
        assert_eq!(claims.org_id(), Some("org_xxxxxxx"));
        assert_eq!(claims.org_role(), Some("admin"));
        assert_eq!(claims.org_slug(), Some("org_test"));
        assert_eq!(
            claims.org_permissions(),
            vec!["org:impersonation:read", "org:impersonation:manage"]
        );
        assert_eq!(claims.iss(), Some(ISSUER));
        assert_eq!(claims.azp(), Some(AZP));
        assert_eq!(claims.expires_at(), NOW + 60);
    }

    #[test]
    fn valid_v2_token_is_normalised() {
        let token = sign(&header(KID2), &v2_claims(NOW), KEY2_PEM);
        let claims = verify(&token).unwrap();
        assert_eq!(claims.user_id(), "user_123");
        assert_eq!(claims.session_id(), Some("sess_123"));
        assert_eq!(claims.version(), 2);
        assert_eq!(claims.org_id(), Some("org_123"));
        assert_eq!(claims.org_role(), Some("admin"));
        assert_eq!(claims.org_slug(), Some("example-org"));
        // fea org features: dashboard (mask 3 = manage+read), teams (scope "ou", mask 2 = read); u:profile skipped.
        assert_eq!(
            claims.org_permissions(),
            vec![
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read"
            ]
        );
    }

    #[test]
    fn v2_without_org_and_legacy_roles() {
        let claims = without(v2_claims(NOW), "o");
        let token = sign(&header(KID1), &claims, KEY1_PEM);
        let claims = verify(&token).unwrap();
        assert_eq!(claims.version(), 2);
        assert_eq!(claims.org_id(), None);
        assert_eq!(claims.org_role(), None);
        assert!(claims.org_permissions().is_empty());

        // v1 role without the org: prefix stays as is; v2 o.rol never has one.
        let legacy = with(v1_claims(NOW), "org_role", json!("basic_member"));
        let claims = verify(&sign(&header(KID1), &legacy, KEY1_PEM)).unwrap();
        assert_eq!(claims.org_role(), Some("basic_member"));
    }

    #[test]
    fn unknown_header_fields_and_claims_are_ignored() {
        let header = json!({"alg": "RS256", "kid": KID1, "oiat": 1_716_883_200, "x5y": {"a": [1]}, "n": null});
        let claims = with(v1_claims(NOW), "weird", json!([{"x": 1.5}]));
        assert!(verify(&sign(&header, &claims, KEY1_PEM)).is_ok());
    }

    #[test]
    fn expired_and_leeway() {
        let claims = with(v1_claims(NOW), "exp", json!(NOW - 6));
        assert_eq!(
            verify(&sign(&header(KID1), &claims, KEY1_PEM)),
            Err(AuthError::Expired)
        );
        // Within the 5 s leeway.
        let claims = with(v1_claims(NOW), "exp", json!(NOW - 4));
        assert!(verify(&sign(&header(KID1), &claims, KEY1_PEM)).is_ok());
        let claims = without(v1_claims(NOW), "exp");
        assert!(matches!(
            verify(&sign(&header(KID1), &claims, KEY1_PEM)),
            Err(AuthError::InvalidClaims(_))
        ));
        assert_eq!(AuthError::Expired.code(), "token_expired");
    }

    #[test]
    fn not_yet_valid_and_issued_in_future() {
        let claims = with(v1_claims(NOW), "nbf", json!(NOW + 6));
        assert_eq!(
            verify(&sign(&header(KID1), &claims, KEY1_PEM)),
            Err(AuthError::NotYetValid)
        );
        let claims = with(v1_claims(NOW), "nbf", json!(NOW + 5));
        assert!(verify(&sign(&header(KID1), &claims, KEY1_PEM)).is_ok());
        let claims = with(v1_claims(NOW), "iat", json!(NOW + 30));
        assert_eq!(
            verify(&sign(&header(KID1), &claims, KEY1_PEM)),
            Err(AuthError::IssuedInFuture)
        );
        let claims = with(v1_claims(NOW), "iat", json!(NOW + 4));
        assert!(verify(&sign(&header(KID1), &claims, KEY1_PEM)).is_ok());
    }

    #[test]
    fn issuer_must_match_exactly() {
        for iss in [
            json!("https://clerk.example.com/"),
            json!("https://evil.example.com"),
            json!(null),
        ] {
            let claims = with(v1_claims(NOW), "iss", iss);
            assert_eq!(
                verify(&sign(&header(KID1), &claims, KEY1_PEM)),
                Err(AuthError::InvalidIssuer)
            );
        }
        // Not configured: not checked.
        let claims = with(v1_claims(NOW), "iss", json!("https://other.example.com"));
        let opts = VerifyOptions {
            issuer: None,
            ..opts()
        };
        assert!(verify_with_jwks(&sign(&header(KID1), &claims, KEY1_PEM), &keys(), &opts).is_ok());
    }

    #[test]
    fn azp_must_be_authorized() {
        let claims = with(v1_claims(NOW), "azp", json!("https://evil.example.com"));
        let token = sign(&header(KID1), &claims, KEY1_PEM);
        assert_eq!(verify(&token), Err(AuthError::InvalidAuthorizedParty));
        let missing = sign(&header(KID1), &without(v1_claims(NOW), "azp"), KEY1_PEM);
        assert_eq!(verify(&missing), Err(AuthError::InvalidAuthorizedParty));
        let opts = VerifyOptions {
            authorized_parties: vec![],
            ..opts()
        };
        assert!(verify_with_jwks(&token, &keys(), &opts).is_ok());
        assert!(verify_with_jwks(&missing, &keys(), &opts).is_ok());
    }

    #[test]
    fn unknown_kid() {
        let token = sign(&header("ins_nope"), &v1_claims(NOW), KEY1_PEM);
        let err = verify(&token).unwrap_err();
        assert_eq!(err, AuthError::UnknownKid("ins_nope".into()));
        assert_eq!(err.code(), "unknown_key");
        // Key 2 with kid 1's id: the signature does not match.
        let token = sign(&header(KID1), &v1_claims(NOW), KEY2_PEM);
        assert_eq!(verify(&token), Err(AuthError::InvalidSignature));
    }

    #[test]
    fn tampered_signature_and_payload() {
        let token = v1_token(NOW);
        let (rest, sig) = token.rsplit_once('.').unwrap();
        let flipped = if sig.ends_with('A') { "B" } else { "A" };
        let tampered = format!("{rest}.{}{flipped}", &sig[..sig.len() - 1]);
        assert_eq!(verify(&tampered), Err(AuthError::InvalidSignature));
        // Same signature over another payload (sub changed).
        let (header_b64, _) = rest.split_once('.').unwrap();
        let other = b64(&with(v1_claims(NOW), "sub", json!("user_attacker")));
        assert_eq!(
            verify(&format!("{header_b64}.{other}.{sig}")),
            Err(AuthError::InvalidSignature)
        );
        assert_eq!(
            verify(&format!("{rest}.")),
            Err(AuthError::InvalidSignature)
        );
        assert_eq!(
            verify(&format!("{rest}.!!!")),
            Err(AuthError::InvalidSignature)
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        for alg in ["none", "None", "NONE"] {
            let header = json!({"alg": alg, "kid": KID1, "typ": "JWT"});
            let token = format!("{}.{}.", b64(&header), b64(&v1_claims(NOW)));
            assert_eq!(
                verify(&token),
                Err(AuthError::UnsupportedAlgorithm(alg.into()))
            );
        }
        let header = json!({"kid": KID1});
        let token = format!("{}.{}.", b64(&header), b64(&v1_claims(NOW)));
        assert!(matches!(
            verify(&token),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        // Refused before any key lookup: even with an unknown kid and no JWKS at all.
        let header = json!({"alg": "none", "kid": "ins_unknown"});
        let token = format!("{}.{}.", b64(&header), b64(&v1_claims(NOW)));
        assert!(matches!(
            verify_with_jwks(&token, b"not json", &opts()),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn hs256_with_public_key_as_secret_is_rejected() {
        let header = json!({"alg": "HS256", "kid": KID1, "typ": "JWT"});
        let token = sign_hs256(&header, &v1_claims(NOW), KEY1_PUBLIC_PEM.as_bytes());
        assert_eq!(
            verify(&token),
            Err(AuthError::UnsupportedAlgorithm("HS256".into()))
        );
        for alg in [
            "HS384", "HS512", "RS384", "RS512", "PS256", "ES256", "EdDSA", "rs256",
        ] {
            let header = json!({"alg": alg, "kid": KID1});
            let token = sign(&header, &v1_claims(NOW), KEY1_PEM);
            assert!(
                matches!(verify(&token), Err(AuthError::UnsupportedAlgorithm(_))),
                "{alg}"
            );
        }
    }

    #[test]
    fn missing_or_empty_sub() {
        let token = sign(&header(KID1), &without(v1_claims(NOW), "sub"), KEY1_PEM);
        assert_eq!(verify(&token), Err(AuthError::MissingSubject));
        let token = sign(
            &header(KID1),
            &with(v1_claims(NOW), "sub", json!("")),
            KEY1_PEM,
        );
        assert_eq!(verify(&token), Err(AuthError::MissingSubject));
        let token = sign(
            &header(KID1),
            &with(v1_claims(NOW), "sub", json!(42)),
            KEY1_PEM,
        );
        assert_eq!(verify(&token), Err(AuthError::MissingSubject));
    }

    #[test]
    fn header_checks() {
        let m2m = json!({"alg": "RS256", "kid": KID1, "cat": "cl_B7d4PD333AAA"});
        assert!(matches!(
            verify(&sign(&m2m, &v1_claims(NOW), KEY1_PEM)),
            Err(AuthError::WrongTokenCategory(_))
        ));
        let typ = json!({"alg": "RS256", "kid": KID1, "typ": "at+jwt"});
        assert!(matches!(
            verify(&sign(&typ, &v1_claims(NOW), KEY1_PEM)),
            Err(AuthError::Malformed(_))
        ));
        let no_kid = json!({"alg": "RS256"});
        assert!(matches!(
            verify(&sign(&no_kid, &v1_claims(NOW), KEY1_PEM)),
            Err(AuthError::Malformed(_))
        ));
        for garbage in [
            "",
            "a",
            "a.b",
            "a.b.c.d.e",
            "!!.!!.!!",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(verify(garbage).is_err(), "{garbage:.20}");
        }
    }

    #[test]
    fn jwks_parsing() {
        assert!(matches!(
            verify_with_jwks(&v1_token(NOW), b"{}", &opts()),
            Err(AuthError::InvalidJwks(_))
        ));
        let mixed = serde_json::to_vec(&json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": KEY1_N, "e": "AQAB"},
            {"kty": "RSA", "kid": KID1, "n": KEY1_N, "e": "AQAB", "x5c": ["..."]},
        ]}))
        .unwrap();
        let parsed = Jwks::parse(&mixed).unwrap();
        assert_eq!(parsed.len(), 1);
        assert!(parsed.contains(KID1));
        assert!(verify_with_jwks(&v1_token(NOW), &mixed, &opts()).is_ok());
    }

    #[test]
    fn errors_never_contain_the_token() {
        let token = v1_token(NOW);
        let all = [
            verify_with_jwks(
                &token,
                &keys(),
                &VerifyOptions {
                    now_unix: NOW + 1000,
                    ..opts()
                },
            ),
            verify_with_jwks(&token, &jwks(&[]), &opts()),
            verify(&format!("{token}x")),
        ];
        for result in all {
            let err = result.unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&token[..40]), "{text}");
        }
        let odd = sign(&header(KID1), &json!("secret-payload-text"), KEY1_PEM);
        let err = verify(&odd).unwrap_err();
        assert!(matches!(err, AuthError::InvalidClaims(_)));
        assert!(!format!("{err} {err:?}").contains("secret-payload"));
    }
}
