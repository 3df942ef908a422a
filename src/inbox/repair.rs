//! Making an authenticated delivery's JSON storable as `jsonb`, so no delivery is lost to it.
//!
//! `jsonb` refuses two things valid JSON text may hold: the `\u0000` escape (PostgreSQL text cannot hold
//! U+0000) and unpaired UTF-16 surrogate escapes (`\ud800` alone). Both are replaced by `\uFFFD` (U+FFFD,
//! the replacement character) in the copy that is stored for processing; the bytes as received are kept
//! beside it (`webhook_inbox.raw`, with `payload_repaired`), and the signature is always verified on those.
//!
//! The input is valid JSON, so every backslash starts an escape inside a string: scanning escape by escape
//! (skipping the escaped character) never mistakes the text `\\u0000` for a NUL.

use std::borrow::Cow;

const REPLACEMENT: &str = "\\uFFFD";

/// `json` with every `\u0000` and unpaired surrogate escape replaced by `\uFFFD`; borrowed (no copy) when there
/// was nothing to replace, which a single `memchr` pass decides for almost every delivery.
pub fn storable_json(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    let mut repaired: Option<String> = None;
    // Bytes up to `copied` are already in `repaired` (when it exists).
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[at..]) {
        let escape = at + found;
        if bytes.get(escape + 1) != Some(&b'u') {
            at = escape + 2;
            continue;
        }
        let Some(unit) = hex_unit(bytes, escape + 2) else {
            at = escape + 2;
            continue;
        };
        let mut end = escape + 6;
        let replace = match unit {
            0 => true,
            // A high surrogate must be followed by a low one: the pair stands, else the high one is replaced.
            0xD800..=0xDBFF => {
                let paired = bytes.get(end..end + 2) == Some(b"\\u")
                    && hex_unit(bytes, end + 2).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                if paired {
                    end += 6;
                }
                !paired
            }
            // A low surrogate not consumed as the second half of a pair above.
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if replace {
            let out = repaired.get_or_insert_with(|| String::with_capacity(json.len()));
            out.push_str(&json[copied..escape]);
            out.push_str(REPLACEMENT);
            copied = end;
        }
        at = end;
    }
    match repaired {
        None => Cow::Borrowed(json),
        Some(mut out) => {
            out.push_str(&json[copied..]);
            Cow::Owned(out)
        }
    }
}

/// The UTF-16 unit of the 4 hex digits at `at`.
fn hex_unit(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// Text fit for a `text` column (the inspection copy of a rejected body): U+0000 replaced by U+FFFD.
pub fn storable_text(text: &str) -> Cow<'_, str> {
    if memchr::memchr(0, text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace('\0', "\u{FFFD}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(json: &str) -> String {
        storable_json(json).into_owned()
    }

    #[test]
    fn nothing_to_repair_is_not_copied() {
        for json in [
            r#"{"a":"\u0627\u0644","b":"\n\"\\","c":"\ud83c\udf89"}"#,
            r#"{"text":"\\u0000 is how you write NUL"}"#,
            r#"{}"#,
        ] {
            assert!(matches!(storable_json(json), Cow::Borrowed(_)), "{json}");
        }
    }

    #[test]
    fn nul_and_lone_surrogates_become_the_replacement_character() {
        assert_eq!(repaired(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\uFFFDy"}"#);
        assert_eq!(repaired(r#"["\u0000\u0000"]"#), r#"["\uFFFD\uFFFD"]"#);
        assert_eq!(repaired(r#"["\ud800"]"#), r#"["\uFFFD"]"#);
        assert_eq!(repaired(r#"["\udc00x"]"#), r#"["\uFFFDx"]"#);
        assert_eq!(
            repaired(r#"["\ud800\ud800\udc00"]"#),
            r#"["\uFFFD\ud800\udc00"]"#
        );
        assert_eq!(repaired(r#"["\ud800\n"]"#), r#"["\uFFFD\n"]"#);
        assert_eq!(
            repaired(r#"{"k\u0000":"\\\u0000"}"#),
            r#"{"k\uFFFD":"\\\uFFFD"}"#
        );
    }

    #[test]
    fn the_repaired_text_is_valid_json_with_the_same_shape() {
        let json = r#"{"a":"x\u0000","b":["\udfff",1,{"c":"\ud83c\udf89"}]}"#;
        let value: serde_json::Value = serde_json::from_str(&repaired(json)).expect("valid JSON");
        assert_eq!(value["a"], "x\u{FFFD}");
        assert_eq!(value["b"][0], "\u{FFFD}");
        assert_eq!(value["b"][2]["c"], "🎉");
    }

    #[test]
    fn text_loses_only_its_nuls() {
        assert_eq!(storable_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(storable_text("ab"), Cow::Borrowed(_)));
    }
}
