//! The one integration-test binary: real PostgreSQL and Redis (started by scripts/test), the real application
//! booted in-process per test.

mod clerk_identity;
mod clerk_sessions;
mod clerk_webhooks;
mod cli;
mod config;
mod crm_capacity;
mod crm_documents;
mod crm_e2e;
mod crm_model;
mod crm_provisioning;
mod crm_proxy;
mod crm_sync;
mod deploy;
mod fake_salla;
mod fake_twenty;
mod fleet;
mod health;
mod helpers;
mod http_errors;
mod jobs;
mod merchant_api;
mod merchant_app;
mod metrics;
mod salla_api;
mod salla_data;
mod salla_install;
mod salla_tokens;
mod shutdown;
mod tenant_cache;
mod tenant_deletion;
mod tenant_pools;
mod tenants;
mod tenants_admin;
mod twenty_graphql;
