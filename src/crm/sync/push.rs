//! Pushing records to a workspace: `POST {base_url}/rest/batch/{namePlural}?upsert=true`, a JSON array of at
//! most 60 records (shared/reference/twenty.md §3.3, §4.1), with the tenant's API key. Twenty upserts on `id`
//! and on unique fields (`externalId`), so pushing the same record again is harmless.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::outbound::{Failure, RetryPolicy, retry_after, with_retries};

/// How many times a 429 is waited out before the batch counts as failed, and the longest wait honoured.
const RATE_LIMIT_RETRIES: u32 = 5;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("Twenty asked us to slow down (429)")]
    RateLimited,
    #[error("Twenty answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("Twenty unreachable: {0}")]
    Transport(String),
}

/// A workspace's REST endpoint and key. `Debug` never prints the key.
pub struct Workspace<'a> {
    pub http: &'a reqwest::Client,
    pub base_url: &'a str,
    pub api_key: &'a str,
}

impl Workspace<'_> {
    /// Upserts one batch, waiting out 429s (Retry-After, bounded). Other failures end the call: the batch
    /// stays in the outbox and the sync job retries it.
    pub async fn upsert_batch(&self, plural: &str, records: &[Value]) -> Result<(), PushError> {
        let url = format!(
            "{}/rest/batch/{plural}?upsert=true",
            self.base_url.trim_end_matches('/')
        );
        let policy = RetryPolicy::new(RATE_LIMIT_RETRIES, MAX_RETRY_AFTER);
        with_retries(&policy, "twenty", |_| self.push(&url, records)).await
    }

    async fn push(&self, url: &str, records: &[Value]) -> Result<(), Failure<PushError>> {
        let started = std::time::Instant::now();
        let response = self
            .http
            .post(url)
            .bearer_auth(self.api_key)
            .json(records)
            .send()
            .await
            .map_err(|e| Failure::Final(PushError::Transport(e.without_url().to_string())));
        metrics::histogram!("crm_sync_request_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let response = response?;
        let status = response.status();
        metrics::counter!("crm_sync_requests_total", "status" => status.as_u16().to_string())
            .increment(1);
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Retryable {
                error: PushError::RateLimited,
                retry_after: Some(retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER)),
            });
        }
        let body = response.text().await.unwrap_or_default();
        Err(Failure::Final(PushError::Status {
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        }))
    }
}
