//! Order details after the lists (shared/reference/salla.md §3.3, issue "imports at Salla's real rate limits").
//!
//! Apps created after 2024-08-15 cannot list orders with `expanded=true`, so each order's line items, amounts
//! and customer cost one `GET /orders/{id}`: a 50k-order store on the Plus plan (120 requests/min) needs seven
//! hours for them, against under ten minutes for every list. So the list walks go first (totals, counts,
//! customers and carts are complete early) and mark each order whose details are missing or stale
//! (`orders.details_needed`); once every list is done this walk fetches them, newest orders first, within the
//! store's one request budget (`SallaLimits`), at a lower job priority than anything else. The flag is the
//! checkpoint: an order's details and the flag's clearing are written in one transaction, so a crash resumes
//! with the orders still marked, and a webhook carrying a whole order clears it too.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::api::{MerchantId, Resource};
use super::import::StoreCredentials;
use super::model::Order;
use super::service::Salla;
use crate::commerce;
use crate::jobs::{Job, JobContext, JobError, JobQueue, NewJob};
use crate::tenancy::{TenantId, TenantStatus};

/// Fetches the details of every marked order of one store, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchOrderDetails {
    pub tenant_id: TenantId,
    pub merchant_id: MerchantId,
}

impl Job for FetchOrderDetails {
    const KIND: &'static str = "salla.order_details";
}

/// Below every other job: live events and the list walks come first.
const PRIORITY: i16 = -10;
/// Orders read per round (one transaction per round).
const ROUND: i64 = 60;
/// Rounds written at the same time (each its own transaction; their orders are disjoint). Writing a round of
/// details (the orders' second upsert and their items) is the walk's slowest part, and it is database work
/// that a second connection runs on another core.
const WRITERS: usize = 2;
/// Weight of the newest round in the measured rate.
const RATE_SMOOTHING: f64 = 0.3;

/// The `sync_state` resource of this walk.
pub const RESOURCE: &str = "order_details";

/// Enqueues the walk once every list of the store is done (called as each list walk finishes).
pub async fn enqueue_when_lists_done(
    jobs: &JobQueue,
    pool: &sqlx::PgPool,
    tenant: TenantId,
    merchant: MerchantId,
) -> Result<(), JobError> {
    let lists: Vec<&str> = Resource::ALL.iter().map(|r| r.name()).collect();
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_state WHERE resource = ANY($1) AND status = 'done'",
    )
    .bind(&lists)
    .fetch_one(pool)
    .await?;
    if done < lists.len() as i64 {
        return Ok(());
    }
    enqueue(jobs, tenant, merchant).await
}

/// Enqueues the walk (a no-op while one is pending or running).
pub async fn enqueue(
    jobs: &JobQueue,
    tenant: TenantId,
    merchant: MerchantId,
) -> Result<(), JobError> {
    let job = NewJob::new(&FetchOrderDetails {
        tenant_id: tenant,
        merchant_id: merchant,
    })
    .map_err(JobError::permanent)?
    .for_tenant(tenant)
    .unique_key("order_details")
    .priority(PRIORITY);
    jobs.enqueue(job).await.map_err(JobError::retry)?;
    Ok(())
}

/// The `salla.order_details` job.
pub(super) async fn run(
    salla: &Salla,
    ctx: &JobContext,
    job: &FetchOrderDetails,
) -> Result<(), JobError> {
    let Some(tenant) = salla
        .directory()
        .get(job.tenant_id)
        .await
        .map_err(|e| JobError::retry(format!("tenant lookup: {e}")))?
    else {
        return Ok(());
    };
    if tenant.status != TenantStatus::Ready {
        return Ok(());
    }
    let pool = salla
        .pools()
        .get(&tenant)
        .await
        .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE details_needed")
        .fetch_one(&*pool)
        .await?;
    sqlx::query(
        "INSERT INTO sync_state (resource, status, items_synced, total_expected, started_at, last_error) \
         VALUES ($1, 'running', 0, $2, now(), NULL) \
         ON CONFLICT (resource) DO UPDATE SET status = 'running', last_error = NULL, updated_at = now(), \
           total_expected = sync_state.items_synced + $2, \
           started_at = CASE WHEN sync_state.status = 'running' THEN sync_state.started_at ELSE now() END, \
           items_synced = CASE WHEN sync_state.status = 'running' THEN sync_state.items_synced ELSE 0 END",
    )
    .bind(RESOURCE)
    .bind(remaining)
    .execute(&*pool)
    .await?;
    let credentials = Arc::new(StoreCredentials::new(salla, job.merchant_id));
    let store = job.merchant_id;
    let concurrency = salla.config().order_details_concurrency as usize;
    if concurrency == 0 {
        return Ok(());
    }
    // Every marked order, newest first (keyset walk); orders marked meanwhile with older dates are picked up
    // by the next pass, one marked newer than the cursor by the pass after.
    loop {
        let walked = walk(salla, ctx, &pool, credentials.clone(), store, concurrency).await?;
        let left: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE details_needed)")
                .fetch_one(&*pool)
                .await?;
        if walked.transient.is_none() && !left {
            break;
        }
        if let Some(error) = walked.transient {
            let message = format!("order details: {error}");
            let _ = sqlx::query(
                "UPDATE sync_state SET last_error = $2, failing_since = coalesce(failing_since, now()) \
                 WHERE resource = $1",
            )
                .bind(RESOURCE)
                .bind(&message)
                .execute(&*pool)
                .await;
            return Err(JobError::retry(message));
        }
        if walked.settled == 0 {
            // Marked orders that this pass could not settle (all still in flight elsewhere): come back later.
            return Err(JobError::retry(
                "order details still marked; walking again later",
            ));
        }
    }
    sqlx::query(
        "UPDATE sync_state SET status = 'done', last_full_import_at = now(), failing_since = NULL, \
         updated_at = now() WHERE resource = $1",
    )
    .bind(RESOURCE)
    .execute(&*pool)
    .await?;
    tracing::info!(tenant_id = %tenant.id, merchant = job.merchant_id.as_i64(), "Salla order details complete");
    Ok(())
}

/// What one pass over the marked orders did.
struct Walked {
    settled: usize,
    /// A retryable failure stopped the pass (what was fetched before it is written).
    transient: Option<super::api::SallaApiError>,
}

/// One pass: fetches the marked orders' details, `concurrency` calls in flight at all times, while a writer
/// stores them in rounds of [`ROUND`] (each round one transaction: the details and the cleared marks).
async fn walk(
    salla: &Salla,
    ctx: &JobContext,
    pool: &sqlx::PgPool,
    credentials: Arc<StoreCredentials>,
    store: MerchantId,
    concurrency: usize,
) -> Result<Walked, JobError> {
    let (rounds, inbox) = tokio::sync::mpsc::channel::<Round>(WRITERS);
    let inbox = Arc::new(tokio::sync::Mutex::new(inbox));
    let walk_started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let (pool, inbox) = (pool.clone(), inbox.clone());
        writers.spawn(async move {
            let (mut settled, mut writing) = (0, std::time::Duration::ZERO);
            loop {
                let Some(round) = inbox.lock().await.recv().await else {
                    break;
                };
                settled += round.settled();
                let started = Instant::now();
                write(&pool, round).await?;
                writing += started.elapsed();
            }
            Ok::<_, JobError>((settled, writing))
        });
    }
    let (mut querying, mut backlogged) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut cursor: Option<(time::OffsetDateTime, i64)> = None;
    let mut queue: std::collections::VecDeque<i64> = std::collections::VecDeque::new();
    let mut exhausted = false;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut round = Round::new();
    let mut transient = None;
    loop {
        let stopping = transient.is_some() || ctx.shutdown.is_cancelled();
        if queue.len() < concurrency && !exhausted && !stopping {
            let started = Instant::now();
            let next: Vec<(i64, time::OffsetDateTime)> = sqlx::query_as(
                "SELECT salla_id, ordered_at FROM orders WHERE details_needed \
                   AND ($1::timestamptz IS NULL OR (ordered_at, salla_id) < ($1, $2)) \
                 ORDER BY ordered_at DESC, salla_id DESC LIMIT $3",
            )
            .bind(cursor.map(|c| c.0))
            .bind(cursor.map_or(0, |c| c.1))
            .bind(ROUND * 4)
            .fetch_all(pool)
            .await?;
            querying += started.elapsed();
            exhausted = (next.len() as i64) < ROUND * 4;
            if let Some((id, at)) = next.last() {
                cursor = Some((*at, *id));
            }
            queue.extend(next.into_iter().map(|(id, _)| id));
        }
        while in_flight.len() < concurrency && !stopping {
            let Some(id) = queue.pop_front() else { break };
            let (salla, credentials) = (salla.clone(), credentials.clone());
            in_flight.spawn(async move {
                let detail = salla
                    .api()
                    .order_details(store, credentials.as_ref(), id as u64)
                    .await;
                (id, detail.map(Order::from_value))
            });
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let Ok((id, result)) = joined else { continue };
        match result {
            Ok(Ok(order)) => round.details.push(order),
            Ok(Err(error)) => {
                // Details that do not parse stay as listed; not asked again until the order changes.
                tracing::warn!(order_id = id, error = %error, "order details do not parse");
                round.gone.push(id);
            }
            Err(error) if error.is_transient() => transient = Some(error),
            Err(error) => {
                tracing::warn!(order_id = id, error = %error, "order details unavailable");
                round.gone.push(id);
            }
        }
        if round.settled() >= ROUND as usize {
            let full = std::mem::replace(&mut round, Round::new());
            let started = Instant::now();
            if rounds.send(full).await.is_err() {
                break;
            }
            backlogged += started.elapsed();
        }
    }
    if round.settled() > 0 {
        let _ = rounds.send(round).await;
    }
    drop(rounds);
    let (mut settled, mut writing, mut failed) = (0, std::time::Duration::ZERO, None);
    while let Some(joined) = writers.join_next().await {
        match joined {
            Ok(Ok((n, spent))) => {
                settled += n;
                writing += spent;
            }
            Ok(Err(error)) => failed = Some(error),
            Err(error) => failed = Some(JobError::retry(format!("order details writer: {error}"))),
        }
    }
    if let Some(error) = failed {
        return Err(error);
    }
    // Where a pass spends its time: the marked-order queries, waiting for the writer (it is the bottleneck
    // when this is large), and writing.
    tracing::info!(
        settled,
        seconds = walk_started.elapsed().as_secs_f64(),
        querying_seconds = querying.as_secs_f64(),
        writer_backlog_seconds = backlogged.as_secs_f64(),
        writing_seconds = writing.as_secs_f64(),
        "order details pass"
    );
    if ctx.shutdown.is_cancelled() && transient.is_none() {
        return Err(JobError::retry(
            "worker shutting down; the marked orders remain",
        ));
    }
    Ok(Walked { settled, transient })
}

/// Details fetched since the last write, and orders settled without details.
struct Round {
    details: Vec<Order>,
    gone: Vec<i64>,
    started: Instant,
}

impl Round {
    fn new() -> Self {
        Self {
            details: Vec::new(),
            gone: Vec::new(),
            started: Instant::now(),
        }
    }

    fn settled(&self) -> usize {
        self.details.len() + self.gone.len()
    }
}

/// Writes a round: the details, the cleared marks and the progress, in one transaction.
async fn write(pool: &sqlx::PgPool, round: Round) -> Result<(), JobError> {
    let done = round.settled();
    let mut tx = pool.begin().await?;
    commerce::upsert_orders(&mut tx, &round.details)
        .await
        .map_err(|e| JobError::retry(format!("writing order details: {e}")))?;
    // A whole order's mark is cleared by its upsert; this unmarks the rest (orders settled without details,
    // and details older than what is stored, which the upsert leaves alone).
    let settled: Vec<i64> = round
        .details
        .iter()
        .map(|o| o.id)
        .chain(round.gone)
        .collect();
    sqlx::query(
        "UPDATE orders SET details_needed = false WHERE salla_id = ANY($1) AND details_needed",
    )
    .bind(&settled)
    .execute(&mut *tx)
    .await?;
    let per_minute = done as f64 / round.started.elapsed().as_secs_f64().max(1e-3) * 60.0;
    sqlx::query(
        "UPDATE sync_state SET items_synced = items_synced + $2, updated_at = now(), \
           items_per_minute = coalesce(items_per_minute * (1 - $3) + $4 * $3, $4) \
         WHERE resource = $1",
    )
    .bind(RESOURCE)
    .bind(done as i64)
    .bind(RATE_SMOOTHING)
    .bind(per_minute)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("salla_order_details_total").increment(done as u64);
    Ok(())
}
