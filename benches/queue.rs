//! Job queue throughput: enqueue + run of no-op jobs with the worker at default concurrency, against a plain
//! INSERT + DELETE loop of the same row count (the floor of what PostgreSQL allows), in the same run.
//!
//! Needs a PostgreSQL superuser URL in WOSOOL_BENCH_DATABASE_URL; `scripts/bench` provides one with fsync on.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::{Executor, PgPool};
use tokio_util::sync::CancellationToken;
use wosool::config::Config;
use wosool::jobs::{Job, JobQueue, NewJob, Registry, Worker, WorkerOptions};

const JOBS: usize = 20_000;

#[derive(Serialize, Deserialize)]
struct Noop {
    n: usize,
}

impl Job for Noop {
    const KIND: &'static str = "bench.noop";
}

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("WOSOOL_BENCH_DATABASE_URL") else {
        eprintln!("queue bench skipped: WOSOOL_BENCH_DATABASE_URL not set (run scripts/bench)");
        return;
    };
    let pool = fresh_database(&admin_url).await;
    let defaults = Config::load_from(None, Vec::new()).expect("default config");

    let baseline = insert_delete_loop(&pool, JOBS).await;
    report(
        "baseline: INSERT + DELETE loop, one row at a time",
        JOBS,
        baseline,
        None,
    );

    let bulk = queue_run(&pool, &defaults, Producer::Bulk).await;
    report(
        "queue: enqueue_many (1,000 per statement) + run",
        JOBS,
        bulk,
        Some(baseline),
    );

    let single = queue_run(&pool, &defaults, Producer::OneByOne).await;
    report(
        "queue: enqueue one by one (8 producers) + run",
        JOBS,
        single,
        Some(baseline),
    );
}

fn report(name: &str, rows: usize, took: Duration, baseline: Option<Duration>) {
    let rate = rows as f64 / took.as_secs_f64();
    match baseline {
        Some(base) => println!(
            "{name}: {rows} jobs in {:.2}s = {rate:.0} jobs/s ({:.2}x the baseline)",
            took.as_secs_f64(),
            base.as_secs_f64() / took.as_secs_f64()
        ),
        None => println!(
            "{name}: {rows} rows in {:.2}s = {rate:.0} rows/s",
            took.as_secs_f64()
        ),
    }
}

async fn fresh_database(admin_url: &str) -> PgPool {
    let admin = PgPool::connect(admin_url).await.expect("connect");
    admin
        .execute("DROP DATABASE IF EXISTS wosool_bench WITH (FORCE)")
        .await
        .expect("drop");
    admin
        .execute("CREATE DATABASE wosool_bench")
        .await
        .expect("create");
    let mut url = url::Url::parse(admin_url).expect("url");
    url.set_path("wosool_bench");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(url.as_str())
        .await
        .expect("connect");
    wosool::db::migrate(&pool).await.expect("migrate");
    pool
}

async fn insert_delete_loop(pool: &PgPool, rows: usize) -> Duration {
    pool.execute("CREATE TABLE baseline (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload jsonb NOT NULL)")
        .await
        .expect("baseline table");
    let started = Instant::now();
    for n in 0..rows {
        let id: i64 = sqlx::query_scalar("INSERT INTO baseline (payload) VALUES ($1) RETURNING id")
            .bind(serde_json::json!({ "n": n }))
            .fetch_one(pool)
            .await
            .expect("insert");
        sqlx::query("DELETE FROM baseline WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .expect("delete");
    }
    started.elapsed()
}

#[derive(Clone, Copy)]
enum Producer {
    Bulk,
    OneByOne,
}

async fn queue_run(pool: &PgPool, config: &Config, producer: Producer) -> Duration {
    pool.execute("TRUNCATE jobs").await.expect("truncate");
    let mut registry = Registry::new();
    registry.register(|_, _: Noop| async { Ok(()) });
    let stop = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(
            pool.clone(),
            registry,
            WorkerOptions::from_config(&config.jobs),
        )
        .run(stop.clone()),
    );
    let queue = JobQueue::new(pool.clone(), config.jobs.default_max_attempts);

    let started = Instant::now();
    match producer {
        Producer::Bulk => {
            for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1000) {
                let jobs: Vec<NewJob> = chunk
                    .iter()
                    .map(|&n| NewJob::new(&Noop { n }).expect("payload"))
                    .collect();
                queue.enqueue_many(&jobs).await.expect("enqueue");
            }
            // The table was truncated a moment ago and has no statistics yet: without them the planner sorts
            // the whole backlog on every fetch. In a running system autovacuum keeps them current (tuned
            // eagerly for `jobs`), so measure that state rather than a never-analyzed table.
            pool.execute("ANALYZE jobs").await.expect("analyze");
        }
        Producer::OneByOne => {
            let producers: Vec<_> = (0..8)
                .map(|p| {
                    let queue = queue.clone();
                    tokio::spawn(async move {
                        for n in (p..JOBS).step_by(8) {
                            queue
                                .enqueue(NewJob::new(&Noop { n }).expect("payload"))
                                .await
                                .expect("enqueue");
                        }
                    })
                })
                .collect();
            for producer in producers {
                producer.await.expect("producer");
            }
        }
    }
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
            .fetch_one(pool)
            .await
            .expect("count");
        if done as usize >= JOBS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    worker.await.expect("worker task").expect("worker");
    took
}
