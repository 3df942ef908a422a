//! Per-tenant connection pools under one budget: the budget holds under round-robin load (in the process and
//! in PostgreSQL's own view), an exhausted budget fails after the acquire timeout, a pool only ever reaches its
//! own tenant's database, and idle pools are closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use wosool::Role;
use wosool::tenancy::{PoolError, Tenant, TenantId, TenantPools};

use crate::helpers::{
    TestApp, eventually, metric_value, render_metrics, spawn_app_with, tenancy_stack, test_config,
};

/// Registers `count` organizations at once and waits until all are ready; then stops the app, so that the
/// only connections to the tenant databases from here on are the ones the test makes.
async fn ready_tenants(count: usize) -> TestApp {
    let mut app = spawn_app_with(Role::All, |_| {}).await;
    let names: Vec<String> = (0..count).map(|i| format!("Pool Shop {i}")).collect();
    join_all(names.iter().map(|name| app.register_ready(name))).await;
    app.shutdown.cancel();
    (&mut app.server)
        .await
        .expect("app task")
        .expect("app stops cleanly");
    app
}

/// Tenancy services on the app's database with a small pool budget, and without Redis.
async fn stack_with(
    app: &TestApp,
    pools: &[(&str, &str)],
) -> (wosool::TenancyStack, Vec<Arc<Tenant>>) {
    let config = test_config(&app.database, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), String::new()));
        for (key, value) in pools {
            env.push((format!("WOSOOL_TENANCY__POOLS__{key}"), value.to_string()));
        }
    });
    let stack = tenancy_stack(&config).await;
    let ids: Vec<TenantId> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY created_at")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for id in &ids {
        tenants.push(
            stack
                .core
                .directory()
                .get(*id)
                .await
                .unwrap()
                .expect("tenant"),
        );
    }
    (stack, tenants)
}

/// Backends PostgreSQL has open to any of `tenants`' databases.
async fn backends(app: &TestApp, tenants: &[Arc<Tenant>]) -> i64 {
    let names: Vec<String> = tenants.iter().map(|t| t.db_name.to_string()).collect();
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)")
        .bind(&names)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// What a round-robin load over `tenants` observed.
#[derive(Debug)]
struct Observed {
    max_open: u32,
    max_resident: usize,
    max_backends: i64,
}

/// Touches every tenant `rounds` times, all tenants of a round at once, each running a query through its pool;
/// watches the pools' own accounting and PostgreSQL's `pg_stat_activity` meanwhile. Between rounds (at rest),
/// PostgreSQL must see exactly the connections the pools account for: evicted pools leak nothing.
async fn round_robin(
    app: &TestApp,
    pools: &TenantPools,
    tenants: &[Arc<Tenant>],
    rounds: usize,
    limits: (u32, usize),
) -> Observed {
    let (budget, resident) = limits;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (pools, done, db) = (pools.clone(), done.clone(), app.db.clone());
        let names: Vec<String> = tenants.iter().map(|t| t.db_name.to_string()).collect();
        tokio::spawn(async move {
            let mut seen = Observed {
                max_open: 0,
                max_resident: 0,
                max_backends: 0,
            };
            let mut samples = 0;
            while !done.load(Ordering::SeqCst) || samples == 0 {
                seen.max_open = seen.max_open.max(pools.open_connections());
                seen.max_resident = seen.max_resident.max(pools.resident_count());
                let backends: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
                )
                .bind(&names)
                .fetch_one(&db)
                .await
                .unwrap();
                seen.max_backends = seen.max_backends.max(backends);
                samples += 1;
            }
            seen
        })
    };
    let queries = Arc::new(AtomicUsize::new(0));
    for _ in 0..rounds {
        let touches = tenants.iter().map(|tenant| {
            let (pools, tenant, queries) = (pools.clone(), tenant.clone(), queries.clone());
            async move {
                let pool = pools.get(&tenant).await.expect("a pool within the budget");
                let one: i32 = sqlx::query_scalar("SELECT 1 FROM pg_sleep(0.005)")
                    .fetch_one(&*pool)
                    .await
                    .expect("query through the tenant pool");
                assert_eq!(one, 1);
                assert!(pools.open_connections() <= budget);
                assert!(pools.resident_count() <= resident);
                queries.fetch_add(1, Ordering::SeqCst);
            }
        });
        for joined in join_all(touches.map(tokio::spawn)).await {
            joined.expect("touch task");
        }
        assert!(pools.open_connections() <= budget);
        assert!(pools.resident_count() <= resident);
        eventually(
            "PostgreSQL to agree with the pools",
            Duration::from_secs(10),
            || async {
                (backends(app, tenants).await == i64::from(pools.open_connections())).then_some(())
            },
        )
        .await;
    }
    done.store(true, Ordering::SeqCst);
    let seen = watcher.await.unwrap();
    assert_eq!(queries.load(Ordering::SeqCst), rounds * tenants.len());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn touching_more_tenants_than_fit_keeps_connections_within_the_budget() {
    let app = ready_tenants(8).await;

    // 1. The connection budget binds (6 connections = 3 pools of 2; up to 8 pools could stay resident).
    let (stack, tenants) = stack_with(
        &app,
        &[
            ("TOTAL_CONNECTIONS", "6"),
            ("MAX_CONNECTIONS_PER_TENANT", "2"),
            ("MAX_RESIDENT", "8"),
            // Generous: the point here is the budget under contention, not the timeout (tested below).
            ("ACQUIRE_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    assert_eq!(tenants.len(), 8);
    eventually(
        "the stopped app's tenant connections to go",
        Duration::from_secs(10),
        || async { (backends(&app, &tenants).await == 0).then_some(()) },
    )
    .await;
    let seen = round_robin(&app, stack.core.pools(), &tenants, 4, (6, 3)).await;
    assert!(seen.max_open <= 6 && seen.max_resident <= 3, "{seen:?}");
    assert!(
        seen.max_backends <= 6,
        "PostgreSQL saw more tenant connections than the budget: {seen:?}"
    );
    assert!(
        seen.max_resident >= 2,
        "the load really ran several pools at once: {seen:?}"
    );
    let metrics = render_metrics();
    let resident = metric_value(&metrics, "tenant_pools_resident", &[]).expect("gauge");
    assert!((1.0..=3.0).contains(&resident), "{resident}");
    let open = metric_value(&metrics, "tenant_db_connections_open", &[]).expect("gauge");
    assert!(open <= 6.0, "{open}");
    stack.core.pools().close_all().await;
    assert_eq!(stack.core.pools().resident_count(), 0);
    eventually(
        "every tenant connection closed",
        Duration::from_secs(10),
        || async { (backends(&app, &tenants).await == 0).then_some(()) },
    )
    .await;

    // 2. The resident limit binds (3 pools, although the budget would allow 30).
    let (stack, tenants) = stack_with(
        &app,
        &[
            ("TOTAL_CONNECTIONS", "60"),
            ("MAX_CONNECTIONS_PER_TENANT", "2"),
            ("MAX_RESIDENT", "3"),
            ("ACQUIRE_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    // One tenant after the other: the least recently used idle pool is closed to make room.
    for _ in 0..3 {
        for tenant in &tenants {
            let pool = stack.core.pools().get(tenant).await.expect("pool");
            sqlx::query("SELECT 1").execute(&*pool).await.unwrap();
            assert!(stack.core.pools().resident_count() <= 3);
            assert!(stack.core.pools().open_connections() <= 6);
        }
    }
    assert_eq!(stack.core.pools().resident_count(), 3);
    eventually(
        "PostgreSQL to agree with the pools",
        Duration::from_secs(10),
        || async {
            (backends(&app, &tenants).await == i64::from(stack.core.pools().open_connections()))
                .then_some(())
        },
    )
    .await;
    stack.core.pools().close_all().await;
}

#[tokio::test]
async fn an_exhausted_budget_fails_after_the_acquire_timeout_and_frees_up_when_a_pool_is_released()
{
    let app = ready_tenants(4).await;
    let (stack, tenants) = stack_with(
        &app,
        &[
            ("TOTAL_CONNECTIONS", "6"),
            ("MAX_CONNECTIONS_PER_TENANT", "2"),
            ("MAX_RESIDENT", "3"),
            ("ACQUIRE_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let pools = stack.core.pools();

    // Three pools in use: each checked out and each with a connection busy.
    let mut held = Vec::new();
    for tenant in &tenants[..3] {
        let pool = pools.get(tenant).await.expect("within the budget");
        let conn = pool.acquire().await.expect("connection");
        held.push((pool, conn));
    }
    assert_eq!(pools.resident_count(), 3);
    assert_eq!(pools.open_connections(), 3);

    let started = Instant::now();
    let refused = pools.get(&tenants[3]).await;
    let waited = started.elapsed();
    assert!(
        matches!(refused, Err(PoolError::BudgetExhausted(_))),
        "a fourth tenant gets no pool while all three are busy"
    );
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "waited {waited:?} for budget (acquire_timeout_ms = 500)"
    );
    assert_eq!(
        metric_value(&render_metrics(), "tenant_pool_budget_exhausted_total", &[]),
        Some(1.0)
    );
    assert_eq!(pools.resident_count(), 3, "no busy pool was closed");
    for (pool, conn) in &mut held {
        let (db,): (String,) = sqlx::query_as("SELECT current_database()")
            .fetch_one(&mut **conn)
            .await
            .expect("busy pools kept working");
        assert_eq!(db, db_of(&tenants, pool.tenant()));
    }

    // One tenant's work ends: its pool becomes idle and is closed to make room.
    drop(held.remove(0));
    let pool = pools.get(&tenants[3]).await.expect("budget freed");
    let (db,): (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(&*pool)
        .await
        .unwrap();
    assert_eq!(db, tenants[3].db_name.to_string());
    assert_eq!(pools.resident_count(), 3);
    let names: Vec<String> = vec![tenants[0].db_name.to_string()];
    eventually(
        "the released tenant's connections to be closed",
        Duration::from_secs(10),
        || async {
            let open: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)")
                    .bind(&names)
                    .fetch_one(&app.db)
                    .await
                    .unwrap();
            (open == 0).then_some(())
        },
    )
    .await;
}

/// The database name of `id` among `tenants`.
fn db_of(tenants: &[Arc<Tenant>], id: TenantId) -> String {
    tenants
        .iter()
        .find(|t| t.id == id)
        .expect("known tenant")
        .db_name
        .to_string()
}

#[tokio::test]
async fn a_pool_only_ever_reaches_its_own_tenants_database() {
    let app = ready_tenants(3).await;
    // Room for two pools: the third forces an eviction, and the evicted tenant comes back afterwards.
    let (stack, tenants) = stack_with(
        &app,
        &[
            ("TOTAL_CONNECTIONS", "4"),
            ("MAX_CONNECTIONS_PER_TENANT", "2"),
            ("MAX_RESIDENT", "2"),
        ],
    )
    .await;
    for round in 0..3 {
        for tenant in tenants.iter().cycle().skip(round).take(tenants.len()) {
            let pool = stack.core.pools().get(tenant).await.expect("pool");
            assert_eq!(pool.tenant(), tenant.id);
            // Both connections of the pool, not just the first one handed out.
            let (mut first, mut second) =
                (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
            for conn in [&mut first, &mut second] {
                let (db,): (String,) = sqlx::query_as("SELECT current_database()")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(db, tenant.db_name.to_string(), "round {round}");
            }
        }
    }
    // The tenant databases really are distinct (seeded with their own organization names).
    let mut names = Vec::new();
    for tenant in &tenants {
        let pool = stack.core.pools().get(tenant).await.unwrap();
        let name: String = sqlx::query_scalar("SELECT organization_name FROM settings")
            .fetch_one(&*pool)
            .await
            .unwrap();
        names.push(name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), tenants.len(), "{names:?}");
}

#[tokio::test]
async fn pools_idle_longer_than_the_timeout_are_closed_but_busy_ones_are_kept() {
    let app = ready_tenants(2).await;
    let (stack, tenants) = stack_with(&app, &[("IDLE_TIMEOUT_SECS", "1")]).await;
    let pools = stack.core.pools();
    let started = Instant::now();
    let idle = pools.get(&tenants[0]).await.unwrap();
    sqlx::query("SELECT 1").execute(&*idle).await.unwrap();
    drop(idle);
    let busy = pools.get(&tenants[1]).await.unwrap();
    sqlx::query("SELECT 1").execute(&*busy).await.unwrap();
    assert_eq!(pools.resident_count(), 2);
    let reaped_early = pools.reap_idle().await;
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(reaped_early, 0, "nothing has been idle for 1 s yet");
    }

    eventually(
        "the idle pool to be reaped",
        Duration::from_secs(10),
        || async {
            pools.reap_idle().await;
            (pools.resident_count() == 1).then_some(())
        },
    )
    .await;
    sqlx::query("SELECT 1")
        .execute(&*busy)
        .await
        .expect("the busy pool still works");
    let names = vec![tenants[0].db_name.to_string()];
    eventually(
        "the reaped pool's connection to be closed in PostgreSQL",
        Duration::from_secs(10),
        || async {
            let open: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)")
                    .bind(&names)
                    .fetch_one(&app.db)
                    .await
                    .unwrap();
            (open == 0).then_some(())
        },
    )
    .await;
    // The reaped tenant gets a new pool on its next request.
    let again = pools.get(&tenants[0]).await.unwrap();
    let (db,): (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(&*again)
        .await
        .unwrap();
    assert_eq!(db, tenants[0].db_name.to_string());
}
