//! The shared limiter: one Lua script (`gcra.lua`) checks and updates every key of a request atomically on
//! Redis's clock, so all replicas draw on the same limits. Loaded once with SCRIPT LOAD and run with EVALSHA;
//! a server that lost its script cache (restart, SCRIPT FLUSH) answers NOSCRIPT and gets the script with EVAL,
//! which caches it again.

use std::sync::OnceLock;
use std::time::Duration;

use fred::prelude::*;

use super::LimitKey;
use super::gcra::{Decision, Quota};
use crate::redis::Redis;

const SCRIPT: &str = include_str!("gcra.lua");

/// Why Redis could not decide; the caller falls back to the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not connected")]
    NotConnected,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    #[error("unexpected script answer of {0} values")]
    Malformed(usize),
}

/// What one key of a request asks of the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Requests wanted: 1, or more for a lease (`lease.rs`).
    pub want: u32,
    /// Unused requests of an expired lease, credited back.
    pub refund: u32,
}

impl Ask {
    pub const ONE: Self = Self { want: 1, refund: 0 };
}

pub struct RedisStore {
    redis: Redis,
    /// The script's SHA-1, once SCRIPT LOAD has answered.
    sha: OnceLock<String>,
    timeout: Duration,
}

impl RedisStore {
    pub fn new(redis: Redis, timeout: Duration) -> Self {
        Self {
            redis,
            sha: OnceLock::new(),
            timeout,
        }
    }

    /// Checks every key of one request, within the command timeout: for each key, the decision and how many
    /// requests it granted (`ask.want` at most; 0 when refused).
    pub async fn check(
        &self,
        limits: &[(LimitKey, Quota, Ask)],
    ) -> Result<Vec<(Decision, u32)>, StoreError> {
        // A client that is reconnecting would queue the command; answer from the fallback at once instead.
        if !self.redis.client().is_connected() {
            return Err(StoreError::NotConnected);
        }
        let keys: Vec<String> = limits
            .iter()
            .map(|(key, _, _)| self.redis.key(&key.redis_suffix()))
            .collect();
        let args: Vec<i64> = limits
            .iter()
            .flat_map(|(_, quota, ask)| {
                [
                    quota.interval_us,
                    quota.tolerance_us,
                    i64::from(ask.want),
                    i64::from(ask.refund),
                ]
            })
            .collect();
        let answer = tokio::time::timeout(self.timeout, self.run(keys, args))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        if answer.len() != limits.len() * 3 {
            return Err(StoreError::Malformed(answer.len()));
        }
        Ok(limits
            .iter()
            .zip(answer.chunks_exact(3))
            .map(|((_, quota, _), values)| {
                let granted = u32::try_from(values[0]).unwrap_or(0);
                (
                    Decision::from_parts(quota, granted > 0, values[1], values[2]),
                    granted,
                )
            })
            .collect())
    }

    async fn run(&self, keys: Vec<String>, args: Vec<i64>) -> Result<Vec<i64>, fred::error::Error> {
        let client = self.redis.client();
        let sha = match self.sha.get() {
            Some(sha) => sha.clone(),
            None => {
                let sha: String = client.script_load(SCRIPT).await?;
                self.sha.get_or_init(|| sha).clone()
            }
        };
        match client.evalsha(sha, keys.clone(), args.clone()).await {
            Err(error) if error.details().starts_with("NOSCRIPT") => {
                client.eval(SCRIPT, keys, args).await
            }
            answer => answer,
        }
    }
}
