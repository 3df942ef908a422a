//! The global (control-plane) database: connecting with a bounded wait, and its migrations.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DbConfig;

/// Migrations of the global database, embedded in the binary.
pub static GLOBAL_MIGRATOR: Migrator = sqlx::migrate!("./migrations/global");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("PostgreSQL at {url} not reachable after {waited:?}: {source}")]
    Unreachable {
        url: String,
        waited: Duration,
        source: sqlx::Error,
    },
    #[error(
        "cannot reach the control-plane database at {url} within {waited:?}: {source}. Set DATABASE_URL \
         (or WOSOOL_DB__URL) to it; for the local stack that scripts/run started, run the CLI as scripts/wosool"
    )]
    CliUnreachable {
        url: String,
        waited: Duration,
        source: sqlx::Error,
    },
    #[error("global migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Pool options from config. Connections are opened lazily, so building the pool never blocks.
pub fn pool_options(config: &DbConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
        .idle_timeout(Duration::from_secs(600))
}

/// Connects to the global database, retrying with capped exponential backoff for up to
/// `db.startup_wait_secs` (in Docker Compose the database may come up after us). Each failed try is logged.
pub async fn connect_with_retry(config: &DbConfig) -> Result<PgPool, DbError> {
    let started = Instant::now();
    let deadline = Duration::from_secs(config.startup_wait_secs);
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1u32;
    loop {
        match pool_options(config).connect(config.url.expose()).await {
            Ok(pool) => {
                if attempt > 1 {
                    tracing::info!(
                        attempt,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "connected to PostgreSQL"
                    );
                }
                return Ok(pool);
            }
            Err(error) if started.elapsed() + delay < deadline && is_transient(&error) => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    url = %config.url.redacted(),
                    error = %error,
                    "PostgreSQL not reachable yet; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(source) => {
                return Err(DbError::Unreachable {
                    url: config.url.redacted(),
                    waited: started.elapsed(),
                    source,
                });
            }
        }
    }
}

/// How long a CLI command waits for the database: an operator at a terminal wants the mistake named at once,
/// not a minute of retries meant for a server starting beside its database.
pub const CLI_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Connects for a one-shot CLI command: one attempt, bounded by [`CLI_CONNECT_TIMEOUT`], failing with a message
/// that names `DATABASE_URL` (and `scripts/wosool` for the local stack).
pub async fn connect_for_cli(config: &DbConfig) -> Result<PgPool, DbError> {
    let started = Instant::now();
    let unreachable = |source| DbError::CliUnreachable {
        url: config.url.redacted(),
        waited: started.elapsed(),
        source,
    };
    match tokio::time::timeout(
        CLI_CONNECT_TIMEOUT,
        pool_options(config).connect(config.url.expose()),
    )
    .await
    {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(source)) => Err(unreachable(source)),
        Err(_) => Err(unreachable(sqlx::Error::PoolTimedOut)),
    }
}

/// Errors worth waiting out at startup: the server is not up (yet) or still starting. Wrong credentials or a
/// missing database are not: retrying would only delay the clear failure.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03 cannot_connect_now: "the database system is starting up".
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// Applies pending global migrations. Safe to run from several replicas at once: sqlx holds an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    GLOBAL_MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether every embedded global migration has been applied successfully (readiness check).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .or_else(|e| match &e {
                // The table does not exist before the first migration: nothing is applied.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(vec![]),
                _ => Err(e),
            })?;
    Ok(GLOBAL_MIGRATOR
        .iter()
        .all(|m| applied.binary_search(&m.version).is_ok()))
}

/// Database errors that are the client's doing, named in one place (as realworld-axum-sqlx's
/// `on_constraint`): which unique constraint a statement violated, and input PostgreSQL cannot store.
pub mod violation {
    /// SQLSTATE of a unique violation.
    const UNIQUE: &str = "23505";
    /// SQLSTATEs of text PostgreSQL cannot store: a NUL character (`invalid byte sequence for encoding
    /// "UTF8": 0x00`) or one the encoding cannot represent.
    const UNSTORABLE_TEXT: [&str; 2] = ["22021", "22P05"];

    /// The unique constraint `error` violated, if that is what it is.
    pub fn unique_constraint(error: &sqlx::Error) -> Option<&str> {
        match error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(UNIQUE) => {
                Some(db.constraint().unwrap_or_default())
            }
            _ => None,
        }
    }

    /// SQLSTATE `read_only_sql_transaction`: a write to a database made read-only, such as the source of a tenant
    /// move during its read-only window (`ALTER DATABASE … SET default_transaction_read_only`).
    const READ_ONLY: &str = "25006";

    /// Whether `error` is a write refused because the database is read-only.
    pub fn is_read_only(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(READ_ONLY))
    }

    /// The same from an error's text, for errors kept as text only (job errors): PostgreSQL's message is
    /// "cannot execute <statement> in a read-only transaction".
    pub fn says_read_only(message: &str) -> bool {
        message.contains("in a read-only transaction")
    }

    /// Whether `error` says the input held text PostgreSQL cannot store.
    pub fn is_unstorable_text(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(db)
            if db.code().is_some_and(|code| UNSTORABLE_TEXT.contains(&code.as_ref())))
    }

    /// Extends query results with `on_constraint`: a violation of one of `constraints` (name → what the
    /// caller calls it) becomes `Err(map(that))`; every other error passes through `E::from`.
    pub trait OnConstraint<T> {
        fn on_constraint<E, V: Copy>(
            self,
            constraints: &[(&str, V)],
            map: impl FnOnce(V) -> E,
        ) -> Result<T, E>
        where
            E: From<sqlx::Error>;
    }

    impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
        fn on_constraint<E, V: Copy>(
            self,
            constraints: &[(&str, V)],
            map: impl FnOnce(V) -> E,
        ) -> Result<T, E>
        where
            E: From<sqlx::Error>,
        {
            self.map_err(|error| {
                let named = unique_constraint(&error)
                    .and_then(|name| constraints.iter().find(|(c, _)| *c == name));
                match named {
                    Some((_, value)) => map(*value),
                    None => E::from(error),
                }
            })
        }
    }
}
