//! Test doubles of clawhost, kept out of the product binary: a dev-dependency of the
//! `clawhost` package and the home of its demo console and benchmarks.
//!
//! - [`fake_apiserver`]: an in-memory Kubernetes API server (fault injection, benchmarks).
//! - [`memory_cluster`]: the console's in-memory cluster; each Assistant's status is what
//!   the operator's `reconciler::status::compute` writes for its simulated pod and volume.
//! - [`fake_tailscale`]: the Tailscale API's device-invite endpoints on loopback, with
//!   their errors and a call log.
//! - [`clock`]: a clock tests set and advance (backup schedules without sleeping).
//! - [`console_bench`]: seeds 10,000 clients and times the heaviest console pages.

pub mod clock;
pub mod console_bench;
pub mod fake_apiserver;
pub mod fake_tailscale;
pub mod memory_cluster;
