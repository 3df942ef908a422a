//! Input hygiene: text that PostgreSQL cannot store (or that we refuse to) is turned away where the request is
//! parsed, by the shared extractors (`super::extract`), with 422 `invalid_text` naming the field.
//!
//! Refused code points:
//! - U+0000: PostgreSQL `text` cannot hold it (`invalid byte sequence for encoding "UTF8": 0x00`) and `jsonb`
//!   refuses the `\u0000` escape, so it would fail at the first query as a 500 (or poison a batch);
//! - U+FFFE and U+FFFF: noncharacters, never meaningful in interchange (U+FFFE is a byte-swapped BOM); they only
//!   confuse whatever reads the value next.
//!
//! Lone UTF-16 surrogates cannot reach us: a Rust string cannot hold one, and serde_json refuses a lone `\ud800`
//! escape when it builds a string (400 `malformed_json`).
//!
//! Every check first scans the raw bytes for the few byte patterns that can encode a refused code point (a
//! `\u` escape, a `%` escape, a 0 byte, or the lead bytes of U+FFFE/U+FFFF): the common case costs one pass of
//! `memchr`. Only on a hit is the input decoded to find the field.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// Why `text` is refused, if it is.
pub fn problem(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    for at in memchr::memchr2_iter(0, 0xEF, bytes) {
        if bytes[at] == 0 {
            return Some("contains a NUL character (U+0000), which cannot be stored");
        }
        // U+FFFE / U+FFFF are EF BF BE / EF BF BF in UTF-8.
        if bytes.get(at + 1) == Some(&0xBF) && matches!(bytes.get(at + 2), Some(0xBE | 0xBF)) {
            return Some("contains a noncharacter (U+FFFE or U+FFFF)");
        }
    }
    None
}

/// The 422 `invalid_text` error naming `field`.
pub fn refused(field: &str, problem: &'static str) -> ApiError {
    ApiError::InvalidText {
        fields: BTreeMap::from([(printable(field), problem.to_owned())]),
    }
}

/// A field name fit to be shown back (it may itself hold the refused characters).
fn printable(field: &str) -> String {
    if problem(field).is_none() {
        return field.to_owned();
    }
    field
        .chars()
        .map(|c| match c {
            '\0' | '\u{FFFE}' | '\u{FFFF}' => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

/// Whether a JSON body may hold a refused code point: a `\u0000`, `\uFFFE` or `\uFFFF` escape, or the UTF-8 of
/// U+FFFE/U+FFFF (a raw 0 byte is not valid JSON). May say yes for text that is fine (`"\\u0000"`).
pub fn json_suspect(body: &[u8]) -> bool {
    memchr::memchr2_iter(b'\\', 0xEF, body).any(|at| {
        if body[at] == 0xEF {
            return body.get(at + 1) == Some(&0xBF)
                && matches!(body.get(at + 2), Some(0xBE | 0xBF));
        }
        body.get(at + 1) == Some(&b'u')
            && body.get(at + 2..at + 6).is_some_and(|hex| {
                hex == b"0000"
                    || hex.eq_ignore_ascii_case(b"fffe")
                    || hex.eq_ignore_ascii_case(b"ffff")
            })
    })
}

/// Checks a JSON body (already known to be valid JSON): 422 naming the first refused string or key by its JSON
/// pointer (`/contact/email`).
pub fn check_json(body: &[u8]) -> Result<(), ApiError> {
    if !json_suspect(body) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        // Not a JSON document after all; whoever parses it reports that.
        return Ok(());
    };
    let mut pointer = String::new();
    match find_in_json(&value, &mut pointer) {
        Some(problem) => Err(refused(
            if pointer.is_empty() { "/" } else { &pointer },
            problem,
        )),
        None => Ok(()),
    }
}

/// The first refused string in `value` (keys included), leaving its JSON pointer in `pointer`.
fn find_in_json(value: &serde_json::Value, pointer: &mut String) -> Option<&'static str> {
    use serde_json::Value;
    match value {
        Value::String(s) => problem(s),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = pointer.len();
            pointer.push('/');
            pointer.push_str(&i.to_string());
            let found = find_in_json(item, pointer);
            if found.is_none() {
                pointer.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = pointer.len();
            pointer.push('/');
            // RFC 6901: `~` and `/` in a key are escaped.
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            let found = problem(key).or_else(|| find_in_json(item, pointer));
            if found.is_none() {
                pointer.truncate(len);
            }
            found
        }),
        _ => None,
    }
}

/// Whether URL-encoded text (a query string, a form body, a path) may hold a refused code point once decoded:
/// a `%00` or `%EF` escape, or a raw 0 or 0xEF byte. May say yes for text that is fine.
pub fn urlencoded_suspect(raw: &[u8]) -> bool {
    memchr::memchr3_iter(b'%', 0, 0xEF, raw).any(|at| match raw[at] {
        b'%' => raw
            .get(at + 1..at + 3)
            .is_some_and(|hex| hex == b"00" || hex.eq_ignore_ascii_case(b"ef")),
        _ => true,
    })
}

/// Checks a query string or form body: 422 naming the first parameter whose name or value is refused.
pub fn check_urlencoded(raw: &[u8]) -> Result<(), ApiError> {
    if !urlencoded_suspect(raw) {
        return Ok(());
    }
    for (name, value) in url::form_urlencoded::parse(raw) {
        if let Some(problem) = problem(&name).or_else(|| problem(&value)) {
            return Err(refused(&name, problem));
        }
    }
    Ok(())
}

/// Checks decoded path parameters (`(name, value)`): 422 naming the first refused one.
pub fn check_params<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    for (name, value) in params {
        if let Some(problem) = problem(value) {
            return Err(refused(name, problem));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::InvalidText { fields } => fields.into_keys().next().unwrap(),
            other => panic!("not invalid_text: {other:?}"),
        }
    }

    #[test]
    fn refused_code_points() {
        assert!(problem("plain text, عربي, emoji 🎉").is_none());
        assert!(problem("a\0b").is_some());
        assert!(problem("a\u{FFFE}").is_some());
        assert!(problem("\u{FFFF}").is_some());
        assert!(
            problem("\u{FFFD}\u{FEFF}").is_none(),
            "U+FFFD and the BOM are fine"
        );
    }

    #[test]
    fn json_names_the_field_by_pointer() {
        let body = br#"{"a":"ok","b":{"c/d":["x","\u0000"]}}"#;
        assert_eq!(field_of(check_json(body).unwrap_err()), "/b/c~1d/1");
        let key = br#"{"a\u0000":1}"#;
        assert_eq!(field_of(check_json(key).unwrap_err()), "/a\u{FFFD}");
        assert_eq!(field_of(check_json(br#""\uFFFF""#).unwrap_err()), "/");
        assert_eq!(
            field_of(check_json("{\"n\":\"\u{FFFE}\"}".as_bytes()).unwrap_err()),
            "/n"
        );
        // An escaped backslash followed by `u0000` is the text `\u0000`, not a NUL.
        assert!(json_suspect(br#"{"a":"\\u0000"}"#));
        assert!(check_json(br#"{"a":"\\u0000"}"#).is_ok());
        assert!(check_json(br#"{"a":"\u0627\u0644"}"#).is_ok());
        assert!(!json_suspect(br#"{"a":"\u0627","b":"\n"}"#));
    }

    #[test]
    fn serde_json_refuses_lone_surrogates_in_strings() {
        assert!(serde_json::from_str::<String>(r#""\ud800""#).is_err());
        assert!(serde_json::from_str::<String>(r#""\udc00""#).is_err());
        assert!(serde_json::from_str::<String>(r#""\ud83c\udf89""#).is_ok());
    }

    #[test]
    fn urlencoded_names_the_parameter() {
        assert_eq!(
            field_of(check_urlencoded(b"plan=free&search=a%00b").unwrap_err()),
            "search"
        );
        assert_eq!(field_of(check_urlencoded(b"k=%EF%BF%BF").unwrap_err()), "k");
        assert_eq!(
            field_of(check_urlencoded(b"x%00=1").unwrap_err()),
            "x\u{FFFD}"
        );
        assert!(check_urlencoded(b"q=%D8%B9%D8%B1%D8%A8%D9%8A&r=%ef%bc%a1").is_ok());
        assert!(!urlencoded_suspect(b"q=%D8%B9&page=2"));
    }
}
