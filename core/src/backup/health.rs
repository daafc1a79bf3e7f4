//! What `BackupHealthy` and `status.backup` say, from what the backup step saw.

use jiff::Timestamp;

use super::{BackupPolicy, SnapshotInfo};
use crate::api::BackupStatus;

/// Whether the cluster can take snapshots (discovered by the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiState {
    Available,
    /// No `snapshot.storage.k8s.io/v1` `volumesnapshots` in discovery.
    Unavailable,
    /// The configured VolumeSnapshotClass does not exist.
    ClassNotFound(String),
}

pub struct HealthInput<'a> {
    /// `None`: backups are off for this Assistant (Disabled).
    pub policy: Option<&'a BackupPolicy>,
    /// Why they are off, for the Disabled message (e.g. "spec.backup.enabled: false").
    pub disabled_by: Option<&'a str>,
    pub api: &'a ApiState,
    /// This Assistant's snapshots, any kind.
    pub snapshots: &'a [SnapshotInfo],
    pub assistant_created: Timestamp,
    pub suspended: bool,
    /// Phase of the data claim (`Bound`, `Pending`), `None` when it does not exist.
    pub volume_phase: Option<&'a str>,
    pub volume_name: &'a str,
    /// The last create refusal (4xx message) since the last successful create.
    pub refused: Option<&'a str>,
    /// A transport or 5xx error of this pass (retried).
    pub unreachable: Option<&'a str>,
    pub next_run: Option<Timestamp>,
    pub now: Timestamp,
}

/// Bounded states for the metric `clawhost_assistants_backup{state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupState {
    Ok,
    /// Enabled, not suspended, older than the window, and no ready snapshot taken within
    /// the window (2 × the schedule interval), whatever the reason. The alert reads this.
    Missing,
    /// Younger than the window, nothing ready yet.
    New,
    Suspended,
    Disabled,
}

impl BackupState {
    pub const ALL: [BackupState; 5] = [
        BackupState::Ok,
        BackupState::Missing,
        BackupState::New,
        BackupState::Suspended,
        BackupState::Disabled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Ok => "ok",
            BackupState::Missing => "missing",
            BackupState::New => "new",
            BackupState::Suspended => "suspended",
            BackupState::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupHealth {
    /// "True" | "False" | "Unknown".
    pub status: &'static str,
    /// `SnapshotReady`, `AwaitingFirstSnapshot`, `Suspended`, `SnapshotFailed`,
    /// `SnapshotNotReady`, `CreateRefused`, `SnapshotClassNotFound`,
    /// `SnapshotAPIUnavailable`, `VolumeNotBound`, `SnapshotMissing`, `Disabled`
    /// (`FinalSnapshotFailed` is the cleanup's).
    pub reason: &'static str,
    /// Absolute times only (never "in 3 h"): stable while idle. Never a secret.
    pub message: String,
    pub state: BackupState,
}

/// The `BackupHealthy` table of docs/backups.md. Precedence (first match): Disabled ›
/// SnapshotAPIUnavailable › SnapshotClassNotFound › CreateRefused › SnapshotFailed ›
/// SnapshotNotReady › Suspended › SnapshotReady › VolumeNotBound › AwaitingFirstSnapshot ›
/// SnapshotMissing.
pub fn evaluate_health(input: &HealthInput) -> BackupHealth {
    let _ = input;
    todo!("engineer A")
}

/// `status.backup` from the same input plus what the step handled; deterministic, and
/// unchanged between runs when nothing happened.
pub fn backup_status(
    input: &HealthInput,
    last_scheduled_run: Option<Timestamp>,
    handled_request: Option<&str>,
    request_snapshot: Option<&str>,
) -> BackupStatus {
    let _ = (input, last_scheduled_run, handled_request, request_snapshot);
    todo!("engineer A")
}
