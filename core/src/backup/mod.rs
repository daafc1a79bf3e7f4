//! Backups of a client's volume with CSI VolumeSnapshots, decided without I/O: the policy in
//! force for one Assistant, when its next snapshot is due, what snapshots are named, which
//! ones retention deletes, and what `BackupHealthy` says. The operator's backup step only
//! reads snapshots, calls these, and creates or deletes what they say (docs/backups.md).

pub mod health;
pub mod naming;
pub mod retention;
pub mod schedule;

pub use health::*;
pub use naming::*;
pub use retention::*;
pub use schedule::*;

use jiff::SignedDuration;

use crate::api::Assistant;
use crate::config::{OperatorConfig, ScheduleError};

/// The backup policy in force for one Assistant.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    pub schedule: Schedule,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// `backups.volumeSnapshotClassName`; `None` leaves the snapshot's class unset.
    pub class: Option<String>,
    pub ready_deadline: SignedDuration,
    pub spread: SignedDuration,
    pub keep_on_demand: SignedDuration,
    /// `spec.backup` was invalid and the plan/operator value is used instead (the health
    /// message says so): a typo never stops a client's backups.
    pub fell_back: bool,
}

impl BackupPolicy {
    pub fn retention(&self) -> Retention {
        Retention {
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_on_demand: self.keep_on_demand,
            ready_deadline: self.ready_deadline,
        }
    }
}

/// `spec.backup` › the plan's `backup` › `config.backups`, field by field.
/// `Ok(None)`: backups are off (operator kill switch, plan, or spec `enabled: false`).
/// An invalid spec value falls back to the plan/operator value with `fell_back = true`
/// (never `Err` for the spec: validation reports it); `Err` (the message) only for an
/// invalid operator or plan value, which `config check` already refuses.
pub fn effective_policy(
    a: &Assistant,
    config: &OperatorConfig,
) -> Result<Option<BackupPolicy>, String> {
    if disabled_by(a, config).is_some() {
        return Ok(None);
    }
    let backups = &config.backups;
    let plan = config.plan(a.spec.plan.as_deref());
    let plan_name = plan.map(|(name, _)| name);
    let plan_backup = plan.and_then(|(_, p)| p.backup.as_ref());
    let spec = a.backup();

    // The fallback (plan › operator) with the YAML path it came from, for the error.
    let (fb_schedule, fb_schedule_field) = match plan_backup.and_then(|b| b.schedule.as_deref()) {
        Some(s) => (
            s,
            format!("plans.{}.backup.schedule", plan_name.unwrap_or_default()),
        ),
        None => (backups.schedule.as_str(), "backups.schedule".to_string()),
    };
    let (fb_zone, fb_zone_field) = match plan_backup.and_then(|b| b.time_zone.as_deref()) {
        Some(z) => (
            z,
            format!("plans.{}.backup.timeZone", plan_name.unwrap_or_default()),
        ),
        None => (backups.time_zone.as_str(), "backups.timeZone".to_string()),
    };
    let spec_schedule = spec.schedule.as_deref();
    let spec_zone = spec.time_zone.as_deref();

    // The spec's values first; an invalid one is replaced by the fallback on its own.
    let mut candidates = vec![(
        spec_schedule.unwrap_or(fb_schedule),
        spec_zone.unwrap_or(fb_zone),
    )];
    if spec_schedule.is_some() {
        candidates.push((fb_schedule, spec_zone.unwrap_or(fb_zone)));
    }
    if spec_zone.is_some() {
        candidates.push((spec_schedule.unwrap_or(fb_schedule), fb_zone));
    }
    let chosen = candidates
        .iter()
        .enumerate()
        .find_map(|(i, (expr, zone))| Some((Schedule::parse(expr, zone).ok()?, i > 0)));
    let (schedule, fell_back) = match chosen {
        Some(found) => found,
        None => {
            let schedule = Schedule::parse(fb_schedule, fb_zone).map_err(|e| {
                let field = match e {
                    ScheduleError::TimeZone { .. } => &fb_zone_field,
                    _ => &fb_schedule_field,
                };
                format!("{field}: {e}")
            })?;
            (schedule, spec_schedule.is_some() || spec_zone.is_some())
        }
    };

    let plan_keep = plan_backup.and_then(|b| b.keep).unwrap_or_default();
    let spec_keep = spec.keep.unwrap_or_default();
    Ok(Some(BackupPolicy {
        schedule,
        keep_daily: spec_keep
            .daily
            .or(plan_keep.daily)
            .unwrap_or(backups.keep.daily),
        keep_weekly: spec_keep
            .weekly
            .or(plan_keep.weekly)
            .unwrap_or(backups.keep.weekly),
        class: backups.volume_snapshot_class_name.clone(),
        ready_deadline: seconds(backups.ready_deadline_seconds),
        spread: seconds(backups.spread_seconds),
        keep_on_demand: seconds(u64::from(backups.keep_on_demand_days) * 86_400),
        fell_back,
    }))
}

/// Why backups are off for this Assistant, as the `Disabled` message says it; `None` when
/// they are on. The operator's kill switch wins over everything, then `spec.backup.enabled`,
/// then the plan's.
pub fn disabled_by(a: &Assistant, config: &OperatorConfig) -> Option<String> {
    if !config.backups.enabled {
        return Some("backups are off operator-wide (backups.enabled: false)".into());
    }
    match a.backup().enabled {
        Some(false) => Some("backups are off for this client (spec.backup.enabled: false)".into()),
        Some(true) => None,
        None => {
            let (name, plan) = config.plan(a.spec.plan.as_deref())?;
            (plan.backup.as_ref()?.enabled == Some(false)).then(|| {
                format!("backups are off for plan {name} (plans.{name}.backup.enabled: false)")
            })
        }
    }
}

fn seconds(s: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupKeep, BackupSpec};
    use crate::config::PlanBackup;
    use crate::testing::{assistant, config};

    fn policy(a: &Assistant, c: &OperatorConfig) -> BackupPolicy {
        effective_policy(a, c).unwrap().expect("backups on")
    }

    fn with_plan_backup(b: PlanBackup) -> OperatorConfig {
        let mut c = config();
        c.plans.get_mut("standard").unwrap().backup = Some(b);
        c
    }

    #[test]
    fn operator_defaults_apply_without_overrides() {
        let p = policy(&assistant("alice"), &config());
        assert_eq!(p.schedule.expr(), "0 3 * * *");
        assert_eq!(p.schedule.time_zone_name(), "UTC");
        assert_eq!((p.keep_daily, p.keep_weekly), (7, 4));
        assert_eq!(p.class, None);
        assert_eq!(p.ready_deadline, SignedDuration::from_hours(2));
        assert_eq!(p.spread, SignedDuration::from_hours(1));
        assert_eq!(p.keep_on_demand, SignedDuration::from_hours(30 * 24));
        assert!(!p.fell_back);
        assert_eq!(disabled_by(&assistant("alice"), &config()), None);
    }

    #[test]
    fn spec_over_plan_over_operator_field_by_field() {
        let mut c = with_plan_backup(PlanBackup {
            schedule: Some("0 2 * * *".into()),
            keep: Some(BackupKeep {
                daily: Some(14),
                weekly: None,
            }),
            ..Default::default()
        });
        c.backups.volume_snapshot_class_name = Some("csi-snap".into());
        let mut a = assistant("alice");
        let p = policy(&a, &c);
        assert_eq!(p.schedule.expr(), "0 2 * * *");
        assert_eq!(p.schedule.time_zone_name(), "UTC");
        assert_eq!((p.keep_daily, p.keep_weekly), (14, 4));
        assert_eq!(p.class.as_deref(), Some("csi-snap"));

        a.spec.backup = Some(BackupSpec {
            time_zone: Some("Europe/Stockholm".into()),
            keep: Some(BackupKeep {
                daily: None,
                weekly: Some(8),
            }),
            ..Default::default()
        });
        let p = policy(&a, &c);
        assert_eq!(p.schedule.expr(), "0 2 * * *", "the plan's schedule");
        assert_eq!(p.schedule.time_zone_name(), "Europe/Stockholm");
        assert_eq!((p.keep_daily, p.keep_weekly), (14, 8));

        a.spec.backup.as_mut().unwrap().schedule = Some("30 1 * * *".into());
        a.spec.backup.as_mut().unwrap().keep = Some(BackupKeep {
            daily: Some(0),
            weekly: Some(0),
        });
        let p = policy(&a, &c);
        assert_eq!(p.schedule.expr(), "30 1 * * *");
        assert_eq!((p.keep_daily, p.keep_weekly), (0, 0));
        assert!(!p.fell_back);
    }

    #[test]
    fn an_invalid_spec_value_falls_back_on_its_own() {
        let c = with_plan_backup(PlanBackup {
            schedule: Some("0 2 * * *".into()),
            ..Default::default()
        });
        let mut a = assistant("alice");
        a.spec.backup = Some(BackupSpec {
            schedule: Some("*/5 * * * *".into()),
            time_zone: Some("Europe/Stockholm".into()),
            ..Default::default()
        });
        let p = policy(&a, &c);
        assert_eq!(p.schedule.expr(), "0 2 * * *");
        assert_eq!(p.schedule.time_zone_name(), "Europe/Stockholm");
        assert!(p.fell_back);

        a.spec.backup = Some(BackupSpec {
            schedule: Some("15 4 * * *".into()),
            time_zone: Some("Mars/Olympus".into()),
            ..Default::default()
        });
        let p = policy(&a, &c);
        assert_eq!(p.schedule.expr(), "15 4 * * *");
        assert_eq!(p.schedule.time_zone_name(), "UTC");
        assert!(p.fell_back);

        a.spec.backup = Some(BackupSpec {
            schedule: Some("nope".into()),
            time_zone: Some("Mars/Olympus".into()),
            ..Default::default()
        });
        let p = policy(&a, &c);
        assert_eq!(
            (p.schedule.expr(), p.schedule.time_zone_name()),
            ("0 2 * * *", "UTC")
        );
        assert!(p.fell_back);
    }

    #[test]
    fn only_an_invalid_operator_or_plan_value_is_an_error() {
        let mut c = config();
        c.backups.schedule = "every night".into();
        let e = effective_policy(&assistant("alice"), &c).unwrap_err();
        assert!(
            e.starts_with("backups.schedule: \"every night\" is not a cron"),
            "{e}"
        );
        let c = with_plan_backup(PlanBackup {
            time_zone: Some("Mars/Olympus".into()),
            ..Default::default()
        });
        let e = effective_policy(&assistant("alice"), &c).unwrap_err();
        assert!(
            e.starts_with("plans.standard.backup.timeZone: \"Mars/Olympus\""),
            "{e}"
        );
        // A valid spec value never needs the broken fallback.
        let mut a = assistant("alice");
        a.spec.backup = Some(BackupSpec {
            time_zone: Some("UTC".into()),
            ..Default::default()
        });
        assert!(effective_policy(&a, &c).unwrap().is_some());
    }

    #[test]
    fn kill_switch_then_spec_then_plan_turn_backups_off() {
        let on = || {
            Some(BackupSpec {
                enabled: Some(true),
                ..Default::default()
            })
        };
        let off = || {
            Some(BackupSpec {
                enabled: Some(false),
                ..Default::default()
            })
        };
        // The operator's kill switch wins over spec.backup.enabled: true.
        let mut c = config();
        c.backups.enabled = false;
        let mut a = assistant("alice");
        a.spec.backup = on();
        assert!(effective_policy(&a, &c).unwrap().is_none());
        assert_eq!(
            disabled_by(&a, &c).as_deref(),
            Some("backups are off operator-wide (backups.enabled: false)")
        );
        // A plan that has them off, unless the spec turns them on.
        let c = with_plan_backup(PlanBackup {
            enabled: Some(false),
            ..Default::default()
        });
        let mut a = assistant("alice");
        assert!(effective_policy(&a, &c).unwrap().is_none());
        assert_eq!(
            disabled_by(&a, &c).as_deref(),
            Some("backups are off for plan standard (plans.standard.backup.enabled: false)")
        );
        a.spec.backup = on();
        assert!(effective_policy(&a, &c).unwrap().is_some());
        assert_eq!(disabled_by(&a, &c), None);
        // The client's own switch.
        a.spec.backup = off();
        assert!(effective_policy(&a, &config()).unwrap().is_none());
        assert_eq!(
            disabled_by(&a, &config()).as_deref(),
            Some("backups are off for this client (spec.backup.enabled: false)")
        );
    }
}
