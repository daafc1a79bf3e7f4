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
        let _ = (t, &self.cron);
        todo!("engineer A")
    }
    /// The latest slot at or before `t`.
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let _ = t;
        todo!("engineer A")
    }
    /// Gap between the slot at or before `t` and the next one (24 h for daily; 23/25 h
    /// across DST). The health window is twice this.
    pub fn interval_at(&self, t: Timestamp) -> SignedDuration {
        let _ = t;
        todo!("engineer A")
    }
}

/// This client's stable offset in [0, spread): first 8 bytes of SHA-256(uid) mod spread,
/// whole seconds. Same uid, same offset, on every replica and after restarts.
pub fn spread_offset(uid: &str, spread: SignedDuration) -> SignedDuration {
    let _ = (uid, spread);
    todo!("engineer A")
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
    let _ = (schedule, offset, handled, now);
    todo!("engineer A")
}
