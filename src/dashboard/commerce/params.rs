//! Query parameters shared by the merchant lists: search, status and date filters. Every parameter arrives
//! as text and is parsed here, so a bad value is a 400 that names the parameter (never a database error).
//! An empty value (`?status=`) means the parameter is absent.

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime};

use super::sql::Sql;
use crate::error::ApiError;

/// Longest accepted `q`: longer input is not a search a person typed.
const MAX_SEARCH_CHARS: usize = 200;
/// Most values accepted by a comma-separated filter such as `status`.
const MAX_LIST_VALUES: usize = 20;

/// PostgreSQL text cannot hold NUL: such input could never match and would fail as a query argument.
const NUL: &str = "must not contain NUL characters";

/// 400 `invalid_parameter` whose message names the parameter.
pub fn invalid(parameter: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!("Query parameter `{parameter}` {problem}."),
    )
}

/// The value of an optional parameter, trimmed; `None` when absent or empty.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `q`: what the caller typed, for exact matches, and the same text as an ILIKE pattern matching it
/// anywhere, with `%`, `_` and `\` escaped so that the input is only ever literal text.
pub struct Search {
    pub text: String,
    pub pattern: String,
}

impl Search {
    pub fn parse(value: &Option<String>) -> Result<Option<Self>, ApiError> {
        let Some(text) = given(value) else {
            return Ok(None);
        };
        if text.contains('\0') {
            return Err(invalid("q", NUL));
        }
        if text.chars().count() > MAX_SEARCH_CHARS {
            return Err(invalid(
                "q",
                format_args!("is longer than {MAX_SEARCH_CHARS} characters"),
            ));
        }
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Ok(Some(Self {
            text: text.to_owned(),
            pattern,
        }))
    }
}

/// A comma-separated list of exact values (`?status=completed,delivered`).
pub fn one_of(parameter: &str, value: &Option<String>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = given(value) else {
        return Ok(None);
    };
    if list.contains('\0') {
        return Err(invalid(parameter, NUL));
    }
    let values: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    if values.len() > MAX_LIST_VALUES {
        return Err(invalid(
            parameter,
            format_args!("lists more than {MAX_LIST_VALUES} values"),
        ));
    }
    Ok((!values.is_empty()).then_some(values))
}

/// A Salla id (`?customer_id=123`).
pub fn salla_id(parameter: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    given(value)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| invalid(parameter, "must be a numeric Salla id"))
        })
        .transpose()
}

/// `true` or `false`; absent is `false`.
pub fn flag(parameter: &str, value: &Option<String>) -> Result<bool, ApiError> {
    match given(value) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid(parameter, "must be `true` or `false`")),
    }
}

/// `from` and `to`. Each is an RFC 3339 instant or a date (`YYYY-MM-DD`, a day in UTC). `from` is
/// inclusive; `to` is inclusive too, and a date `to` includes that whole day.
pub struct DateRange {
    from: Option<OffsetDateTime>,
    to: Option<Upper>,
}

enum Upper {
    AtMost(OffsetDateTime),
    Before(OffsetDateTime),
}

impl DateRange {
    pub fn parse(from: &Option<String>, to: &Option<String>) -> Result<Self, ApiError> {
        let from = given(from)
            .map(|v| instant("from", v).map(|(start, _)| start))
            .transpose()?;
        let to = given(to)
            .map(|v| {
                instant("to", v).map(|(at, whole_day)| {
                    if whole_day {
                        Upper::Before(at + Duration::DAY)
                    } else {
                        Upper::AtMost(at)
                    }
                })
            })
            .transpose()?;
        let empty = match (from, &to) {
            (Some(from), Some(Upper::AtMost(to))) => from > *to,
            (Some(from), Some(Upper::Before(to))) => from >= *to,
            _ => false,
        };
        if empty {
            return Err(invalid("from", "is after `to`"));
        }
        Ok(Self { from, to })
    }

    /// Appends ` AND column >= from AND column <= to` for the bounds given.
    pub fn push(&self, sql: &mut Sql, column: &'static str) {
        if let Some(from) = self.from {
            sql.push(" AND ").push(column).push(" >= ").bind(from);
        }
        match self.to {
            Some(Upper::AtMost(to)) => {
                sql.push(" AND ").push(column).push(" <= ").bind(to);
            }
            Some(Upper::Before(to)) => {
                sql.push(" AND ").push(column).push(" < ").bind(to);
            }
            None => {}
        }
    }
}

/// The instant a `from`/`to` value names, and whether it was a whole day (then the instant is its start).
fn instant(parameter: &str, value: &str) -> Result<(OffsetDateTime, bool), ApiError> {
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok((at, false));
    }
    day(value)
        .map(|day| (day.midnight().assume_utc(), true))
        .ok_or_else(|| {
            invalid(
                parameter,
                "must be an RFC 3339 timestamp or a YYYY-MM-DD date",
            )
        })
}

/// A `YYYY-MM-DD` date.
fn day(value: &str) -> Option<Date> {
    if !value.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let mut parts = value.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn search_escapes_like_metacharacters() {
        let search = Search::parse(&some(" 50%_off\\ ")).unwrap().unwrap();
        assert_eq!(search.text, "50%_off\\");
        assert_eq!(search.pattern, "%50\\%\\_off\\\\%");
        assert!(Search::parse(&some("  ")).unwrap().is_none());
        assert!(Search::parse(&some(&"x".repeat(201))).is_err());
        assert!(Search::parse(&some("a\0b")).is_err());
    }

    #[test]
    fn dates_accept_rfc3339_and_days_and_reject_the_rest() {
        assert!(DateRange::parse(&some("2026-01-01"), &some("2026-01-31T10:00:00+03:00")).is_ok());
        assert!(DateRange::parse(&some("2026-02-01"), &some("2026-01-31")).is_err());
        assert!(DateRange::parse(&some("2026-13-01"), &None).is_err());
        assert!(DateRange::parse(&some("2026-02-30"), &None).is_err());
        assert!(DateRange::parse(&some("+202-01-01"), &None).is_err());
        assert!(DateRange::parse(&None, &some("yesterday")).is_err());
        let day = DateRange::parse(&some("2026-01-31"), &some("2026-01-31")).unwrap();
        assert!(matches!(day.to, Some(Upper::Before(t)) if t == day.from.unwrap() + Duration::DAY));
    }

    #[test]
    fn lists_and_flags() {
        assert_eq!(
            one_of("status", &some("a, b,,")).unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(one_of("status", &some(",")).unwrap(), None);
        assert!(one_of("status", &some("a\0")).is_err());
        assert!(flag("include_deleted", &some("yes")).is_err());
        assert!(flag("include_deleted", &some("true")).unwrap());
        assert!(salla_id("customer_id", &some("12a")).is_err());
    }
}
