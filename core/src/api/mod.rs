//! The clawhost API: the `Assistant` resource, its validation and quantity helpers.

pub mod assistant;
pub mod openclaw_schema;
pub mod quantity;
pub mod validation;

pub use assistant::*;
