//! Salla Merchant API client (`{salla.api_url}` = `https://api.salla.dev/admin/v2`; shared/reference/salla.md
//! §3): the four lists page by page, order details, store info and webhook registration.
//!
//! Every call goes through the store's rate limits ([`SallaLimits`]), takes its token from an
//! [`AccessTokens`] (a 401 "The access token is invalid" makes it ask for a fresh token once and try again),
//! and retries GETs a bounded number of times (`salla.max_retries`) on 5xx, timeouts, network errors and 429
//! (after `Retry-After`, default 60 s, when no longer than `salla.max_retry_after_secs`; a longer wait returns
//! [`SallaApiError::RateLimited`] so the job comes back later instead of holding a worker). A POST is retried
//! only when Salla cannot have acted on it (429, connection refused).
//!
//! [`SallaLimits`]: super::limits::SallaLimits

mod access_tokens;
mod client;
mod error;
mod exchange;
pub(super) mod lenient;
mod resources;

pub use crate::tenancy::MerchantId;
pub use access_tokens::{AccessTokenError, AccessTokens, TokenFuture};
pub use client::MerchantApi;
pub use error::SallaApiError;
pub(super) use exchange::{Outcome, error_message, exchange, http_client, record, retry_policy};
pub use resources::{Page, Resource, StoreInfo};
