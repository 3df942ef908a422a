//! The tenant's `crm_outbox` (migrations/tenant/20261121100001_crm_outbox.sql): one pending row per record,
//! filled by triggers; read in order, deleted once pushed unless it changed meanwhile.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::records::SyncObject;

/// A pending record as read: `changed_at` is what a push must still find to delete the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub object: SyncObject,
    pub external_id: String,
    pub changed_at: OffsetDateTime,
}

/// Up to `limit` pending rows, the least-failed and oldest first: a record that keeps failing moves behind
/// the others instead of blocking them. Rows of an unknown object are skipped.
pub async fn pending(db: &PgPool, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
    let rows: Vec<(String, String, OffsetDateTime)> = sqlx::query_as(
        "SELECT object, external_id, changed_at FROM crm_outbox ORDER BY attempts, changed_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(object, external_id, changed_at)| {
            Some(Pending {
                object: SyncObject::parse(&object)?,
                external_id,
                changed_at,
            })
        })
        .collect())
}

fn columns(rows: &[&Pending]) -> (Vec<&'static str>, Vec<String>, Vec<OffsetDateTime>) {
    (
        rows.iter().map(|r| r.object.name()).collect(),
        rows.iter().map(|r| r.external_id.clone()).collect(),
        rows.iter().map(|r| r.changed_at).collect(),
    )
}

/// Deletes the rows that have not changed since they were read; returns how many went. A row written again
/// during the push keeps its place and is pushed again.
pub async fn complete(db: &PgPool, rows: &[&Pending]) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let (objects, ids, changed) = columns(rows);
    let done = sqlx::query(
        "DELETE FROM crm_outbox o USING unnest($1::text[], $2::text[], $3::timestamptz[]) AS d (object, external_id, changed_at) \
         WHERE o.object = d.object AND o.external_id = d.external_id AND o.changed_at = d.changed_at",
    )
    .bind(&objects)
    .bind(&ids)
    .bind(&changed)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Records a failed push of `rows`: they stay pending, with one more attempt and the error.
pub async fn fail(db: &PgPool, rows: &[&Pending], error: &str) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (objects, ids, _) = columns(rows);
    sqlx::query(
        "UPDATE crm_outbox o SET attempts = o.attempts + 1, last_error = $3, last_attempt_at = now() \
         FROM unnest($1::text[], $2::text[]) AS d (object, external_id) \
         WHERE o.object = d.object AND o.external_id = d.external_id",
    )
    .bind(&objects)
    .bind(&ids)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// What is waiting in a tenant's outbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboxStats {
    pub pending: i64,
    /// Age of the oldest unsynced change, in seconds (0 when nothing is pending).
    pub oldest_pending_secs: f64,
    /// Rows whose last push failed.
    pub failing: i64,
    pub max_attempts: i32,
    /// The most recent push error.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
}

pub async fn stats(db: &PgPool) -> Result<OutboxStats, sqlx::Error> {
    let (pending, oldest, failing, max_attempts): (i64, Option<f64>, i64, Option<i32>) =
        sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(pending_since))::float8, \
                count(*) FILTER (WHERE last_error IS NOT NULL), max(attempts) \
         FROM crm_outbox",
        )
        .fetch_one(db)
        .await?;
    let last: Option<(Option<String>, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT last_error, last_attempt_at FROM crm_outbox WHERE last_error IS NOT NULL \
         ORDER BY last_attempt_at DESC NULLS LAST LIMIT 1",
    )
    .fetch_optional(db)
    .await?;
    let (last_error, last_attempt_at) = last.unwrap_or_default();
    Ok(OutboxStats {
        pending,
        oldest_pending_secs: oldest.unwrap_or(0.0).max(0.0),
        failing,
        max_attempts: max_attempts.unwrap_or(0),
        last_error,
        last_attempt_at,
    })
}

/// Whether anything is pending (the sweep's cheap check).
pub async fn has_pending(db: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM crm_outbox)")
        .fetch_one(db)
        .await
}
