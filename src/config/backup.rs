//! `[backup]`, `[backup.retention]` and `[backup.s3]`: scheduled dumps of the global, tenant and CRM databases,
//! where they are stored, how long, and whether they are encrypted (docs/backups.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Whether the periodic jobs (`backup.run`, `backup.prune`, `backup.drill`) are scheduled. The CLI works
    /// either way.
    pub enabled: bool,
    pub target: BackupTarget,
    pub dir: PathBuf,
    pub staging_dir: PathBuf,
    pub concurrency: usize,
    pub interval_secs: u64,
    pub prune_interval_secs: u64,
    pub drill_interval_secs: u64,
    pub dump_timeout_secs: u64,
    pub include_crm: bool,
    pub pg_restore_path: String,
    /// `<id>:<base64 of 32 bytes>`; the first encrypts new objects, every one decrypts. Empty: no envelope.
    pub encryption_keys: Vec<Secret>,
    pub retention: RetentionConfig,
    pub s3: S3Config,
}

/// Where backup sets are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupTarget {
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub prefix: String,
    pub allow_http: bool,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub server_side_encryption: String,
    pub sse_kms_key_id: String,
    pub request_timeout_secs: u64,
}

impl BackupConfig {
    /// Where pg_restore lives: `pg_restore_path`, else next to `tenancy.pg_dump_path` (same PostgreSQL major).
    pub fn pg_restore(&self, pg_dump_path: &str) -> String {
        if !self.pg_restore_path.is_empty() {
            return self.pg_restore_path.clone();
        }
        match std::path::Path::new(pg_dump_path).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                dir.join("pg_restore").display().to_string()
            }
            _ => "pg_restore".into(),
        }
    }

    /// The staging directory dumps are written to before they are checked and uploaded.
    pub fn staging(&self) -> PathBuf {
        if self.staging_dir.as_os_str().is_empty() {
            std::env::temp_dir().join("wosool-backup")
        } else {
            self.staging_dir.clone()
        }
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if !(1..=64).contains(&self.concurrency) {
            problem(
                "backup.concurrency",
                format!("is {}", self.concurrency),
                "1 to 64 databases dumped at the same time (2-4 on a small server)",
            );
        }
        for (key, value) in [
            ("backup.interval_secs", self.interval_secs),
            ("backup.prune_interval_secs", self.prune_interval_secs),
            ("backup.drill_interval_secs", self.drill_interval_secs),
            ("backup.dump_timeout_secs", self.dump_timeout_secs),
            (
                "backup.s3.request_timeout_secs",
                self.s3.request_timeout_secs,
            ),
        ] {
            if value == 0 {
                problem(key, "is 0".into(), "a positive number");
            }
        }
        if self.retention.daily + self.retention.weekly + self.retention.monthly == 0 {
            problem(
                "backup.retention",
                "keeps nothing (daily, weekly and monthly are all 0)".into(),
                "at least one set kept, e.g. daily = 7",
            );
        }
        match self.target {
            BackupTarget::Local if self.dir.as_os_str().is_empty() => problem(
                "backup.dir",
                "is empty while backup.target is \"local\"".into(),
                "a directory, e.g. /var/lib/wosool/backups",
            ),
            BackupTarget::S3 if self.s3.bucket.is_empty() => problem(
                "backup.s3.bucket",
                "is empty while backup.target is \"s3\"".into(),
                "the bucket name",
            ),
            _ => {}
        }
        if !self.s3.endpoint.is_empty()
            && !url::Url::parse(&self.s3.endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problem(
                "backup.s3.endpoint",
                format!("{:?} is not an http(s) URL", self.s3.endpoint),
                "empty (AWS) or e.g. https://s3.eu-central-1.example.com",
            );
        }
        if self.s3.access_key_id.is_empty() != self.s3.secret_access_key.is_empty() {
            problem(
                "backup.s3.secret_access_key",
                "is set without access_key_id, or the other way round".into(),
                "both, or neither (credentials from the environment / instance role)",
            );
        }
        if !matches!(
            self.s3.server_side_encryption.as_str(),
            "" | "AES256" | "aws:kms" | "aws:kms:dsse"
        ) {
            problem(
                "backup.s3.server_side_encryption",
                format!("{:?} is not supported", self.s3.server_side_encryption),
                "\"\", \"AES256\", \"aws:kms\" or \"aws:kms:dsse\"",
            );
        }
        let mut ids = std::collections::HashSet::new();
        for (i, key) in self.encryption_keys.iter().enumerate() {
            match crate::secrets::parse_key(key.expose()) {
                Ok((id, _)) if !ids.insert(id.clone()) => problem(
                    &format!("backup.encryption_keys[{i}]"),
                    format!("repeats the id {id:?}"),
                    "distinct key ids",
                ),
                Ok(_) => {}
                Err(why) => problem(
                    &format!("backup.encryption_keys[{i}]"),
                    why.to_string(),
                    "\"<id>:<base64 of 32 random bytes>\"",
                ),
            }
        }
    }
}
