//! Tenant moves between two PostgreSQL servers (issue 17: "the time a tenant is read-only during a move, for a
//! 100 MB tenant", target ≤ 10 s), against a baseline measured in the same run: the plain
//! `pg_dump -Fc | pg_restore` of the same database into the same second server.
//!
//! A tenant is provisioned on server `one` and filled with a realistic store (benches/common/store.sql, raw
//! Salla payloads padded) until its database is at least 100 MB; then it is moved `one → two → one → two`
//! through the real steps (freeze, copy, verify, switch), each move's read-only window reported.
//!
//! Needs WOSOOL_BENCH_DATABASE_URL and WOSOOL_BENCH_DATABASE_URL_2 (superuser URLs of two servers) and the
//! PostgreSQL programs in WOSOOL_BENCH_PG_BIN; `scripts/bench --bench moves` provides them.

use std::time::Instant;

use sqlx::PgPool;
use tokio::runtime::Runtime;
use wosool::provisioning::lifecycle::Actor;
use wosool::provisioning::moves::{MoveState, TenantMoves};

#[path = "common/mod.rs"]
mod common;

const TARGET_BYTES: i64 = 100 * 1024 * 1024;
const MOVES: usize = 3;

fn main() {
    let (Ok(one), Ok(two)) = (
        std::env::var("WOSOOL_BENCH_DATABASE_URL"),
        std::env::var("WOSOOL_BENCH_DATABASE_URL_2"),
    ) else {
        eprintln!(
            "moves bench skipped: WOSOOL_BENCH_DATABASE_URL / WOSOOL_BENCH_DATABASE_URL_2 not set (run scripts/bench)"
        );
        return;
    };
    let bin = std::env::var("WOSOOL_BENCH_PG_BIN").unwrap_or_default();
    let program = |name: &str| {
        if bin.is_empty() {
            name.to_owned()
        } else {
            format!("{bin}/{name}")
        }
    };
    wosool::install_crypto_provider();
    let rt = Runtime::new().expect("runtime");
    let _runtime = rt.enter();
    rt.block_on(async {
        let global = common::fresh_database(&one, "wosool_bench_moves").await;
        let servers = format!("[{{key=\"one\",url=\"{one}\"}},{{key=\"two\",url=\"{two}\"}}]");
        let config = common::config(
            &global,
            &[
                ("WOSOOL_DB__TENANT_SERVERS", servers),
                ("WOSOOL_TENANCY__PG_DUMP_PATH", program("pg_dump")),
                ("WOSOOL_TENANCY__MOVES__PG_RESTORE_PATH", program("pg_restore")),
            ],
        );
        let (_pool, stack, registered) = common::ready_tenant(&config, "Big Store").await;
        let tenant = registered.tenant;
        let source_url = database_url(&one, tenant.db_name.as_str());
        let source = PgPool::connect(&source_url).await.expect("tenant database");
        let bytes = fill(&source).await;
        source.close().await;
        println!(
            "tenant database {}: {:.1} MB",
            tenant.db_name,
            bytes as f64 / 1_048_576.0
        );

        // Baseline: the plain pipe, into a scratch database on the second server.
        let scratch = common::fresh_database(&two, "wosool_bench_moves_scratch").await;
        let started = Instant::now();
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} -Fc --dbname '{source_url}' | {} --no-owner --dbname '{scratch}'",
                program("pg_dump"),
                program("pg_restore")
            ))
            .status()
            .await
            .expect("baseline pipe");
        assert!(status.success(), "baseline pg_dump | pg_restore failed");
        let baseline = started.elapsed();
        println!(
            "baseline pg_dump -Fc | pg_restore: {:.2} s",
            baseline.as_secs_f64()
        );

        let moves = TenantMoves::new(stack.core.clone());
        let actor = Actor::system("bench");
        let mut windows = Vec::new();
        for (i, to) in ["two", "one", "two"].iter().take(MOVES).enumerate() {
            let started = Instant::now();
            let record = moves
                .start(&tenant.id.to_string(), to, &actor)
                .await
                .expect("start");
            let record = moves
                .advance_to(record.id, MoveState::Switched)
                .await
                .expect("move");
            assert_eq!(record.state, MoveState::Switched, "{record:?}");
            let window = record.read_only_seconds.expect("window");
            println!(
                "move {} -> {to}: read-only {window:.2} s (copy {:.2} s), whole move {:.2} s",
                i + 1,
                record.copy_ms.unwrap_or_default() as f64 / 1000.0,
                started.elapsed().as_secs_f64()
            );
            windows.push(window);
        }
        windows.sort_by(f64::total_cmp);
        let median = windows[windows.len() / 2];
        println!(
            "moves: read-only window median {median:.2} s, max {:.2} s (target <= 10 s); {:.2}x the plain pipe ({:.2} s)",
            windows[windows.len() - 1],
            median / baseline.as_secs_f64(),
            baseline.as_secs_f64()
        );
    });
}

fn database_url(server: &str, database: &str) -> String {
    let mut url = url::Url::parse(server).expect("url");
    url.set_path(database);
    url.to_string()
}

/// A store with raw Salla payloads, grown until the database holds at least 100 MB; returns its size.
async fn fill(tenant: &PgPool) -> i64 {
    common::fill_store(tenant, 50_000, 20_000, 5_000).await;
    let mut size = size_of(tenant).await;
    let mut round = 0;
    while size < TARGET_BYTES && round < 20 {
        round += 1;
        // What Salla's order payloads look like in `raw`: a few hundred bytes of JSON per order.
        sqlx::query(
            "UPDATE orders SET raw = jsonb_build_object('id', salla_id, 'reference_id', reference_id, \
             'notes', repeat(md5(salla_id::text || $1), 8), 'round', $1) WHERE salla_id % 4 = $1 % 4",
        )
        .bind(round)
        .execute(tenant)
        .await
        .expect("grow orders");
        sqlx::query("VACUUM orders").execute(tenant).await.ok();
        size = size_of(tenant).await;
    }
    size
}

async fn size_of(tenant: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(tenant)
        .await
        .expect("size")
}
