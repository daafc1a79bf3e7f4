//! The console's backups against a real kube-apiserver with the upstream snapshot CRDs,
//! as the console's least-privilege user (`clawhost rbac console`): it lists an
//! Assistant's snapshots (by uid label, newest first) and its retained claims, "Back up
//! now" writes the request annotation, and the in-place restore's one patch
//! (`suspended: true` + `restoreFrom`) passes the CRD's CEL rules. Without the snapshot CRDs
//! the list is "no VolumeSnapshot API", not an error.

use clawhost::console::ConsoleOptions;
use clawhost::console::cluster::{Cluster, KubeCluster};
use clawhost::console::db::{Admin, NewClientRecord};
use clawhost::console::service::{self, backups};
use serde_json::json;

use crate::support::*;

const CONSOLE_USER: &str = "clawhost-console";
const NS: &str = "clients";

fn snapshot(name: &str, uid: &str, kind: &str) -> serde_json::Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"clawhost.dev/snapshot-kind": kind, "clawhost.dev/assistant-uid": uid,
                                "app.kubernetes.io/managed-by": "clawhost"},
                     "annotations": {"clawhost.dev/source-claim": "alice-data"}},
        "spec": {"source": {"persistentVolumeClaimName": "alice-data"}, "volumeSnapshotClassName": SNAPSHOT_CLASS},
    })
}

#[tokio::test]
async fn console_lists_snapshots_and_restores_in_place_as_its_own_user() {
    let _serial = serial().await;
    let Some(cp) = control_plane_with_snapshots(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    grant_rbac(&admin, "console", CONSOLE_USER).await;
    namespace(&admin, NS).await;
    let a = create_assistant(&admin, &assistant_json(NS, "alice", json!({}))).await;
    let uid = a.metadata.uid.clone().unwrap();
    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    for (name, kind, age, ready) in [
        ("alice-20261201-030000-scheduled", "scheduled", 50, true),
        ("alice-20261202-030000-scheduled", "scheduled", 26, true),
        ("alice-20261203-030000-scheduled", "scheduled", 2, false),
    ] {
        apply_json(
            &admin,
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshot",
            "volumesnapshots",
            Some(NS),
            &snapshot(name, &uid, kind),
        )
        .await;
        let taken = now - hour * age;
        let status = if ready {
            snapshot_ready(name, taken, "1Gi")
        } else {
            json!({"readyToUse": false, "creationTime": taken.to_string()})
        };
        set_snapshot_status(&admin, NS, name, status).await;
    }
    // Another client's snapshot in the same namespace: never listed for alice.
    apply_json(
        &admin,
        "snapshot.storage.k8s.io/v1",
        "VolumeSnapshot",
        "volumesnapshots",
        Some(NS),
        &snapshot(
            "bob-20261203-030000-scheduled",
            "some-other-uid",
            "scheduled",
        ),
    )
    .await;
    // A claim an earlier restore kept.
    apply_json(
        &admin,
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(NS),
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "alice-data", "namespace": NS,
                         "labels": {"clawhost.dev/assistant": "alice", "clawhost.dev/retained": "true"},
                         "annotations": {"clawhost.dev/retained-from": "clients/alice",
                                         "clawhost.dev/replaced-by": "alice-data-1a2b3c4d"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }),
    )
    .await;

    let cluster = KubeCluster::new(cp.client(CONSOLE_USER).await);
    let list = cluster
        .snapshots(NS, &uid)
        .await
        .expect("the console may list snapshots")
        .expect("the API is installed");
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "alice-20261203-030000-scheduled",
            "alice-20261202-030000-scheduled",
            "alice-20261201-030000-scheduled"
        ]
    );
    assert!(!list[0].ready && list[1].ready && list[2].ready);
    assert_eq!(list[1].restore_size.as_deref(), Some("1Gi"));
    let claims = cluster
        .retained_claims(NS, "alice")
        .await
        .expect("the console may list claims");
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].replaced_by.as_deref(),
        Some("alice-data-1a2b3c4d")
    );

    // The service: Back up now, and restore in place, as the console's user.
    let dir = tempfile::tempdir().unwrap();
    let opts = ConsoleOptions {
        namespace: NS.into(),
        ..Default::default()
    };
    let (ctx, admin_id, _) = console_as(&cp, CONSOLE_USER, dir.path(), opts).await;
    let id = ctx
        .db
        .insert_client(
            &NewClientRecord {
                name: "Alice".into(),
                email: "alice@example.com".into(),
                billing_status: "active".into(),
                notes: String::new(),
                namespace: NS.into(),
                assistant_name: "alice".into(),
            },
            service::now(),
        )
        .await
        .unwrap();
    let actor = Admin {
        id: admin_id,
        email: "ops@example.com".into(),
    };
    let request = backups::request_backup(&ctx, &actor, id).await.unwrap();
    let a = get_assistant(&admin, NS, "alice").await.unwrap();
    assert_eq!(
        a.metadata.annotations.unwrap()["clawhost.dev/backup-request"],
        request
    );
    // Pending and unknown snapshots are refused before anything is written.
    let pending = backups::restore_in_place(
        &ctx,
        &actor,
        id,
        "alice-20261203-030000-scheduled",
        &backups::RestoreRequest {
            confirm: "alice".into(),
        },
    )
    .await;
    assert!(
        matches!(pending, Err(service::ActionError::Conflict(ref m)) if m.contains("not ready")),
        "{pending:?}"
    );
    backups::restore_in_place(
        &ctx,
        &actor,
        id,
        "alice-20261202-030000-scheduled",
        &backups::RestoreRequest {
            confirm: "alice".into(),
        },
    )
    .await
    .expect("the one patch passes the CEL rules (restoreFrom together with suspended)");
    let a = get_assistant(&admin, NS, "alice").await.unwrap();
    assert!(a.spec.suspended);
    assert_eq!(
        a.storage().restore_from.unwrap().volume_snapshot_name,
        "alice-20261202-030000-scheduled"
    );
}

#[tokio::test]
async fn console_without_the_snapshot_api_says_so() {
    let _serial = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    grant_rbac(&admin, "console", CONSOLE_USER).await;
    namespace(&admin, NS).await;
    let cluster = KubeCluster::new(cp.client(CONSOLE_USER).await);
    assert_eq!(
        cluster.snapshots(NS, "any-uid").await,
        Ok(None),
        "a 404 on the resource type is no VolumeSnapshot API"
    );
    assert_eq!(cluster.health(), None, "and not an outage");
    assert!(
        cluster
            .retained_claims(NS, "alice")
            .await
            .unwrap()
            .is_empty()
    );
}
