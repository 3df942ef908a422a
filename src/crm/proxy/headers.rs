//! Which headers cross the proxy. Towards Twenty: the caller's own credentials never (Twenty authenticates the
//! tenant's workspace API key, injected by the proxy), nor hop-by-hop headers, nor client-supplied forwarding
//! headers. Back to the caller: no hop-by-hop headers and no cookies.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1), plus the non-standard ones still seen in the wild.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The headers sent to Twenty: the caller's, minus credentials, hop-by-hop and forwarding headers, plus the
/// tenant's workspace key.
pub fn upstream_request(incoming: &HeaderMap, authorization: HeaderValue) -> HeaderMap {
    let connection_listed = connection_listed(incoming);
    let mut headers = HeaderMap::with_capacity(incoming.len() + 1);
    for (name, value) in incoming {
        if is_hop_by_hop(name, &connection_listed) || is_caller_only(name) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers.insert(header::AUTHORIZATION, authorization);
    headers
}

/// The headers returned to the caller: Twenty's, minus hop-by-hop headers, cookies and its request id (the
/// response carries ours).
pub fn downstream_response(upstream: &HeaderMap) -> HeaderMap {
    let connection_listed = connection_listed(upstream);
    let mut headers = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if is_hop_by_hop(name, &connection_listed)
            || name == header::SET_COOKIE
            || name == crate::http::REQUEST_ID
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers
}

/// Headers named in `Connection` are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

fn is_hop_by_hop(name: &HeaderName, connection_listed: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(name) || connection_listed.contains(name)
}

/// Credentials of the caller (ours or anyone's), and what the caller must not decide for Twenty: the host and
/// forwarding headers.
fn is_caller_only(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "authorization"
            | "cookie"
            | "host"
            | "x-tenant-id"
            | "x-admin-key"
            | "forwarded"
            | "x-real-ip"
    ) || name.starts_with("x-forwarded-")
        || name.ends_with("api-key")
        || name.ends_with("apikey")
        || name.ends_with("-token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn caller_credentials_and_hop_by_hop_headers_do_not_reach_twenty() {
        let incoming = map(&[
            ("authorization", "Bearer wsl_caller"),
            ("cookie", "__session=abc"),
            ("x-api-key", "wsl_caller"),
            ("x-tenant-id", "t"),
            ("x-twenty-api-key", "k"),
            ("x-auth-token", "k"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("x-forwarded-for", "1.2.3.4"),
            ("host", "wosool.example"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("x-request-id", "req-1"),
        ]);
        let out = upstream_request(&incoming, HeaderValue::from_static("Bearer twenty"));
        let names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["content-type", "accept", "x-request-id", "authorization"]
        );
        assert_eq!(out.get_all("authorization").iter().count(), 1);
        assert_eq!(out["authorization"], "Bearer twenty");
    }

    #[test]
    fn cookies_and_hop_by_hop_headers_do_not_reach_the_caller() {
        let upstream = map(&[
            ("set-cookie", "tokenPair=secret"),
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("x-request-id", "theirs"),
            ("content-type", "application/json"),
            ("content-length", "2"),
        ]);
        let out = downstream_response(&upstream);
        let names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "content-length"]);
    }
}
