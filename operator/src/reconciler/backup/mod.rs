//! The backup step of the reconcile: snapshots on schedule and on request, retention, and
//! what `status.backup` and `BackupHealthy` say. Every decision is a core function
//! (`clawhost_core::backup`); this module lists, creates and deletes what they say. It
//! never fails the reconcile and never touches another child: a backup problem is a
//! condition, not an outage.

pub mod discovery;
pub mod janitor;
pub mod throttle;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use kube::core::ApiResource;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::backup::REPLACED_BY_ANNOTATION;
use crate::api::snapshot::VolumeSnapshot;
use crate::api::{
    ASSISTANT_UID_LABEL, Assistant, BACKUP_REQUEST_ANNOTATION, BackupStatus, SnapshotKind,
    parse_backup_request,
};
use crate::backup::{
    ApiState, BackupHealth, BackupPolicy, HealthInput, SnapshotInfo, backup_status, due_run,
    effective_policy, evaluate_health, scheduled_stuck, select_for_deletion, spread_offset,
};
use crate::children::kinds::ChildId;
use crate::children::{ASSISTANT_UID_ANNOTATION, RETAINED_LABEL};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use super::observe::Observation;
use super::{Context, assistant_key, events, names};

/// Poll interval while one of the Assistant's snapshots is being cut (no watch on
/// snapshots: the CRD may be missing), and the retry after a transport or 5xx error.
const POLL: Duration = Duration::from_secs(30);
/// A refused create is retried after 1 min, doubling up to 30 min.
const REFUSED_FIRST: SignedDuration = SignedDuration::from_mins(1);
const REFUSED_MAX: SignedDuration = SignedDuration::from_mins(30);
/// The message of a pass that could not reach the API server (never a secret).
pub const UNREACHABLE: &str = "could not reach the API server for snapshots; retrying";

/// What `status::compute` needs from the backup step.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupObservation {
    pub health: BackupHealth,
    pub status: BackupStatus,
}

pub struct BackupOutcome {
    pub observation: BackupObservation,
    /// When the step wants to run again (the next slot, a pending snapshot); `Duration::MAX`
    /// when it has nothing to wait for.
    pub requeue: Duration,
}

/// Per-Assistant memory of refused creates (4xx: RBAC, quota, admission), so a refused
/// create is retried after 1 min doubling to 30 min instead of on every reconcile, and
/// `BackupHealthy` keeps saying why until a create succeeds. In memory: a restart retries
/// once at once, which is fine. Times are `ctx.clock`'s, so tests drive the backoff.
#[derive(Debug, Default)]
pub struct BackupClock {
    refused: Mutex<HashMap<String, Refusal>>,
}

#[derive(Debug, Clone)]
struct Refusal {
    message: String,
    failures: u32,
    retry_at: Timestamp,
}

impl BackupClock {
    /// The last refusal's message and when a create may be tried again.
    pub fn refused(&self, key: &str) -> Option<(String, Timestamp)> {
        self.lock()
            .get(key)
            .map(|r| (r.message.clone(), r.retry_at))
    }

    /// Counts a refusal; returns when to try again.
    fn record_refusal(&self, key: &str, message: String, now: Timestamp) -> Timestamp {
        let mut all = self.lock();
        let failures = all.get(key).map_or(0, |r| r.failures).saturating_add(1);
        let wait = REFUSED_FIRST
            .checked_mul(1 << (failures - 1).min(5))
            .unwrap_or(REFUSED_MAX)
            .min(REFUSED_MAX);
        let retry_at = now.checked_add(wait).unwrap_or(now);
        all.insert(
            key.to_string(),
            Refusal {
                message,
                failures,
                retry_at,
            },
        );
        retry_at
    }

    /// A create succeeded (or the Assistant is gone): nothing is refused any more.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Refusal>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One pass, for an Assistant whose volume is its own: request, schedule, retention,
/// health. Runs whether or not ConfigValid is True (a spec typo never stops backups).
pub async fn run(a: &Assistant, ctx: &Context, observed: &Observation) -> BackupOutcome {
    let now = ctx.clock.now();
    let key = assistant_key(a);
    let outcome = Pass::new(a, ctx, observed, now).run().await;
    ctx.metrics
        .set_backup_state(&key, outcome.observation.health.state);
    outcome
}

/// One reconcile's backup pass: what was read, and what it decided so far.
struct Pass<'a> {
    a: &'a Assistant,
    ctx: &'a Context,
    observed: &'a Observation,
    now: Timestamp,
    key: String,
    ns: String,
    old: BackupStatus,
    snapshots: Vec<SnapshotInfo>,
    refused: Option<String>,
    /// What went wrong talking to the server this pass (short, stable: `HTTP 500`).
    unreachable: Option<String>,
    requeue: Duration,
    last_scheduled_run: Option<Timestamp>,
    handled_request: Option<String>,
    request_snapshot: Option<String>,
    /// The data claim the Assistant uses now and its phase (`None`: no claim).
    claim: Option<(String, Option<String>)>,
}

impl<'a> Pass<'a> {
    fn new(a: &'a Assistant, ctx: &'a Context, observed: &'a Observation, now: Timestamp) -> Self {
        let old = a
            .status
            .as_ref()
            .and_then(|s| s.backup.clone())
            .unwrap_or_default();
        Self {
            a,
            ctx,
            observed,
            now,
            key: assistant_key(a),
            ns: a.namespace().unwrap_or_default(),
            last_scheduled_run: old.last_scheduled_run.as_deref().and_then(parse_time),
            handled_request: old.handled_request.clone(),
            request_snapshot: old.request_snapshot.clone(),
            old,
            snapshots: Vec::new(),
            refused: None,
            unreachable: None,
            requeue: Duration::MAX,
            claim: observed.state.volume.as_ref().map(|v| {
                let phase = v.status.as_ref().and_then(|s| s.phase.clone());
                (v.name_any(), phase)
            }),
        }
    }

    async fn run(mut self) -> BackupOutcome {
        // 1. The policy; off or broken: no API calls at all.
        let policy = match effective_policy(self.a, &self.ctx.config) {
            Ok(Some(p)) => p,
            Ok(None) => {
                let why = crate::backup::disabled_by(self.a, &self.ctx.config);
                return self.finish(None, why.as_deref(), &ApiState::Available, None);
            }
            Err(message) => return self.broken_config(message),
        };
        // 2. Is there a snapshot API (and the class)?
        let api = self
            .ctx
            .snapshot_api
            .get(
                &self.ctx.client,
                self.ctx.clock.as_ref(),
                policy.class.as_deref(),
            )
            .await;
        if api != ApiState::Available {
            return self.finish(Some(&policy), None, &api, None);
        }
        // 3. This Assistant's snapshots: one LIST by the uid label.
        match self.list().await {
            Ok(list) => self.snapshots = list,
            Err(e) => {
                let api = self.api_error(&e);
                // What was recorded stays (a blip must not rewrite status), with a message.
                let mut outcome = self.finish(Some(&policy), None, &api, None);
                if self.unreachable.is_some() {
                    let mut kept = self.old.clone();
                    kept.message = outcome.observation.status.message.clone();
                    outcome.observation.status = kept;
                }
                return outcome;
            }
        }
        self.claim_in_use().await;
        if let Some((message, retry_at)) = self.ctx.backup_clock.refused(&self.key) {
            self.refused = Some(message);
            if retry_at > self.now {
                self.wait_until(retry_at);
            }
        }
        // 4. A snapshot asked for with the request annotation.
        self.request(&policy).await;
        // 5. The schedule.
        let next_run = self.schedule(&policy).await;
        // 6. Retention.
        self.retention(&policy).await;
        // 8. Come back for the next slot, and while a snapshot is being cut.
        self.wait_until(
            next_run
                .checked_add(SignedDuration::from_secs(1))
                .unwrap_or(next_run),
        );
        let pending = self
            .snapshots
            .iter()
            .any(|s| being_cut(s, policy.ready_deadline, self.now));
        if pending {
            self.requeue = self.requeue.min(POLL);
        }
        self.finish(Some(&policy), None, &ApiState::Available, Some(next_run))
    }

    /// An invalid operator or plan policy (`config check` refuses it, so only a config
    /// changed under a running operator): said in the condition, nothing is called.
    fn broken_config(self, message: String) -> BackupOutcome {
        let health = BackupHealth {
            status: "Unknown",
            reason: "Disabled",
            message: format!(
                "backups are off: the operator config's backup policy is invalid ({message}); fix it (clawhost config check)"
            ),
            state: crate::backup::BackupState::Disabled,
        };
        let status = BackupStatus {
            message: Some(health.message.clone()),
            next_run: None,
            ..self.old.clone()
        };
        BackupOutcome {
            observation: BackupObservation { health, status },
            requeue: Duration::MAX,
        }
    }

    fn finish(
        &self,
        policy: Option<&BackupPolicy>,
        disabled_by: Option<&str>,
        api: &ApiState,
        next_run: Option<Timestamp>,
    ) -> BackupOutcome {
        let volume_name = self
            .claim
            .as_ref()
            .map_or_else(|| names(self.a).data_volume, |(name, _)| name.clone());
        let input = HealthInput {
            policy,
            disabled_by,
            api,
            snapshots: &self.snapshots,
            assistant_created: created(self.a).unwrap_or(self.now),
            suspended: self.a.spec.suspended,
            volume_phase: self.claim.as_ref().and_then(|(_, phase)| phase.as_deref()),
            volume_name: &volume_name,
            current_claim: Some(&volume_name),
            refused: self.refused.as_deref(),
            unreachable: self.unreachable.as_deref(),
            next_run,
            now: self.now,
        };
        let health = evaluate_health(&input);
        let status = backup_status(
            &input,
            self.last_scheduled_run,
            self.handled_request.as_deref(),
            self.request_snapshot.as_deref(),
        );
        BackupOutcome {
            observation: BackupObservation { health, status },
            requeue: self.requeue,
        }
    }

    fn wait_until(&mut self, at: Timestamp) {
        let wait = at.duration_since(self.now);
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        self.requeue = self.requeue.min(wait.max(Duration::from_secs(1)));
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.ctx.client.clone(), &self.ns, &snapshot_resource())
    }

    async fn list(&self) -> Result<Vec<SnapshotInfo>, kube::Error> {
        let api: Api<VolumeSnapshot> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let selector = format!("{ASSISTANT_UID_LABEL}={}", self.a.uid().unwrap_or_default());
        let list = api.list(&ListParams::default().labels(&selector)).await?;
        Ok(list
            .items
            .iter()
            .filter_map(SnapshotInfo::from_snapshot)
            .collect())
    }

    /// A failed call: the API gone (404: ask discovery again) or the server unreachable
    /// (transport, 5xx, 429: retry in 30 s). Returns the API state to report.
    fn api_error(&mut self, e: &kube::Error) -> ApiState {
        match e {
            kube::Error::Api(s) if s.code == 404 => {
                info!("the VolumeSnapshot API answered 404; asking discovery again");
                self.ctx.snapshot_api.invalidate();
                ApiState::Unavailable
            }
            _ => {
                warn!(error = %e, "{UNREACHABLE}");
                self.unreachable = Some(match e {
                    kube::Error::Api(s) => format!("HTTP {}", s.code),
                    _ => "no answer".to_string(),
                });
                self.requeue = self.requeue.min(POLL);
                ApiState::Available
            }
        }
    }

    /// The data claim this Assistant snapshots, when it is Bound (nothing to cut before).
    fn bound_claim(&self) -> Option<String> {
        let (name, phase) = self.claim.as_ref()?;
        (phase.as_deref() == Some("Bound")).then(|| name.clone())
    }

    /// The claim the Assistant uses now when the one its spec names does not exist yet:
    /// while an in-place restore waits (source not ready, an invalid spec) the pod still
    /// runs on the old claim, which the StatefulSet mounts. It counts when it is this
    /// Assistant's (uid), not retained, not replaced and not being deleted. One GET, only
    /// then.
    async fn claim_in_use(&mut self) {
        if self.claim.is_some() {
            return;
        }
        let Some(mounted) = mounted_claim(self.observed) else {
            return;
        };
        if mounted == names(self.a).data_volume {
            return;
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let pvc = match api.get_opt(&mounted).await {
            Ok(pvc) => pvc,
            Err(e) => {
                warn!(error = %e, pvc = %mounted, "could not read the claim in use");
                return;
            }
        };
        let uid = self.a.uid().unwrap_or_default();
        if let Some(pvc) = pvc.filter(|p| in_use_by(p, &uid)) {
            let phase = pvc.status.as_ref().and_then(|s| s.phase.clone());
            self.claim = Some((mounted, phase));
        }
    }

    /// Whether a create may be tried now (no refusal backoff running, nothing failed in
    /// this pass).
    fn may_create(&self) -> bool {
        self.unreachable.is_none()
            && self
                .ctx
                .backup_clock
                .refused(&self.key)
                .is_none_or(|(_, retry_at)| retry_at <= self.now)
    }

    async fn request(&mut self, policy: &BackupPolicy) {
        let Some(value) = self.a.annotations().get(BACKUP_REQUEST_ANNOTATION).cloned() else {
            return;
        };
        if self.handled_request.as_deref() == Some(value.as_str()) {
            return;
        }
        let Some((kind, _id)) = parse_backup_request(&value) else {
            return;
        };
        // Already taken (a lost status write, another replica): that one answers it.
        if let Some(s) = self
            .snapshots
            .iter()
            .find(|s| s.request.as_deref() == Some(value.as_str()))
        {
            self.handled_request = Some(value);
            self.request_snapshot = Some(s.name.clone());
            return;
        }
        let Some(claim) = self.bound_claim() else {
            return;
        };
        if !self.may_create() {
            return;
        }
        if let Some(name) = self
            .create(policy, kind, &claim, self.now, None, Some(&value))
            .await
        {
            self.handled_request = Some(value);
            self.request_snapshot = Some(name);
        }
    }

    /// Returns when the next scheduled snapshot is due.
    async fn schedule(&mut self, policy: &BackupPolicy) -> Timestamp {
        let uid = self.a.uid().unwrap_or_default();
        let offset = spread_offset(&uid, policy.spread);
        let newest_taken_slot = self
            .snapshots
            .iter()
            .filter(|s| s.kind == SnapshotKind::Scheduled)
            .filter_map(|s| s.scheduled_for)
            .max();
        // The slots handled: recorded in status, or readable off the snapshots themselves
        // (a lost status write never doubles a snapshot).
        self.last_scheduled_run = self.last_scheduled_run.max(newest_taken_slot);
        let handled = self
            .last_scheduled_run
            .max(created(self.a))
            .unwrap_or(self.now);
        let due = due_run(&policy.schedule, offset, handled, self.now);
        let Some(slot) = due.take else {
            return due.next_run;
        };
        if self.a.spec.suspended {
            // Nothing writes a suspended volume: the slot is skipped, not owed.
            self.last_scheduled_run = Some(slot);
            return due.next_run;
        }
        if scheduled_stuck(&self.snapshots, policy.ready_deadline, self.now).is_some() {
            // The previous scheduled snapshot never got ready: another would most likely
            // not either (no snapshot controller). The slot is skipped, not owed;
            // BackupHealthy (SnapshotNotReady) says so.
            self.last_scheduled_run = Some(slot);
            return due.next_run;
        }
        let Some(claim) = self.bound_claim() else {
            return due.next_run;
        };
        if !self.may_create() {
            return due.next_run;
        }
        if let Some(turn) = self.ctx.snapshot_bucket.reserve(&self.key, self.now) {
            // The fleet is snapshotting at its configured pace: this one has a reserved
            // place and comes back once, when it is its turn.
            self.requeue = self.requeue.min(turn.max(Duration::from_secs(1)));
            return due.next_run;
        }
        if self
            .create(
                policy,
                SnapshotKind::Scheduled,
                &claim,
                slot,
                Some(slot),
                None,
            )
            .await
            .is_some()
        {
            self.last_scheduled_run = Some(slot);
        }
        due.next_run
    }

    /// Creates one snapshot; `Some(name)` when it exists now (created, or already there).
    async fn create(
        &mut self,
        policy: &BackupPolicy,
        kind: SnapshotKind,
        claim: &str,
        at: Timestamp,
        slot: Option<Timestamp>,
        request: Option<&str>,
    ) -> Option<String> {
        let snapshot = match crate::backup::build_snapshot(
            self.a,
            kind,
            claim,
            at,
            policy.class.as_deref(),
            slot,
            request,
            None,
        ) {
            Ok(s) => s,
            Err(e) => {
                // Validation passed for the names; a build error is a bug, said as such.
                warn!(error = %e, "could not build a VolumeSnapshot");
                self.refused = Some(format!("internal: {e}"));
                return None;
            }
        };
        let name = snapshot.name_any();
        let object: DynamicObject = match serde_json::from_value(snapshot.to_value()) {
            Ok(o) => o,
            Err(e) => {
                self.refused = Some(format!("internal: {e}"));
                return None;
            }
        };
        match self.api().create(&PostParams::default(), &object).await {
            Ok(created) => {
                self.ctx.backup_clock.forget(&self.key);
                self.refused = None;
                self.ctx.metrics.observe_snapshot(kind, "created");
                info!(snapshot = %name, kind = %kind, claim, "created a volume snapshot");
                if let Some(info) = serde_json::to_value(created)
                    .ok()
                    .and_then(|v| serde_json::from_value::<VolumeSnapshot>(v).ok())
                    .as_ref()
                    .and_then(SnapshotInfo::from_snapshot)
                {
                    self.snapshots.push(info);
                }
                self.event(
                    "SnapshotCreated",
                    format!("created VolumeSnapshot {name} ({kind}) of {claim}"),
                )
                .await;
                Some(name)
            }
            // Already there: a retry after a lost answer, or another replica.
            Err(kube::Error::Api(s)) if s.code == 409 => Some(name),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.api_error(&kube::Error::Api(s));
                None
            }
            Err(kube::Error::Api(s)) if (400..500).contains(&s.code) && s.code != 429 => {
                let message = format!(
                    "the API server refused VolumeSnapshot {name}: {}",
                    s.message
                );
                let retry_at =
                    self.ctx
                        .backup_clock
                        .record_refusal(&self.key, message.clone(), self.now);
                warn!(snapshot = %name, code = s.code, message = %s.message, "the API server refused a volume snapshot; retrying with backoff");
                self.ctx.metrics.observe_snapshot(kind, "refused");
                self.refused = Some(message);
                self.wait_until(retry_at);
                None
            }
            Err(e) => {
                self.ctx.metrics.observe_snapshot(kind, "failed");
                self.api_error(&e);
                None
            }
        }
    }

    async fn retention(&mut self, policy: &BackupPolicy) {
        if self.a.spec.suspended || self.unreachable.is_some() {
            return;
        }
        // Never prune a good snapshot before its replacement is good: while the newest is
        // not ready, only failed and overdue ones go (else they pile up, one per slot, on a
        // cluster that never readies a snapshot).
        let newest = self.snapshots.iter().max_by_key(|s| (s.created, s.taken));
        let failures_only = newest.is_some_and(|s| !s.ready);
        let protected: BTreeSet<String> = self
            .a
            .storage()
            .restore_from
            .map(|r| r.volume_snapshot_name)
            .into_iter()
            .collect();
        let doomed = select_for_deletion(
            &self.snapshots,
            &policy.retention(),
            policy.schedule.time_zone(),
            self.now,
            &protected,
            self.claim.as_ref().map(|(name, _)| name.as_str()),
        );
        let api = self.api();
        let mut pruned = Vec::new();
        for name in doomed {
            let Some(s) = self.snapshots.iter().find(|s| s.name == name) else {
                continue;
            };
            if failures_only && !(s.failed() || s.overdue(policy.ready_deadline, self.now)) {
                continue;
            }
            let (uid, kind) = (s.uid.clone(), s.kind);
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    self.ctx.metrics.observe_snapshot(kind, "pruned");
                    info!(snapshot = %name, kind = %kind, "pruned a volume snapshot (retention)");
                    pruned.push(name);
                }
                // Gone already, or another object by now: nothing of ours to delete.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    pruned.push(name);
                }
                Err(e) => {
                    self.api_error(&e);
                    break;
                }
            }
        }
        if pruned.is_empty() {
            return;
        }
        self.snapshots.retain(|s| !pruned.contains(&s.name));
        self.event(
            "SnapshotPruned",
            format!("deleted VolumeSnapshots {} (retention)", pruned.join(", ")),
        )
        .await;
    }

    async fn event(&self, reason: &str, note: String) {
        events::publish_best_effort(
            self.ctx.recorder.as_ref(),
            &self.a.object_ref(&()),
            EventType::Normal,
            reason,
            note,
        )
        .await;
    }
}

/// The claim the live StatefulSet mounts as its data volume.
fn mounted_claim(observed: &Observation) -> Option<String> {
    let sts = observed.live.get(ChildId::StatefulSet)?;
    sts.pointer("/spec/template/spec/volumes")?
        .as_array()?
        .iter()
        .find(|v| v["name"] == "data")?
        .pointer("/persistentVolumeClaim/claimName")?
        .as_str()
        .map(str::to_string)
}

/// This Assistant's claim (uid recorded), live: not retained, not replaced by a restore,
/// not being deleted.
fn in_use_by(pvc: &PersistentVolumeClaim, uid: &str) -> bool {
    !uid.is_empty()
        && pvc
            .annotations()
            .get(ASSISTANT_UID_ANNOTATION)
            .map(String::as_str)
            == Some(uid)
        && pvc.labels().get(RETAINED_LABEL).map(String::as_str) != Some("true")
        && !pvc.annotations().contains_key(REPLACED_BY_ANNOTATION)
        && pvc.metadata.deletion_timestamp.is_none()
}

/// Not ready, no error, not deleting, and younger than the ready deadline. Checked: a
/// deadline past the end of time (a config changed under a running operator) means "still
/// being cut", never a panic.
fn being_cut(s: &SnapshotInfo, deadline: SignedDuration, now: Timestamp) -> bool {
    !s.ready
        && s.error.is_none()
        && !s.deleting
        && s.created
            .checked_add(deadline)
            .map_or(true, |limit| limit > now)
}

fn snapshot_resource() -> ApiResource {
    ApiResource::erase::<VolumeSnapshot>(&())
}

fn created(a: &Assistant) -> Option<Timestamp> {
    a.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(created: Timestamp) -> SnapshotInfo {
        SnapshotInfo {
            name: "s".into(),
            uid: "u".into(),
            kind: SnapshotKind::Scheduled,
            taken: created,
            created,
            ready: false,
            error: None,
            restore_size: None,
            scheduled_for: None,
            request: None,
            expires_at: None,
            source_claim: None,
            deleting: false,
        }
    }

    #[test]
    fn a_huge_ready_deadline_never_panics() {
        let now: Timestamp = "2026-12-03T03:00:00Z".parse().unwrap();
        let s = info(now);
        // readyDeadlineSeconds: 300000000000 (past jiff's range): still being cut, no panic.
        assert!(being_cut(
            &s,
            SignedDuration::from_secs(300_000_000_000),
            now
        ));
        assert!(being_cut(&s, SignedDuration::MAX, now));
        let old = info("2026-12-01T03:00:00Z".parse().unwrap());
        assert!(!being_cut(&old, SignedDuration::from_hours(2), now));
    }
}
