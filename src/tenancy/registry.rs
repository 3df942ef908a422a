//! SQL of the tenant registry (global database). Only `TenantDirectory` and the provisioning pipeline call
//! these; everything that changes a tenant goes through the directory so caches are invalidated.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::violation::OnConstraint;

use super::api_key::{ApiKeyHash, ApiKeyInfo, GeneratedKey};
use super::{DbName, LookupKey, NewTenant, Tenant, TenantId, TenantStatus};
use crate::access::Scope;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no such tenant")]
    NotFound,
    #[error("a tenant cannot go from {from} to {to}")]
    IllegalTransition {
        from: TenantStatus,
        to: TenantStatus,
    },
    #[error("the tenant changed since it was read (version {expected} expected)")]
    VersionConflict { expected: i64 },
    #[error("{field} is already taken by another tenant")]
    Taken { field: &'static str },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// SQL for other tables' queries that depend on their tenant, so that the `tenants` table and its status
/// values are spelled in this module alone. Each form takes the SQL expression of the tenant id (e.g.
/// `"w.tenant_id"`); a macro so that constant queries can embed it with `concat!`.
///
/// - `tenant_sql!(serving "w.tenant_id")`: the tenant's database is kept and served (ready or suspended);
/// - `tenant_sql!(ready "w.tenant_id")`: the tenant is ready;
/// - `tenant_sql!(placeable "w.tenant_id")`: the tenant is being provisioned or is ready;
/// - `tenant_sql!(slug "w.tenant_id")`, `tenant_sql!(created_at "w.tenant_id")`: the tenant's column.
macro_rules! tenant_sql {
    (serving $id:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM tenants WHERE tenants.id = ",
            $id,
            " AND tenants.status IN ('ready', 'suspended'))"
        )
    };
    (ready $id:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM tenants WHERE tenants.id = ",
            $id,
            " AND tenants.status = 'ready')"
        )
    };
    (placeable $id:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM tenants WHERE tenants.id = ",
            $id,
            " AND tenants.status IN ('provisioning', 'ready'))"
        )
    };
    (slug $id:literal) => {
        concat!(
            "(SELECT tenants.slug FROM tenants WHERE tenants.id = ",
            $id,
            ")"
        )
    };
    (created_at $id:literal) => {
        concat!(
            "(SELECT tenants.created_at FROM tenants WHERE tenants.id = ",
            $id,
            ")"
        )
    };
}
pub(crate) use tenant_sql;

/// Tenants whose database exists and is served or kept (pending/provisioning ones are migrated by their own
/// provisioning run). A failed tenant that never reached a schema version failed before or while its database
/// was created and migrated: it may have no database at all, and its provisioning retry migrates it.
const MIGRATABLE: &str =
    "(status IN ('ready', 'suspended') OR (status = 'failed' AND schema_version > 0))";

/// A tenant whose last migration failed.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct FailingTenant {
    pub id: TenantId,
    pub slug: String,
    pub schema_version: i64,
    pub migration_error: String,
}

/// What a fleet migration to `target` works on, oldest first: `only` when given, else every migratable
/// tenant behind `target` or whose last migration failed.
pub async fn migration_targets(
    pool: &PgPool,
    target: i64,
    only: Option<TenantId>,
) -> Result<Vec<Tenant>, sqlx::Error> {
    let cols = TENANT_COLUMNS;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {cols} FROM tenants WHERE ($2::uuid IS NOT NULL AND id = $2) \
           OR ($2::uuid IS NULL AND {MIGRATABLE} AND (schema_version < $1 OR migration_error IS NOT NULL)) \
         ORDER BY created_at"
    )))
    .bind(target)
    .bind(only)
    .fetch_all(pool)
    .await
}

/// Live (not deleted) tenants per schema version.
pub async fn count_by_schema_version(pool: &PgPool) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT schema_version, count(*) FROM tenants WHERE status <> 'deleted' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}

/// Live tenants whose last migration failed, by slug.
pub async fn failing_migrations(pool: &PgPool) -> Result<Vec<FailingTenant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, slug, schema_version, migration_error FROM tenants \
         WHERE migration_error IS NOT NULL AND status <> 'deleted' ORDER BY slug",
    )
    .fetch_all(pool)
    .await
}

/// Tenants per status (statuses without tenants are absent).
pub async fn count_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) FROM tenants GROUP BY status")
        .fetch_all(pool)
        .await
}

/// Live tenants per plan.
pub async fn count_by_plan(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT plan, count(*) FROM tenants WHERE status <> 'deleted' GROUP BY plan")
        .fetch_all(pool)
        .await
}

/// The columns of `tenants`, in `Tenant`'s order.
pub(crate) const TENANT_COLUMNS: &str = "id, slug, display_name, status, plan, db_server, db_name, schema_version, \
    migration_error, clerk_org_id, salla_merchant_id, owner_email, locale, currency, timezone, \
    suspended_reason, failure_reason, created_at, updated_at, ready_at, deleted_at, version, read_only_reason";

pub async fn insert(conn: &mut PgConnection, new: &NewTenant) -> Result<Tenant, RegistryError> {
    let sql = format!(
        "INSERT INTO tenants (id, slug, display_name, plan, db_server, db_name, owner_email, locale, currency, \
         timezone, clerk_org_id, salla_merchant_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {TENANT_COLUMNS}"
    );
    sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(new.id)
        .bind(new.slug.as_str())
        .bind(&new.display_name)
        .bind(&new.plan)
        .bind(&new.db_server)
        .bind(DbName::for_tenant(new.id).as_str())
        .bind(&new.owner_email)
        .bind(&new.locale)
        .bind(&new.currency)
        .bind(&new.timezone)
        .bind(&new.clerk_org_id)
        .bind(new.salla_merchant_id)
        .fetch_one(conn)
        .await
        .on_constraint(TAKEN, taken)
}

/// The unique constraints of the registry's tables, by the field the client knows them as
/// (migrations/global/20261120000003_tenancy.sql).
const TAKEN: &[(&str, &str)] = &[
    ("tenants_slug_key", "slug"),
    ("tenants_clerk_org_id_key", "clerk_org_id"),
    ("tenants_salla_merchant_id_key", "salla_merchant_id"),
    ("tenant_domains_pkey", "domain"),
];

fn taken(field: &'static str) -> RegistryError {
    RegistryError::Taken { field }
}

pub async fn find(pool: &PgPool, key: &LookupKey) -> Result<Option<Tenant>, sqlx::Error> {
    let cols = TENANT_COLUMNS;
    let query = match key {
        LookupKey::Id(id) => sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE id = $1"
        )))
        .bind(*id),
        LookupKey::Slug(slug) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE slug = $1"
        )))
        .bind(slug.as_str().to_owned()),
        LookupKey::ClerkOrg(org) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE clerk_org_id = $1"
        )))
        .bind(org.clone()),
        LookupKey::SallaMerchant(merchant) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE salla_merchant_id = $1"
        )))
        .bind(*merchant),
        LookupKey::Domain(domain) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE id = (SELECT tenant_id FROM tenant_domains WHERE domain = $1)"
        )))
        .bind(domain.clone()),
        LookupKey::ApiKey(hash) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM tenants WHERE id = \
             (SELECT tenant_id FROM tenant_api_keys WHERE key_hash = $1 AND revoked_at IS NULL)"
        )))
        .bind(hash.0.to_vec()),
    };
    query.fetch_optional(pool).await
}

/// The tenant of an unrevoked API key, with the key's scope.
pub async fn find_api_key(
    pool: &PgPool,
    hash: ApiKeyHash,
) -> Result<Option<(Tenant, Scope)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        tenant: Tenant,
        #[sqlx(try_from = "String")]
        api_key_scope: Scope,
    }
    let cols = TENANT_COLUMNS;
    let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {cols}, k.scope AS api_key_scope \
         FROM (SELECT tenant_id, scope FROM tenant_api_keys WHERE key_hash = $1 AND revoked_at IS NULL) k \
         JOIN tenants ON tenants.id = k.tenant_id"
    )))
    .bind(hash.0.to_vec())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.tenant, r.api_key_scope)))
}

/// Moves a tenant to `to`, atomically checking that its current status allows it (and, when given, that it
/// still has `expected_version`). Moving to the status it already has is a no-op that returns the tenant.
/// `reason` is the suspension reason (to `suspended`) or the failure (to `failed`).
pub async fn transition(
    pool: &PgPool,
    id: TenantId,
    to: TenantStatus,
    reason: Option<&str>,
    expected_version: Option<i64>,
) -> Result<(Tenant, bool), RegistryError> {
    let sources: Vec<&str> = to.allowed_sources().iter().map(|s| s.as_str()).collect();
    let sql = format!(
        "UPDATE tenants SET status = $2, version = version + 1, updated_at = now(), \
           suspended_reason = CASE WHEN $2 = 'suspended' THEN $3 WHEN $2 = 'ready' THEN NULL ELSE suspended_reason END, \
           failure_reason = CASE WHEN $2 = 'failed' THEN $3 WHEN $2 IN ('provisioning', 'ready') THEN NULL ELSE failure_reason END, \
           ready_at = CASE WHEN $2 = 'ready' THEN coalesce(ready_at, now()) ELSE ready_at END, \
           deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END \
         WHERE id = $1 AND status = ANY($4) AND ($5::bigint IS NULL OR version = $5) \
         RETURNING {TENANT_COLUMNS}"
    );
    let updated = sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(to.as_str())
        .bind(reason)
        .bind(&sources)
        .bind(expected_version)
        .fetch_optional(pool)
        .await?;
    if let Some(tenant) = updated {
        return Ok((tenant, true));
    }
    let current = find(pool, &LookupKey::Id(id))
        .await?
        .ok_or(RegistryError::NotFound)?;
    match expected_version {
        Some(expected) if current.version != expected => {
            Err(RegistryError::VersionConflict { expected })
        }
        _ if current.status == to => Ok((current, false)),
        _ => Err(RegistryError::IllegalTransition {
            from: current.status,
            to,
        }),
    }
}

pub async fn set_schema_version(
    pool: &PgPool,
    id: TenantId,
    version: i64,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tenants SET schema_version = greatest(schema_version, $2), migration_error = $3, \
         updated_at = now(), version = version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Renames a tenant (its display name).
pub async fn set_plan(pool: &PgPool, id: TenantId, plan: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE tenants SET plan = $2, updated_at = now(), version = version + 1 WHERE id = $1 AND plan <> $2",
    )
    .bind(id)
    .bind(plan)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes a tenant read-only with `reason`, or writable again with `None`; the tenant as it is now, `None`
/// when there is no such tenant.
pub async fn set_read_only(
    pool: &PgPool,
    id: TenantId,
    reason: Option<&str>,
) -> Result<Option<Tenant>, sqlx::Error> {
    let sql = format!(
        "UPDATE tenants SET read_only_reason = $2, \
                read_only_at = CASE WHEN $2::text IS NULL THEN NULL ELSE coalesce(read_only_at, now()) END, \
                updated_at = now(), version = version + 1 \
          WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    );
    sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(reason)
        .fetch_optional(pool)
        .await
}

/// A move's switch, in the caller's transaction: points the tenant at server `to` and gives it back
/// `read_only_reason` (what it was before the move). `None` when the tenant is no longer on `from` or no longer
/// served (deleting, deleted): then nothing changed.
pub async fn switch_server(
    conn: &mut sqlx::PgConnection,
    id: TenantId,
    from: &str,
    to: &str,
    read_only_reason: Option<&str>,
) -> Result<Option<Tenant>, sqlx::Error> {
    let sql = format!(
        "UPDATE tenants SET db_server = $3, read_only_reason = $4, \
                read_only_at = CASE WHEN $4::text IS NULL THEN NULL ELSE coalesce(read_only_at, now()) END, \
                updated_at = now(), version = version + 1 \
          WHERE id = $1 AND db_server = $2 AND status NOT IN ('deleting', 'deleted') \
          RETURNING {TENANT_COLUMNS}"
    );
    sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(read_only_reason)
        .fetch_optional(conn)
        .await
}

/// Sets the owner email only while it is still `placeholder`; true when it changed.
pub async fn replace_owner_email(
    pool: &PgPool,
    id: TenantId,
    placeholder: &str,
    email: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE tenants SET owner_email = $3, updated_at = now(), version = version + 1 \
         WHERE id = $1 AND owner_email = $2",
    )
    .bind(id)
    .bind(placeholder)
    .bind(email)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn rename(pool: &PgPool, id: TenantId, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tenants SET display_name = $2, updated_at = now(), version = version + 1 \
         WHERE id = $1 AND display_name <> $2",
    )
    .bind(id)
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces the reason of a suspended tenant; the updated tenant when it changed (`None`: not suspended, or
/// already that reason).
pub async fn set_suspended_reason(
    pool: &PgPool,
    id: TenantId,
    reason: &str,
) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(format!(
        "UPDATE tenants SET suspended_reason = $2, updated_at = now(), version = version + 1 \
         WHERE id = $1 AND status = 'suspended' AND suspended_reason IS DISTINCT FROM $2 \
         RETURNING {TENANT_COLUMNS}"
    )))
    .bind(id)
    .bind(reason)
    .fetch_optional(pool)
    .await
}

/// Links a tenant to its Clerk organization.
pub async fn set_clerk_org(pool: &PgPool, id: TenantId, org: &str) -> Result<(), RegistryError> {
    sqlx::query(
        "UPDATE tenants SET clerk_org_id = $2, updated_at = now(), version = version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(org)
    .execute(pool)
    .await
    .on_constraint(TAKEN, taken)?;
    Ok(())
}

/// Filters of the tenant listing. Pagination is by `(created_at, id)` descending.
#[derive(Debug, Default, Clone)]
pub struct TenantFilter {
    pub status: Option<TenantStatus>,
    pub plan: Option<String>,
    /// Case-insensitive substring of slug, display name or owner email.
    pub search: Option<String>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub after: Option<(OffsetDateTime, TenantId)>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &TenantFilter) -> Result<Vec<Tenant>, sqlx::Error> {
    let pattern = filter.search.as_ref().map(|s| {
        let escaped = s
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let sql = format!(
        "SELECT {TENANT_COLUMNS} FROM tenants \
         WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::text IS NULL OR plan = $2) \
           AND ($3::text IS NULL OR slug ILIKE $3 OR display_name ILIKE $3 OR owner_email ILIKE $3) \
           AND ($4::timestamptz IS NULL OR created_at >= $4) \
           AND ($5::timestamptz IS NULL OR created_at < $5) \
           AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7)) \
         ORDER BY created_at DESC, id DESC LIMIT $8"
    );
    sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(&filter.plan)
        .bind(pattern)
        .bind(filter.created_after)
        .bind(filter.created_before)
        .bind(filter.after.map(|(at, _)| at))
        .bind(filter.after.map(|(_, id)| id))
        .bind(filter.limit)
        .fetch_all(pool)
        .await
}

/// Live (not deleted) tenants per tenant server, for placement.
pub async fn tenants_per_server(pool: &PgPool) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT db_server, count(*) FROM tenants WHERE status <> 'deleted' GROUP BY db_server",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

pub async fn insert_api_key(
    pool: &PgPool,
    tenant: TenantId,
    name: &str,
    key: &GeneratedKey,
    scope: Scope,
    created_by: &str,
) -> Result<ApiKeyInfo, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO tenant_api_keys (id, tenant_id, name, prefix, key_hash, created_by, scope) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING id, tenant_id, name, prefix, scope, created_by, created_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(name)
    .bind(&key.prefix)
    .bind(key.hash.0.to_vec())
    .bind(created_by)
    .bind(scope.as_str())
    .fetch_one(pool)
    .await
}

pub async fn list_api_keys(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, tenant_id, name, prefix, scope, created_by, created_at, revoked_at FROM tenant_api_keys \
         WHERE tenant_id = $1 ORDER BY created_at DESC",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// Revokes a key of `tenant` (a key of another tenant is "not found"). Returns its hash, to evict caches.
pub async fn revoke_api_key(
    pool: &PgPool,
    tenant: TenantId,
    key_id: Uuid,
) -> Result<Option<ApiKeyHash>, sqlx::Error> {
    let hash: Option<Vec<u8>> = sqlx::query_scalar(
        "UPDATE tenant_api_keys SET revoked_at = coalesce(revoked_at, now()) \
         WHERE id = $1 AND tenant_id = $2 RETURNING key_hash",
    )
    .bind(key_id)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(hash.and_then(|h| <[u8; 32]>::try_from(h).ok().map(ApiKeyHash)))
}

pub async fn add_domain(
    pool: &PgPool,
    tenant: TenantId,
    domain: &str,
) -> Result<(), RegistryError> {
    sqlx::query("INSERT INTO tenant_domains (domain, tenant_id) VALUES ($1, $2)")
        .bind(domain)
        .bind(tenant)
        .execute(pool)
        .await
        .on_constraint(TAKEN, taken)?;
    Ok(())
}

/// One line of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub tenant_id: Option<TenantId>,
    pub request_id: Option<&'a str>,
    pub details: serde_json::Value,
}

pub async fn audit(conn: &mut PgConnection, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    // The global audit log's one home is `crate::audit::global`; this keeps the older callers' shape.
    let via = if entry.actor.starts_with("admin:") || entry.actor.starts_with("cli:") {
        crate::audit::Via::Operator
    } else {
        crate::audit::Via::System
    };
    let mut event = crate::audit::Event::by(entry.actor, via, entry.action).details(entry.details);
    event.tenant = entry.tenant_id;
    event.origin.request_id = entry.request_id.map(str::to_owned);
    if let Some(tenant) = entry.tenant_id {
        event = event.resource(format!("tenant:{tenant}"));
    }
    event.write_global(conn).await
}
