//! The PostgreSQL client tools backups run: `pg_dump --format=custom`, `pg_restore --list` (is this a complete
//! archive?) and `pg_restore` into a database. Every run has a timeout (the process is killed when it passes)
//! and the password goes through `PGPASSWORD`, never the command line. Tenant deletion's dump uses the same.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::tenancy::TenantServers;

/// Why a tool did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum PgToolError {
    #[error("{program} did not finish within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
    #[error("cannot run {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("{program} exited with {status}: {stderr}")]
    Failed {
        program: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("{0}")]
    Server(String),
}

/// Where a tool connects: host, port, role, password (environment only) and database.
#[derive(Clone)]
pub struct PgEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: Option<String>,
    pub database: String,
}

impl std::fmt::Debug for PgEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

impl PgEndpoint {
    /// From a `postgres://user:password@host:port/database` URL (the global database, a Twenty database).
    pub fn from_url(raw: &str) -> Result<Self, PgToolError> {
        let url = url::Url::parse(raw).map_err(|e| PgToolError::BadUrl(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(PgToolError::BadUrl("not a postgres:// URL".into()));
        }
        let decode = percent_decode;
        let database = url.path().trim_start_matches('/');
        Ok(Self {
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().unwrap_or(5432),
            user: decode(url.username()),
            password: url.password().map(decode),
            database: if database.is_empty() {
                "postgres".into()
            } else {
                decode(database)
            },
        })
    }

    /// `db` on the tenant server `server` (the server's credentials).
    pub fn tenant(servers: &TenantServers, server: &str, db: &str) -> Result<Self, PgToolError> {
        let found = servers
            .get(server)
            .map_err(|e| PgToolError::Server(e.to_string()))?;
        let target = found.dump_target_named(db);
        Ok(Self {
            host: target.host,
            port: target.port,
            user: target.user,
            password: servers.password(server),
            database: target.database,
        })
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    fn apply(&self, command: &mut tokio::process::Command) {
        command
            .arg("--no-password")
            .arg("--host")
            .arg(&self.host)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--username")
            .arg(&self.user);
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// The tools and their time limit.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub pg_dump: String,
    pub pg_restore: String,
    pub timeout: Duration,
}

impl PgTools {
    pub fn new(
        pg_dump: impl Into<String>,
        pg_restore: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            pg_dump: pg_dump.into(),
            pg_restore: pg_restore.into(),
            timeout,
        }
    }

    /// `pg_dump --format=custom` of `source` into `file` (overwritten).
    pub async fn dump(&self, source: &PgEndpoint, file: &Path) -> Result<(), PgToolError> {
        let mut command = tokio::process::Command::new(&self.pg_dump);
        command.arg("--format=custom").arg("--file").arg(file);
        source.apply(&mut command);
        command.arg("--dbname").arg(&source.database);
        run(&self.pg_dump, command, self.timeout).await.map(drop)
    }

    /// `pg_restore --list`: reads the whole table of contents of a custom-format archive; fails on a
    /// truncated or corrupt file. Returns the number of entries.
    pub async fn list(&self, file: &Path) -> Result<usize, PgToolError> {
        let mut command = tokio::process::Command::new(&self.pg_restore);
        command.arg("--list").arg(file);
        let stdout = run(&self.pg_restore, command, self.timeout).await?;
        Ok(String::from_utf8_lossy(&stdout)
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .count())
    }

    /// `pg_restore` of `file` into the existing, empty database `target`, stopping at the first error.
    /// Objects are owned by the restoring role (`--no-owner`): the same role that owns tenant databases.
    pub async fn restore(&self, file: &Path, target: &PgEndpoint) -> Result<(), PgToolError> {
        let mut command = tokio::process::Command::new(&self.pg_restore);
        command.arg("--exit-on-error").arg("--no-owner");
        target.apply(&mut command);
        command.arg("--dbname").arg(&target.database).arg(file);
        run(&self.pg_restore, command, self.timeout).await.map(drop)
    }
}

/// Runs `command` to completion within `timeout` (killed otherwise); its stdout on success.
async fn run(
    program: &str,
    mut command: tokio::process::Command,
    timeout: Duration,
) -> Result<Vec<u8>, PgToolError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| PgToolError::Timeout {
            program: program.to_owned(),
            timeout,
        })?
        .map_err(|error| PgToolError::Spawn {
            program: program.to_owned(),
            error,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(PgToolError::Failed {
            program: program.to_owned(),
            status: output.status,
            // The last lines say why; a full restore log can be long.
            stderr: stderr
                .trim()
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        });
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_endpoints_with_decoded_parts() {
        let e = PgEndpoint::from_url("postgres://app:p%40ss@db.internal:6543/wosool").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.user.as_str()),
            ("db.internal", 6543, "app")
        );
        assert_eq!(e.password.as_deref(), Some("p@ss"));
        assert_eq!(e.database, "wosool");
        assert!(!format!("{e:?}").contains("p@ss"));
        assert!(PgEndpoint::from_url("mysql://x@y/z").is_err());
    }
}
