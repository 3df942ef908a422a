//! The optional Redis connection. Redis is never the only copy of anything: without it every feature works on
//! one node, so it is `Option<Redis>` everywhere.

use std::time::Duration;

use fred::prelude::*;

use crate::config::RedisConfig;

/// A connected Redis client plus the deployment's key prefix. Build keys with [`Redis::key`] so every key is
/// namespaced (tests share one server through distinct prefixes).
#[derive(Clone)]
pub struct Redis {
    client: Client,
    prefix: String,
}

impl Redis {
    /// Connects when `redis.url` is set; `Ok(None)` when Redis is not configured.
    pub async fn connect(config: &RedisConfig) -> Result<Option<Self>, fred::error::Error> {
        if config.url.is_empty() {
            return Ok(None);
        }
        let redis_config = fred::types::config::Config::from_url(config.url.expose())?;
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = Builder::from_config(redis_config)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()?;
        client.init().await?;
        Ok(Some(Self {
            client,
            prefix: config.key_prefix.clone(),
        }))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `<prefix>:<suffix>`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// Round trip used by the readiness check.
    pub async fn ping(&self) -> Result<(), fred::error::Error> {
        self.client.ping::<()>(None).await
    }

    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}
