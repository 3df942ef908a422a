//! The client's IP address, for per-IP rate limits, connection caps and audit records.
//!
//! The peer of the TCP connection is the client, unless that peer is one of `server.trusted_proxies` (Traefik
//! in the compose file): then the client is the rightmost address of `X-Forwarded-For` that is not itself a
//! trusted proxy. Addresses a client writes into `X-Forwarded-For` itself sit to the left of the ones our
//! proxies append, so they are never believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::AppState;

/// The parsed `server.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Entries are IPs or CIDR blocks; config validation has already refused anything else.
    pub fn parse(entries: &[String]) -> Self {
        Self(entries.iter().filter_map(|e| parse_net(e)).collect())
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For` values (in order).
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                // Garbage in the chain: stop at the last address we could trust.
                Err(_) => break,
            }
        }
        client
    }
}

/// `10.0.0.0/8` or a bare address (a /32 or /128).
pub fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The client's address; `None` only when the request did not come through a socket (in-process calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    pub fn of(parts: &Parts, trusted: &TrustedProxies) -> Self {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Self(None);
        };
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>();
        Self(Some(trusted.client(peer.ip(), &forwarded)))
    }

    /// For logs, audit rows and rate-limit keys: the address, or `unknown`.
    pub fn label(&self) -> String {
        self.0
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts, state.trusted_proxies()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]);
        assert_eq!(
            trusted.client(ip("203.0.113.9"), &["1.2.3.4"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]);
        // The client forged 1.2.3.4; Traefik (10.0.0.2) appended the real client 198.51.100.5.
        let client = trusted.client(ip("10.0.0.2"), &["1.2.3.4, 198.51.100.5", "192.0.2.7"]);
        assert_eq!(client, ip("198.51.100.5"));
        assert_eq!(trusted.client(ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &["junk, 10.1.1.1"]),
            ip("10.1.1.1")
        );
    }
}
