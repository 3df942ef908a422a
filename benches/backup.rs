//! Backup benchmark: `Backups::run` (bounded concurrency, each dump checked with `pg_restore --list`,
//! checksummed and stored in a local target) against `pg_dump` of the same databases run one after another by
//! a shell loop, in the same run on the same server. Target: ≥ 1.5× the loop's throughput on 2 cores.
//!
//! N tenant databases (WOSOOL_BENCH_BACKUP_TENANTS, default 1000) are cloned from a template holding 200
//! customers and 50 orders, so creation is fast and every dump has data. Concurrency: backup.concurrency
//! (WOSOOL_BENCH_BACKUP_CONCURRENCY, default 4).
//!
//! Needs WOSOOL_BENCH_DATABASE_URL (a superuser URL) and WOSOOL_BENCH_PG_DUMP; `scripts/bench` provides both.

use std::time::Instant;

use sqlx::{Executor, PgPool};
use wosool::backup::Backups;
use wosool::config::Config;
use wosool::core::Core;
use wosool::tenancy::{DbName, TenantId};

const TEMPLATE: &str = "wosool_bench_backup_tpl";

fn main() {
    let (Ok(admin_url), Ok(pg_dump)) = (
        std::env::var("WOSOOL_BENCH_DATABASE_URL"),
        std::env::var("WOSOOL_BENCH_PG_DUMP"),
    ) else {
        eprintln!(
            "backup bench skipped: WOSOOL_BENCH_DATABASE_URL / WOSOOL_BENCH_PG_DUMP not set (run scripts/bench)"
        );
        return;
    };
    let tenants: usize = std::env::var("WOSOOL_BENCH_BACKUP_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let concurrency: usize = std::env::var("WOSOOL_BENCH_BACKUP_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    wosool::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = rt.enter();
    let work = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let global = fresh_database(&admin_url, "wosool_bench_backup").await;
        let env: Vec<(String, String)> = [
            ("WOSOOL_DB__URL", global.clone()),
            ("WOSOOL_DB__MAX_CONNECTIONS", "10".into()),
            ("WOSOOL_LOG__LEVEL", "warn".into()),
            ("WOSOOL_TENANCY__PG_DUMP_PATH", pg_dump.clone()),
            ("WOSOOL_BACKUP__DIR", work.path().join("sets").display().to_string()),
            ("WOSOOL_BACKUP__STAGING_DIR", work.path().join("staging").display().to_string()),
            ("WOSOOL_BACKUP__CONCURRENCY", concurrency.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = Config::load_from(None, env).expect("bench config");
        let pool = wosool::db::connect_with_retry(&config.db).await.expect("connect");
        wosool::db::migrate(&pool).await.expect("migrate");
        let core = Core::new(config.clone(), pool.clone(), None).expect("core");
        core.servers().ensure_templates(&pool).await.expect("tenant template");

        let started = Instant::now();
        let names = create_tenants(&admin_url, &pool, &config, tenants).await;
        eprintln!(
            "backup bench: {tenants} tenant databases cloned in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut databases = vec!["wosool_bench_backup".to_owned()];
        databases.extend(names);

        // Baseline: the same databases, pg_dump one after another from a shell loop.
        let url = url::Url::parse(&admin_url).expect("url");
        let list = work.path().join("databases.txt");
        std::fs::write(&list, databases.join("\n")).expect("list");
        let loop_dir = work.path().join("loop");
        std::fs::create_dir_all(&loop_dir).expect("dir");
        let script = format!(
            "while read -r db; do \"$PG_DUMP\" --format=custom --no-password -h {} -p {} -U {} -f \"$OUT/$db.dump\" \"$db\" || exit 1; done < \"$LIST\"",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432),
            url.username()
        );
        let started = Instant::now();
        let status = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("PG_DUMP", &pg_dump)
            .env("OUT", &loop_dir)
            .env("LIST", &list)
            .env("PGPASSWORD", url.password().unwrap_or(""))
            .status()
            .expect("bash");
        assert!(status.success(), "the pg_dump loop failed");
        let baseline = started.elapsed().as_secs_f64();
        let loop_bytes: u64 = std::fs::read_dir(&loop_dir)
            .expect("read dir")
            .map(|e| e.expect("entry").metadata().expect("meta").len())
            .sum();

        let backups = Backups::new(&core).expect("backups");
        let started = Instant::now();
        let report = backups.run().await.expect("backup run");
        let ours = started.elapsed().as_secs_f64();
        assert_eq!(report.status, "succeeded", "{:?}", report.failed);
        assert_eq!(report.databases, databases.len());

        let n = databases.len() as f64;
        println!("backup of {} databases (global + {tenants} tenants), concurrency {concurrency}:", databases.len());
        println!(
            "  pg_dump shell loop (sequential): {baseline:7.1} s  {:7.1} databases/s  {:6.1} MB/s",
            n / baseline,
            loop_bytes as f64 / baseline / 1e6
        );
        println!(
            "  wosool backup run:               {ours:7.1} s  {:7.1} databases/s  {:6.1} MB/s  (+ pg_restore --list, SHA-256, upload)",
            n / ours,
            report.bytes as f64 / ours / 1e6
        );
        println!(
            "  speed-up: {:.2}x (target >= 1.5x); {} bytes stored",
            baseline / ours,
            report.bytes
        );
    });
}

async fn fresh_database(admin_url: &str, name: &str) -> String {
    let admin = PgPool::connect(admin_url).await.expect("connect");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .execute(sqlx::AssertSqlSafe(sql))
            .await
            .expect("recreate");
    }
    admin.close().await;
    let mut url = url::Url::parse(admin_url).expect("url");
    url.set_path(name);
    url.to_string()
}

/// A template with data, cloned `count` times; the registry rows of the clones (ready tenants).
async fn create_tenants(
    admin_url: &str,
    pool: &PgPool,
    config: &Config,
    count: usize,
) -> Vec<String> {
    let admin = PgPool::connect(admin_url).await.expect("connect");
    let template = &config.tenancy.template_database;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"
        )))
        .await
        .expect("drop template");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {TEMPLATE} TEMPLATE \"{template}\""
        )))
        .await
        .expect("template");
    let mut url = url::Url::parse(admin_url).expect("url");
    url.set_path(TEMPLATE);
    let tpl = PgPool::connect(url.as_str())
        .await
        .expect("connect template");
    tpl.execute(
        "INSERT INTO customers (salla_id, first_name, last_name, email, raw) \
         SELECT g, 'Customer ' || g, 'Family', 'c' || g || '@example.sa', jsonb_build_object('id', g) \
         FROM generate_series(1, 200) g",
    )
    .await
    .expect("customers");
    tpl.close().await;
    let mut names = Vec::with_capacity(count);
    let ids: Vec<TenantId> = (0..count).map(|_| TenantId::new()).collect();
    for id in &ids {
        let name = DbName::for_tenant(*id).as_str().to_owned();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE}"
            )))
            .await
            .expect("clone");
        names.push(name);
    }
    admin.close().await;
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let slugs: Vec<String> = ids
        .iter()
        .map(|id| format!("bench-{}", id.as_uuid().simple()))
        .collect();
    sqlx::query(
        "INSERT INTO tenants (id, slug, display_name, status, db_server, db_name, owner_email, locale, \
         currency, timezone, ready_at, schema_version) \
         SELECT id, slug, 'Bench ' || slug, 'ready', 'main', db, 'owner@example.sa', 'ar-SA', 'SAR', \
         'Asia/Riyadh', now(), $4 FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, slug, db)",
    )
    .bind(&uuids)
    .bind(&slugs)
    .bind(&names)
    .bind(wosool::tenancy::servers::latest_tenant_version())
    .execute(pool)
    .await
    .expect("insert tenants");
    names
}
