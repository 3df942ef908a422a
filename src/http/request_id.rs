//! The client's `X-Request-Id` is kept only when it is 1–64 characters of `[A-Za-z0-9._:-]`; anything else
//! (too long, quotes, tabs, non-ASCII, repeated) is dropped before tower-http's `SetRequestIdLayer`, which then
//! generates a UUID. So the envelope, log spans, audit rows and the echoed header all see one safe id.

use std::task::{Context, Poll};

use axum::http::Request;
use tower::{Layer, Service};

use super::REQUEST_ID;

/// Longest request id accepted from a client.
pub const MAX_LEN: usize = 64;

/// Whether a client's request id may be used as is.
pub fn acceptable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Drops an unacceptable `X-Request-Id` (see the module docs); goes just outside `SetRequestIdLayer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SanitizeRequestIdLayer;

impl<S> Layer<S> for SanitizeRequestIdLayer {
    type Service = SanitizeRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SanitizeRequestId { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SanitizeRequestId<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for SanitizeRequestId<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let headers = request.headers_mut();
        let mut ids = headers.get_all(&REQUEST_ID).iter();
        let keep = match (ids.next(), ids.next()) {
            (None, _) => true,
            (Some(id), None) => acceptable(id.as_bytes()),
            // Two ids: which one would be "the" id is a guess; neither is used.
            (Some(_), Some(_)) => false,
        };
        if !keep {
            headers.remove(&REQUEST_ID);
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptable_ids() {
        assert!(acceptable(b"req-1"));
        assert!(acceptable(b"a.B_c:d-9"));
        assert!(acceptable(&[b'x'; 64]));
        assert!(!acceptable(&[b'x'; 65]));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"has space"));
        assert!(!acceptable(b"tab\there"));
        assert!(!acceptable(b"\"quoted\""));
        assert!(!acceptable("caf\u{e9}".as_bytes()));
    }
}
