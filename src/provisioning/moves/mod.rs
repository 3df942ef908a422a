//! Moving a tenant's database to another tenant server (`wosool tenants move ID --to SERVER`,
//! `POST /api/admin/tenants/{id}/move`; docs/moves.md): how an operator drains a server or rebalances a fleet.
//!
//! A move is a row of `tenant_moves`, a state machine driven by the `tenant.move` job; each step is idempotent,
//! so a crash (the job's lease expires, another worker takes it) resumes at the recorded state:
//!
//! 1. `prepared` → `read_only`: the tenant's read-only flag is set (HTTP writes answer 503 `tenant_read_only`,
//!    on every replica as its cached tenant is invalidated), then the source database itself is frozen
//!    ([`database::freeze`]): read-only for new sessions, running transactions given
//!    `tenancy.moves.drain_timeout_ms`, every older session ended. From then on nothing can write to the
//!    source: not a replica with a stale cache, not a background job (their writes fail with SQLSTATE 25006,
//!    which the API answers as 503 `tenant_read_only` and the job queue defers without counting an attempt).
//! 2. `read_only` → `copied`: the target database (created empty before the window) is filled by
//!    `pg_dump | pg_restore`.
//! 3. `copied` → `verified`: exact row counts of every table, and the tenant migration version, are equal on
//!    both servers.
//! 4. `verified` → `switched`: in one registry transaction the tenant points at the target and its read-only
//!    flag is lifted; caches and pools are invalidated on every replica; the drop of the source is scheduled
//!    `tenancy.moves.drop_source_after_secs` later (the `tenant.move_drop_source` job → `source_dropped`).
//!
//! A failure before the switch, or an operator's abort, rolls back: the source is writable again, the tenant's
//! flag back to what it was, the half-made target dropped; the move ends `failed` (with the reason) or
//! `aborted`. After the switch there is nothing to roll back: moving back is another move.

mod database;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use self::database::DbStepError;
pub use self::database::{Census, census};
use super::lifecycle::Actor;
use crate::audit::{Event, Origin, Via};
use crate::core::Core;
use crate::db::violation;
use crate::jobs::{Job, JobContext, JobError, NewJob, Registry};
use crate::string_enum::string_enum;
use crate::tenancy::registry;
use crate::tenancy::{DbName, LookupKey, Slug, Tenant, TenantId, TenantStatus};

/// What the tenant's users are told while their data moves ("The organization is read-only for now: …").
pub const READ_ONLY_REASON: &str = "its data is being moved to another database server";

/// Advisory lock namespace of per-tenant move work (steps and source drops never run at once for one tenant).
const LOCK_NAMESPACE: i32 = 727_205;

string_enum! {
    /// Where a move is.
    pub enum MoveState {
        Prepared = "prepared",
        ReadOnly = "read_only",
        Copied = "copied",
        Verified = "verified",
        Switched = "switched",
        SourceDropped = "source_dropped",
        Failed = "failed",
        Aborted = "aborted",
    }
}

impl MoveState {
    /// Before the switch: the move is active (one per tenant), abortable, and a failure rolls it back.
    pub fn is_before_switch(self) -> bool {
        matches!(
            self,
            Self::Prepared | Self::ReadOnly | Self::Copied | Self::Verified
        )
    }
}

/// One move, as stored and as the admin API and CLI show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantMove {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub source_server: String,
    pub target_server: String,
    pub db_name: String,
    pub state: MoveState,
    pub requested_by: String,
    pub prior_read_only_reason: Option<String>,
    pub error: Option<String>,
    pub abort_requested_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_only_started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_only_ended_at: Option<OffsetDateTime>,
    /// How long the tenant was (or has been, while the move runs) read-only.
    pub read_only_seconds: Option<f64>,
    pub copy_ms: Option<i64>,
    pub source_bytes: Option<i64>,
    pub row_counts: Option<serde_json::Value>,
    pub schema_version: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub drop_source_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

const MOVE_COLUMNS: &str = "id, tenant_id, source_server, target_server, db_name, state, requested_by, \
     prior_read_only_reason, error, abort_requested_by, read_only_started_at, read_only_ended_at, \
     extract(epoch FROM coalesce(read_only_ended_at, now()) - read_only_started_at)::float8 AS read_only_seconds, \
     copy_ms, source_bytes, row_counts, schema_version, drop_source_at, created_at, updated_at, finished_at";

/// The job that drives a move through its steps (or rolls it back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveTenant {
    pub move_id: Uuid,
}

impl Job for MoveTenant {
    const KIND: &'static str = "tenant.move";
    // Attempts are spent only by crashes and registry outages: a failed step rolls the move back instead.
    const MAX_ATTEMPTS: Option<i32> = Some(25);
}

/// The delayed job that drops a moved tenant's old database once the grace period is over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropMoveSource {
    pub move_id: Uuid,
}

impl Job for DropMoveSource {
    const KIND: &'static str = "tenant.move_drop_source";
    const MAX_ATTEMPTS: Option<i32> = Some(10);
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("no such tenant")]
    TenantNotFound,
    #[error("unknown tenant server {given:?}; the configured ones are: {known}")]
    UnknownServer { given: String, known: String },
    #[error("the tenant's database is already on {0}")]
    SameServer(String),
    #[error("the tenant is {0}; only ready or suspended tenants can be moved")]
    NotMovable(TenantStatus),
    #[error("the tenant is already being moved (move {0})")]
    InProgress(Uuid),
    #[error("the tenant has never been moved")]
    NoMove,
    #[error("the move is {0}: only a move before its switch can be aborted")]
    NotAbortable(MoveState),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("enqueueing the move failed: {0}")]
    Enqueue(#[from] serde_json::Error),
}

/// Why a step failed: the move rolls back with this as its reason.
#[derive(Debug, thiserror::Error)]
enum StepFailure {
    #[error(transparent)]
    Database(#[from] DbStepError),
    #[error("{0}")]
    Refused(String),
    #[error("registry: {0}")]
    Registry(#[from] sqlx::Error),
    #[error(transparent)]
    Server(#[from] crate::tenancy::servers::ServerError),
}

/// The move service: starting, aborting, reading moves, and the jobs' work. Cheap to clone.
#[derive(Clone)]
pub struct TenantMoves {
    core: Core,
}

impl TenantMoves {
    pub fn new(core: Core) -> Self {
        Self { core }
    }

    fn db(&self) -> &sqlx::PgPool {
        self.core.db()
    }

    async fn find_tenant(&self, id_or_slug: &str) -> Result<Tenant, MoveError> {
        let key = match id_or_slug.parse::<TenantId>() {
            Ok(id) => LookupKey::Id(id),
            Err(_) => {
                LookupKey::Slug(Slug::parse(id_or_slug).map_err(|_| MoveError::TenantNotFound)?)
            }
        };
        registry::find(self.db(), &key)
            .await?
            .ok_or(MoveError::TenantNotFound)
    }

    /// Starts moving a tenant's database to server `target`: records the move and enqueues its job; the
    /// move runs on a worker. 409 (`InProgress`) while another move of the tenant has not switched yet.
    pub async fn start(
        &self,
        id_or_slug: &str,
        target: &str,
        actor: &Actor,
    ) -> Result<TenantMove, MoveError> {
        let tenant = self.find_tenant(id_or_slug).await?;
        let servers = self.core.servers();
        if servers.get(target).is_err() {
            let known: Vec<&str> = servers.all().iter().map(|s| s.key.as_str()).collect();
            return Err(MoveError::UnknownServer {
                given: target.to_owned(),
                known: known.join(", "),
            });
        }
        if tenant.db_server == target {
            return Err(MoveError::SameServer(target.to_owned()));
        }
        if !matches!(tenant.status, TenantStatus::Ready | TenantStatus::Suspended) {
            return Err(MoveError::NotMovable(tenant.status));
        }
        let id = Uuid::new_v4();
        let mut tx = self.db().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenant_moves (id, tenant_id, source_server, target_server, db_name, requested_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant.id)
        .bind(&tenant.db_server)
        .bind(target)
        .bind(tenant.db_name.as_str())
        .bind(&actor.name)
        .execute(&mut *tx)
        .await;
        if let Err(error) = inserted {
            if violation::unique_constraint(&error) == Some("tenant_moves_one_active") {
                drop(tx);
                let active = self.latest_of(tenant.id).await?.ok_or(MoveError::NoMove)?;
                return Err(MoveError::InProgress(active.id));
            }
            return Err(error.into());
        }
        self.core
            .jobs()
            .enqueue_in(&mut tx, move_job(tenant.id, id)?)
            .await?;
        operator_event(actor, "tenant.move_requested", tenant.id)
            .details(json!({ "move_id": id, "from": tenant.db_server, "to": target }))
            .write_global(&mut tx)
            .await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant.id, move_id = %id, from = %tenant.db_server, to = %target, actor = %actor.name, "tenant move requested");
        self.get(id).await?.ok_or(MoveError::NoMove)
    }

    /// Asks a move that has not switched yet to roll back (at its next step boundary: a running copy
    /// finishes first). The move ends `aborted`.
    pub async fn abort(&self, id_or_slug: &str, actor: &Actor) -> Result<TenantMove, MoveError> {
        let tenant = self.find_tenant(id_or_slug).await?;
        let latest = self.latest_of(tenant.id).await?.ok_or(MoveError::NoMove)?;
        if !latest.state.is_before_switch() {
            return Err(MoveError::NotAbortable(latest.state));
        }
        let updated = sqlx::query(
            "UPDATE tenant_moves SET abort_requested_by = coalesce(abort_requested_by, $2), updated_at = now() \
             WHERE id = $1 AND state IN ('prepared', 'read_only', 'copied', 'verified')",
        )
        .bind(latest.id)
        .bind(&actor.name)
        .execute(self.db())
        .await?;
        if updated.rows_affected() == 0 {
            let now = self.get(latest.id).await?.ok_or(MoveError::NoMove)?;
            return Err(MoveError::NotAbortable(now.state));
        }
        // The move's job may be gone (discarded after a long outage): this one rolls it back either way.
        let mut conn = self.db().acquire().await?;
        self.core
            .jobs()
            .enqueue_in(&mut conn, move_job(tenant.id, latest.id)?)
            .await?;
        operator_event(actor, "tenant.move_abort_requested", tenant.id)
            .details(json!({ "move_id": latest.id, "state": latest.state }))
            .write_global(&mut conn)
            .await?;
        tracing::info!(tenant_id = %tenant.id, move_id = %latest.id, actor = %actor.name, "tenant move abort requested");
        self.get(latest.id).await?.ok_or(MoveError::NoMove)
    }

    /// The tenant's most recent move.
    pub async fn latest(&self, id_or_slug: &str) -> Result<TenantMove, MoveError> {
        let tenant = self.find_tenant(id_or_slug).await?;
        self.latest_of(tenant.id).await?.ok_or(MoveError::NoMove)
    }

    async fn latest_of(&self, tenant: TenantId) -> Result<Option<TenantMove>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MOVE_COLUMNS} FROM tenant_moves WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(tenant)
        .fetch_optional(self.db())
        .await
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<TenantMove>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MOVE_COLUMNS} FROM tenant_moves WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db())
        .await
    }

    /// The `tenant.move` job: runs the move from its recorded state to the switch, or rolls it back.
    pub async fn run(&self, ctx: &JobContext, move_id: Uuid) -> Result<(), JobError> {
        let Some(first) = self.get(move_id).await? else {
            return Err(JobError::permanent(format!(
                "move {move_id} does not exist"
            )));
        };
        let Some(_lock) = TenantLock::acquire(self.db(), first.tenant_id).await? else {
            return Err(JobError::defer(
                "another step of this tenant's moves is running",
            ));
        };
        loop {
            let record = self
                .get(move_id)
                .await?
                .ok_or_else(|| JobError::permanent(format!("move {move_id} disappeared")))?;
            if !record.state.is_before_switch() {
                return Ok(());
            }
            if record.error.is_some() || record.abort_requested_by.is_some() {
                return self.roll_back(&record).await.map_err(|e| {
                    tracing::error!(tenant_id = %record.tenant_id, move_id = %record.id, error = %e, "rolling back a tenant move failed; retrying");
                    JobError::retry(format!("rolling back: {e}"))
                });
            }
            if ctx.shutdown.is_cancelled() {
                return Err(JobError::retry(format!(
                    "worker shutting down; the move resumes at {}",
                    record.state
                )));
            }
            let started = std::time::Instant::now();
            match self.step(&record).await {
                Ok(next) => {
                    tracing::info!(tenant_id = %record.tenant_id, move_id = %record.id, from = %record.state, to = %next, elapsed_ms = started.elapsed().as_millis() as u64, "tenant move step done");
                }
                Err(failure) => {
                    tracing::warn!(tenant_id = %record.tenant_id, move_id = %record.id, state = %record.state, error = %failure, "tenant move step failed; rolling back");
                    sqlx::query(
                        "UPDATE tenant_moves SET error = $2, updated_at = now() WHERE id = $1 AND error IS NULL",
                    )
                    .bind(move_id)
                    .bind(format!("{}: {failure}", record.state))
                    .execute(self.db())
                    .await?;
                }
            }
        }
    }

    /// Runs the steps of a move until it reaches `until` (or is no longer before its switch) and stops there,
    /// as a crash after that step would: its job then resumes it. For tests and for stepping through a move by
    /// hand. A failed step is returned, not rolled back (the job rolls it back).
    pub async fn advance_to(&self, move_id: Uuid, until: MoveState) -> Result<TenantMove, String> {
        loop {
            let record = self
                .get(move_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no such move")?;
            if record.state == until || !record.state.is_before_switch() {
                return Ok(record);
            }
            self.step(&record).await.map_err(|e| e.to_string())?;
        }
    }

    /// One step from `record.state`; returns the state reached.
    async fn step(&self, record: &TenantMove) -> Result<MoveState, StepFailure> {
        let servers = self.core.servers();
        let source = servers.get(&record.source_server)?;
        let target = servers.get(&record.target_server)?;
        let db = DbName::try_from(record.db_name.clone())
            .map_err(|e| StepFailure::Refused(format!("database name: {e}")))?;
        let config = &self.core.config().tenancy;
        let next = match record.state {
            MoveState::Prepared => {
                let tenant = registry::find(self.db(), &LookupKey::Id(record.tenant_id))
                    .await?
                    .ok_or_else(|| StepFailure::Refused("the tenant is gone".into()))?;
                if tenant.db_server != record.source_server {
                    return Err(StepFailure::Refused(format!(
                        "the tenant is on {}, not {}",
                        tenant.db_server, record.source_server
                    )));
                }
                if !matches!(tenant.status, TenantStatus::Ready | TenantStatus::Suspended) {
                    return Err(StepFailure::Refused(format!(
                        "the tenant is {}",
                        tenant.status
                    )));
                }
                // The target's empty database is made before the window (a leftover of an earlier move is
                // replaced).
                database::recreate(target, &db).await?;
                // The tenant's own read-only reason is kept once, before the move replaces it (a resumed
                // step finds the move's reason there and must not keep that).
                sqlx::query(
                    "UPDATE tenant_moves SET prior_read_only_reason = $2, read_only_started_at = now(), \
                     updated_at = now() WHERE id = $1 AND read_only_started_at IS NULL",
                )
                .bind(record.id)
                .bind(&tenant.read_only_reason)
                .execute(self.db())
                .await?;
                self.core
                    .directory()
                    .set_read_only(tenant.id, Some(READ_ONLY_REASON))
                    .await?;
                database::freeze(
                    source,
                    &db,
                    Duration::from_millis(config.moves.drain_timeout_ms),
                )
                .await?;
                let bytes = source.database_size(&db).await?;
                self.advance(record.id, MoveState::ReadOnly, "source_bytes = $3", bytes)
                    .await?;
                MoveState::ReadOnly
            }
            MoveState::ReadOnly => {
                database::ensure_empty(target, &db).await?;
                let copied = database::copy(
                    servers,
                    source,
                    target,
                    &db,
                    (&config.pg_dump_path, &config.moves.pg_restore_path),
                    Duration::from_secs(config.moves.copy_timeout_secs),
                )
                .await?;
                self.advance(
                    record.id,
                    MoveState::Copied,
                    "copy_ms = $3",
                    Some(copied.elapsed.as_millis() as i64),
                )
                .await?;
                MoveState::Copied
            }
            MoveState::Copied => {
                let (on_source, on_target) = tokio::join!(census(source, &db), census(target, &db));
                let (on_source, on_target) = (on_source?, on_target?);
                let differences = database::differences(&on_source, &on_target);
                if !differences.is_empty() {
                    return Err(DbStepError::Mismatch(differences.join("; ")).into());
                }
                sqlx::query(
                    "UPDATE tenant_moves SET state = 'verified', row_counts = $2, schema_version = $3, \
                     updated_at = now() WHERE id = $1 AND state = 'copied'",
                )
                .bind(record.id)
                .bind(serde_json::to_value(&on_source.rows).unwrap_or_default())
                .bind(on_source.schema_version)
                .execute(self.db())
                .await?;
                MoveState::Verified
            }
            MoveState::Verified => {
                self.switch(record).await?;
                MoveState::Switched
            }
            other => return Err(StepFailure::Refused(format!("no step from {other}"))),
        };
        Ok(next)
    }

    /// Moves the record from its state to `to`, setting one more column (`extra`, bound as `$3`).
    async fn advance(
        &self,
        id: Uuid,
        to: MoveState,
        extra: &str,
        value: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenant_moves SET state = $2, {extra}, updated_at = now() WHERE id = $1"
        )))
        .bind(id)
        .bind(to)
        .bind(value)
        .execute(self.db())
        .await
        .map(drop)
    }

    /// The switch: registry, move record, drop job and audit entry in one transaction; then caches and pools.
    async fn switch(&self, record: &TenantMove) -> Result<(), StepFailure> {
        let grace = self.core.config().tenancy.moves.drop_source_after_secs;
        let mut tx = self.db().begin().await?;
        let Some(tenant) = registry::switch_server(
            &mut tx,
            record.tenant_id,
            &record.source_server,
            &record.target_server,
            record.prior_read_only_reason.as_deref(),
        )
        .await?
        else {
            return Err(StepFailure::Refused(format!(
                "the tenant is no longer served from {}",
                record.source_server
            )));
        };
        let (drop_at, seconds): (OffsetDateTime, f64) = sqlx::query_as(
            "UPDATE tenant_moves SET state = 'switched', read_only_ended_at = now(), \
                 drop_source_at = now() + $2 * interval '1 second', updated_at = now() \
             WHERE id = $1 AND state = 'verified' \
             RETURNING drop_source_at, extract(epoch FROM read_only_ended_at - read_only_started_at)::float8",
        )
        .bind(record.id)
        .bind(grace as i64)
        .fetch_one(&mut *tx)
        .await?;
        self.core
            .jobs()
            .enqueue_in(
                &mut tx,
                NewJob::new(&DropMoveSource { move_id: record.id })
                    .map_err(|e| StepFailure::Refused(e.to_string()))?
                    .for_tenant(record.tenant_id)
                    .unique_key(record.id.to_string())
                    .run_at(drop_at),
            )
            .await?;
        let rows: i64 = record
            .row_counts
            .as_ref()
            .and_then(|c| c.as_object())
            .map(|c| c.values().filter_map(|v| v.as_i64()).sum())
            .unwrap_or_default();
        Event::by("system", Via::System, "tenant.moved")
            .on_tenant(tenant.id)
            .resource(format!("tenant:{}", tenant.id))
            .change(
                json!({ "db_server": record.source_server }),
                json!({ "db_server": record.target_server }),
            )
            .details(json!({
                "move_id": record.id,
                "database": record.db_name,
                "rows": rows,
                "read_only_seconds": seconds,
                "source_dropped_at": drop_at.format(&time::format_description::well_known::Rfc3339).ok(),
            }))
            .write_global(&mut tx)
            .await?;
        tx.commit().await?;
        // Every replica drops its cached tenant (pub/sub) and, with it, its pool of the old location.
        self.core.directory().invalidate(tenant.id, &[]).await;
        self.core.pools().evict(tenant.id).await;
        metrics::histogram!("tenant_move_read_only_seconds").record(seconds);
        metrics::counter!("tenant_moves_total", "outcome" => "succeeded").increment(1);
        tracing::info!(tenant_id = %tenant.id, move_id = %record.id, from = %record.source_server, to = %record.target_server, read_only_seconds = seconds, "tenant moved");
        Ok(())
    }

    /// Undoes a move before its switch: the source writable, the tenant's flag as it was, the target dropped.
    async fn roll_back(&self, record: &TenantMove) -> Result<(), StepFailure> {
        let servers = self.core.servers();
        let source = servers.get(&record.source_server)?;
        let db = DbName::try_from(record.db_name.clone())
            .map_err(|e| StepFailure::Refused(format!("database name: {e}")))?;
        let failed = record.error.is_some();
        // The tenant's availability first, the leftover copy after.
        if record.read_only_started_at.is_some() {
            database::thaw(source, &db).await?;
            self.core
                .directory()
                .set_read_only(record.tenant_id, record.prior_read_only_reason.as_deref())
                .await?;
        }
        let mut leftover = None;
        // Never the tenant's live database: only when the registry does not place the tenant on the target.
        let lives_on_target = registry::find(self.db(), &LookupKey::Id(record.tenant_id))
            .await?
            .is_some_and(|t| t.db_server == record.target_server);
        if !lives_on_target {
            let target = servers.get(&record.target_server)?;
            if let Err(error) = database::drop_database(target, &db).await {
                // The operators hear of it with the move's notice below.
                tracing::error!(tenant_id = %record.tenant_id, move_id = %record.id, server = %record.target_server, error = %error, "could not drop the half-made copy of a failed tenant move; drop it by hand");
                leftover = Some(error.to_string());
            }
        }
        let (outcome, action) = if failed {
            (MoveState::Failed, "tenant.move_failed")
        } else {
            (MoveState::Aborted, "tenant.move_aborted")
        };
        let mut tx = self.db().begin().await?;
        let seconds: Option<Option<f64>> = sqlx::query_scalar(
            "UPDATE tenant_moves SET state = $2, finished_at = now(), updated_at = now(), \
                 read_only_ended_at = CASE WHEN read_only_started_at IS NULL THEN NULL \
                                           ELSE coalesce(read_only_ended_at, now()) END \
             WHERE id = $1 AND state IN ('prepared', 'read_only', 'copied', 'verified') \
             RETURNING extract(epoch FROM read_only_ended_at - read_only_started_at)::float8",
        )
        .bind(record.id)
        .bind(outcome)
        .fetch_optional(&mut *tx)
        .await?;
        let actor = record.abort_requested_by.as_deref().unwrap_or("system");
        let via = if failed { Via::System } else { via_of(actor) };
        Event::by(actor, via, action)
            .on_tenant(record.tenant_id)
            .resource(format!("tenant:{}", record.tenant_id))
            .details(json!({
                "move_id": record.id,
                "from": record.source_server,
                "to": record.target_server,
                "state": record.state,
                "error": record.error,
                "target_left_behind": leftover,
            }))
            .write_global(&mut tx)
            .await?;
        tx.commit().await?;
        if let Some(Some(seconds)) = seconds {
            metrics::histogram!("tenant_move_read_only_seconds").record(seconds);
        }
        metrics::counter!("tenant_moves_total", "outcome" => outcome.as_str()).increment(1);
        if failed || leftover.is_some() {
            let mut error = record.error.clone().unwrap_or_else(|| "aborted".to_owned());
            if let Some(left) = &leftover {
                error.push_str(&format!(
                    "; its copy on {} could not be dropped ({left}): drop database {} there by hand",
                    record.target_server, record.db_name
                ));
            }
            let notice = crate::notify::Notice::TenantMoveFailed {
                tenant_id: record.tenant_id,
                from_server: record.source_server.clone(),
                to_server: record.target_server.clone(),
                error,
            };
            if let Err(error) = crate::notify::enqueue(self.db(), &notice).await {
                tracing::warn!(tenant_id = %record.tenant_id, %error, "could not raise the tenant_move_failed notice");
            }
        }
        if failed {
            tracing::error!(tenant_id = %record.tenant_id, move_id = %record.id, from = %record.source_server, to = %record.target_server, error = record.error.as_deref().unwrap_or_default(), "tenant move failed; rolled back, the tenant stays on its server");
        } else {
            tracing::info!(tenant_id = %record.tenant_id, move_id = %record.id, actor, "tenant move aborted; rolled back");
        }
        Ok(())
    }

    /// The `tenant.move_drop_source` job: drops the old database of a switched move, unless the tenant lives
    /// there again (moved back) or a move of it to that server is under way.
    pub async fn drop_source(&self, move_id: Uuid) -> Result<(), JobError> {
        let Some(record) = self.get(move_id).await? else {
            return Ok(());
        };
        if record.state != MoveState::Switched {
            return Ok(());
        }
        let Some(_lock) = TenantLock::acquire(self.db(), record.tenant_id).await? else {
            return Err(JobError::defer("a move step of this tenant is running"));
        };
        let tenant = registry::find(self.db(), &LookupKey::Id(record.tenant_id)).await?;
        let lives_there = tenant.as_ref().is_some_and(|t| {
            t.db_server == record.source_server && t.db_name.as_str() == record.db_name
        });
        let incoming: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tenant_moves WHERE tenant_id = $1 AND target_server = $2 \
             AND state IN ('prepared', 'read_only', 'copied', 'verified'))",
        )
        .bind(record.tenant_id)
        .bind(&record.source_server)
        .fetch_one(self.db())
        .await?;
        let skipped = lives_there || incoming;
        if !skipped {
            let server = self
                .core
                .servers()
                .get(&record.source_server)
                .map_err(JobError::permanent)?;
            let db = DbName::try_from(record.db_name.clone()).map_err(JobError::permanent)?;
            server.drop_database(&db).await.map_err(JobError::retry)?;
        }
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "UPDATE tenant_moves SET state = 'source_dropped', finished_at = now(), updated_at = now() \
             WHERE id = $1 AND state = 'switched'",
        )
        .bind(move_id)
        .execute(&mut *tx)
        .await?;
        Event::by("system", Via::System, "tenant.move_source_dropped")
            .on_tenant(record.tenant_id)
            .resource(format!("tenant:{}", record.tenant_id))
            .details(json!({
                "move_id": move_id,
                "server": record.source_server,
                "database": record.db_name,
                "skipped": skipped,
            }))
            .write_global(&mut tx)
            .await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %record.tenant_id, move_id = %move_id, server = %record.source_server, skipped, "old database of a moved tenant dropped");
        Ok(())
    }
}

fn move_job(tenant: TenantId, move_id: Uuid) -> Result<NewJob, serde_json::Error> {
    Ok(NewJob::new(&MoveTenant { move_id })?
        .for_tenant(tenant)
        .unique_key(move_id.to_string())
        .priority(10))
}

fn via_of(actor: &str) -> Via {
    if actor.starts_with("admin:") || actor.starts_with("cli:") {
        Via::Operator
    } else {
        Via::System
    }
}

fn operator_event(actor: &Actor, action: &str, tenant: TenantId) -> Event {
    Event::by(&actor.name, via_of(&actor.name), action)
        .origin(&Origin {
            request_id: actor.request_id.clone(),
            ip: actor.ip,
            user_agent: actor.user_agent.clone(),
        })
        .on_tenant(tenant)
        .resource(format!("tenant:{tenant}"))
}

/// A session advisory lock per tenant on a connection of its own (never a pooled one: a job cut off while
/// holding it must not hand a locked session back to the pool; closing the connection releases it).
struct TenantLock {
    _conn: PgConnection,
}

impl TenantLock {
    async fn acquire(pool: &sqlx::PgPool, tenant: TenantId) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(LOCK_NAMESPACE)
            .bind(tenant.to_string())
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Self { _conn: conn }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }
}

/// Registers the move jobs.
pub fn register_jobs(registry: &mut Registry, moves: TenantMoves) {
    let for_drop = moves.clone();
    registry.register(move |ctx, job: MoveTenant| {
        let moves = moves.clone();
        async move { moves.run(&ctx, job.move_id).await }
    });
    registry.register(move |_ctx, job: DropMoveSource| {
        let moves = for_drop.clone();
        async move { moves.drop_source(job.move_id).await }
    });
}
