//! The backup step on the real API server with the upstream snapshot CRDs, in-process with a
//! clock the test sets: one scheduled snapshot with the right labels and no owner, status
//! and BackupHealthy written, then an idle pass that writes nothing (audit log).

use std::sync::Arc;

use clawhost::api::Assistant;
use clawhost::config::OperatorConfig;
use clawhost::reconciler::{self, Context};
use clawhost_testing::clock::ManualClock;
use jiff::{SignedDuration, Timestamp, ToSpan};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::support::{
    OPERATOR_USER, assistant_json, condition, control_plane, create_assistant, describe,
    operator_namespace, operator_requests, repo_root, serial,
};

const NS: &str = "backup-step";

fn snapshots_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    )
}

#[tokio::test]
async fn a_scheduled_snapshot_then_an_idle_pass_writes_nothing() {
    let _serial = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let crds = repo_root().join("../shared/crds/volumesnapshot");
    assert!(
        crds.is_dir(),
        "the upstream snapshot CRDs are expected at {}",
        crds.display()
    );
    cp.install_crds(&[&crds])
        .await
        .expect("install the snapshot CRDs");
    let admin = operator_namespace(&cp, NS, true).await;
    let created = create_assistant(
        &admin,
        &assistant_json(NS, "alice", json!({"storage": {"size": "1Gi"}})),
    )
    .await;
    let created_at = created.metadata.creation_timestamp.clone().unwrap().0;

    // The reconciler in-process, as the operator's least-privilege user, on our clock.
    let mut config = OperatorConfig::default();
    config.backups.spread_seconds = 0;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let mut ctx = Context::new(cp.client(OPERATOR_USER).await, config);
    ctx.clock = clock.clone();
    let ctx = Arc::new(ctx);
    let assistants: Api<Assistant> = Api::namespaced(admin.clone(), NS);
    let reconcile = || async {
        let a = assistants.get("alice").await.unwrap();
        reconciler::reconcile(Arc::new(a), ctx.clone())
            .await
            .expect("reconcile")
    };
    reconcile().await;
    // Play the PV controller: the claim is Bound.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), NS);
    pvcs.patch_status(
        "alice-data",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}})),
    )
    .await
    .unwrap();
    reconcile().await;
    let snapshots: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NS, &snapshots_resource());
    assert!(snapshots.list(&ListParams::default()).await.unwrap().items.is_empty());

    // Past the first 03:00 UTC slot after the Assistant was made.
    let slot = created_at
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .at(3, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap();
    let slot = if slot.timestamp() <= created_at {
        slot.checked_add(1.day()).unwrap()
    } else {
        slot
    }
    .timestamp();
    clock.set(slot + SignedDuration::from_secs(5));
    reconcile().await;
    let items = snapshots.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(items.len(), 1, "exactly one snapshot");
    let s = &items[0];
    let uid = created.metadata.uid.clone().unwrap();
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["clawhost.dev/assistant-uid"], uid);
    assert_eq!(labels["clawhost.dev/snapshot-kind"], "scheduled");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "clawhost");
    assert!(s.metadata.owner_references.is_none(), "a backup has no owner");
    assert_eq!(s.data["spec"]["source"]["persistentVolumeClaimName"], "alice-data");
    let name = s.metadata.name.clone().unwrap();
    assert_eq!(
        name,
        format!("alice-{}-scheduled", slot.strftime("%Y%m%d-%H%M%S"))
    );

    // Play the snapshot controller: ready.
    snapshots
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyToUse": true, "restoreSize": "1Gi",
                "creationTime": (slot + SignedDuration::from_secs(5)).to_string()}})),
        )
        .await
        .unwrap();
    clock.set(slot + SignedDuration::from_mins(10));
    reconcile().await;
    let a = assistants.get("alice").await.unwrap();
    let backup = a.status.as_ref().and_then(|s| s.backup.clone()).expect("status.backup");
    assert_eq!(backup.last_snapshot.as_deref(), Some(name.as_str()));
    assert_eq!(backup.last_scheduled_run, Some(slot.to_string()));
    assert_eq!(backup.ready_snapshots, Some(1));
    let (status, reason, message) = condition(&a, "BackupHealthy").expect("BackupHealthy");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "SnapshotReady"), "{message}");

    // An idle pass between runs: reads only.
    let since = Timestamp::now();
    clock.set(slot + SignedDuration::from_hours(5));
    reconcile().await;
    let requests = operator_requests(&cp, since);
    let writes: Vec<_> = requests
        .iter()
        .filter(|e| !matches!(e.verb.as_str(), "get" | "list" | "watch"))
        .collect();
    assert!(writes.is_empty(), "an idle pass wrote:\n{}", describe(&writes));
    let snapshot_lists = requests
        .iter()
        .filter(|e| {
            e.object_ref
                .as_ref()
                .and_then(|o| o.resource.as_deref())
                == Some("volumesnapshots")
        })
        .count();
    assert_eq!(snapshot_lists, 1, "one LIST of snapshots per pass");
}
