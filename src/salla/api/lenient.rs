//! Deserializers for Salla's drifting types (numbers that arrive as strings and the other way round).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::tenancy::MerchantId;

/// A non-negative integer from a number or a numeric string.
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    as_u64(&value).ok_or_else(|| D::Error::custom(format!("expected an id, got {value}")))
}

/// A store id from a number or a numeric string (one that fits a `bigint`).
pub fn merchant_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<MerchantId, D::Error> {
    let value = Value::deserialize(deserializer)?;
    as_u64(&value)
        .and_then(|id| MerchantId::try_from(id).ok())
        .ok_or_else(|| D::Error::custom(format!("expected an id, got {value}")))
}

pub fn opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(as_u64(&Value::deserialize(deserializer)?))
}

/// [`opt_string`], empty when there is no text.
pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(opt_string(deserializer)?.unwrap_or_default())
}

/// Strings as they are, numbers and booleans as text; `null`, objects and arrays as `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}
