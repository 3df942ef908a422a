//! The database work of a move, on the tenant servers: freezing the source (read-only at the database level,
//! every older session ended), copying it (`pg_dump | pg_restore`), counting rows on both sides, and undoing.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;

use crate::tenancy::servers::TenantServer;
use crate::tenancy::{DbName, TenantServers};

/// How long ending the source's sessions may take before the step fails (termination is asynchronous).
const TERMINATE_WAIT: Duration = Duration::from_secs(10);
/// Counting the rows of one side must finish within this.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum DbStepError {
    #[error("{server}: {source}")]
    Sql { server: String, source: sqlx::Error },
    #[error("sessions on {0} did not end within {TERMINATE_WAIT:?}")]
    SessionsStayed(String),
    #[error("{program} could not start: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("the copy did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the copy failed: {0}")]
    Copy(String),
    #[error("verification: {0}")]
    Mismatch(String),
}

fn sql(server: &TenantServer) -> impl Fn(sqlx::Error) -> DbStepError + '_ {
    move |source| DbStepError::Sql {
        server: server.key.clone(),
        source,
    }
}

async fn exec(pool: &PgPool, statement: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await
        .map(drop)
}

/// Makes `db` read-only for every session that starts from now on, then ends every session that started
/// before (they were opened writable): first letting running transactions finish for up to `drain`, then
/// terminating whatever is left. When this returns, no session on `db` can write.
///
/// Why sessions, not the cache: the tenant's read-only flag reaches other replicas through the tenant cache
/// (pub/sub, or `tenancy.cache.ttl_secs` when a message is lost), and background jobs do not look at it.
/// The database itself refusing writes does not depend on any of them.
pub async fn freeze(
    server: &TenantServer,
    db: &DbName,
    drain: Duration,
) -> Result<(), DbStepError> {
    let pool = server.maintenance_pool();
    exec(
        pool,
        format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            db.quoted()
        ),
    )
    .await
    .map_err(sql(server))?;
    // A session reads the database's settings after it started (`backend_start`): one that started after
    // this instant sees the ALTER above; one that started before may not, and is ended below.
    let frozen_at: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
        .map_err(sql(server))?;
    let deadline = Instant::now() + drain;
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_start <= $2 \
             AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'",
        )
        .bind(db.as_str())
        .bind(frozen_at)
        .fetch_one(pool)
        .await
        .map_err(sql(server))?;
        if busy == 0 || Instant::now() >= deadline {
            if busy > 0 {
                tracing::warn!(server = %server.key, database = %db, sessions = busy, "transactions still running on the move's source after the drain timeout; terminating them");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    end_sessions(server, db, frozen_at).await
}

/// Terminates every session on `db` that started at or before `before`, and waits until they are gone.
async fn end_sessions(
    server: &TenantServer,
    db: &DbName,
    before: OffsetDateTime,
) -> Result<(), DbStepError> {
    let pool = server.maintenance_pool();
    let deadline = Instant::now() + TERMINATE_WAIT;
    loop {
        // Terminating again each round also catches a session that was still starting in the last one.
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND backend_start <= $2 AND pid <> pg_backend_pid()) t",
        )
        .bind(db.as_str())
        .bind(before)
        .fetch_one(pool)
        .await
        .map_err(sql(server))?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DbStepError::SessionsStayed(db.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Undoes [`freeze`]: writable again for new sessions, and the sessions opened read-only meanwhile are ended
/// (pools reconnect, writable). A missing database is left alone.
pub async fn thaw(server: &TenantServer, db: &DbName) -> Result<(), DbStepError> {
    if !server
        .database_exists(db.as_str())
        .await
        .map_err(|e| DbStepError::Copy(e.to_string()))?
    {
        return Ok(());
    }
    let pool = server.maintenance_pool();
    exec(
        pool,
        format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            db.quoted()
        ),
    )
    .await
    .map_err(sql(server))?;
    let thawed_at: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
        .map_err(sql(server))?;
    end_sessions(server, db, thawed_at).await
}

/// An empty database for the copy: created when missing, kept when it holds no table yet (made before the
/// read-only window, so the window does not pay for it), recreated when an interrupted attempt filled it.
pub async fn ensure_empty(server: &TenantServer, db: &DbName) -> Result<(), DbStepError> {
    if server
        .database_exists(db.as_str())
        .await
        .map_err(|e| DbStepError::Copy(e.to_string()))?
    {
        let mut conn = PgConnection::connect_with(&server.tenant_options(db))
            .await
            .map_err(sql(server))?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(sql(server))?;
        let _ = conn.close().await;
        if tables == 0 {
            return Ok(());
        }
    }
    recreate(server, db).await
}

/// A new empty database, replacing whatever had the name.
pub async fn recreate(server: &TenantServer, db: &DbName) -> Result<(), DbStepError> {
    drop_database(server, db).await?;
    exec(
        server.maintenance_pool(),
        format!("CREATE DATABASE {} TEMPLATE template0", db.quoted()),
    )
    .await
    .map_err(sql(server))
}

pub async fn drop_database(server: &TenantServer, db: &DbName) -> Result<(), DbStepError> {
    server
        .drop_database(db)
        .await
        .map_err(|e| DbStepError::Copy(e.to_string()))
}

/// What a copy took.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    pub elapsed: Duration,
}

/// `pg_dump --format=custom --compress=0` of the source piped into `pg_restore --single-transaction` on the
/// target: no file in between, no compression to pay for on a local network, one transaction so that a failed
/// restore leaves nothing half-written. Passwords go through each program's environment; both are killed when
/// `timeout` passes.
pub async fn copy(
    servers: &TenantServers,
    source: &TenantServer,
    target: &TenantServer,
    db: &DbName,
    programs: (&str, &str),
    timeout: Duration,
) -> Result<Copied, DbStepError> {
    let started = Instant::now();
    let (pg_dump, pg_restore) = programs;
    let from = source.dump_target(db);
    let to = target.dump_target(db);
    let mut dump = tokio::process::Command::new(pg_dump);
    dump.args(["--format=custom", "--compress=0", "--no-password"])
        .arg("--host")
        .arg(&from.host)
        .arg("--port")
        .arg(from.port.to_string())
        .arg("--username")
        .arg(&from.user)
        .arg("--dbname")
        .arg(&from.database)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = servers.password(&source.key) {
        dump.env("PGPASSWORD", password);
    }
    let mut restore = tokio::process::Command::new(pg_restore);
    restore
        .args([
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--no-password",
        ])
        .arg("--host")
        .arg(&to.host)
        .arg("--port")
        .arg(to.port.to_string())
        .arg("--username")
        .arg(&to.user)
        .arg("--dbname")
        .arg(&to.database)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = servers.password(&target.key) {
        restore.env("PGPASSWORD", password);
    }
    let spawn = |program: &str| {
        let program = program.to_owned();
        move |error| DbStepError::Spawn { program, error }
    };
    let mut dumping = dump.spawn().map_err(spawn(pg_dump))?;
    let pipe: Stdio = dumping
        .stdout
        .take()
        .ok_or_else(|| DbStepError::Copy("pg_dump has no stdout".into()))?
        .try_into()
        .map_err(spawn(pg_dump))?;
    let mut restoring = restore.stdin(pipe).spawn().map_err(spawn(pg_restore))?;
    let both = async {
        let (dumped, restored) = tokio::join!(finish(&mut dumping), finish(&mut restoring));
        (dumped, restored)
    };
    let (dumped, restored) = match tokio::time::timeout(timeout, both).await {
        Ok(results) => results,
        Err(_) => {
            let _ = dumping.kill().await;
            let _ = restoring.kill().await;
            return Err(DbStepError::Timeout(timeout));
        }
    };
    let dumped = dumped.map_err(spawn(pg_dump))?;
    let restored = restored.map_err(spawn(pg_restore))?;
    if !dumped.0.success() || !restored.0.success() {
        return Err(DbStepError::Copy(format!(
            "pg_dump {} ({}); pg_restore {} ({})",
            dumped.0,
            dumped.1.trim(),
            restored.0,
            restored.1.trim()
        )));
    }
    Ok(Copied {
        elapsed: started.elapsed(),
    })
}

/// Waits for a child, collecting its standard error (bounded, for the failure message).
async fn finish(
    child: &mut tokio::process::Child,
) -> std::io::Result<(std::process::ExitStatus, String)> {
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        let _ = pipe.take(16 * 1024).read_to_string(&mut stderr).await;
    }
    let status = child.wait().await?;
    Ok((status, stderr))
}

/// Exact rows per table (every schema but the system ones), and the tenant migration version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    pub rows: BTreeMap<String, i64>,
    pub schema_version: Option<i64>,
}

/// Counts `db` on `server` with `count(*)` on every table (exact, not the planner's estimate).
pub async fn census(server: &TenantServer, db: &DbName) -> Result<Census, DbStepError> {
    let work = async {
        let mut conn = PgConnection::connect_with(&server.tenant_options(db)).await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await?;
        let mut rows = BTreeMap::new();
        for table in tables {
            // The names come from the catalog, quoted by format('%I').
            let count: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&mut conn)
                    .await?;
            rows.insert(table, count);
        }
        let schema_version = if rows.contains_key("public._sqlx_migrations") {
            sqlx::query_scalar("SELECT max(version) FROM public._sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await?
        } else {
            None
        };
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(Census {
            rows,
            schema_version,
        })
    };
    tokio::time::timeout(VERIFY_TIMEOUT, work)
        .await
        .map_err(|_| DbStepError::Mismatch(format!("counting {db} took over {VERIFY_TIMEOUT:?}")))?
        .map_err(sql(server))
}

/// The differences between two censuses, for the failure message (empty: equal).
pub fn differences(source: &Census, target: &Census) -> Vec<String> {
    let mut found = Vec::new();
    for (table, count) in &source.rows {
        match target.rows.get(table) {
            Some(copied) if copied == count => {}
            Some(copied) => found.push(format!(
                "{table}: {count} rows on the source, {copied} on the target"
            )),
            None => found.push(format!("{table}: missing on the target")),
        }
    }
    for table in target.rows.keys().filter(|t| !source.rows.contains_key(*t)) {
        found.push(format!("{table}: only on the target"));
    }
    if source.schema_version != target.schema_version {
        found.push(format!(
            "tenant migration version {:?} on the source, {:?} on the target",
            source.schema_version, target.schema_version
        ));
    }
    found
}
