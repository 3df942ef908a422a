//! `Salla`: the handle the Salla jobs share — tokens, the Salla API clients, and the tenancy services they
//! drive. Cheap to clone.

use std::sync::Arc;

use sqlx::PgPool;

use super::accounts::AccountsApi;
use super::api::MerchantApi;
use super::tokens::{TokenStore, ensure_row};
use crate::config::SallaConfig;
use crate::core::Core;
use crate::jobs::JobQueue;
use crate::provisioning::Provisioner;
use crate::provisioning::lifecycle::TenantLifecycle;
use crate::tenancy::{MerchantId, TenantDirectory, TenantPools};

#[derive(Clone)]
pub struct Salla {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    lifecycle: TenantLifecycle,
    tokens: TokenStore,
    accounts: AccountsApi,
    api: MerchantApi,
}

impl Salla {
    pub fn new(
        core: Core,
        lifecycle: TenantLifecycle,
        tokens: TokenStore,
        accounts: AccountsApi,
        api: MerchantApi,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                core,
                lifecycle,
                tokens,
                accounts,
                api,
            }),
        }
    }

    pub fn config(&self) -> &SallaConfig {
        &self.inner.core.config().salla
    }

    pub fn lifecycle(&self) -> &TenantLifecycle {
        &self.inner.lifecycle
    }

    pub fn provisioner(&self) -> &Provisioner {
        self.inner.lifecycle.provisioner()
    }

    pub fn db(&self) -> &PgPool {
        self.inner.core.db()
    }

    pub fn jobs(&self) -> &JobQueue {
        self.inner.core.jobs()
    }

    pub fn directory(&self) -> &TenantDirectory {
        self.inner.core.directory()
    }

    pub fn pools(&self) -> &TenantPools {
        self.inner.core.pools()
    }

    pub fn tokens(&self) -> &TokenStore {
        &self.inner.tokens
    }

    pub fn accounts(&self) -> &AccountsApi {
        &self.inner.accounts
    }

    pub fn api(&self) -> &MerchantApi {
        &self.inner.api
    }

    /// Creates the store's row if needed and records that it sent an event now.
    pub async fn touch_store(&self, merchant: MerchantId) -> Result<(), sqlx::Error> {
        let mut conn = self.db().acquire().await?;
        ensure_row(&mut conn, merchant).await?;
        sqlx::query("UPDATE salla_stores SET last_event_at = now() WHERE merchant_id = $1")
            .bind(merchant)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
