//! A compact JWT split into its segments, and its header checked (algorithm, type, category, `kid`) before any
//! key is looked up.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::{AuthError, CATEGORY_IGNORE, CATEGORY_SESSION, MAX_TOKEN_LEN};

pub(super) struct Parts<'a> {
    pub(super) header: &'a str,
    pub(super) payload: &'a str,
    pub(super) signature: &'a str,
    /// `header.payload`: the signed bytes.
    pub(super) signed: &'a str,
}

pub(super) fn split_token(token: &str) -> Result<Parts<'_>, AuthError> {
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

pub(super) struct CheckedHeader {
    pub(super) kid: String,
}

pub(super) fn check_header(header_b64: &str) -> Result<CheckedHeader, AuthError> {
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
