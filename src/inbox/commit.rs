//! Group commit: concurrent deliveries share one transaction (one commit, one fsync), so ingest is not one
//! durable transaction per delivery. Each answer still waits until its own row is durable: a delivery is
//! acknowledged only after the commit that holds it.
//!
//! One task takes requests as they come: the first one waiting starts a batch, every other one already waiting
//! joins it (up to [`MAX_BATCH`]). [`IN_FLIGHT`] batches may commit at once, so that under load the next
//! batch fills while the previous one is being flushed, and at low load a lone delivery is committed at once
//! (no waiting for company).

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::store::{self, Entry, Stored};
use crate::jobs::JobQueue;

/// Most deliveries in one transaction.
const MAX_BATCH: usize = 256;
/// Batches committing at the same time.
const IN_FLIGHT: usize = 2;
/// Deliveries waiting for a batch; beyond this, receivers wait to hand theirs over (back-pressure).
const QUEUE: usize = 4096;

/// Why a delivery was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("the webhook inbox could not store the delivery: {0}")]
    Db(Arc<sqlx::Error>),
    #[error("the webhook inbox is shutting down")]
    Closed,
}

struct Request {
    entry: Entry,
    reply: oneshot::Sender<Result<Stored, CommitError>>,
}

/// The handle receivers store through. Cheap to clone; the task ends when the last clone is dropped.
#[derive(Clone)]
pub struct Committer {
    requests: mpsc::Sender<Request>,
}

impl Committer {
    pub fn start(db: PgPool, jobs: JobQueue) -> Self {
        let (requests, inbox) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, jobs, inbox));
        Self { requests }
    }

    /// Stores one delivery (and enqueues its job) in the next batch; returns once it is durable.
    pub(super) async fn store(&self, entry: Entry) -> Result<Stored, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { entry, reply })
            .await
            .map_err(|_| CommitError::Closed)?;
        answer.await.map_err(|_| CommitError::Closed)?
    }
}

async fn run(db: PgPool, jobs: JobQueue, mut inbox: mpsc::Receiver<Request>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = inbox.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (db, jobs) = (db.clone(), jobs.clone());
        tokio::spawn(async move {
            let _slot = slot;
            commit(&db, &jobs, batch).await;
        });
    }
}

async fn commit(db: &PgPool, jobs: &JobQueue, batch: Vec<Request>) {
    metrics::histogram!("webhook_inbox_batch_size").record(batch.len() as f64);
    let (entries, replies): (Vec<Entry>, Vec<_>) =
        batch.into_iter().map(|r| (r.entry, r.reply)).unzip();
    match store::store_batch(db, jobs, &entries).await {
        Ok(stored) => {
            for ((entry, reply), stored) in entries.iter().zip(replies).zip(stored) {
                answer(entry, reply, Ok(stored));
            }
        }
        // One delivery the database refuses (say, a `\u0000` that jsonb cannot hold) must not fail the
        // others: each is stored on its own then.
        Err(error) if entries.len() > 1 => {
            tracing::warn!(error = %error, deliveries = entries.len(), "webhook inbox batch failed; storing one by one");
            for (entry, reply) in entries.into_iter().zip(replies) {
                let single = std::slice::from_ref(&entry);
                let result = store::store_batch(db, jobs, single)
                    .await
                    .map(|stored| stored[0])
                    .map_err(|e| CommitError::Db(Arc::new(e)));
                answer(&entry, reply, result);
            }
        }
        Err(error) => {
            let entry = &entries[0];
            let reply = replies.into_iter().next().expect("one reply per entry");
            answer(entry, reply, Err(CommitError::Db(Arc::new(error))));
        }
    }
}

fn answer(
    entry: &Entry,
    reply: oneshot::Sender<Result<Stored, CommitError>>,
    result: Result<Stored, CommitError>,
) {
    let outcome = match &result {
        Ok(stored) if stored.is_duplicate() => "duplicate",
        Ok(_) => "stored",
        Err(error) => {
            tracing::error!(provider = entry.provider, error = %error, "delivery not stored");
            "failed"
        }
    };
    metrics::counter!("webhook_deliveries_total", "provider" => entry.provider, "outcome" => outcome)
        .increment(1);
    let _ = reply.send(result);
}
