//! What snapshots and restored claims are called and carry, so each maps back to its client.

use jiff::Timestamp;

use crate::api::snapshot::VolumeSnapshot;
use crate::api::{Assistant, SnapshotKind};
use crate::children::{BuildError, ChildNames};

/// `<base>-<yyyymmdd>-<hhmmss>-<kind>`, UTC, where the time is the slot for Scheduled
/// (deterministic: a retry or a second replica gets 409, not a second snapshot) and the
/// creation time for the other kinds. A DNS-1123 subdomain of at most 80 characters.
/// Example: `alice-20261203-023000-scheduled`.
pub fn snapshot_name(names: &ChildNames, kind: SnapshotKind, at: Timestamp) -> String {
    let _ = (names, kind, at);
    todo!("engineer A")
}

/// The VolumeSnapshot to create, with the labels and annotations of `api::backup` (kind,
/// assistant uid, the usual child labels with component `backup`, the assistant's full
/// name, owner e-mail, source claim) and **no ownerReferences, ever**. `slot` for
/// Scheduled (annotation scheduled-for), `request` for Manual/PreUpgrade (annotation
/// request), `expires_at` for Final (annotation expires-at). `class`: None leaves it unset.
#[allow(clippy::too_many_arguments)]
pub fn build_snapshot(
    a: &Assistant,
    kind: SnapshotKind,
    claim: &str,
    at: Timestamp,
    class: Option<&str>,
    slot: Option<Timestamp>,
    request: Option<&str>,
    expires_at: Option<Timestamp>,
) -> Result<VolumeSnapshot, BuildError> {
    let _ = (a, kind, claim, at, class, slot, request, expires_at);
    todo!("engineer A")
}
