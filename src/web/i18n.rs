//! Arabic first, English second: one message catalogue (`messages.toml`, compiled in), every key in both
//! languages (a unit test fails otherwise), and the number, money and date formats of each.
//!
//! Formats: digits are Western Arabic (0-9) in both languages, as Salla's dashboard shows amounts; money is
//! the amount with two decimals and thousands separators, then the currency (`1,234.50 ر.س` in Arabic,
//! `SAR 1,234.50` in English); dates are Gregorian with the month's name (`2 ديسمبر 2026`, `2 Dec 2026`).

use std::collections::HashMap;
use std::sync::LazyLock;

use rust_decimal::Decimal;
use time::{Date, OffsetDateTime};

/// A language of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ar,
    En,
}

impl Lang {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().split(['-', '_']).next() {
            Some("ar") => Some(Self::Ar),
            Some("en") => Some(Self::En),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header, in the order given (weights are
    /// listed best first by browsers).
    pub fn from_accept_language(header: &str) -> Option<Self> {
        header
            .split(',')
            .filter_map(|part| part.split(';').next())
            .find_map(Self::parse)
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Ar => "ar",
            Self::En => "en",
        }
    }

    pub fn dir(self) -> &'static str {
        match self {
            Self::Ar => "rtl",
            Self::En => "ltr",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::Ar => Self::En,
            Self::En => Self::Ar,
        }
    }
}

const SOURCE: &str = include_str!("messages.toml");

#[derive(serde::Deserialize)]
struct Entry {
    ar: String,
    en: String,
}

static CATALOGUE: LazyLock<HashMap<String, Entry>> =
    LazyLock::new(|| toml::from_str(SOURCE).unwrap_or_default());

/// The message `key` in `lang`; `"…"` when missing (a test keeps that from shipping).
pub fn t(lang: Lang, key: &str) -> &'static str {
    let catalogue: &'static HashMap<String, Entry> = &CATALOGUE;
    match catalogue.get(key) {
        Some(entry) => match lang {
            Lang::Ar => &entry.ar,
            Lang::En => &entry.en,
        },
        None => {
            tracing::warn!(key, "message missing from the catalogue");
            "…"
        }
    }
}

/// `1234.5` → `1,234.50`.
pub fn amount(value: Decimal) -> String {
    let rounded = value.round_dp(2);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let text = format!("{:.2}", rounded.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    format!(
        "{}{}.{cents}",
        if negative { "-" } else { "" },
        group(whole)
    )
}

/// `12345` → `12,345`.
pub fn count(value: i64) -> String {
    let text = value.unsigned_abs().to_string();
    format!("{}{}", if value < 0 { "-" } else { "" }, group(&text))
}

fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount in `currency` (`SAR` when unknown).
pub fn money(lang: Lang, value: Decimal, currency: Option<&str>) -> String {
    let currency = currency.filter(|c| !c.is_empty()).unwrap_or("SAR");
    match (lang, currency) {
        (Lang::Ar, "SAR") => format!("{} ر.س", amount(value)),
        (Lang::Ar, other) => format!("{} {other}", amount(value)),
        (Lang::En, other) => format!("{other} {}", amount(value)),
    }
}

/// `0.4567` → `45.7%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

const MONTHS_AR: [&str; 12] = [
    "يناير",
    "فبراير",
    "مارس",
    "أبريل",
    "مايو",
    "يونيو",
    "يوليو",
    "أغسطس",
    "سبتمبر",
    "أكتوبر",
    "نوفمبر",
    "ديسمبر",
];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2 ديسمبر 2026` / `2 Dec 2026`.
pub fn date(lang: Lang, date: Date) -> String {
    let month = usize::from(u8::from(date.month())) - 1;
    let name = match lang {
        Lang::Ar => MONTHS_AR[month],
        Lang::En => MONTHS_EN[month],
    };
    format!("{} {name} {}", date.day(), date.year())
}

/// A date and time in the tenant's offset: `2 Dec 2026 14:05`.
pub fn datetime(lang: Lang, at: OffsetDateTime, offset: time::UtcOffset) -> String {
    let local = at.to_offset(offset);
    format!(
        "{} {:02}:{:02}",
        date(lang, local.date()),
        local.hour(),
        local.minute()
    )
}

/// A short day label for chart axes: `2/12` (day/month).
pub fn day_label(date: Date) -> String {
    format!("{}/{}", date.day(), u8::from(date.month()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_both_languages_and_the_catalogue_parses() {
        let parsed: HashMap<String, toml::Value> =
            toml::from_str(SOURCE).expect("messages.toml parses");
        assert_eq!(
            parsed.len(),
            CATALOGUE.len(),
            "every entry has exactly ar and en"
        );
        for (key, entry) in CATALOGUE.iter() {
            assert!(!entry.ar.trim().is_empty(), "{key}: no Arabic");
            assert!(!entry.en.trim().is_empty(), "{key}: no English");
        }
    }

    #[test]
    fn every_key_the_code_and_templates_use_exists() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut sources = Vec::new();
        for dir in [
            "templates",
            "templates/screens",
            "templates/parts",
            "src/web",
        ] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() && path.extension().is_some_and(|e| e == "rs" || e == "html") {
                    sources.push((
                        path.display().to_string(),
                        std::fs::read_to_string(&path).unwrap(),
                    ));
                }
            }
        }
        for (path, text) in sources {
            for marker in [".t(\""] {
                for piece in text.split(marker).skip(1) {
                    let key = piece.split('"').next().unwrap();
                    assert!(
                        CATALOGUE.contains_key(key),
                        "{path}: unknown message {key:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn formats() {
        assert_eq!(amount(Decimal::new(123450, 2)), "1,234.50");
        assert_eq!(amount(Decimal::new(5, 0)), "5.00");
        assert_eq!(amount(Decimal::new(-100000050, 2)), "-1,000,000.50");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(
            money(Lang::Ar, Decimal::new(175, 0), Some("SAR")),
            "175.00 ر.س"
        );
        assert_eq!(money(Lang::En, Decimal::new(175, 0), None), "SAR 175.00");
        let d = Date::from_calendar_date(2026, time::Month::December, 2).unwrap();
        assert_eq!(date(Lang::Ar, d), "2 ديسمبر 2026");
        assert_eq!(date(Lang::En, d), "2 Dec 2026");
        assert_eq!(
            Lang::from_accept_language("fr-FR,en-US;q=0.8,ar;q=0.5"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("ar-SA"), Some(Lang::Ar));
        assert_eq!(Lang::from_accept_language("fr"), None);
    }
}
