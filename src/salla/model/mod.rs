//! Salla's commerce objects (customers, products, orders, abandoned carts) and the values inside them (money,
//! dates, ids), read from webhook `data` and Merchant API list/detail items alike, which share these shapes
//! (shared/reference/salla.md §2.4, §2.5).
//!
//! Salla's shapes drift: numbers arrive as strings, `{amount, currency}` objects as bare numbers, and `{}`,
//! `[]`, `""` or the string `"null"` stand for nothing. So parsing requires only what identifies an object (its
//! id); any other field of an unexpected shape reads as absent instead of failing the whole payload (one odd
//! field must not stall a store's sync), and every object keeps its original JSON in `raw`, so nothing is lost.
//! Parsing is pure and never panics.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a JSON value is not the object it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("missing or invalid `{0}`")]
    Field(&'static str),
}

// ---------------------------------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------------------------------

/// An exact decimal amount. Salla sends money as JSON numbers (`150`, `175.47`) or numeric strings
/// (`"20.00"`); both are read from their decimal text, never through `f64` arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Money(pub Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Parses numeric text (`"20.00"`, `"-3.5"`, `"1e3"`); `None` for `""`, `"null"` and anything else.
    pub fn parse(text: &str) -> Option<Money> {
        let text = text.trim();
        // Decimal::from_str also accepts `_` separators; Salla never sends them, so such text is not money.
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        {
            return None;
        }
        Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .ok()
            .map(Money)
    }

    /// Reads a JSON number (through its text: serde_json keeps the shortest text that round-trips, so
    /// `175.47` stays `175.47`) or a numeric string; `None` for anything else, including `null` and `"null"`.
    pub fn from_json(value: &Value) -> Option<Money> {
        match value {
            Value::Number(number) => Money::parse(&number.to_string()),
            Value::String(text) => Money::parse(text),
            _ => None,
        }
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Money::from_json(&value)
            .ok_or_else(|| serde::de::Error::custom("expected a number or a numeric string"))
    }
}

/// An amount with its currency: Salla's `{amount, currency}`, or a bare number/numeric string where Salla
/// drops the object (coupon amounts, purchased-cart totals, `product.price.updated`'s `price`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Amount {
    pub amount: Money,
    pub currency: Option<String>,
}

impl Amount {
    /// `{amount, currency}`, `{amount: {amount, currency}}` (order tax) or a bare amount; `None` for `{}`,
    /// `null` and non-numeric amounts.
    pub fn from_json(value: &Value) -> Option<Amount> {
        match value {
            Value::Object(map) => {
                let amount = map.get("amount")?;
                if amount.is_object() {
                    return Amount::from_json(amount);
                }
                Some(Amount {
                    amount: Money::from_json(amount)?,
                    currency: map.get("currency").and_then(text_of),
                })
            }
            bare => Some(Amount {
                amount: Money::from_json(bare)?,
                currency: None,
            }),
        }
    }

    /// `None` for a zero amount: Salla sends `{amount: 0}` for "no sale price".
    pub fn nonzero(self) -> Option<Amount> {
        (!self.amount.is_zero()).then_some(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Amount::from_json(&value).ok_or_else(|| {
            serde::de::Error::custom("expected {amount, currency} or a numeric amount")
        })
    }
}

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

// ---------------------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------------------

/// A Salla id: a non-negative integer as a JSON number or a digit string (ids exceed `i32`; `i64` is what
/// the database stores).
pub fn id_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|id| i64::try_from(id).ok()),
        Value::String(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|id| i64::try_from(id).ok()),
        _ => None,
    }
}

/// Non-empty text; numbers read as their text (Salla sends e.g. `reference_id` as a number).
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => {
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        }
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// An integer from a number or numeric string (`quantity: "50"`); fractional values are not integers.
pub fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            let decimal = Money::from_json(value)?.0;
            decimal
                .fract()
                .is_zero()
                .then(|| i64::try_from(decimal).ok())
                .flatten()
        }),
        Value::String(text) => {
            let decimal = Money::parse(text)?.0;
            decimal
                .fract()
                .is_zero()
                .then(|| i64::try_from(decimal).ok())
                .flatten()
        }
        _ => None,
    }
}

/// A boolean from `true`/`false`, `1`/`0` or their strings.
pub fn flag_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Text where Salla's `"null"` string also means nothing (`location`).
fn text_not_null(value: &Value) -> Option<String> {
    text_of(value).filter(|text| !text.eq_ignore_ascii_case("null"))
}

/// An international mobile number, `+<code><number>`, from Salla's separate `mobile` (a number or string,
/// usually without the country code) and `mobile_code` (`"966"` or `"+966"`).
///
/// A number that already starts with `+` or `00` is international as it is. A national trunk `0` is dropped
/// (`0501806978` with code 966 is `+966501806978`). A number that already begins with the code and is long
/// enough to hold it (11+ digits, longer than any national number) is not prefixed twice. Without a code the
/// digits are returned as they are: guessing a country would be worse.
pub fn international_mobile(mobile: &Value, code: Option<&Value>) -> Option<String> {
    let text = match mobile {
        Value::Number(number) => number.as_u64()?.to_string(),
        Value::String(text) => text.trim().to_owned(),
        _ => return None,
    };
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    if text.starts_with('+') {
        return Some(format!("+{digits}"));
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return Some(format!("+{rest}"));
    }
    let code = code.and_then(mobile_code_of);
    let Some(code) = code else {
        return Some(digits);
    };
    let code_digits = &code[1..];
    let national = digits.trim_start_matches('0');
    if national.starts_with(code_digits) && national.len() >= 11 {
        return Some(format!("+{national}"));
    }
    Some(format!("+{code_digits}{national}"))
}

/// The calling code as `+966`, from `"966"`, `"+966"` or `966`.
pub fn mobile_code_of(value: &Value) -> Option<String> {
    let digits: String = text_of(value)?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("+{digits}"))
}

/// Read access to one JSON object's fields in Salla's loose shapes; `null` fields read as absent.
#[derive(Clone, Copy)]
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Result<Self, ModelError> {
        value.as_object().map(Fields).ok_or(ModelError::NotAnObject)
    }

    fn get(self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|value| !value.is_null())
    }

    fn id(self, key: &'static str) -> Result<i64, ModelError> {
        self.get(key).and_then(id_of).ok_or(ModelError::Field(key))
    }

    fn opt_id(self, key: &str) -> Option<i64> {
        self.get(key).and_then(id_of)
    }

    fn text(self, key: &str) -> Option<String> {
        self.get(key).and_then(text_of)
    }

    fn int(self, key: &str) -> Option<i64> {
        self.get(key).and_then(int_of)
    }

    fn flag(self, key: &str) -> Option<bool> {
        self.get(key).and_then(flag_of)
    }

    fn money(self, key: &str) -> Option<Money> {
        self.get(key).and_then(Money::from_json)
    }

    fn amount(self, key: &str) -> Option<Amount> {
        self.get(key).and_then(Amount::from_json)
    }

    fn time(self, key: &str) -> Option<OffsetDateTime> {
        self.get(key).and_then(SallaTime::from_json)
    }

    fn date(self, key: &str) -> Option<Date> {
        self.get(key).and_then(date_of)
    }

    fn object(self, key: &str) -> Option<Fields<'a>> {
        self.get(key).and_then(Value::as_object).map(Fields)
    }

    fn array(self, key: &str) -> Option<&'a Vec<Value>> {
        self.get(key).and_then(Value::as_array)
    }

    /// A non-empty object or array kept as JSON (`brand`); `{}`/`[]` read as absent.
    fn json(self, key: &str) -> Option<Value> {
        self.get(key)
            .filter(|value| match value {
                Value::Object(map) => !map.is_empty(),
                Value::Array(items) => !items.is_empty(),
                _ => true,
            })
            .cloned()
    }

    /// An array of JSON values; absent or of another shape reads as empty.
    fn list(self, key: &str) -> Vec<Value> {
        self.array(key).cloned().unwrap_or_default()
    }

    /// An array of strings (scopes, channels); other elements are skipped.
    fn strings(self, key: &str) -> Vec<String> {
        self.array(key)
            .map(|items| items.iter().filter_map(text_of).collect())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Customer
// ---------------------------------------------------------------------------------------------------------

/// A store customer: `GET /customers` items (also in extra-fields mode), `customer.*` webhooks, and the
/// customer inside orders and carts (there only `{id, name, mobile: "+966…", email, …}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `full_name` (extra-fields mode) or `name` (orders and carts).
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// International form `+<code><number>` (see [`international_mobile`]).
    pub mobile: Option<String>,
    /// `+966`.
    pub mobile_code: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<Date>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub currency: Option<String>,
    /// Free-text address; Salla's `"null"` reads as `None`.
    pub location: Option<String>,
    pub avatar: Option<String>,
    /// Ids of the customer's groups.
    pub groups: Vec<i64>,
    pub is_notifications_enabled: Option<bool>,
    pub lang: Option<String>,
    pub is_blocked: Option<bool>,
    pub block_reason: Option<String>,
    pub is_inactive: Option<bool>,
    pub created_at: Option<OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

impl Customer {
    /// Reads a customer object; only `id` is required.
    pub fn from_value(raw: Value) -> Result<Customer, ModelError> {
        let f = Fields::of(&raw)?;
        let customer = Customer {
            id: f.id("id")?,
            first_name: f.text("first_name"),
            last_name: f.text("last_name"),
            full_name: f.text("full_name").or_else(|| f.text("name")),
            email: f.text("email"),
            mobile: f
                .get("mobile")
                .and_then(|mobile| international_mobile(mobile, f.get("mobile_code"))),
            mobile_code: f.get("mobile_code").and_then(mobile_code_of),
            gender: f.text("gender"),
            birthday: f.date("birthday"),
            city: f.text("city"),
            country: f.text("country"),
            country_code: f.text("country_code"),
            currency: f.text("currency"),
            location: f.get("location").and_then(text_not_null),
            avatar: f.text("avatar"),
            groups: f
                .array("groups")
                .map(|groups| {
                    groups
                        .iter()
                        .filter_map(|group| {
                            id_of(group).or_else(|| group.get("id").and_then(id_of))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            is_notifications_enabled: f.flag("is_notifications_enabled"),
            lang: f.text("lang"),
            is_blocked: f.flag("is_blocked"),
            block_reason: f.text("block_reason"),
            is_inactive: f.flag("is_inactive"),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Customer { raw, ..customer })
    }

    /// The name to show: `full_name`/`name`, else first and last name.
    pub fn display_name(&self) -> Option<String> {
        if let Some(name) = &self.full_name {
            return Some(name.clone());
        }
        let joined = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Product
// ---------------------------------------------------------------------------------------------------------

/// A product: `GET /products` items, product details, `product.created`/`product.updated` webhooks. Granular
/// `product.*.updated` events parse into the same type with only the fields they carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub name: Option<String>,
    /// `None` for Salla's `""` (no SKU).
    pub sku: Option<String>,
    pub mpn: Option<String>,
    pub gtin: Option<String>,
    /// Salla's `type`: product, service, group_products, codes, digital, food, donating, booking, …
    pub product_type: Option<String>,
    /// sale, hidden, out.
    pub status: Option<String>,
    pub is_available: Option<bool>,
    pub price: Option<Amount>,
    /// `None` when there is no sale (Salla sends `{amount: 0}` or `{}`).
    pub sale_price: Option<Amount>,
    /// `sale_end`, or `sale_price.expired_at` in `product.price.updated`.
    pub sale_end: Option<Date>,
    pub regular_price: Option<Amount>,
    /// `cost_price` (`"35"`), or `cost` in `product.price.updated`.
    pub cost_price: Option<Amount>,
    pub taxed_price: Option<Amount>,
    /// `price.currency`, else `currency`.
    pub currency: Option<String>,
    pub quantity: Option<i64>,
    pub unlimited_quantity: Option<bool>,
    pub sold_quantity: Option<i64>,
    /// The storefront URL: `url`, else `urls.customer`.
    pub url: Option<String>,
    /// The main image URL (a string in the API, `{url, …}` in `product.image.updated`).
    pub main_image: Option<String>,
    pub categories: Vec<Value>,
    pub tags: Vec<Value>,
    pub brand: Option<Value>,
    pub channels: Vec<String>,
    pub skus: Vec<ProductSku>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

/// A product variant (`skus[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSku {
    pub id: Option<i64>,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: Option<Amount>,
    /// `None` for `{}`.
    pub sale_price: Option<Amount>,
    pub regular_price: Option<Amount>,
    pub cost_price: Option<Amount>,
    /// `stock_quantity` (`"10"`).
    pub stock_quantity: Option<i64>,
    pub unlimited_quantity: Option<bool>,
}

impl Product {
    /// Reads a product object; only `id` is required.
    pub fn from_value(raw: Value) -> Result<Product, ModelError> {
        let f = Fields::of(&raw)?;
        let price = f.amount("price");
        let sale = f.get("sale_price");
        let product = Product {
            id: f.id("id")?,
            name: f.text("name"),
            sku: f.text("sku"),
            mpn: f.text("mpn"),
            gtin: f.text("gtin"),
            product_type: f.text("type"),
            status: f.text("status"),
            is_available: f.flag("is_available"),
            currency: price
                .as_ref()
                .and_then(|price| price.currency.clone())
                .or_else(|| f.text("currency")),
            price,
            sale_price: sale.and_then(Amount::from_json).and_then(Amount::nonzero),
            sale_end: f.date("sale_end").or_else(|| {
                sale.and_then(|sale| sale.get("expired_at"))
                    .and_then(date_of)
            }),
            regular_price: f.amount("regular_price"),
            cost_price: f.amount("cost_price").or_else(|| f.amount("cost")),
            taxed_price: f.amount("taxed_price"),
            quantity: f.int("quantity"),
            unlimited_quantity: f.flag("unlimited_quantity"),
            sold_quantity: f.int("sold_quantity"),
            url: f
                .text("url")
                .or_else(|| f.object("urls").and_then(|urls| urls.text("customer"))),
            main_image: f
                .text("main_image")
                .or_else(|| f.object("main_image").and_then(|image| image.text("url"))),
            categories: f.list("categories"),
            tags: f.list("tags"),
            brand: f.json("brand"),
            channels: f.strings("channels"),
            skus: f
                .array("skus")
                .map(|skus| skus.iter().filter_map(ProductSku::from_json).collect())
                .unwrap_or_default(),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Product { raw, ..product })
    }

    /// Units in stock; `None` when unlimited (`unlimited_quantity: true`) or unknown.
    pub fn stock(&self) -> Option<i64> {
        if self.unlimited_quantity == Some(true) {
            return None;
        }
        self.quantity
    }
}

impl ProductSku {
    fn from_json(value: &Value) -> Option<ProductSku> {
        let f = Fields::of(value).ok()?;
        Some(ProductSku {
            id: f.opt_id("id"),
            sku: f.text("sku"),
            barcode: f.text("barcode"),
            price: f.amount("price"),
            sale_price: f.amount("sale_price").and_then(Amount::nonzero),
            regular_price: f.amount("regular_price"),
            cost_price: f.amount("cost_price"),
            stock_quantity: f.int("stock_quantity"),
            unlimited_quantity: f.flag("unlimited_quantity"),
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------------------------------------

/// An order: `GET /orders` items (thin: no `updated_at`, items without ids or amounts), order details, and the
/// order webhooks (`data`, or `data.order` in `order.status.updated`).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: i64,
    /// The order number shown to people (a number in Salla's JSON).
    pub reference_id: Option<String>,
    pub status: Option<OrderStatus>,
    pub customer: Option<Customer>,
    /// `amounts.total`, else the top-level `total` (List Orders).
    pub total: Option<Amount>,
    pub sub_total: Option<Amount>,
    pub shipping_cost: Option<Amount>,
    pub cash_on_delivery: Option<Amount>,
    /// `amounts.tax.amount`.
    pub tax: Option<Amount>,
    /// `amounts.tax.percent` (`"0.00"`).
    pub tax_percent: Option<Money>,
    /// `amounts.discounts[]`; `None` when the payload has no `amounts.discounts`.
    pub discounts: Option<Vec<OrderDiscount>>,
    /// `currency`, else the total's currency.
    pub currency: Option<String>,
    pub payment_method: Option<String>,
    pub source: Option<String>,
    pub source_device: Option<String>,
    /// `shipping.address.country`/`city`.
    pub shipping_country: Option<String>,
    pub shipping_city: Option<String>,
    /// Salla's order date (`date`).
    pub date: Option<OffsetDateTime>,
    /// `None` when the payload has no `items` (`format=light`).
    pub items: Option<Vec<OrderItem>>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

/// `status{id, name, slug, customized{id, name}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatus {
    pub id: Option<i64>,
    /// As shown to the merchant (Arabic by default).
    pub name: Option<String>,
    /// payment_pending, under_review, in_progress, completed, delivering, delivered, shipped, canceled,
    /// restored, restoring (custom statuses keep their original slug).
    pub slug: Option<String>,
    pub customized_id: Option<i64>,
    pub customized_name: Option<String>,
}

/// One `amounts.discounts[]` entry (`discount` is a string such as `"5.00"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDiscount {
    pub title: Option<String>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub amount: Option<Money>,
}

/// An order line. List Orders items are only `{name, quantity, thumbnail}`: no id, no amounts.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub id: Option<i64>,
    /// `product_id`, else `product.id`.
    pub product_id: Option<i64>,
    pub name: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<i64>,
    /// Unit price without tax (`amounts.price_without_tax`).
    pub price: Option<Amount>,
    pub discount: Option<Amount>,
    pub tax: Option<Amount>,
    pub total: Option<Amount>,
    pub currency: Option<String>,
    pub raw: Value,
}

impl Order {
    /// Reads an order object; only `id` is required.
    pub fn from_value(raw: Value) -> Result<Order, ModelError> {
        let f = Fields::of(&raw)?;
        let amounts = f.object("amounts");
        let tax = amounts.and_then(|a| a.get("tax"));
        let total = amounts
            .and_then(|a| a.amount("total"))
            .or_else(|| f.amount("total"));
        let address = f
            .object("shipping")
            .and_then(|shipping| shipping.object("address"));
        let order = Order {
            id: f.id("id")?,
            reference_id: f.text("reference_id"),
            status: f.get("status").and_then(OrderStatus::from_json),
            customer: f
                .get("customer")
                .and_then(|customer| Customer::from_value(customer.clone()).ok()),
            currency: f
                .text("currency")
                .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
            total,
            sub_total: amounts.and_then(|a| a.amount("sub_total")),
            shipping_cost: amounts.and_then(|a| a.amount("shipping_cost")),
            cash_on_delivery: amounts.and_then(|a| a.amount("cash_on_delivery")),
            tax: tax.and_then(Amount::from_json),
            tax_percent: tax
                .and_then(|tax| tax.get("percent"))
                .and_then(Money::from_json),
            discounts: amounts.and_then(|a| a.array("discounts")).map(|discounts| {
                discounts
                    .iter()
                    .filter_map(|discount| Fields::of(discount).ok())
                    .map(|d| OrderDiscount {
                        title: d.text("title"),
                        kind: d.text("type"),
                        code: d.text("code"),
                        amount: d.money("discount"),
                    })
                    .collect()
            }),
            payment_method: f.text("payment_method"),
            source: f.text("source"),
            source_device: f.text("source_device"),
            shipping_country: address
                .and_then(|a| a.text("country").or_else(|| a.text("country_code"))),
            shipping_city: address.and_then(|a| a.text("city")),
            date: f.time("date"),
            items: f
                .array("items")
                .map(|items| items.iter().filter_map(OrderItem::from_json).collect()),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Order { raw, ..order })
    }

    /// The sum of `amounts.discounts[].discount`; `None` when the payload has no discount list.
    pub fn discount_total(&self) -> Option<Money> {
        let discounts = self.discounts.as_ref()?;
        Some(Money(
            discounts
                .iter()
                .filter_map(|discount| discount.amount)
                .map(Money::decimal)
                .sum(),
        ))
    }

    /// Units ordered (the sum of item quantities); `None` when the payload has no items.
    pub fn items_count(&self) -> Option<i64> {
        let items = self.items.as_ref()?;
        Some(items.iter().filter_map(|item| item.quantity).sum())
    }

    /// The items when they are full lines (every one has an id: webhooks, order details), which replace the
    /// stored ones; `None` for List Orders' summaries or when there are no items.
    pub fn full_items(&self) -> Option<&[OrderItem]> {
        let items = self.items.as_deref()?;
        items.iter().all(|item| item.id.is_some()).then_some(items)
    }
}

impl OrderStatus {
    fn from_json(value: &Value) -> Option<OrderStatus> {
        match value {
            Value::Object(_) => {
                let f = Fields::of(value).ok()?;
                let customized = f.object("customized");
                Some(OrderStatus {
                    id: f.opt_id("id"),
                    name: f.text("name"),
                    slug: f.text("slug"),
                    customized_id: customized.and_then(|c| c.opt_id("id")),
                    customized_name: customized.and_then(|c| c.text("name")),
                })
            }
            // A bare status string: a slug when it looks like one (`completed`), else a display name.
            Value::String(_) => {
                let text = text_of(value)?;
                let is_slug = text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                Some(OrderStatus {
                    id: None,
                    name: (!is_slug).then(|| text.clone()),
                    slug: is_slug.then_some(text),
                    customized_id: None,
                    customized_name: None,
                })
            }
            _ => None,
        }
    }
}

impl OrderItem {
    fn from_json(value: &Value) -> Option<OrderItem> {
        let f = Fields::of(value).ok()?;
        let amounts = f.object("amounts");
        let total = amounts.and_then(|a| a.amount("total"));
        Some(OrderItem {
            id: f.opt_id("id"),
            product_id: f
                .opt_id("product_id")
                .or_else(|| f.object("product").and_then(|p| p.opt_id("id"))),
            name: f.text("name"),
            sku: f.text("sku"),
            quantity: f.int("quantity"),
            price: amounts.and_then(|a| a.amount("price_without_tax")),
            discount: amounts.and_then(|a| a.amount("total_discount")),
            tax: amounts.and_then(|a| a.amount("tax")),
            currency: f
                .text("currency")
                .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
            total,
            raw: value.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Abandoned cart
// ---------------------------------------------------------------------------------------------------------

/// An abandoned cart: `GET /carts/abandoned` items, `abandoned.cart`, `coupon.applied`'s `data.cart`, and the
/// legacy list shape `{id, subtotal: "15.00", currency: "SAR", total: "50.14", coupon_code, customer}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cart {
    pub id: i64,
    pub customer: Option<Customer>,
    pub total: Option<Amount>,
    pub subtotal: Option<Amount>,
    pub total_discount: Option<Amount>,
    /// `currency` (legacy), else the total's currency.
    pub currency: Option<String>,
    pub checkout_url: Option<String>,
    pub age_in_minutes: Option<i64>,
    pub coupon: Option<Coupon>,
    /// `coupon.code`, else `coupon_code` (legacy).
    pub coupon_code: Option<String>,
    /// e.g. `purchased` (cart details from 2.10.42).
    pub status: Option<String>,
    /// `None` when the payload has no items (legacy).
    pub items: Option<Vec<CartItem>>,
    pub created_at: Option<OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

/// The coupon on a cart; `amount` is a number in `abandoned.cart` and `{amount, currency}` elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Coupon {
    pub id: Option<i64>,
    pub code: Option<String>,
    pub status: Option<String>,
    /// percentage, fixed, …
    pub kind: Option<String>,
    pub amount: Option<Amount>,
    pub minimum_amount: Option<Amount>,
    pub expiry_date: Option<OffsetDateTime>,
    pub free_shipping: Option<bool>,
}

/// `items[{id, product_id, quantity}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartItem {
    pub id: Option<i64>,
    pub product_id: Option<i64>,
    pub quantity: Option<i64>,
}

impl Cart {
    /// Reads a cart object (current or legacy shape); only `id` is required.
    pub fn from_value(raw: Value) -> Result<Cart, ModelError> {
        let f = Fields::of(&raw)?;
        let total = f.amount("total");
        let coupon = f.get("coupon").and_then(Coupon::from_json);
        let cart = Cart {
            id: f.id("id")?,
            customer: f
                .get("customer")
                .and_then(|customer| Customer::from_value(customer.clone()).ok()),
            currency: f
                .text("currency")
                .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
            total,
            subtotal: f.amount("subtotal"),
            total_discount: f.amount("total_discount"),
            checkout_url: f.text("checkout_url"),
            age_in_minutes: f.int("age_in_minutes"),
            coupon_code: coupon
                .as_ref()
                .and_then(|coupon| coupon.code.clone())
                .or_else(|| f.text("coupon_code")),
            coupon,
            status: f.text("status"),
            items: f.array("items").map(|items| {
                items
                    .iter()
                    .filter_map(|item| Fields::of(item).ok())
                    .map(|item| CartItem {
                        id: item.opt_id("id"),
                        product_id: item.opt_id("product_id"),
                        quantity: item.int("quantity"),
                    })
                    .collect()
            }),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Cart { raw, ..cart })
    }

    /// Units in the cart (the sum of item quantities); `None` when the payload has no items.
    pub fn items_count(&self) -> Option<i64> {
        let items = self.items.as_ref()?;
        Some(items.iter().filter_map(|item| item.quantity).sum())
    }
}

impl Coupon {
    fn from_json(value: &Value) -> Option<Coupon> {
        let f = Fields::of(value).ok()?;
        Some(Coupon {
            id: f.opt_id("id"),
            code: f.text("code"),
            status: f.text("status"),
            kind: f.text("type"),
            amount: f.amount("amount"),
            minimum_amount: f.amount("minimum_amount"),
            expiry_date: f.time("expiry_date"),
            free_shipping: f.flag("free_shipping"),
        })
    }
}

/// Parses every element of a Merchant API list's `data` with `parse`, keeping the ones that parse and the
/// errors of the others (with their index), so one odd item does not lose a page.
pub fn parse_items<T>(
    items: &[Value],
    parse: impl Fn(Value) -> Result<T, ModelError>,
) -> (Vec<T>, Vec<(usize, ModelError)>) {
    let mut parsed = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse(item.clone()) {
            Ok(value) => parsed.push(value),
            Err(error) => errors.push((index, error)),
        }
    }
    (parsed, errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime, offset};

    use super::*;

    fn fixture_data(name: &str) -> Value {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/salla")
            .join(name);
        let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        body["data"].clone()
    }

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn amount_of(amount: &Option<Amount>) -> Option<Money> {
        amount.as_ref().map(|a| a.amount)
    }

    #[test]
    fn money_reads_numbers_and_numeric_strings_exactly() {
        for (json, text) in [
            (json!(150), "150"),
            (json!(175.47), "175.47"),
            (json!("20.00"), "20.00"),
            (json!(" 35 "), "35"),
            (json!(0.1), "0.1"),
            (json!(34.99), "34.99"),
            (json!(-3.5), "-3.5"),
            (json!(1e20), "100000000000000000000"),
            (json!("1.5e-3"), "0.0015"),
        ] {
            assert_eq!(Money::from_json(&json), Some(money(text)), "{json}");
            assert_eq!(Money::from_json(&json).unwrap().to_string(), text, "{json}");
        }
        for json in [
            json!("null"),
            json!(""),
            json!(null),
            json!("abc"),
            json!("1_000"),
            json!({}),
            json!([1]),
            json!(true),
            json!(1e300),
        ] {
            assert_eq!(Money::from_json(&json), None, "{json}");
        }
        let parsed: Vec<Money> = serde_json::from_str(r#"[150, "20.00", 175.47]"#).unwrap();
        assert_eq!(parsed, [money("150"), money("20.00"), money("175.47")]);
        assert!(serde_json::from_str::<Money>(r#""null""#).is_err());
        assert_eq!(serde_json::from_str::<Option<Money>>("null").unwrap(), None);
        assert_eq!(
            serde_json::to_string(&money("20.00")).unwrap(),
            r#""20.00""#
        );
    }

    #[test]
    fn amounts_are_objects_or_bare_numbers() {
        let sar = |text: &str| {
            Some(Amount {
                amount: money(text),
                currency: Some("SAR".into()),
            })
        };
        let bare = |text: &str| {
            Some(Amount {
                amount: money(text),
                currency: None,
            })
        };
        assert_eq!(
            Amount::from_json(&json!({"amount": 186, "currency": "SAR"})),
            sar("186")
        );
        assert_eq!(
            Amount::from_json(&json!({"amount": "5.00", "currency": "SAR"})),
            sar("5.00")
        );
        assert_eq!(
            Amount::from_json(
                &json!({"percent": "15.00", "amount": {"amount": 27.9, "currency": "SAR"}})
            ),
            sar("27.9")
        );
        assert_eq!(Amount::from_json(&json!(150)), bare("150"));
        assert_eq!(Amount::from_json(&json!("50.14")), bare("50.14"));
        assert_eq!(Amount::from_json(&json!({})), None);
        assert_eq!(Amount::from_json(&json!({"amount": "null"})), None);
        assert_eq!(
            Amount::from_json(&json!({"amount": 0, "currency": "SAR"})).and_then(Amount::nonzero),
            None
        );
        let parsed: Vec<Amount> =
            serde_json::from_str(r#"[{"amount": 20, "currency": "SAR"}, 20]"#).unwrap();
        assert_eq!(parsed[0].amount, parsed[1].amount);
    }

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

    #[test]
    fn odd_text_never_panics() {
        let long = "9".repeat(200);
        let odd = [
            "-",
            ".",
            "+",
            "e5",
            "1e",
            "1e-",
            "1e99999999999999999999",
            "1e-99999",
            "+.e",
            long.as_str(),
            "0.00000000000000000000000000000001",
            "--1",
            "1..2",
            "١٢",
            "\u{0}",
            "2022-06-26 12:21:45.",
            "2022-06-26 12:21:45 +99:99",
            "2022-06-26T",
            "Sun",
            "Sun Jun",
            "Jun 99 2022",
            "Etc/GMT-128",
            "GMT+",
            "+",
            "-0",
            "UTC+99999",
            "2022-06-26 12:21:45.99999999999999",
        ];
        for text in odd {
            let _ = Money::parse(text);
            let _ = SallaTime::parse(text);
            let _ = zone_offset(text);
            let _ = date_of(&json!(text));
            let _ = int_of(&json!(text));
            let _ = international_mobile(&json!(text), Some(&json!(text)));
        }
        assert_eq!(zone_offset("Etc/GMT-128"), RIYADH);
    }

    #[test]
    fn mobiles_become_international() {
        let intl = |mobile: Value, code: Value| international_mobile(&mobile, Some(&code));
        assert_eq!(
            intl(json!(501806978), json!("+966")).as_deref(),
            Some("+966501806978")
        );
        assert_eq!(
            intl(json!(777777777), json!("967")).as_deref(),
            Some("+967777777777")
        );
        assert_eq!(
            intl(json!("0501806978"), json!(966)).as_deref(),
            Some("+966501806978")
        );
        assert_eq!(
            intl(json!("966501806978"), json!("+966")).as_deref(),
            Some("+966501806978")
        );
        assert_eq!(
            intl(json!("+977 6129-17082"), json!("+966")).as_deref(),
            Some("+977612917082")
        );
        assert_eq!(
            intl(json!("00966501806978"), json!(null)).as_deref(),
            Some("+966501806978")
        );
        assert_eq!(
            international_mobile(&json!("501806978"), None).as_deref(),
            Some("501806978")
        );
        assert_eq!(intl(json!(""), json!("+966")), None);
        assert_eq!(mobile_code_of(&json!("966")).as_deref(), Some("+966"));
    }

    #[test]
    fn api_customers_parse() {
        let page = fixture_data("api-list-customers.json");
        let (customers, errors) = parse_items(page.as_array().unwrap(), Customer::from_value);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(customers.len(), 2);
        let first = &customers[0];
        assert_eq!(first.id, 2075683582);
        assert_eq!(first.mobile.as_deref(), Some("+967777777777"));
        assert_eq!(first.mobile_code.as_deref(), Some("+967"));
        assert_eq!(first.groups, [11323141, 11323142]);
        assert_eq!(
            first.updated_at,
            Some(datetime!(2020-04-02 22:43:26 +03:00))
        );
        assert_eq!(
            first.location.as_deref(),
            Some("Alaziziah Street, building number 5")
        );
        assert_eq!(first.raw, page[0]);
        let second = &customers[1];
        assert_eq!(second.location, None, "the string \"null\"");
        assert!(second.raw.get("urls").is_none());
        assert_eq!(second.birthday, None);
    }

    #[test]
    fn api_pages_with_either_links_shape_parse() {
        for links in [
            json!([]),
            json!({}),
            json!({"next": "https://api.salla.dev/admin/v2/customers?page=2"}),
        ] {
            let page = json!({"status": 200, "success": true,
                "data": [{"id": 1, "mobile": 5, "mobile_code": "966"}, {"name": "no id"}],
                "pagination": {"count": 2, "total": 2, "perPage": 15, "currentPage": 1, "totalPages": 1, "links": links}});
            let (customers, errors) =
                parse_items(page["data"].as_array().unwrap(), Customer::from_value);
            assert_eq!(customers.len(), 1);
            assert_eq!(
                errors,
                [(1, ModelError::Field("id"))],
                "one odd item does not lose the page"
            );
        }
    }

    #[test]
    fn customer_in_extra_fields_mode() {
        let customer = Customer::from_value(json!({
            "id": 2075683582, "first_name": "Ahmed", "last_name": "Ali", "full_name": "Ahmed Ali",
            "mobile": "555555555", "mobile_code": "+966", "email": "a@b.c", "avatar": "https://x",
            "gender": "male", "birthday": null, "city": "Riyadh", "country": "السعودية | Saudi Arabia",
            "location": "null", "lang": "ar",
            "created_at": {"date": "2021-01-02 03:04:05.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
            "updated_at": {"date": "2022-01-02 03:04:05.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
            "block_reason": null, "is_blocked": false, "is_inactive": "0", "is_notifications_enabled": 1,
            "total_points": 5, "custom_fields": [], "groups": []
        }))
        .unwrap();
        assert_eq!(customer.full_name.as_deref(), Some("Ahmed Ali"));
        assert_eq!(customer.lang.as_deref(), Some("ar"));
        assert_eq!(
            customer.created_at,
            Some(datetime!(2021-01-02 03:04:05 +03:00))
        );
        assert_eq!(customer.block_reason, None);
        assert_eq!(
            (customer.is_blocked, customer.is_inactive),
            (Some(false), Some(false))
        );
        assert_eq!(customer.is_notifications_enabled, Some(true));
        assert_eq!(customer.birthday, None);
        assert_eq!(customer.country.as_deref(), Some("السعودية | Saudi Arabia"));
        assert_eq!(customer.mobile.as_deref(), Some("+966555555555"));
    }

    #[test]
    fn webhook_customer_has_a_birthday() {
        let customer = Customer::from_value(fixture_data("customer.login.json")).unwrap();
        assert_eq!(customer.birthday, Some(date!(1997 - 06 - 03)));
        assert_eq!(customer.mobile.as_deref(), Some("+966555555555"));
        assert_eq!(customer.is_notifications_enabled, Some(true));
        assert_eq!(customer.display_name().as_deref(), Some("User Mohammed"));
    }

    #[test]
    fn api_orders_parse_as_thin_orders() {
        let page = fixture_data("api-list-orders.json");
        let (orders, errors) = parse_items(page.as_array().unwrap(), Order::from_value);
        assert!(errors.is_empty(), "{errors:?}");
        let first = &orders[0];
        assert_eq!(first.id, 1017120475);
        assert_eq!(first.reference_id.as_deref(), Some("40497536"));
        assert_eq!(amount_of(&first.total), Some(money("55")));
        assert_eq!(first.currency.as_deref(), Some("SAR"));
        assert_eq!(first.date, Some(datetime!(2022-06-16 14:48:20 +03:00)));
        assert_eq!(first.updated_at, None);
        assert_eq!(first.customer, None);
        assert_eq!(first.discount_total(), None);
        assert_eq!(first.items_count(), Some(1));
        assert_eq!(first.full_items(), None, "list items have no ids");
        assert_eq!(
            orders[1].status.as_ref().and_then(|s| s.slug.as_deref()),
            Some("canceled")
        );
        assert_eq!(orders[1].items_count(), Some(3));
        assert_eq!(orders[1].payment_method, None);
    }

    #[test]
    fn api_product_details_parse() {
        let product = Product::from_value(fixture_data("api-product-details.json")).unwrap();
        assert_eq!(product.id, 1672932878);
        assert_eq!(product.sku.as_deref(), Some("23-TD23-32"));
        assert_eq!(amount_of(&product.price), Some(money("100")));
        assert_eq!(product.currency.as_deref(), Some("SAR"));
        assert_eq!(
            amount_of(&product.cost_price),
            Some(money("35")),
            "a string"
        );
        assert_eq!(product.sale_price, None, "amount 0 is no sale");
        assert_eq!(product.sale_end, Some(date!(2025 - 06 - 23)));
        assert_eq!(product.quantity, Some(0));
        assert_eq!(product.stock(), None, "unlimited");
        assert_eq!(
            product.updated_at,
            Some(datetime!(2024-03-06 13:50:32 +03:00))
        );
        assert_eq!(product.channels, ["web", "app"]);
        assert_eq!(product.skus.len(), 4);
        assert_eq!(product.skus[1].stock_quantity, Some(10), "a string");
        assert_eq!(product.skus[1].sale_price, None, "{{}}");
        assert_eq!(product.skus[1].barcode.as_deref(), Some("abc01"));
        assert!(product.main_image.is_some());
    }

    #[test]
    fn webhook_product_and_list_quirks() {
        let product = Product::from_value(fixture_data("product.created.json")).unwrap();
        assert_eq!(product.sku, None, "an empty SKU");
        assert_eq!(product.quantity, Some(20));
        assert_eq!(product.stock(), Some(20));
        assert_eq!(product.brand, None);
        assert_eq!(
            product.url.as_deref().map(|u| u.ends_with("p1025569331")),
            Some(true)
        );
        let listed = Product::from_value(json!({"id": "5", "name": "Shirt", "quantity": "50",
            "price": {"amount": "20.00", "currency": "SAR"}, "sale_price": {}, "cost_price": null,
            "urls": {"customer": "https://s/p5"}, "main_image": "https://i"}))
        .unwrap();
        assert_eq!(listed.quantity, Some(50));
        assert_eq!(listed.sale_price, None);
        assert_eq!(listed.cost_price, None);
        assert_eq!(listed.url.as_deref(), Some("https://s/p5"));
        assert!(Product::from_value(json!({"name": "no id"})).is_err());
        assert!(Product::from_value(json!([])).is_err());
    }

    #[test]
    fn legacy_and_current_carts() {
        let legacy = Cart::from_value(json!({
            "id": 1097962121, "subtotal": "15.00", "currency": "SAR", "total": "50.14", "coupon_code": null,
            "customer": {"id": 225167971, "avatar": "https://x", "name": "User Name", "mobile": "+966555555555"}
        }))
        .unwrap();
        assert_eq!(amount_of(&legacy.total), Some(money("50.14")));
        assert_eq!(amount_of(&legacy.subtotal), Some(money("15.00")));
        assert_eq!(legacy.currency.as_deref(), Some("SAR"));
        assert_eq!(legacy.coupon_code, None);
        assert_eq!(legacy.items_count(), None);
        assert_eq!(legacy.created_at, None);
        let customer = legacy.customer.as_ref().unwrap();
        assert_eq!(
            (customer.id, customer.full_name.as_deref()),
            (225167971, Some("User Name"))
        );

        let current = Cart::from_value(fixture_data("abandoned.cart.json")).unwrap();
        assert_eq!(amount_of(&current.total_discount), Some(money("10")));
        assert_eq!(current.age_in_minutes, Some(83));
        assert_eq!(
            current.created_at,
            Some(datetime!(2025-01-21 17:09:39 +03:00))
        );
        assert_eq!(current.items.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn odd_shapes_read_as_absent_not_as_errors() {
        let order = Order::from_value(json!({"id": 9, "status": [], "customer": {"name": "no id"},
            "amounts": {"total": {}, "discounts": [{"discount": "x"}, 3]}, "items": [{"quantity": "2"}, 7],
            "date": "not a date", "reference_id": true}))
        .unwrap();
        assert!(order.status.is_none() && order.customer.is_none() && order.total.is_none());
        assert!(order.date.is_none() && order.reference_id.is_none());
        assert_eq!(order.discount_total(), Some(Money::ZERO));
        assert_eq!(order.items_count(), Some(2));
        assert_eq!(
            Order::from_value(json!({"id": -1})),
            Err(ModelError::Field("id"))
        );
        assert_eq!(
            Customer::from_value(json!(null)),
            Err(ModelError::NotAnObject)
        );
        assert_eq!(id_of(&json!(2116149737u64)), Some(2116149737));
        assert_eq!(id_of(&json!(u64::MAX)), None, "beyond bigint");
        assert_eq!(int_of(&json!("50")), Some(50));
        assert_eq!(int_of(&json!(2.0)), Some(2));
        assert_eq!(int_of(&json!("2.5")), None);
        assert_eq!(flag_of(&json!("true")), Some(true));
    }
}
