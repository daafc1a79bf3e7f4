//! openclaw, as the core knows it: the config the gateway runs and openclaw's own schema
//! for it.

pub mod config;
pub mod schema;
