//! People of a store who open the app: the owner (the store's installer) and staff, recorded in the tenant's
//! `members` by external id `salla:{merchant}:{user}` with the member role on first sight. A durable job then
//! gives a staff member a Clerk user (by `external_id`, no email: Salla gives none) in the tenant's
//! organization; an instance that requires an email refuses (422 `form_param_missing`), which is recorded
//! (`members.clerk_link = 'refused'`) and the member stays Wosool-only.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::Embedded;
use crate::jobs::{Job, JobError, NewJob, Registry};
use crate::tenancy::{MerchantId, Tenant, TenantId, TenantStatus};

/// The external id of a store's dashboard user.
pub fn external_id(merchant: MerchantId, user: i64) -> String {
    format!("salla:{merchant}:{user}")
}

/// The external id the provisioning `identity` step gives the owner's Clerk user.
pub fn owner_external_id(tenant: TenantId) -> String {
    format!("wosool:{tenant}")
}

/// A member row, as the session needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub id: Uuid,
    pub clerk_user_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub status: String,
    pub clerk_link: Option<String>,
}

/// The tenant's owner member (seeded at provisioning), seen now.
pub async fn owner(pool: &PgPool) -> Result<Option<Member>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE members SET last_seen_at = now() WHERE id = ( \
           SELECT id FROM members WHERE role_key = 'owner' ORDER BY created_at, id LIMIT 1) \
         RETURNING id, clerk_user_id, display_name, email, status, clerk_link",
    )
    .fetch_optional(pool)
    .await
}

/// The staff member `external_id`, created with the member role on first sight (`clerk_link` pending when
/// it should get a Clerk user), seen now.
pub async fn staff(
    pool: &PgPool,
    external_id: &str,
    wants_clerk: bool,
) -> Result<Member, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO members (external_id, role_key, status, last_seen_at, clerk_link) \
         VALUES ($1, 'member', 'active', now(), CASE WHEN $2 THEN 'pending' END) \
         ON CONFLICT (external_id) DO UPDATE SET last_seen_at = now() \
         RETURNING id, clerk_user_id, display_name, email, status, clerk_link",
    )
    .bind(external_id)
    .bind(wants_clerk)
    .fetch_one(pool)
    .await
}

/// The member's Clerk user, if it has one.
pub async fn clerk_user_of(pool: &PgPool, member: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT clerk_user_id FROM members WHERE id = $1")
        .bind(member)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

/// Gives a staff member a Clerk user in the tenant's organization (or records Clerk's refusal).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkStaff {
    pub tenant_id: TenantId,
    pub member_id: Uuid,
    pub external_id: String,
}

impl Job for LinkStaff {
    const KIND: &'static str = "embedded.link_staff";
}

/// Enqueues [`LinkStaff`] for a member whose Clerk link is pending (once: unique per member).
pub async fn enqueue_link(
    embedded: &Embedded,
    tenant: TenantId,
    member: &Member,
    external_id: &str,
) -> Result<(), JobError> {
    let job = NewJob::new(&LinkStaff {
        tenant_id: tenant,
        member_id: member.id,
        external_id: external_id.to_owned(),
    })?
    .for_tenant(tenant)
    .unique_key(member.id.to_string());
    embedded.core().jobs().enqueue(job).await?;
    Ok(())
}

pub(super) fn register_jobs(registry: &mut Registry, embedded: Embedded) {
    registry.register(move |_ctx, job: LinkStaff| {
        let embedded = embedded.clone();
        async move { link(&embedded, &job).await }
    });
}

async fn link(embedded: &Embedded, job: &LinkStaff) -> Result<(), JobError> {
    let core = embedded.core();
    let Some(tenant) = core
        .directory()
        .get(job.tenant_id)
        .await
        .map_err(|e| JobError::retry(format!("resolving the tenant: {e}")))?
    else {
        return Ok(());
    };
    if !matches!(tenant.status, TenantStatus::Ready | TenantStatus::Suspended) {
        return Ok(());
    }
    let pool = core
        .pools()
        .get(&tenant)
        .await
        .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
    let (Some(clerk), Some(org)) = (embedded.clerk(), tenant.clerk_org_id.as_deref()) else {
        record(
            &pool,
            job.member_id,
            None,
            None,
            Some("no Clerk organization"),
        )
        .await?;
        return Ok(());
    };
    let user = match clerk.ensure_external_user(&job.external_id, None).await {
        Ok(user) => user,
        Err(error) if error.is_identifier_required() || error.is_password_required() => {
            tracing::info!(tenant_id = %tenant.id, error = %error, "Clerk refuses users without an email; the staff member stays Wosool-only");
            record(
                &pool,
                job.member_id,
                None,
                Some("refused"),
                Some(&error.to_string()),
            )
            .await?;
            return Ok(());
        }
        Err(error) => return Err(JobError::retry(error)),
    };
    clerk
        .add_membership(org, &user.id, "org:member")
        .await
        .map_err(JobError::retry)?;
    record(&pool, job.member_id, Some(&user.id), Some("linked"), None).await?;
    tracing::info!(tenant_id = %tenant.id, member_id = %job.member_id, "staff member added to the Clerk organization");
    Ok(())
}

async fn record(
    pool: &PgPool,
    member: Uuid,
    clerk_user: Option<&str>,
    link: Option<&str>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE members SET clerk_user_id = coalesce($2, clerk_user_id), clerk_link = $3, \
           clerk_link_error = $4, updated_at = now() WHERE id = $1",
    )
    .bind(member)
    .bind(clerk_user)
    .bind(link)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a tenant's staff should get Clerk users: Clerk is configured and the tenant has an organization.
pub fn wants_clerk(embedded: &Embedded, tenant: &Tenant) -> bool {
    embedded.clerk().is_some() && tenant.clerk_org_id.is_some()
}
