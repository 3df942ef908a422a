//! `[server]` (the HTTP listeners, timeouts and CORS) and `[admin]` (the admin API's keys), with their
//! validation.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    pub request_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub cors_allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<String>,
    /// A connection that has not sent complete request headers within this long is closed.
    pub header_read_timeout_secs: u64,
    /// Open connections per peer IP; 0: no cap.
    pub max_connections_per_ip: usize,
    /// More request headers than this → 431 `headers_too_large`.
    pub max_request_headers: usize,
    /// Request headers larger than this in total (names, values) → 431 `headers_too_large`.
    pub max_request_header_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub api_keys: Vec<Secret>,
}

impl ServerConfig {
    /// The listen addresses (checked first).
    pub(super) fn validate_addresses(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if self.listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.listen",
                format!("{:?} is not a socket address", self.listen),
                "host:port such as 0.0.0.0:8080",
            );
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.metrics_listen",
                format!("{:?} is not a socket address", self.metrics_listen),
                "empty or host:port such as 127.0.0.1:9100",
            );
        }
    }

    /// Settings that must not be 0 (checked with the other sections', in `Config::validate`).
    pub(super) fn positive_settings(&self) -> [(&'static str, u64); 3] {
        [
            ("server.request_timeout_secs", self.request_timeout_secs),
            ("server.body_limit_bytes", self.body_limit_bytes as u64),
            (
                "server.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
        ]
    }

    /// Header limits so low that ordinary requests would be refused are a mistake, not a policy.
    pub(super) fn validate_header_limits(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if self.max_request_headers < 16 {
            problem(
                "server.max_request_headers",
                format!("is {}", self.max_request_headers),
                "at least 16 (browsers send about 15 headers)",
            );
        }
        if self.max_request_header_bytes < 4096 {
            problem(
                "server.max_request_header_bytes",
                format!("is {}", self.max_request_header_bytes),
                "at least 4096 (a session cookie alone may take 4 KiB)",
            );
        }
    }

    pub(super) fn validate_proxies(&self, problem: &mut impl FnMut(&str, String, &str)) {
        for entry in &self.trusted_proxies {
            if crate::http::client_ip::parse_net(entry).is_none() {
                problem(
                    "server.trusted_proxies",
                    format!("{entry:?} is neither an IP address nor a CIDR block"),
                    "addresses or blocks such as \"10.0.0.0/8\" or \"172.16.0.1\"",
                );
            }
        }
    }

    pub(super) fn validate_origins(&self, problem: &mut impl FnMut(&str, String, &str)) {
        for origin in &self.cors_allowed_origins {
            if origin != "*" && origin.parse::<http::HeaderValue>().is_err() {
                problem(
                    "server.cors_allowed_origins",
                    format!("{origin:?} is not a valid origin"),
                    "\"*\" or origins such as \"https://app.example.com\"",
                );
            }
        }
    }
}

impl AdminConfig {
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.expose().len() < 16 {
                problem(
                    &format!("admin.api_keys[{i}]"),
                    "is shorter than 16 characters".into(),
                    "a random key of at least 16 characters (e.g. `openssl rand -hex 32`)",
                );
            }
        }
    }
}
