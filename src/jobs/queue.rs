use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::job::{JobId, JobRow, JobState, NewJob};
use crate::tenancy::TenantId;

/// Inserts and inspects jobs. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    pool: PgPool,
    default_max_attempts: i32,
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job row.
    Inserted(JobId),
    /// A live job with the same kind, tenant and unique key already existed; nothing was inserted.
    Duplicate(JobId),
}

impl Enqueued {
    pub fn id(self) -> JobId {
        match self {
            Self::Inserted(id) | Self::Duplicate(id) => id,
        }
    }
}

/// Filter of the admin listing. Results are newest first; `before` pages backwards.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub tenant_id: Option<TenantId>,
    pub before: Option<JobId>,
    pub limit: i64,
}

/// Counts of one kind by state.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct KindStats {
    pub kind: String,
    pub by_state: BTreeMap<String, i64>,
    /// Seconds the oldest due pending job has been waiting, if any.
    pub oldest_due_pending_secs: Option<f64>,
}

const SELECT_JOB: &str = "SELECT id, kind, payload, tenant_id, state, priority, attempts, max_attempts, run_at, \
     locked_by, locked_until, last_error, unique_key, created_at, started_at, finished_at FROM jobs";

impl JobQueue {
    pub fn new(pool: PgPool, default_max_attempts: i32) -> Self {
        Self {
            pool,
            default_max_attempts,
        }
    }

    /// Enqueues in its own transaction.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        self.enqueue_in(&mut conn, job).await
    }

    /// Enqueues on the caller's connection: pass `&mut *tx` to make the job part of a transaction, so it exists
    /// only if the transaction commits (and the NOTIFY fires only then too).
    pub async fn enqueue_in(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
    ) -> Result<Enqueued, sqlx::Error> {
        insert(conn, job, self.default_max_attempts).await
    }

    /// Inserts many jobs in one statement (bulk work such as an import fan-out). Jobs with a unique key that is
    /// already live are skipped. Returns how many were inserted.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<u64, sqlx::Error> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let inserted = self.enqueue_many_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// [`Self::enqueue_many`] on the caller's connection (pass `&mut *tx` to make the jobs part of a
    /// transaction): one statement and one NOTIFY for the whole batch.
    pub async fn enqueue_many_in(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> Result<u64, sqlx::Error> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut kinds = Vec::with_capacity(jobs.len());
        let mut payloads = Vec::with_capacity(jobs.len());
        let mut tenants = Vec::with_capacity(jobs.len());
        let mut keys = Vec::with_capacity(jobs.len());
        let mut run_ats = Vec::with_capacity(jobs.len());
        let mut attempts = Vec::with_capacity(jobs.len());
        let mut priorities = Vec::with_capacity(jobs.len());
        for job in jobs {
            kinds.push(job.kind.clone());
            payloads.push(job.payload.clone());
            tenants.push(job.tenant_id.map(|t| t.as_uuid()));
            keys.push(job.unique_key.clone());
            run_ats.push(job.run_at.unwrap_or_else(OffsetDateTime::now_utc));
            attempts.push(job.max_attempts.unwrap_or(self.default_max_attempts));
            priorities.push(job.priority);
        }
        let inserted_kinds: Vec<String> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, payload, tenant_id, unique_key, run_at, max_attempts, priority) \
             SELECT * FROM unnest($1::text[], $2::jsonb[], $3::uuid[], $4::text[], $5::timestamptz[], \
                                  $6::int[], $7::smallint[]) \
             ON CONFLICT (kind, tenant_id, unique_key) \
                 WHERE unique_key IS NOT NULL AND state IN ('pending', 'running') \
             DO NOTHING \
             RETURNING kind",
        )
        .bind(&kinds)
        .bind(&payloads)
        .bind(&tenants)
        .bind(&keys)
        .bind(&run_ats)
        .bind(&attempts)
        .bind(&priorities)
        .fetch_all(&mut *conn)
        .await?;
        sqlx::query("SELECT pg_notify('wosool_jobs', '')")
            .execute(&mut *conn)
            .await?;
        let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
        for kind in &inserted_kinds {
            *per_kind.entry(kind.clone()).or_default() += 1;
        }
        for (kind, n) in per_kind {
            metrics::counter!("jobs_enqueued_total", "kind" => kind).increment(n);
        }
        Ok(inserted_kinds.len() as u64)
    }

    pub async fn get(&self, id: JobId) -> Result<Option<JobRow>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_JOB} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRow>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_JOB} WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2) \
             AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::bigint IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5"
        )))
        .bind(filter.state)
        .bind(&filter.kind)
        .bind(filter.tenant_id)
        .bind(filter.before)
        .bind(filter.limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await
    }

    /// Counts by kind and state, with the wait of the oldest due pending job per kind.
    pub async fn stats(&self) -> Result<Vec<KindStats>, sqlx::Error> {
        let rows: Vec<(String, String, i64, Option<f64>)> = sqlx::query_as(
            "SELECT kind, state, count(*), \
                    extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'pending' AND run_at <= now()))::float8 \
             FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut stats: BTreeMap<String, KindStats> = BTreeMap::new();
        for (kind, state, count, oldest) in rows {
            let entry = stats.entry(kind.clone()).or_insert_with(|| KindStats {
                kind,
                ..Default::default()
            });
            entry.by_state.insert(state, count);
            if oldest.is_some() {
                entry.oldest_due_pending_secs = oldest;
            }
        }
        Ok(stats.into_values().collect())
    }

    /// Puts a discarded or cancelled job back in the queue with a fresh set of attempts.
    /// Returns false when the job does not exist or is not in a retryable state.
    pub async fn retry(&self, id: JobId) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "WITH updated AS ( \
                 UPDATE jobs SET state = 'pending', attempts = 0, run_at = now(), finished_at = NULL \
                 WHERE id = $1 AND state IN ('discarded', 'cancelled') RETURNING id) \
             SELECT id FROM updated, pg_notify('wosool_jobs', '')",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(result.is_some())
    }

    /// Cancels a pending job. Returns false when the job does not exist or is not pending (a running job is
    /// not interrupted: its handler may be half-way through an external call).
    pub async fn cancel(&self, id: JobId) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Cancels the pending job of `kind` for `tenant` enqueued with `unique_key` (a scheduled job that is no
    /// longer wanted). Returns whether there was one.
    pub async fn cancel_unique(
        &self,
        kind: &str,
        tenant: TenantId,
        unique_key: &str,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = now() \
             WHERE kind = $1 AND tenant_id = $2 AND unique_key = $3 AND state = 'pending'",
        )
        .bind(kind)
        .bind(tenant)
        .bind(unique_key)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Jobs due now and not yet taken: how far behind the workers are.
    pub async fn due(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'pending' AND run_at <= now()")
            .fetch_one(&self.pool)
            .await
    }
}

/// Enqueues on `conn` without a [`JobQueue`] handle, for modules that hold only a connection (such as
/// `notify::enqueue`, which joins its caller's transaction). The job's own `max_attempts` (from
/// `Job::MAX_ATTEMPTS` or [`NewJob::max_attempts`]) applies; without one, `fallback_max_attempts`.
pub async fn enqueue_on(
    conn: &mut PgConnection,
    job: NewJob,
    fallback_max_attempts: i32,
) -> Result<Enqueued, sqlx::Error> {
    insert(conn, job, fallback_max_attempts).await
}

async fn insert(
    conn: &mut PgConnection,
    job: NewJob,
    default_max_attempts: i32,
) -> Result<Enqueued, sqlx::Error> {
    // The live duplicate can finish between our INSERT and our look-up; then inserting again is right.
    for _ in 0..3 {
        let inserted: Option<i64> = sqlx::query_scalar(
            "WITH inserted AS ( \
                 INSERT INTO jobs (kind, payload, tenant_id, unique_key, run_at, max_attempts, priority) \
                 VALUES ($1, $2, $3, $4, coalesce($5, now()), $6, $7) \
                 ON CONFLICT (kind, tenant_id, unique_key) \
                     WHERE unique_key IS NOT NULL AND state IN ('pending', 'running') \
                 DO NOTHING \
                 RETURNING id) \
             SELECT id FROM inserted, pg_notify('wosool_jobs', '')",
        )
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.tenant_id)
        .bind(&job.unique_key)
        .bind(job.run_at)
        .bind(job.max_attempts.unwrap_or(default_max_attempts))
        .bind(job.priority)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = inserted {
            metrics::counter!("jobs_enqueued_total", "kind" => job.kind.clone()).increment(1);
            return Ok(Enqueued::Inserted(JobId(id)));
        }
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE kind = $1 AND tenant_id IS NOT DISTINCT FROM $2 AND unique_key = $3 \
             AND state IN ('pending', 'running')",
        )
        .bind(&job.kind)
        .bind(job.tenant_id)
        .bind(&job.unique_key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = existing {
            return Ok(Enqueued::Duplicate(JobId(id)));
        }
    }
    Err(sqlx::Error::Protocol(
        "unique job kept finishing while being enqueued".into(),
    ))
}
