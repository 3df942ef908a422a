//! Where a Merchant API call gets a store's access token, and why it may get none.

use std::future::Future;
use std::pin::Pin;

/// Why no access token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessTokenError {
    /// Salla revoked the store's tokens (refresh `invalid_grant`): nothing works until the merchant reinstalls.
    #[error("the store's Salla tokens are revoked; the app must be reinstalled")]
    Revoked,
    /// No usable token right now (storage unreachable, refresh unavailable or ambiguous): try again later.
    #[error("no Salla access token available: {0}")]
    Unavailable(String),
}

/// What [`AccessTokens`] methods return: a boxed future, so that the trait is object-safe.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<String, AccessTokenError>> + Send + 'a>>;

/// Where a call gets one store's access token. Calls take `&dyn AccessTokens` (one implementation is the
/// token store, tests have their own), hence boxed futures rather than `async fn`: implement with
/// `Box::pin(async move { … })`.
pub trait AccessTokens: Send + Sync {
    /// The store's current access token.
    fn access_token(&self) -> TokenFuture<'_>;

    /// Salla answered 401 "The access token is invalid" to `rejected`: return a token worth one more try — a
    /// newer one already stored (another worker refreshed), or a refreshed one. Called at most once per call.
    fn refresh_rejected<'a>(&'a self, rejected: &'a str) -> TokenFuture<'a>;
}
