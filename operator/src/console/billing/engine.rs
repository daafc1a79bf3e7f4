//! The billing engine: every interval it applies the transitions that are due (trial end,
//! grace end, cancellation, retention end; an unpaid invoice past due for a client without
//! a payment provider), records what each subscribed client has (plan, suspension) on the
//! timeline, and keeps each Assistant's suspension in line with its subscription, writing
//! only when they differ (level-based, like the operator: a lost write is redone next
//! tick, an idle fleet costs no writes).

use std::sync::Arc;
use std::time::Duration;

use crate::console::Console;
use crate::console::service::ActionError;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub transitions: usize,
    pub cluster_writes: usize,
    pub timeline_points: usize,
    /// Per-client problems (the pass goes on with the others).
    pub errors: Vec<String>,
}

/// One pass at `now`.
pub async fn tick(ctx: &Console, now: i64) -> Result<TickReport, ActionError> {
    let _ = (ctx, now);
    todo!("issue 15: engine::tick")
}

/// Brings one client's Assistant in line with its subscription now (after a webhook or an
/// admin action, so paying resumes at once rather than at the next tick).
pub async fn enforce_client(ctx: &Console, client_id: i64, now: i64) -> Result<(), ActionError> {
    let _ = (ctx, client_id, now);
    todo!("issue 15: engine::enforce_client")
}

/// Runs [`tick`] every `interval` until the console stops; errors are logged.
pub async fn run(ctx: Arc<Console>, interval: Duration) {
    let _ = (ctx, interval);
    todo!("issue 15: engine::run")
}
