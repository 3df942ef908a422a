//! One kit for every call we make to another service (Salla, Clerk, Twenty): the HTTP client they are built
//! from (TLS provider installed once, our user agent, connect and request timeouts), `Retry-After`, and the
//! backoff schedule. Each integration keeps only what is its own: which answers are retryable, and how a
//! throttle is shared (Salla's per-store budget).

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How long establishing a connection may take, whatever the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The backoff schedule of failed calls, as data: `base · 2^(attempt-1)`, capped at `max`, with ±25% jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// The schedule every outbound client uses: 200 ms, 400 ms, 800 ms, … up to 5 s.
pub const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    max: Duration::from_secs(5),
};

impl Backoff {
    /// The wait before retry `attempt` (1-based), jittered.
    pub fn wait(&self, attempt: u32) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter = rand::rng().random_range(0.75..1.25);
        doubled.min(self.max).mul_f64(jitter)
    }
}

/// rustls needs one process-wide crypto provider (ring); installing it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for one service: `timeout` per request, connections within 5 s, our user agent.
pub fn client(service: &'static str, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("wosool/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| ClientError { service, source })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for {service}: {source}")]
pub struct ClientError {
    pub service: &'static str,
    #[source]
    pub source: reqwest::Error,
}

/// `Retry-After` as seconds (fractions accepted; the HTTP-date form is used by none of our services).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The wait before retry `attempt` (1-based) of a failed call, on the standard schedule.
pub fn backoff(attempt: u32) -> Duration {
    BACKOFF.wait(attempt)
}

/// A server-requested wait plus up to 10% (at most 5 s) of jitter, so throttled callers don't come back in
/// lockstep.
pub fn with_jitter(wait: Duration) -> Duration {
    let spread = (wait / 10).min(Duration::from_secs(5));
    wait + spread.mul_f64(rand::rng().random_range(0.0..1.0))
}

/// The retry bounds of one client: how many retries, the backoff schedule, and the longest server-requested
/// wait we honour (a longer `Retry-After` ends the call; the caller's job retries later instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Backoff,
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32, max_retry_after: Duration) -> Self {
        Self {
            max_retries,
            backoff: BACKOFF,
            max_retry_after,
        }
    }

    /// The wait before the next attempt after attempt `attempt` (1-based) failed retryably; `None` when the
    /// retries are spent or the server asked for longer than `max_retry_after`.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt > self.max_retries {
            return None;
        }
        match retry_after {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(with_jitter(wait)),
            None => Some(self.backoff.wait(attempt)),
        }
    }
}

/// Why an attempt failed, as the retry loop needs to know it.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another attempt; `retry_after` is the server's requested wait, if it named one.
    Retryable {
        error: E,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (a refusal, or a request that may have acted and is not idempotent).
    Final(E),
}

/// The one retry loop: runs `attempt(n)` (n from 1) until it succeeds, fails for good, or `policy` says
/// stop; each retry waits the server's `Retry-After` or the backoff. `service` names the callee in logs.
pub async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    service: &'static str,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let mut n = 0u32;
    loop {
        n += 1;
        let (error, retry_after) = match attempt(n).await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Retryable { error, retry_after }) => (error, retry_after),
        };
        let Some(wait) = policy.wait(n, retry_after) else {
            return Err(error);
        };
        tracing::warn!(service, attempt = n, error = %error, retry_in_ms = wait.as_millis() as u64, "call failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_doubles_up_to_its_cap_with_jitter() {
        for (attempt, nominal) in [(1, 200), (2, 400), (3, 800), (6, 5_000), (30, 5_000)] {
            let wait = backoff(attempt).as_millis() as f64;
            assert!(
                (nominal as f64 * 0.75..=nominal as f64 * 1.25).contains(&wait),
                "attempt {attempt}: {wait} ms"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_refuses_the_rest() {
        let header = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, v.parse().unwrap());
            headers
        };
        assert_eq!(retry_after(&header("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&header(" 1.5 ")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(retry_after(&header("-1")), None);
        assert_eq!(retry_after(&header("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
        let jittered = with_jitter(Duration::from_secs(10));
        assert!(jittered >= Duration::from_secs(10) && jittered <= Duration::from_secs(11));
    }

    #[tokio::test]
    async fn the_loop_retries_what_is_retryable_within_the_policy() {
        let policy = RetryPolicy {
            max_retries: 2,
            backoff: Backoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(1),
            },
            max_retry_after: Duration::from_secs(30),
        };
        let mut calls = 0;
        let result: Result<(), &str> = with_retries(&policy, "test", |_| {
            calls += 1;
            async {
                Err(Failure::Retryable {
                    error: "busy",
                    retry_after: None,
                })
            }
        })
        .await;
        assert_eq!(
            (result, calls),
            (Err("busy"), 3),
            "one call and two retries"
        );

        let mut calls = 0;
        let result: Result<u32, &str> = with_retries(&policy, "test", |n| {
            calls += 1;
            async move {
                if n == 1 {
                    Err(Failure::Retryable {
                        error: "slow down",
                        retry_after: Some(Duration::from_millis(10)),
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!((result, calls), (Ok(2), 2));

        let mut calls = 0;
        let result: Result<(), &str> = with_retries(&policy, "test", |_| {
            calls += 1;
            async { Err(Failure::Final("refused")) }
        })
        .await;
        assert_eq!(
            (result, calls),
            (Err("refused"), 1),
            "a final failure is not retried"
        );

        let mut calls = 0;
        let result: Result<(), &str> = with_retries(&policy, "test", |_| {
            calls += 1;
            async {
                Err(Failure::Retryable {
                    error: "come back in an hour",
                    retry_after: Some(Duration::from_secs(3600)),
                })
            }
        })
        .await;
        assert_eq!(
            (result, calls),
            (Err("come back in an hour"), 1),
            "a wait beyond max_retry_after ends the call"
        );
    }
}
