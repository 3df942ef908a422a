//! Clerk: the identity authority. Session-token verification (JWKS), Svix-signed webhooks, and the Backend API
//! client that implements the provisioning `IdentityProvider`. See `../shared/reference/clerk.md`.

pub mod api;
pub mod identity;
pub mod jwks;
pub mod jwt;
pub mod members;

pub mod routes;
pub mod session;
pub mod webhook;
