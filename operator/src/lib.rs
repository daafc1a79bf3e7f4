//! clawhost: a control plane for hosting one private openclaw gateway per client.
//!
//! - [`api`]: the `Assistant` resource and its validation.
//! - [`config`]: the operator configuration file.
//! - [`children`]: pure builders of every object an Assistant owns.
//! - [`render`]: offline rendering (`clawhost render`).
//! - [`rbac`]: the permissions the operator and console need.
//! - [`console`]: the admin console (clients, billing records, usage, audit).

pub mod api;
pub mod children;
pub mod config;
pub mod console;
pub mod crd;
pub mod rbac;
pub mod render;

pub mod metrics;
pub mod reconciler;
pub mod runtime;
pub mod tailscale_api;
#[cfg(test)]
pub(crate) mod testing;
pub mod write_fence;
