//! `GET /api/admin/notifications`: what was sent to whom (`src/notify/`), newest first. Filters `tenant_id`,
//! `kind`, `status` (`pending`, `sent`, `failed`, `skipped`), `limit` (1–200, default 50) and `cursor` (the
//! previous page's `next_cursor`).

use axum::extract::State;
use serde::Deserialize;

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::Query;
use crate::notify::Notice;
use crate::notify::record::{self, Filter, Page};
use crate::state::AppState;
use crate::tenancy::TenantId;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    pub tenant_id: Option<TenantId>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl Params {
    /// The filter, or a 400 naming what is wrong.
    pub fn validate(self) -> Result<Filter, ApiError> {
        if let Some(kind) = &self.kind
            && !Notice::KINDS.contains(&kind.as_str())
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "Unknown kind {kind:?}; expected one of {}.",
                    Notice::KINDS.join(", ")
                ),
            ));
        }
        if let Some(status) = &self.status
            && !matches!(status.as_str(), "pending" | "sent" | "failed" | "skipped")
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("Unknown status {status:?}; expected pending, sent, failed or skipped."),
            ));
        }
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be between 1 and 200.",
            ));
        }
        let before = match &self.cursor {
            None => None,
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_query", "cursor is not one this API gave.")
            })?),
        };
        Ok(Filter {
            tenant: self.tenant_id,
            kind: self.kind,
            status: self.status,
            before,
            limit,
        })
    }
}

/// `GET /api/admin/notifications`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the answer of `list`")]
pub struct NotificationsPage {
    /// Deliveries, newest first: id, kind, audience, tenant_id, channel, recipient, locale, status, attempts,
    /// subject, error, created_at, sent_at.
    #[schema(value_type = Vec<Object>)]
    notifications: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/admin/notifications",
    tag = "admin-notifications",
    summary = "Notifications sent to merchants and operators",
    params(Params),
    responses(
        (status = 200, description = "A page of deliveries.", body = NotificationsPage),
        (status = 400, description = "`invalid_query`: an unknown kind or status, a bad limit or cursor."),
    ),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<axum::Json<Page>, ApiError> {
    let filter = params.validate()?;
    Ok(axum::Json(record::list(state.db(), &filter).await?))
}
