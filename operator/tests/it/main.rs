//! The `clawhost` crate's integration tests, one binary (linking the crate once per test
//! build instead of once per file): console HTTP, authorization and hostile input, the
//! console's Kubernetes client against a mock, the in-memory API server's reconcile
//! scenarios and fault injection, the operator process, the image contract's drift checks.
//! The real-API tier is its own binary (`tests/real_api/`): its tests run one at a time.

// First: its macros are used by the modules below.
#[macro_use]
mod console_support;

mod backup_scenarios;
mod billing_store;
mod billing_webhook;
mod cleanup_scenarios;
mod console_authz;
mod console_backups;
mod console_billing;
mod console_details;
mod console_first_hour;
mod console_handoff;
mod console_hostile;
mod console_http;
mod console_kube;
mod console_security;
mod console_truth;
mod gateway_image_drift;
mod operator_process;
mod reconcile_scenarios;
mod tailscale_invites;
