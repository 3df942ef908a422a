//! The claims of a session token: their checks (`exp`, `nbf`, `iat`, `iss`, `azp`, `sub`) and their
//! normalisation, v1 or v2, into [`SessionClaims`].

use serde::Deserialize;
use serde_json::Value;

use super::{AuthError, VerifyOptions};

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

pub(super) fn claims_error(e: &serde_json::Error) -> String {
    // Only the category and position: serde_json messages can quote parts of the (decoded) payload.
    let what = match e.classify() {
        serde_json::error::Category::Data => "payload is not a JSON object",
        _ => "payload is not valid JSON",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// The claims we read; unknown claims are ignored and loosely typed ones are checked by hand.
#[derive(Deserialize)]
pub(super) struct RawClaims {
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

pub(super) fn check_claims(
    raw: RawClaims,
    opts: &VerifyOptions,
) -> Result<SessionClaims, AuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
