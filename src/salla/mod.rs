//! Salla: the app-store install that creates a tenant, signed webhooks through the durable inbox, OAuth tokens
//! (sealed at rest, single-use refresh tokens never raced), the Merchant API client, the history import and
//! live sync into the tenant database (shared/reference/salla.md).

pub mod accounts;
pub mod api;
pub mod details;
pub mod events;
pub mod import;
pub mod install;
pub mod limits;
pub mod model;
pub mod processing;
pub mod routes;
mod service;
pub mod store_status;
pub mod subscriptions;
pub mod tokens;
pub mod webhook;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::tenancy::MerchantId;
pub use service::Salla;

use crate::core::Core;
use crate::jobs::{Job, JobError, NewJob, Registry};
use crate::outbound::ClientError;
use crate::provisioning::lifecycle::TenantLifecycle;

/// Builds the Salla service when the app is configured (`salla.client_id`); `Ok(None)` otherwise.
pub fn build(core: &Core, lifecycle: TenantLifecycle) -> Result<Option<Salla>, ClientError> {
    let config = &core.config().salla;
    if !config.enabled() {
        return Ok(None);
    }
    let accounts = accounts::AccountsApi::new(config)?;
    let limits = limits::SallaLimits::new(config, core.redis().cloned());
    let api = api::MerchantApi::new(config, limits)?;
    let tokens = tokens::TokenStore::new(
        core.db().clone(),
        core.keyring().clone(),
        accounts.clone(),
        config.refresh_window_secs,
    );
    Ok(Some(Salla::new(
        core.clone(),
        lifecycle,
        tokens,
        accounts,
        api,
    )))
}

/// Refreshes the tokens of every store whose access token expires within `salla.refresh_window_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshSweep {}

impl Job for RefreshSweep {
    const KIND: &'static str = "salla.refresh_sweep";
}

/// Starts a re-scan of every installed store whose tenant is ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResyncSweep {}

impl Job for ResyncSweep {
    const KIND: &'static str = "salla.resync_sweep";
}

/// Registers the Salla jobs and their periodic schedules.
pub fn register_jobs(registry: &mut Registry, salla: Salla) -> Result<(), serde_json::Error> {
    let s = salla.clone();
    registry.register(move |ctx, job: processing::ProcessDelivery| {
        let s = s.clone();
        async move { processing::run(&s, &ctx, job.inbox_id).await }
    });
    let s = salla.clone();
    registry.register(move |_ctx, job: install::Onboard| {
        let s = s.clone();
        async move { install::onboard(&s, job.merchant_id).await }
    });
    let s = salla.clone();
    registry.register(move |ctx, job: import::ImportResource| {
        let s = s.clone();
        async move { import::run(&s, &ctx, &job).await }
    });
    let s = salla.clone();
    registry.register(move |ctx, job: details::FetchOrderDetails| {
        let s = s.clone();
        async move { details::run(&s, &ctx, &job).await }
    });
    let s = salla.clone();
    registry.register(move |_ctx, job: subscriptions::EnsureWebhooks| {
        let s = s.clone();
        async move { subscriptions::ensure(&s, job.merchant_id).await.map(drop) }
    });
    let s = salla.clone();
    registry.register(move |_ctx, _job: RefreshSweep| {
        let s = s.clone();
        async move { refresh_sweep(&s).await }
    });
    let s = salla.clone();
    registry.register(move |_ctx, _job: ResyncSweep| {
        let s = s.clone();
        async move { resync_sweep(&s).await }
    });
    let config = salla.config();
    registry.periodic(
        "salla token refresh",
        Duration::from_secs(config.refresh_sweep_secs),
        NewJob::new(&RefreshSweep {})?,
    );
    registry.periodic(
        "salla re-scan",
        Duration::from_secs(config.resync_interval_secs),
        NewJob::new(&ResyncSweep {})?,
    );
    Ok(())
}

async fn refresh_sweep(salla: &Salla) -> Result<(), JobError> {
    let due = salla
        .tokens()
        .expiring(500)
        .await
        .map_err(JobError::retry)?;
    let mut failed = 0;
    for (merchant, version) in &due {
        if let Err(error) = salla.tokens().refresh(*merchant, *version).await {
            failed += 1;
            tracing::warn!(merchant = merchant.as_i64(), error = %error, "proactive Salla token refresh failed");
        }
    }
    tracing::info!(due = due.len(), failed, "Salla token refresh sweep done");
    Ok(())
}

async fn resync_sweep(salla: &Salla) -> Result<(), JobError> {
    let stores: Vec<(MerchantId, crate::tenancy::TenantId)> = sqlx::query_as(concat!(
        "SELECT s.merchant_id, s.tenant_id FROM salla_stores s WHERE s.status = 'installed' AND ",
        crate::tenancy::registry::tenant_sql!(ready "s.tenant_id")
    ))
    .fetch_all(salla.db())
    .await?;
    for (merchant, tenant) in &stores {
        import::enqueue_full(salla.jobs(), *tenant, *merchant).await?;
        subscriptions::enqueue(salla, salla.jobs(), *merchant).await?;
    }
    tracing::info!(stores = stores.len(), "Salla re-scan enqueued");
    Ok(())
}
