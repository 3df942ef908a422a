//! The PostgreSQL servers that hold tenant databases, and the database-level operations on them: keeping the
//! template migrated, cloning it into a tenant database, dropping one.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::DbName;
use crate::config::Config;

/// Migrations of every tenant database (and of the template), embedded in the binary.
pub static TENANT_MIGRATOR: Migrator = sqlx::migrate!("./migrations/tenant");

/// The key of the implicit server when `db.tenant_servers` is empty.
pub const DEFAULT_SERVER_KEY: &str = "main";

/// The database maintenance connections of the implicit server use.
const MAINTENANCE_DATABASE: &str = "postgres";

/// Serialises clones and template migrations on one server (the template cannot be cloned while anything
/// is connected to it, and two clones of one template must not race its `ALLOW_CONNECTIONS` toggling).
const TEMPLATE_LOCK: i64 = 727_100;

/// The version of the newest tenant migration this binary knows.
pub fn latest_tenant_version() -> i64 {
    TENANT_MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("unknown tenant server {0:?} (not in db.tenant_servers)")]
    UnknownServer(String),
    #[error("invalid URL of tenant server {key}: {source}")]
    BadUrl { key: String, source: sqlx::Error },
    #[error("tenant server {key}: {source}")]
    Db { key: String, source: sqlx::Error },
    #[error("tenant migrations on {database} failed: {source}")]
    Migrate {
        database: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// [`TenantServers::place`] over `(key, draining)` pairs in configuration order.
fn place_among<'a>(
    servers: impl Iterator<Item = (&'a str, bool)>,
    counts: &std::collections::HashMap<String, i64>,
) -> &'a str {
    servers
        .filter(|(_, draining)| !draining)
        .min_by_key(|(key, _)| counts.get(*key).copied().unwrap_or(0))
        .map(|(key, _)| key)
        .unwrap_or(DEFAULT_SERVER_KEY)
}

/// One tenant server: a small maintenance pool for `CREATE/DROP DATABASE`, and the options tenant databases
/// are reached with (same host and credentials, another database).
#[derive(Clone)]
pub struct TenantServer {
    pub key: String,
    /// No new tenant is placed here (`db.tenant_servers[].draining`).
    pub draining: bool,
    options: PgConnectOptions,
    maintenance: PgPool,
}

impl TenantServer {
    /// Options to connect to one tenant database on this server.
    pub fn tenant_options(&self, db: &DbName) -> PgConnectOptions {
        self.options.clone().database(db.as_str())
    }

    fn err(&self, source: sqlx::Error) -> ServerError {
        ServerError::Db {
            key: self.key.clone(),
            source,
        }
    }

    pub async fn database_exists(&self, name: &str) -> Result<bool, ServerError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&self.maintenance)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn database_size(&self, db: &DbName) -> Result<Option<i64>, ServerError> {
        sqlx::query_scalar("SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1")
            .bind(db.as_str())
            .fetch_optional(&self.maintenance)
            .await
            .map_err(|e| self.err(e))
    }

    /// Runs `work` on a maintenance connection holding the template lock.
    async fn with_template_lock<T, F>(&self, work: F) -> Result<T, ServerError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, ServerError>,
    {
        let mut conn = self.maintenance.acquire().await.map_err(|e| self.err(e))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(TEMPLATE_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        let result = work(&mut conn).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(TEMPLATE_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // A connection that may still hold the lock must not go back to the pool.
            conn.detach();
        }
        result
    }

    /// Creates the template when missing and migrates it to the latest tenant version, then closes it to
    /// connections again. Returns the template's version.
    pub async fn ensure_template(&self, template: &str) -> Result<i64, ServerError> {
        let latest = latest_tenant_version();
        self.with_template_lock(async |conn| {
            let state: Option<(bool, bool)> = sqlx::query_as(
                "SELECT datallowconn, datistemplate FROM pg_database WHERE datname = $1",
            )
            .bind(template)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
            if state.is_none() {
                exec(
                    conn,
                    format!("CREATE DATABASE \"{template}\" TEMPLATE template0"),
                )
                .await
                .map_err(|e| self.err(e))?;
            }
            exec(
                conn,
                format!("ALTER DATABASE \"{template}\" WITH ALLOW_CONNECTIONS true"),
            )
            .await
            .map_err(|e| self.err(e))?;
            let migrated = migrate_database(self.options.clone().database(template)).await;
            exec(
                conn,
                format!(
                    "ALTER DATABASE \"{template}\" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"
                ),
            )
            .await
            .map_err(|e| self.err(e))?;
            let version = migrated?;
            debug_assert_eq!(version, latest);
            Ok(version)
        })
        .await
    }

    /// `CREATE DATABASE <db> TEMPLATE <template>` unless the database exists. Returns whether it created it.
    pub async fn clone_template(&self, template: &str, db: &DbName) -> Result<bool, ServerError> {
        self.with_template_lock(async |conn| {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(db.as_str())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?;
            if exists {
                return Ok(false);
            }
            exec(
                conn,
                format!("CREATE DATABASE {} TEMPLATE \"{template}\"", db.quoted()),
            )
            .await
            .map_err(|e| self.err(e))?;
            Ok(true)
        })
        .await
    }

    /// The baseline that template cloning replaces: an empty database, then every tenant migration. Kept for
    /// the provisioning benchmark.
    pub async fn create_and_migrate(&self, db: &DbName) -> Result<i64, ServerError> {
        exec_pool(
            &self.maintenance,
            format!("CREATE DATABASE {}", db.quoted()),
        )
        .await
        .map_err(|e| self.err(e))?;
        migrate_database(self.tenant_options(db)).await
    }

    /// `DROP DATABASE … WITH (FORCE)`: disconnects whatever is still connected. Dropping a missing database
    /// succeeds (deletion is resumable).
    pub async fn drop_database(&self, db: &DbName) -> Result<(), ServerError> {
        exec_pool(
            &self.maintenance,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.quoted()),
        )
        .await
        .map_err(|e| self.err(e))
    }

    /// The connection URL parts pg_dump needs (host, port, user, password), for one tenant database.
    pub fn dump_target(&self, db: &DbName) -> DumpTarget {
        self.dump_target_named(db.as_str())
    }

    /// [`Self::dump_target`] for any database of this server (restore and drill scratch databases).
    pub fn dump_target_named(&self, database: &str) -> DumpTarget {
        DumpTarget {
            host: self.options.get_host().to_owned(),
            port: self.options.get_port(),
            user: self.options.get_username().to_owned(),
            database: database.to_owned(),
        }
    }

    /// Options to connect to any database of this server (`name` must be a checked identifier).
    pub fn options_named(&self, name: &str) -> PgConnectOptions {
        self.options.clone().database(name)
    }

    /// `CREATE DATABASE <name> TEMPLATE template0`: an empty database to restore a dump into. `name` must be
    /// a plain identifier ([`super::is_valid_identifier`]).
    pub async fn create_empty_database(&self, name: &str) -> Result<(), ServerError> {
        debug_assert!(super::is_valid_identifier(name));
        exec_pool(
            &self.maintenance,
            format!("CREATE DATABASE \"{name}\" TEMPLATE template0"),
        )
        .await
        .map_err(|e| self.err(e))
    }

    /// `DROP DATABASE IF EXISTS <name> WITH (FORCE)` for any plain identifier (scratch databases).
    pub async fn drop_database_named(&self, name: &str) -> Result<(), ServerError> {
        debug_assert!(super::is_valid_identifier(name));
        exec_pool(
            &self.maintenance,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )
        .await
        .map_err(|e| self.err(e))
    }

    pub fn maintenance_pool(&self) -> &PgPool {
        &self.maintenance
    }
}

/// Where pg_dump connects; the password is passed through the environment, never the command line.
#[derive(Debug, Clone)]
pub struct DumpTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(drop)
}

async fn exec_pool(pool: &PgPool, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .map(drop)
}

/// Applies pending tenant migrations to one database on a dedicated connection; returns its version.
pub async fn migrate_database(options: PgConnectOptions) -> Result<i64, ServerError> {
    let database = options.get_database().unwrap_or_default().to_owned();
    let migrate_err = |source| ServerError::Migrate {
        database: database.clone(),
        source,
    };
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| migrate_err(sqlx::migrate::MigrateError::Execute(e)))?;
    let result = TENANT_MIGRATOR.run_direct(None, &mut conn, false).await;
    let _ = conn.close().await;
    result.map_err(migrate_err)?;
    Ok(latest_tenant_version())
}

/// Every configured tenant server. Cheap to clone.
#[derive(Clone)]
pub struct TenantServers {
    servers: Arc<Vec<TenantServer>>,
    template: Arc<str>,
    password: Arc<std::collections::HashMap<String, Option<String>>>,
}

impl TenantServers {
    /// Builds lazy maintenance pools (nothing connects until used).
    pub fn from_config(config: &Config) -> Result<Self, ServerError> {
        let entries: Vec<(String, String)> = if config.db.tenant_servers.is_empty() {
            vec![(
                DEFAULT_SERVER_KEY.to_owned(),
                config.db.url.expose().to_owned(),
            )]
        } else {
            config
                .db
                .tenant_servers
                .iter()
                .map(|s| (s.key.clone(), s.url.expose().to_owned()))
                .collect()
        };
        let draining = |key: &str| {
            config
                .db
                .tenant_servers
                .iter()
                .any(|s| s.key == key && s.draining)
        };
        let mut servers = Vec::with_capacity(entries.len());
        let mut password = std::collections::HashMap::new();
        for (key, url) in entries {
            let mut options =
                PgConnectOptions::from_str(&url).map_err(|source| ServerError::BadUrl {
                    key: key.clone(),
                    source,
                })?;
            if config.db.tenant_servers.is_empty() {
                // The implicit server is db.url's cluster; its maintenance database is "postgres", never the
                // global database, so that the template lock (advisory locks are per database) is shared
                // by every deployment on the cluster.
                options = options.database(MAINTENANCE_DATABASE);
            }
            password.insert(
                key.clone(),
                url::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.password().map(str::to_owned)),
            );
            let maintenance = PgPoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(config.db.acquire_timeout_secs))
                .idle_timeout(Duration::from_secs(60))
                .connect_lazy_with(options.clone());
            servers.push(TenantServer {
                draining: draining(&key),
                key,
                options,
                maintenance,
            });
        }
        Ok(Self {
            servers: Arc::new(servers),
            template: config.tenancy.template_database.as_str().into(),
            password: Arc::new(password),
        })
    }

    pub fn get(&self, key: &str) -> Result<&TenantServer, ServerError> {
        self.servers
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| ServerError::UnknownServer(key.to_owned()))
    }

    pub fn all(&self) -> &[TenantServer] {
        &self.servers
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    /// The password of a server's URL, for pg_dump's environment.
    pub fn password(&self, key: &str) -> Option<String> {
        self.password.get(key).cloned().flatten()
    }

    /// The server a new tenant goes to: of those not draining, the one with the fewest live tenants (ties:
    /// configuration order).
    pub fn place(&self, counts: &std::collections::HashMap<String, i64>) -> &str {
        place_among(
            self.servers.iter().map(|s| (s.key.as_str(), s.draining)),
            counts,
        )
    }

    /// Brings the template of every server to the latest tenant version (startup and `wosool migrate`).
    pub async fn ensure_templates(&self, registry: &PgPool) -> Result<(), ServerError> {
        for server in self.servers.iter() {
            let recorded: Option<i64> = sqlx::query_scalar(
                "SELECT schema_version FROM tenant_templates WHERE db_server = $1",
            )
            .bind(&server.key)
            .fetch_optional(registry)
            .await
            .map_err(|e| server.err(e))?;
            if recorded == Some(latest_tenant_version())
                && server.database_exists(&self.template).await?
            {
                continue;
            }
            let version = server.ensure_template(&self.template).await?;
            sqlx::query(
                "INSERT INTO tenant_templates (db_server, schema_version) VALUES ($1, $2) \
                 ON CONFLICT (db_server) DO UPDATE SET schema_version = $2, migrated_at = now()",
            )
            .bind(&server.key)
            .bind(version)
            .execute(registry)
            .await
            .map_err(|e| server.err(e))?;
            tracing::info!(server = %server.key, template = %self.template, version, "tenant template migrated");
        }
        Ok(())
    }

    pub async fn close(&self) {
        for server in self.servers.iter() {
            server.maintenance.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::place_among;

    #[test]
    fn new_tenants_go_to_the_emptiest_server_that_is_not_draining() {
        let counts: HashMap<String, i64> =
            [("pg-1".into(), 5), ("pg-2".into(), 1), ("pg-3".into(), 3)]
                .into_iter()
                .collect();
        let servers = [("pg-1", false), ("pg-2", false), ("pg-3", false)];
        assert_eq!(place_among(servers.into_iter(), &counts), "pg-2");
        let draining = [("pg-1", false), ("pg-2", true), ("pg-3", false)];
        assert_eq!(place_among(draining.into_iter(), &counts), "pg-3");
        // Ties: configuration order.
        let even: HashMap<String, i64> = HashMap::new();
        assert_eq!(
            place_among([("a", false), ("b", false)].into_iter(), &even),
            "a"
        );
    }
}
