//! What the console does, independent of HTTP: pages and the JSON API both call these, so
//! both offer the same actions with the same checks, and every action writes an audit event.

//!
//! - [`clients`]: the clients list and a client's page.
//! - [`new_client`]: creating a client (record, Assistant, Secrets).
//! - [`actions`]: actions on one client.
//! - [`adopt`]: linking an Assistant created outside the console to a new client record.
//! - [`fleet`]: the fleet overview.
//! - [`backups`]: snapshots, "back up now", restore in place, the fleet's backup health.
//! - [`tokens`]: API tokens.
//! - [`handoff`]: one-time handoff links, invite requests, "never connected".
//! - [`audit`]: reading the audit log (filters, what changed).
//! - [`billing`]: prices, subscriptions, invoices (the rules are in `console::billing`).

pub mod actions;
pub mod adopt;
pub mod audit;
pub mod backups;
pub mod billing;
pub mod clients;
pub mod fleet;
pub mod handoff;
pub mod new_client;
pub mod tokens;

pub use actions::*;
pub use adopt::*;
pub use audit::*;
pub use clients::*;
pub use fleet::*;
pub use new_client::*;
pub use tokens::*;

use serde::Serialize;

use super::cluster::ClusterError;
use super::db::DbError;

/// The subscription states (`billing::SubscriptionState`), then the values older records
/// may hold (`trial`, `cancelled`), still accepted by the record form and filters.
pub const BILLING_STATUSES: [&str; 7] = [
    "trialing",
    "active",
    "past_due",
    "suspended",
    "canceled",
    "trial",
    "cancelled",
];
/// Model providers the new-client form offers, with the environment variable openclaw reads.
pub const MODEL_PROVIDERS: [(&str, &str, &str); 4] = [
    ("anthropic", "Anthropic", "ANTHROPIC_API_KEY"),
    ("openai", "OpenAI", "OPENAI_API_KEY"),
    ("openrouter", "OpenRouter", "OPENROUTER_API_KEY"),
    ("gemini", "Google Gemini", "GEMINI_API_KEY"),
];
pub const MAX_NOTES: usize = 20_000;
pub const MAX_SECRET_INPUT: usize = 4096;
pub const PER_PAGE_DEFAULT: u32 = 50;
pub const PER_PAGE_MAX: u32 = 500;

/// One problem with one input field; `field` uses the Assistant's field paths where the
/// rule comes from `validation.rs`, so messages match `clawhost render`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("not found")]
    NotFound,
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Db(#[from] DbError),
    /// A version change to an older release than the one running; refused until confirmed.
    #[error(
        "downgrade from {from} to {to}: openclaw may not read state a newer version wrote; confirm the downgrade (API: \"allow_downgrade\": true)"
    )]
    Downgrade { from: String, to: String },
    /// The action cannot apply in the current state (an invoice already paid, a client
    /// that already has a subscription, a month not over yet); the message says why.
    #[error("{0}")]
    Conflict(String),
    /// Concurrent writers kept changing the record (compare-and-set lost every retry):
    /// nothing was refused, so the caller may simply try again (503 for the API, a retry
    /// for the payment provider).
    #[error("{0} keeps changing: try again")]
    Contended(&'static str),
}

impl ActionError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ActionError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ActionError::NotFound => S::NOT_FOUND,
            ActionError::Invalid(_) => S::UNPROCESSABLE_ENTITY,
            ActionError::Cluster(ClusterError::Unreachable(_)) => S::SERVICE_UNAVAILABLE,
            ActionError::Cluster(ClusterError::NotFound) => S::NOT_FOUND,
            ActionError::Cluster(_) => S::CONFLICT,
            ActionError::Db(_) => S::INTERNAL_SERVER_ERROR,
            ActionError::Downgrade { .. } => S::CONFLICT,
            ActionError::Conflict(_) => S::CONFLICT,
            ActionError::Contended(_) => S::SERVICE_UNAVAILABLE,
        }
    }
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Today (UTC), for the checks that need a clock (the core reads none).
pub fn today() -> crate::validation::CivilDate {
    crate::runtime::today_utc()
}

/// `YYYY-MM` (UTC) of a Unix time.
pub fn month_of(unix: i64) -> String {
    let ts = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string()
}

pub fn valid_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(m[5..].parse::<u8>(), Ok(1..=12))
}

/// The form label a problem's field is shown under: people read "E-mail", not
/// `spec.owner.email` (the JSON API keeps the path as `field` and adds this as `label`).
pub fn field_label(field: &str) -> &str {
    let under = |p: &str| {
        field == p || field.starts_with(&format!("{p}.")) || field.starts_with(&format!("{p}["))
    };
    if under("metadata.name") || field == "assistant_name" {
        "Assistant name"
    } else if under("spec.owner.name") || field == "name" {
        "Client name"
    } else if under("spec.owner.email") || field == "email" {
        "E-mail"
    } else if under("spec.plan") || under("spec.resources") || field == "plan" {
        "Plan"
    } else if under("spec.gateway.version") || under("spec.gateway.image") || field == "version" {
        "openclaw version"
    } else if under("spec.gateway.env") || field == "model_api_key" {
        "Model API key"
    } else if field == "model_provider" {
        "Model provider"
    } else if under("spec.storage.restoreFrom") || field == "restore_from" {
        "Restore from snapshot"
    } else if under("spec.storage") || field == "on_delete" {
        "Volume on deletion"
    } else if under("spec.tailscale.hostname") || field == "tailscale_hostname" {
        "Tailnet machine name"
    } else if under("spec.tailscale") || field == "tailscale_auth_key" {
        "Tailscale auth key"
    } else if field == "billing_status" {
        "Billing status"
    } else if field == "notes" {
        "Notes"
    } else if field == "confirm" {
        "Confirmation"
    } else if field == "retention" {
        "The client's volume"
    } else {
        field
    }
}
