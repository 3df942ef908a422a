use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::string_enum::string_enum;
use crate::tenancy::TenantId;

/// A job's payload type. Its `KIND` names it in the queue; the payload is stored as JSON.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: &'static str;
    /// Attempts before the job is discarded; `None` uses `jobs.default_max_attempts`.
    const MAX_ATTEMPTS: Option<i32> = None;
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_enum! {
    pub enum JobState {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Discarded = "discarded",
        Cancelled = "cancelled",
    }
}

/// A job to insert. Build it from a typed payload with [`NewJob::new`], then refine it.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) kind: String,
    pub(crate) payload: serde_json::Value,
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) unique_key: Option<String>,
    pub(crate) run_at: Option<OffsetDateTime>,
    pub(crate) max_attempts: Option<i32>,
    pub(crate) priority: i16,
}

impl NewJob {
    pub fn new<J: Job>(job: &J) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind: J::KIND.to_string(),
            payload: serde_json::to_value(job)?,
            tenant_id: None,
            unique_key: None,
            run_at: None,
            max_attempts: J::MAX_ATTEMPTS,
            priority: 0,
        })
    }

    /// An untyped job (admin API): the caller has checked that `kind` is registered and the payload fits it.
    pub(crate) fn raw(kind: String, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            tenant_id: None,
            unique_key: None,
            run_at: None,
            max_attempts: None,
            priority: 0,
        }
    }

    /// The tenant the work belongs to. Handlers get it back as `ctx.tenant_id`.
    pub fn for_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// While a job of the same kind, tenant and key is pending or running, enqueueing this one is a no-op.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: OffsetDateTime) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn delay(self, by: Duration) -> Self {
        self.run_at(OffsetDateTime::now_utc() + by)
    }

    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Higher runs first among due jobs (default 0).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }
}

/// What a handler learns about the attempt it is running.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: JobId,
    pub kind: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub tenant_id: Option<TenantId>,
    /// Cancelled when the worker shuts down: long handlers should stop at a safe point and return an error
    /// (the job is retried) rather than be cut off when the shutdown timeout expires.
    pub shutdown: CancellationToken,
}

/// How long a deferred job waits before it runs again (a tenant move's read-only window lasts seconds).
pub const DEFER_DELAY: Duration = Duration::from_secs(5);

/// Why an attempt failed, and whether trying again can help.
pub struct JobError {
    message: String,
    permanent: bool,
    /// Try again later without counting the attempt: the work could not be done *yet*.
    deferred: bool,
}

impl JobError {
    /// A failure worth retrying (network, lock timeout, upstream 5xx...). A write refused because the tenant
    /// database is read-only (a tenant move's window, SQLSTATE 25006) is [`Self::defer`]red instead: the job
    /// waits for the window to end without using up its attempts.
    pub fn retry(cause: impl fmt::Display) -> Self {
        let message = cause.to_string();
        Self {
            deferred: crate::db::violation::says_read_only(&message),
            message,
            permanent: false,
        }
    }

    /// A failure no retry will fix (invalid payload, record deleted): the job is discarded at once.
    pub fn permanent(cause: impl fmt::Display) -> Self {
        Self {
            message: cause.to_string(),
            permanent: true,
            deferred: false,
        }
    }

    /// Work that cannot be done yet (e.g. its tenant is read-only while moving): run again after
    /// [`DEFER_DELAY`], the attempt not counted.
    pub fn defer(cause: impl fmt::Display) -> Self {
        Self {
            message: cause.to_string(),
            permanent: false,
            deferred: true,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    pub fn is_deferred(&self) -> bool {
        self.deferred && !self.permanent
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JobError({}{})",
            if self.permanent { "permanent: " } else { "" },
            self.message
        )
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A job as stored, for inspection (admin API, CLI, tests).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobRow {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub tenant_id: Option<TenantId>,
    pub state: String,
    pub priority: i16,
    pub attempts: i32,
    pub max_attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    pub locked_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}
