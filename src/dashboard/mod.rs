//! The tenant-facing API: self-serve registration with its progress, and the caller's own tenant.

pub(crate) mod api_keys;
pub(crate) mod commerce;
pub(crate) mod me;

pub use api_keys::{check_key_name, check_key_scope};
pub(crate) mod registration;
pub(crate) mod tenant;
