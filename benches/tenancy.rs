//! Tenancy benchmarks, each reported against a baseline measured in the same run:
//!
//! - resolution: L1 (moka) hit vs L2 (Redis loopback) vs L3 (PostgreSQL), with criterion, at 10 and at 10,000
//!   tenants in the registry;
//! - provisioning: register → ready p50/p95 over 100 sequential tenants; the database-creation phase by template
//!   clone vs "create an empty database + run every tenant migration"; throughput with 4 worker slots;
//! - scale: 1,000 real tenant databases touched round-robin through `TenantPools`: open connections stay within
//!   the budget and the process RSS is reported.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (a superuser URL) and WOSOOL_BENCH_REDIS_URL; `scripts/bench` provides both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use sqlx::{Executor, PgPool};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use wosool::TenancyStack;
use wosool::config::{Config, TenantCacheConfig};
use wosool::jobs::{Registry, Worker, WorkerOptions};
use wosool::provisioning::RegistrationRequest;
use wosool::redis::Redis;
use wosool::tenancy::{DbName, LookupKey, Tenant, TenantDirectory, TenantId};

const SEQUENTIAL_TENANTS: usize = 100;
const CONCURRENT_TENANTS: usize = 100;
const REGISTRY_ROWS: usize = 10_000;
const REAL_DATABASES: usize = 1_000;

fn main() {
    let (Ok(admin_url), Ok(redis_url)) = (
        std::env::var("WOSOOL_BENCH_DATABASE_URL"),
        std::env::var("WOSOOL_BENCH_REDIS_URL"),
    ) else {
        eprintln!(
            "tenancy bench skipped: WOSOOL_BENCH_DATABASE_URL / WOSOOL_BENCH_REDIS_URL not set (run scripts/bench)"
        );
        return;
    };
    wosool::install_crypto_provider();
    let rt = Runtime::new().expect("runtime");
    // Lazy sqlx pools spawn their maintenance tasks on the current runtime when built.
    let _runtime = rt.enter();
    let config = rt.block_on(fresh_database(&admin_url, &redis_url));
    let pool = rt.block_on(connect(&config));
    let redis = rt
        .block_on(Redis::connect(&config.redis))
        .expect("redis")
        .expect("redis configured");
    let stack = TenancyStack::connect(&config, pool.clone(), Some(redis.clone())).expect("stack");
    rt.block_on(stack.provisioner.servers().ensure_templates(&pool))
        .expect("template");

    let mut criterion = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut summary = Vec::new();

    rt.block_on(insert_registry_rows(&pool, 10));
    let at_10 = resolution(&rt, &mut criterion, &pool, &redis, &config, "10 tenants");
    summary.extend(at_10.lines("10 tenants"));

    summary.extend(rt.block_on(provisioning(&stack, &pool, &config)));

    let existing: i64 = rt
        .block_on(sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&pool))
        .expect("count");
    rt.block_on(insert_registry_rows(
        &pool,
        REGISTRY_ROWS - existing as usize,
    ));
    let at_10k = resolution(
        &rt,
        &mut criterion,
        &pool,
        &redis,
        &config,
        "10,000 tenants",
    );
    summary.extend(at_10k.lines("10,000 tenants"));
    summary.push(format!(
        "resolution 10,000 vs 10 tenants: L1 {:.2}x, L2 {:.2}x, L3 {:.2}x (time ratio; 1.00 = no slower)",
        at_10k.l1 / at_10.l1,
        at_10k.l2 / at_10.l2,
        at_10k.l3 / at_10.l3
    ));

    summary.extend(rt.block_on(scale(&stack, &pool)));

    println!("\n==== tenancy benchmark summary ====");
    for line in summary {
        println!("{line}");
    }
}

async fn fresh_database(admin_url: &str, redis_url: &str) -> Config {
    let admin = PgPool::connect(admin_url).await.expect("connect");
    admin
        .execute("DROP DATABASE IF EXISTS wosool_bench_tenancy WITH (FORCE)")
        .await
        .expect("drop");
    admin
        .execute("CREATE DATABASE wosool_bench_tenancy")
        .await
        .expect("create");
    admin.close().await;
    let mut url = url::Url::parse(admin_url).expect("url");
    url.set_path("wosool_bench_tenancy");
    let env = [
        ("WOSOOL_DB__URL", url.to_string()),
        ("WOSOOL_DB__MAX_CONNECTIONS", "30".into()),
        ("WOSOOL_REDIS__URL", redis_url.to_owned()),
        ("WOSOOL_REDIS__KEY_PREFIX", "bench".into()),
        ("WOSOOL_JOBS__POLL_INTERVAL_MS", "100".into()),
        ("WOSOOL_LOG__LEVEL", "warn".into()),
    ];
    Config::load_from(
        None,
        env.into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Vec<_>>(),
    )
    .expect("bench config")
}

async fn connect(config: &Config) -> PgPool {
    let pool = wosool::db::connect_with_retry(&config.db)
        .await
        .expect("connect");
    wosool::db::migrate(&pool).await.expect("migrate");
    pool
}

/// Registry rows for ready tenants whose databases do not exist (resolution never touches them).
async fn insert_registry_rows(pool: &PgPool, count: usize) {
    let ids: Vec<TenantId> = (0..count).map(|_| TenantId::new()).collect();
    for chunk in ids.chunks(1000) {
        let names: Vec<String> = chunk
            .iter()
            .map(|id| DbName::for_tenant(*id).as_str().to_owned())
            .collect();
        let slugs: Vec<String> = chunk
            .iter()
            .map(|id| format!("bench-{}", id.as_uuid().simple()))
            .collect();
        let uuids: Vec<uuid::Uuid> = chunk.iter().map(|id| id.as_uuid()).collect();
        sqlx::query(
            "INSERT INTO tenants (id, slug, display_name, status, db_server, db_name, owner_email, locale, \
             currency, timezone, ready_at) \
             SELECT id, slug, 'Bench ' || slug, 'ready', 'main', db, 'owner@example.sa', 'ar-SA', 'SAR', \
             'Asia/Riyadh', now() FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, slug, db)",
        )
        .bind(&uuids)
        .bind(&slugs)
        .bind(&names)
        .execute(pool)
        .await
        .expect("insert tenants");
    }
    pool.execute("ANALYZE tenants").await.expect("analyze");
}

/// Median seconds per resolve at each level.
struct Levels {
    l1: f64,
    l2: f64,
    l3: f64,
}

impl Levels {
    fn lines(&self, label: &str) -> Vec<String> {
        vec![format!(
            "resolution ({label}), median per lookup: L1 {:.0} ns, L2 {:.1} µs, L3 {:.1} µs; \
             L1 is {:.0}x faster than L2 and {:.0}x faster than L3; L2 is {:.2}x the speed of L3",
            self.l1 * 1e9,
            self.l2 * 1e6,
            self.l3 * 1e6,
            self.l2 / self.l1,
            self.l3 / self.l1,
            self.l3 / self.l2
        )]
    }
}

fn cache_config(ttl_secs: u64, base: &Config) -> TenantCacheConfig {
    TenantCacheConfig {
        ttl_secs,
        negative_ttl_secs: ttl_secs,
        ..base.tenancy.cache.clone()
    }
}

fn resolution(
    rt: &Runtime,
    criterion: &mut Criterion,
    pool: &PgPool,
    redis: &Redis,
    config: &Config,
    label: &str,
) -> Levels {
    let slug: String = rt
        .block_on(
            sqlx::query_scalar("SELECT slug FROM tenants ORDER BY random() LIMIT 1")
                .fetch_one(pool),
        )
        .expect("a tenant");
    let key = LookupKey::Slug(wosool::tenancy::Slug::parse(&slug).expect("slug"));
    // L1: a normal directory, warmed. L2: an L1 whose entries expire at once, in front of Redis. L3: the same
    // without Redis, so every lookup reaches PostgreSQL.
    let l1 = TenantDirectory::new(pool.clone(), Some(redis.clone()), &config.tenancy.cache);
    let l2 = TenantDirectory::new(pool.clone(), Some(redis.clone()), &cache_config(0, config));
    let l3 = TenantDirectory::new(pool.clone(), None, &cache_config(0, config));
    for directory in [&l1, &l2, &l3] {
        let found = rt.block_on(directory.resolve(&key)).expect("resolve");
        assert!(found.is_some(), "bench tenant resolves");
    }
    let mut group = criterion.benchmark_group(format!("resolve ({label})"));
    for (name, directory) in [("L1 hit", &l1), ("L2 hit", &l2), ("L3 load", &l3)] {
        group.bench_function(name, |b| {
            b.to_async(rt)
                .iter(|| async { directory.resolve(&key).await.expect("resolve") })
        });
    }
    group.finish();
    Levels {
        l1: rt.block_on(median_per_call(&l1, &key, 200, 1000)),
        l2: rt.block_on(median_per_call(&l2, &key, 200, 10)),
        l3: rt.block_on(median_per_call(&l3, &key, 200, 10)),
    }
}

/// Median over `batches` of the mean time per call within a batch of `per_batch` calls.
async fn median_per_call(
    directory: &TenantDirectory,
    key: &LookupKey,
    batches: usize,
    per_batch: usize,
) -> f64 {
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..per_batch {
            std::hint::black_box(directory.resolve(key).await.expect("resolve"));
        }
        samples.push(started.elapsed().as_secs_f64() / per_batch as f64);
    }
    percentile(&mut samples, 0.5)
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let index = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[index]
}

fn request(n: usize) -> RegistrationRequest {
    RegistrationRequest {
        organization_name: format!("Provisioning bench {n}"),
        admin_email: format!("owner{n}@example.sa"),
        ..RegistrationRequest::default()
    }
}

async fn provisioning(stack: &TenancyStack, pool: &PgPool, config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    let provisioner = &stack.provisioner;

    // Register → ready, sequentially, with a worker running as in production.
    let (stop, worker) = start_worker(stack, pool, 1);
    let mut durations = Vec::new();
    for n in 0..SEQUENTIAL_TENANTS {
        let valid = request(n).validate(&config.tenancy).expect("valid");
        let started = Instant::now();
        let registered = provisioner
            .register(valid, None, "bench", None)
            .await
            .expect("register");
        wait_ready(pool, &[registered.tenant.id]).await;
        durations.push(started.elapsed().as_secs_f64());
    }
    stop.cancel();
    worker.await.expect("worker task").expect("worker");
    let p50 = percentile(&mut durations, 0.5);
    let p95 = percentile(&mut durations, 0.95);
    lines.push(format!(
        "provisioning register → ready, {SEQUENTIAL_TENANTS} sequential tenants: p50 {:.0} ms, p95 {:.0} ms (target p50 ≤ 500 ms)",
        p50 * 1e3,
        p95 * 1e3
    ));

    // The database-creation phase alone: template clone (+ the "migrate to latest" check) vs empty + migrate.
    let server = provisioner.servers().get("main").expect("main server");
    let template = provisioner.servers().template();
    let mut cloned = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..SEQUENTIAL_TENANTS {
        let db = DbName::for_tenant(TenantId::new());
        let started = Instant::now();
        server.clone_template(template, &db).await.expect("clone");
        wosool::tenancy::servers::migrate_database(server.tenant_options(&db))
            .await
            .expect("migrate");
        cloned.push(started.elapsed().as_secs_f64());

        let db = DbName::for_tenant(TenantId::new());
        let started = Instant::now();
        server
            .create_and_migrate(&db)
            .await
            .expect("create and migrate");
        baseline.push(started.elapsed().as_secs_f64());
    }
    let (c50, c95) = (percentile(&mut cloned, 0.5), percentile(&mut cloned, 0.95));
    let (b50, b95) = (
        percentile(&mut baseline, 0.5),
        percentile(&mut baseline, 0.95),
    );
    lines.push(format!(
        "database creation, {SEQUENTIAL_TENANTS} each: template clone p50 {:.0} ms / p95 {:.0} ms; \
         baseline empty DB + all tenant migrations p50 {:.0} ms / p95 {:.0} ms; clone is {:.1}x faster at p50",
        c50 * 1e3,
        c95 * 1e3,
        b50 * 1e3,
        b95 * 1e3,
        b50 / c50
    ));

    // Throughput with 4 worker slots: register a batch at once, wait for all.
    let (stop, worker) = start_worker(stack, pool, 4);
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..CONCURRENT_TENANTS {
        let valid = request(SEQUENTIAL_TENANTS + n)
            .validate(&config.tenancy)
            .expect("valid");
        ids.push(
            provisioner
                .register(valid, None, "bench", None)
                .await
                .expect("register")
                .tenant
                .id,
        );
    }
    wait_ready(pool, &ids).await;
    let took = started.elapsed().as_secs_f64();
    stop.cancel();
    worker.await.expect("worker task").expect("worker");
    lines.push(format!(
        "provisioning throughput, {CONCURRENT_TENANTS} tenants with 4 worker slots: {:.1} s = {:.1} tenants/s \
         ({:.2}x the sequential rate of {:.1} tenants/s)",
        took,
        CONCURRENT_TENANTS as f64 / took,
        (CONCURRENT_TENANTS as f64 / took) * p50,
        1.0 / p50
    ));
    lines
}

fn start_worker(
    stack: &TenancyStack,
    pool: &PgPool,
    concurrency: usize,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), wosool::jobs::WorkerError>>,
) {
    let mut registry = Registry::new();
    wosool::provisioning::register_jobs(&mut registry, stack.provisioner.clone()).expect("jobs");
    let defaults = Config::load_from(None, Vec::new()).expect("defaults");
    let mut options = WorkerOptions::from_config(&defaults.jobs);
    options.concurrency = concurrency;
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(pool.clone(), registry, options).run(stop.clone()));
    (stop, worker)
}

async fn wait_ready(pool: &PgPool, ids: &[TenantId]) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ready: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tenants WHERE id = ANY($1) AND status = 'ready'",
        )
        .bind(ids)
        .fetch_one(pool)
        .await
        .expect("count");
        if ready as usize == ids.len() {
            return;
        }
        assert!(Instant::now() < deadline, "tenants not ready in time");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// 1,000 real tenant databases, touched round-robin by 16 concurrent tasks through `TenantPools`.
async fn scale(stack: &TenancyStack, pool: &PgPool) -> Vec<String> {
    let server = stack.provisioner.servers().get("main").expect("main");
    let template = stack.provisioner.servers().template().to_owned();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE status = 'ready' ORDER BY created_at DESC LIMIT $1",
    )
    .bind(REAL_DATABASES as i64)
    .fetch_all(pool)
    .await
    .expect("ids");
    let mut tenants: Vec<Tenant> = Vec::with_capacity(ids.len());
    for id in ids {
        let tenant = stack
            .core
            .directory()
            .get(TenantId::from_uuid(id))
            .await
            .expect("get")
            .expect("tenant");
        tenants.push((*tenant).clone());
    }
    let started = Instant::now();
    for tenant in &tenants {
        if !server
            .database_exists(tenant.db_name.as_str())
            .await
            .expect("exists")
        {
            server
                .clone_template(&template, &tenant.db_name)
                .await
                .expect("clone");
        }
    }
    let cloning = started.elapsed();

    let pools = stack.core.pools().clone();
    let max_open = Arc::new(AtomicU32::new(0));
    let max_rss = Arc::new(AtomicU32::new(rss_mib()));
    let rounds = 3;
    let tenants = Arc::new(tenants);
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (pools, tenants, max_open, max_rss) = (
                pools.clone(),
                tenants.clone(),
                max_open.clone(),
                max_rss.clone(),
            );
            tokio::spawn(async move {
                for round in 0..rounds {
                    for (i, tenant) in tenants.iter().enumerate() {
                        if (i + round) % 16 != w {
                            continue;
                        }
                        let pool = pools.get(tenant).await.expect("tenant pool");
                        let _: i32 = sqlx::query_scalar("SELECT 1")
                            .fetch_one(&*pool)
                            .await
                            .expect("query");
                        max_open.fetch_max(pools.open_connections(), Ordering::Relaxed);
                        if i % 50 == 0 {
                            max_rss.fetch_max(rss_mib(), Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("load task");
    }
    let took = started.elapsed();
    let ops = rounds * tenants.len();
    let server_side: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 't\\_%'")
            .fetch_one(pool)
            .await
            .expect("pg_stat_activity");
    let defaults = Config::load_from(None, Vec::new()).expect("defaults");
    let budget = defaults.tenancy.pools.total_connections;
    vec![
        format!(
            "scale: {REGISTRY_ROWS} registry rows, {} real tenant databases (cloned in {:.0} s)",
            tenants.len(),
            cloning.as_secs_f64()
        ),
        format!(
            "scale: {ops} round-robin tenant queries by 16 tasks in {:.1} s = {:.0} queries/s; max open tenant \
             connections {} (budget {budget}); {server_side} tenant backends open at the end; peak RSS {} MiB \
             (limit 300 MiB)",
            took.as_secs_f64(),
            ops as f64 / took.as_secs_f64(),
            max_open.load(Ordering::Relaxed),
            max_rss.load(Ordering::Relaxed)
        ),
    ]
}

fn rss_mib() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u32>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
