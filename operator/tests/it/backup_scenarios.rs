//! The backup step against the in-memory API server, with a clock the test drives: the
//! schedule, requests, refusals and API faults, by the requests the operator really sends.

use std::sync::Arc;
use std::time::Duration;

use clawhost::api::{Assistant, AssistantStatus};
use clawhost::config::OperatorConfig;
use clawhost::reconciler::{self, Context};
use clawhost_testing::clock::ManualClock;
use clawhost_testing::fake_apiserver::{FakeApiServer, Fault, FaultKind, Recorded};
use http::Method;
use jiff::Timestamp;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "clients";
const CRD: &str = "apis/clawhost.dev/v1alpha1";
const SNAPSHOTS: &str = "apis/snapshot.storage.k8s.io/v1";

struct Harness {
    fake: FakeApiServer,
    clock: Arc<ManualClock>,
    ctx: Arc<Context>,
    /// These scenarios run one at a time: the log test counts lines that the others emit
    /// too, and tracing caches per log line whether anyone listens.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

impl Harness {
    /// The fake stamps objects created 2026-11-25T00:00:00Z until told otherwise; the clock
    /// starts at 02:00 that day. Daily at 03:00 UTC, no spread (the slot is the run time), a day to get ready.
    fn new() -> Self {
        let mut config = OperatorConfig::default();
        config.backups.spread_seconds = 0;
        config.backups.ready_deadline_seconds = 86_400;
        Self::with_config(config)
    }
    fn with_config(mut config: OperatorConfig) -> Self {
        let fake = FakeApiServer::new();
        let clock = Arc::new(ManualClock::new(ts("2026-11-25T02:00:00Z")));
        // A day's resync: the backup step's own requeue shows.
        config.reconcile.resync_seconds = 86_400;
        let mut ctx = Context::new(fake.client(), config);
        ctx.clock = clock.clone();
        ctx.recorder = Some(reconciler::events::EventPublisher::new(
            fake.client(),
            kube::runtime::events::Reporter {
                controller: "clawhost".into(),
                instance: None,
            },
        ));
        Self {
            fake,
            clock,
            ctx: Arc::new(ctx),
            _one_at_a_time: ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
    /// Alice, reconciled once, her volume Bound and her pod running.
    async fn running(&self) {
        self.fake.seed_client(NS, "alice");
        self.reconcile().await;
        self.fake.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "alice-0", "namespace": NS},
            "status": {"phase": "Running", "containerStatuses": [{"name": "gateway", "ready": true, "restartCount": 0, "image": "x", "imageID": "y"}]}
        }));
        self.fake
            .update("api/v1", "persistentvolumeclaims", NS, "alice-data", |o| {
                o["status"] = json!({"phase": "Bound", "capacity": {"storage": "10Gi"}});
            });
        // On the tailnet: Running, so the ordinary resync is the slow one.
        self.fake
            .update("api/v1", "secrets", NS, "alice-tailscale-state", |o| {
                o["data"] = json!({"device_fqdn": "Y2xpZW50cy1hbGljZS50cy5uZXQu"});
            });
        self.reconcile().await;
        assert_eq!(self.status().phase, Some(clawhost::api::Phase::Running));
    }
    fn assistant(&self) -> Assistant {
        serde_json::from_value(self.fake.get(CRD, "assistants", NS, "alice").unwrap()).unwrap()
    }
    async fn reconcile(&self) -> Action {
        reconciler::reconcile(Arc::new(self.assistant()), self.ctx.clone())
            .await
            .expect("a backup problem never fails the reconcile")
    }
    /// Sets the clock (and the server's creation times) to `at`.
    fn at(&self, at: &str) {
        self.clock.set(ts(at));
        self.fake.set_creation_timestamp(at);
    }
    fn status(&self) -> AssistantStatus {
        self.assistant().status.expect("status written")
    }
    fn backup_healthy(&self) -> (String, String, String) {
        let s = self.status();
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "BackupHealthy")
            .expect("BackupHealthy");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }
    fn snapshots(&self) -> Vec<Value> {
        self.fake.list(SNAPSHOTS, "volumesnapshots")
    }
    fn snapshot_requests(&self) -> Vec<String> {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path.contains("snapshot.storage.k8s.io"))
            .map(|r| r.summary())
            .collect()
    }
    fn writes(&self) -> Vec<String> {
        self.fake.writes().iter().map(|r| r.summary()).collect()
    }
    /// Notes of the Events with this reason.
    fn events(&self, reason: &str) -> Vec<String> {
        self.fake
            .list("apis/events.k8s.io/v1", "events")
            .iter()
            .filter(|e| e["reason"] == reason)
            .map(|e| e["note"].as_str().unwrap_or_default().to_string())
            .collect()
    }
    fn snapshot_count(&self, kind: &str, outcome: &str) -> u64 {
        self.ctx
            .metrics
            .snapshots
            .get_or_create(&clawhost::metrics::SnapshotLabel {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .get()
    }
    fn mark_ready(&self, name: &str) {
        self.fake
            .update(SNAPSHOTS, "volumesnapshots", NS, name, |o| {
                o["status"] = json!({"readyToUse": true, "restoreSize": "10Gi", "creationTime": o["metadata"]["creationTimestamp"]});
            });
    }
    fn annotate(&self, key: &str, value: &str) {
        self.fake.update(CRD, "assistants", NS, "alice", |o| {
            o["metadata"]["annotations"][key] = json!(value);
        });
    }
}

fn requeue(secs: u64) -> Action {
    Action::requeue(Duration::from_secs(secs))
}

#[tokio::test]
async fn the_schedule_takes_one_snapshot_per_slot_and_nothing_between() {
    let h = Harness::new();
    h.running().await;
    // 02:00, the Assistant made at 00:00: the first slot is 03:00, nothing yet.
    assert!(h.snapshots().is_empty());
    let backup = h.status().backup.expect("status.backup");
    assert_eq!(backup.next_run.as_deref(), Some("2026-11-25T03:00:00Z"));
    let (status, reason, _) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AwaitingFirstSnapshot")
    );
    // The reconcile comes back just after the slot.
    assert_eq!(h.reconcile().await, requeue(3601));

    h.at("2026-11-25T03:00:01Z");
    h.fake.clear_requests();
    h.reconcile().await;
    let posts: Vec<String> = h
        .snapshot_requests()
        .into_iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    assert_eq!(posts, ["POST volumesnapshots"]);
    let snaps = h.snapshots();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!(s["metadata"]["name"], "alice-20261125-030000-scheduled");
    let uid = h.assistant().metadata.uid.unwrap();
    assert_eq!(
        s["metadata"]["labels"]["clawhost.dev/assistant-uid"],
        uid.as_str()
    );
    assert_eq!(
        s["metadata"]["labels"]["clawhost.dev/snapshot-kind"],
        "scheduled"
    );
    assert!(s["metadata"].get("ownerReferences").is_none(), "{s}");
    assert_eq!(
        s["spec"]["source"]["persistentVolumeClaimName"],
        "alice-data"
    );
    let backup = h.status().backup.unwrap();
    assert_eq!(
        backup.last_scheduled_run.as_deref(),
        Some("2026-11-25T03:00:00Z")
    );
    assert_eq!(backup.next_run.as_deref(), Some("2026-11-26T03:00:00Z"));

    // Again at once: the slot is handled; the pending snapshot is polled every 30 s.
    h.fake.clear_requests();
    assert_eq!(h.reconcile().await, requeue(30));
    assert_eq!(h.snapshot_requests(), ["LIST volumesnapshots"]);

    // Ready: BackupHealthy True, then an idle pass between runs writes nothing.
    h.mark_ready("alice-20261125-030000-scheduled");
    h.at("2026-11-25T04:00:00Z");
    h.reconcile().await;
    let (status, reason, message) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SnapshotReady"),
        "{message}"
    );
    let backup = h.status().backup.unwrap();
    assert_eq!(
        backup.last_snapshot.as_deref(),
        Some("alice-20261125-030000-scheduled")
    );
    assert_eq!(backup.ready_snapshots, Some(1));
    h.fake.clear_requests();
    h.at("2026-11-25T12:00:00Z");
    let action = h.reconcile().await;
    assert_eq!(h.writes(), Vec::<String>::new(), "an idle pass wrote");
    assert_eq!(h.snapshot_requests(), ["LIST volumesnapshots"]);
    // Idle: back just after tomorrow's slot.
    assert_eq!(action, requeue(15 * 3600 + 1));
}

#[tokio::test]
async fn downtime_gives_one_catch_up_and_a_lost_status_write_does_not_double() {
    let h = Harness::new();
    h.running().await;
    // Five days later: one snapshot, for the latest slot.
    h.at("2026-11-30T05:00:00Z");
    h.reconcile().await;
    let names: Vec<Value> = h
        .snapshots()
        .iter()
        .map(|s| s["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("alice-20261130-030000-scheduled")]);
    // status.backup lost: the slot is read off the snapshot, nothing is created.
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["status"].as_object_mut().unwrap().remove("backup");
    });
    h.fake.clear_requests();
    h.reconcile().await;
    assert!(!h.snapshot_requests().iter().any(|r| r.starts_with("POST")));
    assert_eq!(
        h.status().backup.unwrap().last_scheduled_run.as_deref(),
        Some("2026-11-30T03:00:00Z")
    );
}

#[tokio::test]
async fn a_500_on_the_list_says_so_and_retries_in_30s() {
    let h = Harness::new();
    h.running().await;
    h.at("2026-11-25T03:00:01Z");
    h.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/volumesnapshots".into(),
        times: 1,
        kind: FaultKind::Status(500),
    });
    assert_eq!(h.reconcile().await, requeue(30));
    assert!(h.snapshots().is_empty(), "nothing is created blind");
    let (_, reason, message) = h.backup_healthy();
    assert!(
        message.contains("could not reach the API server"),
        "{reason}: {message}"
    );
    // Next pass: the server answers again and the slot is taken.
    h.reconcile().await;
    assert_eq!(h.snapshots().len(), 1);
}

#[tokio::test]
async fn a_404_mid_run_asks_discovery_again() {
    let h = Harness::new();
    h.running().await;
    // The CRDs are removed while the operator runs (discovery said Available).
    h.fake.set_snapshot_api(false);
    h.fake.clear_requests();
    h.reconcile().await;
    assert_eq!(h.snapshot_requests(), ["LIST volumesnapshots"]);
    let (status, reason, _) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SnapshotAPIUnavailable")
    );
    // The next pass asks discovery once, then believes it for 10 minutes.
    h.fake.clear_requests();
    h.reconcile().await;
    h.reconcile().await;
    assert_eq!(
        h.snapshot_requests(),
        ["GET /apis/snapshot.storage.k8s.io/v1"]
    );
    // Reinstalled: noticed within 10 minutes, without a restart.
    h.fake.set_snapshot_api(true);
    h.at("2026-11-25T02:11:00Z");
    h.reconcile().await;
    let (status, reason, _) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AwaitingFirstSnapshot")
    );
}

#[tokio::test]
async fn without_the_snapshot_api_it_says_so_once_and_calls_nothing() {
    let h = Harness::new();
    h.fake.set_snapshot_api(false);
    h.running().await;
    let (status, reason, message) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SnapshotAPIUnavailable")
    );
    assert!(message.contains("everything else works"), "{message}");
    assert_eq!(
        h.status().phase,
        Some(clawhost::api::Phase::Running),
        "not an outage"
    );
    // Idle: no snapshot calls at all within the 10 minutes, no writes, ordinary resync.
    h.fake.clear_requests();
    h.at("2026-11-25T02:09:00Z");
    assert_eq!(h.reconcile().await, requeue(86_400), "no hot loop");
    assert_eq!(h.snapshot_requests(), Vec::<String>::new());
    assert_eq!(h.writes(), Vec::<String>::new());
    // After 10 minutes: asked once more, still nothing written.
    h.at("2026-11-25T02:10:01Z");
    h.reconcile().await;
    h.reconcile().await;
    assert_eq!(
        h.snapshot_requests(),
        ["GET /apis/snapshot.storage.k8s.io/v1"]
    );
    assert_eq!(h.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn disabled_backups_make_no_snapshot_calls() {
    let h = Harness::new();
    h.fake.seed_client(NS, "alice");
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["spec"]["backup"] = json!({"enabled": false});
    });
    h.reconcile().await;
    assert_eq!(h.snapshot_requests(), Vec::<String>::new());
    let (status, reason, message) = h.backup_healthy();
    assert_eq!((status.as_str(), reason.as_str()), ("Unknown", "Disabled"));
    assert!(message.contains("spec.backup.enabled: false"), "{message}");
}

#[tokio::test]
async fn a_refused_create_is_reported_and_backs_off() {
    let h = Harness::new();
    h.running().await;
    h.at("2026-11-25T03:00:01Z");
    h.fake.inject(Fault {
        method: Some(Method::POST),
        path_contains: "/volumesnapshots".into(),
        times: 2,
        kind: FaultKind::Status(403),
    });
    h.fake.clear_requests();
    assert_eq!(h.reconcile().await, requeue(60), "retried after 1 min");
    let (status, reason, message) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CreateRefused")
    );
    assert_eq!(
        message,
        "the API server refused VolumeSnapshot alice-20261125-030000-scheduled: injected fault"
    );
    // Within the backoff: no new attempt however often it reconciles.
    for _ in 0..3 {
        h.reconcile().await;
    }
    let posts = |h: &Harness| {
        h.snapshot_requests()
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count()
    };
    assert_eq!(posts(&h), 1);
    // After 1 min: refused again, then 2 min.
    h.at("2026-11-25T03:01:02Z");
    assert_eq!(h.reconcile().await, requeue(120));
    assert_eq!(posts(&h), 2);
    h.at("2026-11-25T03:03:03Z");
    h.reconcile().await;
    assert_eq!(posts(&h), 3);
    assert_eq!(h.snapshots().len(), 1);
    let (_, reason, _) = h.backup_healthy();
    assert_ne!(reason, "CreateRefused", "a success clears it");
}

#[tokio::test]
async fn a_request_takes_one_snapshot_once_even_while_suspended() {
    let h = Harness::new();
    h.running().await;
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["spec"]["suspended"] = json!(true);
    });
    h.annotate("clawhost.dev/backup-request", "snapshot:1");
    h.reconcile().await;
    let snaps = h.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        snaps[0]["metadata"]["labels"]["clawhost.dev/snapshot-kind"],
        "manual"
    );
    assert_eq!(
        snaps[0]["metadata"]["annotations"]["clawhost.dev/request"],
        "snapshot:1"
    );
    let backup = h.status().backup.unwrap();
    assert_eq!(backup.handled_request.as_deref(), Some("snapshot:1"));
    let name = snaps[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(backup.request_snapshot.as_deref(), Some(name.as_str()));
    // The same value again: nothing; a scheduled slot while suspended: skipped, handled.
    h.at("2026-11-25T03:30:00Z");
    h.reconcile().await;
    assert_eq!(h.snapshots().len(), 1);
    assert_eq!(
        h.status().backup.unwrap().last_scheduled_run.as_deref(),
        Some("2026-11-25T03:00:00Z")
    );
    let (status, reason, _) = h.backup_healthy();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Suspended"));
    // A new value: a pre-upgrade snapshot.
    h.annotate("clawhost.dev/backup-request", "pre-upgrade:r1");
    h.reconcile().await;
    let kinds: Vec<Value> = h
        .snapshots()
        .iter()
        .map(|s| s["metadata"]["labels"]["clawhost.dev/snapshot-kind"].clone())
        .collect();
    assert!(kinds.contains(&json!("pre-upgrade")), "{kinds:?}");
}

#[tokio::test]
async fn retention_prunes_with_a_uid_precondition_and_an_event_of_names() {
    let mut config = OperatorConfig::default();
    config.backups.spread_seconds = 0;
    config.backups.ready_deadline_seconds = 86_400;
    config.backups.keep.daily = 2;
    config.backups.keep.weekly = 0;
    let h = Harness::with_config(config);
    h.running().await;
    for day in 25..=28 {
        h.at(&format!("2026-11-{day}T03:00:01Z"));
        h.reconcile().await;
        h.mark_ready(&format!("alice-202611{day}-030000-scheduled"));
    }
    h.fake.clear_requests();
    h.at("2026-11-28T04:00:00Z");
    h.reconcile().await;
    let mut names: Vec<String> = h
        .snapshots()
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alice-20261127-030000-scheduled",
            "alice-20261128-030000-scheduled"
        ]
    );
    let deletes: Vec<Recorded> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 2);
    assert_eq!(h.snapshot_count("scheduled", "pruned"), 2);
    assert_eq!(
        h.events("SnapshotPruned"),
        [
            "deleted VolumeSnapshots alice-20261125-030000-scheduled, alice-20261126-030000-scheduled (retention)"
        ]
    );
    assert!(
        deletes.iter().all(|r| r.path.contains("volumesnapshots")),
        "{deletes:?}"
    );
    assert_eq!(h.status().backup.unwrap().ready_snapshots, Some(2));
}

#[tokio::test]
async fn several_reconciles_at_once_ask_discovery_once() {
    let h = Harness::new();
    h.fake.seed_client(NS, "alice");
    let api = h.ctx.snapshot_api.clone();
    let clock = h.clock.clone();
    let calls = (0..8).map(|_| {
        let api = api.clone();
        let client = h.ctx.client.clone();
        let clock = clock.clone();
        async move { api.get(&client, clock.as_ref(), None).await }
    });
    let answers = futures::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .all(|a| *a == clawhost::backup::ApiState::Available)
    );
    assert_eq!(
        h.snapshot_requests(),
        ["GET /apis/snapshot.storage.k8s.io/v1"]
    );
}

#[tokio::test]
async fn the_fleet_bucket_holds_a_scheduled_snapshot_back_until_its_reserved_turn() {
    let mut config = OperatorConfig::default();
    config.backups.spread_seconds = 0;
    config.backups.ready_deadline_seconds = 86_400;
    config.backups.creations_per_minute = 1;
    let h = Harness::with_config(config);
    h.running().await;
    // Another client took this minute's token.
    h.at("2026-11-25T03:00:01Z");
    assert!(h.ctx.snapshot_bucket.try_take(ts("2026-11-25T03:00:01Z")));
    let action = h.reconcile().await;
    assert!(h.snapshots().is_empty());
    assert_eq!(
        action,
        requeue(60),
        "back once, at its reserved turn (1/min)"
    );
    assert_eq!(
        h.status().backup.unwrap().last_scheduled_run,
        None,
        "the slot is still owed"
    );
    // A minute later there is a token: the slot is taken.
    h.at("2026-11-25T03:01:01Z");
    h.reconcile().await;
    assert_eq!(h.snapshots().len(), 1);
    // Requests bypass the bucket (someone is waiting).
    assert!(!h.ctx.snapshot_bucket.try_take(ts("2026-11-25T03:01:01Z")));
    h.annotate("clawhost.dev/backup-request", "snapshot:now");
    h.reconcile().await;
    assert_eq!(h.snapshots().len(), 2);
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_missing_snapshot_api_is_logged_once_and_its_arrival_once() {
    let h = Harness::new();
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Tests on other threads (no subscriber) may have hit these log lines first and left
    // them cached as uninteresting.
    tracing::callsite::rebuild_interest_cache();
    h.fake.set_snapshot_api(false);
    h.running().await;
    // An hour of reconciles: discovery is asked again every 10 min, said once.
    for minute in (0..60).step_by(5) {
        h.at(&format!("2026-11-25T02:{minute:02}:30Z"));
        h.reconcile().await;
    }
    h.fake.set_snapshot_api(true);
    for minute in (0..30).step_by(5) {
        h.at(&format!("2026-11-25T03:{minute:02}:30Z"));
        h.reconcile().await;
    }
    let logs = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let count = |needle: &str| logs.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count(
            "no VolumeSnapshot API in the cluster: backups are off until it is installed (checked again every 10 min); everything else works"
        ),
        1,
        "{logs}"
    );
    assert_eq!(count("the VolumeSnapshot API is available"), 1, "{logs}");
    assert!(h.snapshots().len() == 1, "and then backups work");
}

#[tokio::test]
async fn a_spec_typo_never_stops_backups() {
    let h = Harness::new();
    h.running().await;
    // Too frequent: ConfigValid False, nothing applied, but the volume keeps its backups
    // on the operator's schedule.
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["spec"]["backup"] = json!({"schedule": "*/5 * * * *"});
    });
    h.at("2026-11-25T03:00:01Z");
    h.reconcile().await;
    let s = h.status();
    let valid = s
        .conditions
        .iter()
        .find(|c| c.type_ == "ConfigValid")
        .unwrap();
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "InvalidSpec")
    );
    let names: Vec<Value> = h
        .snapshots()
        .iter()
        .map(|s| s["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("alice-20261125-030000-scheduled")]);
    let (_, _, message) = h.backup_healthy();
    assert!(message.contains("spec.backup is invalid"), "{message}");
}

#[tokio::test]
async fn snapshots_that_never_get_ready_do_not_pile_up() {
    // CRDs but no snapshot controller: nothing ever gets ready.
    let h = Harness::new();
    h.running().await;
    for day in 25..=30 {
        h.at(&format!("2026-11-{day}T03:00:01Z"));
        let action = h.reconcile().await;
        assert!(
            h.snapshots().len() <= 2,
            "day {day}: {:?}",
            h.snapshots()
                .iter()
                .map(|s| s["metadata"]["name"].clone())
                .collect::<Vec<_>>()
        );
        // No tight loop on a skipped slot: back for the next slot (or the 30 s poll while
        // the one snapshot is still within its deadline).
        assert!(
            (0..30).map(requeue).all(|r| r != action),
            "day {day}: {action:?}"
        );
    }
    assert_eq!(h.snapshots().len(), 1, "the stuck one holds the schedule");
    let (status, reason, message) = h.backup_healthy();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SnapshotNotReady")
    );
    assert!(
        message.contains("no further scheduled snapshot is taken until it is ready or deleted"),
        "{message}"
    );
    assert_eq!(
        h.status().backup.unwrap().last_scheduled_run.as_deref(),
        Some("2026-11-30T03:00:00Z"),
        "the skipped slots are handled, not owed"
    );
}

#[tokio::test]
async fn while_an_in_place_restore_waits_the_claim_in_use_is_backed_up() {
    let h = Harness::new();
    h.running().await;
    // An in-place restore from a snapshot that does not exist yet: the new claim is not
    // made, the pod still runs on alice-data.
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["spec"]["storage"]["restoreFrom"] = json!({"volumeSnapshotName": "snap-later"});
    });
    h.reconcile().await;
    assert!(
        h.fake
            .get("api/v1", "persistentvolumeclaims", NS, "alice-data")
            .is_some()
    );
    h.at("2026-11-25T03:00:01Z");
    h.reconcile().await;
    let snaps = h.snapshots();
    assert_eq!(snaps.len(), 1, "the slot is taken of the claim in use");
    assert_eq!(
        snaps[0]["spec"]["source"]["persistentVolumeClaimName"],
        "alice-data"
    );
    let (_, reason, message) = h.backup_healthy();
    assert_ne!(reason, "VolumeNotBound", "{message}");
    assert!(!message.contains("does not exist"), "{message}");
}

/// Finding: clients held back by the fleet bucket used to poll every 30 s + jitter, each a
/// full reconcile. Now each reserves its turn: N due clients cost about 2N reconciles in
/// all (the first try, the reserved turn), not N × (wait / 30 s).
#[tokio::test]
async fn clients_held_back_by_the_bucket_come_back_once_at_their_turn() {
    let mut config = OperatorConfig::default();
    config.backups.spread_seconds = 0;
    config.backups.ready_deadline_seconds = 86_400;
    config.backups.creations_per_minute = 1;
    let h = Harness::with_config(config);
    const N: usize = 10;
    let names: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
    for name in &names {
        h.fake.seed_client(NS, name);
        let a: Assistant =
            serde_json::from_value(h.fake.get(CRD, "assistants", NS, name).unwrap()).unwrap();
        reconciler::reconcile(Arc::new(a), h.ctx.clone())
            .await
            .unwrap();
        h.fake.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-0"), "namespace": NS},
            "status": {"phase": "Running", "containerStatuses": [{"name": "gateway", "ready": true, "restartCount": 0, "image": "x", "imageID": "y"}]}
        }));
        h.fake.update(
            "api/v1",
            "persistentvolumeclaims",
            NS,
            &format!("{name}-data"),
            |o| {
                o["status"] = json!({"phase": "Bound", "capacity": {"storage": "10Gi"}});
            },
        );
        h.fake.update(
            "api/v1",
            "secrets",
            NS,
            &format!("{name}-tailscale-state"),
            |o| {
                o["data"] = json!({"device_fqdn": "Y2xpZW50cy1hbGljZS50cy5uZXQu"});
            },
        );
    }
    // All due at 03:00:01; each client's next reconcile is when its requeue says.
    let start = ts("2026-11-25T03:00:01Z");
    let mut queue: std::collections::BTreeMap<(Timestamp, usize), ()> =
        (0..N).map(|i| ((start, i), ())).collect();
    let mut reconciles = 0;
    let mut done = std::collections::BTreeSet::new();
    while done.len() < N {
        let ((at, i), ()) = queue.pop_first().expect("someone is waiting");
        assert!(
            at < ts("2026-11-25T04:00:00Z"),
            "all served within the hour"
        );
        h.at(&at.to_string());
        let a: Assistant =
            serde_json::from_value(h.fake.get(CRD, "assistants", NS, &names[i]).unwrap()).unwrap();
        let action = reconciler::reconcile(Arc::new(a), h.ctx.clone())
            .await
            .unwrap();
        reconciles += 1;
        let taken = h.snapshots().iter().any(|s| {
            s["spec"]["source"]["persistentVolumeClaimName"] == format!("{}-data", names[i])
        });
        if taken {
            done.insert(i);
            continue;
        }
        let secs = (1..=3600u64)
            .find(|&s| requeue(s) == action)
            .unwrap_or_else(|| panic!("a short requeue while waiting, got {action:?}"));
        queue.insert((at + jiff::SignedDuration::from_secs(secs as i64), i), ());
    }
    assert!(
        reconciles <= 2 * N + 1,
        "{reconciles} reconciles for {N} clients at 1/min"
    );
}
