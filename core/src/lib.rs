//! clawhost's pure core: everything that decides *what* should exist, with no I/O.
//!
//! - [`api`]: the `Assistant` resource, its validation and openclaw's config schema.
//! - [`config`]: the operator configuration file.
//! - [`children`]: one pure builder per child object, and the table of child kinds.
//! - [`render`]: offline rendering (`clawhost render`).
//! - [`crd`]: the CRD generated from the types.
//! - [`rbac`]: the permissions the operator and console need.

pub mod api;
pub mod children;
pub mod config;
pub mod crd;
pub mod rbac;
pub mod render;
/// Fixtures for tests (here and, through the `fixtures` feature, the operator's): never in
/// a release build.
#[cfg(any(test, feature = "fixtures"))]
pub mod testing;
