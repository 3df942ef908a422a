//! Restores. A tenant: its dump from a set is restored into a new database on its server, checked (the
//! migrations table is there, every table is counted), then the tenant is switched to it inside a short
//! read-only window: the registry row changes, the tenant's caches are invalidated on every replica (pools
//! follow the registry's database name, see `TenantPools::get`), and the previous database is kept until
//! `--confirm` drops it or `--abort` switches back. The global database: restored into a database the
//! operator names, with the steps to switch to it printed (docs/backups.md, "Restore walkthrough").

use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::manifest::{Entry, Scope};
use super::pg::PgEndpoint;
use super::{BackupError, Backups};
use crate::audit::Event;
use crate::tenancy::{DbName, LookupKey, Slug, Tenant, TenantId, registry};

/// The read-only reason shown to the tenant's callers while its database is switched.
pub const RESTORE_READ_ONLY_REASON: &str = "restoring from a backup";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub tenant_id: TenantId,
    pub slug: String,
    pub set_id: String,
    pub old_database: String,
    pub new_database: String,
    pub schema_version: i64,
    pub tables: Vec<TableCount>,
    /// How long the tenant was read-only for the switch.
    pub read_only_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GlobalRestoreReport {
    pub set_id: String,
    pub database: String,
    pub tables: Vec<TableCount>,
    pub steps: Vec<String>,
}

/// A tenant by id or slug.
pub async fn find_tenant(db: &sqlx::PgPool, id_or_slug: &str) -> Result<Tenant, BackupError> {
    let key = match id_or_slug.parse::<TenantId>() {
        Ok(id) => LookupKey::Id(id),
        Err(_) => LookupKey::Slug(
            Slug::parse(id_or_slug)
                .map_err(|_| BackupError::Invalid(format!("no tenant {id_or_slug:?}")))?,
        ),
    };
    registry::find(db, &key)
        .await?
        .ok_or_else(|| BackupError::Invalid(format!("no tenant {id_or_slug:?}")))
}

/// Exact row counts of every table (all schemas but the system ones), sorted by name.
pub async fn table_counts(options: PgConnectOptions) -> Result<Vec<TableCount>, BackupError> {
    let mut conn = PgConnection::connect_with(&options).await?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
          WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
          ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut counts = Vec::with_capacity(tables.len());
    for (schema, table) in tables {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.{}",
            quote(&schema),
            quote(&table)
        )))
        .fetch_one(&mut conn)
        .await?;
        let name = if schema == "public" {
            table
        } else {
            format!("{schema}.{table}")
        };
        counts.push(TableCount { table: name, rows });
    }
    let _ = conn.close().await;
    Ok(counts)
}

/// The newest applied migration of a restored tenant database; an error when it has no migrations table.
async fn migrated_version(options: PgConnectOptions) -> Result<i64, BackupError> {
    let mut conn = PgConnection::connect_with(&options).await?;
    let version: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await;
    let _ = conn.close().await;
    match version {
        Ok(Some(version)) => Ok(version),
        Ok(None) => Err(BackupError::Invalid(
            "the restored database has no applied migrations".into(),
        )),
        Err(error) => Err(BackupError::Invalid(format!(
            "the restored database has no migrations table ({error})"
        ))),
    }
}

/// What a switch records with the registry change, in the same transaction.
enum Switch<'a> {
    Restore {
        set_id: &'a str,
        actor: &'a str,
        tables: usize,
    },
    Abort {
        restore_id: i64,
        actor: &'a str,
    },
}

impl Switch<'_> {
    async fn write(
        &self,
        tx: &mut PgConnection,
        tenant: TenantId,
        from: &DbName,
        to: &DbName,
        version: i64,
    ) -> Result<(), sqlx::Error> {
        let event = match self {
            Switch::Restore {
                set_id,
                actor,
                tables,
            } => {
                sqlx::query(
                    "INSERT INTO tenant_restores (tenant_id, set_id, old_db_name, new_db_name, actor, details) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant)
                .bind(set_id)
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(actor)
                .bind(json!({ "schema_version": version, "tables": tables }))
                .execute(&mut *tx)
                .await?;
                Event::operator(*actor, "tenant.restored")
                    .details(json!({ "set_id": set_id, "schema_version": version }))
            }
            Switch::Abort { restore_id, actor } => {
                sqlx::query(
                    "UPDATE tenant_restores SET status = 'aborted', finished_at = now() WHERE id = $1",
                )
                .bind(restore_id)
                .execute(&mut *tx)
                .await?;
                Event::operator(*actor, "tenant.restore_aborted")
            }
        };
        event
            .on_tenant(tenant)
            .resource(format!("tenant:{tenant}"))
            .change(
                json!({ "db_name": from.as_str() }),
                json!({ "db_name": to.as_str() }),
            )
            .write_global(tx)
            .await
    }
}

impl Backups {
    /// The set and entry to restore `tenant` from: `at`, or the newest set holding a successful dump of it.
    pub async fn tenant_entry(
        &self,
        tenant: TenantId,
        at: Option<&str>,
    ) -> Result<(String, Entry), BackupError> {
        let candidates: Vec<String> = match at {
            Some(id) => vec![id.to_owned()],
            None => {
                let mut ids: Vec<String> = sqlx::query_scalar(
                    "SELECT e.set_id FROM backup_entries e JOIN backup_sets s ON s.id = e.set_id \
                      WHERE e.tenant_id = $1 AND e.status = 'succeeded' AND s.pruned_at IS NULL \
                      ORDER BY e.set_id DESC LIMIT 5",
                )
                .bind(tenant)
                .fetch_all(self.core.db())
                .await?;
                if ids.is_empty() {
                    // The history may be gone (a restored global database): ask the target.
                    ids = self.target.set_ids().await?;
                    ids.reverse();
                }
                ids
            }
        };
        for id in candidates {
            let manifest = match self.manifest(&id).await {
                Ok(manifest) => manifest,
                Err(error) if at.is_none() => {
                    tracing::warn!(set_id = %id, error = %error, "skipping an unreadable backup set");
                    continue;
                }
                Err(error) => return Err(error),
            };
            if let Some(entry) = manifest.tenant_entry(tenant) {
                return Ok((id, entry.clone()));
            }
        }
        Err(BackupError::Invalid(match at {
            Some(id) => format!("set {id} holds no successful backup of tenant {tenant}"),
            None => format!("no backup of tenant {tenant}"),
        }))
    }

    /// Downloads `entry` and restores it into the new, empty database `name` on tenant server `server`.
    pub(crate) async fn restore_entry(
        &self,
        entry: &Entry,
        server: &str,
        name: &str,
    ) -> Result<(), BackupError> {
        let tenant_server = self.core.servers().get(server)?;
        if tenant_server.database_exists(name).await? {
            return Err(BackupError::Invalid(format!(
                "database {name} already exists on {server}"
            )));
        }
        let staging = self.staging("restore")?;
        let file = staging.file("restore.dump");
        self.target
            .download(&entry.object, &file, Some(&entry.sha256))
            .await?;
        tenant_server.create_empty_database(name).await?;
        let endpoint = PgEndpoint::tenant(self.core.servers(), server, name)?;
        if let Err(error) = self.tools.restore(&file, &endpoint).await {
            let _ = tenant_server.drop_database_named(name).await;
            return Err(error.into());
        }
        Ok(())
    }

    /// `wosool restore --tenant ID [--at SET] [--into NAME]`.
    pub async fn restore_tenant(
        &self,
        id_or_slug: &str,
        at: Option<&str>,
        into: Option<&str>,
        actor: &str,
    ) -> Result<RestoreReport, BackupError> {
        let db = self.core.db();
        let tenant = find_tenant(db, id_or_slug).await?;
        let pending: Option<String> = sqlx::query_scalar(
            "SELECT new_db_name FROM tenant_restores WHERE tenant_id = $1 AND status = 'pending'",
        )
        .bind(tenant.id)
        .fetch_optional(db)
        .await?;
        if let Some(pending) = pending {
            return Err(BackupError::Invalid(format!(
                "tenant {} has a restore into {pending} awaiting `wosool restore --confirm` or `--abort`",
                tenant.id
            )));
        }
        let (set_id, entry) = self.tenant_entry(tenant.id, at).await?;
        let new_name = match into {
            Some(name) => DbName::try_from(name.to_owned()).map_err(|e| {
                BackupError::Invalid(format!(
                    "--into: {e} (expected {}_r<a-z0-9>)",
                    tenant.db_name.base()
                ))
            })?,
            None => tenant
                .db_name
                .restored(&time::OffsetDateTime::now_utc().unix_timestamp().to_string())
                .map_err(|e| BackupError::Invalid(e.to_string()))?,
        };
        if new_name.base() != tenant.db_name.base() {
            return Err(BackupError::Invalid(format!(
                "--into must name a database of this tenant: {}_r<suffix>",
                tenant.db_name.base()
            )));
        }
        tracing::info!(tenant_id = %tenant.id, set_id = %set_id, into = %new_name, "restoring a tenant");
        self.restore_entry(&entry, &tenant.db_server, new_name.as_str())
            .await?;
        let server = self.core.servers().get(&tenant.db_server)?;
        let options = server.options_named(new_name.as_str());
        let checked = async {
            let version = migrated_version(options.clone()).await?;
            let tables = table_counts(options).await?;
            Ok::<_, BackupError>((version, tables))
        }
        .await;
        let (version, tables) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                let _ = server.drop_database_named(new_name.as_str()).await;
                return Err(error);
            }
        };
        let record = Switch::Restore {
            set_id: &set_id,
            actor,
            tables: tables.len(),
        };
        let read_only_ms = self
            .switch(&tenant, &tenant.db_name, &new_name, version, record)
            .await?;
        tracing::info!(tenant_id = %tenant.id, set_id = %set_id, database = %new_name, read_only_ms, "tenant restored; previous database kept until confirmed");
        Ok(RestoreReport {
            tenant_id: tenant.id,
            slug: tenant.slug.to_string(),
            set_id,
            old_database: tenant.db_name.to_string(),
            new_database: new_name.to_string(),
            schema_version: version,
            tables,
            read_only_ms,
        })
    }

    /// Switches `tenant` from database `from` to `to` under a read-only window: the registry row (and
    /// whatever `record` writes in the same transaction), then caches on every replica and this process's
    /// pool. Returns how long the tenant was read-only, in milliseconds.
    async fn switch(
        &self,
        tenant: &Tenant,
        from: &DbName,
        to: &DbName,
        version: i64,
        record: Switch<'_>,
    ) -> Result<u64, BackupError> {
        let directory = self.core.directory();
        let previous = registry::find(self.core.db(), &LookupKey::Id(tenant.id))
            .await?
            .and_then(|t| t.read_only_reason);
        let started = Instant::now();
        directory
            .set_read_only(tenant.id, Some(RESTORE_READ_ONLY_REASON))
            .await?;
        let switched = async {
            let mut tx = self.core.db().begin().await?;
            let changed = sqlx::query(
                "UPDATE tenants SET db_name = $3, schema_version = $4, updated_at = now(), version = version + 1 \
                 WHERE id = $1 AND db_name = $2",
            )
            .bind(tenant.id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                return Err(BackupError::Invalid(format!(
                    "tenant {} no longer uses database {from}; nothing switched",
                    tenant.id
                )));
            }
            record.write(&mut tx, tenant.id, from, to, version).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        directory.invalidate(tenant.id, &[]).await;
        self.core.pools().evict(tenant.id).await;
        let reopened = directory
            .set_read_only(tenant.id, previous.as_deref())
            .await;
        let read_only_ms = started.elapsed().as_millis() as u64;
        switched?;
        reopened?;
        Ok(read_only_ms)
    }

    /// `wosool restore --confirm TENANT`: drops the database the restore replaced.
    pub async fn confirm_restore(
        &self,
        id_or_slug: &str,
        actor: &str,
    ) -> Result<serde_json::Value, BackupError> {
        let db = self.core.db();
        let tenant = find_tenant(db, id_or_slug).await?;
        let (restore_id, old, new) =
            pending_restore(db, tenant.id, "awaiting confirmation").await?;
        let old_name =
            DbName::try_from(old.clone()).map_err(|e| BackupError::Invalid(e.to_string()))?;
        self.core
            .servers()
            .get(&tenant.db_server)?
            .drop_database(&old_name)
            .await?;
        let mut tx = db.begin().await?;
        sqlx::query(
            "UPDATE tenant_restores SET status = 'confirmed', finished_at = now() WHERE id = $1",
        )
        .bind(restore_id)
        .execute(&mut *tx)
        .await?;
        Event::operator(actor, "tenant.restore_confirmed")
            .on_tenant(tenant.id)
            .resource(format!("tenant:{}", tenant.id))
            .details(json!({ "dropped": old, "database": new }))
            .write_global(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(json!({ "tenant_id": tenant.id, "database": new, "dropped": old }))
    }

    /// `wosool restore --abort TENANT`: switches back to the previous database and drops the restored one.
    pub async fn abort_restore(
        &self,
        id_or_slug: &str,
        actor: &str,
    ) -> Result<serde_json::Value, BackupError> {
        let db = self.core.db();
        let tenant = find_tenant(db, id_or_slug).await?;
        let (restore_id, old, new) = pending_restore(db, tenant.id, "to abort").await?;
        let invalid = |e: crate::tenancy::NameError| BackupError::Invalid(e.to_string());
        let old_name = DbName::try_from(old.clone()).map_err(invalid)?;
        let new_name = DbName::try_from(new.clone()).map_err(invalid)?;
        let server = self.core.servers().get(&tenant.db_server)?.clone();
        let version = migrated_version(server.options_named(&old)).await?;
        let read_only_ms = self
            .switch(
                &tenant,
                &new_name,
                &old_name,
                version,
                Switch::Abort { restore_id, actor },
            )
            .await?;
        server.drop_database(&new_name).await?;
        Ok(
            json!({ "tenant_id": tenant.id, "database": old, "dropped": new, "read_only_ms": read_only_ms }),
        )
    }

    /// `wosool restore --global --into NAME [--at SET]`: the global database's dump restored into the new
    /// database `into` on the server of `db.url`. Nothing is switched: the operator follows the steps.
    pub async fn restore_global(
        &self,
        at: Option<&str>,
        into: &str,
    ) -> Result<GlobalRestoreReport, BackupError> {
        if !crate::tenancy::is_valid_identifier(into) {
            return Err(BackupError::Invalid(format!(
                "--into {into:?}: expected a plain name (a-z, 0-9, _; starting with a letter)"
            )));
        }
        let set_id = match at {
            Some(id) => id.to_owned(),
            None => self
                .target
                .set_ids()
                .await?
                .pop()
                .ok_or_else(|| BackupError::Invalid("no backup set in the target".into()))?,
        };
        let manifest = self.manifest(&set_id).await?;
        let entry = manifest
            .entries
            .iter()
            .find(|e| e.scope == Scope::Global && e.status == "succeeded")
            .ok_or_else(|| BackupError::Invalid(format!("set {set_id} has no global dump")))?;
        let url = self.core.config().db.url.expose();
        let options = PgConnectOptions::from_str(url)?;
        let current = options.get_database().unwrap_or("wosool").to_owned();
        let mut maintenance =
            PgConnection::connect_with(&options.clone().database("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(into)
                .fetch_one(&mut maintenance)
                .await?;
        if exists {
            return Err(BackupError::Invalid(format!(
                "database {into} already exists"
            )));
        }
        let staging = self.staging("restore-global")?;
        let file = staging.file("global.dump");
        self.target
            .download(&entry.object, &file, Some(&entry.sha256))
            .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{into}\" TEMPLATE template0"
        )))
        .execute(&mut maintenance)
        .await?;
        let _ = maintenance.close().await;
        let endpoint = PgEndpoint::from_url(url)?.with_database(into);
        self.tools.restore(&file, &endpoint).await?;
        let tables = table_counts(options.clone().database(into)).await?;
        let steps = vec![
            "Stop every api and worker replica (nothing may write to the old global database)."
                .to_owned(),
            format!(
                "Either point db.url (DATABASE_URL) at database {into}, or rename: \
                 ALTER DATABASE \"{current}\" RENAME TO \"{current}_before_restore\"; \
                 ALTER DATABASE \"{into}\" RENAME TO \"{current}\";"
            ),
            "Start one replica and check `wosool migrate status` and `wosool tenants list`."
                .to_owned(),
            format!(
                "Tenants created or changed after {} are not in this copy: compare with the tenant \
                 databases on the servers and re-register what is missing.",
                manifest.started_at
            ),
            "Start the other replicas, then take a new backup: `wosool backup run`.".to_owned(),
        ];
        Ok(GlobalRestoreReport {
            set_id,
            database: into.to_owned(),
            tables,
            steps,
        })
    }
}

/// The tenant's restore awaiting `--confirm` or `--abort`: its id, the replaced database and the restored one.
async fn pending_restore(
    db: &sqlx::PgPool,
    tenant: crate::tenancy::TenantId,
    what: &str,
) -> Result<(i64, String, String), BackupError> {
    sqlx::query_as(
        "SELECT id, old_db_name, new_db_name FROM tenant_restores WHERE tenant_id = $1 AND status = 'pending'",
    )
    .bind(tenant)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| BackupError::Invalid(format!("tenant {tenant} has no restore {what}")))
}
