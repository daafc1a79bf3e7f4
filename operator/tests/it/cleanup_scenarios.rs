//! Deletion and in-place restore against the in-memory API server, with a clock the test
//! drives and an in-memory tailnet: which external calls a held deletion repeats, what a
//! failed final snapshot leaves, how often a missing class is said, and the pre-restore
//! snapshot retried after a failed create.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use clawhost::api::Assistant;
use clawhost::config::{FinalSnapshotFailure, OperatorConfig};
use clawhost::reconciler::{self, Context};
use clawhost::tailscale::TailnetApi;
use clawhost_testing::clock::ManualClock;
use clawhost_testing::fake_apiserver::{FakeApiServer, Fault, FaultKind};
use http::Method;
use jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "clients";
const CRD: &str = "apis/clawhost.dev/v1alpha1";
const SNAPSHOTS: &str = "apis/snapshot.storage.k8s.io/v1";
const PVCS: &str = "persistentvolumeclaims";

/// The tailnet: records the devices removed.
#[derive(Default)]
struct Tailnet {
    deleted: Mutex<Vec<String>>,
}

#[async_trait]
impl TailnetApi for Tailnet {
    async fn mint_auth_key(&self, _tags: &[String], _description: &str) -> Result<String, String> {
        Ok("tskey-auth-test".into())
    }
    async fn delete_device(&self, device_id: &str) -> Result<(), String> {
        self.deleted.lock().unwrap().push(device_id.to_string());
        Ok(())
    }
}

struct Harness {
    fake: FakeApiServer,
    clock: Arc<ManualClock>,
    tailnet: Arc<Tailnet>,
    ctx: Arc<Context>,
    /// One at a time: the log test counts lines the others emit too.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

impl Harness {
    fn new(mut config: OperatorConfig) -> Self {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let fake = FakeApiServer::new();
        let clock = Arc::new(ManualClock::new(ts("2026-11-25T02:00:00Z")));
        config.backups.spread_seconds = 0;
        config.backups.ready_deadline_seconds = 86_400;
        config.reconcile.resync_seconds = 86_400;
        let tailnet = Arc::new(Tailnet::default());
        let mut ctx = Context::new(fake.client(), config);
        ctx.clock = clock.clone();
        ctx.tailnet = Some(tailnet.clone());
        Self {
            fake,
            clock,
            tailnet,
            ctx: Arc::new(ctx),
            _one_at_a_time: guard,
        }
    }

    /// `name` (onDelete: Delete), reconciled, its volume Bound, its pod running and
    /// mounting it, its device on the tailnet.
    async fn running(&self, name: &str) {
        self.fake.seed_client(NS, name);
        self.fake.update(CRD, "assistants", NS, name, |o| {
            o["spec"]["storage"] = json!({"onDelete": "Delete"});
        });
        self.reconcile(name).await.unwrap();
        self.fake.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-0"), "namespace": NS},
            "spec": {"containers": [{"name": "gateway", "image": "x"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("{name}-data")}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "gateway", "ready": true, "restartCount": 0, "image": "x", "imageID": "y"}]}
        }));
        self.bound(&format!("{name}-data"));
        self.fake.update(
            "api/v1",
            "secrets",
            NS,
            &format!("{name}-tailscale-state"),
            |o| {
                // device_id "dev-<name>", device_fqdn "clients-<name>.ts.net."
                o["data"] = json!({
                    "device_id": b64(&format!("dev-{name}")),
                    "device_fqdn": b64(&format!("clients-{name}.ts.net.")),
                });
            },
        );
        self.reconcile(name).await.unwrap();
    }

    fn bound(&self, claim: &str) {
        self.fake.update("api/v1", PVCS, NS, claim, |o| {
            o["status"] = json!({"phase": "Bound", "capacity": {"storage": "10Gi"}});
        });
    }

    fn assistant(&self, name: &str) -> Option<Assistant> {
        self.fake
            .get(CRD, "assistants", NS, name)
            .map(|v| serde_json::from_value(v).unwrap())
    }

    async fn reconcile(&self, name: &str) -> Result<Action, reconciler::Error> {
        let a = self.assistant(name).expect("the Assistant exists");
        reconciler::reconcile(Arc::new(a), self.ctx.clone()).await
    }

    /// kubectl delete (the finalizer holds it) and the pod gone.
    fn delete(&self, name: &str) {
        self.fake.update(CRD, "assistants", NS, name, |o| {
            o["metadata"]["deletionTimestamp"] = json!("2026-11-25T04:00:00Z");
        });
        self.fake.remove("api/v1", "pods", NS, &format!("{name}-0"));
    }

    fn snapshots(&self) -> Vec<Value> {
        self.fake.list(SNAPSHOTS, "volumesnapshots")
    }

    fn snapshots_of_kind(&self, kind: &str) -> Vec<Value> {
        self.snapshots()
            .into_iter()
            .filter(|s| s["metadata"]["labels"]["clawhost.dev/snapshot-kind"] == kind)
            .collect()
    }

    fn name(s: &Value) -> String {
        s["metadata"]["name"].as_str().unwrap().to_string()
    }

    fn mark_ready(&self, name: &str) {
        self.fake
            .update(SNAPSHOTS, "volumesnapshots", NS, name, |o| {
                o["status"] = json!({"readyToUse": true, "restoreSize": "10Gi", "creationTime": o["metadata"]["creationTimestamp"]});
            });
    }

    fn mark_failed(&self, name: &str) {
        self.fake
            .update(SNAPSHOTS, "volumesnapshots", NS, name, |o| {
                o["status"] = json!({"readyToUse": false, "error": {"message": "the driver cannot snapshot this volume"}});
            });
    }

    /// Sets the clock (and the server's creation times) to `at`.
    fn at(&self, at: Timestamp) {
        self.clock.set(at);
        self.fake.set_creation_timestamp(&at.to_string());
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// Finding 3: the final snapshot is awaited before any external call, so a held deletion
// does not remove the device again on every pass.
#[tokio::test]
async fn a_pending_final_snapshot_removes_the_device_once() {
    let h = Harness::new(OperatorConfig::default());
    h.running("alice").await;
    h.delete("alice");
    let start = ts("2026-11-25T04:00:00Z");
    h.at(start);
    // Five passes while the final snapshot is being cut.
    for i in 0..5 {
        h.at(start + SignedDuration::from_secs(15 * i));
        h.reconcile("alice").await.unwrap();
    }
    assert!(
        h.assistant("alice").is_some(),
        "held for the final snapshot"
    );
    assert!(
        h.tailnet.deleted.lock().unwrap().is_empty(),
        "nothing external while the final snapshot is pending"
    );
    let finals = h.snapshots_of_kind("final");
    assert_eq!(finals.len(), 1, "{finals:?}");
    h.mark_ready(&Harness::name(&finals[0]));
    for _ in 0..3 {
        if h.assistant("alice").is_none() {
            break;
        }
        h.reconcile("alice").await.unwrap();
    }
    assert!(h.assistant("alice").is_none(), "released");
    assert_eq!(
        *h.tailnet.deleted.lock().unwrap(),
        ["dev-alice"],
        "exactly one device removal"
    );
    assert!(h.fake.get("api/v1", PVCS, NS, "alice-data").is_none());
}

// Finding 2: a failed final snapshot under `onFailure: Proceed` keeps the newest ready
// snapshot (relabelled final, expiring like one), and deletes the rest.
#[tokio::test]
async fn a_failed_final_snapshot_under_proceed_keeps_the_newest_ready_one() {
    let mut config = OperatorConfig::default();
    config.backups.final_snapshot.on_failure = FinalSnapshotFailure::Proceed;
    let h = Harness::new(config);
    h.running("alice").await;
    // Two scheduled snapshots, on two days, both ready.
    for day in ["2026-11-25T03:00:00Z", "2026-11-26T03:00:00Z"] {
        h.at(ts(day));
        h.reconcile("alice").await.unwrap();
        for s in h.snapshots_of_kind("scheduled") {
            h.mark_ready(&Harness::name(&s));
        }
    }
    let mut scheduled: Vec<String> = h
        .snapshots_of_kind("scheduled")
        .iter()
        .map(Harness::name)
        .collect();
    scheduled.sort();
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    let newest = scheduled[1].clone();

    let deleted_at = ts("2026-11-26T12:00:00Z");
    h.at(deleted_at);
    h.delete("alice");
    h.reconcile("alice").await.unwrap();
    let finals = h.snapshots_of_kind("final");
    assert_eq!(finals.len(), 1, "{finals:?}");
    h.mark_failed(&Harness::name(&finals[0]));
    for _ in 0..3 {
        if h.assistant("alice").is_none() {
            break;
        }
        h.reconcile("alice").await.unwrap();
    }
    assert!(h.assistant("alice").is_none(), "Proceed deletes anyway");
    let kept = h
        .fake
        .get(SNAPSHOTS, "volumesnapshots", NS, &newest)
        .expect("the newest ready snapshot survives");
    assert_eq!(
        kept["metadata"]["labels"]["clawhost.dev/snapshot-kind"],
        "final"
    );
    assert_eq!(
        kept["metadata"]["annotations"]["clawhost.dev/expires-at"],
        (deleted_at + SignedDuration::from_hours(30 * 24)).to_string()
    );
    assert!(
        h.fake
            .get(SNAPSHOTS, "volumesnapshots", NS, &scheduled[0])
            .is_none(),
        "the older one goes"
    );
    assert!(h.fake.get("api/v1", PVCS, NS, "alice-data").is_none());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Finding 6: deleting an Assistant asks discovery the same question as everyone else, so a
// missing class is not forgotten and said again.
#[tokio::test]
async fn a_missing_class_is_warned_once_through_a_deletion() {
    let mut config = OperatorConfig::default();
    config.backups.volume_snapshot_class_name = Some("csi-missing".into());
    let h = Harness::new(config);
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    h.running("alice").await;
    h.running("bob").await;
    // Alice goes without a final snapshot (the class is missing: Block would hold her).
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["metadata"]["annotations"]["clawhost.dev/skip-final-snapshot"] = json!("true");
    });
    h.delete("alice");
    for _ in 0..3 {
        if h.assistant("alice").is_none() {
            break;
        }
        h.reconcile("alice").await.unwrap();
    }
    assert!(h.assistant("alice").is_none());
    h.reconcile("bob").await.unwrap();
    let logs = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let count = |needle: &str| logs.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count("VolumeSnapshotClass \"csi-missing\" not found"),
        1,
        "{logs}"
    );
    assert_eq!(count("the VolumeSnapshot API is available"), 0, "{logs}");
    let class_gets = h
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("volumesnapshotclasses"))
        .count();
    assert_eq!(class_gets, 1, "one question about the class");
}

// Finding 9: the pre-restore snapshot waits for the pod to stop mounting the outgoing claim,
// and a failed create is tried again on the next pass.
#[tokio::test]
async fn a_failed_pre_restore_snapshot_is_taken_on_a_later_pass() {
    let h = Harness::new(OperatorConfig::default());
    h.running("alice").await;
    h.fake.put(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "snap-x", "namespace": NS},
        "spec": {"source": {"persistentVolumeClaimName": "elsewhere-data"}},
        "status": {"readyToUse": true, "restoreSize": "10Gi", "creationTime": "2026-11-24T00:00:00Z"}
    }));
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["spec"]["suspended"] = json!(true);
        o["spec"]["storage"]["restoreFrom"] = json!({"volumeSnapshotName": "snap-x"});
    });
    h.fake.inject(Fault {
        method: Some(Method::POST),
        path_contains: "volumesnapshots".into(),
        times: 1,
        kind: FaultKind::Status(500),
    });
    let pre_restore = |h: &Harness| h.snapshots_of_kind("pre-restore");
    // The restore pass: alice-data is retained; the pod still mounts it: no snapshot yet.
    h.reconcile("alice").await.unwrap();
    let old = h.fake.get("api/v1", PVCS, NS, "alice-data").unwrap();
    assert_eq!(old["metadata"]["labels"]["clawhost.dev/retained"], "true");
    assert!(pre_restore(&h).is_empty());
    // The pod goes (suspended): the next pass tries, and the server fails it.
    h.fake.remove("api/v1", "pods", NS, "alice-0");
    h.reconcile("alice").await.unwrap();
    assert!(pre_restore(&h).is_empty(), "the injected 500");
    // The pass after that takes it.
    h.reconcile("alice").await.unwrap();
    let taken = pre_restore(&h);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(
        taken[0]["spec"]["source"]["persistentVolumeClaimName"],
        "alice-data"
    );
    // Once only.
    h.reconcile("alice").await.unwrap();
    assert_eq!(pre_restore(&h).len(), 1);
}
