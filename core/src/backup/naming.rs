//! What snapshots and restored claims are called and carry, so each maps back to its client.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::snapshot::{VolumeSnapshot, VolumeSnapshotSource, VolumeSnapshotSpec};
use crate::api::{
    ASSISTANT_UID_LABEL, Assistant, EXPIRES_AT_ANNOTATION, REQUEST_ANNOTATION,
    SCHEDULED_FOR_ANNOTATION, SNAPSHOT_COMPONENT, SNAPSHOT_KIND_LABEL, SOURCE_CLAIM_ANNOTATION,
    SnapshotKind,
};
use crate::children::{
    ASSISTANT_NAME_ANNOTATION, BuildError, ChildNames, RETAINED_OWNER_EMAIL_ANNOTATION, labels,
};

/// `<base>-<yyyymmdd>-<hhmmss>-<kind>`, UTC, where the time is the slot for Scheduled
/// (deterministic: a retry or a second replica gets 409, not a second snapshot) and the
/// creation time for the other kinds. A DNS-1123 subdomain of at most 80 characters.
/// Example: `alice-20261203-023000-scheduled`.
pub fn snapshot_name(names: &ChildNames, kind: SnapshotKind, at: Timestamp) -> String {
    // The base is a DNS label of at most 52; the rest is [0-9a-z-]: 52 + 1+8+1+6+1+11 = 80.
    format!(
        "{}-{}-{}",
        names.base,
        at.strftime("%Y%m%d-%H%M%S"),
        kind.as_str()
    )
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
    // The uid label is how the operator finds (and prunes) a client's snapshots: without it
    // a later Assistant of the same name could take over an earlier client's backups.
    let uid = a
        .metadata
        .uid
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or(BuildError::MissingMetadata("uid"))?;
    let names = ChildNames::for_assistant(a);
    let name_time = match kind {
        SnapshotKind::Scheduled => slot.unwrap_or(at),
        _ => at,
    };
    let mut labels = labels(a, SNAPSHOT_COMPONENT);
    labels.insert(SNAPSHOT_KIND_LABEL.into(), kind.as_str().into());
    labels.insert(ASSISTANT_UID_LABEL.into(), uid.into());
    let mut annotations = BTreeMap::from([
        (
            ASSISTANT_NAME_ANNOTATION.to_string(),
            a.metadata.name.clone().unwrap_or_default(),
        ),
        (
            RETAINED_OWNER_EMAIL_ANNOTATION.to_string(),
            a.spec.owner.email.clone(),
        ),
        (SOURCE_CLAIM_ANNOTATION.to_string(), claim.to_string()),
    ]);
    if let Some(slot) = slot {
        annotations.insert(SCHEDULED_FOR_ANNOTATION.into(), slot.to_string());
    }
    if let Some(request) = request {
        annotations.insert(REQUEST_ANNOTATION.into(), request.to_string());
    }
    if let Some(expires_at) = expires_at {
        annotations.insert(EXPIRES_AT_ANNOTATION.into(), expires_at.to_string());
    }
    Ok(VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(snapshot_name(&names, kind, name_time)),
            namespace: a.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            // No ownerReferences: the garbage collector must never remove a backup.
            owner_references: None,
            ..Default::default()
        },
        spec: VolumeSnapshotSpec {
            source: VolumeSnapshotSource {
                persistent_volume_claim_name: Some(claim.to_string()),
                volume_snapshot_content_name: None,
            },
            volume_snapshot_class_name: class.map(str::to_string),
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::assistant::DNS_SUBDOMAIN_PATTERN;
    use crate::backup::SnapshotInfo;
    use crate::testing::assistant;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_utc_times_and_kinds() {
        let names = ChildNames::new("alice");
        assert_eq!(
            snapshot_name(
                &names,
                SnapshotKind::Scheduled,
                ts("2026-12-03T02:30:00+01:00")
            ),
            "alice-20261203-013000-scheduled"
        );
        assert_eq!(
            snapshot_name(
                &names,
                SnapshotKind::PreUpgrade,
                ts("2026-12-03T14:15:03.9Z")
            ),
            "alice-20261203-141503-pre-upgrade"
        );
    }

    #[test]
    fn the_longest_name_is_a_dns_subdomain_of_at_most_80() {
        let names = ChildNames::new(&"a.b".repeat(85)[..253]);
        let subdomain = regex_lite::Regex::new(DNS_SUBDOMAIN_PATTERN).unwrap();
        for kind in SnapshotKind::ALL {
            let n = snapshot_name(&names, kind, ts("2026-12-31T23:59:59Z"));
            assert!(n.len() <= 80, "{n} ({})", n.len());
            assert!(subdomain.is_match(&n), "{n}");
        }
        let n = snapshot_name(&names, SnapshotKind::PreRestore, ts("2026-12-31T23:59:59Z"));
        assert_eq!(n.len(), 80, "{n}");
    }

    #[test]
    fn a_scheduled_snapshot_maps_back_to_its_client_and_has_no_owner() {
        let mut a = assistant("alice");
        a.spec.owner.email = "alice@example.com".into();
        let slot = ts("2026-12-03T03:00:00Z");
        let s = build_snapshot(
            &a,
            SnapshotKind::Scheduled,
            "alice-data",
            ts("2026-12-03T03:40:20Z"),
            Some("csi-snap"),
            Some(slot),
            None,
            None,
        )
        .unwrap();
        let m = &s.metadata;
        assert_eq!(
            m.name.as_deref(),
            Some("alice-20261203-030000-scheduled"),
            "named for the slot, not the run time"
        );
        assert_eq!(m.namespace.as_deref(), Some("clients"));
        assert_eq!(m.owner_references, None);
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[SNAPSHOT_KIND_LABEL], "scheduled");
        assert_eq!(labels[ASSISTANT_UID_LABEL], a.metadata.uid.clone().unwrap());
        assert_eq!(labels["clawhost.dev/assistant"], "alice");
        assert_eq!(labels["app.kubernetes.io/component"], "backup");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "clawhost");
        assert_eq!(labels["app.kubernetes.io/instance"], "alice");
        let ann = m.annotations.as_ref().unwrap();
        assert_eq!(ann[ASSISTANT_NAME_ANNOTATION], "alice");
        assert_eq!(ann[RETAINED_OWNER_EMAIL_ANNOTATION], "alice@example.com");
        assert_eq!(ann[SOURCE_CLAIM_ANNOTATION], "alice-data");
        assert_eq!(ann[SCHEDULED_FOR_ANNOTATION], "2026-12-03T03:00:00Z");
        assert!(!ann.contains_key(REQUEST_ANNOTATION));
        assert!(!ann.contains_key(EXPIRES_AT_ANNOTATION));
        assert_eq!(
            s.spec.source.persistent_volume_claim_name.as_deref(),
            Some("alice-data")
        );
        assert_eq!(
            s.spec.volume_snapshot_class_name.as_deref(),
            Some("csi-snap")
        );
        let v = s.to_value();
        assert_eq!(v["apiVersion"], "snapshot.storage.k8s.io/v1");
        assert!(v.get("status").is_none());
        assert!(v["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn on_demand_and_final_snapshots_carry_their_request_and_expiry() {
        let a = assistant("alice");
        let now = ts("2026-12-03T14:15:03Z");
        let m = build_snapshot(
            &a,
            SnapshotKind::Manual,
            "alice-data-1a2b3c4d",
            now,
            None,
            None,
            Some("snapshot:2026-12-03T14:15:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(
            m.metadata.name.as_deref(),
            Some("alice-20261203-141503-manual")
        );
        let ann = m.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[REQUEST_ANNOTATION], "snapshot:2026-12-03T14:15:00Z");
        assert_eq!(ann[SOURCE_CLAIM_ANNOTATION], "alice-data-1a2b3c4d");
        assert_eq!(m.spec.volume_snapshot_class_name, None, "class left unset");
        let f = build_snapshot(
            &a,
            SnapshotKind::Final,
            "alice-data",
            now,
            None,
            None,
            None,
            Some(ts("2027-01-02T14:15:03Z")),
        )
        .unwrap();
        assert_eq!(
            f.metadata.name.as_deref(),
            Some("alice-20261203-141503-final")
        );
        assert_eq!(
            f.metadata.annotations.as_ref().unwrap()[EXPIRES_AT_ANNOTATION],
            "2027-01-02T14:15:03Z"
        );
        assert_eq!(
            f.metadata.labels.as_ref().unwrap()[SNAPSHOT_KIND_LABEL],
            "final"
        );
    }

    #[test]
    fn a_snapshot_needs_the_assistant_uid() {
        let mut a = assistant("alice");
        a.metadata.uid = None;
        let e = build_snapshot(
            &a,
            SnapshotKind::Manual,
            "alice-data",
            ts("2026-12-03T14:15:03Z"),
            None,
            None,
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, BuildError::MissingMetadata("uid")), "{e}");
    }

    #[test]
    fn a_built_snapshot_reads_back_as_the_same_info() {
        let a = assistant("alice");
        let mut s = build_snapshot(
            &a,
            SnapshotKind::Scheduled,
            "alice-data",
            ts("2026-12-03T03:40:00Z"),
            None,
            Some(ts("2026-12-03T03:00:00Z")),
            None,
            None,
        )
        .unwrap();
        // As the API server stores it.
        s.metadata.uid = Some("snap-uid".into());
        s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            ts("2026-12-03T03:40:01Z"),
        ));
        let info = SnapshotInfo::from_snapshot(&s).unwrap();
        assert_eq!(info.name, "alice-20261203-030000-scheduled");
        assert_eq!(info.kind, SnapshotKind::Scheduled);
        assert_eq!(info.scheduled_for, Some(ts("2026-12-03T03:00:00Z")));
        assert_eq!(info.source_claim.as_deref(), Some("alice-data"));
        assert_eq!(info.created, ts("2026-12-03T03:40:01Z"));
        assert_eq!(info.taken, info.created, "no status.creationTime yet");
        assert!(!info.ready);
    }
}
