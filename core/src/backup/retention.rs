//! Which snapshots to delete: keep-daily/keep-weekly for scheduled ones, an age for
//! on-demand ones, an expiry for final ones, and never the newest ready one.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::api::snapshot::VolumeSnapshot;
use crate::api::{
    EXPIRES_AT_ANNOTATION, REQUEST_ANNOTATION, SCHEDULED_FOR_ANNOTATION, SNAPSHOT_KIND_LABEL,
    SOURCE_CLAIM_ANNOTATION, SnapshotKind,
};

/// A snapshot as retention and health see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    pub name: String,
    pub uid: String,
    pub kind: SnapshotKind,
    /// status.creationTime, else metadata.creationTimestamp.
    pub taken: Timestamp,
    /// metadata.creationTimestamp.
    pub created: Timestamp,
    /// status.readyToUse == Some(true).
    pub ready: bool,
    /// status.error.message.
    pub error: Option<String>,
    pub restore_size: Option<String>,
    pub scheduled_for: Option<Timestamp>,
    pub request: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The PVC it was taken of (annotation source-claim, else spec.source).
    pub source_claim: Option<String>,
    /// metadata.deletionTimestamp is set.
    pub deleting: bool,
}

impl SnapshotInfo {
    /// `None` for an object without clawhost's kind label (never ours to prune).
    pub fn from_snapshot(s: &VolumeSnapshot) -> Option<Self> {
        let m = &s.metadata;
        let kind = SnapshotKind::parse(m.labels.as_ref()?.get(SNAPSHOT_KIND_LABEL)?)?;
        let name = m.name.clone()?;
        let annotation = |key: &str| m.annotations.as_ref()?.get(key).cloned();
        let time = |key: &str| annotation(key)?.parse::<Timestamp>().ok();
        let status = s.status.clone().unwrap_or_default();
        let scheduled_for = time(SCHEDULED_FOR_ANNOTATION);
        // Every stored object has a creationTimestamp; one without is not judged by age
        // from a made-up time, it is left alone.
        let created = m
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(status.creation_time.as_ref().map(|t| t.0))?;
        Some(Self {
            name,
            uid: m.uid.clone().unwrap_or_default(),
            kind,
            taken: status.creation_time.as_ref().map_or(created, |t| t.0),
            created,
            ready: status.ready_to_use == Some(true),
            error: status.error.map(|e| {
                e.message
                    .unwrap_or_else(|| "no message from the snapshot controller".into())
            }),
            restore_size: status.restore_size.map(|q| q.0),
            scheduled_for,
            request: annotation(REQUEST_ANNOTATION),
            expires_at: time(EXPIRES_AT_ANNOTATION),
            source_claim: annotation(SOURCE_CLAIM_ANNOTATION)
                .or_else(|| s.spec.source.persistent_volume_claim_name.clone()),
            deleting: m.deletion_timestamp.is_some(),
        })
    }

    /// Failed: an error and not ready (a controller may clear an error and succeed later).
    pub fn failed(&self) -> bool {
        self.error.is_some() && !self.ready
    }

    /// Not ready, no error, and created at least `deadline` ago.
    pub fn overdue(&self, deadline: SignedDuration, now: Timestamp) -> bool {
        !self.ready && self.error.is_none() && !younger_than(self.created, deadline, now)
    }
}

/// Whether `s` is a snapshot of `claim`, the claim the Assistant uses now (`None`: not
/// known, every snapshot counts). A snapshot that does not say its claim counts.
pub fn of_claim(s: &SnapshotInfo, claim: Option<&str>) -> bool {
    claim.is_none_or(|c| s.source_claim.as_deref().is_none_or(|src| src == c))
}

/// The newest (by `taken`, then name) of `snapshots` that is not being deleted and passes
/// `filter`.
pub fn newest(
    snapshots: &[SnapshotInfo],
    filter: impl Fn(&SnapshotInfo) -> bool,
) -> Option<&SnapshotInfo> {
    snapshots
        .iter()
        .filter(|s| !s.deleting && filter(s))
        .max_by(|a, b| (a.taken, &a.name).cmp(&(b.taken, &b.name)))
}

/// The scheduled snapshot that holds the schedule back: the newest scheduled one, when it
/// is still not ready past the ready deadline (no error). Another one cut on top of it would
/// most likely never get ready either (no snapshot controller, a stuck driver): the slot is
/// skipped, and `BackupHealthy` says so, until it gets ready or is deleted.
pub fn scheduled_stuck(
    snapshots: &[SnapshotInfo],
    deadline: SignedDuration,
    now: Timestamp,
) -> Option<&SnapshotInfo> {
    newest(snapshots, |s| s.kind == SnapshotKind::Scheduled).filter(|s| s.overdue(deadline, now))
}

fn younger_than(t: Timestamp, age: SignedDuration, now: Timestamp) -> bool {
    t.checked_add(age).map_or(true, |limit| limit > now)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_on_demand: SignedDuration,
    pub ready_deadline: SignedDuration,
}

/// Names to delete, oldest first. Rules, in order:
/// 1. Never: the newest ready snapshot of any kind of `current_claim` (the claim the
///    Assistant uses now; after an in-place restore the old volume's snapshots, the
///    pre-restore one included, go by their own rules); any name in `protected` (this
///    Assistant's restoreFrom); snapshots already deleting; a not-ready, error-free snapshot
///    younger than `ready_deadline` (in progress); Final snapshots before `expires_at`.
/// 2. Scheduled, ready: keep the newest of each of the newest `keep_daily` calendar days (in
///    `tz`) that have one, and the newest of each of the newest `keep_weekly` ISO weeks that
///    have one (restic's semantics: days without a snapshot do not count, so an outage never
///    empties the history); delete the rest.
/// 3. Manual, PreUpgrade, PreRestore, ready: delete when `taken + keep_on_demand < now`.
/// 4. Failed (error) or not ready past the deadline: delete all but the newest such one
///    (kept for the health message), and that one too once a newer ready snapshot exists.
///    A cluster that never readies a snapshot (CRDs without a snapshot controller) so keeps
///    one failure, not one per slot.
/// 5. Final: delete when `expires_at < now`.
pub fn select_for_deletion(
    snapshots: &[SnapshotInfo],
    policy: &Retention,
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
    protected: &BTreeSet<String>,
    current_claim: Option<&str>,
) -> Vec<String> {
    let newest_ready =
        newest(snapshots, |s| s.ready && of_claim(s, current_claim)).map(|s| s.name.as_str());
    let never = |s: &SnapshotInfo| {
        Some(s.name.as_str()) == newest_ready
            || protected.contains(&s.name)
            || s.deleting
            || (!s.ready
                && s.error.is_none()
                && younger_than(s.created, policy.ready_deadline, now))
            || (s.kind == SnapshotKind::Final && s.expires_at.is_none_or(|e| e >= now))
    };

    // Rule 2: restic's keep-daily/keep-weekly over the ready scheduled snapshots, newest
    // first; a bucket counts only when it has a snapshot.
    let mut scheduled: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| s.kind == SnapshotKind::Scheduled && s.ready && !s.deleting)
        .collect();
    scheduled.sort_by(|a, b| (b.taken, &b.name).cmp(&(a.taken, &a.name)));
    let mut kept_by_buckets = BTreeSet::new();
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for s in &scheduled {
        // The slot's day, so a run offset past midnight still counts for its own day.
        let local = s
            .scheduled_for
            .unwrap_or(s.taken)
            .to_zoned(tz.clone())
            .date();
        let week = local.iso_week_date();
        let day_is_new = !days.contains(&local);
        let week_is_new = !weeks.contains(&(week.year(), week.week()));
        let mut keep = false;
        if day_is_new && days.len() < policy.keep_daily as usize {
            days.insert(local);
            keep = true;
        }
        if week_is_new && weeks.len() < policy.keep_weekly as usize {
            weeks.insert((week.year(), week.week()));
            keep = true;
        }
        if keep {
            kept_by_buckets.insert(s.name.as_str());
        }
    }

    let newest_failure = newest(snapshots, |s| {
        s.failed() || s.overdue(policy.ready_deadline, now)
    })
    .map(|s| s.name.as_str());
    let newer_ready_exists = |s: &SnapshotInfo| {
        snapshots
            .iter()
            .any(|r| r.ready && !r.deleting && r.taken > s.taken)
    };
    let mut doomed: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| !never(s))
        .filter(|s| {
            if s.kind == SnapshotKind::Final {
                // Rule 5: expired (`never` kept the unexpired ones), ready or not.
                return true;
            }
            if s.failed() || s.overdue(policy.ready_deadline, now) {
                // Rule 4: the newest failure stays until a newer snapshot is good, for the
                // health message; older failures go at once.
                return Some(s.name.as_str()) != newest_failure || newer_ready_exists(s);
            }
            if !s.ready {
                return false;
            }
            match s.kind {
                SnapshotKind::Scheduled => !kept_by_buckets.contains(s.name.as_str()),
                // Rule 3.
                _ => s
                    .taken
                    .checked_add(policy.keep_on_demand)
                    .is_ok_and(|t| t < now),
            }
        })
        .collect();
    doomed.sort_by(|a, b| (a.taken, &a.name).cmp(&(b.taken, &b.name)));
    doomed.into_iter().map(|s| s.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn h(n: i64) -> SignedDuration {
        SignedDuration::from_hours(n)
    }

    /// A ready snapshot of `kind` taken at `at`, named like the operator names them.
    fn snap(kind: SnapshotKind, at: &str) -> SnapshotInfo {
        let t = ts(at);
        SnapshotInfo {
            name: format!("alice-{}-{}", t.strftime("%Y%m%d-%H%M%S"), kind.as_str()),
            uid: format!("uid-{at}"),
            kind,
            taken: t,
            created: t,
            ready: true,
            error: None,
            restore_size: Some("8Gi".into()),
            scheduled_for: (kind == SnapshotKind::Scheduled).then_some(t),
            request: None,
            expires_at: None,
            source_claim: Some("alice-data".into()),
            deleting: false,
        }
    }
    fn pending(mut s: SnapshotInfo) -> SnapshotInfo {
        s.ready = false;
        s.restore_size = None;
        s
    }
    fn failed(mut s: SnapshotInfo, msg: &str) -> SnapshotInfo {
        s.ready = false;
        s.error = Some(msg.into());
        s
    }
    fn retention(daily: u32, weekly: u32) -> Retention {
        Retention {
            keep_daily: daily,
            keep_weekly: weekly,
            keep_on_demand: h(30 * 24),
            ready_deadline: h(2),
        }
    }
    fn daily_run(from: &str, days: i64) -> Vec<SnapshotInfo> {
        let start = ts(from);
        (0..days)
            .map(|d| {
                let t = start.checked_add(h(24 * d)).unwrap();
                snap(SnapshotKind::Scheduled, &t.to_string())
            })
            .collect()
    }
    fn survivors(all: &[SnapshotInfo], deleted: &[String]) -> Vec<String> {
        let mut left: Vec<String> = all
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| !deleted.contains(n))
            .collect();
        left.sort();
        left
    }
    fn select(all: &[SnapshotInfo], r: &Retention, now: &str) -> Vec<String> {
        select_for_deletion(
            all,
            r,
            &jiff::tz::TimeZone::UTC,
            ts(now),
            &BTreeSet::new(),
            None,
        )
    }

    #[test]
    fn forty_dailies_keep_seven_days_and_four_weeks() {
        // 2026-10-26 (a Monday) to 2026-12-04 (a Friday).
        let all = daily_run("2026-10-26T03:00:00Z", 40);
        let deleted = select(&all, &retention(7, 4), "2026-12-04T12:00:00Z");
        assert_eq!(deleted.len(), 31);
        assert!(deleted.windows(2).all(|w| w[0] < w[1]), "oldest first");
        let day = |d: &str| format!("alice-{d}-030000-scheduled");
        assert_eq!(
            survivors(&all, &deleted),
            [
                // The newest of ISO weeks 47 and 46 (their Sundays) ...
                "20261115", "20261122",
                // ... and the 7 newest days (which hold weeks 49 and 48's newest).
                "20261128", "20261129", "20261130", "20261201", "20261202", "20261203", "20261204",
            ]
            .map(day)
        );
    }

    #[test]
    fn an_outage_never_empties_the_history() {
        // 20 days of snapshots, then 10 days without any.
        let all = daily_run("2026-11-01T03:00:00Z", 20);
        let deleted = select(&all, &retention(7, 0), "2026-12-01T12:00:00Z");
        let left = survivors(&all, &deleted);
        assert_eq!(left.len(), 7, "{left:?}");
        assert_eq!(left[0], "alice-20261114-030000-scheduled");
        assert_eq!(left[6], "alice-20261120-030000-scheduled");
    }

    #[test]
    fn zero_keeps_still_keep_the_newest_ready_even_behind_a_pending_one() {
        let mut all = daily_run("2026-12-01T03:00:00Z", 3);
        let deleted = select(&all, &retention(0, 0), "2026-12-03T12:00:00Z");
        assert_eq!(
            survivors(&all, &deleted),
            ["alice-20261203-030000-scheduled"]
        );
        // The newest is still being cut: it and the newest ready one stay.
        all.push(pending(snap(
            SnapshotKind::Scheduled,
            "2026-12-04T03:00:00Z",
        )));
        let deleted = select(&all, &retention(0, 0), "2026-12-04T03:30:00Z");
        assert_eq!(
            survivors(&all, &deleted),
            [
                "alice-20261203-030000-scheduled",
                "alice-20261204-030000-scheduled"
            ]
        );
    }

    #[test]
    fn days_are_counted_in_the_schedules_time_zone_across_dst() {
        let tz = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
        // 2026-10-25 is 25 h long in Stockholm (CEST → CET).
        let all = vec![
            // 10-24 23:30 CEST: its own day.
            snap(SnapshotKind::Scheduled, "2026-10-24T21:30:00Z"),
            // 10-25 01:30 CEST and 10-25 23:30 CET: one local day, two UTC days.
            snap(SnapshotKind::Scheduled, "2026-10-24T23:30:00Z"),
            snap(SnapshotKind::Scheduled, "2026-10-25T22:30:00Z"),
        ];
        let deleted = select_for_deletion(
            &all,
            &retention(2, 0),
            &tz,
            ts("2026-10-26T12:00:00Z"),
            &BTreeSet::new(),
            None,
        );
        assert_eq!(deleted, ["alice-20261024-233000-scheduled"]);
        // Read in UTC the buckets differ: the proof the zone is used.
        assert_eq!(
            select(&all, &retention(2, 0), "2026-10-26T12:00:00Z"),
            ["alice-20261024-213000-scheduled"]
        );
    }

    #[test]
    fn protected_and_deleting_snapshots_are_never_selected() {
        let mut all = daily_run("2026-12-01T03:00:00Z", 4);
        all[1].deleting = true;
        let protected = BTreeSet::from([all[0].name.clone()]);
        let deleted = select_for_deletion(
            &all,
            &retention(1, 0),
            &jiff::tz::TimeZone::UTC,
            ts("2026-12-04T12:00:00Z"),
            &protected,
            None,
        );
        assert_eq!(deleted, ["alice-20261203-030000-scheduled"]);
    }

    #[test]
    fn failures_are_pruned_but_the_newest_until_superseded() {
        let r = retention(7, 4);
        let old_fail = failed(
            snap(SnapshotKind::Scheduled, "2026-12-01T03:00:00Z"),
            "quota",
        );
        let stuck = pending(snap(SnapshotKind::Manual, "2026-12-01T10:00:00Z"));
        let good = snap(SnapshotKind::Scheduled, "2026-12-02T03:00:00Z");
        let new_fail = failed(
            snap(SnapshotKind::Scheduled, "2026-12-03T03:00:00Z"),
            "quota",
        );
        let fresh = pending(snap(SnapshotKind::Scheduled, "2026-12-03T11:00:00Z"));
        let all = vec![
            old_fail.clone(),
            stuck.clone(),
            good,
            new_fail.clone(),
            fresh,
        ];
        // The failure and the stuck one older than a good snapshot go; the newest failure
        // stays (nothing good after it) and so does a snapshot still in progress.
        assert_eq!(
            select(&all, &r, "2026-12-03T12:00:00Z"),
            [old_fail.name.clone(), stuck.name.clone()]
        );
        // Without a good snapshot after them, the newest failure stays, the older go.
        assert_eq!(
            select(&[old_fail.clone(), new_fail], &r, "2026-12-03T12:00:00Z"),
            [old_fail.name]
        );
        // A stuck snapshot is "in progress" until the deadline.
        let good = snap(SnapshotKind::Scheduled, "2026-12-01T11:00:00Z");
        assert!(select(&[stuck.clone(), good.clone()], &r, "2026-12-01T11:59:59Z").is_empty());
        assert_eq!(
            select(&[stuck.clone(), good], &r, "2026-12-01T12:00:00Z"),
            [stuck.name]
        );
    }

    #[test]
    fn ten_failures_and_nothing_ready_keep_only_the_newest_failure() {
        let r = retention(7, 4);
        let mut all: Vec<SnapshotInfo> = (1..=10)
            .map(|d| {
                let at = format!("2026-12-{d:02}T03:00:00Z");
                if d % 2 == 0 {
                    failed(snap(SnapshotKind::Scheduled, &at), "no driver")
                } else {
                    // Never ready, no error: overdue after 2 h.
                    pending(snap(SnapshotKind::Scheduled, &at))
                }
            })
            .collect();
        let deleted = select(&all, &r, "2026-12-11T12:00:00Z");
        assert_eq!(deleted.len(), 9, "{deleted:?}");
        assert_eq!(survivors(&all, &deleted), [all[9].name.clone()]);
        // A pending one still within its deadline is in progress: never deleted.
        all.push(pending(snap(
            SnapshotKind::Scheduled,
            "2026-12-11T11:00:00Z",
        )));
        assert_eq!(select(&all, &r, "2026-12-11T12:00:00Z").len(), 9);
    }

    #[test]
    fn an_overdue_scheduled_snapshot_holds_the_schedule() {
        let stuck = pending(snap(SnapshotKind::Scheduled, "2026-12-01T03:00:00Z"));
        let before = ts("2026-12-01T04:59:59Z");
        let after = ts("2026-12-01T05:00:00Z");
        assert_eq!(
            scheduled_stuck(std::slice::from_ref(&stuck), h(2), before),
            None
        );
        assert_eq!(
            scheduled_stuck(std::slice::from_ref(&stuck), h(2), after).map(|s| &s.name),
            Some(&stuck.name)
        );
        // A failed one (an error) does not hold it: the next slot tries again.
        let failed_one = failed(snap(SnapshotKind::Scheduled, "2026-12-01T03:00:00Z"), "x");
        assert_eq!(scheduled_stuck(&[failed_one], h(2), after), None);
        // A newer ready scheduled one: nothing is stuck.
        let good = snap(SnapshotKind::Scheduled, "2026-12-01T04:00:00Z");
        assert_eq!(scheduled_stuck(&[stuck, good], h(2), after), None);
    }

    #[test]
    fn after_an_in_place_restore_the_guard_protects_the_current_volume() {
        // keep 0/0: only the newest ready snapshot is kept, and it must be of the volume
        // in use, not the pre-restore snapshot of the old one.
        let mut r = retention(0, 0);
        r.keep_on_demand = h(30 * 24);
        let current = snap(SnapshotKind::Scheduled, "2026-12-02T03:00:00Z");
        let older_current = snap(SnapshotKind::Scheduled, "2026-12-01T03:00:00Z");
        let mut pre_restore = snap(SnapshotKind::PreRestore, "2026-12-02T10:00:00Z");
        pre_restore.source_claim = Some("alice-data-old".into());
        let mut old_sched = snap(SnapshotKind::Scheduled, "2026-12-02T09:00:00Z");
        old_sched.source_claim = Some("alice-data-old".into());
        let all = vec![
            older_current.clone(),
            current.clone(),
            old_sched.clone(),
            pre_restore.clone(),
        ];
        let deleted = select_for_deletion(
            &all,
            &r,
            &jiff::tz::TimeZone::UTC,
            ts("2026-12-02T12:00:00Z"),
            &BTreeSet::new(),
            Some("alice-data"),
        );
        // The current volume's newest stays; the pre-restore one stays under its on-demand
        // retention; the old volume's scheduled one and the older current one go.
        assert_eq!(
            deleted,
            [older_current.name.clone(), old_sched.name.clone()]
        );
        // Without knowing the claim, the pre-restore snapshot was "the newest": the bug.
        let blind = select_for_deletion(
            &all,
            &r,
            &jiff::tz::TimeZone::UTC,
            ts("2026-12-02T12:00:00Z"),
            &BTreeSet::new(),
            None,
        );
        assert!(blind.contains(&current.name), "{blind:?}");
        // After keepOnDemandDays the pre-restore snapshot goes too.
        let later = select_for_deletion(
            &all,
            &r,
            &jiff::tz::TimeZone::UTC,
            ts("2027-01-02T12:00:00Z"),
            &BTreeSet::new(),
            Some("alice-data"),
        );
        assert!(later.contains(&pre_restore.name), "{later:?}");
        assert!(!later.contains(&current.name), "{later:?}");
    }

    #[test]
    fn final_snapshots_are_kept_until_they_expire() {
        let r = retention(7, 4);
        let mut fin = snap(SnapshotKind::Final, "2026-11-01T10:00:00Z");
        fin.expires_at = Some(ts("2026-12-01T10:00:00Z"));
        let newer = snap(SnapshotKind::Scheduled, "2026-11-02T03:00:00Z");
        let all = vec![fin.clone(), newer];
        assert!(select(&all, &r, "2026-12-01T10:00:00Z").is_empty());
        assert_eq!(select(&all, &r, "2026-12-01T10:00:01Z"), [fin.name.clone()]);
        // A failed final stays until it expires too, then goes.
        let broken = failed(fin.clone(), "driver");
        assert!(select(std::slice::from_ref(&broken), &r, "2026-11-30T10:00:00Z").is_empty());
        assert_eq!(
            select(std::slice::from_ref(&broken), &r, "2026-12-02T10:00:00Z"),
            [broken.name]
        );
        // Without an expiry it is never selected; as the newest ready it always stays.
        fin.expires_at = None;
        assert!(select(&[fin.clone()], &r, "2030-01-01T00:00:00Z").is_empty());
    }

    #[test]
    fn on_demand_snapshots_go_after_their_age_unless_newest() {
        let r = retention(7, 4);
        let manual = snap(SnapshotKind::Manual, "2026-11-01T10:00:00Z");
        let upgrade = snap(SnapshotKind::PreUpgrade, "2026-11-02T10:00:00Z");
        let restore = snap(SnapshotKind::PreRestore, "2026-11-03T10:00:00Z");
        let newest = snap(SnapshotKind::Scheduled, "2026-12-01T03:00:00Z");
        let all = vec![manual.clone(), upgrade.clone(), restore.clone(), newest];
        // 30 days after the manual one: exactly at its age it stays.
        assert!(select(&all, &r, "2026-12-01T10:00:00Z").is_empty());
        assert_eq!(
            select(&all, &r, "2026-12-02T10:00:01Z"),
            [manual.name.clone(), upgrade.name.clone()]
        );
        assert_eq!(select(&all, &r, "2026-12-20T00:00:00Z").len(), 3);
        // The newest ready snapshot stays whatever its kind and age.
        assert!(select(&[manual], &r, "2027-06-01T00:00:00Z").is_empty());
    }

    #[test]
    fn reads_a_listed_snapshot_and_ignores_foreign_ones() {
        let v = serde_json::json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {
                "name": "alice-20261203-141503-manual", "namespace": "clients", "uid": "u1",
                "creationTimestamp": "2026-12-03T14:15:04Z",
                "deletionTimestamp": "2026-12-04T00:00:00Z",
                "labels": {"clawhost.dev/snapshot-kind": "manual"},
                "annotations": {"clawhost.dev/request": "snapshot:1"}
            },
            "spec": {"source": {"persistentVolumeClaimName": "alice-data"}},
            "status": {"readyToUse": false, "creationTime": "2026-12-03T14:15:05Z",
                       "error": {"message": "snapshot quota exceeded"}}
        });
        let s: VolumeSnapshot = serde_json::from_value(v.clone()).unwrap();
        let i = SnapshotInfo::from_snapshot(&s).unwrap();
        assert_eq!(i.kind, SnapshotKind::Manual);
        assert_eq!(i.uid, "u1");
        assert_eq!(i.created, ts("2026-12-03T14:15:04Z"));
        assert_eq!(i.taken, ts("2026-12-03T14:15:05Z"));
        assert_eq!(i.error.as_deref(), Some("snapshot quota exceeded"));
        assert!(i.failed() && !i.ready && i.deleting);
        assert_eq!(i.request.as_deref(), Some("snapshot:1"));
        assert_eq!(
            i.source_claim.as_deref(),
            Some("alice-data"),
            "from spec.source"
        );
        let mut foreign = s.clone();
        foreign.metadata.labels = None;
        assert_eq!(SnapshotInfo::from_snapshot(&foreign), None);
        let mut odd = s;
        odd.metadata.labels =
            Some([(SNAPSHOT_KIND_LABEL.to_string(), "hourly".to_string())].into());
        assert_eq!(SnapshotInfo::from_snapshot(&odd), None);
    }
}
