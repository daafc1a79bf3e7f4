//! What `BackupHealthy` and `status.backup` say, from what the backup step saw.

use jiff::{SignedDuration, Timestamp};

use super::{BackupPolicy, SnapshotInfo, newest, of_claim, scheduled_stuck};
use crate::api::BackupStatus;

/// Whether the cluster can take snapshots (discovered by the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiState {
    Available,
    /// No `snapshot.storage.k8s.io/v1` `volumesnapshots` in discovery.
    Unavailable,
    /// The configured VolumeSnapshotClass does not exist.
    ClassNotFound(String),
}

pub struct HealthInput<'a> {
    /// `None`: backups are off for this Assistant (Disabled).
    pub policy: Option<&'a BackupPolicy>,
    /// Why they are off, for the Disabled message (e.g. "spec.backup.enabled: false").
    pub disabled_by: Option<&'a str>,
    pub api: &'a ApiState,
    /// This Assistant's snapshots, any kind.
    pub snapshots: &'a [SnapshotInfo],
    pub assistant_created: Timestamp,
    pub suspended: bool,
    /// Phase of the data claim (`Bound`, `Pending`), `None` when it does not exist.
    pub volume_phase: Option<&'a str>,
    pub volume_name: &'a str,
    /// The claim the Assistant uses now (after an in-place restore, the new one): only its
    /// snapshots count as its backup. `None`: not known, every snapshot counts.
    pub current_claim: Option<&'a str>,
    /// The last create refusal (4xx message) since the last successful create.
    pub refused: Option<&'a str>,
    /// A transport or 5xx error of this pass (retried).
    pub unreachable: Option<&'a str>,
    pub next_run: Option<Timestamp>,
    pub now: Timestamp,
}

/// Bounded states for the metric `clawhost_assistants_backup{state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupState {
    Ok,
    /// Enabled, not suspended, older than the window, and no ready snapshot taken within
    /// the window (2 × the schedule interval), whatever the reason. The alert reads this.
    Missing,
    /// Younger than the window, nothing ready yet.
    New,
    Suspended,
    Disabled,
}

impl BackupState {
    pub const ALL: [BackupState; 5] = [
        BackupState::Ok,
        BackupState::Missing,
        BackupState::New,
        BackupState::Suspended,
        BackupState::Disabled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Ok => "ok",
            BackupState::Missing => "missing",
            BackupState::New => "new",
            BackupState::Suspended => "suspended",
            BackupState::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupHealth {
    /// "True" | "False" | "Unknown".
    pub status: &'static str,
    /// `SnapshotReady`, `AwaitingFirstSnapshot`, `Suspended`, `SnapshotFailed`,
    /// `SnapshotNotReady`, `CreateRefused`, `SnapshotClassNotFound`,
    /// `SnapshotAPIUnavailable`, `SnapshotAPIUnreachable` (Unknown: the snapshots could
    /// not be listed this pass), `VolumeNotBound`, `SnapshotMissing`, `Disabled`
    /// (`FinalSnapshotFailed` is the cleanup's).
    pub reason: &'static str,
    /// Absolute times only (never "in 3 h"): stable while idle. Never a secret.
    pub message: String,
    pub state: BackupState,
}

/// The `BackupHealthy` table of docs/backups.md. Precedence (first match): Disabled ›
/// SnapshotAPIUnavailable › SnapshotClassNotFound › SnapshotAPIUnreachable › CreateRefused ›
/// SnapshotFailed › SnapshotNotReady › Suspended › SnapshotReady › VolumeNotBound ›
/// AwaitingFirstSnapshot › SnapshotMissing. `state` is computed on its own (see
/// [`BackupState::Missing`]). Times are RFC 3339 in the schedule's zone.
pub fn evaluate_health(input: &HealthInput) -> BackupHealth {
    let state = backup_state(input);
    let Some(policy) = input.policy else {
        let why = input
            .disabled_by
            .unwrap_or("backups are off for this client");
        let message = if why.starts_with("backups are off") {
            why.to_string()
        } else {
            format!("backups are off ({why})")
        };
        return health("Unknown", "Disabled", message, state);
    };
    let tz = policy.schedule.time_zone();
    let at = |t: Timestamp| local_rfc3339(t, tz);
    let fell_back = |message: String| {
        if policy.fell_back {
            format!(
                "{message}; spec.backup is invalid (see ConfigValid), so the plan's or operator's schedule is used"
            )
        } else {
            message
        }
    };
    let unhealthy = |reason, message: String| health("False", reason, fell_back(message), state);
    let healthy = |reason, message: String| health("True", reason, fell_back(message), state);

    match input.api {
        ApiState::Available => {}
        ApiState::Unavailable => {
            return unhealthy(
                "SnapshotAPIUnavailable",
                "the cluster has no VolumeSnapshot API (install the CSI external-snapshotter CRDs and snapshot controller, or set backups.enabled: false); everything else works".into(),
            );
        }
        ApiState::ClassNotFound(class) => {
            return unhealthy(
                "SnapshotClassNotFound",
                format!(
                    "VolumeSnapshotClass {class:?} not found (operator config backups.volumeSnapshotClassName)"
                ),
            );
        }
    }
    if let Some(error) = input.unreachable {
        // The snapshots were not read this pass: nothing below can be judged.
        let message = if error.starts_with("could not reach") {
            error.to_string()
        } else {
            format!("could not reach the API server for snapshots ({error}); retrying")
        };
        return health(
            "Unknown",
            "SnapshotAPIUnreachable",
            fell_back(message),
            state,
        );
    }
    if let Some(refusal) = input.refused {
        // The step may hand over the server's words alone or its own sentence naming the
        // snapshot; either reads as one sentence.
        let message = if refusal.starts_with("the API server refused") {
            refusal.to_string()
        } else {
            format!("the API server refused to create a VolumeSnapshot: {refusal}")
        };
        return unhealthy("CreateRefused", message);
    }
    let newest_any = newest(input.snapshots, |_| true);
    if let Some(s) = newest_any {
        if s.failed() {
            return unhealthy(
                "SnapshotFailed",
                format!(
                    "{} failed: {}",
                    s.name,
                    s.error.as_deref().unwrap_or_default()
                ),
            );
        }
        if s.overdue(policy.ready_deadline, input.now) {
            let held = if scheduled_stuck(input.snapshots, policy.ready_deadline, input.now)
                .is_some_and(|stuck| stuck.name == s.name)
            {
                "; no further scheduled snapshot is taken until it is ready or deleted"
            } else {
                ""
            };
            return unhealthy(
                "SnapshotNotReady",
                format!(
                    "{} not ready after {} (created {}); check the CSI driver / snapshot controller{held}",
                    s.name,
                    go_duration(policy.ready_deadline),
                    s.created
                ),
            );
        }
    }
    let newest_ready = newest(input.snapshots, |s| {
        s.ready && of_claim(s, input.current_claim)
    });
    if input.suspended {
        let newest = newest_ready.map_or("none is ready yet".to_string(), |s| {
            format!("the newest is {}", s.name)
        });
        return healthy(
            "Suspended",
            format!("suspended: no scheduled snapshots; {newest}"),
        );
    }
    let window = window(policy, input.now);
    if let Some(s) = newest_ready.filter(|s| within(s.taken, window, input.now)) {
        let size = s
            .restore_size
            .as_deref()
            .map_or(String::new(), |q| format!(" ({q})"));
        let next = input
            .next_run
            .map_or(String::new(), |t| format!("; next run {}", at(t)));
        return healthy("SnapshotReady", format!("{} is ready{size}{next}", s.name));
    }
    let old_enough = !within(input.assistant_created, window, input.now);
    if old_enough && input.volume_phase != Some("Bound") {
        let what = input
            .volume_phase
            .map_or("does not exist".to_string(), |p| format!("is {p}"));
        return unhealthy(
            "VolumeNotBound",
            format!(
                "volume {} {what}; no snapshot can be taken",
                input.volume_name
            ),
        );
    }
    if !old_enough {
        let message = match input.next_run {
            Some(t) => format!("first scheduled snapshot at {}", at(t)),
            None => "waiting for the first scheduled snapshot".to_string(),
        };
        return healthy("AwaitingFirstSnapshot", message);
    }
    let since = match newest_ready {
        Some(s) => format!("since {}", s.taken),
        None => format!(
            "since the Assistant was created at {}",
            input.assistant_created
        ),
    };
    unhealthy(
        "SnapshotMissing",
        format!("no ready snapshot {since} (window {})", go_duration(window)),
    )
}

/// `status.backup` from the same input plus what the step handled; deterministic, and
/// unchanged between runs when nothing happened.
pub fn backup_status(
    input: &HealthInput,
    last_scheduled_run: Option<Timestamp>,
    handled_request: Option<&str>,
    request_snapshot: Option<&str>,
) -> BackupStatus {
    // The snapshot fields only when the snapshots were read this pass.
    let listed =
        input.policy.is_some() && *input.api == ApiState::Available && input.unreachable.is_none();
    let newest_ready = newest(input.snapshots, |s| {
        s.ready && of_claim(s, input.current_claim)
    })
    .filter(|_| listed);
    BackupStatus {
        last_snapshot: newest_ready.map(|s| s.name.clone()),
        last_snapshot_time: newest_ready.map(|s| s.taken.to_string()),
        last_snapshot_size: newest_ready.and_then(|s| s.restore_size.clone()),
        next_run: input
            .next_run
            .filter(|_| input.policy.is_some())
            .map(|t| t.to_string()),
        last_scheduled_run: last_scheduled_run.map(|t| t.to_string()),
        handled_request: handled_request.map(str::to_string),
        request_snapshot: request_snapshot.map(str::to_string),
        ready_snapshots: listed.then(|| {
            let ready = input
                .snapshots
                .iter()
                .filter(|s| s.ready && !s.deleting)
                .count();
            u32::try_from(ready).unwrap_or(u32::MAX)
        }),
        message: Some(evaluate_health(input).message),
    }
}

/// The metric's state: `Missing` exactly when enabled, not suspended, the Assistant is
/// older than the window, and no ready snapshot was taken within it, whatever the reason.
fn backup_state(input: &HealthInput) -> BackupState {
    let Some(policy) = input.policy else {
        return BackupState::Disabled;
    };
    if input.suspended {
        return BackupState::Suspended;
    }
    let window = window(policy, input.now);
    if newest(input.snapshots, |s| {
        s.ready && of_claim(s, input.current_claim)
    })
    .is_some_and(|s| within(s.taken, window, input.now))
    {
        BackupState::Ok
    } else if within(input.assistant_created, window, input.now) {
        BackupState::New
    } else {
        BackupState::Missing
    }
}

/// Twice the schedule's interval around `now`: a missed run is normal, two are not.
pub fn window(policy: &BackupPolicy, now: Timestamp) -> SignedDuration {
    policy.schedule.interval_at(now).saturating_mul(2)
}

/// `t` is no more than `window` before `now`.
fn within(t: Timestamp, window: SignedDuration, now: Timestamp) -> bool {
    t.checked_add(window).map_or(true, |end| end >= now)
}

fn health(
    status: &'static str,
    reason: &'static str,
    message: String,
    state: BackupState,
) -> BackupHealth {
    BackupHealth {
        status,
        reason,
        message,
        state,
    }
}

/// RFC 3339 with the zone's offset (`2026-12-04T02:30:00+01:00`): readable in the client's
/// own time, and absolute.
fn local_rfc3339(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Whole-second durations the way Kubernetes people read them, zero parts dropped: `2h`,
/// `48h`, `1h30m`, `5m30s`.
fn go_duration(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupSpec, SnapshotKind};
    use crate::backup::effective_policy;
    use crate::testing::{assistant, config};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(zone: &str) -> BackupPolicy {
        let mut a = assistant("alice");
        a.spec.backup = Some(BackupSpec {
            time_zone: Some(zone.into()),
            ..Default::default()
        });
        effective_policy(&a, &config()).unwrap().unwrap()
    }

    fn snap(at: &str) -> SnapshotInfo {
        let t = ts(at);
        SnapshotInfo {
            name: format!("alice-{}-scheduled", t.strftime("%Y%m%d-%H%M%S")),
            uid: String::new(),
            kind: SnapshotKind::Scheduled,
            taken: t,
            created: t,
            ready: true,
            error: None,
            restore_size: Some("8Gi".into()),
            scheduled_for: Some(t),
            request: None,
            expires_at: None,
            source_claim: Some("alice-data".into()),
            deleting: false,
        }
    }

    /// An old Assistant (created a month ago) with a bound volume, at 2026-12-05 12:00Z.
    fn input<'a>(
        policy: Option<&'a BackupPolicy>,
        api: &'a ApiState,
        snapshots: &'a [SnapshotInfo],
    ) -> HealthInput<'a> {
        HealthInput {
            policy,
            disabled_by: None,
            api,
            snapshots,
            assistant_created: ts("2026-11-01T10:00:00Z"),
            suspended: false,
            volume_phase: Some("Bound"),
            volume_name: "alice-data",
            current_claim: Some("alice-data"),
            refused: None,
            unreachable: None,
            next_run: Some(ts("2026-12-06T03:00:00Z")),
            now: ts("2026-12-05T12:00:00Z"),
        }
    }

    fn check(i: &HealthInput) -> (&'static str, &'static str, String, BackupState) {
        let h = evaluate_health(i);
        (h.status, h.reason, h.message, h.state)
    }

    const AVAILABLE: ApiState = ApiState::Available;

    #[test]
    fn disabled_says_why() {
        let mut i = input(None, &AVAILABLE, &[]);
        i.disabled_by = Some("backups are off operator-wide (backups.enabled: false)");
        assert_eq!(
            check(&i),
            (
                "Unknown",
                "Disabled",
                "backups are off operator-wide (backups.enabled: false)".into(),
                BackupState::Disabled
            )
        );
        i.disabled_by = Some("spec.backup.enabled: false");
        assert_eq!(
            evaluate_health(&i).message,
            "backups are off (spec.backup.enabled: false)"
        );
    }

    #[test]
    fn no_snapshot_api_and_missing_class_are_reported_and_count_as_missing() {
        let p = policy("UTC");
        let unavailable = ApiState::Unavailable;
        let (status, reason, message, state) = check(&input(Some(&p), &unavailable, &[]));
        assert_eq!((status, reason), ("False", "SnapshotAPIUnavailable"));
        assert!(
            message.starts_with(
                "the cluster has no VolumeSnapshot API (install the CSI external-snapshotter CRDs"
            ),
            "{message}"
        );
        assert_eq!(
            state,
            BackupState::Missing,
            "no backups, whatever the reason"
        );
        let missing = ApiState::ClassNotFound("csi-snap".into());
        assert_eq!(
            check(&input(Some(&p), &missing, &[])),
            (
                "False",
                "SnapshotClassNotFound",
                "VolumeSnapshotClass \"csi-snap\" not found (operator config backups.volumeSnapshotClassName)".into(),
                BackupState::Missing
            )
        );
    }

    #[test]
    fn an_unreachable_api_server_is_unknown_not_a_verdict() {
        let p = policy("UTC");
        let mut i = input(Some(&p), &AVAILABLE, &[]);
        i.unreachable = Some("connection refused");
        i.refused = Some("forbidden");
        let (status, reason, message, _) = check(&i);
        assert_eq!((status, reason), ("Unknown", "SnapshotAPIUnreachable"));
        assert_eq!(
            message,
            "could not reach the API server for snapshots (connection refused); retrying"
        );
        i.unreachable = Some("could not reach the API server for snapshots; retrying");
        assert_eq!(
            evaluate_health(&i).message,
            "could not reach the API server for snapshots; retrying",
            "a whole sentence is kept as it is"
        );
    }

    #[test]
    fn a_refused_create_comes_before_a_failed_snapshot() {
        let p = policy("UTC");
        let mut failing = snap("2026-12-05T03:00:00Z");
        failing.ready = false;
        failing.error = Some("quota exceeded".into());
        let snaps = [snap("2026-12-04T03:00:00Z"), failing];
        let mut i = input(Some(&p), &AVAILABLE, &snaps);
        i.refused = Some("admission webhook \"snap.policy\" denied the request");
        let (status, reason, message, state) = check(&i);
        assert_eq!((status, reason), ("False", "CreateRefused"));
        assert_eq!(
            message,
            "the API server refused to create a VolumeSnapshot: admission webhook \"snap.policy\" denied the request"
        );
        i.refused =
            Some("the API server refused VolumeSnapshot alice-20261205-030000-scheduled: quota");
        assert_eq!(
            evaluate_health(&i).message,
            "the API server refused VolumeSnapshot alice-20261205-030000-scheduled: quota"
        );
        assert_eq!(state, BackupState::Ok, "a ready snapshot within 48 h");
    }

    #[test]
    fn a_failed_newest_snapshot_is_reported_even_with_a_good_older_one() {
        let p = policy("UTC");
        let mut failing = snap("2026-12-05T03:00:00Z");
        failing.ready = false;
        failing.error = Some("quota exceeded".into());
        let snaps = [snap("2026-12-04T03:00:00Z"), failing];
        let mut i = input(Some(&p), &AVAILABLE, &snaps);
        i.suspended = true;
        assert_eq!(
            check(&i),
            (
                "False",
                "SnapshotFailed",
                "alice-20261205-030000-scheduled failed: quota exceeded".into(),
                BackupState::Suspended
            )
        );
    }

    #[test]
    fn a_snapshot_pending_past_the_deadline_is_not_ready() {
        let p = policy("UTC");
        let mut stuck = snap("2026-12-05T03:00:00Z");
        stuck.ready = false;
        let snaps = [snap("2026-12-04T03:00:00Z"), stuck];
        let mut i = input(Some(&p), &AVAILABLE, &snaps);
        i.now = ts("2026-12-05T04:59:59Z");
        assert_eq!(
            evaluate_health(&i).reason,
            "SnapshotReady",
            "still in progress"
        );
        i.now = ts("2026-12-05T05:00:00Z");
        assert_eq!(
            check(&i),
            (
                "False",
                "SnapshotNotReady",
                "alice-20261205-030000-scheduled not ready after 2h (created 2026-12-05T03:00:00Z); check the CSI driver / snapshot controller; no further scheduled snapshot is taken until it is ready or deleted".into(),
                BackupState::Ok
            )
        );
    }

    #[test]
    fn suspended_skips_runs_and_names_the_newest() {
        let p = policy("UTC");
        let snaps = [snap("2026-11-20T03:00:00Z")];
        let mut i = input(Some(&p), &AVAILABLE, &snaps);
        i.suspended = true;
        assert_eq!(
            check(&i),
            (
                "True",
                "Suspended",
                "suspended: no scheduled snapshots; the newest is alice-20261120-030000-scheduled"
                    .into(),
                BackupState::Suspended
            )
        );
    }

    #[test]
    fn a_recent_ready_snapshot_is_healthy_with_the_next_run_in_the_clients_zone() {
        let p = policy("Europe/Stockholm");
        let snaps = [snap("2026-12-05T02:00:00Z")];
        let mut i = input(Some(&p), &AVAILABLE, &snaps);
        i.next_run = Some(ts("2026-12-06T02:00:00Z"));
        assert_eq!(
            check(&i),
            (
                "True",
                "SnapshotReady",
                "alice-20261205-020000-scheduled is ready (8Gi); next run 2026-12-06T03:00:00+01:00".into(),
                BackupState::Ok
            )
        );
    }

    #[test]
    fn an_unbound_volume_past_the_window_says_so() {
        let p = policy("UTC");
        let mut i = input(Some(&p), &AVAILABLE, &[]);
        i.volume_phase = Some("Pending");
        assert_eq!(
            check(&i),
            (
                "False",
                "VolumeNotBound",
                "volume alice-data is Pending; no snapshot can be taken".into(),
                BackupState::Missing
            )
        );
        i.volume_phase = None;
        assert_eq!(
            evaluate_health(&i).message,
            "volume alice-data does not exist; no snapshot can be taken"
        );
    }

    #[test]
    fn a_young_assistant_awaits_its_first_snapshot() {
        let p = policy("UTC");
        let mut i = input(Some(&p), &AVAILABLE, &[]);
        i.assistant_created = ts("2026-12-05T10:00:00Z");
        i.volume_phase = Some("Pending");
        assert_eq!(
            check(&i),
            (
                "True",
                "AwaitingFirstSnapshot",
                "first scheduled snapshot at 2026-12-06T03:00:00+00:00".into(),
                BackupState::New
            )
        );
        // The window is two intervals: 48 h after creation it is overdue.
        i.volume_phase = Some("Bound");
        i.now = ts("2026-12-07T10:00:00Z");
        assert_eq!(evaluate_health(&i).reason, "AwaitingFirstSnapshot");
        i.now = ts("2026-12-07T10:00:01Z");
        assert_eq!(
            check(&i),
            (
                "False",
                "SnapshotMissing",
                "no ready snapshot since the Assistant was created at 2026-12-05T10:00:00Z (window 48h)".into(),
                BackupState::Missing
            )
        );
    }

    #[test]
    fn no_ready_snapshot_within_twice_the_interval_is_missing() {
        let p = policy("UTC");
        let snaps = [snap("2026-12-03T12:00:00Z")];
        let mut i = input(Some(&p), &AVAILABLE, &snaps);
        i.now = ts("2026-12-05T12:00:00Z");
        assert_eq!(evaluate_health(&i).reason, "SnapshotReady", "exactly 48 h");
        i.now = ts("2026-12-05T12:00:01Z");
        assert_eq!(
            check(&i),
            (
                "False",
                "SnapshotMissing",
                "no ready snapshot since 2026-12-03T12:00:00Z (window 48h)".into(),
                BackupState::Missing
            )
        );
    }

    #[test]
    fn a_fallen_back_policy_says_so() {
        let mut p = policy("UTC");
        p.fell_back = true;
        let snaps = [snap("2026-12-05T03:00:00Z")];
        let m = evaluate_health(&input(Some(&p), &AVAILABLE, &snaps)).message;
        assert!(m.ends_with("; spec.backup is invalid (see ConfigValid), so the plan's or operator's schedule is used"), "{m}");
    }

    #[test]
    fn after_an_in_place_restore_only_the_current_volumes_snapshots_count() {
        let p = policy("UTC");
        // The pre-restore snapshot of the old volume is the newest ready one; the current
        // volume has only a snapshot from three days ago.
        let mut pre_restore = snap("2026-12-05T10:00:00Z");
        pre_restore.name = "alice-20261205-100000-pre-restore".into();
        pre_restore.kind = SnapshotKind::PreRestore;
        pre_restore.source_claim = Some("alice-data-old".into());
        let snaps = [snap("2026-12-02T03:00:00Z"), pre_restore];
        let i = input(Some(&p), &AVAILABLE, &snaps);
        let h = evaluate_health(&i);
        assert_eq!(
            (h.status, h.reason),
            ("False", "SnapshotMissing"),
            "{}",
            h.message
        );
        assert_eq!(h.state, BackupState::Missing);
        let status = backup_status(&i, None, None, None);
        assert_eq!(
            status.last_snapshot.as_deref(),
            Some("alice-20261202-030000-scheduled")
        );
        // Not knowing the claim, the old behaviour: the pre-restore one is "ready".
        let mut blind = input(Some(&p), &AVAILABLE, &snaps);
        blind.current_claim = None;
        assert_eq!(evaluate_health(&blind).reason, "SnapshotReady");
    }

    #[test]
    fn status_reports_the_newest_ready_snapshot_and_is_stable_while_idle() {
        let p = policy("UTC");
        let mut pending = snap("2026-12-05T11:00:00Z");
        pending.ready = false;
        let mut going = snap("2026-12-05T11:30:00Z");
        going.deleting = true;
        let mut older = snap("2026-12-04T03:00:00Z");
        older.restore_size = None;
        let snaps = [older, snap("2026-12-05T03:00:00Z"), pending, going];
        let i = input(Some(&p), &AVAILABLE, &snaps);
        let slot = Some(ts("2026-12-05T03:00:00Z"));
        let status = backup_status(&i, slot, Some("snapshot:1"), Some("alice-x-manual"));
        assert_eq!(
            status,
            BackupStatus {
                last_snapshot: Some("alice-20261205-030000-scheduled".into()),
                last_snapshot_time: Some("2026-12-05T03:00:00Z".into()),
                last_snapshot_size: Some("8Gi".into()),
                next_run: Some("2026-12-06T03:00:00Z".into()),
                last_scheduled_run: Some("2026-12-05T03:00:00Z".into()),
                handled_request: Some("snapshot:1".into()),
                request_snapshot: Some("alice-x-manual".into()),
                ready_snapshots: Some(2),
                message: Some(
                    "alice-20261205-030000-scheduled is ready (8Gi); next run 2026-12-06T03:00:00+00:00".into()
                ),
            }
        );
        // Half an hour later, nothing happened: not one field changed.
        let mut later = input(Some(&p), &AVAILABLE, &snaps);
        later.now = ts("2026-12-05T12:30:00Z");
        assert_eq!(
            backup_status(&later, slot, Some("snapshot:1"), Some("alice-x-manual")),
            status
        );
    }

    #[test]
    fn status_without_backups_or_a_listing_has_no_snapshot_fields() {
        let snaps = [snap("2026-12-05T03:00:00Z")];
        let mut i = input(None, &AVAILABLE, &snaps);
        i.disabled_by = Some("backups are off for this client (spec.backup.enabled: false)");
        let s = backup_status(&i, None, None, None);
        assert_eq!(s.next_run, None);
        assert_eq!(s.ready_snapshots, None);
        assert_eq!(s.last_snapshot, None);
        assert_eq!(
            s.message.as_deref(),
            Some("backups are off for this client (spec.backup.enabled: false)")
        );
        let p = policy("UTC");
        let unavailable = ApiState::Unavailable;
        let s = backup_status(&input(Some(&p), &unavailable, &[]), None, None, None);
        assert_eq!((s.ready_snapshots, s.last_snapshot), (None, None));
        assert_eq!(s.next_run.as_deref(), Some("2026-12-06T03:00:00Z"));
    }
}
