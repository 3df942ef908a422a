//! The durable job queue against a real PostgreSQL: retries, discards, uniqueness, transactions, leases,
//! periodic schedules, pruning, and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wosool::jobs::{
    Enqueued, Job, JobError, JobId, JobQueue, JobRow, NewJob, PruneFinishedJobs, Registry, Worker,
    WorkerOptions,
};
use wosool::tenancy::TenantId;

use crate::helpers::{database_url, eventually, fresh_database};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    label: String,
}

impl Job for Probe {
    const KIND: &'static str = "test.probe";
}

fn probe(label: &str) -> NewJob {
    NewJob::new(&Probe {
        label: label.into(),
    })
    .unwrap()
}

async fn test_pool() -> PgPool {
    let database = fresh_database().await;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&database_url(&database))
        .await
        .unwrap()
}

fn options(id: &str) -> WorkerOptions {
    WorkerOptions {
        id: id.into(),
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(2),
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        stats_interval: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(5),
        default_max_attempts: 5,
    }
}

struct RunningWorker {
    stop: CancellationToken,
    task: JoinHandle<Result<(), wosool::jobs::WorkerError>>,
}

impl RunningWorker {
    fn start(pool: &PgPool, registry: Registry, options: WorkerOptions) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(Worker::new(pool.clone(), registry, options).run(stop.clone()));
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("worker task")
            .expect("worker exits cleanly");
    }
}

async fn job(pool: &PgPool, id: JobId) -> JobRow {
    JobQueue::new(pool.clone(), 5)
        .get(id)
        .await
        .unwrap()
        .expect("job exists")
}

async fn wait_for_state(pool: &PgPool, id: JobId, state: &str) -> JobRow {
    eventually(
        &format!("job {id} to be {state}"),
        Duration::from_secs(20),
        || async {
            let row = job(pool, id).await;
            (row.state == state).then_some(row)
        },
    )
    .await
}

#[tokio::test]
async fn a_failing_job_is_retried_until_it_succeeds() {
    let pool = test_pool().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    let counter = Arc::clone(&calls);
    registry.register(move |ctx, _: Probe| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if ctx.attempt < 3 {
                Err(JobError::retry(format!("flaky upstream #{}", ctx.attempt)))
            } else {
                Ok(())
            }
        }
    });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("retry"))
        .await
        .unwrap()
        .id();

    let row = wait_for_state(&pool, id, "succeeded").await;
    assert_eq!(row.attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        row.last_error.as_deref(),
        Some("attempt 2: flaky upstream #2"),
        "last failure kept"
    );
    assert!(row.finished_at.is_some() && row.locked_by.is_none());
    worker.stop().await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_discarded_after_max_attempts() {
    let pool = test_pool().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    let counter = Arc::clone(&calls);
    registry.register(move |_, _: Probe| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Err(JobError::retry("always broken"))
        }
    });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("doomed").max_attempts(3))
        .await
        .unwrap()
        .id();

    let row = wait_for_state(&pool, id, "discarded").await;
    assert_eq!(row.attempts, 3);
    assert_eq!(row.last_error.as_deref(), Some("attempt 3: always broken"));
    assert!(row.finished_at.is_some());
    worker.stop().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "no attempt after the last one"
    );
}

#[tokio::test]
async fn a_write_refused_by_a_read_only_tenant_database_is_deferred_without_using_an_attempt() {
    let pool = test_pool().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    let counter = Arc::clone(&calls);
    registry.register(move |_, _: Probe| {
        let counter = Arc::clone(&counter);
        async move {
            // The first run meets a tenant database frozen by a move (SQLSTATE 25006, as text after wrapping).
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(JobError::retry(
                    "writing orders: error returned from database: cannot execute INSERT in a read-only transaction",
                ));
            }
            Ok(())
        }
    });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    // One attempt only: a counted retry would discard it.
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("frozen").max_attempts(1))
        .await
        .unwrap()
        .id();
    eventually("the job is deferred", Duration::from_secs(10), || async {
        let row = job(&pool, id).await;
        (row.state == "pending" && row.last_error.is_some()).then_some(())
    })
    .await;
    let deferred = job(&pool, id).await;
    assert_eq!(deferred.attempts, 0, "the attempt is not counted");
    let row = wait_for_state(&pool, id, "succeeded").await;
    assert_eq!(row.attempts, 1);
    worker.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_permanent_error_discards_at_once() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| async { Err(JobError::permanent("record was deleted")) });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("gone"))
        .await
        .unwrap()
        .id();
    let row = wait_for_state(&pool, id, "discarded").await;
    assert_eq!(row.attempts, 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_payload_that_does_not_decode_is_discarded_without_retries() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| async { Ok(()) });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let id: i64 = sqlx::query_scalar("INSERT INTO jobs (kind, payload, max_attempts) VALUES ('test.probe', '{\"nope\":1}', 5) RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    let row = wait_for_state(&pool, JobId(id), "discarded").await;
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .unwrap()
            .contains("payload does not match test.probe")
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_and_the_worker_lives_on() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|ctx, job: Probe| async move {
        if job.label == "bomb" && ctx.attempt == 1 {
            panic!("boom on first attempt");
        }
        Ok(())
    });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let queue = JobQueue::new(pool.clone(), 5);
    let bomb = queue.enqueue(probe("bomb")).await.unwrap().id();
    let row = wait_for_state(&pool, bomb, "succeeded").await;
    assert_eq!(row.attempts, 2);
    let after = queue.enqueue(probe("after")).await.unwrap().id();
    wait_for_state(&pool, after, "succeeded").await;
    worker.stop().await;
}

#[tokio::test]
async fn unique_key_makes_concurrent_enqueues_one_job() {
    let pool = test_pool().await;
    let queue = JobQueue::new(pool.clone(), 5);
    let tenant = TenantId::new();
    let attempts = (0..16).map(|_| {
        let queue = queue.clone();
        tokio::spawn(async move {
            queue
                .enqueue(probe("same").for_tenant(tenant).unique_key("import:42"))
                .await
        })
    });
    let results: Vec<Enqueued> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let inserted = results
        .iter()
        .filter(|r| matches!(r, Enqueued::Inserted(_)))
        .count();
    assert_eq!(inserted, 1, "exactly one insert wins: {results:?}");
    assert!(
        results.iter().all(|r| r.id() == results[0].id()),
        "duplicates point at the live job"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // The key is scoped by tenant: another tenant's identical key is separate work.
    let other = queue
        .enqueue(
            probe("same")
                .for_tenant(TenantId::new())
                .unique_key("import:42"),
        )
        .await
        .unwrap();
    assert!(matches!(other, Enqueued::Inserted(_)));
    // Once the job is finished, the same key may be enqueued again.
    sqlx::query("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1")
        .bind(results[0].id())
        .execute(&pool)
        .await
        .unwrap();
    let again = queue
        .enqueue(probe("same").for_tenant(tenant).unique_key("import:42"))
        .await
        .unwrap();
    assert!(matches!(again, Enqueued::Inserted(id) if id != results[0].id()));
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists() {
    let pool = test_pool().await;
    let queue = JobQueue::new(pool.clone(), 5);

    let mut tx = pool.begin().await.unwrap();
    let id = queue
        .enqueue_in(&mut tx, probe("rolled back"))
        .await
        .unwrap()
        .id();
    tx.rollback().await.unwrap();
    assert!(queue.get(id).await.unwrap().is_none());

    let mut tx = pool.begin().await.unwrap();
    let id = queue
        .enqueue_in(&mut tx, probe("committed"))
        .await
        .unwrap()
        .id();
    tx.commit().await.unwrap();
    assert_eq!(queue.get(id).await.unwrap().unwrap().state, "pending");
}

#[tokio::test]
async fn a_killed_workers_job_is_rerun_by_another_worker_after_the_lease() {
    let pool = test_pool().await;
    let queue = JobQueue::new(pool.clone(), 5);

    // Worker A takes the job and hangs in it; then A dies without releasing anything.
    let mut hanging = Registry::new();
    hanging.register(|_, _: Probe| std::future::pending::<Result<(), JobError>>());
    let mut a_options = options("worker-a");
    a_options.lease = Duration::from_millis(600);
    let a = RunningWorker::start(&pool, hanging, a_options);
    let id = queue.enqueue(probe("survivor")).await.unwrap().id();
    let taken = wait_for_state(&pool, id, "running").await;
    assert_eq!(taken.locked_by.as_deref(), Some("worker-a"));
    a.task.abort();
    let _ = a.task.await;

    let rerun_attempt = Arc::new(AtomicI32::new(0));
    let mut healthy = Registry::new();
    let seen = Arc::clone(&rerun_attempt);
    healthy.register(move |ctx, _: Probe| {
        let seen = Arc::clone(&seen);
        async move {
            seen.store(ctx.attempt, Ordering::SeqCst);
            Ok(())
        }
    });
    let b = RunningWorker::start(&pool, healthy, options("worker-b"));
    let row = wait_for_state(&pool, id, "succeeded").await;
    assert_eq!(row.attempts, 2);
    assert_eq!(
        rerun_attempt.load(Ordering::SeqCst),
        2,
        "worker B ran the second attempt"
    );
    b.stop().await;
}

#[tokio::test]
async fn the_lease_is_renewed_while_a_long_job_runs() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| async {
        tokio::time::sleep(Duration::from_millis(1500)).await; // three leases long
        Ok(())
    });
    let mut short_lease = options("w1");
    short_lease.lease = Duration::from_millis(500);
    let worker = RunningWorker::start(&pool, registry, short_lease);
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("long"))
        .await
        .unwrap()
        .id();
    let row = wait_for_state(&pool, id, "succeeded").await;
    assert_eq!(row.attempts, 1, "never rescued while its worker was alive");
    worker.stop().await;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick;

impl Job for Tick {
    const KIND: &'static str = "test.tick";
}

#[tokio::test]
async fn a_periodic_job_runs_once_per_interval_across_two_workers() {
    let pool = test_pool().await;
    let interval = Duration::from_millis(300);
    let registry = || {
        let mut registry = Registry::new();
        registry.register(|_, _: Tick| async { Ok(()) });
        registry.periodic("tick", interval, NewJob::new(&Tick).unwrap());
        registry
    };
    let one = RunningWorker::start(&pool, registry(), options("one"));
    let two = RunningWorker::start(&pool, registry(), options("two"));

    let created: Vec<time::OffsetDateTime> =
        eventually("five ticks", Duration::from_secs(20), || async {
            let rows: Vec<time::OffsetDateTime> = sqlx::query_scalar(
                "SELECT created_at FROM jobs WHERE kind = 'test.tick' ORDER BY created_at",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            (rows.len() >= 5).then_some(rows)
        })
        .await;
    one.stop().await;
    two.stop().await;
    for pair in created.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= time::Duration::try_from(interval).unwrap(),
            "two runs within one interval: {gap}"
        );
    }
}

#[tokio::test]
async fn prune_deletes_only_finished_jobs_past_retention() {
    let pool = test_pool().await;
    sqlx::query(
        "INSERT INTO jobs (kind, state, max_attempts, finished_at) VALUES \
         ('old.ok', 'succeeded', 1, now() - interval '3 hours'), \
         ('old.cancelled', 'cancelled', 1, now() - interval '3 hours'), \
         ('fresh.ok', 'succeeded', 1, now() - interval '10 minutes'), \
         ('old.discarded', 'discarded', 1, now() - interval '3 hours'), \
         ('ancient.discarded', 'discarded', 1, now() - interval '30 hours')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO jobs (kind, state, max_attempts, created_at) VALUES ('old.pending', 'pending', 1, now() - interval '9 days')")
        .execute(&pool)
        .await
        .unwrap();

    let deleted = PruneFinishedJobs {
        retention_hours: 2,
        discarded_retention_hours: 24,
    }
    .run(&pool)
    .await
    .unwrap();
    assert_eq!(deleted, 3);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT kind FROM jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    left.sort();
    assert_eq!(left, ["fresh.ok", "old.discarded", "old.pending"]);
}

#[tokio::test]
async fn shutdown_waits_for_a_running_job_to_finish() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("finish me"))
        .await
        .unwrap()
        .id();
    wait_for_state(&pool, id, "running").await;
    worker.stop().await;
    assert_eq!(
        job(&pool, id).await.state,
        "succeeded",
        "finished during the drain, success recorded"
    );
}

#[tokio::test]
async fn shutdown_releases_a_job_that_does_not_finish_in_time() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| std::future::pending::<Result<(), JobError>>());
    let mut impatient = options("w1");
    impatient.shutdown_timeout = Duration::from_millis(200);
    let worker = RunningWorker::start(&pool, registry, impatient);
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("stuck"))
        .await
        .unwrap()
        .id();
    wait_for_state(&pool, id, "running").await;
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!(row.state, "pending", "handed back for another worker");
    assert_eq!(row.attempts, 0, "the interrupted attempt is not counted");
    assert!(row.locked_by.is_none());
}

#[tokio::test]
async fn a_delayed_job_waits_for_its_time() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| async { Ok(()) });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let queue = JobQueue::new(pool.clone(), 5);
    let later = queue
        .enqueue(probe("later").delay(Duration::from_secs(3600)))
        .await
        .unwrap()
        .id();
    let now = queue.enqueue(probe("now")).await.unwrap().id();
    wait_for_state(&pool, now, "succeeded").await;
    assert_eq!(job(&pool, later).await.state, "pending");
    worker.stop().await;
}

#[tokio::test]
async fn notify_wakes_an_idle_worker_long_before_its_poll_interval() {
    let pool = test_pool().await;
    let mut registry = Registry::new();
    registry.register(|_, _: Probe| async { Ok(()) });
    let mut sleepy = options("w1");
    sleepy.poll_interval = Duration::from_secs(3600);
    let worker = RunningWorker::start(&pool, registry, sleepy);
    eventually("the worker to LISTEN", Duration::from_secs(10), || async {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (listening > 0).then_some(())
    })
    .await;
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("wake up"))
        .await
        .unwrap()
        .id();
    wait_for_state(&pool, id, "succeeded").await;
    worker.stop().await;
}

#[tokio::test]
async fn jobs_keep_their_tenant() {
    let pool = test_pool().await;
    let seen = Arc::new(std::sync::Mutex::new(None));
    let mut registry = Registry::new();
    let slot = Arc::clone(&seen);
    registry.register(move |ctx, _: Probe| {
        let slot = Arc::clone(&slot);
        async move {
            *slot.lock().unwrap() = ctx.tenant_id;
            Ok(())
        }
    });
    let worker = RunningWorker::start(&pool, registry, options("w1"));
    let tenant = TenantId::new();
    let id = JobQueue::new(pool.clone(), 5)
        .enqueue(probe("mine").for_tenant(tenant))
        .await
        .unwrap()
        .id();
    let row = wait_for_state(&pool, id, "succeeded").await;
    assert_eq!(row.tenant_id, Some(tenant));
    assert_eq!(*seen.lock().unwrap(), Some(tenant));
    worker.stop().await;
}

#[tokio::test]
async fn enqueue_many_inserts_in_bulk_and_skips_live_duplicates() {
    let pool = test_pool().await;
    let queue = JobQueue::new(pool.clone(), 5);
    queue
        .enqueue(probe("first").unique_key("k1"))
        .await
        .unwrap();
    let batch = [
        probe("a"),
        probe("b").unique_key("k1"),
        probe("c").unique_key("k2"),
    ];
    assert_eq!(
        queue.enqueue_many(&batch).await.unwrap(),
        2,
        "the live k1 is not duplicated"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
}
