//! Billing: the price list, subscriptions and their automatic transitions, invoices and
//! credit notes, and the payment provider's webhook. The rules are pure functions
//! (`state`, `invoice`, `stripe`) over the types of `model`; `store` is their SQL and
//! `engine` the loop that applies due transitions and keeps each Assistant's suspension in
//! line with its subscription. The audited actions are in `service::billing`.
//!
//! Every function that depends on time takes `now` (Unix seconds): tests drive a clock.

pub mod engine;
pub mod invoice;
pub mod model;
pub mod state;
pub mod store;
pub mod stripe;
pub mod webhook;

pub use model::*;
