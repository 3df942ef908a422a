//! The values inside Salla's objects, read leniently from JSON: money and amounts, ids, text, integers,
//! flags and mobile numbers, and [`Fields`], the loose reader of one object's fields that the objects share.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};

use super::ModelError;
use super::time::{SallaTime, date_of};

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
pub(super) fn text_not_null(value: &Value) -> Option<String> {
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
pub(super) struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub(super) fn of(value: &'a Value) -> Result<Self, ModelError> {
        value.as_object().map(Fields).ok_or(ModelError::NotAnObject)
    }

    pub(super) fn get(self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|value| !value.is_null())
    }

    pub(super) fn id(self, key: &'static str) -> Result<i64, ModelError> {
        self.get(key).and_then(id_of).ok_or(ModelError::Field(key))
    }

    pub(super) fn opt_id(self, key: &str) -> Option<i64> {
        self.get(key).and_then(id_of)
    }

    pub(super) fn text(self, key: &str) -> Option<String> {
        self.get(key).and_then(text_of)
    }

    pub(super) fn int(self, key: &str) -> Option<i64> {
        self.get(key).and_then(int_of)
    }

    pub(super) fn flag(self, key: &str) -> Option<bool> {
        self.get(key).and_then(flag_of)
    }

    pub(super) fn money(self, key: &str) -> Option<Money> {
        self.get(key).and_then(Money::from_json)
    }

    pub(super) fn amount(self, key: &str) -> Option<Amount> {
        self.get(key).and_then(Amount::from_json)
    }

    pub(super) fn time(self, key: &str) -> Option<OffsetDateTime> {
        self.get(key).and_then(SallaTime::from_json)
    }

    pub(super) fn date(self, key: &str) -> Option<Date> {
        self.get(key).and_then(date_of)
    }

    pub(super) fn object(self, key: &str) -> Option<Fields<'a>> {
        self.get(key).and_then(Value::as_object).map(Fields)
    }

    pub(super) fn array(self, key: &str) -> Option<&'a Vec<Value>> {
        self.get(key).and_then(Value::as_array)
    }

    /// A non-empty object or array kept as JSON (`brand`); `{}`/`[]` read as absent.
    pub(super) fn json(self, key: &str) -> Option<Value> {
        self.get(key)
            .filter(|value| match value {
                Value::Object(map) => !map.is_empty(),
                Value::Array(items) => !items.is_empty(),
                _ => true,
            })
            .cloned()
    }

    /// An array of JSON values; absent or of another shape reads as empty.
    pub(super) fn list(self, key: &str) -> Vec<Value> {
        self.array(key).cloned().unwrap_or_default()
    }

    /// An array of strings (scopes, channels); other elements are skipped.
    pub(super) fn strings(self, key: &str) -> Vec<String> {
        self.array(key)
            .map(|items| items.iter().filter_map(text_of).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::salla::model::tests::money;

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
}
