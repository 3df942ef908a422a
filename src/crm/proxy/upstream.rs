//! The pooled HTTP client the proxy forwards with: hyper's own connection pool over plain TCP or rustls (the
//! platform's trust store, like every other client of ours), HTTP/1.1 keep-alive, no redirects, no proxies.
//!
//! Not reqwest, which the rest of the code base uses: per proxied request it re-parses the URL (IDNA included),
//! clones its connector stack and boxes the body twice, which cost about a tenth of the proxy's throughput. Here
//! the base URL is parsed once and bodies pass through as they are.

use std::error::Error as _;
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_http::timeout::TimeoutBody;

use crate::crm::BaseUrlError;

/// Idle keep-alive connections kept to Twenty: enough for the concurrency one replica sees in bursts.
const POOL_IDLE_PER_HOST: usize = 64;
/// Below Node's default `keepAliveTimeout` (5 s), so we never reuse a connection Twenty is about to close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why Twenty did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection in time, or no response headers within `proxy_timeout_secs` (the caller's timer).
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Failed(hyper_util::client::legacy::Error),
}

pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    scheme: Scheme,
    authority: Authority,
    /// The path of `crm.base_url` without its trailing slash ("" for a bare host), prefixed to every request.
    base_path: String,
    /// Longest wait for the next piece of a response body: a stalled stream is cut instead of hanging forever.
    read_timeout: Duration,
}

impl Upstream {
    /// A client for `base_url` (`http://` or `https://`).
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, BaseUrlError> {
        crate::outbound::install_crypto_provider();
        let uri: Uri = base_url.parse().map_err(BaseUrlError::NotAUrl)?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(BaseUrlError::NoHost);
        };
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(BaseUrlError::Scheme(scheme));
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT.min(timeout)));
        // The TLS wrapper below decides per scheme; the plain connector must let https URIs through to it.
        http.enforce_http(false);
        let tls = <rustls::ClientConfig as rustls_platform_verifier::ConfigVerifierExt>::with_platform_verifier()
            .map_err(BaseUrlError::TlsRoots)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .build(connector);
        Ok(Self {
            client,
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            read_timeout: timeout,
        })
    }

    /// The URI of `path` (starting with `/`) and `query` on Twenty.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let path_and_query = match query {
            Some(query) => format!("{}{path}?{query}", self.base_path),
            None => format!("{}{path}", self.base_path),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path_and_query).ok()?)
            .build()
            .ok()
    }

    /// Sends `request` and waits up to `timeout` for the response headers; the body then streams, each piece
    /// within the read timeout.
    pub async fn send(
        &self,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, UpstreamError> {
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|error| {
                if is_timeout(&error) {
                    UpstreamError::Timeout
                } else {
                    UpstreamError::Failed(error)
                }
            })?;
        let read_timeout = self.read_timeout;
        Ok(response.map(|body| Body::new(TimeoutBody::new(read_timeout, body))))
    }
}

/// A connect timeout surfaces as an I/O error of kind `TimedOut` somewhere in the error's sources.
fn is_timeout(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(base_url: &str) -> Upstream {
        Upstream::new(base_url, Duration::from_secs(1)).expect("valid base URL")
    }

    #[tokio::test]
    async fn paths_are_appended_to_the_base_url() {
        let bare = upstream("http://twenty:3000/");
        assert_eq!(
            bare.uri("/rest/people", Some("limit=5")).expect("uri"),
            "http://twenty:3000/rest/people?limit=5"
        );
        let prefixed = upstream("https://crm.example.com/twenty/");
        assert_eq!(
            prefixed.uri("/graphql", None).expect("uri"),
            "https://crm.example.com/twenty/graphql"
        );
    }

    #[tokio::test]
    async fn base_urls_without_a_host_or_with_another_scheme_are_refused() {
        for bad in ["twenty:3000", "/rest", "ftp://twenty", "not a url"] {
            assert!(
                Upstream::new(bad, Duration::from_secs(1)).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[tokio::test]
    async fn query_strings_that_are_not_valid_uris_yield_none() {
        assert!(
            upstream("http://twenty:3000")
                .uri("/rest/people", Some("a b"))
                .is_none()
        );
    }
}
