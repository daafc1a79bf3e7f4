//! Names shared by the operator, the console and the fleet rollout for volume snapshots
//! (backups): the request annotation, the labels and annotations on every snapshot, and the
//! marks of a claim replaced by an in-place restore. `docs/backups.md` explains the model.

/// On an Assistant: take a snapshot now. Values `snapshot:<id>` (kind manual) or
/// `pre-upgrade:<id>` (kind pre-upgrade; the fleet rollout sets it), `<id>` anything new
/// (a time). Acted on once per value; recorded in `status.backup.handledRequest`.
///
/// The pre-upgrade contract (for the fleet rollout), per client, before it patches
/// `spec.gateway.version`:
/// 1. set this annotation to `pre-upgrade:<rollout-id>`;
/// 2. wait until `status.backup.handledRequest` equals that value, then until the
///    VolumeSnapshot named by `status.backup.requestSnapshot` has `status.readyToUse: true`
///    (or `BackupHealthy` says `SnapshotFailed`, `CreateRefused` or
///    `SnapshotAPIUnavailable`: the rollout's policy decides; `Disabled`: go on without);
/// 3. patch the version.
///
/// Nothing else in the operator couples gateway versions and snapshots.
pub const BACKUP_REQUEST_ANNOTATION: &str = "clawhost.dev/backup-request";
/// On an Assistant being deleted with `onDelete: Delete`: `"true"` deletes without (or
/// without waiting for) the final snapshot. The console's "delete anyway" sets it.
pub const SKIP_FINAL_SNAPSHOT_ANNOTATION: &str = "clawhost.dev/skip-final-snapshot";

/// Label on every snapshot: what it was taken for ([`SnapshotKind::as_str`]).
pub const SNAPSHOT_KIND_LABEL: &str = "clawhost.dev/snapshot-kind";
/// Label on every snapshot: the Assistant's uid, so a new Assistant of the same name never
/// sees (or prunes) an earlier client's snapshots.
pub const ASSISTANT_UID_LABEL: &str = "clawhost.dev/assistant-uid";
/// `app.kubernetes.io/component` of snapshots.
pub const SNAPSHOT_COMPONENT: &str = "backup";

/// Annotation on scheduled snapshots: the schedule slot, RFC 3339 UTC.
pub const SCHEDULED_FOR_ANNOTATION: &str = "clawhost.dev/scheduled-for";
/// Annotation on manual and pre-upgrade snapshots: the request value they answer.
pub const REQUEST_ANNOTATION: &str = "clawhost.dev/request";
/// Annotation on final snapshots: when the janitor deletes it, RFC 3339 UTC.
pub const EXPIRES_AT_ANNOTATION: &str = "clawhost.dev/expires-at";
/// Annotation on every snapshot: the PersistentVolumeClaim snapshotted.
pub const SOURCE_CLAIM_ANNOTATION: &str = "clawhost.dev/source-claim";

/// On a claim replaced by an in-place restore (besides the retained marks): the new claim.
pub const REPLACED_BY_ANNOTATION: &str = "clawhost.dev/replaced-by";
/// On a claim made from a snapshot: the snapshot's name.
pub const RESTORED_FROM_ANNOTATION: &str = "clawhost.dev/restored-from";

/// What a snapshot was taken for: its label value and name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnapshotKind {
    /// Taken by the schedule; pruned by keep daily/weekly.
    Scheduled,
    /// Asked for (annotation `snapshot:<id>`, the console's "Back up now").
    Manual,
    /// Taken before the volume is deleted under `onDelete: Delete`; kept `finalSnapshot.keepDays`.
    Final,
    /// Asked for by the fleet rollout before an upgrade (`pre-upgrade:<id>`).
    PreUpgrade,
    /// Of the outgoing volume of an in-place restore, so the restore can be rolled back.
    PreRestore,
}

impl SnapshotKind {
    pub const ALL: [SnapshotKind; 5] = [
        SnapshotKind::Scheduled,
        SnapshotKind::Manual,
        SnapshotKind::Final,
        SnapshotKind::PreUpgrade,
        SnapshotKind::PreRestore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Scheduled => "scheduled",
            SnapshotKind::Manual => "manual",
            SnapshotKind::Final => "final",
            SnapshotKind::PreUpgrade => "pre-upgrade",
            SnapshotKind::PreRestore => "pre-restore",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `clawhost.dev/backup-request` value: `snapshot:<id>` → Manual, `pre-upgrade:<id>` →
/// PreUpgrade, with a non-empty id; anything else is `None` (ignored, and status says so).
pub fn parse_backup_request(value: &str) -> Option<(SnapshotKind, &str)> {
    let (kind, id) = value.split_once(':')?;
    let kind = match kind {
        "snapshot" => SnapshotKind::Manual,
        "pre-upgrade" => SnapshotKind::PreUpgrade,
        _ => return None,
    };
    let id = id.trim();
    (!id.is_empty()).then_some((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in SnapshotKind::ALL {
            assert_eq!(SnapshotKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(SnapshotKind::parse("daily"), None);
    }

    #[test]
    fn backup_requests_round_trip_and_refuse_garbage() {
        assert_eq!(
            parse_backup_request("snapshot:2026-12-03T10:00:00Z"),
            Some((SnapshotKind::Manual, "2026-12-03T10:00:00Z"))
        );
        assert_eq!(
            parse_backup_request("pre-upgrade:r1"),
            Some((SnapshotKind::PreUpgrade, "r1"))
        );
        for bad in ["", "snapshot", "snapshot:", "snapshot: ", "final:1", "now"] {
            assert_eq!(parse_backup_request(bad), None, "{bad:?}");
        }
    }
}
