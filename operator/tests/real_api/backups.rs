//! Backups and restore (issue 16) against a real API server with the upstream snapshot CRDs
//! (external-snapshotter v8.6.0, unmodified). The test plays the snapshot controller (it
//! writes `status.readyToUse` / `status.error`) and, with no controller manager, the PV
//! controller (claims marked Bound). Scheduling runs the reconciler in-process with a
//! `ManualClock` as `ctx.clock`: nothing sleeps until 03:00. Tests 12 and 13 run the real
//! binary under least-privilege RBAC. Each test works in its own namespace; the in-process
//! tests share one control plane (started once per test binary, see [`shared`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawhost::api::snapshot::VolumeSnapshot;
use clawhost::api::{
    ASSISTANT_UID_LABEL, Assistant, BackupStatus, EXPIRES_AT_ANNOTATION, REPLACED_BY_ANNOTATION,
    REQUEST_ANNOTATION, RESTORED_FROM_ANNOTATION, RestoreFrom, SCHEDULED_FOR_ANNOTATION,
    SNAPSHOT_KIND_LABEL, SOURCE_CLAIM_ANNOTATION,
};
use clawhost::children::{RETAINED_LABEL, data_claim_name};
use clawhost::config::{FinalSnapshotFailure, OperatorConfig};
use clawhost::reconciler::{self, Context};
use clawhost_envtest::{AuditEvent, ControlPlane};
use clawhost_testing::clock::ManualClock;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::*;

/// One control plane with the snapshot CRDs for the in-process tests of this module. A
/// static: each test has its own runtime and its own clients; the processes die with the
/// test binary (`PR_SET_PDEATHSIG`).
async fn shared() -> Option<&'static ControlPlane> {
    static CP: tokio::sync::OnceCell<Option<ControlPlane>> = tokio::sync::OnceCell::const_new();
    CP.get_or_init(|| async { control_plane_with_snapshots(false).await })
        .await
        .as_ref()
}

/// The operator config of these tests: class `csi-test`, the defaults otherwise (03:00 UTC
/// daily, keep 7 daily / 4 weekly, spread 1 h), but a ready deadline of 90 days: the API
/// server stamps `creationTimestamp` with the real time while the tests' clock runs days
/// ahead, so a snapshot still pending would look overdue at once. The deadline itself is
/// tested with the clock kept at the real time (`failing_snapshot_sets_the_condition`).
fn config() -> OperatorConfig {
    let mut c = OperatorConfig::default();
    c.backups.volume_snapshot_class_name = Some(SNAPSHOT_CLASS.into());
    c.backups.ready_deadline_seconds = 90 * 24 * 3600;
    c
}

/// A namespace, an in-process Context whose clock the test drives, the admin's client.
struct Env {
    cp: &'static ControlPlane,
    admin: Client,
    ctx: Arc<Context>,
    clock: Arc<ManualClock>,
    ns: String,
}

impl Env {
    async fn new(cp: &'static ControlPlane, ns: &str, config: OperatorConfig) -> Self {
        let admin = cp.client("admin").await;
        namespace(&admin, ns).await;
        auth_key_secret(&admin, ns, "ts-auth", "authkey").await;
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        // The janitor sweeps the watched namespaces: only this test's (the control plane
        // is shared, and namespaces never finish deleting without a controller manager).
        let mut config = config;
        config.namespaces = vec![ns.to_owned()];
        let mut ctx = Context::new(admin.clone(), config);
        ctx.clock = clock.clone();
        Self {
            cp,
            admin,
            ctx: Arc::new(ctx),
            clock,
            ns: ns.into(),
        }
    }

    /// Creates `name` (1Gi, plus `spec`), reconciles it once, marks its claim Bound and
    /// reconciles again: a running client with a volume to snapshot.
    async fn client(&self, name: &str, spec: Value) -> Assistant {
        let mut spec = spec;
        if spec.get("storage").is_none() {
            spec["storage"] = json!({"size": "1Gi"});
        }
        create_assistant(&self.admin, &assistant_json(&self.ns, name, spec)).await;
        self.reconcile(name).await;
        let a = self.get(name).await;
        let claim = clawhost::children::ChildNames::for_assistant(&a).data_volume;
        mark_bound(&self.admin, &self.ns, &claim).await;
        self.reconcile(name).await;
        self.get(name).await
    }

    async fn get(&self, name: &str) -> Assistant {
        get_assistant(&self.admin, &self.ns, name)
            .await
            .unwrap_or_else(|| panic!("{}/{name} exists", self.ns))
    }

    /// One in-process reconcile of the Assistant as it is now (errors are the test's).
    async fn reconcile(&self, name: &str) {
        let a = self.get(name).await;
        reconciler::reconcile(Arc::new(a), self.ctx.clone())
            .await
            .unwrap_or_else(|e| panic!("reconcile {}/{name}: {e}", self.ns));
    }

    /// Reconciles a deleting Assistant until it is gone or `times` passes ran.
    async fn reconcile_deleting(&self, name: &str, times: usize) -> bool {
        for _ in 0..times {
            let Some(a) = get_assistant(&self.admin, &self.ns, name).await else {
                return true;
            };
            let _ = reconciler::reconcile(Arc::new(a), self.ctx.clone()).await;
        }
        get_assistant(&self.admin, &self.ns, name).await.is_none()
    }

    async fn snapshots(&self) -> Vec<VolumeSnapshot> {
        snapshots(&self.admin, &self.ns).await
    }

    async fn snapshots_of(&self, kind: &str) -> Vec<VolumeSnapshot> {
        self.snapshots()
            .await
            .into_iter()
            .filter(|s| s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str) == Some(kind))
            .collect()
    }

    /// Plays the snapshot controller: `name` is ready, taken now, restoreSize 1Gi.
    async fn ready(&self, name: &str) {
        set_snapshot_status(
            &self.admin,
            &self.ns,
            name,
            snapshot_ready(name, self.clock_now(), "1Gi"),
        )
        .await;
    }

    fn clock_now(&self) -> Timestamp {
        use clawhost::clock::Clock as _;
        self.clock.now()
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    /// Requests in this namespace since `since` (all users, dry runs excluded).
    fn requests(&self, since: Timestamp) -> Vec<AuditEvent> {
        self.cp
            .audit_events()
            .into_iter()
            .filter(|e| {
                e.namespace() == self.ns
                    && !e.is_dry_run()
                    && e.request_received_timestamp
                        .parse::<Timestamp>()
                        .is_ok_and(|t| t >= since)
            })
            .collect()
    }

    fn count(&self, since: Timestamp, verb: &str, resource: &str) -> usize {
        self.requests(since)
            .iter()
            .filter(|e| e.verb == verb && e.resource() == resource)
            .count()
    }

    async fn teardown(self) {
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.admin.clone());
        let _ = nss.delete(&self.ns, &DeleteParams::default()).await;
    }
}

fn backup(a: &Assistant) -> BackupStatus {
    a.status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .unwrap_or_default()
}

fn time(s: &Option<String>) -> Option<Timestamp> {
    s.as_deref().and_then(|s| s.parse().ok())
}

/// `(status, reason, message)` of BackupHealthy.
fn health(a: &Assistant) -> (String, String, String) {
    condition(a, "BackupHealthy").unwrap_or_else(|| panic!("no BackupHealthy: {:?}", a.status))
}

/// Tomorrow (UTC, by the real clock: Assistants are created now) at `hh:mm`.
fn tomorrow_at(hh: i8, mm: i8) -> Timestamp {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    today
        .tomorrow()
        .unwrap()
        .at(hh, mm, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
}

/// The name the operator gives a snapshot of `base` of `kind` at `at` (UTC).
fn snapshot_name(base: &str, kind: &str, at: Timestamp) -> String {
    format!("{base}-{}-{kind}", at.strftime("%Y%m%d-%H%M%S"))
}

/// The clock at 02:59 the next day, one reconcile: nothing due; then past `nextRun`: the
/// 03:00 slot's snapshot. Returns (slot, run time).
async fn first_scheduled(env: &Env, name: &str) -> (Timestamp, Timestamp) {
    env.clock.set(tomorrow_at(2, 59));
    env.reconcile(name).await;
    let next = time(&backup(&env.get(name).await).next_run).expect("status.backup.nextRun");
    env.clock.set(next + SignedDuration::from_secs(1));
    env.reconcile(name).await;
    (tomorrow_at(3, 0), next)
}

// ---- 1 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_creates_snapshots() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-schedule", config()).await;
    let a = env.client("alice", json!({})).await;
    let uid = a.uid().unwrap();

    env.clock.set(tomorrow_at(2, 59));
    env.reconcile("alice").await;
    assert!(env.snapshots().await.is_empty(), "nothing before the slot");
    let status = backup(&env.get("alice").await);
    let slot = tomorrow_at(3, 0);
    let offset = clawhost::backup::spread_offset(&uid, SignedDuration::from_secs(3600));
    assert!(offset >= SignedDuration::ZERO && offset < SignedDuration::from_secs(3600));
    assert_eq!(
        time(&status.next_run),
        Some(slot + offset),
        "nextRun = 03:00 + this client's offset: {status:?}"
    );

    // One second before the run: still nothing; just past it: the slot's snapshot.
    env.clock.set(slot + offset - SignedDuration::from_secs(1));
    env.reconcile("alice").await;
    assert!(env.snapshots().await.is_empty(), "not before slot + offset");
    let since = Timestamp::now();
    env.clock.set(slot + offset + SignedDuration::from_secs(1));
    env.reconcile("alice").await;
    let snaps = env.snapshots().await;
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let s = &snaps[0];
    assert_eq!(s.name_any(), snapshot_name("alice", "scheduled", slot));
    let labels = s.labels();
    assert_eq!(labels[SNAPSHOT_KIND_LABEL], "scheduled");
    assert_eq!(labels[ASSISTANT_UID_LABEL], uid);
    assert_eq!(labels["clawhost.dev/assistant"], "alice");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "clawhost");
    assert_eq!(labels["app.kubernetes.io/component"], "backup");
    assert_eq!(
        s.annotations()
            .get(SCHEDULED_FOR_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok()),
        Some(slot)
    );
    assert_eq!(s.annotations()[SOURCE_CLAIM_ANNOTATION], "alice-data");
    assert_eq!(
        s.spec.source.persistent_volume_claim_name.as_deref(),
        Some("alice-data")
    );
    assert_eq!(
        s.spec.volume_snapshot_class_name.as_deref(),
        Some(SNAPSHOT_CLASS)
    );
    assert!(
        s.owner_references().is_empty(),
        "a backup is never garbage-collected with its Assistant"
    );
    let status = backup(&env.get("alice").await);
    assert_eq!(time(&status.last_scheduled_run), Some(slot));
    assert_eq!(
        time(&status.next_run),
        Some(slot + SignedDuration::from_hours(24) + offset)
    );

    // Again (and once ready): nothing new.
    env.reconcile("alice").await;
    env.ready(&s.name_any()).await;
    env.reconcile("alice").await;
    assert_eq!(env.snapshots().await.len(), 1);
    assert_eq!(env.count(since, "create", "volumesnapshots"), 1);
    let a = env.get("alice").await;
    let (st, reason, message) = health(&a);
    assert_eq!((st.as_str(), reason.as_str()), ("True", "SnapshotReady"));
    assert!(message.contains(&s.name_any()), "{message}");
    let status = backup(&a);
    assert_eq!(status.last_snapshot.as_deref(), Some(s.name_any().as_str()));
    assert_eq!(status.last_snapshot_size.as_deref(), Some("1Gi"));
    assert_eq!(status.ready_snapshots, Some(1));
    env.teardown().await;
}

// ---- 2 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_gives_one_catch_up() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-catchup", config()).await;
    env.client("alice", json!({})).await;
    let (slot, run) = first_scheduled(&env, "alice").await;
    env.ready(&snapshot_name("alice", "scheduled", slot)).await;

    // The operator was down for five days.
    let since = Timestamp::now();
    env.clock
        .set(run + SignedDuration::from_hours(5 * 24) + SignedDuration::from_secs(60));
    env.reconcile("alice").await;
    env.reconcile("alice").await;
    assert_eq!(
        env.count(since, "create", "volumesnapshots"),
        1,
        "one catch-up, not five"
    );
    let latest = slot + SignedDuration::from_hours(5 * 24);
    let names: Vec<String> = env.snapshots().await.iter().map(|s| s.name_any()).collect();
    assert_eq!(
        names,
        vec![
            snapshot_name("alice", "scheduled", slot),
            snapshot_name("alice", "scheduled", latest),
        ],
        "named for the latest missed slot"
    );
    assert_eq!(
        time(&backup(&env.get("alice").await).last_scheduled_run),
        Some(latest)
    );
    env.teardown().await;
}

// ---- 3 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_status_write_does_not_double() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-lost", config()).await;
    env.client("alice", json!({})).await;
    let (slot, _) = first_scheduled(&env, "alice").await;
    assert_eq!(env.snapshots().await.len(), 1);

    // status.backup is lost (a status write that never landed, a restore of etcd...).
    let api: Api<Assistant> = Api::namespaced(env.admin.clone(), &env.ns);
    api.patch_status(
        "alice",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"backup": null}})),
    )
    .await
    .unwrap();
    assert!(backup(&env.get("alice").await).last_scheduled_run.is_none());
    let since = Timestamp::now();
    env.reconcile("alice").await;
    assert_eq!(
        env.count(since, "create", "volumesnapshots"),
        0,
        "the slot is read back from the snapshot's name and annotation"
    );
    assert_eq!(
        time(&backup(&env.get("alice").await).last_scheduled_run),
        Some(slot)
    );
    env.teardown().await;
}

// ---- 4 -------------------------------------------------------------------------------------

/// The snapshots keep-daily/keep-weekly keeps (restic semantics) of daily slots.
fn expected_survivors(slots: &[Timestamp], daily: usize, weekly: usize) -> BTreeSet<Timestamp> {
    let mut keep: BTreeSet<Timestamp> = slots.iter().rev().take(daily).copied().collect();
    let mut weeks: Vec<((i16, i8), Timestamp)> = Vec::new();
    for s in slots.iter().rev() {
        let w = s.to_zoned(TimeZone::UTC).date().iso_week_date();
        let key = (w.year(), w.week());
        if !weeks.iter().any(|(k, _)| *k == key) {
            weeks.push((key, *s));
        }
    }
    keep.extend(weeks.iter().take(weekly).map(|(_, s)| *s));
    keep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_the_right_ones() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-retention", config()).await;
    env.client("alice", json!({})).await;
    let (first, run) = first_scheduled(&env, "alice").await;
    let mut slots = vec![first];
    env.ready(&snapshot_name("alice", "scheduled", first)).await;
    for day in 1..40 {
        env.clock
            .set(run + SignedDuration::from_hours(24 * day) + SignedDuration::from_secs(1));
        env.reconcile("alice").await;
        let slot = first + SignedDuration::from_hours(24 * day);
        env.ready(&snapshot_name("alice", "scheduled", slot)).await;
        slots.push(slot);
    }
    env.reconcile("alice").await;
    let left: BTreeSet<String> = env.snapshots().await.iter().map(|s| s.name_any()).collect();
    let want: BTreeSet<String> = expected_survivors(&slots, 7, 4)
        .into_iter()
        .map(|s| snapshot_name("alice", "scheduled", s))
        .collect();
    assert_eq!(left, want, "40 days, keep 7 daily + 4 weekly");
    assert_eq!(
        backup(&env.get("alice").await).ready_snapshots,
        Some(want.len() as u32)
    );

    // keep 0/0: the newest ready snapshot stays anyway; a pending newest keeps it too.
    env.client(
        "bob",
        json!({"backup": {"keep": {"daily": 0, "weekly": 0}}}),
    )
    .await;
    let bobs = || async {
        env.snapshots()
            .await
            .into_iter()
            .filter(|s| s.labels()["clawhost.dev/assistant"] == "bob")
            .map(|s| s.name_any())
            .collect::<Vec<String>>()
    };
    let mut taken = Vec::new();
    for day in 0..2 {
        env.clock.advance(SignedDuration::from_hours(24 * day));
        env.reconcile("bob").await;
        let newest = bobs()
            .await
            .into_iter()
            .max()
            .expect("bob's scheduled snapshot");
        env.ready(&newest).await;
        env.reconcile("bob").await;
        taken.push(newest);
    }
    assert_eq!(
        bobs().await,
        vec![taken[1].clone()],
        "only the newest ready one is kept"
    );
    env.clock.advance(SignedDuration::from_hours(24));
    env.reconcile("bob").await;
    env.reconcile("bob").await;
    let left = bobs().await;
    assert!(
        left.len() == 2 && left.contains(&taken[1]),
        "a pending newest keeps the previous ready one: {left:?}"
    );
    env.teardown().await;
}

// ---- 5 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_snapshot_sets_the_condition() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-failing", config()).await;
    env.client("alice", json!({})).await;
    let before = env.get("alice").await;
    let ready_before = condition(&before, "Ready");
    let phase_before = before.status.as_ref().and_then(|s| s.phase);
    let (slot, _) = first_scheduled(&env, "alice").await;
    let name = snapshot_name("alice", "scheduled", slot);
    set_snapshot_status(
        &env.admin,
        &env.ns,
        &name,
        snapshot_failed("rpc error: quota exceeded for snapshots", env.clock_now()),
    )
    .await;
    env.reconcile("alice").await;
    let a = env.get("alice").await;
    let (st, reason, message) = health(&a);
    assert_eq!((st.as_str(), reason.as_str()), ("False", "SnapshotFailed"));
    assert!(
        message.contains(&name) && message.contains("quota exceeded"),
        "{message}"
    );
    assert_eq!(
        condition(&a, "Ready"),
        ready_before,
        "Ready does not depend on backups"
    );
    assert_eq!(
        a.status.as_ref().and_then(|s| s.phase),
        phase_before,
        "nor the phase"
    );

    env.teardown().await;

    // A snapshot that never becomes ready: reported after readyDeadlineSeconds (2 h),
    // counted from its creationTimestamp (the real time: this clock stays with it).
    let mut c = config();
    c.backups.ready_deadline_seconds = 7200;
    let env = Env::new(cp, "bk-not-ready", c).await;
    let bob_ready = condition(&env.client("bob", json!({})).await, "Ready");
    patch_assistant(
        &env.admin,
        &env.ns,
        "bob",
        json!({"metadata": {"annotations": {"clawhost.dev/backup-request": "snapshot:stuck"}}}),
    )
    .await;
    env.clock.set(Timestamp::now());
    env.reconcile("bob").await;
    let stuck = backup(&env.get("bob").await)
        .request_snapshot
        .expect("requestSnapshot");
    let created: Timestamp = snapshots_api(&env.admin, &env.ns)
        .get(&stuck)
        .await
        .unwrap()
        .metadata
        .creation_timestamp
        .unwrap()
        .0
        .to_string()
        .parse()
        .unwrap();
    env.clock.set(created + SignedDuration::from_secs(3600));
    env.reconcile("bob").await;
    assert_ne!(
        health(&env.get("bob").await).1,
        "SnapshotNotReady",
        "not before the deadline"
    );
    env.clock.set(created + SignedDuration::from_secs(7201));
    env.reconcile("bob").await;
    let a = env.get("bob").await;
    let (st, reason, message) = health(&a);
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "SnapshotNotReady")
    );
    assert!(message.contains(&stuck), "{message}");
    assert_eq!(
        condition(&a, "Ready"),
        bob_ready,
        "Ready does not depend on backups"
    );
    env.teardown().await;
}

// ---- 6 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_create_is_reported_and_backs_off() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-refused", config()).await;
    env.client("alice", json!({})).await;
    // An admission policy that refuses every snapshot in this namespace.
    let message = "snapshots are not allowed in bk-refused (test policy)";
    apply_json(&env.admin, "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies", None, &json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "no-snapshots"},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["snapshot.storage.k8s.io"],
                     "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["volumesnapshots"]}]},
                 "validations": [{"expression": "false", "message": message}]},
    })).await;
    apply_json(&env.admin, "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings", None, &json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "no-snapshots"},
        "spec": {"policyName": "no-snapshots", "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bk-refused"}}}},
    })).await;
    // The policy is live once a dry-run create is refused.
    let probe: VolumeSnapshot = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {"source": {"persistentVolumeClaimName": "alice-data"}},
    }))
    .unwrap();
    wait_for(
        "the admission policy to refuse",
        Duration::from_secs(30),
        || async {
            create_snapshot(&env.admin, &env.ns, &probe, true)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;

    let since = Timestamp::now();
    let (_, run) = first_scheduled(&env, "alice").await;
    let a = env.get("alice").await;
    let (st, reason, msg) = health(&a);
    assert_eq!((st.as_str(), reason.as_str()), ("False", "CreateRefused"));
    assert!(msg.contains(message), "the server's words: {msg}");
    // Reconciles within the backoff (1 min) do not try again.
    for i in 1..=5 {
        env.clock.set(run + SignedDuration::from_secs(1 + 10 * i));
        env.reconcile("alice").await;
    }
    assert_eq!(
        env.count(since, "create", "volumesnapshots"),
        1,
        "one attempt within the backoff"
    );
    // After it: one more.
    env.clock.set(run + SignedDuration::from_secs(125));
    env.reconcile("alice").await;
    assert_eq!(env.count(since, "create", "volumesnapshots"), 2);
    let api = Api::<kube::api::DynamicObject>::all_with(
        env.admin.clone(),
        &kube::core::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "ValidatingAdmissionPolicyBinding".into(),
            plural: "validatingadmissionpolicybindings".into(),
        },
    );
    let _ = api.delete("no-snapshots", &DeleteParams::default()).await;
    env.teardown().await;
}

// ---- 7 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_request() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-request", config()).await;
    env.client("alice", json!({})).await;
    env.clock.set(tomorrow_at(10, 0));
    let request =
        |v: &str| json!({"metadata": {"annotations": {"clawhost.dev/backup-request": v}}});
    patch_assistant(&env.admin, &env.ns, "alice", request("snapshot:1")).await;
    env.reconcile("alice").await;
    let manual = env.snapshots_of("manual").await;
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert_eq!(manual[0].annotations()[REQUEST_ANNOTATION], "snapshot:1");
    assert_eq!(
        manual[0].name_any(),
        snapshot_name("alice", "manual", tomorrow_at(10, 0))
    );
    let status = backup(&env.get("alice").await);
    assert_eq!(status.handled_request.as_deref(), Some("snapshot:1"));
    assert_eq!(
        status.request_snapshot.as_deref(),
        Some(manual[0].name_any().as_str())
    );

    // The same value again: acted on once (the 03:00 slot, due too, is another kind).
    env.clock.advance(SignedDuration::from_secs(60));
    env.reconcile("alice").await;
    env.reconcile("alice").await;
    assert_eq!(env.snapshots_of("manual").await.len(), 1);

    // The fleet rollout's request.
    patch_assistant(&env.admin, &env.ns, "alice", request("pre-upgrade:r1")).await;
    env.reconcile("alice").await;
    let pre = env.snapshots_of("pre-upgrade").await;
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert_eq!(pre[0].annotations()[REQUEST_ANNOTATION], "pre-upgrade:r1");
    let status = backup(&env.get("alice").await);
    assert_eq!(status.handled_request.as_deref(), Some("pre-upgrade:r1"));
    assert_eq!(
        status.request_snapshot.as_deref(),
        Some(pre[0].name_any().as_str())
    );
    assert_eq!(env.snapshots_of("manual").await.len(), 1);
    env.teardown().await;
}

// ---- 8 -------------------------------------------------------------------------------------

/// A snapshot made by hand (another client's, or a copy), optionally ready with `size`.
async fn seed_snapshot(env: &Env, name: &str, ready_size: Option<&str>) {
    let s: VolumeSnapshot = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"source": {"persistentVolumeClaimName": "someone-data"},
                 "volumeSnapshotClassName": SNAPSHOT_CLASS},
    }))
    .unwrap();
    create_snapshot(&env.admin, &env.ns, &s, false)
        .await
        .unwrap();
    if let Some(size) = ready_size {
        set_snapshot_status(
            &env.admin,
            &env.ns,
            name,
            snapshot_ready(name, env.clock_now(), size),
        )
        .await;
    }
}

fn restored_claim(base: &str, snapshot: &str) -> String {
    data_claim_name(
        base,
        Some(&RestoreFrom {
            volume_snapshot_name: snapshot.into(),
        }),
    )
}

async fn claims_of(env: &Env, base: &str) -> Vec<PersistentVolumeClaim> {
    env.claims()
        .list(&ListParams::default().labels(&format!("clawhost.dev/assistant={base}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_new_assistant() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-restore-new", config()).await;
    seed_snapshot(&env, "seed", Some("1Gi")).await;
    let restore = |snap: &str, size: &str| json!({"storage": {"size": size, "restoreFrom": {"volumeSnapshotName": snap}}});

    create_assistant(
        &env.admin,
        &assistant_json(&env.ns, "fresh", restore("seed", "1Gi")),
    )
    .await;
    env.reconcile("fresh").await;
    let claim = restored_claim("fresh", "seed");
    let pvc = env
        .claims()
        .get(&claim)
        .await
        .expect("the claim made from the snapshot");
    assert_eq!(
        data_source(&pvc),
        Some((
            "snapshot.storage.k8s.io".into(),
            "VolumeSnapshot".into(),
            "seed".into()
        ))
    );
    assert_eq!(pvc.annotations()[RESTORED_FROM_ANNOTATION], "seed");
    let a = env.get("fresh").await;
    assert_eq!(condition(&a, "ConfigValid").unwrap().0, "True");

    // A snapshot that does not exist, or is not ready: nothing is created.
    create_assistant(
        &env.admin,
        &assistant_json(&env.ns, "missing", restore("nope", "1Gi")),
    )
    .await;
    env.reconcile("missing").await;
    let (st, reason, message) = condition(&env.get("missing").await, "ConfigValid").unwrap();
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "RestoreSourceNotReady")
    );
    assert!(
        message.contains("nope") && message.contains("does not exist"),
        "{message}"
    );
    assert!(claims_of(&env, "missing").await.is_empty());

    seed_snapshot(&env, "pending", None).await;
    create_assistant(
        &env.admin,
        &assistant_json(&env.ns, "waiting", restore("pending", "1Gi")),
    )
    .await;
    env.reconcile("waiting").await;
    let (st, reason, message) = condition(&env.get("waiting").await, "ConfigValid").unwrap();
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "RestoreSourceNotReady")
    );
    assert!(message.contains("not ready"), "{message}");
    assert!(claims_of(&env, "waiting").await.is_empty());
    env.ready("pending").await;
    env.reconcile("waiting").await;
    assert_eq!(
        data_source(
            &env.claims()
                .get(&restored_claim("waiting", "pending"))
                .await
                .unwrap()
        )
        .map(|d| d.2),
        Some("pending".into()),
        "created once the snapshot is ready"
    );

    // A volume smaller than the snapshot's restoreSize.
    seed_snapshot(&env, "big", Some("8Gi")).await;
    create_assistant(
        &env.admin,
        &assistant_json(&env.ns, "small", restore("big", "1Gi")),
    )
    .await;
    env.reconcile("small").await;
    let (st, reason, message) = condition(&env.get("small").await, "ConfigValid").unwrap();
    assert_eq!((st.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("restoreSize") && message.contains("8Gi"),
        "{message}"
    );
    assert!(claims_of(&env, "small").await.is_empty());
    env.teardown().await;
}

// ---- 9 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_restore_keeps_the_old_volume() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-restore-in-place", config()).await;
    let a = env
        .client(
            "alice",
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        )
        .await;
    let old = env.claims().get("alice-data").await.unwrap();
    assert!(
        !old.owner_references().is_empty(),
        "onDelete: Delete gives the claim an owner"
    );
    env.clock.set(tomorrow_at(9, 0));
    patch_assistant(
        &env.admin,
        &env.ns,
        "alice",
        json!({"metadata": {"annotations": {"clawhost.dev/backup-request": "snapshot:before"}}}),
    )
    .await;
    env.reconcile("alice").await;
    let snap = backup(&env.get("alice").await)
        .request_snapshot
        .expect("a snapshot");
    env.ready(&snap).await;

    // The CRD's CEL rules: restoreFrom on an existing Assistant only with suspended.
    let api: Api<Assistant> = Api::namespaced(env.admin.clone(), &env.ns);
    let refused = api
        .patch(
            "alice",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"storage": {"restoreFrom": {"volumeSnapshotName": snap}}}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("suspended: true"), "{refused}");

    let since = Timestamp::now();
    patch_assistant(
        &env.admin,
        &env.ns,
        "alice",
        json!({"spec": {"suspended": true, "storage": {"restoreFrom": {"volumeSnapshotName": snap}}}}),
    )
    .await;
    env.clock.advance(SignedDuration::from_secs(60));
    env.reconcile("alice").await;
    env.reconcile("alice").await;
    let new_name = restored_claim("alice", &snap);
    let old = env
        .claims()
        .get("alice-data")
        .await
        .expect("the old claim is kept");
    assert_eq!(
        old.labels().get(RETAINED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        old.annotations().get(REPLACED_BY_ANNOTATION),
        Some(&new_name)
    );
    assert!(
        old.owner_references().is_empty(),
        "no owner: neither GC nor cleanup can remove it"
    );
    let new = env
        .claims()
        .get(&new_name)
        .await
        .expect("the restored claim");
    assert_eq!(
        data_source(&new),
        Some((
            "snapshot.storage.k8s.io".into(),
            "VolumeSnapshot".into(),
            snap.clone()
        ))
    );
    let sts: Api<StatefulSet> = Api::namespaced(env.admin.clone(), &env.ns);
    let mounted: Vec<String> = sts
        .get("alice")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.persistent_volume_claim.map(|p| p.claim_name))
        .collect();
    assert_eq!(
        mounted,
        vec![new_name.clone()],
        "the gateway mounts the restored claim"
    );
    let pre = env.snapshots_of("pre-restore").await;
    assert_eq!(
        pre.len(),
        1,
        "a pre-restore snapshot of the outgoing volume: {pre:?}"
    );
    assert_eq!(pre[0].annotations()[SOURCE_CLAIM_ANNOTATION], "alice-data");
    assert_eq!(
        pre[0].labels()[ASSISTANT_UID_LABEL],
        a.uid().unwrap(),
        "the pre-restore snapshot is alice's"
    );
    let deletes: Vec<AuditEvent> = env
        .requests(since)
        .into_iter()
        .filter(|e| e.verb == "delete" && e.resource() == "persistentvolumeclaims")
        .collect();
    assert!(
        deletes.is_empty(),
        "a restore never deletes a claim:\n{}",
        describe(&deletes.iter().collect::<Vec<_>>())
    );

    // Once set, restoreFrom stays.
    let removed = api
        .patch(
            "alice",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"storage": {"restoreFrom": null}}})),
        )
        .await
        .unwrap_err();
    assert!(
        removed.to_string().contains("cannot be removed"),
        "{removed}"
    );
    env.teardown().await;
}

// ---- 10 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_snapshot_on_delete() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-final", config()).await;
    env.client(
        "alice",
        json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
    )
    .await;
    env.clock.set(tomorrow_at(9, 0));
    patch_assistant(
        &env.admin,
        &env.ns,
        "alice",
        json!({"metadata": {"annotations": {"clawhost.dev/backup-request": "snapshot:x"}}}),
    )
    .await;
    env.reconcile("alice").await;
    let manual = backup(&env.get("alice").await).request_snapshot.unwrap();
    env.ready(&manual).await;

    let api: Api<Assistant> = Api::namespaced(env.admin.clone(), &env.ns);
    api.delete("alice", &DeleteParams::default()).await.unwrap();
    env.clock.advance(SignedDuration::from_secs(60));
    let deleted_at = env.clock_now();
    assert!(
        !env.reconcile_deleting("alice", 3).await,
        "waits for the final snapshot"
    );
    let finals = env.snapshots_of("final").await;
    assert_eq!(finals.len(), 1, "{finals:?}");
    let final_name = finals[0].name_any();
    assert_eq!(
        finals[0].annotations()[SOURCE_CLAIM_ANNOTATION],
        "alice-data"
    );
    let expires: Timestamp = finals[0].annotations()[EXPIRES_AT_ANNOTATION]
        .parse()
        .unwrap();
    assert_eq!(expires, deleted_at + SignedDuration::from_hours(30 * 24));
    let pvc = env.claims().get_opt("alice-data").await.unwrap();
    assert!(
        pvc.is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "the volume stays until the final snapshot is ready"
    );

    env.ready(&final_name).await;
    assert!(
        env.reconcile_deleting("alice", 10).await,
        "then the deletion proceeds"
    );
    let pvc = env.claims().get_opt("alice-data").await.unwrap();
    assert!(
        pvc.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the volume is deleted (onDelete: Delete)"
    );
    let left: Vec<String> = env.snapshots().await.iter().map(|s| s.name_any()).collect();
    assert_eq!(
        left,
        vec![final_name.clone()],
        "only the final snapshot is kept"
    );

    // The janitor deletes it once expired, not before.
    env.clock.set(expires - SignedDuration::from_secs(60));
    assert_eq!(
        reconciler::backup::janitor::sweep_once(&env.ctx)
            .await
            .unwrap(),
        0
    );
    env.clock
        .set(deleted_at + SignedDuration::from_hours(31 * 24));
    assert_eq!(
        reconciler::backup::janitor::sweep_once(&env.ctx)
            .await
            .unwrap(),
        1
    );
    assert!(
        env.snapshots().await.is_empty(),
        "expired final snapshot deleted"
    );

    // A failing final snapshot holds the deletion (Block) until the skip annotation.
    env.clock.set(tomorrow_at(12, 0));
    env.client(
        "bob",
        json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
    )
    .await;
    api.delete("bob", &DeleteParams::default()).await.unwrap();
    assert!(!env.reconcile_deleting("bob", 2).await);
    let bob_final = env
        .snapshots_of("final")
        .await
        .into_iter()
        .find(|s| s.labels()["clawhost.dev/assistant"] == "bob")
        .expect("bob's final snapshot");
    set_snapshot_status(
        &env.admin,
        &env.ns,
        &bob_final.name_any(),
        snapshot_failed("the driver cannot snapshot this volume", env.clock_now()),
    )
    .await;
    assert!(
        !env.reconcile_deleting("bob", 3).await,
        "Block holds the deletion"
    );
    let (st, reason, message) = health(&env.get("bob").await);
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "FinalSnapshotFailed")
    );
    assert!(message.contains("skip-final-snapshot"), "{message}");
    assert!(env.claims().get_opt("bob-data").await.unwrap().is_some());
    patch_assistant(
        &env.admin,
        &env.ns,
        "bob",
        json!({"metadata": {"annotations": {"clawhost.dev/skip-final-snapshot": "true"}}}),
    )
    .await;
    assert!(
        env.reconcile_deleting("bob", 10).await,
        "the skip annotation lets it go"
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_snapshot_failure_can_proceed() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let mut c = config();
    c.backups.final_snapshot.on_failure = FinalSnapshotFailure::Proceed;
    let env = Env::new(cp, "bk-final-proceed", c).await;
    env.client(
        "carol",
        json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
    )
    .await;
    let api: Api<Assistant> = Api::namespaced(env.admin.clone(), &env.ns);
    api.delete("carol", &DeleteParams::default()).await.unwrap();
    assert!(!env.reconcile_deleting("carol", 2).await);
    let fin = env.snapshots_of("final").await;
    assert_eq!(fin.len(), 1);
    set_snapshot_status(
        &env.admin,
        &env.ns,
        &fin[0].name_any(),
        snapshot_failed("no", env.clock_now()),
    )
    .await;
    assert!(
        env.reconcile_deleting("carol", 10).await,
        "Proceed deletes anyway"
    );
    env.teardown().await;
}

// ---- 11 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_snapshots() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-retain", config()).await;
    env.client(
        "alice",
        json!({"storage": {"size": "1Gi", "onDelete": "Retain"}}),
    )
    .await;
    let (slot, _) = first_scheduled(&env, "alice").await;
    env.ready(&snapshot_name("alice", "scheduled", slot)).await;
    patch_assistant(
        &env.admin,
        &env.ns,
        "alice",
        json!({"metadata": {"annotations": {"clawhost.dev/backup-request": "snapshot:1"}}}),
    )
    .await;
    env.reconcile("alice").await;
    let before: BTreeSet<String> = env.snapshots().await.iter().map(|s| s.name_any()).collect();
    assert_eq!(before.len(), 2);
    let api: Api<Assistant> = Api::namespaced(env.admin.clone(), &env.ns);
    api.delete("alice", &DeleteParams::default()).await.unwrap();
    assert!(env.reconcile_deleting("alice", 10).await);
    let after: BTreeSet<String> = env.snapshots().await.iter().map(|s| s.name_any()).collect();
    assert_eq!(
        after, before,
        "snapshots are kept with the retained volume, no final one"
    );
    assert!(env.claims().get_opt("alice-data").await.unwrap().is_some());
    env.teardown().await;
}

// ---- 12 ------------------------------------------------------------------------------------

/// How long the real-binary tests watch an idle operator. The issue asks for 60 s; 30 s
/// keeps this module within its CI budget on two cores (60 s measured the same: 0 writes,
/// docs/backups.md). `BACKUP_IDLE_WINDOW_SECS=60` runs the long window.
fn idle_window() -> Duration {
    let secs = std::env::var("BACKUP_IDLE_WINDOW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

fn snapshot_requests(events: &[AuditEvent]) -> Vec<&AuditEvent> {
    events
        .iter()
        .filter(|e| e.request_uri.contains("snapshot.storage.k8s.io"))
        .collect()
}

/// Waits until the operator has written nothing for 5 s; returns the time.
async fn quiet(cp: &ControlPlane) -> Timestamp {
    wait_for(
        "the operator to go quiet",
        Duration::from_secs(120),
        || async {
            let since = Timestamp::now() - SignedDuration::from_secs(5);
            operator_requests(cp, since)
                .iter()
                .all(|e| !e.is_write())
                .then(Timestamp::now)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_snapshot_api() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let ns = "bk-no-api";
    let admin = operator_namespace(&cp, ns, true).await;
    let binder = claim_binder(admin.clone(), ns.into());
    let names = ["a1", "a2", "a3"];
    for n in names {
        create_assistant(&admin, &assistant_json(ns, n, json!({}))).await;
    }
    let started = Timestamp::now();
    let op = Operator::start(&cp, Some(&backups_config(""))).await;
    for n in names {
        wait_for(
            &format!("{n}: BackupHealthy and a bound volume"),
            Duration::from_secs(60),
            || async {
                let a = get_assistant(&admin, ns, n).await?;
                let storage = condition(&a, "StorageReady")?.0 == "True";
                (storage && condition(&a, "BackupHealthy").is_some()).then_some(a)
            },
        )
        .await;
    }
    for n in names {
        let a = get_assistant(&admin, ns, n).await.unwrap();
        let (st, reason, message) = health(&a);
        assert_eq!(
            (st.as_str(), reason.as_str()),
            ("False", "SnapshotAPIUnavailable")
        );
        assert!(message.contains("everything else works"), "{message}");
        assert_eq!(condition(&a, "ConfigValid").unwrap().0, "True");
        assert_eq!(condition(&a, "Applied").unwrap().0, "True");
        let (_, ready_reason, ready_message) = condition(&a, "Ready").unwrap();
        assert!(
            !ready_reason.contains("Backup") && !ready_message.contains("snapshot"),
            "backups are not part of Ready: {ready_reason}: {ready_message}"
        );
    }
    let from = quiet(&cp).await;
    tokio::time::sleep(idle_window()).await; // the window itself is what is measured
    let window = operator_requests(&cp, from);
    let writes: Vec<&AuditEvent> = window.iter().filter(|e| e.is_write()).collect();
    let snaps = snapshot_requests(&window);
    eprintln!(
        "no snapshot API: idle window {} s, 3 Assistants: {} requests, {} writes, {} to snapshot.storage.k8s.io",
        idle_window().as_secs(),
        window.len(),
        writes.len(),
        snaps.len()
    );
    assert!(writes.is_empty(), "no writes:\n{}", describe(&writes));
    assert!(
        snaps.is_empty(),
        "no hot loop on the missing API:\n{}",
        describe(&snaps)
    );
    let warnings = op
        .logs()
        .lines()
        .filter(|l| l.contains("no VolumeSnapshot API"))
        .count();
    assert_eq!(warnings, 1, "said once:\n{}", op.logs());
    let all = operator_requests(&cp, started);
    let forbidden: Vec<&AuditEvent> = all.iter().filter(|e| e.code() == Some(403)).collect();
    assert!(
        forbidden.is_empty(),
        "RBAC refusals:\n{}",
        describe(&forbidden)
    );
    binder.abort();
}

// ---- 13 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_between_runs_writes_nothing() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let ns = "bk-idle";
    let admin = operator_namespace(cp, ns, true).await;
    let binder = claim_binder(admin.clone(), ns.into());
    // The next slot is 2-3 h away: nothing is due in the window.
    let hour = (Timestamp::now().to_zoned(TimeZone::UTC).hour() + 3) % 24;
    let names: Vec<String> = (1..=6).map(|i| format!("idle{i}")).collect();
    for n in &names {
        create_assistant(&admin, &assistant_json(ns, n, json!({}))).await;
    }
    let config = format!(
        "namespaces: [{ns}]\n{}",
        backups_config(&format!("  schedule: \"0 {hour} * * *\"\n"))
    );
    let _op = Operator::start(cp, Some(&config)).await;
    for n in &names {
        wait_for(
            &format!("{n} to converge with BackupHealthy"),
            Duration::from_secs(60),
            || async {
                let a = get_assistant(&admin, ns, n).await?;
                let storage = condition(&a, "StorageReady")?.0 == "True";
                let b = condition(&a, "BackupHealthy")?;
                (observed(&a) && storage && b.1 == "AwaitingFirstSnapshot").then_some(())
            },
        )
        .await;
    }
    let from = quiet(cp).await;
    tokio::time::sleep(idle_window()).await; // the window itself is what is measured
    let window = operator_requests(cp, from);
    let writes: Vec<&AuditEvent> = window.iter().filter(|e| e.is_write()).collect();
    eprintln!(
        "idle between runs: window {} s, 6 Assistants: {} requests ({} snapshot LISTs), {} writes",
        idle_window().as_secs(),
        window.len(),
        snapshot_requests(&window).len(),
        writes.len()
    );
    assert!(
        writes.is_empty(),
        "writes while idle:\n{}",
        describe(&writes)
    );
    assert!(snapshots(&admin, ns).await.is_empty(), "no slot was due");
    binder.abort();
}

// ---- 14 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_installed_later() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    if !snapshot_crds().is_dir() {
        return;
    }
    let cp: &'static ControlPlane = Box::leak(Box::new(cp));
    let env = Env::new(cp, "bk-later", config()).await;
    env.clock.set(tomorrow_at(1, 0));
    env.client("alice", json!({})).await;
    let (_, reason, _) = health(&env.get("alice").await);
    assert_eq!(reason, "SnapshotAPIUnavailable");

    install_snapshot_api(cp).await;
    env.clock.advance(SignedDuration::from_secs(60));
    env.reconcile("alice").await;
    assert_eq!(
        health(&env.get("alice").await).1,
        "SnapshotAPIUnavailable",
        "not asked again within 10 min"
    );
    env.clock.advance(SignedDuration::from_secs(600));
    env.reconcile("alice").await;
    let (st, reason, _) = health(&env.get("alice").await);
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("True", "AwaitingFirstSnapshot"),
        "found without a restart"
    );
    let (slot, _) = first_scheduled(&env, "alice").await;
    env.ready(&snapshot_name("alice", "scheduled", slot)).await;
    env.reconcile("alice").await;
    assert_eq!(health(&env.get("alice").await).1, "SnapshotReady");
}

// ---- 15 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_skips_scheduled_runs() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-suspended", config()).await;
    env.client("alice", json!({"suspended": true})).await;
    let (slot, _) = first_scheduled(&env, "alice").await;
    assert!(
        env.snapshots().await.is_empty(),
        "nothing writes the volume: no snapshot"
    );
    let a = env.get("alice").await;
    assert_eq!(
        time(&backup(&a).last_scheduled_run),
        Some(slot),
        "the slot is handled"
    );
    let (st, reason, _) = health(&a);
    assert_eq!((st.as_str(), reason.as_str()), ("True", "Suspended"));
    patch_assistant(
        &env.admin,
        &env.ns,
        "alice",
        json!({"metadata": {"annotations": {"clawhost.dev/backup-request": "snapshot:now"}}}),
    )
    .await;
    env.reconcile("alice").await;
    assert_eq!(
        env.snapshots_of("manual").await.len(),
        1,
        "a request is honoured while suspended"
    );
    env.teardown().await;
}

// ---- figures for docs/backups.md -----------------------------------------------------------

/// Prints (never asserts on time): snapshots created per minute under the fleet bucket, and
/// the duration of one reconcile of an Assistant with 100 snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_figures() {
    let _one = serial().await;
    let Some(cp) = shared().await else { return };
    let env = Env::new(cp, "bk-measure", config()).await;
    let clients: Vec<String> = (0..30).map(|i| format!("c{i:02}")).collect();
    env.clock.set(tomorrow_at(1, 0));
    for c in &clients {
        env.client(c, json!({})).await;
    }
    // Every client's run is due (03:00 + offset < 04:00): the bucket paces them.
    env.clock
        .set(tomorrow_at(4, 0) + SignedDuration::from_secs(1));
    let since = Timestamp::now();
    for c in &clients {
        env.reconcile(c).await;
    }
    let first_minute = env.count(since, "create", "volumesnapshots");
    env.clock.advance(SignedDuration::from_secs(60));
    let since2 = Timestamp::now();
    for c in &clients {
        env.reconcile(c).await;
    }
    let second_minute = env.count(since2, "create", "volumesnapshots");
    eprintln!(
        "bucket: 30 clients due at once, creationsPerMinute 20: {first_minute} created in the first minute, {second_minute} in the next"
    );
    assert!(first_minute <= 20, "the bucket holds: {first_minute}");

    // One Assistant with 100 snapshots (ready, manual, within keepOnDemandDays).
    let a = env.get("c00").await;
    let uid = a.uid().unwrap();
    for i in 0..100 {
        let name = format!("c00-bench-{i:03}-manual");
        let s: VolumeSnapshot = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                SNAPSHOT_KIND_LABEL: "manual", ASSISTANT_UID_LABEL: uid,
                "clawhost.dev/assistant": "c00", "app.kubernetes.io/managed-by": "clawhost",
                "app.kubernetes.io/component": "backup"},
              "annotations": {REQUEST_ANNOTATION: format!("snapshot:bench{i}"), SOURCE_CLAIM_ANNOTATION: "c00-data"}},
            "spec": {"source": {"persistentVolumeClaimName": "c00-data"}, "volumeSnapshotClassName": SNAPSHOT_CLASS},
        }))
        .unwrap();
        create_snapshot(&env.admin, &env.ns, &s, false)
            .await
            .unwrap();
        env.ready(&name).await;
    }
    env.reconcile("c00").await;
    let runs = 5;
    let started = Instant::now();
    for _ in 0..runs {
        env.reconcile("c00").await;
    }
    let per = started.elapsed() / runs;
    eprintln!(
        "reconcile of one Assistant with 100+ snapshots: {:.1} ms (mean of {runs}, in-process, real API server)",
        per.as_secs_f64() * 1000.0
    );
    env.teardown().await;
}
