//! The tenant lifecycle: registering, suspending, reactivating, retrying, deleting and keys of a tenant, as
//! the admin API, the `wosool tenants` CLI and the integrations (Clerk, Salla) all call it, so none can
//! disagree. Every action is written to the audit log with its actor and request id.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::steps::{self, RunRecord, StepRecord};
use super::{DeleteTenant, ProvisionError, Provisioner, Registered, ValidRegistration};
use crate::access::Scope;
use crate::jobs::{Enqueued, NewJob};
use crate::tenancy::registry::{self, RegistryError, TenantFilter};
use crate::tenancy::{ApiKeyInfo, LookupKey, Slug, Tenant, TenantId, TenantStatus};

/// Who did something, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub request_id: Option<String>,
    /// The client's IP and user agent, when the action came over HTTP.
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

impl Actor {
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Self::system(format!("cli:{user}"))
    }

    /// An actor with no request behind it (CLI, jobs, integrations).
    pub fn system(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            request_id: None,
            ip: None,
            user_agent: None,
        }
    }

    /// An actor acting through an HTTP request.
    pub fn from_request(name: impl Into<String>, origin: &crate::audit::Origin) -> Self {
        Self {
            name: name.into(),
            request_id: origin.request_id.clone(),
            ip: origin.ip,
            user_agent: origin.user_agent.clone(),
        }
    }

    fn origin(&self) -> crate::audit::Origin {
        crate::audit::Origin {
            request_id: self.request_id.clone(),
            ip: self.ip,
            user_agent: self.user_agent.clone(),
        }
    }
}

/// The audited fields of a tenant's status.
fn status_of(tenant: &Tenant) -> serde_json::Value {
    serde_json::json!({ "status": tenant.status, "suspended_reason": tenant.suspended_reason })
}

/// A tenant as an operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantDetails {
    #[serde(flatten)]
    pub tenant: Tenant,
    pub database_size_bytes: Option<i64>,
    pub latest_run: Option<RunWithSteps>,
    pub api_keys: Vec<ApiKeyInfo>,
    /// Rows per table of the tenant database (customers, products, orders, abandoned_carts); absent when the
    /// database is not reachable (not created yet, deleted).
    pub counts: Option<BTreeMap<String, i64>>,
    /// The steps of its deletion, once deletion started (dump, drop_database, crm_workspace, identity,
    /// credentials, finalize).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deletion: Vec<StepRecord>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunWithSteps {
    #[serde(flatten)]
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetStats {
    pub tenants_by_status: BTreeMap<String, i64>,
    pub tenants_by_plan: BTreeMap<String, i64>,
    pub provisioning: ProvisioningStats,
    pub queue_depth: i64,
    pub open_tenant_connections: u32,
    pub resident_tenant_pools: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProvisioningStats {
    pub runs: i64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// Deletes a tenant that is still suspended when the grace period after losing its organization or store ends.
/// A tenant reactivated meanwhile is left alone.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeleteAfterGrace {
    pub tenant_id: TenantId,
}

impl crate::jobs::Job for DeleteAfterGrace {
    const KIND: &'static str = "tenant.delete_after_grace";
}

/// Registers the operator-side jobs.
pub fn register_jobs(registry: &mut crate::jobs::Registry, admin: TenantLifecycle) {
    registry.register(move |_ctx, job: DeleteAfterGrace| {
        let admin = admin.clone();
        async move {
            let tenant = admin.find(&job.tenant_id.to_string()).await;
            match tenant {
                Ok(tenant) if tenant.status == TenantStatus::Suspended => {
                    let actor = Actor::system("system:grace-period");
                    admin
                        .delete(&tenant.id.to_string(), false, &actor)
                        .await
                        .map(drop)
                        .map_err(crate::jobs::JobError::retry)
                }
                Ok(_) | Err(RegistryError::NotFound) => Ok(()),
                Err(error) => Err(crate::jobs::JobError::retry(error)),
            }
        }
    });
}

/// Runs considered by the provisioning percentiles.
const STATS_RUNS: i64 = 100;

#[derive(Clone)]
pub struct TenantLifecycle {
    provisioner: Provisioner,
}

impl TenantLifecycle {
    pub fn new(provisioner: Provisioner) -> Self {
        Self { provisioner }
    }

    pub fn provisioner(&self) -> &Provisioner {
        &self.provisioner
    }

    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        tenant: Option<TenantId>,
        details: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        self.audit_change(actor, action, tenant, None, details, None)
            .await
    }

    /// One global audit entry: `resource` defaults to the tenant, `change` is `(before, after)`.
    async fn audit_change(
        &self,
        actor: &Actor,
        action: &str,
        tenant: Option<TenantId>,
        resource: Option<String>,
        details: serde_json::Value,
        change: Option<(serde_json::Value, serde_json::Value)>,
    ) -> Result<(), sqlx::Error> {
        let via = if actor.name.starts_with("admin:") || actor.name.starts_with("cli:") {
            crate::audit::Via::Operator
        } else if actor.ip.is_some() {
            crate::audit::Via::Api
        } else {
            crate::audit::Via::System
        };
        let mut event = crate::audit::Event::by(&actor.name, via, action)
            .origin(&actor.origin())
            .details(details);
        if let Some(tenant) = tenant {
            event = event.on_tenant(tenant).resource(format!("tenant:{tenant}"));
        }
        if let Some(resource) = resource {
            event = event.resource(resource);
        }
        if let Some((before, after)) = change {
            event = event.change(before, after);
        }
        let mut conn = self.provisioner.db().acquire().await?;
        event.write_global(&mut conn).await
    }

    /// A tenant by id or slug, straight from the registry (operators see the truth, not a cache).
    pub async fn find(&self, id_or_slug: &str) -> Result<Tenant, RegistryError> {
        let key = match id_or_slug.parse::<TenantId>() {
            Ok(id) => LookupKey::Id(id),
            Err(_) => {
                LookupKey::Slug(Slug::parse(id_or_slug).map_err(|_| RegistryError::NotFound)?)
            }
        };
        registry::find(self.provisioner.db(), &key)
            .await?
            .ok_or(RegistryError::NotFound)
    }

    pub async fn list(&self, filter: &TenantFilter) -> Result<Vec<Tenant>, sqlx::Error> {
        registry::list(self.provisioner.db(), filter).await
    }

    pub async fn create(
        &self,
        registration: ValidRegistration,
        server: Option<&str>,
        actor: &Actor,
    ) -> Result<Registered, ProvisionError> {
        self.provisioner
            .register(
                registration,
                server,
                &actor.name,
                actor.request_id.as_deref(),
            )
            .await
    }

    pub async fn show(&self, id_or_slug: &str) -> Result<TenantDetails, ProvisionError> {
        let tenant = self.find(id_or_slug).await?;
        let db = self.provisioner.db();
        let server = self.provisioner.servers().get(&tenant.db_server)?;
        let database_size_bytes = server.database_size(&tenant.db_name).await.ok().flatten();
        let latest_run = match steps::latest_run(db, tenant.id).await? {
            Some(run) => Some(RunWithSteps {
                steps: steps::steps_of(db, run.id).await?,
                run,
            }),
            None => None,
        };
        let counts = if database_size_bytes.is_some() && tenant.schema_version > 0 {
            self.counts(&tenant).await
        } else {
            None
        };
        Ok(TenantDetails {
            api_keys: registry::list_api_keys(db, tenant.id).await?,
            deletion: crate::provisioning::deletion_steps(db, tenant.id).await?,
            tenant,
            database_size_bytes,
            latest_run,
            counts,
        })
    }

    async fn counts(&self, tenant: &Tenant) -> Option<BTreeMap<String, i64>> {
        let pool = self.provisioner.pools().get(tenant).await.ok()?;
        let row: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products), \
                    (SELECT count(*) FROM orders), (SELECT count(*) FROM abandoned_carts)",
        )
        .fetch_one(&*pool)
        .await
        .ok()?;
        Some(BTreeMap::from([
            ("customers".into(), row.0),
            ("products".into(), row.1),
            ("orders".into(), row.2),
            ("abandoned_carts".into(), row.3),
        ]))
    }

    /// Suspends a ready tenant. A suspended tenant given another reason keeps its status and gets the new
    /// reason (audited as `tenant.suspension_reason_changed`); the same reason again changes nothing.
    pub async fn suspend(
        &self,
        id_or_slug: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let tenant = self.find(id_or_slug).await?;
        if tenant.status == TenantStatus::Suspended {
            return self.change_suspension_reason(tenant, reason, actor).await;
        }
        let updated = self
            .provisioner
            .directory()
            .transition(tenant.id, TenantStatus::Suspended, Some(reason), None)
            .await?;
        self.stop_serving(tenant.id, "suspended").await?;
        self.audit_change(
            actor,
            "tenant.suspended",
            Some(tenant.id),
            None,
            serde_json::json!({ "reason": reason }),
            Some((status_of(&tenant), status_of(&updated))),
        )
        .await?;
        Ok(updated)
    }

    async fn change_suspension_reason(
        &self,
        tenant: Tenant,
        reason: &str,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let directory = self.provisioner.directory();
        let Some(updated) = directory.set_suspended_reason(tenant.id, reason).await? else {
            // Same reason (or no longer suspended: a concurrent change), nothing to record.
            return Ok(self.find(&tenant.id.to_string()).await?);
        };
        self.audit(
            actor,
            "tenant.suspension_reason_changed",
            Some(tenant.id),
            serde_json::json!({ "reason": reason, "previous_reason": tenant.suspended_reason }),
        )
        .await?;
        Ok(updated)
    }

    /// Schedules deletion of `tenant` after the configured grace period (replacing an earlier schedule).
    pub async fn schedule_deletion(&self, tenant: TenantId) -> Result<(), ProvisionError> {
        let days = self.provisioner.config().deletion_grace_days;
        let job = NewJob::new(&DeleteAfterGrace { tenant_id: tenant })?
            .for_tenant(tenant)
            .unique_key("grace")
            .delay(std::time::Duration::from_secs(days * 86_400));
        self.provisioner.jobs().enqueue(job).await?;
        Ok(())
    }

    /// Cancels a pending deletion after the grace period (the tenant came back, e.g. the app was reinstalled).
    pub async fn cancel_scheduled_deletion(&self, tenant: TenantId) -> Result<(), sqlx::Error> {
        self.provisioner
            .jobs()
            .cancel_unique(
                <DeleteAfterGrace as crate::jobs::Job>::KIND,
                tenant,
                "grace",
            )
            .await?;
        Ok(())
    }

    pub async fn activate(
        &self,
        id_or_slug: &str,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let tenant = self.find(id_or_slug).await?;
        let updated = self
            .provisioner
            .directory()
            .transition(tenant.id, TenantStatus::Ready, None, None)
            .await?;
        self.audit_change(
            actor,
            "tenant.activated",
            Some(tenant.id),
            None,
            serde_json::json!({}),
            Some((status_of(&tenant), status_of(&updated))),
        )
        .await?;
        Ok(updated)
    }

    pub async fn retry(
        &self,
        id_or_slug: &str,
        actor: &Actor,
    ) -> Result<(Tenant, Uuid), ProvisionError> {
        let tenant = self.find(id_or_slug).await?;
        let (run, enqueued) = self.provisioner.retry(tenant.id).await?;
        self.audit(
            actor,
            "tenant.provisioning_retried",
            Some(tenant.id),
            serde_json::json!({ "run_id": run, "job_id": enqueued.id(), "duplicate": matches!(enqueued, Enqueued::Duplicate(_)) }),
        )
        .await?;
        Ok((self.find(&tenant.id.to_string()).await?, run))
    }

    /// Starts deletion: a ready tenant is suspended first (the lifecycle goes through `suspended`), then the
    /// tenant is `deleting` and the `tenant.delete` job dumps and drops its database.
    pub async fn delete(
        &self,
        id_or_slug: &str,
        keep_data: bool,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let tenant = self.find(id_or_slug).await?;
        let directory = self.provisioner.directory();
        if tenant.status == TenantStatus::Ready {
            directory
                .transition(
                    tenant.id,
                    TenantStatus::Suspended,
                    Some("being deleted"),
                    None,
                )
                .await?;
        }
        let deleting = directory
            .transition(tenant.id, TenantStatus::Deleting, None, None)
            .await?;
        self.stop_serving(tenant.id, "deleted").await?;
        let job = NewJob::new(&DeleteTenant {
            tenant_id: tenant.id,
            keep_data,
        })?
        .for_tenant(tenant.id)
        .unique_key("delete");
        let enqueued = self.provisioner.jobs().enqueue(job).await?;
        self.audit_change(
            actor,
            "tenant.deletion_requested",
            Some(tenant.id),
            None,
            serde_json::json!({ "keep_data": keep_data, "job_id": enqueued.id() }),
            Some((status_of(&tenant), status_of(&deleting))),
        )
        .await?;
        Ok(deleting)
    }

    /// What ends when a tenant stops being served (suspension, deletion; the Salla uninstall suspends): every
    /// embedded app session, on every replica. Called after the status change, so no new session can be
    /// minted in between (minting passes the status gate).
    async fn stop_serving(&self, tenant: TenantId, reason: &str) -> Result<(), sqlx::Error> {
        crate::embedded::session::revoke_tenant(
            self.provisioner.db(),
            self.provisioner.directory(),
            tenant,
            reason,
        )
        .await
        .map(drop)
    }

    pub async fn create_api_key(
        &self,
        tenant: TenantId,
        name: &str,
        scope: Scope,
        actor: &Actor,
    ) -> Result<(ApiKeyInfo, String), ApiKeyError> {
        self.check_takes_api_keys(tenant).await?;
        let (info, plain) = self
            .provisioner
            .directory()
            .create_api_key(tenant, name, scope, &actor.name)
            .await?;
        self.audit_change(
            actor,
            "api_key.created",
            Some(tenant),
            Some(format!("api_key:{}", info.id)),
            serde_json::json!({ "key_id": info.id, "prefix": info.prefix, "name": name, "scope": scope }),
            Some((
                serde_json::Value::Null,
                serde_json::json!({ "prefix": info.prefix, "name": name, "scope": scope }),
            )),
        )
        .await?;
        Ok((info, plain))
    }

    /// No new key for a tenant that is going away: 410 once deleted, 409 while being deleted. Pending,
    /// provisioning, failed and suspended tenants may get keys: those work once the tenant is ready (again),
    /// and until then the status gate answers for them.
    async fn check_takes_api_keys(&self, tenant: TenantId) -> Result<(), ApiKeyError> {
        let found = registry::find(self.provisioner.db(), &LookupKey::Id(tenant))
            .await?
            .ok_or(RegistryError::NotFound)?;
        match found.status {
            TenantStatus::Deleted => Err(ApiKeyError::Deleted),
            TenantStatus::Deleting => Err(ApiKeyError::Deleting),
            _ => Ok(()),
        }
    }

    pub async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
        registry::list_api_keys(self.provisioner.db(), tenant).await
    }

    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key: Uuid,
        actor: &Actor,
    ) -> Result<bool, sqlx::Error> {
        let revoked = self
            .provisioner
            .directory()
            .revoke_api_key(tenant, key)
            .await?;
        if revoked {
            self.audit_change(
                actor,
                "api_key.revoked",
                Some(tenant),
                Some(format!("api_key:{key}")),
                serde_json::json!({ "key_id": key }),
                Some((
                    serde_json::json!({ "revoked": false }),
                    serde_json::json!({ "revoked": true }),
                )),
            )
            .await?;
        }
        Ok(revoked)
    }

    pub async fn stats(&self) -> Result<FleetStats, sqlx::Error> {
        let db = self.provisioner.db();
        let by_status = registry::count_by_status(db).await?;
        let by_plan = registry::count_by_plan(db).await?;
        let (p50, p95, runs) = steps::duration_percentiles(db, STATS_RUNS).await?;
        let queue_depth = self.provisioner.jobs().due().await?;
        let mut tenants_by_status: BTreeMap<String, i64> = TenantStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        tenants_by_status.extend(by_status);
        Ok(FleetStats {
            tenants_by_status,
            tenants_by_plan: by_plan.into_iter().collect(),
            provisioning: ProvisioningStats {
                runs,
                p50_ms: p50.map(|s| s * 1000.0),
                p95_ms: p95.map(|s| s * 1000.0),
            },
            queue_depth,
            open_tenant_connections: self.provisioner.pools().open_connections(),
            resident_tenant_pools: self.provisioner.pools().resident_count(),
        })
    }
}

/// Why an API key was not created.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the tenant is deleted; it gets no API keys")]
    Deleted,
    #[error("the tenant is being deleted; it gets no new API keys")]
    Deleting,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<ApiKeyError> for crate::error::ApiError {
    fn from(error: ApiKeyError) -> Self {
        use crate::error::ApiError;
        match error {
            ApiKeyError::Deleted => ApiError::TenantUnavailable {
                status: axum::http::StatusCode::GONE,
                code: "tenant_deleted",
                message: "The organization has been deleted; it gets no API keys.".into(),
                provisioning: None,
            },
            ApiKeyError::Deleting => ApiError::conflict(
                "tenant_deleting",
                "The organization is being deleted; it gets no new API keys.",
            ),
            ApiKeyError::Registry(e) => e.into(),
            ApiKeyError::Db(e) => e.into(),
        }
    }
}

/// A filter's timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time like 2026-11-20T10:00:00Z")]
pub struct BadTime(pub String);

/// Parses an RFC 3339 timestamp given in a filter.
pub fn parse_time(raw: &str) -> Result<OffsetDateTime, BadTime> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| BadTime(raw.to_owned()))
}
