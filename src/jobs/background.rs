//! The worker's background tasks beside the fetch loop: the NOTIFY listener, the lease heartbeat, and the
//! housekeeping tick (rescuing jobs whose lease expired, firing due periodic schedules, queue-depth gauges).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::registry::PeriodicJob;
use super::worker::{Shared, lock};
use super::{JobQueue, NOTIFY_CHANNEL};

/// Keeps the leases of running jobs alive.
pub(super) async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.options.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ids: Vec<i64> = lock(&shared.running).iter().copied().collect();
        if ids.is_empty() {
            continue;
        }
        let renewed = sqlx::query(
            "UPDATE jobs SET locked_until = now() + $3 * interval '1 millisecond' \
             WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'",
        )
        .bind(&ids)
        .bind(&shared.options.id)
        .bind(shared.options.lease.as_millis() as i64)
        .execute(&shared.pool)
        .await;
        if let Err(error) = renewed {
            tracing::warn!(error = %error, jobs = ids.len(), "renewing job leases failed");
        }
    }
}

/// Turns NOTIFYs into wake-ups. Best effort: if the listener is down, polling still finds every job.
pub(super) async fn listen(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        match PgListener::connect_with(&shared.pool).await {
            Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                Ok(()) => loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        received = listener.recv() => match received {
                            Ok(_) => shared.wake.notify_one(),
                            Err(error) => {
                                tracing::warn!(error = %error, "job notification listener lost; reconnecting");
                                break;
                            }
                        }
                    }
                },
                Err(error) => tracing::warn!(error = %error, "LISTEN failed; relying on polling"),
            },
            Err(error) => {
                tracing::warn!(error = %error, "job notification listener cannot connect")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Periodic housekeeping on the poll interval: rescue jobs whose lease expired, fire due periodic schedules,
/// and refresh the queue-depth gauges.
pub(super) async fn maintenance(shared: Arc<Shared>, stop: CancellationToken) {
    let queue = JobQueue::new(shared.pool.clone(), shared.options.default_max_attempts);
    let mut tick = tokio::time::interval(shared.options.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stats: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match rescue_expired(&shared.pool).await {
            Ok(0) => {}
            Ok(_) => shared.wake.notify_one(),
            Err(error) => tracing::warn!(error = %error, "rescuing expired jobs failed"),
        }
        if let Err(error) = fire_periodic(&shared, &queue).await {
            tracing::warn!(error = %error, "scheduling periodic jobs failed");
        }
        if last_stats.is_none_or(|at| at.elapsed() >= shared.options.stats_interval) {
            last_stats = Some(Instant::now());
            if let Err(error) = record_depth(&shared.pool, &shared.registry.kinds()).await {
                tracing::warn!(error = %error, "sampling queue depth failed");
            }
        }
    }
}

/// Jobs whose worker stopped renewing the lease go back to pending, or are discarded when that was their last
/// attempt. Returns how many were rescued.
async fn rescue_expired(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let rescued: Vec<(String, String)> = sqlx::query_as(
        "UPDATE jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'discarded' ELSE 'pending' END, \
             finished_at = CASE WHEN attempts >= max_attempts THEN now() END, \
             last_error = 'attempt ' || attempts || ': lease expired (worker ' || coalesce(locked_by, '?') \
                 || ' stopped renewing it)', \
             run_at = now(), locked_by = NULL, locked_until = NULL \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND locked_until < now() \
                      LIMIT 1000 FOR UPDATE SKIP LOCKED) \
         RETURNING kind, state",
    )
    .fetch_all(pool)
    .await?;
    for (kind, state) in &rescued {
        tracing::warn!(kind = %kind, new_state = %state, "job lease expired; rescued");
        metrics::counter!("jobs_failed_total", "kind" => kind.clone()).increment(1);
        let outcome = if state == "discarded" {
            "jobs_discarded_total"
        } else {
            "jobs_retried_total"
        };
        metrics::counter!(outcome, "kind" => kind.clone()).increment(1);
    }
    Ok(rescued.len())
}

/// Creates or updates the schedule rows. A new schedule fires at once; a changed interval takes effect
/// without waiting out the old one.
pub(super) async fn install_schedules(
    pool: &PgPool,
    schedules: &[PeriodicJob],
) -> Result<(), sqlx::Error> {
    for schedule in schedules {
        sqlx::query(
            "INSERT INTO periodic_jobs (name, kind, interval_ms, next_run_at) VALUES ($1, $2, $3, now()) \
             ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, interval_ms = EXCLUDED.interval_ms, \
                 next_run_at = LEAST(periodic_jobs.next_run_at, now() + EXCLUDED.interval_ms * interval '1 millisecond')",
        )
        .bind(&schedule.name)
        .bind(schedule.job.kind())
        .bind(schedule.interval.as_millis() as i64)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Enqueues each due schedule's job. Claiming the schedule (moving `next_run_at` forward) and enqueueing share
/// one transaction, and the row lock makes concurrent replicas take turns: an interval fires exactly once.
async fn fire_periodic(shared: &Shared, queue: &JobQueue) -> Result<(), sqlx::Error> {
    let schedules = shared.registry.periodic_jobs();
    if schedules.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM periodic_jobs WHERE name = ANY($1) AND next_run_at <= now()",
    )
    .bind(&names)
    .fetch_all(&shared.pool)
    .await?;
    for name in due {
        let Some(schedule) = schedules.iter().find(|s| s.name == name) else {
            continue;
        };
        let mut tx = shared.pool.begin().await?;
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE periodic_jobs SET next_run_at = now() + interval_ms * interval '1 millisecond', \
                 last_run_at = now() \
             WHERE name = $1 AND next_run_at <= now() RETURNING name",
        )
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            continue; // another replica fired it first
        }
        let job = schedule.job.clone().unique_key(format!("periodic:{name}"));
        let enqueued = queue.enqueue_in(&mut tx, job).await?;
        sqlx::query("UPDATE periodic_jobs SET last_job_id = $2 WHERE name = $1")
            .bind(&name)
            .bind(enqueued.id())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn record_depth(pool: &PgPool, kinds: &[String]) -> Result<(), sqlx::Error> {
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.state, count(j.id) FROM unnest(ARRAY['pending', 'running', 'discarded']) AS s(state) \
         LEFT JOIN jobs j ON j.state = s.state GROUP BY s.state",
    )
    .fetch_all(pool)
    .await?;
    for (state, count) in counts {
        metrics::gauge!("jobs_queue_depth", "state" => state).set(count as f64);
    }
    record_kind_gauges(pool, kinds).await
}

/// Per kind: jobs due and waiting, how long the oldest of them has waited, and how long the longest running
/// attempt has run. Ages are what the "stuck or old jobs" alerts watch (a depth alone cannot tell a busy queue
/// from a stuck one). Every registered kind is reported, 0 when idle, so that a series never goes stale at its
/// last non-zero value (a kind this build does not register, left over from a rename, keeps its last value
/// once its jobs are gone).
async fn record_kind_gauges(pool: &PgPool, kinds: &[String]) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, i64, f64, f64)> = sqlx::query_as(
        "SELECT kind, \
             count(*) FILTER (WHERE state = 'pending' AND run_at <= now()), \
             coalesce(extract(epoch FROM now() - min(run_at) FILTER \
                 (WHERE state = 'pending' AND run_at <= now()))::float8, 0), \
             coalesce(extract(epoch FROM now() - min(started_at) FILTER (WHERE state = 'running'))::float8, 0) \
         FROM jobs WHERE state IN ('pending', 'running') GROUP BY kind",
    )
    .fetch_all(pool)
    .await?;
    // The failure counters of every kind exist from the start at 0: `increase()` cannot see a counter's first
    // increment when its series appears with it, so the first discarded job would not alert.
    for kind in kinds {
        for counter in [
            "jobs_failed_total",
            "jobs_retried_total",
            "jobs_discarded_total",
        ] {
            metrics::counter!(counter, "kind" => kind.clone()).increment(0);
        }
    }
    let idle = kinds
        .iter()
        .filter(|k| !rows.iter().any(|(kind, ..)| kind == *k))
        .map(|k| (k.clone(), 0, 0.0, 0.0));
    for (kind, due, oldest_due, longest_running) in rows.iter().cloned().chain(idle) {
        metrics::gauge!("jobs_due", "kind" => kind.clone()).set(due as f64);
        metrics::gauge!("jobs_oldest_due_age_seconds", "kind" => kind.clone()).set(oldest_due);
        metrics::gauge!("jobs_longest_running_seconds", "kind" => kind).set(longest_running);
    }
    Ok(())
}
