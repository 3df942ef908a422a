//! Clerk membership and user events → the `members` table of tenant databases.
//!
//! Svix delivers in no particular order and may repeat (`../shared/reference/clerk.md` §4.3), so an event is
//! never applied as a delta: processing any event of a membership applies the membership's *latest* known
//! state, read from every delivery of it in the inbox (newest `data.updated_at`; on a tie deleted > updated >
//! created). Whatever order deliveries are processed in, the last one processed leaves the latest state.

use serde_json::Value;
use sqlx::PgPool;

use super::webhook::{
    PROVIDER, organization_deletion_seen, placeholder_owner_email, tenant_of_org,
};
use crate::inbox::{self, Outcome, PastEvent};
use crate::jobs::JobError;
use crate::provisioning::Provisioner;
use crate::tenancy::{Tenant, TenantId, TenantStatus};

/// The membership events Clerk sends.
const MEMBERSHIP_EVENTS: &[&str] = &[
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
];

/// The latest delivery of the membership `membership_id` (its `type` and `data`).
async fn latest_membership_event(
    db: &PgPool,
    membership_id: &str,
) -> Result<(String, Value), JobError> {
    // The newest by Clerk's `updated_at`; on a tie deleted > updated > created, then the later delivery.
    let rank = |event: &PastEvent| {
        let at = event.data["updated_at"].as_i64().unwrap_or(0);
        let kind = match event.event_type.as_str() {
            "organizationMembership.deleted" => 2,
            "organizationMembership.updated" => 1,
            _ => 0,
        };
        (at, kind, event.id)
    };
    let events = inbox::events_about(db, PROVIDER, MEMBERSHIP_EVENTS, membership_id).await?;
    let latest = events.into_iter().max_by_key(rank);
    latest.map(|e| (e.event_type, e.data)).ok_or_else(|| {
        JobError::permanent(format!("membership {membership_id} is not in the inbox"))
    })
}

/// Why a membership event is ignored: its tenant will never take member changes again (the message is the
/// inbox row's reason).
#[derive(Debug, thiserror::Error)]
enum Unwritable {
    #[error("the organization was deleted")]
    OrganizationDeleted,
    #[error("the tenant is {0}")]
    Tenant(TenantStatus),
}

/// The tenant of a Clerk organization, when it can take member changes now. `Err(retry)` while it is being
/// provisioned (applied once it is ready) or not registered yet (`organization.created` may come later).
async fn writable_tenant(
    provisioner: &Provisioner,
    org_id: &str,
) -> Result<Result<Tenant, Unwritable>, JobError> {
    let Some(tenant) = tenant_of_org(provisioner, org_id).await? else {
        let deleted = organization_deletion_seen(provisioner, org_id).await?;
        if deleted {
            return Ok(Err(Unwritable::OrganizationDeleted));
        }
        return Err(JobError::retry(format!(
            "no tenant for organization {org_id} yet"
        )));
    };
    match tenant.status {
        TenantStatus::Ready | TenantStatus::Suspended => Ok(Ok((*tenant).clone())),
        TenantStatus::Pending | TenantStatus::Provisioning => Err(JobError::retry(format!(
            "tenant {} is {}; members are applied once it is ready",
            tenant.id, tenant.status
        ))),
        other => Ok(Err(Unwritable::Tenant(other))),
    }
}

/// Our role for a Clerk role: `org:admin` → admin, `org:member` → member, a custom `org:<key>` → that key when
/// the tenant defines it (checked by the foreign key; unknown keys fall back to member).
fn role_key(clerk_role: &str) -> &str {
    let key = clerk_role.strip_prefix("org:").unwrap_or(clerk_role);
    match key {
        "admin" | "member" | "viewer" | "owner" => key,
        _ => "member",
    }
}

pub(super) async fn membership_event(
    provisioner: &Provisioner,
    data: &Value,
) -> Result<Outcome, JobError> {
    let membership_id = data["id"]
        .as_str()
        .ok_or_else(|| JobError::permanent("the membership event has no data.id"))?;
    let (event_type, latest) = latest_membership_event(provisioner.db(), membership_id).await?;
    let org_id = latest["organization"]["id"]
        .as_str()
        .ok_or_else(|| JobError::permanent("the membership event has no organization.id"))?;
    let user_id = latest["public_user_data"]["user_id"]
        .as_str()
        .ok_or_else(|| {
            JobError::permanent("the membership event has no public_user_data.user_id")
        })?;
    let tenant = match writable_tenant(provisioner, org_id).await? {
        Ok(tenant) => tenant,
        Err(why) => return Ok(Outcome::Ignored(None, why.to_string())),
    };
    let pool = provisioner
        .pools()
        .get(&tenant)
        .await
        .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
    if event_type == "organizationMembership.deleted" {
        sqlx::query("DELETE FROM members WHERE clerk_user_id = $1")
            .bind(user_id)
            .execute(&*pool)
            .await?;
        return Ok(Outcome::Processed(Some(tenant.id)));
    }
    let email = latest["public_user_data"]["identifier"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let name = display_name(&latest["public_user_data"]);
    let is_creator = latest["organization"]["created_by"].as_str() == Some(user_id);
    let role = if is_creator {
        "owner"
    } else {
        role_key(latest["role"].as_str().unwrap_or("org:member"))
    };
    upsert_member(
        &pool,
        &tenant,
        user_id,
        &email,
        name.as_deref(),
        role,
        is_creator,
    )
    .await?;
    if is_creator && email.contains('@') {
        provisioner
            .directory()
            .replace_owner_email(tenant.id, &placeholder_owner_email(org_id), &email)
            .await?;
    }
    Ok(Outcome::Processed(Some(tenant.id)))
}

fn display_name(user: &Value) -> Option<String> {
    let first = user["first_name"].as_str().unwrap_or_default().trim();
    let last = user["last_name"].as_str().unwrap_or_default().trim();
    let name = format!("{first} {last}").trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Inserts or updates the member of `user_id`. The owner seeded at provisioning (no Clerk id yet; for tenants
/// created from Clerk, a placeholder email) is the organization creator's row: it is linked, not duplicated.
/// An owner keeps the owner role whatever Clerk calls it.
async fn upsert_member(
    pool: &PgPool,
    tenant: &Tenant,
    user_id: &str,
    email: &str,
    name: Option<&str>,
    role: &str,
    is_creator: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let linked = sqlx::query(
        "UPDATE members SET clerk_user_id = $1, email = CASE WHEN $2 = '' THEN email ELSE $2 END, \
           display_name = coalesce($3, display_name), \
           role_key = CASE WHEN role_key = 'owner' THEN 'owner' ELSE $4 END, status = 'active', updated_at = now() \
         WHERE clerk_user_id = $1 \
            OR (clerk_user_id IS NULL AND ($2 <> '' AND lower(email) = $2)) \
            OR (clerk_user_id IS NULL AND $5 AND role_key = 'owner' AND lower(email) = lower($6))",
    )
    .bind(user_id)
    .bind(email)
    .bind(name)
    .bind(role)
    .bind(is_creator)
    .bind(&tenant.owner_email)
    .execute(&mut *tx)
    .await?;
    if linked.rows_affected() == 0 && !email.is_empty() {
        sqlx::query(
            "INSERT INTO members (clerk_user_id, email, display_name, role_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT ((lower(email))) DO UPDATE SET clerk_user_id = EXCLUDED.clerk_user_id, \
               display_name = coalesce(EXCLUDED.display_name, members.display_name), updated_at = now()",
        )
        .bind(user_id)
        .bind(email)
        .bind(name)
        .bind(role)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Tenants the user has (had) a membership in, from the inbox.
async fn tenants_of_user(
    provisioner: &Provisioner,
    user_id: &str,
) -> Result<Vec<TenantId>, JobError> {
    let memberships = inbox::events_with(
        provisioner.db(),
        PROVIDER,
        MEMBERSHIP_EVENTS,
        &["data", "public_user_data", "user_id"],
        user_id,
    )
    .await?;
    let orgs: std::collections::BTreeSet<&str> = memberships
        .iter()
        .filter_map(|m| m.data["organization"]["id"].as_str())
        .collect();
    let mut tenants = Vec::new();
    for org in orgs {
        if let Some(tenant) = tenant_of_org(provisioner, org).await? {
            tenants.push(tenant.id);
        }
    }
    Ok(tenants)
}

/// `user.updated` (names, primary email) and `user.deleted` (removal), in every tenant the user belongs to.
pub(super) async fn user_event(
    provisioner: &Provisioner,
    deleted: bool,
    data: &Value,
) -> Result<Outcome, JobError> {
    let user_id = data["id"]
        .as_str()
        .ok_or_else(|| JobError::permanent("the user event has no data.id"))?;
    let tenants = tenants_of_user(provisioner, user_id).await?;
    if tenants.is_empty() {
        return Ok(Outcome::Ignored(
            None,
            "the user is a member of no tenant".into(),
        ));
    }
    let email = primary_email(data);
    let name = display_name(data);
    for id in tenants {
        let Some(tenant) = provisioner
            .directory()
            .get(id)
            .await
            .map_err(|e| JobError::retry(format!("resolving the tenant: {e}")))?
        else {
            continue;
        };
        if !matches!(tenant.status, TenantStatus::Ready | TenantStatus::Suspended) {
            continue;
        }
        let pool = provisioner
            .pools()
            .get(&tenant)
            .await
            .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
        if deleted {
            sqlx::query("DELETE FROM members WHERE clerk_user_id = $1")
                .bind(user_id)
                .execute(&*pool)
                .await?;
        } else {
            sqlx::query(
                "UPDATE members SET email = coalesce($2, email), display_name = coalesce($3, display_name), \
                 updated_at = now() WHERE clerk_user_id = $1",
            )
            .bind(user_id)
            .bind(&email)
            .bind(&name)
            .execute(&*pool)
            .await?;
        }
    }
    Ok(Outcome::Processed(None))
}

fn primary_email(user: &Value) -> Option<String> {
    let primary = user["primary_email_address_id"].as_str()?;
    user["email_addresses"]
        .as_array()?
        .iter()
        .find(|e| e["id"].as_str() == Some(primary))
        .and_then(|e| e["email_address"].as_str())
        .map(str::to_lowercase)
}

/// A member as the merchant app's Team screen lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// `None` for Salla staff (Salla gives no email).
    pub email: Option<String>,
    /// `salla:{merchant}:{user}` for Salla staff.
    pub external_id: Option<String>,
    /// When the person last opened the app from Salla.
    pub last_seen_at: Option<time::OffsetDateTime>,
    pub display_name: Option<String>,
    pub role_key: String,
    /// The role's display name (`roles.name`).
    pub role_name: String,
    pub status: String,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
}

/// The tenant's members, owners first, then by when they joined (at most `limit`).
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.email, m.external_id, m.last_seen_at, m.display_name, m.role_key, r.name AS role_name, m.status, m.created_at, m.updated_at
           FROM members m JOIN roles r ON r.key = m.role_key
          ORDER BY (m.role_key = 'owner') DESC, m.created_at, m.id
          LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
