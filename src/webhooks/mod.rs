//! The durable webhook inbox (DESIGN §2 "Webhook path"), shared by every provider that calls us back (Clerk
//! now, Salla later).
//!
//! ```text
//! provider ──► verify signature on raw bytes ──► INSERT inbox row (unique (provider, dedupe_key))
//!             + enqueue the processing job, same transaction ──► 2xx at once
//! worker   ──► load the inbox row ──► idempotent effects ──► mark processed / ignored / failed
//! ```
//!
//! A 2xx answer therefore means the delivery is stored and will be processed; a redelivery with the same
//! dedupe key (Svix keeps `svix-id` across retries) is answered 2xx without storing or enqueueing anything.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::jobs::{JobId, JobQueue, NewJob};
use crate::tenancy::TenantId;

/// Status of an inbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxStatus {
    /// Stored, not processed yet (or being retried).
    Pending,
    /// Its effects were applied.
    Processed,
    /// Nothing to do (event type we do not handle, or an event made moot by a later one).
    Ignored,
    /// Processing gave up; `last_error` says why.
    Failed,
    /// Authenticated but unusable (not a JSON event): kept for inspection, never processed.
    Rejected,
}

impl InboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Processed,
            Self::Ignored,
            Self::Failed,
            Self::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// A delivery to store.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// `"clerk"`, `"salla"`, …
    pub provider: &'a str,
    /// The provider's delivery id (Svix `svix-id`); redeliveries carry the same one.
    pub dedupe_key: &'a str,
    pub event_type: &'a str,
    /// Known up front for some providers (Salla merchant → tenant); else set when processed.
    pub tenant_id: Option<TenantId>,
    /// The parsed body, as received.
    pub payload: &'a serde_json::Value,
    /// Relevant non-secret headers (never signatures or credentials).
    pub headers: &'a serde_json::Value,
}

/// What [`insert_and_enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row, and its processing job, committed together.
    Inserted { id: i64, job_id: JobId },
    /// The same `(provider, dedupe_key)` was already stored; nothing was inserted or enqueued.
    Duplicate { id: i64 },
}

impl Stored {
    pub fn id(self) -> i64 {
        match self {
            Self::Inserted { id, .. } | Self::Duplicate { id } => id,
        }
    }

    pub fn is_duplicate(self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("cannot build the processing job: {0}")]
    Job(#[from] serde_json::Error),
}

/// One stored delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InboxRow {
    pub id: i64,
    pub provider: String,
    pub dedupe_key: String,
    pub event_type: String,
    pub tenant_id: Option<TenantId>,
    pub payload: serde_json::Value,
    pub headers: serde_json::Value,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub processed_at: Option<OffsetDateTime>,
}

impl InboxRow {
    pub fn status(&self) -> Option<InboxStatus> {
        InboxStatus::parse(&self.status)
    }

    /// Whether processing already reached a final status (a retried job must not apply it again).
    pub fn is_finished(&self) -> bool {
        !matches!(self.status(), Some(InboxStatus::Pending) | None)
    }
}

const COLUMNS: &str = "id, provider, dedupe_key, event_type, tenant_id, payload, headers, status, attempts, \
     last_error, received_at, processed_at";

/// Stores a delivery and enqueues its processing job in one transaction: the job (built by `make_job` from
/// the new row's id) exists iff the row was inserted by this call. A duplicate `(provider, dedupe_key)` —
/// including one being inserted concurrently, which this waits for — is reported as [`Stored::Duplicate`].
pub async fn insert_and_enqueue(
    pool: &PgPool,
    jobs: &JobQueue,
    delivery: &NewDelivery<'_>,
    make_job: impl Fn(i64) -> Result<NewJob, serde_json::Error>,
) -> Result<Stored, InboxError> {
    // A concurrent insert of the same key that rolls back leaves neither its row nor ours: try again then.
    for _ in 0..3 {
        let mut tx = pool.begin().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO webhook_inbox (provider, dedupe_key, event_type, tenant_id, payload, headers) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (provider, dedupe_key) DO NOTHING \
             RETURNING id",
        )
        .bind(delivery.provider)
        .bind(delivery.dedupe_key)
        .bind(delivery.event_type)
        .bind(delivery.tenant_id)
        .bind(delivery.payload)
        .bind(delivery.headers)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = inserted {
            let job = make_job(id)?;
            let job_id = jobs.enqueue_in(&mut tx, job).await?.id();
            tx.commit().await?;
            metrics::counter!("webhook_deliveries_total", "provider" => delivery.provider.to_owned(), "outcome" => "stored")
                .increment(1);
            return Ok(Stored::Inserted { id, job_id });
        }
        // ON CONFLICT waited for the other transaction to commit; its row is visible to this new statement.
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM webhook_inbox WHERE provider = $1 AND dedupe_key = $2",
        )
        .bind(delivery.provider)
        .bind(delivery.dedupe_key)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        if let Some(id) = existing {
            metrics::counter!("webhook_deliveries_total", "provider" => delivery.provider.to_owned(), "outcome" => "duplicate")
                .increment(1);
            return Ok(Stored::Duplicate { id });
        }
    }
    Err(InboxError::Db(sqlx::Error::Protocol(
        "webhook inbox row kept disappearing while being stored".into(),
    )))
}

/// Stores an authenticated delivery that cannot be processed (its body is not a usable event) as `rejected`,
/// with the body as text and `reason`, and no job. Returns false when the same body was already stored.
pub async fn insert_rejected(
    pool: &PgPool,
    provider: &str,
    dedupe_key: &str,
    raw_body: &str,
    reason: &str,
    headers: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_inbox (provider, dedupe_key, event_type, payload, headers, status, last_error, \
                                    raw_body, processed_at) \
         VALUES ($1, $2, '', '{}'::jsonb, $3, 'rejected', $4, $5, now()) \
         ON CONFLICT (provider, dedupe_key) DO NOTHING",
    )
    .bind(provider)
    .bind(dedupe_key)
    .bind(headers)
    .bind(reason)
    .bind(raw_body)
    .execute(pool)
    .await?;
    let outcome = if inserted.rows_affected() == 1 {
        "rejected"
    } else {
        "duplicate"
    };
    metrics::counter!("webhook_deliveries_total", "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
    Ok(inserted.rows_affected() == 1)
}

/// The row, if it exists.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<InboxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_inbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Counts one processing attempt and returns the row as it now is (`None` if it does not exist).
pub async fn begin_attempt(pool: &PgPool, id: i64) -> Result<Option<InboxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_inbox SET attempts = attempts + 1 WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Its effects were applied (about `tenant_id`, when known).
pub async fn mark_processed(
    pool: &PgPool,
    id: i64,
    tenant_id: Option<TenantId>,
) -> Result<(), sqlx::Error> {
    finish(pool, id, InboxStatus::Processed, tenant_id, None).await
}

/// Nothing to do; `reason` is kept in `last_error` for operators.
pub async fn mark_ignored(
    pool: &PgPool,
    id: i64,
    tenant_id: Option<TenantId>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    finish(pool, id, InboxStatus::Ignored, tenant_id, Some(reason)).await
}

/// Processing gave up for good.
pub async fn mark_failed(pool: &PgPool, id: i64, error: &str) -> Result<(), sqlx::Error> {
    finish(pool, id, InboxStatus::Failed, None, Some(error)).await
}

/// A failed attempt that will be retried: the row stays `pending`, the error is kept.
pub async fn record_error(pool: &PgPool, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_inbox SET last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

async fn finish(
    pool: &PgPool,
    id: i64,
    status: InboxStatus,
    tenant_id: Option<TenantId>,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_inbox SET status = $2, tenant_id = coalesce($3, tenant_id), last_error = $4, \
         processed_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(tenant_id)
    .bind(note)
    .execute(pool)
    .await?;
    Ok(())
}
