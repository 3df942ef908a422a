//! The durable webhook inbox (DESIGN §2 "Webhook path"), the sole owner of `webhook_inbox`, for every provider
//! that calls us back (Clerk, Salla).
//!
//! ```text
//! provider ──► Provider::accept: authenticate the raw bytes, read the envelope
//!          ──► group commit: INSERT inbox rows + their processing jobs, one transaction for every delivery
//!              waiting at that moment (unique (provider, dedupe_key)) ──► 2xx once the row is durable
//! worker   ──► process: load the row ──► Provider's dispatch (idempotent effects) ──► processed / ignored /
//!              failed
//! ```
//!
//! A 2xx answer therefore means the delivery is stored and will be processed; a redelivery with the same
//! dedupe key is answered 2xx without storing or enqueueing anything. JSON that `jsonb` cannot hold (`\u0000`,
//! lone surrogates) is made storable for processing ([`storable_json`]) and the bytes as received are kept
//! beside it (`raw`, `payload_repaired`): every authenticated delivery is kept. A new provider costs one [`Provider`]
//! implementation and one dispatch function.

mod commit;
mod process;
mod receive;
mod repair;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use sqlx::PgPool;

pub use commit::Committer;
pub use process::{Outcome, process};
pub use receive::{Received, receive};
pub use repair::storable_json;
pub use store::{
    Delivery, InboxFilter, InboxRow, PastEvent, Stored, events_about, events_with, get, list,
};

use crate::error::ApiError;
use crate::jobs::{JobId, JobQueue, NewJob};
use crate::string_enum::string_enum;

string_enum! {
    /// Status of an inbox row.
    pub enum InboxStatus {
        /// Stored, not processed yet (or being retried).
        Pending = "pending",
        /// Its effects were applied.
        Processed = "processed",
        /// Nothing to do (event type we do not handle, or an event made moot by a later one).
        Ignored = "ignored",
        /// Processing gave up; `last_error` says why.
        Failed = "failed",
        /// Authenticated but unusable (not a JSON event): kept for inspection, never processed.
        Rejected = "rejected",
    }
}

/// Builds the job that applies a stored delivery, from the row's id.
pub type JobFor = fn(i64) -> Result<NewJob, serde_json::Error>;

/// What a provider makes of an authenticated request.
pub enum Accepted {
    /// An event to store and process.
    Event(Delivery),
    /// Authenticated, but not a usable event: kept as `rejected` for inspection (the provider would only send
    /// it again), answered 2xx.
    Unusable {
        dedupe_key: String,
        reason: String,
        headers: serde_json::Value,
    },
}

/// Why a request is refused before anything is stored.
#[derive(Debug)]
pub enum Refusal {
    /// The provider's webhooks are not configured here (503: the provider retries until they are).
    NotConfigured { code: &'static str, message: String },
    /// The signature or credential does not verify (401 `invalid_signature`).
    Unauthenticated(String),
    /// Authenticated, but not an event this provider accepts (400).
    Malformed { code: &'static str, message: String },
}

/// A service that calls us back with webhooks.
pub trait Provider: Send + Sync {
    /// The `provider` column of its rows (`"clerk"`, `"salla"`).
    fn name(&self) -> &'static str;

    /// Authenticates the raw delivery (nothing unauthenticated is parsed or stored) and reads its envelope.
    fn accept(&self, headers: &HeaderMap, body: &Bytes) -> Result<Accepted, Refusal>;

    /// The job that applies a stored delivery (`webhook_inbox.id`), built from the row's id.
    fn job(&self) -> JobFor;

    /// Counts a stored delivery in the provider's own metrics (beyond `webhook_deliveries_total`).
    fn received(&self, _event_type: &str, _stored: Stored) {}
}

/// The inbox: the group committer that stores deliveries, and the providers it knows (for replays).
#[derive(Clone)]
pub struct Inbox {
    db: PgPool,
    jobs: JobQueue,
    committer: Committer,
    jobs_by_provider: Arc<BTreeMap<&'static str, JobFor>>,
}

impl Inbox {
    /// Starts the group committer (it stops when every `Inbox` clone is dropped).
    pub fn new(db: PgPool, jobs: JobQueue, providers: &[&dyn Provider]) -> Self {
        Self {
            committer: Committer::start(db.clone(), jobs.clone()),
            db,
            jobs,
            jobs_by_provider: Arc::new(providers.iter().map(|p| (p.name(), p.job())).collect()),
        }
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Processes a stored delivery again (its effects are idempotent), e.g. after a fix for one that failed.
    /// Rejected deliveries (not events) cannot be replayed.
    pub async fn replay(&self, id: i64) -> Result<JobId, ApiError> {
        let row = get(&self.db, id).await?.ok_or_else(|| {
            ApiError::not_found("delivery_not_found", "No stored delivery has this id.")
        })?;
        let Some(job) = self.jobs_by_provider.get(row.provider.as_str()) else {
            return Err(ApiError::unprocessable(
                "not_replayable",
                format!(
                    "Deliveries of provider {:?} cannot be replayed.",
                    row.provider
                ),
            ));
        };
        if row.status == InboxStatus::Rejected {
            return Err(ApiError::conflict(
                "not_replayable",
                "A rejected delivery is not an event; it can only be inspected.",
            ));
        }
        let job = job(id).map_err(ApiError::internal)?;
        let job_id = store::reset_for_replay(&self.db, &self.jobs, id, job).await?;
        tracing::info!(inbox_id = id, provider = %row.provider, "stored delivery replayed by an operator");
        Ok(job_id)
    }
}
