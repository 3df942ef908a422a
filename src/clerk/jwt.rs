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

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

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

/// The verified, normalised claims of a Clerk session token (v1 or v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    user_id: String,
    session_id: Option<String>,
    issuer: Option<String>,
    authorized_party: Option<String>,
    expires_at: i64,
    issued_at: Option<i64>,
    not_before: Option<i64>,
    version: u8,
    status: Option<String>,
    actor_id: Option<String>,
    org_id: Option<String>,
    org_role: Option<String>,
    org_slug: Option<String>,
    org_permissions: Vec<String>,
}

impl SessionClaims {
    /// `sub`: the Clerk user id (`user_…`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// `sid`: the Clerk session id (`sess_…`).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// `iss`: the instance's Frontend API URL.
    pub fn iss(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// `azp`: the origin the token was minted for.
    pub fn azp(&self) -> Option<&str> {
        self.authorized_party.as_deref()
    }

    /// `exp`, Unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// `iat`, Unix seconds.
    pub fn issued_at(&self) -> Option<i64> {
        self.issued_at
    }

    /// `nbf`, Unix seconds.
    pub fn not_before(&self) -> Option<i64> {
        self.not_before
    }

    /// Token version: 1 (no `v` claim) or 2.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// `sts`: the session status when Clerk sends one (e.g. `pending`: the user still has to choose an org).
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// `act.sub`: the impersonating user, when the session is an impersonation.
    pub fn actor_id(&self) -> Option<&str> {
        self.actor_id.as_deref()
    }

    /// The active organization id (`org_…`): v1 `org_id`, v2 `o.id`.
    pub fn org_id(&self) -> Option<&str> {
        self.org_id.as_deref()
    }

    /// The member's role in the active organization without any `org:` prefix (`admin`, `member`, …): v1
    /// `org_role`, v2 `o.rol`.
    pub fn org_role(&self) -> Option<&str> {
        self.org_role.as_deref()
    }

    /// The active organization slug: v1 `org_slug`, v2 `o.slg`.
    pub fn org_slug(&self) -> Option<&str> {
        self.org_slug.as_deref()
    }

    /// Organization permissions as `org:<feature>:<permission>`: v1 `org_permissions` as sent; v2 decoded from
    /// `o.per` (permission names), `o.fpm` (one decimal bitmask per org-scoped feature, bit i = `per[i]`) and the
    /// org-scoped entries of `fea`. Empty when there is no active organization or the data is incomplete;
    /// malformed masks grant nothing.
    pub fn org_permissions(&self) -> Vec<String> {
        self.org_permissions.clone()
    }

    /// The same as [`Self::org_permissions`], borrowed.
    pub fn org_permissions_slice(&self) -> &[String] {
        &self.org_permissions
    }
}

/// The RSA signing keys of a JWKS, by `kid`, ready for verification.
#[derive(Clone, Default)]
pub struct Jwks {
    keys: HashMap<String, DecodingKey>,
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

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`: the signed bytes.
    signed: &'a str,
}

fn split_token(token: &str) -> Result<Parts<'_>, AuthError> {
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token is too long"));
    }
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or(AuthError::Malformed("not a JWT"))?;
    let (header, payload) = signed
        .split_once('.')
        .ok_or(AuthError::Malformed("not a JWT"))?;
    if payload.contains('.') {
        return Err(AuthError::Malformed("not a JWT (JWE or too many segments)"));
    }
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed("not a JWT"));
    }
    Ok(Parts {
        header,
        payload,
        signature,
        signed,
    })
}

/// The header fields we look at; everything else (Clerk's `oiat`, future additions) is ignored, whatever its type.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    typ: Option<Value>,
    cat: Option<Value>,
    crit: Option<Value>,
}

struct CheckedHeader {
    kid: String,
}

fn check_header(header_b64: &str) -> Result<CheckedHeader, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("header is not a JSON object"))?;
    match &header.alg {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) => {
            let mut alg = alg.clone();
            alg.truncate(32);
            return Err(AuthError::UnsupportedAlgorithm(alg));
        }
        _ => return Err(AuthError::UnsupportedAlgorithm(String::new())),
    }
    match &header.typ {
        None | Some(Value::Null) => {}
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(AuthError::Malformed("typ is not JWT")),
    }
    match &header.cat {
        None | Some(Value::Null) => {}
        Some(Value::String(cat)) if cat == CATEGORY_SESSION || cat == CATEGORY_IGNORE => {}
        Some(Value::String(cat)) => {
            let mut cat = cat.clone();
            cat.truncate(32);
            return Err(AuthError::WrongTokenCategory(cat));
        }
        Some(_) => return Err(AuthError::Malformed("cat is not a string")),
    }
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
        return Err(AuthError::Malformed(
            "unsupported critical header parameters",
        ));
    }
    let kid = match header.kid {
        Some(Value::String(kid)) if !kid.is_empty() => kid,
        _ => return Err(AuthError::Malformed("header has no kid")),
    };
    Ok(CheckedHeader { kid })
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

fn claims_error(e: &serde_json::Error) -> String {
    // Only the category and position: serde_json messages can quote parts of the (decoded) payload.
    let what = match e.classify() {
        serde_json::error::Category::Data => "payload is not a JSON object",
        _ => "payload is not valid JSON",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// The claims we read; unknown claims are ignored and loosely typed ones are checked by hand.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<Value>,
    sid: Option<Value>,
    iss: Option<Value>,
    azp: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    v: Option<Value>,
    sts: Option<Value>,
    act: Option<Value>,
    org_id: Option<Value>,
    org_role: Option<Value>,
    org_slug: Option<Value>,
    org_permissions: Option<Value>,
    o: Option<Value>,
    fea: Option<Value>,
}

fn string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn str_field<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

fn timestamp(value: Option<Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // Saturating conversion; fractional seconds are allowed by RFC 7519.
                Ok(Some(f.floor() as i64))
            } else {
                Err(AuthError::InvalidClaims(format!("{name} is not a number")))
            }
        }
        Some(_) => Err(AuthError::InvalidClaims(format!("{name} is not a number"))),
    }
}

fn strip_org_prefix(role: String) -> String {
    match role.strip_prefix("org:") {
        Some(rest) => rest.to_string(),
        None => role,
    }
}

fn check_claims(raw: RawClaims, opts: &VerifyOptions) -> Result<SessionClaims, AuthError> {
    let user_id = match raw.sub {
        Some(Value::String(sub)) if !sub.is_empty() => sub,
        _ => return Err(AuthError::MissingSubject),
    };

    let leeway = i64::try_from(opts.leeway_secs).unwrap_or(i64::MAX);
    let now = opts.now_unix;
    let expires_at =
        timestamp(raw.exp, "exp")?.ok_or(AuthError::InvalidClaims("exp is missing".into()))?;
    if expires_at.saturating_add(leeway) <= now {
        return Err(AuthError::Expired);
    }
    let not_before = timestamp(raw.nbf, "nbf")?;
    if not_before.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(AuthError::NotYetValid);
    }
    let issued_at = timestamp(raw.iat, "iat")?;
    if issued_at.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(AuthError::IssuedInFuture);
    }

    let issuer = string(raw.iss);
    if let Some(expected) = &opts.issuer
        && issuer.as_deref() != Some(expected.as_str())
    {
        return Err(AuthError::InvalidIssuer);
    }
    let authorized_party = string(raw.azp);
    if !opts.authorized_parties.is_empty() {
        match &authorized_party {
            Some(azp) if opts.authorized_parties.iter().any(|allowed| allowed == azp) => {}
            _ => return Err(AuthError::InvalidAuthorizedParty),
        }
    }

    let version = match &raw.v {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(v @ 1..=255) => v as u8,
            _ => return Err(AuthError::InvalidClaims("v is not a token version".into())),
        },
    };

    let (org_id, org_role, org_slug, org_permissions) = if version == 2 {
        match raw.o.as_ref().filter(|o| o.is_object()) {
            Some(o) => {
                let fea = raw.fea.as_ref().and_then(Value::as_str);
                (
                    str_field(o, "id").map(str::to_string),
                    str_field(o, "rol").map(|r| strip_org_prefix(r.to_string())),
                    str_field(o, "slg").map(str::to_string),
                    v2_org_permissions(fea, str_field(o, "per"), str_field(o, "fpm")),
                )
            }
            None => (None, None, None, Vec::new()),
        }
    } else {
        let permissions = match raw.org_permissions {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|p| match p {
                    Value::String(p) => Some(p),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        (
            string(raw.org_id),
            string(raw.org_role).map(strip_org_prefix),
            string(raw.org_slug),
            permissions,
        )
    };
    // An empty org id is no org at all.
    let org_id = org_id.filter(|id| !id.is_empty());
    let (org_role, org_slug, org_permissions) = if org_id.is_some() {
        (org_role, org_slug, org_permissions)
    } else {
        (None, None, Vec::new())
    };

    Ok(SessionClaims {
        user_id,
        session_id: string(raw.sid),
        issuer,
        authorized_party,
        expires_at,
        issued_at,
        not_before,
        version,
        status: string(raw.sts),
        actor_id: raw
            .act
            .as_ref()
            .and_then(|act| str_field(act, "sub"))
            .map(str::to_string),
        org_id,
        org_role,
        org_slug,
        org_permissions,
    })
}

/// A permission bitmask: a non-empty run of ASCII digits that fits in 128 bits (Clerk's masks may exceed 2^53, so
/// never through `f64`). Anything else (`1invalid`, `-1`, `1.5`, overflow) is `None`: fail closed.
fn parse_mask(mask: &str) -> Option<u128> {
    if mask.is_empty() || !mask.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    mask.parse::<u128>().ok()
}

/// v2 permissions: each org-scoped `fea` entry (scope containing `o`: `o`, `ou`, `uo`) pairs, in order, with one
/// `fpm` mask; bit i (least significant first) of the mask grants `per[i]`, giving `org:<feature>:<permission>`.
fn v2_org_permissions(fea: Option<&str>, per: Option<&str>, fpm: Option<&str>) -> Vec<String> {
    let (Some(fea), Some(per), Some(fpm)) = (fea, per, fpm) else {
        return Vec::new();
    };
    let permissions: Vec<&str> = per.split(',').map(str::trim).collect();
    let masks: Vec<&str> = fpm.split(',').map(str::trim).collect();
    let org_features = fea.split(',').filter_map(|entry| {
        let (scope, feature) = entry.trim().split_once(':')?;
        (scope.contains('o') && !feature.is_empty()).then_some(feature)
    });
    let mut out = Vec::new();
    for (feature, mask) in org_features.zip(masks) {
        let Some(mask) = parse_mask(mask) else {
            continue;
        };
        for (bit, permission) in permissions.iter().enumerate().take(128) {
            if !permission.is_empty() && (mask >> bit) & 1 == 1 {
                out.push(format!("org:{feature}:{permission}"));
            }
        }
    }
    out
}

/// Test keys and token minting shared by the Clerk unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::{Value, json};

    /// Fixed RSA-2048 test keys (generated once with `openssl genrsa -traditional 2048`); never used elsewhere.
    pub const KEY1_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAk6jF1oLkgIS1S2wVbBiai/eKGxQXNsALLDWQL2cQXN6WMGud
6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Eco+MCp8baBCpI9roNa6EFvamhXwXX
D81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8wt+eqerYayPKspK0I7vDnLIxJDj1E
QfaGxefH5xDF8DK/Rcp+wQwZ4+6n06GzqEwBrjq1Ec9OIJkrMXkxYJ3FcmJOw1sF
dd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadBWPRcn0i/YjUCtXvCoiqoxDYpLq3/
O5lmQQlDrZDLU+dNvf3ufe2xpbtLR5KjKNZLvwIDAQABAoIBAAql+6prYxDKQTa7
XdTJ9hniPpaS/X+THDB9Jl+SFlHUMs7dcT7/o7EcI1ipVga69Bsps3Gss+70iyF4
dJ8NBVHjn5U7gmJq2DsuvKQGhzRKb4WQ6sBMJUxXoDnj6vZWrjoOaGa6sVMZrqSS
aLs+HdR4A554081VBCfrWz8RUWKFbpoWxkmZuXdhCG0EydWf6AJeJZCy/oG4uQeo
3EAe7rk1itHbhE4n2tkCegm3nuIV4LvpYNfdcweynB0TLgzZqHtoJtMYZVPi9lsJ
b857rBxcLGrGNwigiRuwVZB7vDW2r/thEZfHV3bJYXVXjxZS5Eqm1cV97k+WRcZC
K6WCG+kCgYEAz3RH80qHnqmPhIce07EEgx1LwBeRYcKhtWrVA5Ij6EtjgzQm5X95
BdCalhU08JzwCUNe1745WM6dIEo/14Qe4wHLMyCW3kn+N0YQ5kQfwVFmqpPDeVOz
3wg5Vf6rugwIaXvUBB9ta/q8YMaduoTuokeo0Mbq5KcnCvICf2qag8kCgYEAtjZs
yYeo85aif/v8u73vbkGjUeB9xL07yiJH27ycBiGZxwTPoB9n+HtP9N3QIWoAgSYQ
BE2LLsdMjbtNrPDa+hXMaSwDBgyYxot8PaVhlmYFxtRodVySnQZUlWG7AHGWVXKI
96SDMM3n1Z6JdCyeDU176+i73xEpqLq/xCN3R0cCgYBdpMChur/TR/jnutKYfixq
Pvwlnr3aYi/6o1m6PeqFfhpSbGUubUck79AH9VSrVDwqAkY6nrxmMQXOQJXm49XJ
ZNLjpk9T0hS1wKP6PUAUVHlCgGbZSoZEJAM1pTrBRZM6glHm9oS/HDSSfrVOL5lE
mZJDg7ceNbGzCCFGgMl0uQKBgHLQuJwEr6FOOfcLgaWLeWOwWIkvPBDMbPBhyYXc
wzPZ2Fxf27S6FXmtuiRB4PQtJ0Q6B72uXxWK3+IvNDLVUiZjtfpPkVgud9Yj7pWp
sGRkxR8UmP3a50eqxYGbo4oUCPauxT/GmiQWmw8wZsydkLoxKPTuIfPdjLKVemDN
OEvhAoGBALdj5JWAQySjXUt16DBsOXiqecpwH22bFURjJ0DsecAdpn0Dk0L2ePJA
0M4FSc3cPSNHPsZs2zzyQKaH/6jYd9xPFBz831LMh/HCipdV7vzEldgKIMoYj310
LKkquOeRJz7c3/RC6sZ0TO+72YnMCt2kfoqwlzIr6JMq9Xg/iPvT
-----END RSA PRIVATE KEY-----";
    pub const KEY1_N: &str = "k6jF1oLkgIS1S2wVbBiai_eKGxQXNsALLDWQL2cQXN6WMGud6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Eco-MCp8baBCpI9roNa6EFvamhXwXXD81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8wt-eqerYayPKspK0I7vDnLIxJDj1EQfaGxefH5xDF8DK_Rcp-wQwZ4-6n06GzqEwBrjq1Ec9OIJkrMXkxYJ3FcmJOw1sFdd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadBWPRcn0i_YjUCtXvCoiqoxDYpLq3_O5lmQQlDrZDLU-dNvf3ufe2xpbtLR5KjKNZLvw";
    pub const KEY1_PUBLIC_PEM: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk6jF1oLkgIS1S2wVbBia
i/eKGxQXNsALLDWQL2cQXN6WMGud6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Ec
o+MCp8baBCpI9roNa6EFvamhXwXXD81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8w
t+eqerYayPKspK0I7vDnLIxJDj1EQfaGxefH5xDF8DK/Rcp+wQwZ4+6n06GzqEwB
rjq1Ec9OIJkrMXkxYJ3FcmJOw1sFdd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadB
WPRcn0i/YjUCtXvCoiqoxDYpLq3/O5lmQQlDrZDLU+dNvf3ufe2xpbtLR5KjKNZL
vwIDAQAB
-----END PUBLIC KEY-----";
    pub const KEY2_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAtaWH2w1ChybKaeKcuUQ6xEmfetIPrT/gWhpRleFmbLnXzsOg
vmCrXx7swHP3uVnRmN/7kByof8P5HeH4nQGvgWT+1ewlAqo2zLj+rdSjGrsftlH2
3xGd4QdHYQhFlCQwilCbjA4gj9GdUGA+HfmbUqvVOSl6qS4YcrDvHEUjtS1eOdVz
7dLTPPB4hDRmx0mKzVeuP3tQ1rIJI0Munvd5cqOsdp+pY1uITi124g7x3mvejeI6
Pl7l6eeoNysc5MUuJDvpT8rbrxHWn5QOuHUWuQyUgDdcODAsP9La3CAoOwWiGk3N
jwV0pNnK/fJ0nYYWDFRb5mexJLftcAi7UeYVJQIDAQABAoIBAAa0v0C/ixK5RGTH
WHjgg3jmrOwYYDrJrms1KIjrguAFtmlsQH12zSzcU+pA/cbKgZnuvvdRj4jz/7jy
ND77pnKU+3GDX9Rq204QkFpzjLf6a4/ME9ylZlo97g0vhH4VHfOlSTDQ/rPAjdm/
S9vIcMsLC/qpxN0FFiL51EILbWeNXq/C2ApiKcDM3qB0aniwJnYw7pYQO9sVeJJj
meHPBBdnBEMyY/JVIHOwQtG0/r5ZqKmZV1XVr4bflaURXokpBTsoZAAU9TFJqFhz
Wz+sjoyDcIiv8kBCooBDey8Rv/snBZVdoR8L1puV/2Dff0zfAN5eSWyIRKfh1JDR
AbPERdECgYEA89FPwYYDJpWEgS3B7IqY1oZ//p2UoSjMPql8oG6Fu729d7eEbNK5
9QMkXeA0eIM0592bV1w1ct8YGnYs3IWJMlIoerowB5lArFHCg+zqZLd9bHn+D11R
vHCV7nedt381zyDcm6/56/GO4Z8Ck4JVMnnuanYbBbtXGIFDgqYqa+kCgYEAvrj8
OMGeq91Dtt3tspF7TwlGLA/ahuj0zI3BPIQK6D/rDkNZVIG0YQBdvhHMCWBAOGub
l3o0TyrbxcM2sEKAc8lwlAsAiGhBrUgVZXEmePf8Ie1O8bu4h7uPTLl6w5dBVH54
0HUVaR//hySLcz1Voart0j6n2vS6PoM1vsCUZd0CgYEArIOmfhS3d/6FIe3hb9/l
Iq1KNTsEZj96vL+pic6J23v2apW0Ile78evGOJIiLj8QGRtJBbgdrWjDIj4JogLu
P2e4cpX40/eQthynmDby5k6adT2gEPkDk2TKAVArjSF6TlM/JP2PxW1Gnsemx/6J
D80Mb9Gfbx/OEW2s+e1eyLkCgYEAmaZyHE9wQ0loyiQU4S1vSAdSryC+jr2SqlDx
go1mNCF6fu0nRHuSFCu1WfEAjfUrB8k5elmLVtRSZgqVPn70+VMqDTqn3T0Q3Ecc
ZbM4qXAvgi2q0fjH+yHRmqA7FOQAT8/sCRSqgRy0Qe3hIqAhIrOQETdFB5LtkHso
i1qes0kCgYBouQFx9aypD5jTlkuFKPVFg3FaZOMYGU5Ka81vGPEvQYC8/PUbvGJB
8cXvxE9nO8hUHpfIHx6U8QQaOOIsR2iziOz2Rl5CWHiRwyU8z25IEg73BAWv8I9T
8eENjIcX0K1HNLi8f97R5CuhxnLbbM2SH2huMO5ZyesmmrU5Y9oV8Q==
-----END RSA PRIVATE KEY-----";
    pub const KEY2_N: &str = "taWH2w1ChybKaeKcuUQ6xEmfetIPrT_gWhpRleFmbLnXzsOgvmCrXx7swHP3uVnRmN_7kByof8P5HeH4nQGvgWT-1ewlAqo2zLj-rdSjGrsftlH23xGd4QdHYQhFlCQwilCbjA4gj9GdUGA-HfmbUqvVOSl6qS4YcrDvHEUjtS1eOdVz7dLTPPB4hDRmx0mKzVeuP3tQ1rIJI0Munvd5cqOsdp-pY1uITi124g7x3mvejeI6Pl7l6eeoNysc5MUuJDvpT8rbrxHWn5QOuHUWuQyUgDdcODAsP9La3CAoOwWiGk3NjwV0pNnK_fJ0nYYWDFRb5mexJLftcAi7UeYVJQ";
    pub const KID1: &str = "ins_2GIoQhbUpy0hX7B2cVkuTMinXoD";
    pub const KID2: &str = "ins_rotated000000000000000000";
    pub const ISSUER: &str = "https://clerk.example.com";
    pub const AZP: &str = "https://app.example.com";
    pub const NOW: i64 = 1_744_734_890;

    pub fn jwks(keys: &[(&str, &str)]) -> Vec<u8> {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(kid, n)| json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": "AQAB"}))
            .collect();
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    fn der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }

    pub fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// A token with this exact header and payload, signed RS256 with `pem`.
    pub fn sign(header: &Value, claims: &Value, pem: &str) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let key = EncodingKey::from_rsa_der(&der(pem));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
        format!("{message}.{signature}")
    }

    /// A token with this header, signed HS256 with `secret`.
    pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let key = EncodingKey::from_secret(secret);
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{signature}")
    }

    pub fn header(kid: &str) -> Value {
        json!({"alg": "RS256", "kid": kid, "typ": "JWT", "cat": "cl_B7d4PD111AAA", "oiat": 1_716_883_200})
    }

    pub fn v1_claims(now: i64) -> Value {
        json!({
            "azp": AZP, "exp": now + 60, "iat": now, "iss": ISSUER, "nbf": now - 10,
            "sid": "sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9", "sub": "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr",
            "org_id": "org_xxxxxxx", "org_role": "org:admin", "org_slug": "org_test",
            "org_permissions": ["org:impersonation:read", "org:impersonation:manage"],
            "custom": {"nested": [1, 2, 3]}
        })
    }

    pub fn v2_claims(now: i64) -> Value {
        json!({
            "azp": AZP, "email": "email@example.com", "exp": now + 60,
            "fea": "o:dashboard,u:profile,ou:teams", "fva": [0, -1], "iat": now,
            "iss": ISSUER, "jti": "004f0096e5cd44911924", "nbf": now - 10,
            "o": {"fpm": "3,2", "id": "org_123", "per": "manage,read", "rol": "admin", "slg": "example-org"},
            "pla": "o:free_org", "role": "authenticated", "sid": "sess_123", "sub": "user_123", "v": 2
        })
    }

    /// A valid v1 token signed with key 1 for [`NOW`].
    pub fn v1_token(now: i64) -> String {
        sign(&header(KID1), &v1_claims(now), KEY1_PEM)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
    fn v2_permission_masks() {
        // Bit 53 and above stay exact: 2^53 + 1 grants per[0] and per[53].
        let mut per: Vec<String> = (0..54).map(|i| format!("p{i}")).collect();
        per[0] = "first".into();
        per[53] = "last".into();
        let got = v2_org_permissions(
            Some("o:big"),
            Some(&per.join(",")),
            Some("9007199254740993"),
        );
        assert_eq!(got, vec!["org:big:first", "org:big:last"]);
        // Malformed masks grant nothing for their feature; the others still apply.
        for bad in [
            "1invalid",
            "-1",
            "1.5",
            "",
            "340282366920938463463374607431768211456",
        ] {
            let got = v2_org_permissions(Some("o:a,o:b"), Some("x,y"), Some(&format!("{bad},1")));
            assert_eq!(got, vec!["org:b:x"], "mask {bad:?}");
        }
        assert!(v2_org_permissions(None, Some("x"), Some("1")).is_empty());
        assert!(v2_org_permissions(Some("o:a"), None, Some("1")).is_empty());
        assert!(v2_org_permissions(Some("o:a"), Some("x"), None).is_empty());
        // The docs example: fea=o:dashboard,o:teams, per=manage,read, fpm=3,2.
        assert_eq!(
            v2_org_permissions(
                Some("o:dashboard,o:teams"),
                Some("manage,read"),
                Some("3,2")
            ),
            vec![
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read"
            ]
        );
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
