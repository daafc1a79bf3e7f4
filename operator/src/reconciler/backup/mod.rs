//! The backup step of the reconcile: snapshots on schedule and on request, retention, and
//! what `status.backup` and `BackupHealthy` say. Every decision is a core function
//! (`clawhost_core::backup`); this module lists, creates and deletes what they say. It
//! never fails the reconcile and never touches another child: a backup problem is a
//! condition, not an outage.

pub mod discovery;
pub mod janitor;
pub mod throttle;

use std::time::Duration;

use crate::api::{Assistant, BackupStatus};
use crate::backup::BackupHealth;

use super::Context;
use super::observe::Observation;

/// What `status::compute` needs from the backup step.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupObservation {
    pub health: BackupHealth,
    pub status: BackupStatus,
}

pub struct BackupOutcome {
    pub observation: BackupObservation,
    /// When the step wants to run again (the next slot, a pending snapshot); `Duration::MAX`
    /// when it has nothing to wait for.
    pub requeue: Duration,
}

/// One pass, for an Assistant whose volume is its own: request, schedule, retention,
/// health. Runs whether or not ConfigValid is True (a spec typo never stops backups).
pub async fn run(a: &Assistant, ctx: &Context, observed: &Observation) -> BackupOutcome {
    let _ = (a, ctx, observed);
    todo!("engineer B")
}
