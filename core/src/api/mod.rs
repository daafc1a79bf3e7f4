//! The clawhost API: the `Assistant` resource and quantity helpers (types only; validation
//! is [`crate::validation`]).

pub mod access;
pub mod assistant;
pub mod backup;
pub mod quantity;
pub mod snapshot;
pub mod suspension;

pub use access::*;
pub use assistant::*;
pub use backup::*;
pub use suspension::*;
