//! Serving a router over HTTP/1.1: our own accept loop on hyper, for what `axum::serve` cannot be told.
//!
//! - **Header-read timeout**: a connection that has not sent complete request headers within
//!   `server.header_read_timeout_secs` is closed; hyper starts the clock when it starts reading a request head,
//!   so it also bounds the idle time between keep-alive requests.
//! - **Per-IP connection cap**: at most `server.max_connections_per_ip` open connections per peer IP (the
//!   socket's peer, not `X-Forwarded-For`); the next is closed at once and counted in
//!   `http_connections_refused_total{reason="per_ip_limit"}`.
//! - **Header limits as JSON**: hyper's own limits are set above `server.max_request_headers` /
//!   `server.max_request_header_bytes`, so a request over ours reaches the middleware and is answered `431`
//!   `headers_too_large` with the envelope (`super::observe`); hyper's empty 431 remains only as a backstop.
//! - Everything `axum::serve` did: `ConnectInfo<SocketAddr>` on every request (for `ClientIp`), and graceful
//!   shutdown: stop accepting, let in-flight requests finish for at most the drain timeout, then close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ServerConfig;

/// How connections are served (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long in-flight requests may finish after shutdown begins.
    pub drain: Duration,
    pub header_read_timeout: Duration,
    /// 0: no cap.
    pub max_connections_per_ip: usize,
    /// Our limits (answered by the middleware); hyper's backstops are set above them.
    pub max_request_headers: usize,
    pub max_request_header_bytes: usize,
}

impl ServeOptions {
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            drain: Duration::from_secs(server.shutdown_timeout_secs),
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            max_connections_per_ip: server.max_connections_per_ip,
            max_request_headers: server.max_request_headers,
            max_request_header_bytes: server.max_request_header_bytes,
        }
    }

    /// hyper's own header limits: far enough above ours that the middleware answers, low enough to bound
    /// what a connection can make us buffer.
    fn hyper_builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(self.max_request_headers.saturating_mul(2).max(101))
            .max_header_size(
                self.max_request_header_bytes
                    .saturating_mul(2)
                    .max(MIN_HYPER_HEADER_BYTES),
            );
        builder
    }
}

/// hyper's header-bytes backstop is never below this.
const MIN_HYPER_HEADER_BYTES: usize = 16 * 1024;

/// Serves until `shutdown` is cancelled, then stops accepting and lets in-flight requests finish for at most
/// `options.drain`; connections still open after that are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> std::io::Result<()> {
    let builder = Arc::new(options.hyper_builder());
    let counts = ConnectionCounts::default();
    let connections = TaskTracker::new();
    // Cancelled when the drain timeout is over: every connection still open is dropped (closed).
    let force_close = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        let Some(slot) = counts.take(peer.ip(), options.max_connections_per_ip) else {
            metrics::counter!("http_connections_refused_total", "reason" => "per_ip_limit")
                .increment(1);
            tracing::debug!(peer = %peer, "connection refused: per-IP connection cap reached");
            drop(stream);
            continue;
        };
        // Small responses go out at once rather than waiting for Nagle.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let (builder, shutdown, force_close) =
            (builder.clone(), shutdown.clone(), force_close.clone());
        connections.spawn(async move {
            let _slot = slot;
            let connection =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight (if any), then close.
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        result = connection.as_mut() => result,
                        _ = force_close.cancelled() => Ok(()),
                    }
                }
            };
            if let Err(error) = result {
                connection_error(&error);
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(options.drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_secs = options.drain.as_secs(),
            "requests still in flight after the drain timeout; closing"
        );
        force_close.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Accept errors are about one connection (reset before accepted) or resources (too many open files): the
/// former are skipped, the latter waited out briefly rather than spinning.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn connection_error(error: &hyper::Error) {
    if error.is_timeout() {
        metrics::counter!("http_connections_closed_total", "reason" => "header_timeout")
            .increment(1);
        tracing::debug!("connection closed: request headers not received in time");
    } else {
        tracing::debug!(error = %error, "connection ended with an error");
    }
}

/// Open connections per peer IP.
#[derive(Default, Clone)]
struct ConnectionCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl ConnectionCounts {
    /// A slot for one more connection from `ip`, unless it already has `cap` (0: no cap).
    fn take(&self, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if cap != 0 && *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One open connection of an IP; gives its place back when dropped.
struct Slot {
    counts: ConnectionCounts,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_ip_cap_counts_open_connections_only() {
        let counts = ConnectionCounts::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = counts.take(a, 2).expect("first");
        let _second = counts.take(a, 2).expect("second");
        assert!(counts.take(a, 2).is_none(), "third from the same IP");
        assert!(counts.take(b, 2).is_some(), "another IP has its own count");
        drop(first);
        assert!(
            counts.take(a, 2).is_some(),
            "a closed connection frees its place"
        );
        assert!(counts.take(a, 0).is_some(), "0 means no cap");
    }

    #[test]
    fn freed_ips_are_forgotten() {
        let counts = ConnectionCounts::default();
        let slot = counts.take("::1".parse().unwrap(), 1).unwrap();
        drop(slot);
        assert!(counts.0.lock().unwrap().is_empty());
    }
}
