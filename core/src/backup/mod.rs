//! Backups of a client's volume with CSI VolumeSnapshots, decided without I/O: the policy in
//! force for one Assistant, when its next snapshot is due, what snapshots are named, which
//! ones retention deletes, and what `BackupHealthy` says. The operator's backup step only
//! reads snapshots, calls these, and creates or deletes what they say (docs/backups.md).

pub mod health;
pub mod naming;
pub mod retention;
pub mod schedule;

pub use health::*;
pub use naming::*;
pub use retention::*;
pub use schedule::*;

use jiff::SignedDuration;

use crate::api::Assistant;
use crate::config::OperatorConfig;

/// The backup policy in force for one Assistant.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    pub schedule: Schedule,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// `backups.volumeSnapshotClassName`; `None` leaves the snapshot's class unset.
    pub class: Option<String>,
    pub ready_deadline: SignedDuration,
    pub spread: SignedDuration,
    pub keep_on_demand: SignedDuration,
    /// `spec.backup` was invalid and the plan/operator value is used instead (the health
    /// message says so): a typo never stops a client's backups.
    pub fell_back: bool,
}

impl BackupPolicy {
    pub fn retention(&self) -> Retention {
        Retention {
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_on_demand: self.keep_on_demand,
            ready_deadline: self.ready_deadline,
        }
    }
}

/// `spec.backup` › the plan's `backup` › `config.backups`, field by field.
/// `Ok(None)`: backups are off (operator kill switch, plan, or spec `enabled: false`).
/// An invalid spec value falls back to the plan/operator value with `fell_back = true`
/// (never `Err` for the spec: validation reports it); `Err` (the message) only for an
/// invalid operator or plan value, which `config check` already refuses.
pub fn effective_policy(
    a: &Assistant,
    config: &OperatorConfig,
) -> Result<Option<BackupPolicy>, String> {
    let _ = (a, config);
    todo!("engineer A")
}
