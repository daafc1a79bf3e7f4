//! When snapshots are due: a cron schedule in a time zone, each client's stable offset, and
//! the one catch-up after downtime.

use jiff::{SignedDuration, Timestamp};

use crate::config::{ScheduleError, parse_schedule};

/// A parsed cron schedule in a time zone (5 fields or a nickname; at most hourly).
/// DST: a slot in a spring-forward gap runs at the first valid time after it; a slot in a
/// fall-back overlap runs once.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    tz_name: String,
    cron: croner::Cron,
    tz: jiff::tz::TimeZone,
}

impl Schedule {
    /// Parses and checks (see [`crate::config::parse_schedule`]).
    pub fn parse(expr: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let (cron, tz) = parse_schedule(expr, time_zone)?;
        Ok(Self {
            expr: expr.to_string(),
            tz_name: time_zone.to_string(),
            cron,
            tz,
        })
    }
    pub fn expr(&self) -> &str {
        &self.expr
    }
    pub fn time_zone_name(&self) -> &str {
        &self.tz_name
    }
    pub fn time_zone(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }
    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let from = t.to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|z| z.timestamp())
    }
    /// The latest slot at or before `t`.
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let from = t.to_zoned(self.tz.clone());
        self.cron
            .find_previous_occurrence(&from, true)
            .ok()
            .map(|z| z.timestamp())
            // croner works in whole seconds: a slot "at" a sub-second `t` is not after it.
            .filter(|s| *s <= t)
    }
    /// Gap between the slot at or before `t` and the next one (24 h for daily; 23/25 h
    /// across DST). The health window is twice this.
    pub fn interval_at(&self, t: Timestamp) -> SignedDuration {
        let start = self.latest_at_or_before(t).or_else(|| self.next_after(t));
        start
            .and_then(|s| Some(self.next_after(s)?.duration_since(s)))
            .filter(|gap| gap.is_positive())
            // Unreachable for a parsed schedule (it runs at least once a year); a day keeps
            // the health window sane anyway.
            .unwrap_or(SignedDuration::from_hours(24))
    }
}

/// This client's stable offset in [0, spread): first 8 bytes of SHA-256(uid) mod spread,
/// whole seconds. Same uid, same offset, on every replica and after restarts.
pub fn spread_offset(uid: &str, spread: SignedDuration) -> SignedDuration {
    use sha2::{Digest, Sha256};
    let Ok(range) = u64::try_from(spread.as_secs()) else {
        return SignedDuration::ZERO;
    };
    if range == 0 {
        return SignedDuration::ZERO;
    }
    let digest = Sha256::digest(uid.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // `range` fits in an i64 (it came from one), and the remainder is below it.
    SignedDuration::from_secs((u64::from_be_bytes(first) % range) as i64)
}

/// What the scheduler should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// A slot to take a snapshot for now: the latest slot `s` with `s + offset <= now` and
    /// `s > handled`. Only the latest, so after any downtime there is one catch-up, never a
    /// burst.
    pub take: Option<Timestamp>,
    /// When the next slot after the one taken/handled is due (slot + offset): status
    /// `nextRun` and the requeue deadline.
    pub next_run: Timestamp,
}

/// `handled`: the latest handled slot, max(status.backup.lastScheduledRun, the newest
/// `clawhost.dev/scheduled-for` among this Assistant's scheduled snapshots, the Assistant's
/// creationTimestamp): a new Assistant waits for its first slot, and a lost status write
/// never doubles a snapshot.
pub fn due_run(
    schedule: &Schedule,
    offset: SignedDuration,
    handled: Timestamp,
    now: Timestamp,
) -> Due {
    let take = now
        .checked_sub(offset)
        .ok()
        .and_then(|t| schedule.latest_at_or_before(t))
        .filter(|slot| *slot > handled);
    let after = take.unwrap_or(handled).max(handled);
    let next_run = schedule
        .next_after(after)
        .and_then(|slot| slot.checked_add(offset).ok())
        // Unreachable for a parsed schedule; a day later keeps the requeue bounded.
        .unwrap_or_else(|| {
            now.checked_add(SignedDuration::from_hours(24))
                .unwrap_or(now)
        });
    Due { take, next_run }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn schedule(expr: &str, tz: &str) -> Schedule {
        Schedule::parse(expr, tz).unwrap()
    }

    #[test]
    fn parses_five_fields_and_nicknames_in_a_zone() {
        for (expr, tz) in [
            ("0 3 * * *", "UTC"),
            ("30 2 * * 1-5", "Europe/Stockholm"),
            ("0 */6 * * *", "America/New_York"),
            ("0 * * * *", "UTC"),
            ("@daily", "UTC"),
            ("@hourly", "Asia/Tokyo"),
            ("@weekly", "UTC"),
            ("@monthly", "UTC"),
            ("@yearly", "UTC"),
            ("0 12 29 2 *", "UTC"),
        ] {
            let s = Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("{expr} {tz}: {e}"));
            assert_eq!((s.expr(), s.time_zone_name()), (expr, tz));
        }
        let daily = schedule("@daily", "UTC");
        assert_eq!(
            daily.next_after(ts("2026-12-03T10:00:00Z")),
            Some(ts("2026-12-04T00:00:00Z"))
        );
    }

    #[test]
    fn refuses_bad_expressions_zones_and_sub_hourly_schedules() {
        let err = |expr: &str, tz: &str| Schedule::parse(expr, tz).unwrap_err().to_string();
        let e = err("0 3 * *", "UTC");
        assert!(
            e.starts_with("\"0 3 * *\" is not a cron expression (5 fields: minute hour"),
            "{e}"
        );
        // Seconds and years are refused.
        assert!(err("0 0 3 * * *", "UTC").contains("is not a cron expression"));
        assert!(err("0 3 * * * 2027", "UTC").contains("is not a cron expression"));
        assert!(err("61 3 * * *", "UTC").contains("is not a cron expression"));
        assert_eq!(
            err("0 3 * * *", "Mars/Olympus"),
            "\"Mars/Olympus\" is not an IANA time zone (e.g. Europe/Stockholm, UTC)"
        );
        assert_eq!(
            err("*/5 * * * *", "UTC"),
            "\"*/5 * * * *\" runs more often than hourly (every 5 minutes); snapshots are at most hourly"
        );
        assert!(err("0,30 * * * *", "UTC").contains("(every 30 minutes)"));
        // Only in June, still every 10 minutes then.
        assert!(err("*/10 * * 6 *", "UTC").contains("(every 10 minutes)"));
        assert!(err("0 0 31 2 *", "UTC").contains("never runs"));
    }

    #[test]
    fn next_after_is_strict_and_latest_at_or_before_inclusive() {
        let s = schedule("0 3 * * *", "UTC");
        let slot = ts("2026-12-03T03:00:00Z");
        assert_eq!(s.next_after(slot), Some(ts("2026-12-04T03:00:00Z")));
        assert_eq!(
            s.next_after(ts("2026-12-03T02:59:59.5Z")),
            Some(slot),
            "sub-second"
        );
        assert_eq!(s.latest_at_or_before(slot), Some(slot));
        assert_eq!(
            s.latest_at_or_before(ts("2026-12-03T03:00:00.5Z")),
            Some(slot)
        );
        assert_eq!(
            s.latest_at_or_before(ts("2026-12-03T02:59:59Z")),
            Some(ts("2026-12-02T03:00:00Z"))
        );
    }

    #[test]
    fn stockholm_spring_gap_runs_after_the_gap_and_autumn_overlap_runs_once() {
        let s = schedule("30 2 * * *", "Europe/Stockholm");
        // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
        assert_eq!(
            s.next_after(ts("2026-03-28T12:00:00Z")),
            Some(ts("2026-03-29T01:00:00Z")),
            "03:00 CEST, the first valid time after the gap"
        );
        assert_eq!(
            s.next_after(ts("2026-03-29T01:00:00Z")),
            Some(ts("2026-03-30T00:30:00Z"))
        );
        // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, runs once.
        let first = s.next_after(ts("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, ts("2026-10-25T00:30:00Z"), "02:30 CEST, the earlier");
        assert_eq!(
            s.next_after(first),
            Some(ts("2026-10-26T01:30:00Z")),
            "not again at 02:30 CET"
        );
        assert_eq!(
            s.latest_at_or_before(ts("2026-10-25T01:45:00Z")),
            Some(first),
            "during the repeated hour the slot is still the earlier run"
        );
    }

    #[test]
    fn new_york_spring_gap_and_autumn_overlap() {
        let gap = schedule("30 2 * * *", "America/New_York");
        // 2026-03-08 02:00 EST jumps to 03:00 EDT.
        assert_eq!(
            gap.next_after(ts("2026-03-07T12:00:00Z")),
            Some(ts("2026-03-08T07:00:00Z"))
        );
        assert_eq!(
            gap.next_after(ts("2026-03-08T07:00:00Z")),
            Some(ts("2026-03-09T06:30:00Z"))
        );
        // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice, runs once.
        let overlap = schedule("30 1 * * *", "America/New_York");
        let first = overlap.next_after(ts("2026-10-31T12:00:00Z")).unwrap();
        assert_eq!(first, ts("2026-11-01T05:30:00Z"));
        assert_eq!(overlap.next_after(first), Some(ts("2026-11-02T06:30:00Z")));
    }

    #[test]
    fn interval_is_the_gap_around_t_and_follows_dst() {
        let s = schedule("0 3 * * *", "Europe/Stockholm");
        let h = SignedDuration::from_hours;
        assert_eq!(s.interval_at(ts("2026-03-28T12:00:00Z")), h(23));
        assert_eq!(s.interval_at(ts("2026-03-29T12:00:00Z")), h(24));
        assert_eq!(s.interval_at(ts("2026-10-24T12:00:00Z")), h(25));
        assert_eq!(s.interval_at(ts("2026-12-03T12:00:00Z")), h(24));
        assert_eq!(
            schedule("0 * * * *", "UTC").interval_at(ts("2026-12-03T12:30:00Z")),
            h(1)
        );
        assert_eq!(
            schedule("0 3 * * 0", "UTC").interval_at(ts("2026-12-03T12:00:00Z")),
            h(24 * 7)
        );
    }

    #[test]
    fn spread_offset_is_stable_and_in_range() {
        let spread = SignedDuration::from_secs(3600);
        let uid = "6f1e2d3c-0000-4000-8000-00000000a11c";
        // First 8 bytes of SHA-256(uid), big-endian, mod 3600: pinned, so every replica and
        // release agrees.
        assert_eq!(spread_offset(uid, spread), SignedDuration::from_secs(2420));
        assert_eq!(spread_offset(uid, spread), spread_offset(uid, spread));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let o = spread_offset(&format!("uid-{i}"), spread);
            assert!(o >= SignedDuration::ZERO && o < spread, "{o:?}");
            assert_eq!(o.subsec_nanos(), 0);
            seen.insert(o);
        }
        assert!(seen.len() > 150, "spread out: {}", seen.len());
        assert_eq!(
            spread_offset(uid, SignedDuration::ZERO),
            SignedDuration::ZERO
        );
        assert_eq!(
            spread_offset(uid, SignedDuration::from_secs(-5)),
            SignedDuration::ZERO
        );
    }

    #[test]
    fn due_run_waits_for_slot_plus_offset_and_catches_up_once() {
        let s = schedule("0 3 * * *", "UTC");
        let offset = SignedDuration::from_mins(10);
        let created = ts("2026-12-03T10:00:00Z");
        // A new Assistant waits for its first slot.
        assert_eq!(
            due_run(&s, offset, created, ts("2026-12-03T10:05:00Z")),
            Due {
                take: None,
                next_run: ts("2026-12-04T03:10:00Z")
            }
        );
        // The slot is due only at slot + offset.
        assert_eq!(
            due_run(&s, offset, created, ts("2026-12-04T03:09:59Z")).take,
            None
        );
        let due = due_run(&s, offset, created, ts("2026-12-04T03:10:00Z"));
        assert_eq!(
            due,
            Due {
                take: Some(ts("2026-12-04T03:00:00Z")),
                next_run: ts("2026-12-05T03:10:00Z")
            }
        );
        // Once handled, nothing until the next slot.
        let handled = ts("2026-12-04T03:00:00Z");
        assert_eq!(
            due_run(&s, offset, handled, ts("2026-12-04T18:00:00Z")),
            Due {
                take: None,
                next_run: ts("2026-12-05T03:10:00Z")
            }
        );
        // Five days down: one catch-up, for the latest slot only.
        assert_eq!(
            due_run(&s, offset, handled, ts("2026-12-09T12:00:00Z")),
            Due {
                take: Some(ts("2026-12-09T03:00:00Z")),
                next_run: ts("2026-12-10T03:10:00Z")
            }
        );
        // Down over a slot but back before its offset passed: the previous slot is the one.
        assert_eq!(
            due_run(&s, offset, handled, ts("2026-12-06T03:05:00Z")).take,
            Some(ts("2026-12-05T03:00:00Z"))
        );
    }
}
