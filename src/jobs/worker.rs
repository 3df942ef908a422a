use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::background::{heartbeat, install_schedules, listen, maintenance};
use super::backoff::retry_delay;
use super::job::{JobContext, JobError, JobId};
use super::registry::Registry;
use crate::config::JobsConfig;
use crate::tenancy::TenantId;

/// How a worker behaves. `from_config` gives the production values; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Written into `locked_by`: which process holds a job's lease.
    pub id: String,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub stats_interval: Duration,
    pub shutdown_timeout: Duration,
    pub default_max_attempts: i32,
}

impl WorkerOptions {
    pub fn from_config(config: &JobsConfig) -> Self {
        Self {
            id: default_worker_id(),
            concurrency: config.concurrency,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            lease: Duration::from_secs(config.lease_secs),
            retry_base: Duration::from_millis(config.retry_base_ms),
            retry_max: Duration::from_secs(config.retry_max_secs),
            stats_interval: Duration::from_secs(config.stats_interval_secs),
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
            default_max_attempts: config.default_max_attempts,
        }
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("periodic job {name:?} uses kind {kind:?}, which has no registered handler")]
    UnknownPeriodicKind { name: String, kind: String },
    #[error("job queue database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs jobs from the queue until cancelled.
pub struct Worker {
    pool: PgPool,
    registry: Arc<Registry>,
    options: WorkerOptions,
}

/// State shared by the worker's tasks.
pub(super) struct Shared {
    pub(super) pool: PgPool,
    pub(super) registry: Arc<Registry>,
    pub(super) options: WorkerOptions,
    kinds: Vec<String>,
    /// Ids of the jobs this worker is running: the heartbeat renews their leases.
    pub(super) running: Mutex<HashSet<i64>>,
    /// Woken by NOTIFY, by rescued jobs, and by nothing else: the poll interval is the safety net.
    pub(super) wake: Notify,
    /// Where running jobs report success; the completer records them in batches.
    succeeded: mpsc::Sender<(i64, String)>,
    /// The worker's shutdown signal, handed to handlers so long jobs can stop at a safe point.
    shutdown: CancellationToken,
}

/// A fetched job: the columns a handler run needs.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    kind: String,
    payload: serde_json::Value,
    tenant_id: Option<TenantId>,
    attempts: i32,
    max_attempts: i32,
}

impl Worker {
    pub fn new(pool: PgPool, registry: Registry, options: WorkerOptions) -> Self {
        Self {
            pool,
            registry: Arc::new(registry),
            options,
        }
    }

    pub fn id(&self) -> &str {
        &self.options.id
    }

    /// Runs until `shutdown` is cancelled, then stops fetching, gives running jobs `shutdown_timeout` to finish
    /// and releases the leases of those that did not (they run again elsewhere, the attempt not counted).
    ///
    /// Dropping the future instead (a crash, as far as the queue can tell) stops everything at once without
    /// releasing anything: the leases then expire and another worker takes the jobs over.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        for schedule in self.registry.periodic_jobs() {
            if self.registry.handler(schedule.job.kind()).is_none() {
                return Err(WorkerError::UnknownPeriodicKind {
                    name: schedule.name.clone(),
                    kind: schedule.job.kind().to_string(),
                });
            }
        }
        install_schedules(&self.pool, self.registry.periodic_jobs()).await?;

        let (succeeded_tx, succeeded_rx) = mpsc::channel(4096);
        let shared = Arc::new(Shared {
            kinds: self.registry.kinds(),
            pool: self.pool,
            registry: self.registry,
            options: self.options,
            running: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            succeeded: succeeded_tx,
            shutdown: shutdown.clone(),
        });
        tracing::info!(worker_id = %shared.options.id, kinds = ?shared.kinds, concurrency = shared.options.concurrency, "job worker started");

        let background_stop = CancellationToken::new();
        let mut background = JoinSet::new();
        background.spawn(listen(Arc::clone(&shared), background_stop.clone()));
        background.spawn(heartbeat(Arc::clone(&shared), background_stop.clone()));
        background.spawn(maintenance(Arc::clone(&shared), background_stop.clone()));
        let completer = AbortOnDropHandle::new(tokio::spawn(complete(
            shared.pool.clone(),
            shared.options.id.clone(),
            succeeded_rx,
        )));

        let mut jobs = JoinSet::new();
        fetch_loop(&shared, &mut jobs, &shutdown).await;

        tracing::info!(worker_id = %shared.options.id, running = jobs.len(), "job worker draining");
        let drained = tokio::time::timeout(shared.options.shutdown_timeout, async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            jobs.shutdown().await;
            release_unfinished(&shared).await;
        }
        background_stop.cancel();
        while background.join_next().await.is_some() {}
        // The completer ends once the last sender, owned by `shared`, is gone: every other holder has stopped.
        drop(shared);
        let _ = completer.await;
        tracing::info!("job worker stopped");
        Ok(())
    }
}

/// While jobs are running, a fetch waits up to this long for half the worker's slots to free up, so claims come
/// in batches instead of one row per finished job.
const BATCH_WINDOW: Duration = Duration::from_millis(2);

async fn fetch_loop(shared: &Arc<Shared>, jobs: &mut JoinSet<()>, shutdown: &CancellationToken) {
    let concurrency = shared.options.concurrency;
    let min_batch = concurrency.div_ceil(2).max(1) as u32;
    let semaphore = Arc::new(Semaphore::new(concurrency));
    while !shutdown.is_cancelled() {
        while jobs.try_join_next().is_some() {}
        let available = semaphore.available_permits();
        if available < min_batch as usize {
            // Busy: wait for a slot (at least one), or for enough slots to make a batch worth a round trip.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                permits = Arc::clone(&semaphore).acquire_many_owned(min_batch) => drop(permits),
                _ = tokio::time::sleep(BATCH_WINDOW), if available > 0 => {}
                permit = Arc::clone(&semaphore).acquire_owned(), if available == 0 => {
                    drop(permit);
                    continue;
                }
            }
        }
        let available = semaphore.available_permits();
        if available == 0 {
            continue;
        }
        let Ok(mut permits) = Arc::clone(&semaphore).try_acquire_many_owned(available as u32)
        else {
            continue;
        };
        let claimed = match claim(shared, available).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(error = %error, "fetching jobs failed; retrying after the poll interval");
                Vec::new()
            }
        };
        let fetched = claimed.len();
        for job in claimed {
            let permit = permits.split(1);
            let shared = Arc::clone(shared);
            jobs.spawn(async move {
                execute(&shared, job).await;
                drop(permit);
            });
        }
        drop(permits);
        if fetched == available {
            continue; // the queue may hold more: fetch again at once
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(shared.options.poll_interval) => {}
        }
    }
}

/// Moves up to `limit` due jobs to `running` under this worker's lease, in one statement.
async fn claim(shared: &Shared, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "WITH next AS ( \
             SELECT id FROM jobs \
             WHERE state = 'pending' AND run_at <= now() AND kind = ANY($1) \
             ORDER BY priority DESC, run_at, id \
             LIMIT $2 \
             FOR UPDATE SKIP LOCKED) \
         UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, locked_by = $3, \
             locked_until = now() + $4 * interval '1 millisecond', started_at = now() \
         FROM next WHERE jobs.id = next.id \
         RETURNING jobs.id, jobs.kind, jobs.payload, jobs.tenant_id, jobs.attempts, jobs.max_attempts",
    )
    .bind(&shared.kinds)
    .bind(limit as i64)
    .bind(&shared.options.id)
    .bind(shared.options.lease.as_millis() as i64)
    .fetch_all(&shared.pool)
    .await
}

/// Runs one attempt and records its outcome.
async fn execute(shared: &Arc<Shared>, mut job: Claimed) {
    let span = tracing::info_span!(
        "job",
        job_id = job.id,
        kind = %job.kind,
        tenant_id = job.tenant_id.map(tracing::field::display),
        attempt = job.attempts,
    );
    async {
        let kind = job.kind.clone();
        metrics::counter!("jobs_started_total", "kind" => kind.clone()).increment(1);
        lock(&shared.running).insert(job.id);
        let started = Instant::now();
        let result = match shared.registry.handler(&job.kind) {
            Some(handler) => {
                let ctx = JobContext {
                    id: JobId(job.id),
                    kind: job.kind.clone(),
                    attempt: job.attempts,
                    max_attempts: job.max_attempts,
                    tenant_id: job.tenant_id,
                    shutdown: shared.shutdown.clone(),
                };
                // Its own task, so that a panic is caught as a failed attempt instead of taking the worker
                // down, and aborted with us if the worker itself is dropped.
                let task = AbortOnDropHandle::new(tokio::spawn((handler.run)(ctx, std::mem::take(&mut job.payload))));
                match task.await {
                    Ok(result) => result,
                    Err(join) if join.is_panic() => Err(JobError::retry(format!(
                        "handler panicked: {}",
                        panic_message(join.into_panic())
                    ))),
                    Err(join) => Err(JobError::retry(format!("handler task ended: {join}"))),
                }
            }
            None => Err(JobError::permanent(format!("no handler registered for kind {kind:?}"))),
        };
        let elapsed = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                metrics::counter!("jobs_succeeded_total", "kind" => kind.clone()).increment(1);
                metrics::histogram!("job_duration_seconds", "kind" => kind.clone(), "outcome" => "succeeded")
                    .record(elapsed);
                if shared.succeeded.send((job.id, kind)).await.is_err() {
                    tracing::error!("completer is gone; the job will run again after its lease expires");
                }
            }
            Err(error) => {
                metrics::counter!("jobs_failed_total", "kind" => kind.clone()).increment(1);
                metrics::histogram!("job_duration_seconds", "kind" => kind.clone(), "outcome" => "failed")
                    .record(elapsed);
                record_failure(shared, &job, &kind, error).await;
            }
        }
        lock(&shared.running).remove(&job.id);
    }
    .instrument(span)
    .await
}

async fn record_failure(shared: &Shared, job: &Claimed, kind: &str, error: JobError) {
    let deferred = error.is_deferred();
    let discard = !deferred && (error.is_permanent() || job.attempts >= job.max_attempts);
    let delay = if deferred {
        super::job::DEFER_DELAY
    } else {
        retry_delay(
            job.attempts,
            shared.options.retry_base,
            shared.options.retry_max,
        )
    };
    let message: String = format!("attempt {}: {}", job.attempts, error.message())
        .chars()
        .take(4000)
        .collect();
    let recorded = sqlx::query(
        "UPDATE jobs SET \
             state = CASE WHEN $3 THEN 'discarded' ELSE 'pending' END, \
             run_at = CASE WHEN $3 THEN run_at ELSE now() + $4 * interval '1 millisecond' END, \
             finished_at = CASE WHEN $3 THEN now() END, \
             attempts = CASE WHEN $6 THEN greatest(attempts - 1, 0) ELSE attempts END, \
             last_error = $2, locked_by = NULL, locked_until = NULL \
         WHERE id = $1 AND locked_by = $5 AND state = 'running'",
    )
    .bind(job.id)
    .bind(&message)
    .bind(discard)
    .bind(delay.as_millis() as i64)
    .bind(&shared.options.id)
    .bind(deferred)
    .execute(&shared.pool)
    .await;
    match recorded {
        Ok(r) if r.rows_affected() == 0 => {
            tracing::warn!(
                "lease was lost before the failure could be recorded; another worker owns the job"
            )
        }
        Ok(_) if discard => {
            metrics::counter!("jobs_discarded_total", "kind" => kind.to_string()).increment(1);
            tracing::error!(error = %message, "job discarded");
        }
        Ok(_) if deferred => {
            metrics::counter!("jobs_deferred_total", "kind" => kind.to_string()).increment(1);
            tracing::info!(error = %message, retry_in_ms = delay.as_millis() as u64, "job deferred; attempt not counted");
        }
        Ok(_) => {
            metrics::counter!("jobs_retried_total", "kind" => kind.to_string()).increment(1);
            tracing::warn!(error = %message, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
        }
        Err(db) => {
            tracing::error!(error = %db, "could not record job failure; it will rerun after its lease")
        }
    }
}

/// Records successes in batches: one UPDATE for everything that finished since the last one.
async fn complete(pool: PgPool, worker_id: String, mut succeeded: mpsc::Receiver<(i64, String)>) {
    let mut batch = Vec::with_capacity(512);
    while succeeded.recv_many(&mut batch, 512).await > 0 {
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            let result = sqlx::query(
                "UPDATE jobs SET state = 'succeeded', finished_at = now(), locked_by = NULL, locked_until = NULL \
                 WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'",
            )
            .bind(&ids)
            .bind(&worker_id)
            .execute(&pool)
            .await;
            match result {
                Ok(_) => break,
                Err(error) if attempt < 5 => {
                    tracing::warn!(error = %error, jobs = ids.len(), "recording job successes failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => tracing::error!(
                    error = %error, jobs = ids.len(),
                    "could not record job successes; they will run again after their leases expire"
                ),
            }
        }
        batch.clear();
    }
}

/// After the shutdown timeout: give this worker's unfinished jobs back without counting the attempt.
async fn release_unfinished(shared: &Shared) {
    let ids: Vec<i64> = lock(&shared.running).drain().collect();
    if ids.is_empty() {
        return;
    }
    let released = sqlx::query(
        "UPDATE jobs SET state = 'pending', attempts = greatest(attempts - 1, 0), run_at = now(), \
             locked_by = NULL, locked_until = NULL \
         WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'",
    )
    .bind(&ids)
    .bind(&shared.options.id)
    .execute(&shared.pool)
    .await;
    match released {
        Ok(r) => tracing::warn!(
            jobs = r.rows_affected(),
            "released unfinished jobs at shutdown"
        ),
        Err(error) => {
            tracing::error!(error = %error, "could not release jobs; they return when their leases expire")
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The running set is only touched for an instant; a poisoned lock (a panic while holding it) leaves the set
/// itself intact, so keep using it.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
