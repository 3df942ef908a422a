//! The provisioning steps and their records (`provisioning_runs`, `provisioning_steps`).

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::string_enum::string_enum;
use crate::tenancy::TenantId;

string_enum! {
    /// The provisioning steps, in order.
    pub enum Step {
        CreateDatabase = "create_database",
        Migrate = "migrate",
        Seed = "seed",
        Identity = "identity",
        Crm = "crm",
        Finalize = "finalize",
    }
}

impl Step {
    pub fn name(self) -> &'static str {
        self.as_str()
    }

    fn position(self) -> i16 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as i16
    }
}

/// One step as recorded.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StepRecord {
    pub name: String,
    pub status: String,
    pub attempts: i32,
    pub duration_ms: Option<i64>,
    pub detail: Option<String>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl StepRecord {
    pub fn is_done(&self) -> bool {
        self.status == "succeeded" || self.status == "skipped"
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub status: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Creates a run with every step pending.
pub async fn create_run(conn: &mut PgConnection, tenant: TenantId) -> Result<Uuid, sqlx::Error> {
    let run = Uuid::now_v7();
    sqlx::query("INSERT INTO provisioning_runs (id, tenant_id) VALUES ($1, $2)")
        .bind(run)
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
    let positions: Vec<i16> = Step::ALL.iter().map(|s| s.position()).collect();
    sqlx::query(
        "INSERT INTO provisioning_steps (run_id, position, name) SELECT $1, * FROM unnest($2::int2[], $3::text[])",
    )
    .bind(run)
    .bind(positions)
    .bind(names)
    .execute(&mut *conn)
    .await?;
    Ok(run)
}

pub async fn get_run(pool: &PgPool, run: Uuid) -> Result<Option<RunRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, tenant_id, status, error, created_at, started_at, finished_at FROM provisioning_runs WHERE id = $1",
    )
    .bind(run)
    .fetch_optional(pool)
    .await
}

pub async fn latest_run(pool: &PgPool, tenant: TenantId) -> Result<Option<RunRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, tenant_id, status, error, created_at, started_at, finished_at FROM provisioning_runs \
         WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

pub async fn steps_of(pool: &PgPool, run: Uuid) -> Result<Vec<StepRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, status, attempts, duration_ms, detail, error, started_at, finished_at \
         FROM provisioning_steps WHERE run_id = $1 ORDER BY position",
    )
    .bind(run)
    .fetch_all(pool)
    .await
}

pub async fn mark_run_started(pool: &PgPool, run: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provisioning_runs SET status = 'running', error = NULL, started_at = coalesce(started_at, now()) \
         WHERE id = $1",
    )
    .bind(run)
    .execute(pool)
    .await
    .map(drop)
}

pub async fn finish_run(pool: &PgPool, run: Uuid, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provisioning_runs SET status = CASE WHEN $2::text IS NULL THEN 'succeeded' ELSE 'failed' END, \
         error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(run)
    .bind(error)
    .execute(pool)
    .await
    .map(drop)
}

pub async fn mark_step_started(pool: &PgPool, run: Uuid, step: Step) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provisioning_steps SET status = 'running', attempts = attempts + 1, started_at = now(), \
         finished_at = NULL, error = NULL WHERE run_id = $1 AND name = $2",
    )
    .bind(run)
    .bind(step.name())
    .execute(pool)
    .await
    .map(drop)
}

/// Records how a step ended: `succeeded`, `skipped` or `failed`.
pub async fn mark_step_finished(
    pool: &PgPool,
    run: Uuid,
    step: Step,
    status: &str,
    duration_ms: i64,
    detail: Option<&str>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provisioning_steps SET status = $3, duration_ms = $4, detail = $5, error = $6, finished_at = now() \
         WHERE run_id = $1 AND name = $2",
    )
    .bind(run)
    .bind(step.name())
    .bind(status)
    .bind(duration_ms)
    .bind(detail)
    .bind(error)
    .execute(pool)
    .await
    .map(drop)
}

/// Makes a failed run resumable: the run and its failed step go back to pending; done steps stay done.
pub async fn reset_failed(pool: &PgPool, run: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE provisioning_runs SET status = 'pending', error = NULL, finished_at = NULL WHERE id = $1")
        .bind(run)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE provisioning_steps SET status = 'pending' WHERE run_id = $1 AND status IN ('failed', 'running')",
    )
    .bind(run)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Provisioning durations (registration to ready) of the last `n` successful runs: (p50, p95) seconds.
pub async fn duration_percentiles(
    pool: &PgPool,
    n: i64,
) -> Result<(Option<f64>, Option<f64>, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY secs), \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY secs), count(*) \
         FROM (SELECT extract(epoch FROM finished_at - created_at)::float8 AS secs FROM provisioning_runs \
               WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT $1) recent",
    )
    .bind(n)
    .fetch_one(pool)
    .await
}
