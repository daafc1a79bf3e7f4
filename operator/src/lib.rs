//! clawhost: a control plane for hosting one private openclaw gateway per client.
//!
//! - [`api`]: the `Assistant` resource and its validation.
//! - [`config`]: the operator configuration file.
//! - [`children`]: pure builders of every object an Assistant owns.
//! - [`render`]: offline rendering (`clawhost render`).
//! - [`rbac`]: the permissions the operator and console need.
//! - [`console`]: the admin console (clients, billing records, usage, audit).

// The pure core, re-exported so every layer names it the same way.
pub use clawhost_core::{
    api, backup, children, config, crd, openclaw, problems, rbac, render, validation,
};

pub mod clock;
pub mod console;

pub mod metrics;
pub mod reconciler;
pub mod runtime;
pub mod sealing;
pub mod tailscale;
#[cfg(test)]
pub(crate) use clawhost_core::testing;
pub mod write_fence;
