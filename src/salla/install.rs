//! The install lifecycle (shared/reference/salla.md §1.4, §2.3), driven by app events that may arrive in any
//! order (`app.trial.started` before `app.store.authorize`, authorize again after `app.updated`, duplicates):
//!
//! - `app.store.authorize` stores the tokens (a newer authorize wins) and starts onboarding;
//! - `app.installed` starts onboarding too (it waits for the tokens when they are not there yet);
//! - onboarding (`salla.onboard`, a converging job safe to run any number of times) reads the owner and the
//!   store from Salla, registers the tenant (unique on the merchant id) and lets provisioning run; when the
//!   tenant turns ready, provisioning enqueues onboarding again, which starts the history import;
//! - `app.uninstalled` deletes the tokens, suspends the tenant and schedules its deletion after the grace
//!   period; a reinstall within it reactivates the same tenant with its data;
//! - `app.trial.*` / `app.subscription.*` are recorded on the store and the tenant's plan.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::events::{EventKind, SubscriptionChange, TrialChange};
use super::service::Salla;
use super::tokens::{NewTokens, TokenError};
use crate::inbox::Outcome;
use crate::jobs::{Job, JobError, NewJob};
use crate::provisioning::lifecycle::Actor;
use crate::provisioning::{ProvisionError, RegistrationRequest};
use crate::tenancy::{LookupKey, MerchantId, RegistryError, Slug, Tenant, TenantId, TenantStatus};

/// Why a tenant is suspended after its store uninstalled the app (a reinstall lifts exactly this suspension).
pub const UNINSTALLED_REASON: &str = "The Salla app was uninstalled from the store.";

/// Converges a store's tenant: registered, then (once ready) importing. Safe to run any number of times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Onboard {
    pub merchant_id: MerchantId,
}

impl Job for Onboard {
    const KIND: &'static str = "salla.onboard";
}

/// The provisioning follow-up: a tenant of a Salla store that turned ready continues its onboarding.
pub fn ready_follow_up(tenant: &Tenant) -> Option<NewJob> {
    NewJob::new(&Onboard {
        merchant_id: tenant.salla_merchant_id?,
    })
    .ok()
    .map(|job| job.for_tenant(tenant.id))
}

fn system() -> Actor {
    Actor::system("salla")
}

pub(super) async fn enqueue_onboard(salla: &Salla, merchant: MerchantId) -> Result<(), JobError> {
    salla
        .jobs()
        .enqueue(NewJob::new(&Onboard {
            merchant_id: merchant,
        })?)
        .await?;
    Ok(())
}

async fn tenant_of(
    salla: &Salla,
    merchant: MerchantId,
) -> Result<Option<std::sync::Arc<Tenant>>, JobError> {
    salla
        .directory()
        .resolve(&LookupKey::SallaMerchant(merchant))
        .await
        .map_err(|e| JobError::retry(format!("tenant lookup: {e}")))
}

pub(super) async fn app_event(
    salla: &Salla,
    merchant: MerchantId,
    kind: &EventKind,
) -> Result<Outcome, JobError> {
    match kind {
        EventKind::StoreAuthorize(grant) => {
            // Here `expires` is an absolute unix time (the token endpoint's is a duration).
            let expires_at = OffsetDateTime::from_unix_timestamp(grant.expires_at)
                .map_err(|e| JobError::permanent(format!("authorize: bad expires: {e}")))?;
            let version = salla
                .tokens()
                .save_authorized(
                    merchant,
                    &NewTokens {
                        access_token: &grant.access_token,
                        refresh_token: &grant.refresh_token,
                        access_expires_at: expires_at,
                        scope: grant.scope.as_deref(),
                    },
                )
                .await
                .map_err(|e| JobError::retry(format!("storing tokens: {e}")))?;
            tracing::info!(
                merchant = merchant.as_i64(),
                token_version = version,
                "Salla store authorized"
            );
            enqueue_onboard(salla, merchant).await?;
            Ok(Outcome::Processed(
                tenant_of(salla, merchant).await?.map(|t| t.id),
            ))
        }
        EventKind::AppInstalled(_) => {
            sqlx::query(
                "UPDATE salla_stores SET installed_at = coalesce(installed_at, now()), \
                 status = CASE WHEN status = 'uninstalled' THEN 'pending' ELSE status END, updated_at = now() \
                 WHERE merchant_id = $1",
            )
            .bind(merchant)
            .execute(salla.db())
            .await?;
            enqueue_onboard(salla, merchant).await?;
            Ok(Outcome::Processed(
                tenant_of(salla, merchant).await?.map(|t| t.id),
            ))
        }
        // New tokens follow in an `app.store.authorize`.
        EventKind::AppUpdated(_) => Ok(Outcome::Processed(
            tenant_of(salla, merchant).await?.map(|t| t.id),
        )),
        EventKind::AppUninstalled(_) => uninstall(salla, merchant).await,
        EventKind::Trial { change, info } => {
            let status = match change {
                TrialChange::Started => "trial",
                TrialChange::Expired => "expired",
                TrialChange::Canceled => "canceled",
            };
            record_subscription(salla, merchant, "trial", status, info).await
        }
        EventKind::Subscription { change, info } => {
            let status = match change {
                SubscriptionChange::Started | SubscriptionChange::Renewed => "active",
                SubscriptionChange::Expired => "expired",
                SubscriptionChange::Canceled => "canceled",
            };
            record_subscription(salla, merchant, "subscription", status, info).await
        }
        _ => Ok(Outcome::Ignored(None, "not an app event".into())),
    }
}

/// Records a trial or subscription change; when it ended (expired or canceled), tells the merchant.
async fn record_subscription(
    salla: &Salla,
    merchant: MerchantId,
    plan_kind: &str,
    status: &str,
    info: &super::events::Subscription,
) -> Result<Outcome, JobError> {
    let raw = serde_json::to_value(info)?;
    sqlx::query(
        "UPDATE salla_stores SET subscription_status = $2, subscription_plan = coalesce($3, subscription_plan), \
         subscription_started_at = coalesce($4, subscription_started_at), subscription_ends_at = coalesce($5, subscription_ends_at), \
         subscription = $6, updated_at = now() WHERE merchant_id = $1",
    )
    .bind(merchant)
    .bind(status)
    .bind(info.plan_name.as_deref())
    .bind(info.start_date)
    .bind(info.end_date)
    .bind(&raw)
    .execute(salla.db())
    .await?;
    let tenant = tenant_of(salla, merchant).await?;
    if let (Some(tenant), Some(plan)) = (&tenant, tenant_plan(salla, info.plan_name.as_deref())) {
        salla.directory().set_plan(tenant.id, &plan).await?;
    }
    if let Some(tenant) = &tenant
        && matches!(status, "expired" | "canceled")
    {
        // Keyed by the end date: a redelivered event tells the merchant once.
        let notice = crate::notify::Notice::PlanEnding {
            tenant_id: tenant.id,
            plan_kind: plan_kind.to_owned(),
            change: status.to_owned(),
            plan_name: info.plan_name.clone(),
            ends_at: info.end_date,
        };
        crate::notify::enqueue(salla.db(), &notice)
            .await
            .map_err(JobError::retry)?;
    }
    Ok(Outcome::Processed(tenant.map(|t| t.id)))
}

/// The tenant plan for a Salla app plan name, when it names one of ours (`tenancy.plans`).
fn tenant_plan(salla: &Salla, plan: Option<&str>) -> Option<String> {
    let plan = plan?.trim().to_ascii_lowercase();
    salla
        .provisioner()
        .config()
        .plans
        .iter()
        .find(|p| **p == plan)
        .cloned()
}

async fn uninstall(salla: &Salla, merchant: MerchantId) -> Result<Outcome, JobError> {
    salla
        .tokens()
        .forget(merchant)
        .await
        .map_err(|e| JobError::retry(format!("deleting tokens: {e}")))?;
    let Some(tenant) = tenant_of(salla, merchant).await? else {
        return Ok(Outcome::Processed(None));
    };
    match tenant.status {
        TenantStatus::Ready => {
            salla
                .lifecycle()
                .suspend(&tenant.id.to_string(), UNINSTALLED_REASON, &system())
                .await
                .map_err(JobError::retry)?;
        }
        TenantStatus::Suspended => {}
        TenantStatus::Pending | TenantStatus::Provisioning => {
            // Suspended once provisioning ends (the onboarding that follows sees the uninstalled store).
            return Err(JobError::retry(
                "the tenant is still provisioning; suspending once it is ready",
            ));
        }
        other => {
            return Ok(Outcome::Ignored(
                Some(tenant.id),
                format!("the tenant is {other}"),
            ));
        }
    }
    salla
        .lifecycle()
        .schedule_deletion(tenant.id)
        .await
        .map_err(JobError::retry)?;
    tracing::info!(merchant = merchant.as_i64(), tenant_id = %tenant.id, "Salla app uninstalled: tenant suspended, deletion scheduled");
    Ok(Outcome::Processed(Some(tenant.id)))
}

/// The Salla user who installed `merchant`'s app and their name, when recorded (stores installed before this
/// was recorded have none: then nobody opening the app is known to be the owner).
pub async fn installer_of(
    db: &sqlx::PgPool,
    merchant: MerchantId,
) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
    let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT installer_user_id, installer_name FROM salla_stores WHERE merchant_id = $1",
    )
    .bind(merchant)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(id, name)| id.map(|id| (id, name))))
}

#[derive(sqlx::FromRow)]
struct StoreRow {
    status: String,
    tenant_id: Option<TenantId>,
    import_requested_at: Option<OffsetDateTime>,
}

/// The `salla.onboard` job.
pub(super) async fn onboard(salla: &Salla, merchant: MerchantId) -> Result<(), JobError> {
    let store: Option<StoreRow> = sqlx::query_as(
        "SELECT status, tenant_id, import_requested_at FROM salla_stores WHERE merchant_id = $1",
    )
    .bind(merchant)
    .fetch_optional(salla.db())
    .await?;
    let Some(store) = store else {
        return Ok(());
    };
    if matches!(store.status.as_str(), "uninstalled" | "needs_reinstall") {
        return Ok(());
    }
    let tokens = match salla.tokens().usable(merchant).await {
        Ok(tokens) => tokens,
        Err(TokenError::NoTokens(_)) => {
            return Err(JobError::retry(format!(
                "store {merchant}: waiting for app.store.authorize"
            )));
        }
        Err(TokenError::NeedsReinstall(_)) => return Ok(()),
        Err(other) => return Err(JobError::retry(other)),
    };
    let Some(tenant) = tenant_of(salla, merchant).await? else {
        return register(salla, merchant, &tokens.access_token).await;
    };
    if store.tenant_id != Some(tenant.id) {
        sqlx::query("UPDATE salla_stores SET tenant_id = $2 WHERE merchant_id = $1")
            .bind(merchant)
            .bind(tenant.id)
            .execute(salla.db())
            .await?;
    }
    match tenant.status {
        TenantStatus::Ready => {}
        TenantStatus::Suspended
            if tenant.suspended_reason.as_deref() == Some(UNINSTALLED_REASON) =>
        {
            // Reinstalled within the grace period: the same tenant, with its data, comes back.
            salla
                .lifecycle()
                .activate(&tenant.id.to_string(), &system())
                .await
                .map_err(JobError::retry)?;
            salla
                .lifecycle()
                .cancel_scheduled_deletion(tenant.id)
                .await?;
            tracing::info!(merchant = merchant.as_i64(), tenant_id = %tenant.id, "Salla app reinstalled: tenant reactivated");
            super::import::enqueue_full(salla.jobs(), tenant.id, merchant).await?;
            return Ok(());
        }
        // Provisioning enqueues onboarding again when the tenant is ready; suspensions by an operator and
        // failed or deleted tenants are left to operators.
        _ => return Ok(()),
    }
    if store.import_requested_at.is_none() {
        let first: Option<MerchantId> = sqlx::query_scalar(
            "UPDATE salla_stores SET import_requested_at = now() WHERE merchant_id = $1 \
             AND import_requested_at IS NULL RETURNING merchant_id",
        )
        .bind(merchant)
        .fetch_optional(salla.db())
        .await?;
        if first.is_some() {
            super::import::enqueue_full(salla.jobs(), tenant.id, merchant).await?;
        }
    }
    super::subscriptions::enqueue(salla, salla.jobs(), merchant).await?;
    Ok(())
}

/// Reads who owns the store and what it is, and registers its tenant (once: the merchant id is unique).
async fn register(salla: &Salla, merchant: MerchantId, access_token: &str) -> Result<(), JobError> {
    let user = salla
        .accounts()
        .user_info(access_token)
        .await
        .map_err(|e| JobError::retry(format!("oauth2/user/info: {e}")))?;
    let store = super::import::store_info(salla, merchant).await?;
    let name = store
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| Some(user.merchant.name.clone()).filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| format!("Salla store {merchant}"));
    let email = Some(user.email.clone())
        .filter(|e| e.contains('@'))
        .or_else(|| store.email.clone().filter(|e| e.contains('@')))
        .unwrap_or_else(|| format!("owner+salla-{merchant}@salla.invalid"));
    let plan = store.plan.clone().or_else(|| user.merchant.plan.clone());
    // The user behind the install's token is the installer: "Open App" by them is the owner (embedded app).
    let installer_id = i64::try_from(user.id).ok().filter(|id| *id > 0);
    sqlx::query(
        "UPDATE salla_stores SET store_name = $2, store_domain = $3, store_plan = $4, owner_email = $5, \
         owner_name = $6, rate_limit_per_minute = coalesce(rate_limit_per_minute, $7), \
         installer_user_id = $8, installer_name = $9, installer_email = $10, updated_at = now() \
         WHERE merchant_id = $1",
    )
    .bind(merchant)
    .bind(&name)
    .bind(store.domain.as_deref())
    .bind(plan.as_deref())
    .bind(&email)
    .bind(&user.name)
    .bind(salla.config().requests_per_minute(plan.as_deref()) as i32)
    .bind(installer_id)
    .bind(Some(user.name.trim()).filter(|n| !n.is_empty()))
    .bind(Some(user.email.trim()).filter(|e| e.contains('@')))
    .execute(salla.db())
    .await?;
    let slug = user
        .merchant
        .username
        .as_deref()
        .map(|u| u.trim().to_ascii_lowercase())
        .filter(|u| Slug::parse(u).is_ok());
    let mut request = RegistrationRequest {
        organization_name: name.chars().take(200).collect(),
        admin_email: email,
        plan: None,
        slug,
        locale: None,
        currency: store.currency.clone().filter(|c| c.len() == 3),
        timezone: None,
    };
    loop {
        let mut valid = match request.validate(salla.provisioner().config()) {
            Ok(valid) => valid,
            Err(fields) if request.currency.is_some() => {
                tracing::warn!(?fields, "store currency refused; using the default");
                request.currency = None;
                continue;
            }
            Err(fields) => {
                return Err(JobError::permanent(format!(
                    "cannot register store {merchant}: {fields:?}"
                )));
            }
        };
        valid.tenant.salla_merchant_id = Some(merchant);
        match salla
            .provisioner()
            .register(valid, None, "salla", None)
            .await
        {
            Ok(registered) => {
                sqlx::query("UPDATE salla_stores SET tenant_id = $2 WHERE merchant_id = $1")
                    .bind(merchant)
                    .bind(registered.tenant.id)
                    .execute(salla.db())
                    .await?;
                tracing::info!(merchant = merchant.as_i64(), tenant_id = %registered.tenant.id, "tenant registered for a Salla store");
                return Ok(());
            }
            Err(ProvisionError::Registry(RegistryError::Taken {
                field: "salla_merchant_id",
            })) => return Ok(()),
            Err(ProvisionError::Registry(RegistryError::Taken { field: "slug" }))
                if request.slug.is_some() =>
            {
                request.slug = None;
            }
            Err(error) => return Err(JobError::retry(error)),
        }
    }
}
