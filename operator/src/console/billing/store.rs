//! The billing tables (migration 0006): prices, settings, subscriptions, the timeline,
//! invoices with gap-free numbers, provider events. Portable SQL for SQLite and PostgreSQL.

#[allow(unused_imports)]
use crate::console::db::{Db, DbError};
