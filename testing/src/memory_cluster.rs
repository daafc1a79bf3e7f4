//! The console's in-memory cluster: behaves like a cluster with an instantly converging
//! operator. Each Assistant's status is what the operator's pure
//! [`clawhost::reconciler::status::compute`] makes of the simulated world (a bound volume,
//! a gateway pod that is ready or failing, a joined tailnet device), so the console shows
//! exactly what the operator would write. Used by console tests, the demo console
//! (`console-demo`) and the console benchmark.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PersistentVolumeClaimStatus, Pod,
    PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use clawhost::api::{Assistant, BackupStatus, Phase, SnapshotKind};
use clawhost::backup::SnapshotInfo;
use clawhost::children::gateway_statefulset::{GATEWAY_CONTAINER, tailscale_hostname};
use clawhost::children::tailscale_state_secret::{DEVICE_FQDN_KEY, DEVICE_IPS_KEY};
use clawhost::children::{ChildNames, data_volume};
use clawhost::config::OperatorConfig;
use clawhost::console::cluster::{Cluster, ClusterError, EventInfo, RetainedClaim};
use clawhost::console::{Console, db, service};
use clawhost::reconciler::status::{self, Observed};

/// The tailnet every simulated device joins.
pub const TAILNET_DOMAIN: &str = "tail4a2c.ts.net";
/// The address every simulated device gets.
pub const DEVICE_IP: &str = "100.101.102.103";

/// What the simulated cluster holds for one Assistant besides the object itself.
#[derive(Default, Clone)]
struct World {
    /// The gateway container's waiting reason and message while it fails.
    gateway_failure: Option<(String, String)>,
    /// The Tailscale sidecar has joined once (its state Secret keeps the device).
    joined: bool,
    /// The API server refuses the operator's children of any spec with a plan other than
    /// this one (as a ResourceQuota would a bigger plan): `(allowed plan, message)`.
    quota: Option<(String, String)>,
    /// The data volume cannot be provisioned: the PVC stays Pending and no pod starts.
    volume_stuck: bool,
    /// `status.access` as the operator's invite logic would report it (set by tests).
    access: Option<clawhost::api::AccessStatus>,
    /// `status.backup` and the `BackupHealthy` condition (status, reason, message) as the
    /// operator's backup step would report them (set by tests and the demo).
    backup: Option<(BackupStatus, BackupHealth)>,
}

/// The `BackupHealthy` condition of the simulated operator: status, reason, message.
pub type BackupHealth = (&'static str, &'static str, String);

/// Condition type of backup health (the operator's `status::compute` writes it).
pub use clawhost::reconciler::status::BACKUP_HEALTHY;

#[derive(Default)]
struct MemState {
    assistants: BTreeMap<(String, String), Arc<Assistant>>,
    world: BTreeMap<(String, String), World>,
    secrets: BTreeMap<(String, String), Secret>,
    /// Events by (namespace, involved object name), like the API's field selector.
    events: BTreeMap<(String, String), Vec<EventInfo>>,
    logs: BTreeMap<(String, String), String>,
    unreachable: Option<String>,
    /// VolumeSnapshots by (namespace, Assistant uid), in no particular order.
    snapshots: BTreeMap<(String, String), Vec<SnapshotInfo>>,
    /// The cluster has no VolumeSnapshot API (`snapshots` answers `Ok(None)`).
    no_snapshot_api: bool,
    /// Claims labelled retained, by (namespace, Assistant base name).
    retained: BTreeMap<(String, String), Vec<RetainedClaim>>,
    /// The simulated operator is not reconciling: spec changes raise the generation but
    /// the status stays at the previous one (a rollout not applied yet).
    operator_held: bool,
    next_uid: u64,
}

#[derive(Default)]
pub struct MemoryCluster {
    state: Mutex<MemState>,
    /// The operator config the simulated operator runs with (default version, plans).
    config: OperatorConfig,
    /// Writes through the `Cluster` trait (create, patch, delete, Secrets): tests of
    /// "an idle pass writes nothing".
    writes: std::sync::atomic::AtomicU64,
}

fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

fn data(pairs: &[(&str, String)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// The observations the operator would make of `a` in the simulated world.
fn observe(a: &Assistant, config: &OperatorConfig, world: &World) -> Observed {
    // The operator's own check: an invalid spec (kubectl skips the console's) is refused.
    let config_problem = clawhost::validation::validate(a, config, None)
        .err()
        .map(|p| clawhost::reconciler::status::ConfigProblem {
            reason: "InvalidSpec",
            message: p.to_string(),
        });
    let refused = world
        .quota
        .iter()
        .filter(|(allowed, _)| a.spec.plan.as_deref() != Some(allowed.as_str()))
        .map(|(_, message)| clawhost::reconciler::status::ApplyRefusal {
            kind: "StatefulSet".into(),
            name: ChildNames::for_assistant(a).statefulset,
            message: message.clone(),
        })
        .collect();
    let volume = data_volume::build(a, config).ok().map(|mut pvc| {
        let requested = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.clone());
        pvc.status = Some(if world.volume_stuck {
            PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }
        } else {
            PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                capacity: requested,
                ..Default::default()
            }
        });
        pvc
    });
    let pod = (!a.spec.suspended && !world.volume_stuck).then(|| {
        let waiting = world
            .gateway_failure
            .as_ref()
            .map(|(reason, message)| ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                }),
                ..Default::default()
            });
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(clawhost::console::cluster::gateway_pod_name(
                    a.metadata.name.as_deref().unwrap_or_default(),
                )),
                namespace: a.metadata.namespace.clone(),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: GATEWAY_CONTAINER.into(),
                    ready: waiting.is_none(),
                    state: waiting,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    });
    let tailscale_state = world.joined.then(|| Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(ChildNames::for_assistant(a).tailscale_state_secret),
            namespace: a.metadata.namespace.clone(),
            ..Default::default()
        },
        data: Some(data(&[
            (
                DEVICE_FQDN_KEY,
                format!("{}.{TAILNET_DOMAIN}.", tailscale_hostname(a)),
            ),
            (DEVICE_IPS_KEY, format!("[\"{DEVICE_IP}\"]")),
        ])),
        ..Default::default()
    });
    Observed {
        config_problem,
        refused,
        volume,
        pod,
        tailscale_state,
        ..Default::default()
    }
}

impl MemoryCluster {
    pub fn new(config: OperatorConfig) -> Self {
        Self {
            state: Mutex::new(MemState::default()),
            config,
            writes: Default::default(),
        }
    }

    /// How many writes the console made through the `Cluster` trait so far (attempts
    /// included: a refused write still reached the API server).
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count_write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A few Assistants in different phases, for demos and browser tests.
    pub fn seeded(namespace: &str, config: OperatorConfig) -> Self {
        let me = Self::new(config);
        for (name, owner, email, plan, phase) in demo_assistants() {
            let mut a = demo_assistant(namespace, name, owner, email, plan);
            a.spec.suspended = phase == Phase::Suspended;
            me.insert(a);
            if phase == Phase::Degraded {
                me.fail_gateway(
                    namespace,
                    name,
                    "CrashLoopBackOff",
                    "back-off 5m0s restarting failed container=gateway",
                );
            }
        }
        me
    }

    /// Makes every call fail as if the API server were down (tests of the banner).
    pub fn set_unreachable(&self, reason: Option<&str>) {
        self.state.lock().expect("lock").unreachable = reason.map(str::to_string);
    }

    /// Makes the API server refuse the operator's children of this Assistant for any plan
    /// but `allowed` (as a ResourceQuota sized for that plan would): tests of a plan change
    /// the operator cannot apply.
    pub fn set_quota(&self, ns: &str, name: &str, allowed: &str, message: &str) {
        let mut st = self.state.lock().expect("lock");
        let key = (ns.to_string(), name.to_string());
        st.world.entry(key).or_default().quota = Some((allowed.into(), message.into()));
    }

    /// Stops (`true`) or resumes the simulated operator: while held, spec changes are
    /// stored with a new generation but not reconciled (tests of "not applied yet").
    pub fn hold_operator(&self, held: bool) {
        let mut st = self.state.lock().expect("lock");
        st.operator_held = held;
        if held {
            return;
        }
        let keys: Vec<_> = st.assistants.keys().cloned().collect();
        for key in keys {
            let world = st.world.get(&key).cloned().unwrap_or_default();
            if let Some(a) = st.assistants.get_mut(&key) {
                self.reconcile(Arc::make_mut(a), &world);
            }
        }
    }

    /// Adds Assistants as if created with kubectl (no client record): one Running, one
    /// Failed (an invalid spec the operator refuses). For the demo's Fleet page.
    pub fn seed_unmanaged(&self, namespace: &str) {
        self.insert(demo_assistant(
            namespace,
            "kubectl-lab",
            "Lab Team",
            "lab@example.com",
            "small",
        ));
        let mut broken = demo_assistant(
            namespace,
            "kubectl-broken",
            "Broken Example",
            "broken@example.com",
            "standard",
        );
        broken.spec.plan = Some("platinum".into());
        self.insert(broken);
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, MemState>, ClusterError> {
        let st = self.state.lock().expect("lock");
        match &st.unreachable {
            Some(r) => Err(ClusterError::Unreachable(r.clone())),
            None => Ok(st),
        }
    }

    /// Adds an Assistant as if an operator had reconciled it.
    pub fn insert(&self, mut a: Assistant) -> Assistant {
        let mut st = self.state.lock().expect("lock");
        st.next_uid += 1;
        a.metadata.uid = Some(format!("00000000-0000-4000-8000-{:012}", st.next_uid));
        a.metadata.generation = Some(1);
        a.metadata.creation_timestamp.get_or_insert_with(now_time);
        let key = key_of(&a);
        let world = World {
            gateway_failure: None,
            joined: !a.spec.suspended,
            quota: None,
            volume_stuck: false,
            access: None,
            backup: None,
        };
        self.reconcile(&mut a, &world);
        st.world.insert(key.clone(), world);
        st.events.insert(
            key.clone(),
            vec![EventInfo {
                type_: "Normal".into(),
                reason: "Reconciled".into(),
                message: "All children applied".into(),
                object: format!("Assistant/{}", key.1),
                count: 1,
                last_seen: Some(jiff::Timestamp::now().to_string()),
            }],
        );
        st.logs.insert(
            key.clone(),
            format!(
                "[gateway] openclaw {} listening on 127.0.0.1:18789\n[gateway] tailscale serve ready\n",
                a.status.as_ref().and_then(|s| s.gateway_version.clone()).unwrap_or_default()
            ),
        );
        st.assistants.insert(key, Arc::new(a.clone()));
        a
    }

    /// Makes the gateway container of an Assistant wait with `reason` (for example
    /// `CrashLoopBackOff`), and reconciles: tests and demos of degraded states.
    pub fn fail_gateway(&self, ns: &str, name: &str, reason: &str, message: &str) {
        let mut st = self.state.lock().expect("lock");
        let key = (ns.to_string(), name.to_string());
        let world = st.world.entry(key.clone()).or_default();
        world.gateway_failure = Some((reason.into(), message.into()));
        let world = world.clone();
        if let Some(a) = st.assistants.get_mut(&key) {
            self.reconcile(Arc::make_mut(a), &world);
        }
    }

    /// Records a Kubernetes event about one object (`kind`/`object`) in `ns`.
    pub fn add_event(
        &self,
        ns: &str,
        kind: &str,
        object: &str,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let mut st = self.state.lock().expect("lock");
        st.events
            .entry((ns.to_string(), object.to_string()))
            .or_default()
            .push(EventInfo {
                type_: type_.into(),
                reason: reason.into(),
                message: message.into(),
                object: format!("{kind}/{object}"),
                count: 1,
                last_seen: Some(jiff::Timestamp::now().to_string()),
            });
    }

    /// Makes the data volume of an Assistant unprovisionable (a storage class without a
    /// provisioner): the PVC stays Pending, the pod never starts and has no log, and the
    /// events say so, as on a real cluster.
    pub fn stall_volume(&self, ns: &str, name: &str, message: &str) {
        let names = ChildNames::new(name);
        {
            let mut st = self.state.lock().expect("lock");
            let key = (ns.to_string(), name.to_string());
            let world = st.world.entry(key.clone()).or_default();
            world.volume_stuck = true;
            world.joined = false;
            let world = world.clone();
            st.logs.remove(&key);
            if let Some(a) = st.assistants.get_mut(&key) {
                self.reconcile(Arc::make_mut(a), &world);
            }
        }
        self.add_event(
            ns,
            "PersistentVolumeClaim",
            &names.data_volume,
            "Warning",
            "ProvisioningFailed",
            message,
        );
        self.add_event(
            ns,
            "Pod",
            &clawhost::console::cluster::gateway_pod_name(name),
            "Warning",
            "FailedScheduling",
            "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        );
    }

    /// A Secret's decoded value (tests only; the console never reads Secrets).
    pub fn secret_value(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        let st = self.state.lock().expect("lock");
        let s = st.secrets.get(&(ns.to_string(), name.to_string()))?;
        if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone());
        }
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    }

    pub fn secret_names(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .expect("lock")
            .secrets
            .keys()
            .cloned()
            .collect()
    }

    /// The simulated operator: the status `reconciler::status::compute` writes for what it
    /// observes.
    fn reconcile(&self, a: &mut Assistant, world: &World) {
        let mut st = status::compute(a, &self.config, &observe(a, &self.config, world));
        st.access = world.access.clone();
        if let Some((backup, (status, reason, message))) = &world.backup {
            st.backup = Some(backup.clone());
            st.conditions.retain(|c| c.type_ != BACKUP_HEALTHY);
            st.conditions
                .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: BACKUP_HEALTHY.into(),
                    status: (*status).into(),
                    reason: (*reason).into(),
                    message: message.clone(),
                    observed_generation: a.metadata.generation,
                    last_transition_time: now_time(),
                });
        }
        a.status = Some(st);
    }

    /// Sets `status.backup` and the `BackupHealthy` condition of an Assistant (what the
    /// operator's backup step reports) and reconciles; `None` removes both.
    pub fn set_backup(&self, ns: &str, name: &str, backup: Option<(BackupStatus, BackupHealth)>) {
        let removed = backup.is_none();
        self.update_world(ns, name, |w| w.backup = backup);
        if removed {
            let mut st = self.state.lock().expect("lock");
            if let Some(a) = st.assistants.get_mut(&(ns.to_string(), name.to_string())) {
                let a = Arc::make_mut(a);
                if let Some(s) = a.status.as_mut() {
                    s.backup = None;
                    s.conditions.retain(|c| c.type_ != BACKUP_HEALTHY);
                }
            }
        }
    }

    /// Adds a VolumeSnapshot of the Assistant `ns/name` (labelled with its uid).
    pub fn add_snapshot(&self, ns: &str, name: &str, snapshot: SnapshotInfo) {
        let mut st = self.state.lock().expect("lock");
        let Some(uid) = st
            .assistants
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|a| a.metadata.uid.clone())
        else {
            return;
        };
        st.snapshots
            .entry((ns.to_string(), uid))
            .or_default()
            .push(snapshot);
    }

    /// Whether the cluster has the VolumeSnapshot API (it has by default).
    pub fn set_snapshot_api(&self, available: bool) {
        self.state.lock().expect("lock").no_snapshot_api = !available;
    }

    /// Adds a claim labelled retained for the Assistant of base name `base`.
    pub fn add_retained_claim(&self, ns: &str, base: &str, claim: RetainedClaim) {
        let mut st = self.state.lock().expect("lock");
        st.retained
            .entry((ns.to_string(), base.to_string()))
            .or_default()
            .push(claim);
    }

    /// The demo's backups: a few snapshots per client, `bakery-lund`'s newest failing,
    /// `chen-studio` without a ready snapshot for 3 days, `dr-okafor` suspended (scheduled
    /// runs skipped). Times are relative to now, so the fleet view always has its cases.
    pub fn seed_backup_demo(&self, ns: &str) {
        use jiff::{SignedDuration, Timestamp};
        let now = Timestamp::now();
        let day = SignedDuration::from_hours(24);
        // Today's 03:00 UTC slot, or yesterday's before 03:00.
        let midnight = now
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(now);
        let mut slot = midnight + SignedDuration::from_hours(3);
        if slot > now {
            slot -= day;
        }
        let next = slot + day;
        let plan_size = |plan: &str| match plan {
            "small" => "5Gi",
            "large" => "50Gi",
            _ => "20Gi",
        };
        for (name, _, _, plan, phase) in demo_assistants() {
            let size = plan_size(plan);
            let base = ChildNames::new(name).base;
            let scheduled = |back: i64, ready: bool, error: Option<&str>| {
                let at = slot - day * back as i32;
                demo_snapshot(&base, SnapshotKind::Scheduled, at, ready, error, Some(size))
            };
            let (snaps, health): (Vec<SnapshotInfo>, BackupHealth) = match name {
                "bakery-lund" => {
                    let failed = scheduled(
                        0,
                        false,
                        Some(
                            "rpc error: code = ResourceExhausted desc = snapshot quota exceeded in project",
                        ),
                    );
                    let message = format!(
                        "{} failed: rpc error: code = ResourceExhausted desc = snapshot quota exceeded in project",
                        failed.name
                    );
                    (
                        vec![failed, scheduled(1, true, None), scheduled(2, true, None)],
                        ("False", "SnapshotFailed", message),
                    )
                }
                "chen-studio" => {
                    let since = slot - day * 3;
                    (
                        vec![scheduled(3, true, None), scheduled(4, true, None)],
                        (
                            "False",
                            "SnapshotMissing",
                            format!("no ready snapshot since {since} (window 48h)"),
                        ),
                    )
                }
                "dr-okafor" if phase == Phase::Suspended => (
                    vec![scheduled(6, true, None), scheduled(7, true, None)],
                    (
                        "True",
                        "Suspended",
                        format!(
                            "suspended: no scheduled snapshots; the newest is {}",
                            demo_snapshot(
                                &base,
                                SnapshotKind::Scheduled,
                                slot - day * 6,
                                true,
                                None,
                                None
                            )
                            .name
                        ),
                    ),
                ),
                _ => {
                    let manual = demo_snapshot(
                        &base,
                        SnapshotKind::Manual,
                        slot - SignedDuration::from_hours(30),
                        true,
                        None,
                        Some(size),
                    );
                    let newest = scheduled(0, true, None);
                    let message = format!("{} is ready ({size}); next run {next}", newest.name);
                    (
                        vec![
                            newest,
                            manual,
                            scheduled(1, true, None),
                            scheduled(2, true, None),
                        ],
                        ("True", "SnapshotReady", message),
                    )
                }
            };
            let newest_ready = snaps
                .iter()
                .filter(|s| s.ready)
                .max_by_key(|s| s.taken)
                .cloned();
            let backup = BackupStatus {
                last_snapshot: newest_ready.as_ref().map(|s| s.name.clone()),
                last_snapshot_time: newest_ready.as_ref().map(|s| s.taken.to_string()),
                last_snapshot_size: newest_ready.as_ref().and_then(|s| s.restore_size.clone()),
                next_run: (phase != Phase::Suspended).then(|| next.to_string()),
                last_scheduled_run: Some(slot.to_string()),
                ready_snapshots: Some(snaps.iter().filter(|s| s.ready).count() as u32),
                ..Default::default()
            };
            for snap in snaps {
                self.add_snapshot(ns, name, snap);
            }
            self.set_backup(ns, name, Some((backup, health)));
        }
    }

    /// Sets `status.access` of an Assistant (what the operator's invite logic reports) and
    /// reconciles: tests and demos of the Access panel and the handoff page.
    pub fn set_access(&self, ns: &str, name: &str, access: Option<clawhost::api::AccessStatus>) {
        self.update_world(ns, name, |w| w.access = access);
    }

    /// Whether the Assistant's device is on the tailnet (`status.tailnet` with its address).
    pub fn set_joined(&self, ns: &str, name: &str, joined: bool) {
        self.update_world(ns, name, |w| w.joined = joined);
    }

    /// The simulated operator's invite step: every Assistant on the tailnet without
    /// `status.access` gets a Sent invite to its owner, its URL sealed with `key` (as the
    /// operator seals it with the shared access key). Returns how many were sent.
    pub fn send_pending_invites(&self, key: &clawhost::sealing::SealingKey) -> usize {
        let due: Vec<(String, String, String)> = {
            let st = self.state.lock().expect("lock");
            st.assistants
                .iter()
                .filter(|(k, _)| {
                    st.world
                        .get(*k)
                        .is_some_and(|w| w.joined && w.access.is_none())
                })
                .map(|(k, a)| (k.0.clone(), k.1.clone(), a.spec.owner.email.clone()))
                .collect()
        };
        for (ns, name, email) in &due {
            self.set_access(ns, name, Some(demo_invite(key, ns, name, email)));
        }
        due.len()
    }

    /// The operator's backup request and in-place restore, for a patch from `before` to
    /// `after`: a new `clawhost.dev/backup-request` takes a manual snapshot (ready at once);
    /// a new `restoreFrom` marks the previous claim retained, replaced by the new one.
    fn simulate_backup_steps(st: &mut MemState, before: &Assistant, after: &Assistant) {
        use clawhost::api::{BACKUP_REQUEST_ANNOTATION, parse_backup_request};
        let ns = after.metadata.namespace.clone().unwrap_or_default();
        let name = after.metadata.name.clone().unwrap_or_default();
        let key = (ns.clone(), name.clone());
        let uid = after.metadata.uid.clone().unwrap_or_default();
        let names = ChildNames::for_assistant(after);
        let request = |a: &Assistant| {
            a.metadata
                .annotations
                .as_ref()
                .and_then(|m| m.get(BACKUP_REQUEST_ANNOTATION).cloned())
        };
        if let Some(value) = request(after).filter(|v| Some(v) != request(before).as_ref())
            && let Some((kind, _)) = parse_backup_request(&value)
            && !st.no_snapshot_api
        {
            let mut snap = demo_snapshot(
                &names.base,
                kind,
                jiff::Timestamp::now(),
                true,
                None,
                Some("20Gi"),
            );
            snap.request = Some(value.clone());
            snap.source_claim = Some(ChildNames::for_assistant(before).data_volume);
            let snap_name = snap.name.clone();
            st.snapshots
                .entry((ns.clone(), uid.clone()))
                .or_default()
                .push(snap);
            if let Some((backup, _)) = st.world.entry(key.clone()).or_default().backup.as_mut() {
                backup.handled_request = Some(value);
                backup.request_snapshot = Some(snap_name);
            }
        }
        let from = |a: &Assistant| a.storage().restore_from.map(|r| r.volume_snapshot_name);
        if from(after).is_some() && from(after) != from(before) {
            let old = ChildNames::for_assistant(before).data_volume;
            st.retained
                .entry((ns.clone(), names.base.clone()))
                .or_default()
                .push(RetainedClaim {
                    uid: format!("pvc-{old}"),
                    name: old,
                    capacity: Some("20Gi".into()),
                    retained_from: Some(format!("{ns}/{name}")),
                    replaced_by: Some(names.data_volume.clone()),
                    restored_from: from(before),
                    created: before
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string()),
                    assistant_uid: Some(uid.clone()),
                    owner_email: Some(after.spec.owner.email.clone()),
                });
        }
    }

    fn update_world(&self, ns: &str, name: &str, change: impl FnOnce(&mut World)) {
        let mut st = self.state.lock().expect("lock");
        let key = (ns.to_string(), name.to_string());
        let world = st.world.entry(key.clone()).or_default();
        change(world);
        let world = world.clone();
        if let Some(a) = st.assistants.get_mut(&key) {
            self.reconcile(Arc::make_mut(a), &world);
        }
    }
}

fn key_of(a: &Assistant) -> (String, String) {
    (
        a.metadata.namespace.clone().unwrap_or_default(),
        a.metadata.name.clone().unwrap_or_default(),
    )
}

impl Cluster for MemoryCluster {
    fn health(&self) -> Option<String> {
        self.state.lock().expect("lock").unreachable.clone()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>> {
        let r = self
            .check()
            .map(|st| st.assistants.values().cloned().collect());
        futures::future::ready(r).boxed()
    }

    /// Like a watch cache: what was there when the cluster went away.
    fn last_known(&self) -> Vec<Arc<Assistant>> {
        let st = self.state.lock().expect("lock");
        st.assistants.values().cloned().collect()
    }

    fn get<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assistant>, ClusterError>> {
        let r = self.check().map(|st| {
            st.assistants
                .get(&(ns.to_string(), name.to_string()))
                .map(|a| (**a).clone())
        });
        futures::future::ready(r).boxed()
    }

    fn create<'a>(&'a self, a: &'a Assistant) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        self.count_write();
        let r = (|| {
            let st = self.check()?;
            if st.assistants.contains_key(&key_of(a)) {
                return Err(ClusterError::AlreadyExists(format!(
                    "assistants.clawhost.dev {:?} already exists",
                    a.metadata.name.as_deref().unwrap_or_default()
                )));
            }
            drop(st);
            Ok(self.insert(a.clone()))
        })();
        futures::future::ready(r).boxed()
    }

    fn patch<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        patch: Value,
    ) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        self.count_write();
        let r = (|| {
            let mut st = self.check()?;
            let key = (ns.to_string(), name.to_string());
            let current = st.assistants.get(&key).ok_or(ClusterError::NotFound)?;
            let mut v = serde_json::to_value(&**current)
                .map_err(|e| ClusterError::Rejected(e.to_string()))?;
            json_patch::merge(&mut v, &patch);
            let mut a: Assistant =
                serde_json::from_value(v).map_err(|e| ClusterError::Rejected(e.to_string()))?;
            if a.spec != current.spec {
                a.metadata.generation = Some(a.metadata.generation.unwrap_or(1) + 1);
            }
            if !st.operator_held {
                let before = (**current).clone();
                Self::simulate_backup_steps(&mut st, &before, &a);
                let world = st.world.entry(key.clone()).or_default();
                world.joined |= !a.spec.suspended && !world.volume_stuck;
                let world = world.clone();
                self.reconcile(&mut a, &world);
            }
            st.assistants.insert(key, Arc::new(a.clone()));
            Ok(a)
        })();
        futures::future::ready(r).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.count_write();
        let r = (|| {
            let mut st = self.check()?;
            let key = (ns.to_string(), name.to_string());
            st.assistants.remove(&key).ok_or(ClusterError::NotFound)?;
            st.world.remove(&key);
            // Owned Secrets go with their Assistant (garbage collection).
            let uid_owned: Vec<_> = st
                .secrets
                .iter()
                .filter(|(k, s)| {
                    k.0 == ns
                        && s.metadata
                            .owner_references
                            .as_ref()
                            .is_some_and(|o| o.iter().any(|o| o.name == name))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in uid_owned {
                st.secrets.remove(&k);
            }
            Ok(())
        })();
        futures::future::ready(r).boxed()
    }

    fn create_secret<'a>(&'a self, s: &'a Secret) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.count_write();
        let r = (|| {
            let mut st = self.check()?;
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            if st.secrets.contains_key(&key) {
                return Err(ClusterError::AlreadyExists(format!(
                    "secrets {:?} already exists",
                    key.1
                )));
            }
            st.secrets.insert(key, s.clone());
            Ok(())
        })();
        futures::future::ready(r).boxed()
    }

    fn patch_secret_key<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.count_write();
        let r = (|| {
            let mut st = self.check()?;
            let s = st
                .secrets
                .get_mut(&(ns.to_string(), name.to_string()))
                .ok_or(ClusterError::NotFound)?;
            if let Some(sd) = s.string_data.as_mut() {
                sd.remove(key);
            }
            s.data.get_or_insert_with(Default::default).insert(
                key.to_string(),
                k8s_openapi::ByteString(value.as_bytes().to_vec()),
            );
            Ok(())
        })();
        futures::future::ready(r).boxed()
    }

    fn events<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<EventInfo>, ClusterError>> {
        // The same objects the kube implementation asks about: the Assistant, its gateway
        // pod and its data volume.
        let r = self.check().map(|st| {
            let volume = st
                .assistants
                .get(&(ns.to_string(), name.to_string()))
                .map(|a| ChildNames::for_assistant(a).data_volume)
                .unwrap_or_else(|| ChildNames::new(name).data_volume);
            let objects = [
                name.to_string(),
                clawhost::console::cluster::gateway_pod_name(name),
                volume,
            ];
            let mut out: Vec<EventInfo> = objects
                .into_iter()
                .filter_map(|o| st.events.get(&(ns.to_string(), o)))
                .flatten()
                .cloned()
                .collect();
            out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
            out
        });
        futures::future::ready(r).boxed()
    }

    fn gateway_log<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        lines: i64,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>> {
        let r = self.check().map(|st| {
            let key = (ns.to_string(), name.to_string());
            let suspended = st.assistants.get(&key).is_some_and(|a| a.spec.suspended);
            if suspended {
                return None;
            }
            st.logs.get(&key).map(|l| {
                let all: Vec<&str> = l.lines().collect();
                let start = all.len().saturating_sub(lines.max(0) as usize);
                all[start..].join("\n")
            })
        });
        futures::future::ready(r).boxed()
    }

    fn snapshots<'a>(
        &'a self,
        ns: &'a str,
        assistant_uid: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SnapshotInfo>>, ClusterError>> {
        let r = self.check().map(|st| {
            if st.no_snapshot_api {
                return None;
            }
            let mut out = st
                .snapshots
                .get(&(ns.to_string(), assistant_uid.to_string()))
                .cloned()
                .unwrap_or_default();
            clawhost::console::cluster::sort_newest_first(&mut out);
            Some(out)
        });
        futures::future::ready(r).boxed()
    }

    fn retained_claims<'a>(
        &'a self,
        ns: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RetainedClaim>, ClusterError>> {
        let r = self.check().map(|st| {
            st.retained
                .get(&(ns.to_string(), base.to_string()))
                .cloned()
                .unwrap_or_default()
        });
        futures::future::ready(r).boxed()
    }
}

/// A snapshot as the operator names and labels them (`<base>-<yyyymmdd>-<hhmmss>-<kind>`).
pub fn demo_snapshot(
    base: &str,
    kind: SnapshotKind,
    at: jiff::Timestamp,
    ready: bool,
    error: Option<&str>,
    restore_size: Option<&str>,
) -> SnapshotInfo {
    let stamp = at
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y%m%d-%H%M%S");
    let name = format!("{base}-{stamp}-{}", kind.as_str());
    SnapshotInfo {
        uid: format!("snap-{name}"),
        name,
        kind,
        taken: at,
        created: at,
        ready,
        error: error.map(str::to_string),
        restore_size: restore_size.filter(|_| ready).map(str::to_string),
        scheduled_for: (kind == SnapshotKind::Scheduled).then_some(at),
        request: None,
        expires_at: None,
        source_claim: Some(format!("{base}-data")),
        deleting: false,
    }
}

type Demo = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Phase,
);

/// The demo fleet of [`MemoryCluster::seeded`].
pub fn demo_assistants() -> Vec<Demo> {
    vec![
        (
            "acme-legal",
            "Acme Legal LLP",
            "it@acme-legal.example",
            "standard",
            Phase::Running,
        ),
        (
            "bakery-lund",
            "Bageri Lund AB",
            "hej@bageri-lund.example",
            "small",
            Phase::Running,
        ),
        (
            "chen-studio",
            "Chen Design Studio",
            "mei@chen.example",
            "large",
            Phase::Degraded,
        ),
        (
            "dr-okafor",
            "Dr. Okafor Clinic",
            "admin@okafor.example",
            "standard",
            Phase::Suspended,
        ),
    ]
}

pub fn demo_assistant(ns: &str, name: &str, owner: &str, email: &str, plan: &str) -> Assistant {
    use clawhost::api::{AssistantSpec, Owner, SecretKeyRef, TailscaleSpec};
    Assistant {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: AssistantSpec {
            owner: Owner {
                name: owner.into(),
                email: email.into(),
            },
            plan: Some(plan.into()),
            tailscale: Some(TailscaleSpec {
                auth_key_secret_ref: Some(SecretKeyRef {
                    name: format!("{name}-tailscale-auth"),
                    key: "authkey".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    }
}

/// Gives every Assistant of the cluster a client record, once (the demo console and tests).
pub async fn seed_records(ctx: &Console) -> Result<(), service::ActionError> {
    for a in ctx.cluster.list().await? {
        let ns = a.metadata.namespace.clone().unwrap_or_default();
        let name = a.metadata.name.clone().unwrap_or_default();
        if ctx.db.client_by_assistant(&ns, &name).await?.is_none() {
            let rec = db::NewClientRecord {
                name: a.spec.owner.name.clone(),
                email: a.spec.owner.email.clone(),
                billing_status: "active".into(),
                notes: String::new(),
                namespace: ns,
                assistant_name: name,
            };
            ctx.db.insert_client(&rec, service::now()).await?;
        }
    }
    Ok(())
}

/// A Sent invite as the operator reports it, with a demo invite URL sealed with `key`.
pub fn demo_invite(
    key: &clawhost::sealing::SealingKey,
    ns: &str,
    name: &str,
    email: &str,
) -> clawhost::api::AccessStatus {
    let now = jiff::Timestamp::now().to_string();
    clawhost::api::AccessStatus {
        state: clawhost::api::AccessState::Sent,
        device_id: Some(format!("n{}CNTRL", name.len())),
        invite_id: Some(format!("invite-{name}")),
        recipient: Some(email.into()),
        sealed_invite_url: Some(key.seal(
            &format!("https://login.tailscale.com/admin/invite/demo-{name}"),
            &clawhost::sealing::invite_url_context(ns, name),
        )),
        last_transition_time: Some(now.clone()),
        last_sent_time: Some(now),
        ..Default::default()
    }
}
