//! Which snapshots to delete: keep-daily/keep-weekly for scheduled ones, an age for
//! on-demand ones, an expiry for final ones, and never the newest ready one.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::api::SnapshotKind;
use crate::api::snapshot::VolumeSnapshot;

/// A snapshot as retention and health see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    pub name: String,
    pub uid: String,
    pub kind: SnapshotKind,
    /// status.creationTime, else metadata.creationTimestamp.
    pub taken: Timestamp,
    /// metadata.creationTimestamp.
    pub created: Timestamp,
    /// status.readyToUse == Some(true).
    pub ready: bool,
    /// status.error.message.
    pub error: Option<String>,
    pub restore_size: Option<String>,
    pub scheduled_for: Option<Timestamp>,
    pub request: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The PVC it was taken of (annotation source-claim, else spec.source).
    pub source_claim: Option<String>,
    /// metadata.deletionTimestamp is set.
    pub deleting: bool,
}

impl SnapshotInfo {
    /// `None` for an object without clawhost's kind label (never ours to prune).
    pub fn from_snapshot(s: &VolumeSnapshot) -> Option<Self> {
        let _ = s;
        todo!("engineer A")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_on_demand: SignedDuration,
    pub ready_deadline: SignedDuration,
}

/// Names to delete, oldest first. Rules, in order:
/// 1. Never: the newest ready snapshot of any kind; any name in `protected` (this
///    Assistant's restoreFrom); snapshots already deleting; a not-ready, error-free snapshot
///    younger than `ready_deadline` (in progress); Final snapshots before `expires_at`.
/// 2. Scheduled, ready: keep the newest of each of the newest `keep_daily` calendar days (in
///    `tz`) that have one, and the newest of each of the newest `keep_weekly` ISO weeks that
///    have one (restic's semantics: days without a snapshot do not count, so an outage never
///    empties the history); delete the rest.
/// 3. Manual, PreUpgrade, PreRestore, ready: delete when `taken + keep_on_demand < now`.
/// 4. Failed (error) or not ready past the deadline: delete when a newer ready snapshot
///    exists (the newest failure stays until then, for the health message).
/// 5. Final: delete when `expires_at < now`.
pub fn select_for_deletion(
    snapshots: &[SnapshotInfo],
    policy: &Retention,
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
    protected: &BTreeSet<String>,
) -> Vec<String> {
    let _ = (snapshots, policy, tz, now, protected);
    todo!("engineer A")
}
