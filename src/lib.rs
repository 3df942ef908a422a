//! Wosool: the control plane that runs a headless Twenty CRM as a multi-tenant SaaS for Salla merchants.
//!
//! `main.rs` is a thin clap front end; everything lives here so integration tests boot the real application
//! in-process ([`Application`]).

pub mod admin;
pub mod clerk;
pub mod cli;
pub mod config;
pub mod crm;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod http;
pub mod jobs;
pub mod provisioning;
pub mod redis;
pub mod salla;
pub mod secrets;
pub mod state;
pub mod telemetry;
pub mod tenancy;
pub mod webhooks;

mod app;

pub use app::{Application, Role, StartupError, TenancyStack, install_crypto_provider, run};
