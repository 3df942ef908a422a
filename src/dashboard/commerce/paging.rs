//! Keyset pagination of the merchant lists. A page ends with a cursor naming its last row by sort key and
//! surrogate id; the next page starts strictly after that position, so rows inserted meanwhile never shift
//! or repeat a page (as OFFSET would), and each page costs one index range scan however deep it is.
//!
//! A listing is `SELECT * FROM (<the resource's select and filters>) AS r`: sorts then name columns of `r`,
//! which may be computed ones (a customer's `total_spent`). NULL sort keys come last in both directions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;

use super::params::{given, invalid};
use super::sql::Sql;
use crate::error::ApiError;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;
/// Longer input is not a cursor we issued.
const MAX_CURSOR_LEN: usize = 2048;

/// A row of a list: its surrogate id (`r.row_id`) breaks ties between equal sort keys.
pub trait Listed {
    fn row_id(&self) -> i64;
}

/// The SQL type of a sort column, to check that a cursor's key fits it before it is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Time,
    Amount,
    Count,
    Text,
}

/// One allowed `?sort=` value: a column of `r`, descending with a leading `-`.
pub struct Sort<R> {
    pub name: &'static str,
    pub kind: Kind,
    /// NOT NULL columns get a row comparison that an index on `(column, id)` serves.
    pub nullable: bool,
    /// The row's value of the column, for the next cursor.
    pub key: fn(&R) -> Key,
}

impl<R> Sort<R> {
    fn column(&self) -> &'static str {
        self.name.strip_prefix('-').unwrap_or(self.name)
    }

    fn descending(&self) -> bool {
        self.name.starts_with('-')
    }
}

/// A sort key as carried in a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    Time(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
    Amount(Decimal),
    Count(i64),
    Text(String),
    Null,
}

impl Key {
    fn kind(&self) -> Option<Kind> {
        match self {
            Self::Time(_) => Some(Kind::Time),
            Self::Amount(_) => Some(Kind::Amount),
            Self::Count(_) => Some(Kind::Count),
            Self::Text(_) => Some(Kind::Text),
            Self::Null => None,
        }
    }
}

impl From<OffsetDateTime> for Key {
    fn from(value: OffsetDateTime) -> Self {
        Self::Time(value)
    }
}

impl From<i64> for Key {
    fn from(value: i64) -> Self {
        Self::Count(value)
    }
}

impl From<&str> for Key {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl<T: Into<Key>> From<Option<T>> for Key {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// What a cursor encodes (as base64url JSON): the sort it belongs to and the last row's position in it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    sort: String,
    key: Key,
    id: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        // Serializing a struct of strings and numbers to JSON cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Option<Self> {
        if text.len() > MAX_CURSOR_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A page of a list, as returned.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<R> {
    pub data: Vec<R>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `limit`, `cursor` and `sort` of one list request, checked against the list's allowed sorts.
pub struct Paging<R: 'static> {
    sort: &'static Sort<R>,
    after: Option<Cursor>,
    limit: i64,
}

/// The start of a listing query: filters are appended to `select` (which must end in a WHERE clause), then
/// [`Paging::fetch`] closes it.
pub fn listing(select: &'static str) -> Sql {
    let mut sql = Sql::new("SELECT * FROM (");
    sql.push(select);
    sql
}

impl<R> Paging<R> {
    /// `sorts[0]` is the default sort.
    pub fn parse(
        limit: &Option<String>,
        cursor: &Option<String>,
        sort: &Option<String>,
        sorts: &'static [Sort<R>],
    ) -> Result<Self, ApiError> {
        let limit = match given(limit) {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "limit",
                        format_args!("must be an integer from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let sort = match given(sort) {
            None => &sorts[0],
            Some(name) => sorts.iter().find(|s| s.name == name).ok_or_else(|| {
                let allowed: Vec<&str> = sorts.iter().map(|s| s.name).collect();
                invalid(
                    "sort",
                    format_args!("must be one of {}", allowed.join(", ")),
                )
            })?,
        };
        let after = given(cursor)
            .map(|text| check_cursor(text, sort))
            .transpose()?;
        Ok(Self { sort, after, limit })
    }
}

impl<R> Paging<R>
where
    R: Listed + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    /// Runs the listing begun with [`listing`]: the page after the cursor, and the cursor of the next one.
    pub async fn fetch(&self, mut sql: Sql, pool: &PgPool) -> Result<Page<R>, ApiError> {
        let (column, descending) = (self.sort.column(), self.sort.descending());
        sql.push(") AS r");
        if let Some(after) = &self.after {
            sql.push(" WHERE ");
            self.push_after(&mut sql, after);
        }
        sql.push(" ORDER BY r.").push(column);
        sql.push(match (descending, self.sort.nullable) {
            (true, true) => " DESC NULLS LAST, r.row_id DESC",
            (true, false) => " DESC, r.row_id DESC",
            (false, true) => " ASC NULLS LAST, r.row_id ASC",
            (false, false) => " ASC, r.row_id ASC",
        });
        sql.push(" LIMIT ").bind(self.limit + 1);
        let mut data: Vec<R> = sql.fetch_all(pool).await?;
        let has_more = data.len() as i64 > self.limit;
        data.truncate(self.limit as usize);
        let next_cursor = data.last().filter(|_| has_more).map(|last| {
            Cursor {
                sort: self.sort.name.to_owned(),
                key: (self.sort.key)(last),
                id: last.row_id(),
            }
            .encode()
        });
        Ok(Page { data, next_cursor })
    }

    /// Rows strictly after `after` in the sort order (NULL keys last).
    fn push_after(&self, sql: &mut Sql, after: &Cursor) {
        let column = self.sort.column();
        let beyond = if self.sort.descending() { " < " } else { " > " };
        if !self.sort.nullable {
            sql.push("(r.")
                .push(column)
                .push(", r.row_id)")
                .push(beyond);
            sql.push("(");
            bind_key(sql, &after.key);
            sql.push(", ").bind(after.id).push(")");
            return;
        }
        if after.key == Key::Null {
            sql.push("(r.").push(column).push(" IS NULL AND r.row_id");
            sql.push(beyond).bind(after.id).push(")");
            return;
        }
        sql.push("(r.").push(column).push(beyond);
        bind_key(sql, &after.key);
        sql.push(" OR (r.").push(column).push(" = ");
        bind_key(sql, &after.key);
        sql.push(" AND r.row_id").push(beyond).bind(after.id);
        sql.push(") OR r.").push(column).push(" IS NULL)");
    }
}

/// A cursor that decodes, belongs to `sort` and carries a key of the column's type.
fn check_cursor<R>(text: &str, sort: &Sort<R>) -> Result<Cursor, ApiError> {
    let malformed = || ApiError::bad_request("invalid_cursor", "The cursor is malformed.");
    let cursor = Cursor::decode(text).ok_or_else(malformed)?;
    if cursor.sort != sort.name {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            format!(
                "The cursor belongs to sort `{}`; repeat that sort or start again without a cursor.",
                cursor.sort
            ),
        ));
    }
    let fits = match &cursor.key {
        // PostgreSQL text cannot hold NUL; we never issue such a key.
        Key::Text(text) if text.contains('\0') => false,
        key => key.kind().map_or(sort.nullable, |kind| kind == sort.kind),
    };
    if fits { Ok(cursor) } else { Err(malformed()) }
}

fn bind_key(sql: &mut Sql, key: &Key) {
    match key {
        Key::Time(at) => sql.bind(*at),
        Key::Amount(amount) => sql.bind(*amount),
        Key::Count(count) => sql.bind(*count),
        Key::Text(text) => sql.bind(text.clone()),
        Key::Null => sql.push("NULL"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row;

    const SORTS: &[Sort<Row>] = &[
        Sort {
            name: "-ordered_at",
            kind: Kind::Time,
            nullable: false,
            key: |_| Key::Null,
        },
        Sort {
            name: "name",
            kind: Kind::Text,
            nullable: true,
            key: |_| Key::Null,
        },
    ];

    fn cursor(sort: &str, key: Key) -> Option<String> {
        Some(
            Cursor {
                sort: sort.into(),
                key,
                id: 3,
            }
            .encode(),
        )
    }

    fn parse(
        limit: Option<&str>,
        cursor: Option<String>,
        sort: Option<&str>,
    ) -> Result<(), ApiError> {
        Paging::parse(
            &limit.map(str::to_owned),
            &cursor,
            &sort.map(str::to_owned),
            SORTS,
        )
        .map(|_| ())
    }

    #[test]
    fn limits_and_sorts_are_checked() {
        assert!(parse(None, None, None).is_ok());
        assert!(parse(Some("200"), None, Some("name")).is_ok());
        for limit in ["0", "201", "-1", "ten", "1.5"] {
            assert!(
                parse(Some(limit), None, None)
                    .unwrap_err()
                    .to_string()
                    .contains("`limit`")
            );
        }
        assert!(
            parse(None, None, Some("price"))
                .unwrap_err()
                .to_string()
                .contains("-ordered_at, name")
        );
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_rejected() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        let text = cursor("-ordered_at", Key::Time(at)).unwrap();
        let decoded = Cursor::decode(&text).unwrap();
        assert_eq!((decoded.key, decoded.id), (Key::Time(at), 3));
        assert!(parse(None, cursor("-ordered_at", Key::Time(at)), None).is_ok());
        assert!(parse(None, cursor("name", Key::Null), Some("name")).is_ok());
        // Another sort's cursor, a key of the wrong type, NULL for a NOT NULL column, garbage.
        assert!(parse(None, cursor("name", Key::Text("a".into())), None).is_err());
        assert!(parse(None, cursor("-ordered_at", Key::Count(1)), None).is_err());
        assert!(parse(None, cursor("-ordered_at", Key::Null), None).is_err());
        assert!(parse(None, cursor("name", Key::Text("\0".into())), Some("name")).is_err());
        assert!(parse(None, Some("not a cursor!".into()), None).is_err());
        assert!(parse(None, Some(URL_SAFE_NO_PAD.encode("{}")), None).is_err());
    }
}
