//! Backups and restores (docs/backups.md).
//!
//! - [`run`]: one backup set: `pg_dump --format=custom` of the global database, every live tenant database and
//!   the configured Twenty databases, with bounded concurrency; each dump checked by `pg_restore --list`,
//!   checksummed, uploaded to the [`target`] (encrypted by our [`envelope`] when configured), and described by
//!   the set's [`manifest`]; each database's outcome [`record`]ed in the global database.
//! - [`retention`]: which sets a grandfather-father-son policy keeps; [`prune`] deletes the others.
//! - [`verify`]: re-download a set, compare checksums, `pg_restore --list` each dump.
//! - [`restore`]: a tenant into a new database, checked, then swapped in under a read-only window, the old
//!   database kept until confirmed; the global database into a database the operator names.
//! - [`drill`]: a random tenant's latest backup restored into a scratch database and compared with the live one.
//! - [`jobs`]: `backup.run`, `backup.prune`, `backup.drill` and their schedules.

pub mod drill;
pub mod envelope;
pub mod jobs;
pub mod manifest;
pub mod pg;
pub mod prune;
pub mod record;
pub mod restore;
pub mod retention;
pub mod run;
pub mod target;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use crate::core::Core;
use pg::{PgToolError, PgTools};
use target::{Target, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Tool(#[from] PgToolError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("tenant server: {0}")]
    Server(#[from] crate::tenancy::servers::ServerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The backup service: the core, the target and the PostgreSQL tools. Cheap to clone.
#[derive(Clone)]
pub struct Backups {
    core: Core,
    target: Target,
    tools: PgTools,
}

impl Backups {
    pub fn new(core: &Core) -> Result<Self, BackupError> {
        let config = core.config();
        let target = Target::from_config(&config.backup)?;
        let tools = PgTools::new(
            config.tenancy.pg_dump_path.clone(),
            config.backup.pg_restore(&config.tenancy.pg_dump_path),
            Duration::from_secs(config.backup.dump_timeout_secs),
        );
        Ok(Self {
            core: core.clone(),
            target,
            tools,
        })
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn tools(&self) -> &PgTools {
        &self.tools
    }

    /// A fresh staging directory of its own (removed by the caller's [`Staging`] guard).
    fn staging(&self, label: &str) -> Result<Staging, BackupError> {
        let dir = self
            .core
            .config()
            .backup
            .staging()
            .join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok(Staging(dir))
    }

    /// The set's manifest, read from the target.
    pub async fn manifest(&self, set_id: &str) -> Result<manifest::Manifest, BackupError> {
        if !manifest::is_set_id(set_id) {
            return Err(BackupError::Invalid(format!(
                "{set_id:?} is not a backup set id"
            )));
        }
        let bytes = self
            .target
            .get_small(&manifest::Manifest::object(set_id))
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// A staging directory, removed with everything in it when dropped.
struct Staging(PathBuf);

impl Staging {
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
