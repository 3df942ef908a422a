//! The `webhook_inbox` table: every query on it lives here.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::{InboxStatus, JobFor};
use crate::jobs::{JobQueue, NewJob};
use crate::tenancy::{MerchantId, TenantId};

/// A delivery to store: what a provider made of an authenticated request.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The provider's delivery id (Svix `svix-id`), or a digest of the body; redeliveries carry the same one.
    pub dedupe_key: String,
    pub event_type: String,
    /// The body as received (valid JSON, stored as `jsonb`), or its storable form (`super::storable_json`).
    pub payload: String,
    /// Relevant non-secret headers (never signatures or credentials).
    pub headers: serde_json::Value,
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row, and its processing job, committed together.
    Inserted { id: i64 },
    /// The same `(provider, dedupe_key)` was already stored; nothing was inserted or enqueued.
    Duplicate { id: i64 },
}

impl Stored {
    pub fn id(self) -> i64 {
        match self {
            Self::Inserted { id } | Self::Duplicate { id } => id,
        }
    }

    pub fn is_duplicate(self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

/// One delivery of a batch, with the provider it came from and how to build its processing job.
pub(super) struct Entry {
    pub provider: &'static str,
    pub delivery: Delivery,
    /// The bytes as received when `delivery.payload` is not them (it was repaired).
    pub raw: Option<axum::body::Bytes>,
    pub job: JobFor,
}

/// Stores a batch of deliveries and enqueues a processing job for each new one, in one transaction (one
/// commit, one fsync, one NOTIFY for all). A `(provider, dedupe_key)` already stored — or twice in the batch,
/// or being stored concurrently elsewhere, which the insert waits for — is a [`Stored::Duplicate`].
/// Returns one result per entry, in order.
pub(super) async fn store_batch(
    pool: &PgPool,
    jobs: &JobQueue,
    entries: &[Entry],
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut providers = Vec::with_capacity(entries.len());
    let mut keys = Vec::with_capacity(entries.len());
    let mut types = Vec::with_capacity(entries.len());
    let mut payloads = Vec::with_capacity(entries.len());
    let mut headers = Vec::with_capacity(entries.len());
    let mut raws: Vec<Option<&[u8]>> = Vec::with_capacity(entries.len());
    for entry in entries {
        providers.push(entry.provider);
        keys.push(entry.delivery.dedupe_key.as_str());
        types.push(entry.delivery.event_type.as_str());
        payloads.push(entry.delivery.payload.as_str());
        headers.push(&entry.delivery.headers);
        raws.push(entry.raw.as_deref());
    }
    let mut tx = pool.begin().await?;
    // In input order, so that of two deliveries with one key the first is stored.
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO webhook_inbox (provider, dedupe_key, event_type, payload, headers, raw, payload_repaired) \
         SELECT provider, dedupe_key, event_type, payload::jsonb, headers, raw, raw IS NOT NULL \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::bytea[]) \
              WITH ORDINALITY AS d(provider, dedupe_key, event_type, payload, headers, raw, n) \
         ORDER BY n \
         ON CONFLICT (provider, dedupe_key) DO NOTHING \
         RETURNING id, provider, dedupe_key",
    )
    .bind(&providers)
    .bind(&keys)
    .bind(&types)
    .bind(&payloads)
    .bind(&headers)
    .bind(&raws)
    .fetch_all(&mut *tx)
    .await?;
    let new: std::collections::HashMap<(&str, &str), i64> = inserted
        .iter()
        .map(|(id, provider, key)| ((provider.as_str(), key.as_str()), *id))
        .collect();
    let missing: Vec<usize> = (0..entries.len())
        .filter(|&i| !new.contains_key(&(providers[i], keys[i])))
        .collect();
    // Rows stored before (or by a concurrent transaction that has committed: ON CONFLICT waited for it).
    let existing: std::collections::HashMap<(String, String), i64> = if missing.is_empty() {
        Default::default()
    } else {
        let (ps, ks): (Vec<&str>, Vec<&str>) =
            missing.iter().map(|&i| (providers[i], keys[i])).unzip();
        sqlx::query_as::<_, (i64, String, String)>(
            "SELECT w.id, w.provider, w.dedupe_key FROM webhook_inbox w \
             JOIN unnest($1::text[], $2::text[]) AS k(provider, dedupe_key) USING (provider, dedupe_key)",
        )
        .bind(&ps)
        .bind(&ks)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id, provider, key)| ((provider, key), id))
        .collect()
    };
    let mut results = Vec::with_capacity(entries.len());
    let mut claimed = std::collections::HashSet::new();
    let mut new_jobs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = (providers[i], keys[i]);
        let stored = match new.get(&key) {
            // The first entry with a new key is the one inserted; a later one in the batch is its duplicate.
            Some(&id) if claimed.insert(key) => {
                new_jobs.push((entry.job)(id).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
                Stored::Inserted { id }
            }
            Some(&id) => Stored::Duplicate { id },
            None => match existing.get(&(key.0.to_owned(), key.1.to_owned())) {
                Some(&id) => Stored::Duplicate { id },
                None => {
                    return Err(sqlx::Error::Protocol(
                        "a webhook inbox row disappeared while being stored".into(),
                    ));
                }
            },
        };
        results.push(stored);
    }
    jobs.enqueue_many_in(&mut tx, &new_jobs).await?;
    tx.commit().await?;
    Ok(results)
}

/// Stores an authenticated delivery that cannot be processed (its body is not a usable event) as `rejected`,
/// with the bytes as received, a text copy for reading, and `reason`, and no job. Returns false when the same
/// body was already stored.
pub(super) async fn insert_rejected(
    pool: &PgPool,
    provider: &str,
    dedupe_key: &str,
    raw_body: &str,
    raw: &[u8],
    reason: &str,
    headers: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_inbox (provider, dedupe_key, event_type, payload, headers, status, last_error, \
                                    raw_body, raw, processed_at) \
         VALUES ($1, $2, '', '{}'::jsonb, $3, 'rejected', $4, $5, $6, now()) \
         ON CONFLICT (provider, dedupe_key) DO NOTHING",
    )
    .bind(provider)
    .bind(dedupe_key)
    .bind(headers)
    .bind(reason)
    .bind(raw_body)
    .bind(raw)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
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
    pub status: InboxStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub processed_at: Option<OffsetDateTime>,
    /// The body of a `rejected` delivery (not JSON), as text.
    #[serde(skip)]
    pub raw_body: Option<String>,
    /// The bytes as received, when `payload` is not them: a `rejected` delivery, or a repaired one.
    #[serde(skip)]
    pub raw: Option<Vec<u8>>,
    /// Whether `payload` is a repaired copy of the delivery (`\u0000`, lone surrogates → U+FFFD).
    pub payload_repaired: bool,
}

impl InboxRow {
    /// Whether processing already reached a final status (a retried job must not apply it again).
    pub fn is_finished(&self) -> bool {
        self.status != InboxStatus::Pending
    }
}

const COLUMNS: &str = "id, provider, dedupe_key, event_type, tenant_id, payload, headers, status, attempts, \
     last_error, received_at, processed_at, raw_body, raw, payload_repaired";

/// The row, if it exists.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<InboxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_inbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// What an operator lists deliveries by.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub provider: Option<String>,
    pub status: Option<InboxStatus>,
    pub event_type: Option<String>,
    pub tenant_id: Option<TenantId>,
    /// A Salla store id (`merchant` of the payload).
    pub merchant_id: Option<MerchantId>,
    /// Deliveries with an id below this one (paging backwards).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Stored deliveries matching `filter`, newest first.
pub async fn list(pool: &PgPool, filter: &InboxFilter) -> Result<Vec<InboxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_inbox \
         WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR status = $2) \
           AND ($3::text IS NULL OR event_type = $3) AND ($4::uuid IS NULL OR tenant_id = $4) \
           AND ($5::bigint IS NULL OR (provider = 'salla' AND payload ->> 'merchant' = $5::text)) \
           AND ($6::bigint IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    )))
    .bind(&filter.provider)
    .bind(filter.status)
    .bind(&filter.event_type)
    .bind(filter.tenant_id)
    .bind(filter.merchant_id)
    .bind(filter.before)
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

/// An earlier delivery about some provider object: what order-independent processing looks back at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PastEvent {
    pub id: i64,
    pub event_type: String,
    /// The payload's `data`.
    pub data: serde_json::Value,
}

/// Deliveries of `provider` of one of `event_types` about the object `object_id` (the payload's
/// `data.id`), oldest first (through `webhook_inbox_object`).
pub async fn events_about(
    pool: &PgPool,
    provider: &str,
    event_types: &[&str],
    object_id: &str,
) -> Result<Vec<PastEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_type, payload -> 'data' AS data FROM webhook_inbox \
         WHERE provider = $1 AND event_type = ANY($2) AND payload -> 'data' ->> 'id' = $3 ORDER BY id",
    )
    .bind(provider)
    .bind(event_types)
    .bind(object_id)
    .fetch_all(pool)
    .await
}

/// Deliveries of `provider` of one of `event_types` whose payload holds `value` at `path` (JSON keys from
/// the top), oldest first. Not indexed: for rare lookups (a user's memberships when the user changes).
pub async fn events_with(
    pool: &PgPool,
    provider: &str,
    event_types: &[&str],
    path: &[&str],
    value: &str,
) -> Result<Vec<PastEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_type, payload -> 'data' AS data FROM webhook_inbox \
         WHERE provider = $1 AND event_type = ANY($2) AND payload #>> $3 = $4 ORDER BY id",
    )
    .bind(provider)
    .bind(event_types)
    .bind(path)
    .bind(value)
    .fetch_all(pool)
    .await
}

/// Counts one processing attempt and returns the row as it now is (`None` if it does not exist).
pub(super) async fn begin_attempt(pool: &PgPool, id: i64) -> Result<Option<InboxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_inbox SET attempts = attempts + 1 WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A failed attempt that will be retried: the row stays `pending`, the error is kept.
pub(super) async fn record_error(pool: &PgPool, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_inbox SET last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records the final status (about `tenant_id`, when known); `note` is kept in `last_error` for operators.
pub(super) async fn finish(
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
    .bind(status)
    .bind(tenant_id)
    .bind(note)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes a stored delivery pending again and enqueues `job` for it, in one transaction.
pub(super) async fn reset_for_replay(
    pool: &PgPool,
    jobs: &JobQueue,
    id: i64,
    job: NewJob,
) -> Result<crate::jobs::JobId, sqlx::Error> {
    let mut tx = pool.begin().await?;
    reset(&mut tx, id).await?;
    let job_id = jobs.enqueue_in(&mut tx, job).await?.id();
    tx.commit().await?;
    Ok(job_id)
}

async fn reset(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_inbox SET status = 'pending', attempts = 0, last_error = NULL, processed_at = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
