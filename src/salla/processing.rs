//! The `salla.delivery` job: applies one stored Salla webhook delivery. App events drive the install lifecycle
//! (`install`); store events are upserted into the merchant's tenant database (`crate::commerce`). Every effect is
//! idempotent and order-tolerant, so duplicates and redeliveries are harmless.

use serde::{Deserialize, Serialize};

use super::events::{self, EventKind, SallaEvent};
use super::service::Salla;
use crate::commerce;
use crate::inbox::{self, Outcome};
use crate::jobs::{Job, JobContext, JobError};
use crate::tenancy::{LookupKey, MerchantId, TenantStatus};

/// Applies the stored delivery `webhook_inbox.id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessDelivery {
    pub inbox_id: i64,
}

impl Job for ProcessDelivery {
    const KIND: &'static str = "salla.delivery";
}

pub(super) async fn run(salla: &Salla, ctx: &JobContext, inbox_id: i64) -> Result<(), JobError> {
    inbox::process(salla.db(), ctx, inbox_id, |row| async move {
        // The stored payload is the delivery's JSON; key order does not matter to the parser.
        let bytes = serde_json::to_vec(&row.payload)?;
        match events::parse(&bytes) {
            Ok(event) => dispatch(salla, &event).await,
            Err(error) => Err(JobError::permanent(format!(
                "the event does not parse: {error}"
            ))),
        }
    })
    .await
}

async fn dispatch(salla: &Salla, event: &SallaEvent) -> Result<Outcome, JobError> {
    let merchant = event.merchant();
    salla.touch_store(merchant).await?;
    match event.kind() {
        EventKind::StoreAuthorize(_)
        | EventKind::AppInstalled(_)
        | EventKind::AppUpdated(_)
        | EventKind::AppUninstalled(_)
        | EventKind::Trial { .. }
        | EventKind::Subscription { .. } => {
            super::install::app_event(salla, merchant, event.kind()).await
        }
        EventKind::Other => Ok(Outcome::Ignored(
            None,
            format!("event {} is not handled", event.name()),
        )),
        store_event => apply_store_event(salla, merchant, event.name(), store_event).await,
    }
}

/// Upserts a store event into the merchant's tenant database, once the tenant can take it.
async fn apply_store_event(
    salla: &Salla,
    merchant: MerchantId,
    name: &str,
    kind: &EventKind,
) -> Result<Outcome, JobError> {
    let tenant = salla
        .directory()
        .resolve(&LookupKey::SallaMerchant(merchant))
        .await
        .map_err(|e| JobError::retry(format!("tenant lookup: {e}")))?;
    let Some(tenant) = tenant else {
        // The install events that create the tenant may still be on their way.
        return Err(JobError::retry(format!(
            "no tenant for Salla store {merchant} yet"
        )));
    };
    match tenant.status {
        TenantStatus::Ready | TenantStatus::Suspended => {}
        TenantStatus::Pending | TenantStatus::Provisioning => {
            return Err(JobError::retry(format!(
                "tenant {} is {}; applied once it is ready",
                tenant.id, tenant.status
            )));
        }
        other => {
            return Ok(Outcome::Ignored(
                Some(tenant.id),
                format!("the tenant is {other}"),
            ));
        }
    }
    let pool = salla
        .pools()
        .get(&tenant)
        .await
        .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
    let mut tx = pool.begin().await?;
    let applied = commerce::apply_event(&mut tx, kind)
        .await
        .map_err(|e| JobError::retry(format!("applying {name}: {e}")))?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.id, merchant = merchant.as_i64(), event = name, applied = ?applied, "Salla event applied");
    Ok(Outcome::Processed(Some(tenant.id)))
}
