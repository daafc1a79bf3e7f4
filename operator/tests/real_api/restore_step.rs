//! Restore and the final snapshot on the real API server, in-process as the operator's
//! least-privilege user (the acceptance suite, `backups.rs`, runs as admin). What this adds:
//! the restore source read before and after the snapshot API exists (a 404 for a missing
//! resource type is not a missing snapshot), the requeue pace while waiting for it, the
//! X → Y → X restore that would silently remount a since-written claim, and a deletion that
//! leaves the claims earlier restores retained. The test plays the snapshot controller
//! (`/status`) and the PV controller (claims Bound).

use std::sync::Arc;
use std::time::Duration;

use clawhost::api::snapshot::VolumeSnapshot;
use clawhost::api::{
    ASSISTANT_UID_LABEL, Assistant, EXPIRES_AT_ANNOTATION, REPLACED_BY_ANNOTATION, RestoreFrom,
    SNAPSHOT_KIND_LABEL,
};
use clawhost::children::{RETAINED_LABEL, data_claim_name};
use clawhost::config::OperatorConfig;
use clawhost::reconciler::{self, Context};
use clawhost_testing::clock::ManualClock;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::{
    OPERATOR_USER, Operator, SNAPSHOT_CLASS, assistant_json, backups_config, condition,
    control_plane, control_plane_with_snapshots, create_assistant, create_snapshot, describe,
    events_for, install_snapshot_api, mark_bound, operator_namespace, operator_requests,
    patch_assistant, serial, set_snapshot_status, snapshot_crds, snapshot_ready, snapshots,
    wait_for,
};

const NS: &str = "restore-step";

struct Step {
    admin: Client,
    ctx: Arc<Context>,
}

impl Step {
    /// A fresh Context (a fresh snapshot-API discovery), as the operator's user.
    async fn new(cp: &clawhost_envtest::ControlPlane, admin: &Client) -> Self {
        let mut config = OperatorConfig::default();
        config.backups.volume_snapshot_class_name = Some(SNAPSHOT_CLASS.into());
        let client = cp.client(OPERATOR_USER).await;
        let mut ctx = Context::new(client.clone(), config);
        ctx.clock = Arc::new(ManualClock::new(Timestamp::now()));
        ctx.recorder = Some(reconciler::events::EventPublisher::new(
            client,
            Reporter {
                controller: "clawhost".into(),
                instance: None,
            },
        ));
        Self {
            admin: admin.clone(),
            ctx: Arc::new(ctx),
        }
    }

    async fn get(&self, name: &str) -> Option<Assistant> {
        Api::<Assistant>::namespaced(self.admin.clone(), NS)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn reconcile(&self, name: &str) -> Action {
        let a = self.get(name).await.expect("the Assistant exists");
        // On the heap: a debug build's reconcile future is large for a test thread's stack.
        Box::pin(reconciler::reconcile(Arc::new(a), self.ctx.clone()))
            .await
            .unwrap_or_else(|e| panic!("reconcile {name}: {e}"))
    }

    async fn config_valid(&self, name: &str) -> (String, String, String) {
        condition(&self.get(name).await.unwrap(), "ConfigValid").unwrap()
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.admin.clone(), NS)
    }

    async fn claim(&self, name: &str) -> Option<PersistentVolumeClaim> {
        self.claims().get_opt(name).await.unwrap()
    }

    /// A snapshot made by hand (of some claim), ready at once when `ready`.
    async fn snapshot(&self, name: &str, ready: bool) {
        let s: VolumeSnapshot = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"source": {"persistentVolumeClaimName": "elsewhere-data"},
                     "volumeSnapshotClassName": SNAPSHOT_CLASS},
        }))
        .unwrap();
        create_snapshot(&self.admin, NS, &s, false).await.unwrap();
        if ready {
            self.ready(name).await;
        }
    }

    async fn ready(&self, name: &str) {
        set_snapshot_status(
            &self.admin,
            NS,
            name,
            snapshot_ready(name, Timestamp::now(), "1Gi"),
        )
        .await;
    }
}

fn restore_from(snapshot: &str) -> Value {
    json!({"spec": {"suspended": true, "storage": {"restoreFrom": {"volumeSnapshotName": snapshot}}}})
}

fn claim_for(base: &str, snapshot: &str) -> String {
    data_claim_name(
        base,
        Some(&RestoreFrom {
            volume_snapshot_name: snapshot.into(),
        }),
    )
}

fn mounted(sts: &StatefulSet) -> Vec<String> {
    sts.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
        .collect()
}

fn replaced_by(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.annotations()
        .get(REPLACED_BY_ANNOTATION)
        .map(String::as_str)
}

fn retained(pvc: &PersistentVolumeClaim) -> bool {
    pvc.labels().get(RETAINED_LABEL).map(String::as_str) == Some("true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_final_snapshot_as_the_operator() {
    let _one = serial().await;
    if !snapshot_crds()
        .join("snapshot.storage.k8s.io_volumesnapshots.yaml")
        .is_file()
    {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "the snapshot CRDs are missing at {}",
            snapshot_crds().display()
        );
        return;
    }
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let admin = operator_namespace(&cp, NS, true).await;
    let restore_new = |snapshot: &str| json!({"storage": {"size": "1Gi", "restoreFrom": {"volumeSnapshotName": snapshot}}});

    // 1. No snapshot API yet: the GET answers 404 for the resource type, which is not "the
    //    snapshot does not exist"; nothing is created; the slow requeue.
    let step = Step::new(&cp, &admin).await;
    create_assistant(&admin, &assistant_json(NS, "fresh", restore_new("seed"))).await;
    assert_eq!(
        step.reconcile("fresh").await,
        Action::requeue(Duration::from_secs(60))
    );
    let (status, reason, message) = step.config_valid("fresh").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RestoreSourceNotReady")
    );
    assert!(
        message.contains("no VolumeSnapshot API"),
        "names the missing API: {message}"
    );
    let fresh_claim = claim_for("fresh", "seed");
    assert!(step.claim(&fresh_claim).await.is_none());
    // Deleting (onDelete: Delete) without the API: no final snapshot can be taken; said
    // once, and the deletion goes on.
    create_assistant(
        &admin,
        &assistant_json(
            NS,
            "gone",
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        ),
    )
    .await;
    step.reconcile("gone").await;
    mark_bound(&admin, NS, "gone-data").await;
    Api::<Assistant>::namespaced(admin.clone(), NS)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    step.reconcile("gone").await;
    assert!(step.get("gone").await.is_none(), "deleted in one pass");
    assert!(
        step.claim("gone-data")
            .await
            .is_none_or(|c| c.metadata.deletion_timestamp.is_some())
    );
    assert_eq!(
        events_for(&admin, NS, "gone", "FinalSnapshotSkipped").await,
        1
    );

    // 2. The API appears: the snapshot does not exist; then it exists but is being cut (the
    //    quick requeue); then it is ready and the claim is made from it.
    install_snapshot_api(&cp).await;
    let step = Step::new(&cp, &admin).await;
    assert_eq!(
        step.reconcile("fresh").await,
        Action::requeue(Duration::from_secs(60))
    );
    let (_, reason, message) = step.config_valid("fresh").await;
    assert_eq!(reason, "RestoreSourceNotReady");
    assert!(message.contains("seed does not exist"), "{message}");
    step.snapshot("seed", false).await;
    assert_eq!(
        step.reconcile("fresh").await,
        Action::requeue(Duration::from_secs(15)),
        "a snapshot being cut is looked at again soon"
    );
    assert!(
        step.config_valid("fresh")
            .await
            .2
            .contains("not ready to use yet")
    );
    assert!(step.claim(&fresh_claim).await.is_none());
    step.ready("seed").await;
    step.reconcile("fresh").await;
    let made = step
        .claim(&fresh_claim)
        .await
        .expect("the claim made from the snapshot");
    let source = made.spec.unwrap().data_source.unwrap();
    assert_eq!(
        (source.kind.as_str(), source.name.as_str()),
        ("VolumeSnapshot", "seed")
    );
    assert_eq!(step.config_valid("fresh").await.0, "True");

    // An in-place restore stuck on a missing snapshot, then the Assistant deleted: the
    // claim still in use gets the final snapshot and is the one deleted.
    create_assistant(
        &admin,
        &assistant_json(
            NS,
            "bob",
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        ),
    )
    .await;
    step.reconcile("bob").await;
    mark_bound(&admin, NS, "bob-data").await;
    step.reconcile("bob").await;
    patch_assistant(&admin, NS, "bob", restore_from("never-taken")).await;
    step.reconcile("bob").await;
    assert_eq!(step.config_valid("bob").await.1, "RestoreSourceNotReady");
    Api::<Assistant>::namespaced(admin.clone(), NS)
        .delete("bob", &DeleteParams::default())
        .await
        .unwrap();
    step.reconcile("bob").await;
    let bob_final = snapshots(&admin, NS)
        .await
        .into_iter()
        .find(|s| s.labels().get("clawhost.dev/assistant").map(String::as_str) == Some("bob"))
        .expect("a final snapshot of the claim in use");
    assert_eq!(
        bob_final
            .spec
            .source
            .persistent_volume_claim_name
            .as_deref(),
        Some("bob-data")
    );
    assert!(
        step.claim("bob-data")
            .await
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none())
    );
    step.ready(&bob_final.name_any()).await;
    step.reconcile("bob").await;
    assert!(step.get("bob").await.is_none());
    assert!(
        step.claim("bob-data")
            .await
            .is_none_or(|c| c.metadata.deletion_timestamp.is_some())
    );

    // 3. In place, X then Y then X again (onDelete: Delete, so claims have an owner).
    let restores_started = Timestamp::now();
    create_assistant(
        &admin,
        &assistant_json(
            NS,
            "alice",
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        ),
    )
    .await;
    step.reconcile("alice").await;
    mark_bound(&admin, NS, "alice-data").await;
    step.reconcile("alice").await;
    let uid = step.get("alice").await.unwrap().uid().unwrap();
    step.snapshot("x", true).await;
    step.snapshot("y", true).await;
    let (claim_x, claim_y) = (claim_for("alice", "x"), claim_for("alice", "y"));

    patch_assistant(&admin, NS, "alice", restore_from("x")).await;
    step.reconcile("alice").await;
    let old = step
        .claim("alice-data")
        .await
        .expect("the old claim is kept");
    assert!(retained(&old) && old.owner_references().is_empty());
    assert_eq!(replaced_by(&old), Some(claim_x.as_str()));
    assert_eq!(
        events_for(&admin, NS, "alice", "VolumeRetainedForRestore").await,
        1
    );
    let pre_restore: Vec<VolumeSnapshot> = snapshots(&admin, NS)
        .await
        .into_iter()
        .filter(|s| s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str) == Some("pre-restore"))
        .collect();
    assert_eq!(pre_restore.len(), 1, "{pre_restore:?}");
    assert_eq!(pre_restore[0].labels()[ASSISTANT_UID_LABEL], uid);
    assert!(step.claim(&claim_x).await.is_some());
    mark_bound(&admin, NS, &claim_x).await;
    step.reconcile("alice").await;

    patch_assistant(&admin, NS, "alice", restore_from("y")).await;
    step.reconcile("alice").await;
    let x = step.claim(&claim_x).await.unwrap();
    assert!(retained(&x) && x.owner_references().is_empty());
    assert_eq!(replaced_by(&x), Some(claim_y.as_str()));
    mark_bound(&admin, NS, &claim_y).await;
    step.reconcile("alice").await;
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), NS);
    assert_eq!(
        mounted(&sts.get("alice").await.unwrap()),
        [claim_y.as_str()]
    );

    // Back to X: its claim exists, but it is the since-written volume a restore replaced,
    // not a fresh copy of X. It is not mounted; the current claim stays and stays live.
    patch_assistant(&admin, NS, "alice", restore_from("x")).await;
    step.reconcile("alice").await;
    let (status, reason, message) = step.config_valid("alice").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "VolumeBelongsToAnotherAssistant")
    );
    assert!(
        message.contains(&format!("replaced by an earlier restore (now {claim_y})")),
        "{message}"
    );
    assert_eq!(
        mounted(&sts.get("alice").await.unwrap()),
        [claim_y.as_str()]
    );
    assert!(!retained(&step.claim(&claim_y).await.unwrap()));
    // Point it back at Y (the claim it has): valid again.
    patch_assistant(&admin, NS, "alice", restore_from("y")).await;
    step.reconcile("alice").await;
    assert_eq!(step.config_valid("alice").await.0, "True");

    // 4. Delete: a final snapshot of the current claim holds the deletion until ready; the
    //    claims retained by the restores stay; the restores never deleted a claim.
    Api::<Assistant>::namespaced(admin.clone(), NS)
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..3 {
        step.reconcile("alice").await;
    }
    let finals: Vec<VolumeSnapshot> = snapshots(&admin, NS)
        .await
        .into_iter()
        .filter(|s| {
            s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str) == Some("final")
                && s.labels().get(ASSISTANT_UID_LABEL) == Some(&uid)
        })
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!(
        step.claim(&claim_y)
            .await
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
        "the volume waits for its final snapshot"
    );
    let before_ready = Timestamp::now();
    let pvc_deletes = |since: Timestamp| {
        operator_requests(&cp, since)
            .into_iter()
            .filter(|e| e.verb == "delete" && e.resource() == "persistentvolumeclaims")
            .collect::<Vec<_>>()
    };
    let deletes = pvc_deletes(restores_started);
    assert!(
        deletes.is_empty(),
        "no claim deleted before the final snapshot is ready:\n{}",
        describe(&deletes.iter().collect::<Vec<_>>())
    );
    step.ready(&finals[0].name_any()).await;
    for _ in 0..5 {
        if step.get("alice").await.is_none() {
            break;
        }
        step.reconcile("alice").await;
    }
    assert!(step.get("alice").await.is_none(), "the deletion went on");
    let deletes = pvc_deletes(before_ready);
    let deleted: Vec<String> = deletes
        .iter()
        .filter_map(|e| e.object_ref.as_ref().and_then(|o| o.name.clone()))
        .collect();
    assert_eq!(deleted, [claim_y.as_str()], "only the current claim");
    for kept in ["alice-data", claim_x.as_str()] {
        let c = step.claim(kept).await.expect("retained by a restore: kept");
        assert!(c.metadata.deletion_timestamp.is_none() && retained(&c));
    }
    let left: Vec<String> = snapshots(&admin, NS)
        .await
        .iter()
        .filter(|s| s.labels().get(ASSISTANT_UID_LABEL).map(String::as_str) == Some(&uid))
        .map(|s| s.name_any())
        .collect();
    assert_eq!(left, [finals[0].name_any()], "alice's others are gone");
}

/// The janitor runs in the real binary, at start, as the operator's least-privilege user:
/// an expired final snapshot of a long-deleted Assistant goes; one not yet expired, and one
/// that is not clawhost's, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_deletes_expired_final_snapshots_at_start() {
    let _one = serial().await;
    let Some(cp) = control_plane_with_snapshots(false).await else {
        return;
    };
    let ns = "janitor";
    let admin = operator_namespace(&cp, ns, false).await;
    let now = Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    for (name, managed, expires_at) in [
        ("old-20261001-120000-final", true, now - day),
        ("new-20261201-120000-final", true, now + 30 * day),
        ("theirs-final", false, now - day),
    ] {
        let mut labels = json!({SNAPSHOT_KIND_LABEL: "final"});
        if managed {
            labels["app.kubernetes.io/managed-by"] = "clawhost".into();
        }
        let s: VolumeSnapshot = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels,
                         "annotations": {EXPIRES_AT_ANNOTATION: expires_at.to_string()}},
            "spec": {"source": {"persistentVolumeClaimName": "gone-data"},
                     "volumeSnapshotClassName": SNAPSHOT_CLASS},
        }))
        .unwrap();
        create_snapshot(&admin, ns, &s, false).await.unwrap();
    }
    let mut op = Operator::start(&cp, Some(&backups_config(""))).await;
    let names = |admin: Client| async move {
        snapshots(&admin, ns)
            .await
            .iter()
            .map(|s| s.name_any())
            .collect::<Vec<_>>()
    };
    wait_for(
        "the expired final snapshot deleted",
        Duration::from_secs(60),
        || {
            let left = names(admin.clone());
            async move {
                let left = left.await;
                (!left.iter().any(|n| n.starts_with("old-"))).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        names(admin.clone()).await,
        ["new-20261201-120000-final", "theirs-final"]
    );
    assert!(
        op.logs().contains("deleted an expired final snapshot"),
        "one log line per deletion"
    );
    op.kill();
}

/// Finding 1 of the review: an in-place restore stuck on a snapshot that is not ready (the
/// restore never ran), on a claim from before uids were recorded (owned by the Assistant,
/// no uid annotation), then the Assistant deleted under `onDelete: Delete`: the claim in use
/// gets its final snapshot, and the operator deletes it itself once that is ready; no
/// claim is deleted before (nothing is left to the garbage collector).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_restore_still_snapshots_the_claim_in_use_before_deleting_it() {
    let _one = serial().await;
    let Some(cp) = control_plane_with_snapshots(false).await else {
        return;
    };
    let admin = operator_namespace(&cp, NS, true).await;
    let step = Step::new(&cp, &admin).await;
    let started = Timestamp::now();
    create_assistant(
        &admin,
        &assistant_json(
            NS,
            "alice",
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        ),
    )
    .await;
    step.reconcile("alice").await;
    mark_bound(&admin, NS, "alice-data").await;
    step.reconcile("alice").await;
    // The snapshot to restore from, still being cut.
    step.snapshot("x", false).await;
    patch_assistant(&admin, NS, "alice", restore_from("x")).await;
    step.reconcile("alice").await;
    assert_eq!(step.config_valid("alice").await.1, "RestoreSourceNotReady");
    // The claim predates the uid annotation: only its ownerReference says whose it is.
    let claims = step.claims();
    claims
        .patch(
            "alice-data",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"annotations": {clawhost::children::ASSISTANT_UID_ANNOTATION: null}}}),
            ),
        )
        .await
        .unwrap();
    let owned = step.claim("alice-data").await.unwrap();
    assert_eq!(
        owned.owner_references().len(),
        1,
        "owned: the GC would take it"
    );

    Api::<Assistant>::namespaced(admin.clone(), NS)
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..3 {
        step.reconcile("alice").await;
    }
    let finals: Vec<VolumeSnapshot> = snapshots(&admin, NS)
        .await
        .into_iter()
        .filter(|s| s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str) == Some("final"))
        .collect();
    assert_eq!(
        finals.len(),
        1,
        "a final snapshot of the claim in use: {finals:?}"
    );
    assert_eq!(
        finals[0]
            .spec
            .source
            .persistent_volume_claim_name
            .as_deref(),
        Some("alice-data")
    );
    assert!(step.get("alice").await.is_some(), "held until it is ready");
    let pvc_deletes = |since: Timestamp| {
        cp.audit_events()
            .into_iter()
            .filter(|e| {
                e.verb == "delete"
                    && e.resource() == "persistentvolumeclaims"
                    && e.request_received_timestamp
                        .parse::<Timestamp>()
                        .is_ok_and(|t| t >= since)
            })
            .collect::<Vec<_>>()
    };
    let early = pvc_deletes(started);
    assert!(
        early.is_empty(),
        "no claim deleted before the final snapshot is ready:\n{}",
        describe(&early.iter().collect::<Vec<_>>())
    );
    let before_ready = Timestamp::now();
    step.ready(&finals[0].name_any()).await;
    for _ in 0..3 {
        if step.get("alice").await.is_none() {
            break;
        }
        step.reconcile("alice").await;
    }
    assert!(step.get("alice").await.is_none(), "the deletion went on");
    let deletes = pvc_deletes(before_ready);
    let by_operator: Vec<(String, String)> = deletes
        .iter()
        .map(|e| {
            (
                e.user.username.clone(),
                e.object_ref
                    .as_ref()
                    .and_then(|o| o.name.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        by_operator,
        [(OPERATOR_USER.to_string(), "alice-data".to_string())],
        "the operator deleted the claim itself, after its final snapshot"
    );
    let left: Vec<String> = snapshots(&admin, NS)
        .await
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert!(
        left.contains(&finals[0].name_any()),
        "the final snapshot stays: {left:?}"
    );
}
