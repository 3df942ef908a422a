//! Salla's timestamps and dates in every shape they arrive in (Carbon objects, local text in Asia/Riyadh,
//! ISO-8601, the JavaScript form, unix seconds), and the UTC offsets of their zones.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

// ---------------------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------------------

/// Arabia Standard Time, Salla's own zone (Asia/Riyadh, no daylight saving).
pub const RIYADH: UtcOffset = match UtcOffset::from_hms(3, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// A Salla timestamp in any of its shapes: a PHP Carbon object
/// `{date: "2022-06-26 12:21:45.000000", timezone_type: 3, timezone: "Asia/Riyadh"}`, a local
/// `"2023-04-17 12:14:21"` (Asia/Riyadh), a date `"2023-07-27"` (midnight, Asia/Riyadh), ISO-8601
/// (`"2021-10-09T21:00:00.000000Z"`), the JavaScript form `"Sun Jun 26 2022 12:21:48 GMT+0300"`, or unix
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SallaTime(pub OffsetDateTime);

impl SallaTime {
    /// Reads any shape listed on [`SallaTime`]; `None` for anything else.
    pub fn from_json(value: &Value) -> Option<OffsetDateTime> {
        match value {
            Value::String(text) => SallaTime::parse(text),
            Value::Object(carbon) => {
                let date = carbon.get("date")?.as_str()?;
                let zone = carbon
                    .get("timezone")
                    .and_then(Value::as_str)
                    .map_or(RIYADH, zone_offset);
                parse_time_in(date, zone)
            }
            Value::Number(number) => OffsetDateTime::from_unix_timestamp(number.as_i64()?).ok(),
            _ => None,
        }
    }

    /// Parses text; times without an offset are Asia/Riyadh time.
    pub fn parse(text: &str) -> Option<OffsetDateTime> {
        parse_time_in(text, RIYADH)
    }
}

impl<'de> Deserialize<'de> for SallaTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        SallaTime::from_json(&value)
            .map(SallaTime)
            .ok_or_else(|| serde::de::Error::custom("expected a Salla date"))
    }
}

/// The UTC offset of a Carbon `timezone` (an IANA name, an abbreviation or an offset such as `+03:00`).
///
/// There is no time-zone database here, and none is needed: Salla is a Saudi platform whose Carbon dates are
/// Asia/Riyadh (UTC+3, no daylight saving) in every payload seen. UTC and explicit offsets are exact, the Gulf
/// zones are fixed offsets, and any other name falls back to UTC+3: it is most likely a Saudi store's zone, and
/// a timestamp a few hours off is more useful than a dropped one (the original text stays in `raw`).
pub fn zone_offset(zone: &str) -> UtcOffset {
    let zone = zone.trim();
    if let Some(offset) = parse_offset(zone) {
        return offset;
    }
    let lower = zone.to_ascii_lowercase();
    // POSIX-style Etc/GMT±N zones have inverted signs: Etc/GMT-3 is UTC+3.
    if let Some(hours) = lower
        .strip_prefix("etc/gmt")
        .and_then(|n| n.parse::<i8>().ok())
    {
        return hours
            .checked_neg()
            .and_then(|hours| UtcOffset::from_hms(hours, 0, 0).ok())
            .unwrap_or(RIYADH);
    }
    match lower.as_str() {
        "utc" | "etc/utc" | "etc/universal" | "universal" | "etc/zulu" | "zulu" | "uct"
        | "etc/uct" | "gmt" | "etc/gmt" | "gmt0" | "greenwich" => UtcOffset::UTC,
        "asia/dubai" | "asia/muscat" | "gst" => UtcOffset::from_hms(4, 0, 0).unwrap_or(RIYADH),
        "asia/tehran" | "irst" => UtcOffset::from_hms(3, 30, 0).unwrap_or(RIYADH),
        // Listed for the reader: these are UTC+3 all year, like the fallback.
        "asia/riyadh" | "asia/kuwait" | "asia/bahrain" | "asia/qatar" | "asia/aden"
        | "asia/baghdad" | "ast" => RIYADH,
        _ => RIYADH,
    }
}

/// `Z`, `UTC`, `GMT`, `+03:00`, `+0300`, `+03`, `GMT+0300`, `UTC+3`.
fn parse_offset(text: &str) -> Option<UtcOffset> {
    let upper = text.trim().to_ascii_uppercase();
    if matches!(upper.as_str(), "Z" | "UTC" | "GMT") {
        return Some(UtcOffset::UTC);
    }
    let rest = upper
        .strip_prefix("GMT")
        .or_else(|| upper.strip_prefix("UTC"))
        .unwrap_or(&upper);
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1i8, &rest[1..]),
        b'-' => (-1i8, &rest[1..]),
        _ => return None,
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() > 2 => digits.split_at(digits.len() - 2),
        None => (digits, "0"),
    };
    if hours.is_empty()
        || !hours
            .bytes()
            .chain(minutes.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

fn parse_time_in(text: &str, zone: UtcOffset) -> Option<OffsetDateTime> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(time);
    }
    parse_iso_like(text, zone).or_else(|| parse_js_date(text))
}

/// `YYYY-MM-DD`, optionally followed by ` `/`T` `HH:MM[:SS[.fraction]]` and an offset.
fn parse_iso_like(text: &str, zone: UtcOffset) -> Option<OffsetDateTime> {
    let date = parse_ymd(text.get(..10)?)?;
    let rest = text.get(10..)?;
    if rest.is_empty() {
        return Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(zone));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hour, rest) = two_digits(rest)?;
    let (minute, rest) = two_digits(rest.strip_prefix(':')?)?;
    let (second, rest) = match rest.strip_prefix(':') {
        Some(rest) => two_digits(rest)?,
        None => (0, rest),
    };
    let (nanos, rest) = match rest.strip_prefix(['.', ',']) {
        Some(rest) => fraction(rest)?,
        None => (0, rest),
    };
    let rest = rest.trim();
    let offset = if rest.is_empty() {
        zone
    } else {
        parse_offset(rest)?
    };
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// `Sun Jun 26 2022 12:21:48 GMT+0300 (Arabian Standard Time)`: the store events' envelope `created_at`.
fn parse_js_date(text: &str) -> Option<OffsetDateTime> {
    let mut parts = text.split_whitespace();
    let first = parts.next()?;
    let month = match month_from_name(first) {
        Some(month) => month,
        None => month_from_name(parts.next()?)?,
    };
    let day: u8 = parts.next()?.parse().ok()?;
    let year: i32 = parts.next()?.parse().ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = match parts.next() {
        Some(clock) => {
            let mut fields = clock.split(':').map(|n| n.parse::<u8>().ok());
            let hour = fields.next().flatten()?;
            let minute = fields.next().flatten()?;
            let second = fields.next().flatten().unwrap_or(0);
            Time::from_hms(hour, minute, second).ok()?
        }
        None => Time::MIDNIGHT,
    };
    let offset = match parts.next() {
        Some(zone) => parse_offset(zone)?,
        None => RIYADH,
    };
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

fn month_from_name(name: &str) -> Option<Month> {
    let prefix = name.get(..3)?.to_ascii_lowercase();
    Some(match prefix.as_str() {
        "jan" => Month::January,
        "feb" => Month::February,
        "mar" => Month::March,
        "apr" => Month::April,
        "may" => Month::May,
        "jun" => Month::June,
        "jul" => Month::July,
        "aug" => Month::August,
        "sep" => Month::September,
        "oct" => Month::October,
        "nov" => Month::November,
        "dec" => Month::December,
        _ => return None,
    })
}

fn parse_ymd(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i32 = digits_only(&text[..4])?.parse().ok()?;
    let month: u8 = digits_only(&text[5..7])?.parse().ok()?;
    let day: u8 = digits_only(&text[8..10])?.parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn digits_only(text: &str) -> Option<&str> {
    text.bytes().all(|b| b.is_ascii_digit()).then_some(text)
}

fn two_digits(text: &str) -> Option<(u8, &str)> {
    let head = digits_only(text.get(..2)?)?;
    Some((head.parse().ok()?, &text[2..]))
}

/// Fraction digits as nanoseconds (digits past the ninth are dropped).
fn fraction(text: &str) -> Option<(u32, &str)> {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let mut nanos = 0u32;
    for (i, digit) in text
        .bytes()
        .take(9)
        .take_while(u8::is_ascii_digit)
        .enumerate()
    {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    Some((nanos, &text[len..]))
}

/// A calendar date (birthday, sale end): the date part of a Carbon object or string, without converting
/// zones (a birthday at midnight Riyadh is the same day everywhere).
pub fn date_of(value: &Value) -> Option<Date> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Object(carbon) => carbon.get("date")?.as_str()?,
        _ => return None,
    };
    let text = text.trim();
    text.get(..10)
        .and_then(parse_ymd)
        .or_else(|| SallaTime::parse(text).map(OffsetDateTime::date))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{datetime, offset};

    use super::*;

    #[test]
    fn salla_times_in_every_shape() {
        let carbon = json!({"date": "2022-06-26 12:21:45.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"});
        let riyadh = datetime!(2022-06-26 12:21:45 +03:00);
        assert_eq!(SallaTime::from_json(&carbon), Some(riyadh));
        for (text, expected) in [
            ("2022-06-26 12:21:45", riyadh),
            ("2022-06-26T09:21:45Z", riyadh),
            ("2022-06-26T09:21:45.000000Z", riyadh),
            ("2022-06-26T12:21:45+03:00", riyadh),
            (
                "2022-06-26 12:21:45.5 +0300",
                datetime!(2022-06-26 12:21:45.5 +03:00),
            ),
            ("Sun Jun 26 2022 12:21:45 GMT+0300", riyadh),
            (
                "Sun Jun 26 2022 12:21:45 GMT+0300 (Arabian Standard Time)",
                riyadh,
            ),
            ("2023-07-27", datetime!(2023-07-27 00:00 +03:00)),
            ("2023-04-17 12:14", datetime!(2023-04-17 12:14 +03:00)),
        ] {
            assert_eq!(SallaTime::parse(text), Some(expected), "{text}");
        }
        for text in [
            "",
            "yesterday",
            "2022-13-01",
            "2022-06-26 25:00:00",
            "2022-06-26X12:00",
            "Sun Foo 26 2022",
        ] {
            assert_eq!(SallaTime::parse(text), None, "{text}");
        }
        let zoned = |zone: &str| {
            SallaTime::from_json(&json!({"date": "2022-06-26 12:00:00.000000", "timezone_type": 3, "timezone": zone}))
                .map(|t| t.offset())
        };
        assert_eq!(zoned("UTC"), Some(UtcOffset::UTC));
        assert_eq!(zoned("+05:30"), Some(offset!(+05:30)));
        assert_eq!(zoned("Asia/Dubai"), Some(offset!(+04:00)));
        assert_eq!(zoned("Asia/Kuwait"), Some(offset!(+03:00)));
        assert_eq!(zoned("Etc/GMT-4"), Some(offset!(+04:00)));
        assert_eq!(
            zoned("Mars/Olympus"),
            Some(offset!(+03:00)),
            "unknown zones are Riyadh"
        );
        assert_eq!(
            SallaTime::from_json(&json!(1634819484)).map(OffsetDateTime::unix_timestamp),
            Some(1634819484)
        );
        let parsed: SallaTime = serde_json::from_value(carbon).unwrap();
        assert_eq!(parsed.0, riyadh);
    }
}
