//! The notification texts: `messages.toml` (compiled in), one subject and plain-text body per kind and
//! language, filled from the notice's values. A TOML catalogue rather than askama templates: the texts stay
//! readable side by side in both languages, and a test renders every kind in both.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::Deserialize;

const SOURCE: &str = include_str!("messages.toml");

/// The languages every kind is written in.
pub const LOCALES: &[&str] = &["ar", "en"];

#[derive(Debug, Deserialize)]
struct Text {
    subject: String,
    body: String,
}

#[derive(Debug, Deserialize)]
struct Catalogue {
    terms: HashMap<String, HashMap<String, String>>,
    #[serde(flatten)]
    kinds: HashMap<String, HashMap<String, Text>>,
}

static CATALOGUE: LazyLock<Result<Catalogue, String>> =
    LazyLock::new(|| toml::from_str(SOURCE).map_err(|e| format!("messages.toml: {e}")));

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Catalogue(String),
    #[error("no {locale} text for {kind}")]
    Missing { kind: String, locale: String },
    #[error("the {kind} text uses {{{name}}}, which the notice does not provide")]
    UnknownValue { kind: String, name: String },
}

/// Values whose content is a word of the catalogue's `[terms]` (comma-separated lists allowed), shown in the
/// email's language.
const TRANSLATED: &[&str] = &["plan_kind", "change", "resources", "keep_data"];

/// Renders `kind` in `locale` (falling back to English if a language is missing) with `values`.
pub fn render(
    kind: &str,
    locale: &str,
    values: &BTreeMap<String, String>,
) -> Result<Rendered, TemplateError> {
    let catalogue = CATALOGUE
        .as_ref()
        .map_err(|e| TemplateError::Catalogue(e.clone()))?;
    let texts = catalogue
        .kinds
        .get(kind)
        .ok_or_else(|| TemplateError::Missing {
            kind: kind.into(),
            locale: locale.into(),
        })?;
    let (locale, text) = match texts.get(locale) {
        Some(text) => (locale, text),
        None => (
            "en",
            texts.get("en").ok_or_else(|| TemplateError::Missing {
                kind: kind.into(),
                locale: locale.into(),
            })?,
        ),
    };
    let terms = catalogue.terms.get(locale);
    let value = |name: &str| -> Result<String, TemplateError> {
        let raw = values
            .get(name)
            .ok_or_else(|| TemplateError::UnknownValue {
                kind: kind.into(),
                name: name.into(),
            })?;
        if !TRANSLATED.contains(&name) {
            return Ok(raw.clone());
        }
        let separator = if locale == "ar" { "، " } else { ", " };
        Ok(raw
            .split(',')
            .map(|word| {
                let word = word.trim();
                terms.and_then(|t| t.get(word)).map_or(word, String::as_str)
            })
            .collect::<Vec<_>>()
            .join(separator))
    };
    let subject = fill(&text.subject, &value)?.0;
    let mut body = String::new();
    for line in text.body.trim_matches('\n').lines() {
        let (filled, all_empty) = fill(line, &value)?;
        if !all_empty {
            body.push_str(&filled);
            body.push('\n');
        }
    }
    Ok(Rendered {
        subject: subject.replace(['\r', '\n'], " "),
        body,
    })
}

/// Replaces each `{name}` in `text`; also says whether the line had placeholders that were all empty.
fn fill(
    text: &str,
    value: &impl Fn(&str) -> Result<String, TemplateError>,
) -> Result<(String, bool), TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let (mut placeholders, mut empty) = (0, 0);
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let filled = value(&after[..close])?;
        placeholders += 1;
        if filled.is_empty() {
            empty += 1;
        }
        out.push_str(&filled);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok((out, placeholders > 0 && placeholders == empty))
}

/// Every kind of the catalogue (tests compare it with `Notice::KINDS`).
pub fn kinds() -> Vec<String> {
    let mut kinds: Vec<String> = CATALOGUE
        .as_ref()
        .map(|c| c.kinds.keys().cloned().collect())
        .unwrap_or_default();
    kinds.sort();
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notice::Notice;
    use crate::notify::values::{Context, values};
    use crate::tenancy::{MerchantId, TenantId};

    fn samples() -> Vec<Notice> {
        let tenant = TenantId::new();
        let now = time::OffsetDateTime::now_utc();
        vec![
            Notice::TenantReady { tenant_id: tenant },
            Notice::StoreNeedsReinstall {
                tenant_id: tenant,
                merchant_id: MerchantId::new(42),
            },
            Notice::SyncFailing {
                tenant_id: tenant,
                resources: vec!["orders".into(), "customers".into()],
                failing_since: now,
            },
            Notice::PlanEnding {
                tenant_id: tenant,
                plan_kind: "trial".into(),
                change: "expired".into(),
                plan_name: None,
                ends_at: Some(now),
            },
            Notice::ProvisioningFailed {
                tenant_id: tenant,
                run_id: uuid::Uuid::new_v4(),
                error: "step seed: boom".into(),
            },
            Notice::DeletionFinished {
                tenant_id: tenant,
                keep_data: false,
                backup: None,
            },
            Notice::BackupFailed {
                set_id: "2026-12-06T00".into(),
                scope: "global".into(),
                tenant_id: None,
                error: "disk full".into(),
            },
            Notice::TenantMoveFailed {
                tenant_id: tenant,
                from_server: "main".into(),
                to_server: "second".into(),
                error: "row counts differ".into(),
            },
        ]
    }

    #[test]
    fn every_kind_renders_in_both_languages_with_what_its_notice_provides() {
        let mut expected: Vec<String> = Notice::KINDS.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(kinds(), expected, "catalogue kinds = notice kinds");
        let context = Context {
            tenant_name: Some("متجر الورد".into()),
            public_url: "https://wosool.example".into(),
            salla_app_url: String::new(),
        };
        for notice in samples() {
            let values = values(&notice, &context);
            for locale in LOCALES {
                let text = render(notice.kind(), locale, &values)
                    .unwrap_or_else(|e| panic!("{} {locale}: {e}", notice.kind()));
                assert!(!text.subject.is_empty() && !text.body.is_empty());
                assert!(!text.body.contains('{'), "{}: {}", notice.kind(), text.body);
            }
        }
    }

    #[test]
    fn lines_with_only_empty_values_are_left_out_and_terms_are_translated() {
        let mut values = BTreeMap::new();
        values.insert("tenant_name".to_string(), "Rose".to_string());
        values.insert("app_url".to_string(), String::new());
        let text = render("tenant_ready", "en", &values).unwrap();
        assert!(!text.body.contains("Open the app here"), "{}", text.body);
        values.insert("app_url".to_string(), "https://w.example/app".to_string());
        let text = render("tenant_ready", "en", &values).unwrap();
        assert!(
            text.body
                .contains("Open the app here: https://w.example/app")
        );

        let mut values = BTreeMap::new();
        for (k, v) in [
            ("tenant_name", "Rose"),
            ("plan_kind", "trial"),
            ("change", "expired"),
            ("plan_name", ""),
            ("ends_at", "2026-12-07"),
            ("reinstall_url", ""),
        ] {
            values.insert(k.to_string(), v.to_string());
        }
        let text = render("plan_ending", "ar", &values).unwrap();
        assert!(
            text.subject.contains("الفترة التجريبية"),
            "{}",
            text.subject
        );
        assert!(!text.body.contains("الباقة"), "{}", text.body);
    }

    #[test]
    fn an_unknown_value_is_an_error() {
        let error = render("tenant_ready", "en", &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(error, TemplateError::UnknownValue { .. }),
            "{error}"
        );
    }
}
