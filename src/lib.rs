//! Wosool: the control plane that runs a headless Twenty CRM as a multi-tenant SaaS for Salla merchants.
//!
//! `main.rs` is a thin clap front end; everything lives here so integration tests boot the real application
//! in-process ([`Application`]).

pub mod access;
pub mod admin;
pub mod audit;
pub mod backup;
pub mod clerk;
pub mod cli;
pub mod commerce;
pub mod config;
pub mod core;
pub mod crm;
pub mod dashboard;
pub mod db;
pub mod embedded;
pub mod error;
pub mod http;
pub mod inbox;
pub mod jobs;
pub mod maintenance;
pub mod notify;
pub mod openapi;
pub mod outbound;
pub mod provisioning;
pub mod ratelimit;
pub mod redis;
pub mod router;
pub mod salla;
pub mod secrets;
pub mod state;
pub mod string_enum;
pub mod telemetry;
pub mod tenancy;
pub mod web;

mod app;

/// mimalloc instead of glibc's malloc: a proxied request allocates and frees hundreds of small buffers across
/// threads, and glibc's arenas spent about a tenth of the CPU of the CRM proxy benchmark on it. Declared in the
/// library so the server, the tests and the benchmarks all run on the allocator production uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use app::{Application, Role, StartupError, TenancyStack, run};
pub use outbound::install_crypto_provider;
