//! Gauges sampled on a timer rather than recorded where things happen: the registry's tenants by status, Salla
//! stores by token status, whether Redis answers, the tenant connection budget, and the backups' age.
//! Each replica samples the same shared numbers; dashboards and alerts take `max` across instances.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::redis::Redis;
use crate::tenancy::TenantPools;

/// What the loop samples.
#[derive(Clone)]
pub struct FleetGauges {
    pub db: PgPool,
    pub redis: Option<Redis>,
    pub pools: TenantPools,
    /// Backups are on (`backup.enabled`): their age and failing tenants, from the history.
    pub backups: bool,
}

/// Salla store statuses (`salla_stores.status`), each reported even at 0 so that an alert on one resolves.
const STORE_STATUSES: [&str; 4] = ["pending", "installed", "needs_reinstall", "uninstalled"];

impl FleetGauges {
    /// Samples every `every` until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            self.sample().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    pub async fn sample(&self) {
        crate::tenancy::record_status_gauges(&self.db).await;
        self.record_store_gauges().await;
        if let Some(redis) = &self.redis {
            // The client's command timeout (redis.timeout_secs) bounds the round trip.
            let up = redis.ping().await.is_ok();
            metrics::gauge!("redis_up").set(if up { 1.0 } else { 0.0 });
        }
        self.pools.publish_gauges();
        if self.backups {
            crate::backup::run::publish_history_gauges(&self.db).await;
        }
    }

    /// Stores by status. An installed store without tokens is counted as `needs_reinstall`, as the merchant
    /// app shows it (`StoreStatus::needs_reinstall`).
    async fn record_store_gauges(&self) {
        let rows = sqlx::query_as::<_, (String, i64)>(
            "SELECT CASE WHEN status = 'installed' AND access_token IS NULL THEN 'needs_reinstall' \
                         ELSE status END, count(*) \
             FROM salla_stores GROUP BY 1",
        )
        .fetch_all(&self.db)
        .await;
        match rows {
            Ok(rows) => {
                for status in STORE_STATUSES {
                    let count = rows
                        .iter()
                        .find(|(s, _)| s == status)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!("salla_stores", "status" => status).set(count as f64);
                }
            }
            Err(error) => tracing::debug!(error = %error, "cannot refresh store gauges"),
        }
    }
}
