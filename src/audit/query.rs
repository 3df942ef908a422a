//! Reading an audit log: the filters both list endpoints and the CLI take, the opaque cursor, one row.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::tenancy::TenantId;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
/// Longest `actor`, `action` or `resource` filter.
const MAX_FILTER_CHARS: usize = 200;

/// The query string of `GET /api/audit` and `GET /api/admin/audit` (`tenant_id` only for operators).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Exact actor, e.g. `api_key:wsl_3f9a1c2b`.
    pub actor: Option<String>,
    /// Exact action, e.g. `api_key.created`.
    pub action: Option<String>,
    /// Exact resource, e.g. `tenant:<id>`.
    pub resource: Option<String>,
    /// Operators only.
    pub tenant_id: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Operators only: `global` (default) or `tenant` (that tenant's own log, with `tenant_id`).
    pub scope: Option<String>,
}

/// Validated filters. Pages are newest first; `before_id` is the last id of the previous page.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub tenant: Option<TenantId>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Params {
    /// Checks every filter; 400 `invalid_query` naming the bad one. `tenant_id` is refused unless
    /// `allow_tenant` (a tenant admin sees their own tenant only, by construction).
    pub fn validate(self, allow_tenant: bool) -> Result<Filter, ApiError> {
        let bad = |message: String| ApiError::bad_request("invalid_query", message);
        let text = |name: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
            match value {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v)
                    if v.chars().count() > MAX_FILTER_CHARS || v.chars().any(char::is_control) =>
                {
                    Err(bad(format!(
                        "{name} must be at most {MAX_FILTER_CHARS} printable characters."
                    )))
                }
                Some(v) => Ok(Some(v)),
            }
        };
        let time =
            |name: &str, value: Option<String>| -> Result<Option<OffsetDateTime>, ApiError> {
                value
                    .map(|raw| {
                        OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339)
                            .map_err(|_| {
                                bad(format!(
                                    "{name} is not an RFC 3339 time like 2026-11-20T10:00:00Z."
                                ))
                            })
                    })
                    .transpose()
            };
        let tenant = match self.tenant_id {
            None => None,
            Some(_) if !allow_tenant => {
                return Err(bad(
                    "tenant_id is not a filter here: you see your own tenant's log.".into(),
                ));
            }
            Some(raw) => Some(
                raw.trim()
                    .parse::<TenantId>()
                    .map_err(|_| bad("tenant_id is not a tenant id.".into()))?,
            ),
        };
        if self.scope.is_some() {
            return Err(bad("scope is not a filter here.".into()));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}.")));
        }
        let before_id = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(decode_cursor(raw).ok_or_else(|| bad("Invalid cursor.".into()))?),
        };
        let filter = Filter {
            actor: text("actor", self.actor)?,
            action: text("action", self.action)?,
            resource: text("resource", self.resource)?,
            tenant,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            before_id,
            limit,
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since > until
        {
            return Err(bad("since is after until.".into()));
        }
        Ok(filter)
    }
}

/// `a1.` + base64url of the id: opaque to clients, versioned for us.
pub fn encode_cursor(id: i64) -> String {
    format!("a1.{}", URL_SAFE_NO_PAD.encode(id.to_string()))
}

fn decode_cursor(raw: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(raw.strip_prefix("a1.")?).ok()?;
    let id: i64 = std::str::from_utf8(&bytes).ok()?.parse().ok()?;
    (id > 0).then_some(id)
}

/// One audit entry as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub resource: Option<String>,
    pub via: Option<String>,
    pub tenant_id: Option<TenantId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub details: Value,
}

/// A page of entries and the cursor of the next one (`None` on the last page).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AuditPage)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next_cursor: Option<String>,
}

impl Page {
    /// `rows` fetched with `limit + 1`: the extra row only says that another page exists.
    pub fn of(mut rows: Vec<Entry>, limit: i64) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|e| encode_cursor(e.id))
        } else {
            None
        };
        Self {
            entries: rows,
            next_cursor,
        }
    }
}

/// Appends the filters shared by both logs to `query` (which ends in `WHERE true`). `resource_column` is
/// `resource` globally and `subject` in tenant databases.
pub(crate) fn push_filters(
    query: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    filter: &Filter,
    resource_column: &'static str,
) {
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &filter.action {
        query.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(resource) = &filter.resource {
        query
            .push(" AND ")
            .push(resource_column)
            .push(" = ")
            .push_bind(resource.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND at < ").push_bind(until);
    }
    if let Some(before) = filter.before_id {
        query.push(" AND id < ").push_bind(before);
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(filter.limit + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("42"), None);
        assert_eq!(decode_cursor("a1.!!"), None);
    }

    #[test]
    fn tenant_id_is_only_an_operator_filter() {
        let params = || Params {
            tenant_id: Some(uuid::Uuid::nil().to_string()),
            ..Params::default()
        };
        assert!(params().validate(false).is_err());
        assert!(params().validate(true).is_ok());
    }
}
