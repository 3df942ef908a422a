//! Where tenants' workspaces live: the `crm_instances` table (its one home) and the placement column of
//! `crm_workspaces`. Each Twenty instance holds at most its cap of workspaces (self-hosted Twenty refuses more
//! than 5 without an Enterprise key in v2.43); a new workspace goes to the configured instance with the most
//! free room, under a lock so that two provisioning runs never take the same last place; with no room
//! anywhere the tenant waits (`waiting_since`) and is placed, oldest first, once room appears.
//!
//! An instance that refuses a workspace at its cap counts as full at the number of ours it held then, until
//! `crm.capacity_recheck_secs` have passed or its configured cap changes: the refusal is authoritative, the
//! configured cap only an upper bound (Twenty's workspaces that are not ours count too).

use std::time::Duration;

use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;

use crate::config::CrmInstanceConfig;
use crate::tenancy::TenantId;
use crate::tenancy::registry::tenant_sql;

/// Serialises placements (transaction-level advisory lock).
const PLACEMENT_LOCK: i64 = 727_200;

/// An instance as the registry sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceStatus {
    pub key: String,
    pub base_url: String,
    /// In the current configuration (an instance removed from it keeps its row and its workspaces).
    pub configured: bool,
    pub max_workspaces: i32,
    /// Workspaces placed here (provisioned or being provisioned).
    pub workspaces: i64,
    /// The cap placement uses now: `max_workspaces`, or lower after a recent refusal at the cap.
    pub effective_cap: i32,
    pub room: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cap_reached_at: Option<OffsetDateTime>,
    /// Twenty's `appVersion`, as last checked.
    pub version: Option<String>,
    pub capabilities: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    pub check_error: Option<String>,
}

/// A tenant whose workspace waits for room.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct WaitingTenant {
    pub tenant_id: TenantId,
    pub slug: String,
    #[serde(with = "time::serde::rfc3339")]
    pub waiting_since: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct InstanceRow {
    key: String,
    base_url: String,
    configured: bool,
    max_workspaces: i32,
    workspaces: i64,
    cap_reached_at: Option<OffsetDateTime>,
    cap_reached_at_count: Option<i32>,
    version: Option<String>,
    capabilities: Option<serde_json::Value>,
    checked_at: Option<OffsetDateTime>,
    check_error: Option<String>,
}

impl InstanceRow {
    fn status(self, recheck: Duration) -> InstanceStatus {
        let recent_refusal = self
            .cap_reached_at
            .is_some_and(|at| OffsetDateTime::now_utc() - at < recheck);
        let effective_cap = match (recent_refusal, self.cap_reached_at_count) {
            (true, Some(count)) => count.min(self.max_workspaces),
            _ => self.max_workspaces,
        };
        let room = if self.configured {
            (i64::from(effective_cap) - self.workspaces).max(0)
        } else {
            0
        };
        InstanceStatus {
            key: self.key,
            base_url: self.base_url,
            configured: self.configured,
            max_workspaces: self.max_workspaces,
            workspaces: self.workspaces,
            effective_cap,
            room,
            cap_reached_at: self.cap_reached_at,
            version: self.version,
            capabilities: self.capabilities,
            checked_at: self.checked_at,
            check_error: self.check_error,
        }
    }
}

const INSTANCES: &str = "SELECT i.key, i.base_url, i.configured, i.max_workspaces,
        (SELECT count(*) FROM crm_workspaces w WHERE w.instance = i.key) AS workspaces,
        i.cap_reached_at, i.cap_reached_at_count, i.version, i.capabilities, i.checked_at, i.check_error
   FROM crm_instances i ORDER BY i.key";

/// Makes the registry match the configured instances: new ones added, changed URLs and caps updated (a
/// changed cap forgets an earlier refusal), instances no longer configured marked so.
pub async fn sync_from_config(
    db: &PgPool,
    instances: &[CrmInstanceConfig],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx).await?;
    let keys: Vec<&str> = instances.iter().map(|i| i.key.as_str()).collect();
    sqlx::query(
        "UPDATE crm_instances SET configured = false, updated_at = now()
          WHERE configured AND NOT (key = ANY($1))",
    )
    .bind(&keys)
    .execute(&mut *tx)
    .await?;
    for instance in instances {
        sqlx::query(
            "INSERT INTO crm_instances (key, base_url, max_workspaces) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET
                 base_url = EXCLUDED.base_url,
                 max_workspaces = EXCLUDED.max_workspaces,
                 configured = true,
                 cap_reached_at = CASE WHEN crm_instances.max_workspaces = EXCLUDED.max_workspaces
                                       THEN crm_instances.cap_reached_at END,
                 cap_reached_at_count = CASE WHEN crm_instances.max_workspaces = EXCLUDED.max_workspaces
                                             THEN crm_instances.cap_reached_at_count END,
                 updated_at = now()",
        )
        .bind(&instance.key)
        .bind(&instance.base_url)
        .bind(i32::try_from(instance.max_workspaces).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Every instance with its counts; `recheck` is `crm.capacity_recheck_secs`.
pub async fn instances(db: &PgPool, recheck: Duration) -> Result<Vec<InstanceStatus>, sqlx::Error> {
    let rows: Vec<InstanceRow> = sqlx::query_as(INSTANCES).fetch_all(db).await?;
    Ok(rows.into_iter().map(|row| row.status(recheck)).collect())
}

/// Places `tenant`'s workspace: the instance it is on already, else the configured instance with the most
/// room (ties by key). `None`: no room anywhere; the tenant is marked waiting (its first wait kept).
pub async fn place(
    db: &PgPool,
    tenant: TenantId,
    recheck: Duration,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx).await?;
    let placed: Option<String> =
        sqlx::query_scalar("SELECT instance FROM crm_workspaces WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
    if placed.is_some() {
        return Ok(placed);
    }
    let rows: Vec<InstanceRow> = sqlx::query_as(INSTANCES).fetch_all(&mut *tx).await?;
    let best = rows
        .into_iter()
        .map(|row| row.status(recheck))
        .filter(|instance| instance.room > 0)
        .max_by(|a, b| a.room.cmp(&b.room).then_with(|| b.key.cmp(&a.key)));
    match &best {
        Some(instance) => {
            sqlx::query(
                "UPDATE crm_workspaces SET instance = $2, waiting_since = NULL, updated_at = now()
                  WHERE tenant_id = $1",
            )
            .bind(tenant)
            .bind(&instance.key)
            .execute(&mut *tx)
            .await?;
            tracing::info!(tenant_id = %tenant, instance = %instance.key, room = instance.room, "CRM workspace placed");
        }
        None => {
            sqlx::query(
                "UPDATE crm_workspaces SET waiting_since = coalesce(waiting_since, now()), updated_at = now()
                  WHERE tenant_id = $1",
            )
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
            tracing::warn!(tenant_id = %tenant, "no Twenty instance has room: the CRM workspace waits for capacity");
        }
    }
    tx.commit().await?;
    Ok(best.map(|instance| instance.key))
}

/// `instance` refused `tenant`'s workspace at its cap: the instance counts as full at the workspaces of ours
/// it holds, and the tenant starts over unplaced (its owner user there is left unused; nothing else was
/// created).
pub async fn cap_reached(db: &PgPool, tenant: TenantId, instance: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx).await?;
    sqlx::query(
        "UPDATE crm_instances SET cap_reached_at = now(), updated_at = now(),
                cap_reached_at_count = (SELECT count(*) FROM crm_workspaces
                                         WHERE instance = $1 AND tenant_id <> $2)
          WHERE key = $1",
    )
    .bind(instance)
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE crm_workspaces SET instance = NULL, step = 'none', user_id = NULL, workspace_id = NULL,
                workspace_url = NULL, admin_role_id = NULL, api_key_id = NULL, api_key_token = NULL,
                api_key_expires_at = NULL, updated_at = now()
          WHERE tenant_id = $1",
    )
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("crm_workspace_cap_refusals_total", "instance" => instance.to_owned())
        .increment(1);
    tracing::warn!(tenant_id = %tenant, instance, "Twenty refused a workspace at its cap; placing elsewhere");
    Ok(())
}

/// Tenants waiting for room, oldest first: ready ones, and ones whose provisioning is just finishing (a
/// suspended or deleted tenant does not wait).
pub async fn waiting(db: &PgPool) -> Result<Vec<WaitingTenant>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT w.tenant_id, ",
        tenant_sql!(slug "w.tenant_id"),
        " AS slug, w.waiting_since FROM crm_workspaces w \
          WHERE w.waiting_since IS NOT NULL AND w.instance IS NULL AND ",
        tenant_sql!(placeable "w.tenant_id"),
        " ORDER BY w.waiting_since, w.tenant_id"
    ))
    .fetch_all(db)
    .await
}

/// Publishes how many tenants wait for capacity (`crm_workspaces_waiting_for_capacity`), right when it
/// changes rather than at the next sweep.
pub async fn publish_waiting(db: &PgPool) {
    match waiting(db).await {
        Ok(waiting) => {
            metrics::gauge!("crm_workspaces_waiting_for_capacity").set(waiting.len() as f64)
        }
        Err(error) => tracing::warn!(%error, "cannot count the tenants waiting for CRM capacity"),
    }
}

/// Records what a check of `instance` found.
pub async fn record_check(
    db: &PgPool,
    instance: &str,
    version: Option<&str>,
    capabilities: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE crm_instances SET checked_at = now(), check_error = $4,
                version = coalesce($2, version), capabilities = coalesce($3, capabilities)
          WHERE key = $1",
    )
    .bind(instance)
    .bind(version)
    .bind(capabilities)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

async fn lock(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PLACEMENT_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
