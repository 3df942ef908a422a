//! `wosool secrets rotate`: re-seals every stored credential with the active key (the first of
//! `secrets.encryption_keys`), so an old key can then be removed.
//!
//! Each kind of credential is a table whose rows hold a `key_id` and one or more sealed columns, each sealed for
//! a context derived from the row's key. Rows sealed with another key are read in batches (by primary key, so a
//! row that fails is not read again in the same run) and each is written back in its own short transaction
//! with a compare-and-set on the key id and the very ciphertexts read: a row rewritten meanwhile (a token
//! refresh, a provisioning step) is left to its writer, which seals with the active key anyway. A crash or a
//! rerun simply continues: rows already re-sealed carry the active key and are not read again. Plaintexts live
//! only in memory, for the moment between opening and sealing; nothing here logs them.

use serde::Serialize;
use sqlx::{PgPool, Row};

use super::{Keyring, SecretsError};
use crate::tenancy::{MerchantId, TenantId};

/// How long a row write waits for a lock held by its owner (e.g. a Salla token refresh calling Salla) before
/// the row is reported busy and left for the next run.
const LOCK_TIMEOUT: &str = "5s";

/// The sealing context of a column's value, from its row's primary key (`None`: not a valid key).
type ContextOf = fn(&str) -> Option<String>;

/// One kind of stored credential.
struct Kind {
    name: &'static str,
    table: &'static str,
    /// The primary key column and its SQL type.
    key: &'static str,
    key_type: &'static str,
    /// The sealed columns, each with its sealing context.
    columns: &'static [(&'static str, ContextOf)],
}

fn salla(merchant: &str, which: &str) -> Option<String> {
    let merchant = MerchantId::new(merchant.parse().ok()?);
    Some(crate::salla::tokens::context(merchant, which))
}

fn tenant(id: &str) -> Option<TenantId> {
    id.parse().ok()
}

/// Every table holding sealed credentials (grep `seal(` to find a new one, and add it here).
const KINDS: &[Kind] = &[
    Kind {
        name: "salla_tokens",
        table: "salla_stores",
        key: "merchant_id",
        key_type: "bigint",
        columns: &[
            ("access_token", |k| salla(k, "access")),
            ("refresh_token", |k| salla(k, "refresh")),
        ],
    },
    Kind {
        name: "crm_credentials",
        table: "crm_workspaces",
        key: "tenant_id",
        key_type: "uuid",
        columns: &[
            ("owner_password", |k| {
                tenant(k).map(crate::crm::workspace::password_context)
            }),
            ("api_key_token", |k| {
                tenant(k).map(crate::crm::workspace::api_key_context)
            }),
        ],
    },
    Kind {
        name: "clerk_owner_passwords",
        table: "clerk_owner_credentials",
        key: "tenant_id",
        key_type: "uuid",
        columns: &[("password", |k| {
            tenant(k).map(crate::clerk::identity::password_context)
        })],
    },
];

#[derive(Debug, Clone, Copy)]
pub struct RotateOptions {
    /// Open every stale value and report, but write nothing.
    pub dry_run: bool,
    /// Rows read per query.
    pub batch_size: i64,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// The key everything is re-sealed with.
    pub active_key: String,
    pub dry_run: bool,
    pub kinds: Vec<KindReport>,
}

impl RotationReport {
    pub fn failed(&self) -> usize {
        self.kinds.iter().map(|k| k.failed.len()).sum()
    }
}

/// Per kind of credential. `scanned` = `already_current` + `resealed` + `changed_meanwhile` + failed.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: &'static str,
    /// Rows holding sealed values.
    pub scanned: u64,
    /// Already sealed with the active key.
    pub already_current: u64,
    /// Re-sealed with the active key (in a dry run: would be).
    pub resealed: u64,
    /// Rewritten by their owner between our read and our write: left alone (the writer seals with the active
    /// key; a later run picks up anything still stale).
    pub changed_meanwhile: u64,
    pub failed: Vec<RowFailure>,
}

/// A row that could not be re-sealed, and why (never anything of the secret).
#[derive(Debug, Clone, Serialize)]
pub struct RowFailure {
    /// The row's primary key (merchant id or tenant id).
    pub row: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no encryption key is configured (secrets.encryption_keys): nothing can be sealed")]
    NoKey,
    #[error("{kind}: {source}")]
    Db {
        kind: &'static str,
        source: sqlx::Error,
    },
}

/// Re-seals every stale credential; see the module documentation.
pub async fn rotate(
    db: &PgPool,
    keyring: &Keyring,
    options: RotateOptions,
) -> Result<RotationReport, RotateError> {
    let active = keyring.active_key().ok_or(RotateError::NoKey)?.to_owned();
    let mut kinds = Vec::with_capacity(KINDS.len());
    for kind in KINDS {
        let report = rotate_kind(db, keyring, &active, kind, options)
            .await
            .map_err(|source| RotateError::Db {
                kind: kind.name,
                source,
            })?;
        tracing::info!(
            kind = kind.name,
            resealed = report.resealed,
            failed = report.failed.len(),
            dry_run = options.dry_run,
            "credentials rotated"
        );
        kinds.push(report);
    }
    Ok(RotationReport {
        active_key: active,
        dry_run: options.dry_run,
        kinds,
    })
}

/// A row as read: its key, key id and sealed columns (in `Kind::columns` order).
struct Stale {
    key: String,
    key_id: String,
    sealed: Vec<Option<Vec<u8>>>,
}

async fn rotate_kind(
    db: &PgPool,
    keyring: &Keyring,
    active: &str,
    kind: &Kind,
    options: RotateOptions,
) -> Result<KindReport, sqlx::Error> {
    let Kind {
        table,
        key,
        key_type,
        ..
    } = kind;
    let columns: Vec<&str> = kind.columns.iter().map(|(c, _)| *c).collect();
    let holds_any = columns
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let already_current: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE key_id = $1 AND ({holds_any})"
    )))
    .bind(active)
    .fetch_one(db)
    .await?;
    let mut report = KindReport {
        kind: kind.name,
        scanned: already_current as u64,
        already_current: already_current as u64,
        resealed: 0,
        changed_meanwhile: 0,
        failed: Vec::new(),
    };
    let select = format!(
        "SELECT {key}::text, key_id, {cols} FROM {table} \
         WHERE key_id IS NOT NULL AND key_id <> $1 AND ({holds_any}) \
           AND ($2::text IS NULL OR {key} > $2::text::{key_type}) \
         ORDER BY {key} LIMIT $3",
        cols = columns.join(", "),
    );
    let mut after: Option<String> = None;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(active)
            .bind(&after)
            .bind(options.batch_size.max(1))
            .fetch_all(db)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.try_get(0)?);
        for row in &rows {
            let stale = Stale {
                key: row.try_get(0)?,
                key_id: row.try_get(1)?,
                sealed: (0..columns.len())
                    .map(|i| row.try_get(2 + i))
                    .collect::<Result<_, _>>()?,
            };
            report.scanned += 1;
            let resealed = match reseal(keyring, kind, &stale) {
                Ok(resealed) => resealed,
                Err(reason) => {
                    report.failed.push(RowFailure {
                        row: stale.key,
                        reason,
                    });
                    continue;
                }
            };
            if options.dry_run {
                report.resealed += 1;
                continue;
            }
            match write(db, kind, &stale, active, &resealed).await {
                Ok(true) => report.resealed += 1,
                Ok(false) => report.changed_meanwhile += 1,
                Err(error) if is_lock_timeout(&error) => report.failed.push(RowFailure {
                    row: stale.key,
                    reason:
                        "the row stayed locked by another writer (e.g. a token refresh); run again"
                            .into(),
                }),
                Err(error) => return Err(error),
            }
        }
    }
    Ok(report)
}

/// Every sealed column of `stale` opened and sealed again with the active key, or why not.
fn reseal(keyring: &Keyring, kind: &Kind, stale: &Stale) -> Result<Vec<Option<Vec<u8>>>, String> {
    kind.columns
        .iter()
        .zip(&stale.sealed)
        .map(|((column, context), sealed)| {
            let Some(sealed) = sealed else {
                return Ok(None);
            };
            let context = context(&stale.key)
                .ok_or_else(|| format!("{column}: the row key is not a valid {}", kind.key))?;
            let why = |e: SecretsError| format!("{column}: {e}");
            let plain = keyring.open(&context, &stale.key_id, sealed).map_err(why)?;
            let resealed = keyring.seal(&context, &plain).map_err(why)?;
            Ok(Some(resealed.bytes))
        })
        .collect()
}

/// Writes the re-sealed values if the row still holds exactly what was read; `false` when it changed.
async fn write(
    db: &PgPool,
    kind: &Kind,
    stale: &Stale,
    active: &str,
    resealed: &[Option<Vec<u8>>],
) -> Result<bool, sqlx::Error> {
    let Kind {
        table,
        key,
        key_type,
        ..
    } = kind;
    let n = kind.columns.len();
    let mut sets = vec!["key_id = $2".to_owned()];
    let mut checks = vec![
        format!("{key} = $1::text::{key_type}"),
        "key_id = $3".into(),
    ];
    for (i, (column, _)) in kind.columns.iter().enumerate() {
        sets.push(format!("{column} = ${}", 4 + i));
        checks.push(format!("{column} IS NOT DISTINCT FROM ${}", 4 + n + i));
    }
    let sql = format!(
        "UPDATE {table} SET {} WHERE {}",
        sets.join(", "),
        checks.join(" AND ")
    );
    let mut tx = db.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
    )))
    .execute(&mut *tx)
    .await?;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&stale.key)
        .bind(active)
        .bind(&stale.key_id);
    for value in resealed {
        query = query.bind(value);
    }
    for value in &stale.sealed {
        query = query.bind(value);
    }
    let done = query.execute(&mut *tx).await?.rows_affected() == 1;
    tx.commit().await?;
    Ok(done)
}

/// PostgreSQL's `lock_not_available` (55P03): `lock_timeout` expired.
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}
