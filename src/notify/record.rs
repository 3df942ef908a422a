//! The `notifications` table, the record of every delivery (its one home): rows are created by the
//! dispatcher, moved through `pending` → `sent` | `failed` by the send job, and listed for operators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::tenancy::TenantId;

/// One delivery, as stored and as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub kind: String,
    pub audience: String,
    pub tenant_id: Option<TenantId>,
    pub channel: String,
    pub recipient: String,
    pub locale: String,
    pub dedupe_key: String,
    pub status: String,
    pub attempts: i32,
    pub subject: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
}

/// A delivery to create.
pub struct NewDelivery<'a> {
    pub kind: &'a str,
    pub audience: &'a str,
    pub tenant_id: Option<TenantId>,
    pub channel: &'a str,
    pub recipient: &'a str,
    pub locale: &'a str,
    pub dedupe_key: &'a str,
    pub subject: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    /// `pending`, or `skipped` with `error` saying why nothing is sent.
    pub status: &'a str,
    pub error: Option<&'a str>,
}

/// Inserts the delivery unless this recipient already has the notice's dedupe key on this channel; returns
/// the new row's id (`None`: a duplicate, nothing to send).
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewDelivery<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO notifications (kind, audience, tenant_id, channel, recipient, locale, dedupe_key, subject, \
                                    vars, status, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (dedupe_key, channel, recipient) DO NOTHING RETURNING id",
    )
    .bind(new.kind)
    .bind(new.audience)
    .bind(new.tenant_id)
    .bind(new.channel)
    .bind(new.recipient)
    .bind(new.locale)
    .bind(new.dedupe_key)
    .bind(new.subject)
    .bind(sqlx::types::Json(new.vars))
    .bind(new.status)
    .bind(new.error)
    .fetch_optional(conn)
    .await
}

/// Whether any delivery of this dedupe key exists (then raising the notice again changes nothing).
pub async fn exists(conn: &mut PgConnection, dedupe_key: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM notifications WHERE dedupe_key = $1)")
        .bind(dedupe_key)
        .fetch_one(conn)
        .await
}

/// What the send job needs of a delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub id: i64,
    pub kind: String,
    pub tenant_id: Option<TenantId>,
    pub channel: String,
    pub recipient: String,
    pub locale: String,
    pub status: String,
    pub vars: sqlx::types::Json<BTreeMap<String, String>>,
}

pub async fn get(db: &PgPool, id: i64) -> Result<Option<Pending>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, tenant_id, channel, recipient, locale, status, vars FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn mark_sent(db: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET status = 'sent', attempts = attempts + 1, error = NULL, sent_at = now(), \
         updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(db)
    .await
    .map(drop)
}

/// Records a failed attempt: still `pending` while it will be retried, `failed` after the last one.
pub async fn mark_attempt_failed(
    db: &PgPool,
    id: i64,
    error: &str,
    last: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET status = CASE WHEN $3 THEN 'failed' ELSE 'pending' END, \
         attempts = attempts + 1, error = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(last)
    .execute(db)
    .await
    .map(drop)
}

/// Filter of the admin listing: newest first, `before` pages backwards (the previous page's `next_cursor`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant: Option<TenantId>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub notifications: Vec<Delivery>,
    /// Pass as `cursor` for the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

pub async fn list(db: &PgPool, filter: &Filter) -> Result<Page, sqlx::Error> {
    let limit = filter.limit.clamp(1, 200);
    let rows: Vec<Delivery> = sqlx::query_as(
        "SELECT id, kind, audience, tenant_id, channel, recipient, locale, dedupe_key, status, attempts, subject, \
                error, created_at, sent_at \
         FROM notifications \
         WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR kind = $2) \
           AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(filter.tenant)
    .bind(&filter.kind)
    .bind(&filter.status)
    .bind(filter.before)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    let notifications: Vec<Delivery> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| notifications.last().map(|d| d.id.to_string()))
        .flatten();
    Ok(Page {
        notifications,
        next_cursor,
    })
}
