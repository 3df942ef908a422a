//! Durable job queue on PostgreSQL (DESIGN §6), modelled on River, Oban and graphile-worker.
//!
//! - [`JobQueue`] enqueues, inside the caller's transaction when given one, so a job exists iff the work that
//!   asked for it committed.
//! - [`Worker`] fetches due jobs in batches with `FOR UPDATE SKIP LOCKED`, runs them under a renewed lease,
//!   retries failures with exponential backoff and jitter, and discards a job after its last attempt.
//!   LISTEN/NOTIFY only wakes it early; polling is what guarantees progress.
//! - [`Registry`] maps job kinds to typed handlers and holds the periodic schedules.

mod background;
mod backoff;
mod job;
mod maintenance;
mod queue;
mod registry;
mod worker;

pub use job::{Job, JobContext, JobError, JobId, JobRow, JobState, NewJob};
pub use maintenance::{PruneFinishedJobs, register_builtin};
pub use queue::{Enqueued, JobFilter, JobQueue, KindStats, enqueue_on};
pub use registry::{PeriodicJob, Registry};
pub use worker::{Worker, WorkerError, WorkerOptions};

/// The NOTIFY channel that wakes idle workers when a job is enqueued.
pub(crate) const NOTIFY_CHANNEL: &str = "wosool_jobs";
