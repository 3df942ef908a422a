//! The backup history in the global database: sets, each database's outcome, tenant restores awaiting
//! confirmation, and drills. What the admin API, the failing-tenant gauge and `wosool backup list` read.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::manifest::Entry;
use crate::tenancy::TenantId;

pub async fn start_set(db: &PgPool, id: &str, target: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO backup_sets (id, target) VALUES ($1, $2)")
        .bind(id)
        .bind(target)
        .execute(db)
        .await
        .map(drop)
}

pub async fn record_entry(db: &PgPool, set_id: &str, entry: &Entry) -> Result<(), sqlx::Error> {
    let name = match entry.tenant_id {
        Some(id) => id.to_string(),
        None => entry.name.clone(),
    };
    sqlx::query(
        "INSERT INTO backup_entries (set_id, scope, name, tenant_id, database, status, error, object, \
             schema_version, size_bytes, sha256, duration_ms, encrypted, key_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (set_id, scope, name) DO UPDATE SET status = EXCLUDED.status, error = EXCLUDED.error, \
             size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, finished_at = now()",
    )
    .bind(set_id)
    .bind(entry.scope.as_str())
    .bind(name)
    .bind(entry.tenant_id)
    .bind(&entry.database)
    .bind(&entry.status)
    .bind(&entry.error)
    .bind(&entry.object)
    .bind(entry.schema_version)
    .bind(entry.size_bytes as i64)
    .bind(&entry.sha256)
    .bind(entry.duration_ms as i64)
    .bind(entry.encrypted)
    .bind(&entry.key_id)
    .execute(db)
    .await
    .map(drop)
}

pub async fn finish_set(
    db: &PgPool,
    id: &str,
    status: &str,
    databases: usize,
    failures: usize,
    bytes: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE backup_sets SET finished_at = now(), status = $2, databases = $3, failures = $4, bytes = $5 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(databases as i32)
    .bind(failures as i32)
    .bind(bytes as i64)
    .execute(db)
    .await
    .map(drop)
}

pub async fn mark_pruned(db: &PgPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backup_sets SET pruned_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .map(drop)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SetRow {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub status: String,
    pub target: String,
    pub databases: i32,
    pub failures: i32,
    pub bytes: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub pruned_at: Option<OffsetDateTime>,
}

const SET_COLUMNS: &str =
    "id, started_at, finished_at, status, target, databases, failures, bytes, pruned_at";

/// Sets, newest first.
pub async fn list_sets(db: &PgPool, limit: i64) -> Result<Vec<SetRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SET_COLUMNS} FROM backup_sets ORDER BY id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn find_set(db: &PgPool, id: &str) -> Result<Option<SetRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SET_COLUMNS} FROM backup_sets WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EntryRow {
    pub set_id: String,
    pub scope: String,
    pub name: String,
    pub tenant_id: Option<TenantId>,
    pub database: String,
    pub status: String,
    pub error: Option<String>,
    pub object: String,
    pub schema_version: Option<i64>,
    pub size_bytes: i64,
    pub sha256: String,
    pub duration_ms: i64,
    pub encrypted: bool,
    pub key_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
}

const ENTRY_COLUMNS: &str = "set_id, scope, name, tenant_id, database, status, error, object, \
    schema_version, size_bytes, sha256, duration_ms, encrypted, key_id, finished_at";

pub async fn entries(db: &PgPool, set_id: &str) -> Result<Vec<EntryRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENTRY_COLUMNS} FROM backup_entries WHERE set_id = $1 ORDER BY scope, name"
    )))
    .bind(set_id)
    .fetch_all(db)
    .await
}

/// The tenant's most recent backup attempt (succeeded or not) and its most recent success.
pub async fn tenant_last(
    db: &PgPool,
    tenant: TenantId,
) -> Result<(Option<EntryRow>, Option<EntryRow>), sqlx::Error> {
    let last = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENTRY_COLUMNS} FROM backup_entries WHERE tenant_id = $1 ORDER BY finished_at DESC LIMIT 1"
    )))
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    let success = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENTRY_COLUMNS} FROM backup_entries e WHERE tenant_id = $1 AND status = 'succeeded' \
           AND EXISTS (SELECT 1 FROM backup_sets s WHERE s.id = e.set_id AND s.pruned_at IS NULL) \
         ORDER BY finished_at DESC LIMIT 1"
    )))
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    Ok((last, success))
}

/// A live tenant whose most recent backup attempt failed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FailingTenant {
    pub tenant_id: TenantId,
    pub slug: String,
    pub set_id: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: OffsetDateTime,
}

pub async fn failing_tenants(db: &PgPool) -> Result<Vec<FailingTenant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id AS tenant_id, t.slug, e.set_id, e.error, e.finished_at AS failed_at \
           FROM tenants t \
           JOIN LATERAL (SELECT set_id, status, error, finished_at FROM backup_entries \
                          WHERE tenant_id = t.id ORDER BY finished_at DESC LIMIT 1) e ON true \
          WHERE e.status = 'failed' AND t.status IN ('ready', 'suspended') ORDER BY t.slug",
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DrillRow {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub tenant_id: Option<TenantId>,
    pub set_id: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
}

pub async fn record_drill(
    db: &PgPool,
    tenant: Option<TenantId>,
    set_id: Option<&str>,
    outcome: &str,
    details: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO backup_drills (tenant_id, set_id, outcome, details) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(set_id)
    .bind(outcome)
    .bind(details)
    .execute(db)
    .await
    .map(drop)
}

pub async fn last_drill(db: &PgPool) -> Result<Option<DrillRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, tenant_id, set_id, outcome, details FROM backup_drills ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
}

/// Per scope, when its newest backup succeeded: the end of the newest set in which every database of that
/// scope was stored. From the history, so any replica reports it after a restart (the alert on backup age
/// must not go quiet because the process that ran the backup is gone).
pub async fn last_success_by_scope(db: &PgPool) -> Result<Vec<(String, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.scope, extract(epoch FROM max(s.finished_at))::float8 \
           FROM (SELECT set_id, scope FROM backup_entries GROUP BY set_id, scope \
                  HAVING bool_and(status = 'succeeded')) e \
           JOIN backup_sets s ON s.id = e.set_id \
          WHERE s.finished_at IS NOT NULL \
          GROUP BY e.scope",
    )
    .fetch_all(db)
    .await
}
