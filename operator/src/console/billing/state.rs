//! The subscription state machine, pure: `trialing → active → past_due → suspended`,
//! `canceled` (suspended at the end of the period, deleted after retention), and what it
//! means for the cluster.

use super::model::*;

const DAY: i64 = 86_400;

/// Why an input cannot apply (shown to the admin / API caller as a 409 or 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the subscription is {0}: {1}")]
    NotNow(SubscriptionState, &'static str),
}

/// A new subscription starting at `now`: `trialing` for the price's trial days (none:
/// `active`). `price` is the plan's price effective today (None: no trial).
pub fn start(
    client_id: i64,
    price: Option<&PlanPrice>,
    external_customer_id: Option<String>,
    now: i64,
) -> Subscription {
    let trial_days = price.map_or(0, |p| p.trial_days.max(0));
    let (state, trial_ends_at) = if trial_days > 0 {
        (
            SubscriptionState::Trialing,
            Some(now.saturating_add(trial_days.saturating_mul(DAY))),
        )
    } else {
        (SubscriptionState::Active, None)
    };
    Subscription {
        client_id,
        state,
        started_at: now,
        trial_ends_at,
        past_due_since: None,
        suspend_at: None,
        suspended_at: None,
        suspension_reason: None,
        cancel_at: None,
        canceled_at: None,
        delete_at: None,
        deleted_at: None,
        external_customer_id,
        setup_fee_invoiced: false,
        last_provider_event_at: None,
        updated_at: now,
    }
}

/// The subscription after `input` at `now`, or `None` when nothing changes (so applying
/// the same input twice, or `Clock` before anything is due, is a no-op).
///
/// `Clock` applies every transition that is due, in time order (the console may have been
/// down past several): the `Change` goes from the state before the first step to the state
/// after the last and carries the last step's event; [`clock_steps`] lists every step.
pub fn apply(
    sub: &Subscription,
    input: &Input,
    settings: &BillingSettings,
    now: i64,
) -> Result<Option<Change>, Refused> {
    let stepped = match input {
        Input::Clock => {
            let steps = clock_steps(sub, settings, now);
            return Ok(steps.last().map(|last| Change {
                from: sub.state,
                to: last.to,
                event: last.event,
                subscription: last.subscription.clone(),
            }));
        }
        Input::PaymentFailed { at, .. } => payment_failed(sub, *at, settings),
        Input::PaymentSucceeded { .. } => payment_succeeded(sub),
        Input::Cancel { at_period_end } => {
            if sub.state == SubscriptionState::Canceled {
                return Err(Refused::NotNow(sub.state, "it is already canceled"));
            }
            if *at_period_end {
                let at = period_end(now);
                (sub.cancel_at != Some(at)).then(|| {
                    let mut next = sub.clone();
                    next.cancel_at = Some(at);
                    (next, "cancel_scheduled")
                })
            } else {
                Some((cancel(sub, Some(now), settings, now), "canceled"))
            }
        }
        Input::Reactivate => reactivate(sub)?,
        Input::ProviderStatus {
            status,
            cancel_at,
            cancel_at_changed,
        } => provider_status(
            sub,
            *status,
            cancel_at_changed.then_some(*cancel_at),
            settings,
            now,
        ),
        Input::Deleted => match (sub.state, sub.deleted_at) {
            (SubscriptionState::Canceled, None) => {
                let mut next = sub.clone();
                next.deleted_at = Some(now);
                Some((next, "deleted"))
            }
            (SubscriptionState::Canceled, Some(_)) => None,
            (state, _) => {
                return Err(Refused::NotNow(
                    state,
                    "only a canceled subscription's Assistant is deleted",
                ));
            }
        },
    };
    Ok(stepped.map(|(next, event)| change(sub, next, event, now)))
}

/// Every transition the clock makes at `now`, in time order, each with the subscription
/// after it (`apply(Clock)` folds them into one `Change`; an audit may list them all).
/// Empty when nothing is due.
pub fn clock_steps(sub: &Subscription, settings: &BillingSettings, now: i64) -> Vec<Change> {
    let mut steps = Vec::new();
    let mut current = sub.clone();
    // Each step leaves the state it was due in, so at most three steps (trial end, grace
    // end, cancellation); the bound only guards against a bug looping.
    while let Some(due) = next_due(&current, now) {
        if steps.len() >= 4 {
            break;
        }
        let (next, event) = match due {
            Due::TrialEnd => {
                let mut next = current.clone();
                next.state = SubscriptionState::Active;
                (next, "trial_ended")
            }
            Due::GraceEnd => {
                let mut next = current.clone();
                next.state = SubscriptionState::Suspended;
                next.suspended_at = Some(now);
                next.suspension_reason = Some(SuspensionReason::NonPayment);
                (next, "grace_expired")
            }
            Due::Cancel => (cancel(&current, None, settings, now), "canceled"),
        };
        let step = change(&current, next, event, now);
        current = step.subscription.clone();
        steps.push(step);
    }
    steps
}

/// The next transition the clock will make, if any (for "needs attention"). A
/// transition already due (the engine has not run yet) is returned too.
pub fn upcoming(sub: &Subscription, settings: &BillingSettings) -> Option<Upcoming> {
    let mut candidates: Vec<(i64, &'static str, String)> = Vec::new();
    match sub.state {
        SubscriptionState::Trialing => {
            if let Some(at) = sub.trial_ends_at {
                candidates.push((at, "trial_ends", "trial ends".into()));
            }
        }
        SubscriptionState::PastDue => {
            if let Some(at) = sub.suspend_at {
                candidates.push((
                    at,
                    "suspend",
                    "will be suspended for non-payment (grace ends)".into(),
                ));
            }
        }
        SubscriptionState::Canceled => {
            if let (Some(at), None) = (sub.delete_at, sub.deleted_at) {
                let volume = match settings.canceled_volume {
                    VolumeOnCancel::Retain => "volume Retain (kept)",
                    VolumeOnCancel::Delete => "volume Delete (erased)",
                };
                candidates.push((
                    at,
                    "delete",
                    format!("will be deleted (retention ends), {volume}"),
                ));
            }
        }
        SubscriptionState::Active | SubscriptionState::Suspended => {}
    }
    if sub.state != SubscriptionState::Canceled
        && let Some(at) = sub.cancel_at
    {
        candidates.push((
            at,
            "cancel",
            "subscription ends (canceled at the end of the period): the Assistant is suspended"
                .into(),
        ));
    }
    candidates
        .into_iter()
        .min_by_key(|(at, _, _)| *at)
        .map(|(at, event, description)| Upcoming {
            client_id: sub.client_id,
            at,
            event,
            description,
        })
}

/// What the Assistant should have for this subscription, regardless of time: suspended
/// while `suspended` or `canceled` (until deleted), gone once deleted, else served. The
/// engine uses [`desired_cluster_at`], which also says when retention is over.
pub fn desired_cluster(sub: &Subscription) -> ClusterIntent {
    if sub.deleted_at.is_some() {
        return ClusterIntent::Gone;
    }
    match sub.state {
        SubscriptionState::Suspended => ClusterIntent::Suspend(
            sub.suspension_reason
                .unwrap_or(SuspensionReason::NonPayment),
        ),
        SubscriptionState::Canceled => ClusterIntent::Suspend(SuspensionReason::Canceled),
        SubscriptionState::Trialing | SubscriptionState::Active | SubscriptionState::PastDue => {
            ClusterIntent::Serve
        }
    }
}

/// [`desired_cluster`] at `now`: `Delete` once a canceled subscription's retention is
/// over (`now >= delete_at`) and the Assistant is not deleted yet; the engine deletes it
/// and then applies `Input::Deleted`, after which this is `Gone`.
pub fn desired_cluster_at(sub: &Subscription, now: i64) -> ClusterIntent {
    let retention_over = sub.state == SubscriptionState::Canceled
        && sub.deleted_at.is_none()
        && sub.delete_at.is_some_and(|at| now >= at);
    if retention_over {
        ClusterIntent::Delete
    } else {
        desired_cluster(sub)
    }
}

/// When `change` (made at `now`) took effect: the time to record its timeline point at.
/// A cancellation scheduled for the period end took effect at midnight, though the engine
/// applies it up to one interval later: recorded at `now`, the new month's first day
/// would be billed for those seconds of service. Everything else: `now`.
pub fn effective_at(change: &Change, now: i64) -> i64 {
    match (change.event, change.subscription.canceled_at) {
        ("canceled", Some(at)) if change.from != SubscriptionState::Canceled => at.min(now),
        _ => now,
    }
}

/// First second of the month after the one `now` falls in (UTC): the end of the period
/// a cancellation waits for.
pub fn period_end(now: i64) -> i64 {
    let (year, month, _) = civil_from_days(now.div_euclid(DAY));
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(year, month, 1) * DAY
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm: integer
/// only, no failure for any realistic year).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1–12, day 1–31) of a day number since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    TrialEnd,
    GraceEnd,
    Cancel,
}

/// The soonest transition due at `now` (ties: trial end, grace end, cancellation).
fn next_due(sub: &Subscription, now: i64) -> Option<Due> {
    let trial = (sub.state == SubscriptionState::Trialing)
        .then_some(sub.trial_ends_at)
        .flatten()
        .map(|at| (at, Due::TrialEnd));
    let grace = (sub.state == SubscriptionState::PastDue)
        .then_some(sub.suspend_at)
        .flatten()
        .map(|at| (at, Due::GraceEnd));
    let cancel = (sub.state != SubscriptionState::Canceled)
        .then_some(sub.cancel_at)
        .flatten()
        .map(|at| (at, Due::Cancel));
    [trial, grace, cancel]
        .into_iter()
        .flatten()
        .filter(|(at, _)| *at <= now)
        .min_by_key(|(at, _)| *at)
        .map(|(_, due)| due)
}

fn change(before: &Subscription, mut after: Subscription, event: &'static str, now: i64) -> Change {
    after.updated_at = now;
    Change {
        from: before.state,
        to: after.state,
        event,
        subscription: after,
    }
}

/// Canceled, applied at `now`. `at`: when an immediate cancellation took effect; a
/// scheduled one took effect at its `cancel_at` (the period end, not the engine's next
/// tick: see [`effective_at`]). Retention counts from `now`, so a late engine never
/// shortens it.
fn cancel(
    sub: &Subscription,
    at: Option<i64>,
    settings: &BillingSettings,
    now: i64,
) -> Subscription {
    let took_effect = at.or(sub.cancel_at).map_or(now, |t| t.min(now));
    let mut next = sub.clone();
    if sub.state != SubscriptionState::Suspended {
        next.suspended_at = Some(now);
    }
    next.state = SubscriptionState::Canceled;
    next.cancel_at = Some(took_effect);
    next.canceled_at = Some(took_effect);
    next.suspension_reason = Some(SuspensionReason::Canceled);
    next.delete_at = Some(now.saturating_add(settings.retention_days.max(0).saturating_mul(DAY)));
    next
}

fn payment_failed(
    sub: &Subscription,
    at: i64,
    settings: &BillingSettings,
) -> Option<(Subscription, &'static str)> {
    match sub.state {
        SubscriptionState::Trialing | SubscriptionState::Active => {
            let mut next = sub.clone();
            next.state = SubscriptionState::PastDue;
            next.past_due_since = Some(at);
            next.suspend_at =
                Some(at.saturating_add(settings.grace_days.max(0).saturating_mul(DAY)));
            Some((next, "payment_failed"))
        }
        // Already owed (the first failure's grace period stands), or already held.
        SubscriptionState::PastDue | SubscriptionState::Suspended | SubscriptionState::Canceled => {
            None
        }
    }
}

fn payment_succeeded(sub: &Subscription) -> Option<(Subscription, &'static str)> {
    let owed = match sub.state {
        SubscriptionState::PastDue => true,
        SubscriptionState::Suspended => sub
            .suspension_reason
            .is_none_or(|r| r == SuspensionReason::NonPayment),
        // A payment does not reactivate a canceled subscription (Reactivate does).
        SubscriptionState::Trialing | SubscriptionState::Active | SubscriptionState::Canceled => {
            false
        }
    };
    owed.then(|| {
        let mut next = sub.clone();
        next.state = SubscriptionState::Active;
        next.past_due_since = None;
        next.suspend_at = None;
        next.suspended_at = None;
        next.suspension_reason = None;
        (next, "payment_succeeded")
    })
}

fn reactivate(sub: &Subscription) -> Result<Option<(Subscription, &'static str)>, Refused> {
    if sub.state != SubscriptionState::Canceled {
        return Ok(sub.cancel_at.is_some().then(|| {
            let mut next = sub.clone();
            next.cancel_at = None;
            (next, "cancel_unscheduled")
        }));
    }
    if sub.deleted_at.is_some() {
        return Err(Refused::NotNow(sub.state, "the Assistant was deleted"));
    }
    let mut next = sub.clone();
    next.state = SubscriptionState::Active;
    next.cancel_at = None;
    next.canceled_at = None;
    next.delete_at = None;
    next.past_due_since = None;
    next.suspend_at = None;
    next.suspended_at = None;
    next.suspension_reason = None;
    Ok(Some((next, "reactivated")))
}

/// The provider's status, then its scheduled cancellation; one step, named after the
/// state change when there is one.
fn provider_status(
    sub: &Subscription,
    status: ProviderStatus,
    // `None`: the event did not change the provider's schedule; leave ours alone.
    cancel_at: Option<Option<i64>>,
    settings: &BillingSettings,
    now: i64,
) -> Option<(Subscription, &'static str)> {
    let by_status = match status {
        ProviderStatus::Trialing | ProviderStatus::Active => payment_succeeded(sub).or_else(|| {
            (status == ProviderStatus::Active && sub.state == SubscriptionState::Trialing).then(
                || {
                    let mut next = sub.clone();
                    next.state = SubscriptionState::Active;
                    (next, "trial_ended")
                },
            )
        }),
        ProviderStatus::PastDue => payment_failed(sub, now, settings),
        ProviderStatus::Canceled => (sub.state != SubscriptionState::Canceled)
            .then(|| (cancel(sub, Some(now), settings, now), "canceled")),
    };
    let (base, event) = match &by_status {
        Some((next, event)) => (next, Some(*event)),
        None => (sub, None),
    };
    let rescheduled = cancel_at
        .filter(|c| base.state != SubscriptionState::Canceled && base.cancel_at != *c)
        .map(|cancel_at| {
            let mut next = base.clone();
            next.cancel_at = cancel_at;
            let scheduled = if cancel_at.is_some() {
                "cancel_scheduled"
            } else {
                "cancel_unscheduled"
            };
            (next, event.unwrap_or(scheduled))
        });
    rescheduled.or(by_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-10 12:00:00 UTC.
    const T0: i64 = 1_794_312_000;

    fn settings() -> BillingSettings {
        BillingSettings::default() // grace 7, retention 30
    }

    fn price(trial_days: i64) -> PlanPrice {
        PlanPrice {
            id: 1,
            plan: "small".into(),
            currency: "EUR".into(),
            monthly_cents: 2000,
            setup_fee_cents: 0,
            trial_days,
            effective_from: "2026-01-01".into(),
            created_by: "admin@example.com".into(),
            created_at: 0,
        }
    }

    fn active() -> Subscription {
        start(7, Some(&price(0)), None, T0)
    }

    fn with(sub: &Subscription, input: Input, now: i64) -> Change {
        apply(sub, &input, &settings(), now)
            .expect("applies")
            .unwrap_or_else(|| panic!("{input:?} at {now} changes {sub:?}"))
    }

    fn unchanged(sub: &Subscription, input: Input, now: i64) {
        assert_eq!(apply(sub, &input, &settings(), now), Ok(None), "{input:?}");
    }

    fn failed(at: i64) -> Input {
        Input::PaymentFailed {
            at,
            reference: "in_1".into(),
        }
    }

    fn paid(at: i64) -> Input {
        Input::PaymentSucceeded {
            at,
            reference: "in_1".into(),
        }
    }

    fn past_due() -> Subscription {
        with(&active(), failed(T0), T0).subscription
    }

    fn suspended() -> Subscription {
        let sub = past_due();
        with(&sub, Input::Clock, T0 + 7 * DAY).subscription
    }

    fn canceled() -> Subscription {
        with(
            &active(),
            Input::Cancel {
                at_period_end: false,
            },
            T0,
        )
        .subscription
    }

    #[test]
    fn start_trials_for_the_price_s_trial_days_else_active() {
        let trial = start(7, Some(&price(14)), Some("cus_1".into()), T0);
        assert_eq!(trial.state, SubscriptionState::Trialing);
        assert_eq!(trial.trial_ends_at, Some(T0 + 14 * DAY));
        assert_eq!(trial.started_at, T0);
        assert_eq!(trial.external_customer_id.as_deref(), Some("cus_1"));
        assert!(!trial.setup_fee_invoiced);

        for sub in [
            start(7, Some(&price(0)), None, T0),
            start(7, None, None, T0),
        ] {
            assert_eq!(sub.state, SubscriptionState::Active);
            assert_eq!(sub.trial_ends_at, None);
        }
    }

    #[test]
    fn the_trial_ends_on_the_clock_exactly_at_its_end() {
        let trial = start(7, Some(&price(14)), None, T0);
        let end = T0 + 14 * DAY;
        unchanged(&trial, Input::Clock, end - 1);
        let c = with(&trial, Input::Clock, end);
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::Trialing,
                SubscriptionState::Active,
                "trial_ended"
            )
        );
        assert_eq!(c.subscription.updated_at, end);
        unchanged(&c.subscription, Input::Clock, end);
    }

    #[test]
    fn a_failed_payment_starts_the_grace_period_once() {
        let c = with(&active(), failed(T0 - 3600), T0);
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::Active,
                SubscriptionState::PastDue,
                "payment_failed"
            )
        );
        assert_eq!(c.subscription.past_due_since, Some(T0 - 3600));
        assert_eq!(c.subscription.suspend_at, Some(T0 - 3600 + 7 * DAY));
        // A second failure keeps the first grace period.
        unchanged(&c.subscription, failed(T0 + DAY), T0 + DAY);

        let trial = start(7, Some(&price(14)), None, T0);
        assert_eq!(with(&trial, failed(T0), T0).to, SubscriptionState::PastDue);
        unchanged(&suspended(), failed(T0), T0 + 8 * DAY);
        unchanged(&canceled(), failed(T0), T0);
    }

    #[test]
    fn grace_expires_exactly_at_suspend_at() {
        let sub = past_due();
        let at = T0 + 7 * DAY;
        unchanged(&sub, Input::Clock, at - 1);
        let c = with(&sub, Input::Clock, at);
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::PastDue,
                SubscriptionState::Suspended,
                "grace_expired"
            )
        );
        assert_eq!(c.subscription.suspended_at, Some(at));
        assert_eq!(
            c.subscription.suspension_reason,
            Some(SuspensionReason::NonPayment)
        );
        unchanged(&c.subscription, Input::Clock, at);
        unchanged(&c.subscription, Input::Clock, at + 100 * DAY);
    }

    #[test]
    fn paying_resumes_past_due_and_suspended_but_not_canceled() {
        for sub in [past_due(), suspended()] {
            let c = with(&sub, paid(T0 + 9 * DAY), T0 + 9 * DAY);
            assert_eq!(
                (c.to, c.event),
                (SubscriptionState::Active, "payment_succeeded")
            );
            let s = &c.subscription;
            assert_eq!(
                (
                    s.past_due_since,
                    s.suspend_at,
                    s.suspended_at,
                    s.suspension_reason
                ),
                (None, None, None, None)
            );
            unchanged(s, paid(T0 + 9 * DAY), T0 + 9 * DAY);
        }
        unchanged(&active(), paid(T0), T0);
        unchanged(&start(7, Some(&price(14)), None, T0), paid(T0), T0);
        unchanged(&canceled(), paid(T0), T0);
    }

    #[test]
    fn cancel_at_period_end_schedules_for_the_first_second_of_next_month() {
        let c = with(
            &active(),
            Input::Cancel {
                at_period_end: true,
            },
            T0,
        );
        let dec_1 = 1_796_083_200; // 2026-12-01 00:00:00 UTC
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::Active,
                SubscriptionState::Active,
                "cancel_scheduled"
            )
        );
        assert_eq!(c.subscription.cancel_at, Some(dec_1));
        unchanged(
            &c.subscription,
            Input::Cancel {
                at_period_end: true,
            },
            T0 + 60,
        );
        unchanged(&c.subscription, Input::Clock, dec_1 - 1);

        assert_eq!(effective_at(&c, T0), T0);
        // The engine's tick comes a little after midnight.
        let done = with(&c.subscription, Input::Clock, dec_1 + 30);
        assert_eq!(effective_at(&done, dec_1 + 30), dec_1);
        assert_eq!(
            (done.to, done.event),
            (SubscriptionState::Canceled, "canceled")
        );
        let s = &done.subscription;
        assert_eq!(s.canceled_at, Some(dec_1));
        assert_eq!(s.cancel_at, Some(dec_1));
        assert_eq!(s.suspension_reason, Some(SuspensionReason::Canceled));
        assert_eq!(s.delete_at, Some(dec_1 + 30 + 30 * DAY));
        unchanged(s, Input::Clock, dec_1 + 30);
    }

    #[test]
    fn cancel_now_cancels_and_a_second_cancel_is_refused() {
        let c = with(
            &past_due(),
            Input::Cancel {
                at_period_end: false,
            },
            T0 + DAY,
        );
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::PastDue,
                SubscriptionState::Canceled,
                "canceled"
            )
        );
        assert_eq!(c.subscription.canceled_at, Some(T0 + DAY));
        assert_eq!(effective_at(&c, T0 + DAY), T0 + DAY);
        assert_eq!(c.subscription.suspended_at, Some(T0 + DAY));
        assert_eq!(c.subscription.delete_at, Some(T0 + 31 * DAY));
        for at_period_end in [true, false] {
            let refused = apply(
                &c.subscription,
                &Input::Cancel { at_period_end },
                &settings(),
                T0,
            );
            assert_eq!(
                refused.map_err(|e| e.to_string()),
                Err("the subscription is canceled: it is already canceled".into())
            );
        }
        // A suspended client keeps the moment it was suspended.
        let s = suspended();
        let c = with(
            &s,
            Input::Cancel {
                at_period_end: false,
            },
            T0 + 9 * DAY,
        );
        assert_eq!(c.subscription.suspended_at, s.suspended_at);
        assert_eq!(
            c.subscription.suspension_reason,
            Some(SuspensionReason::Canceled)
        );
    }

    #[test]
    fn retention_end_changes_nothing_until_the_engine_reports_the_deletion() {
        let sub = canceled();
        let delete_at = T0 + 30 * DAY;
        unchanged(&sub, Input::Clock, delete_at + DAY);
        let c = with(&sub, Input::Deleted, delete_at + 60);
        assert_eq!((c.from, c.to, c.event), (sub.state, sub.state, "deleted"));
        assert_eq!(c.subscription.deleted_at, Some(delete_at + 60));
        unchanged(&c.subscription, Input::Deleted, delete_at + 120);
        assert_eq!(
            apply(&active(), &Input::Deleted, &settings(), T0),
            Err(Refused::NotNow(
                SubscriptionState::Active,
                "only a canceled subscription's Assistant is deleted"
            ))
        );
    }

    #[test]
    fn reactivate_unschedules_or_brings_back_until_deleted() {
        let scheduled = with(
            &active(),
            Input::Cancel {
                at_period_end: true,
            },
            T0,
        )
        .subscription;
        let c = with(&scheduled, Input::Reactivate, T0 + 60);
        assert_eq!(
            (c.to, c.event),
            (SubscriptionState::Active, "cancel_unscheduled")
        );
        assert_eq!(c.subscription.cancel_at, None);
        unchanged(&c.subscription, Input::Reactivate, T0 + 60);

        let c = with(&canceled(), Input::Reactivate, T0 + DAY);
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::Canceled,
                SubscriptionState::Active,
                "reactivated"
            )
        );
        let s = &c.subscription;
        assert_eq!(
            (
                s.cancel_at,
                s.canceled_at,
                s.delete_at,
                s.suspended_at,
                s.suspension_reason
            ),
            (None, None, None, None, None)
        );
        assert_eq!(desired_cluster(s), ClusterIntent::Serve);

        let deleted = with(&canceled(), Input::Deleted, T0 + 31 * DAY).subscription;
        assert_eq!(
            apply(&deleted, &Input::Reactivate, &settings(), T0 + 32 * DAY)
                .map_err(|e| e.to_string()),
            Err("the subscription is canceled: the Assistant was deleted".into())
        );
    }

    #[test]
    fn several_due_transitions_apply_in_time_order_in_one_call() {
        // Trial ends on the 24th, cancellation scheduled for Dec 1: the console was down
        // until Dec 3.
        let trial = start(7, Some(&price(14)), None, T0);
        let scheduled = with(
            &trial,
            Input::Cancel {
                at_period_end: true,
            },
            T0,
        )
        .subscription;
        let dec_3 = 1_796_256_000;
        let steps = clock_steps(&scheduled, &settings(), dec_3);
        let names: Vec<_> = steps.iter().map(|s| (s.from, s.to, s.event)).collect();
        assert_eq!(
            names,
            [
                (
                    SubscriptionState::Trialing,
                    SubscriptionState::Active,
                    "trial_ended"
                ),
                (
                    SubscriptionState::Active,
                    SubscriptionState::Canceled,
                    "canceled"
                ),
            ]
        );
        let c = with(&scheduled, Input::Clock, dec_3);
        assert_eq!(
            (c.from, c.to, c.event),
            (
                SubscriptionState::Trialing,
                SubscriptionState::Canceled,
                "canceled"
            )
        );
        assert_eq!(c.subscription, steps[1].subscription);
        // It took effect at the period end (no day of December is billed); retention
        // counts from when it was applied: a late engine never shortens it.
        let dec_1 = 1_796_083_200;
        assert_eq!(c.subscription.canceled_at, Some(dec_1));
        assert_eq!(effective_at(&c, dec_3), dec_1);
        assert_eq!(c.subscription.delete_at, Some(dec_3 + 30 * DAY));
        unchanged(&c.subscription, Input::Clock, dec_3);

        // Past due, grace ends on the 17th, cancellation Dec 1: suspended, then canceled.
        let owed = with(&scheduled, failed(T0), T0).subscription;
        let steps = clock_steps(&owed, &settings(), dec_3);
        let names: Vec<_> = steps.iter().map(|s| s.event).collect();
        assert_eq!(names, ["grace_expired", "canceled"]);
        assert_eq!(
            steps[1].subscription.suspension_reason,
            Some(SuspensionReason::Canceled)
        );
        assert!(clock_steps(&active(), &settings(), dec_3).is_empty());
    }

    #[test]
    fn the_provider_status_maps_onto_the_same_transitions() {
        let status = |status, cancel_at| Input::ProviderStatus {
            status,
            cancel_at,
            cancel_at_changed: true,
        };
        // Active/trialing resumes a client held for non-payment.
        for sub in [past_due(), suspended()] {
            let c = with(&sub, status(ProviderStatus::Active, None), T0 + 8 * DAY);
            assert_eq!(
                (c.to, c.event),
                (SubscriptionState::Active, "payment_succeeded")
            );
            let c = with(&sub, status(ProviderStatus::Trialing, None), T0 + 8 * DAY);
            assert_eq!(c.to, SubscriptionState::Active);
        }
        let trial = start(7, Some(&price(14)), None, T0);
        let c = with(&trial, status(ProviderStatus::Active, None), T0 + DAY);
        assert_eq!((c.to, c.event), (SubscriptionState::Active, "trial_ended"));
        unchanged(&trial, status(ProviderStatus::Trialing, None), T0 + DAY);
        unchanged(&active(), status(ProviderStatus::Active, None), T0);
        unchanged(&canceled(), status(ProviderStatus::Active, None), T0);

        // Past due: like a failed payment now.
        let c = with(&active(), status(ProviderStatus::PastDue, None), T0 + DAY);
        assert_eq!(
            (c.to, c.event),
            (SubscriptionState::PastDue, "payment_failed")
        );
        assert_eq!(c.subscription.suspend_at, Some(T0 + 8 * DAY));
        unchanged(
            &c.subscription,
            status(ProviderStatus::PastDue, None),
            T0 + 2 * DAY,
        );

        // Canceled: now.
        let c = with(&active(), status(ProviderStatus::Canceled, None), T0 + DAY);
        assert_eq!((c.to, c.event), (SubscriptionState::Canceled, "canceled"));
        assert_eq!(c.subscription.canceled_at, Some(T0 + DAY));
        unchanged(
            &c.subscription,
            status(ProviderStatus::Canceled, None),
            T0 + DAY,
        );

        // A cancellation the provider schedules, then withdraws.
        let later = T0 + 20 * DAY;
        let c = with(&active(), status(ProviderStatus::Active, Some(later)), T0);
        assert_eq!(
            (c.to, c.event),
            (SubscriptionState::Active, "cancel_scheduled")
        );
        assert_eq!(c.subscription.cancel_at, Some(later));
        unchanged(
            &c.subscription,
            status(ProviderStatus::Active, Some(later)),
            T0,
        );
        let c = with(
            &c.subscription,
            status(ProviderStatus::Active, None),
            T0 + DAY,
        );
        assert_eq!(
            (c.event, c.subscription.cancel_at),
            ("cancel_unscheduled", None)
        );

        // Both at once: named after the state change, the schedule kept.
        let c = with(
            &past_due(),
            status(ProviderStatus::Active, Some(later)),
            T0 + DAY,
        );
        assert_eq!(c.event, "payment_succeeded");
        assert_eq!(c.subscription.cancel_at, Some(later));
    }

    #[test]
    fn a_status_event_that_did_not_touch_the_schedule_keeps_the_consoles() {
        let later = T0 + 20 * DAY;
        let mut scheduled = active();
        scheduled.cancel_at = Some(later);
        let untouched = |status| Input::ProviderStatus {
            status,
            cancel_at: None,
            cancel_at_changed: false,
        };
        unchanged(&scheduled, untouched(ProviderStatus::Active), T0 + DAY);
        // A resume by status keeps it too.
        let mut held = past_due();
        held.cancel_at = Some(later);
        let c = with(&held, untouched(ProviderStatus::Active), T0 + DAY);
        assert_eq!(c.event, "payment_succeeded");
        assert_eq!(c.subscription.cancel_at, Some(later));
        // Deleted still cancels.
        let c = with(&scheduled, untouched(ProviderStatus::Canceled), T0 + DAY);
        assert_eq!(c.to, SubscriptionState::Canceled);
        // An input stored before the field existed applied its `cancel_at`.
        let old: Input = serde_json::from_str(
            r#"{"input":"provider_status","status":"Active","cancel_at":null}"#,
        )
        .unwrap();
        assert_eq!(
            old,
            Input::ProviderStatus {
                status: ProviderStatus::Active,
                cancel_at: None,
                cancel_at_changed: true
            }
        );
    }

    #[test]
    fn desired_cluster_follows_the_state_and_retention() {
        assert_eq!(desired_cluster(&active()), ClusterIntent::Serve);
        assert_eq!(desired_cluster(&past_due()), ClusterIntent::Serve);
        let trial = start(7, Some(&price(14)), None, T0);
        assert_eq!(desired_cluster(&trial), ClusterIntent::Serve);
        assert_eq!(
            desired_cluster(&suspended()),
            ClusterIntent::Suspend(SuspensionReason::NonPayment)
        );
        let sub = canceled();
        let delete_at = T0 + 30 * DAY;
        assert_eq!(
            desired_cluster(&sub),
            ClusterIntent::Suspend(SuspensionReason::Canceled)
        );
        assert_eq!(
            desired_cluster_at(&sub, delete_at - 1),
            ClusterIntent::Suspend(SuspensionReason::Canceled)
        );
        assert_eq!(desired_cluster_at(&sub, delete_at), ClusterIntent::Delete);
        assert_eq!(
            desired_cluster(&sub),
            ClusterIntent::Suspend(SuspensionReason::Canceled)
        );
        let gone = with(&sub, Input::Deleted, delete_at).subscription;
        assert_eq!(desired_cluster(&gone), ClusterIntent::Gone);
        assert_eq!(
            desired_cluster_at(&gone, delete_at + DAY),
            ClusterIntent::Gone
        );
        assert_eq!(
            desired_cluster_at(&active(), T0 + 365 * DAY),
            ClusterIntent::Serve
        );
    }

    #[test]
    fn upcoming_is_the_soonest_clock_transition() {
        assert_eq!(upcoming(&active(), &settings()), None);
        assert_eq!(upcoming(&suspended(), &settings()), None);

        let trial = start(7, Some(&price(14)), None, T0);
        let u = upcoming(&trial, &settings()).expect("trial end");
        assert_eq!(
            (u.client_id, u.at, u.event),
            (7, T0 + 14 * DAY, "trial_ends")
        );
        assert_eq!(u.description, "trial ends");

        let u = upcoming(&past_due(), &settings()).expect("suspension");
        assert_eq!((u.at, u.event), (T0 + 7 * DAY, "suspend"));
        assert_eq!(
            u.description,
            "will be suspended for non-payment (grace ends)"
        );

        // A cancellation sooner than the grace end comes first.
        let dec_1 = 1_796_083_200;
        let mut owed = past_due();
        owed.cancel_at = Some(dec_1);
        assert_eq!(
            upcoming(&owed, &settings()).map(|u| u.event),
            Some("suspend")
        );
        owed.suspend_at = Some(dec_1 + 1);
        let u = upcoming(&owed, &settings()).expect("cancel");
        assert_eq!((u.at, u.event), (dec_1, "cancel"));
        assert!(
            u.description.starts_with("subscription ends"),
            "{}",
            u.description
        );

        let u = upcoming(&canceled(), &settings()).expect("deletion");
        assert_eq!((u.at, u.event), (T0 + 30 * DAY, "delete"));
        assert_eq!(
            u.description,
            "will be deleted (retention ends), volume Retain (kept)"
        );
        let erase = BillingSettings {
            canceled_volume: VolumeOnCancel::Delete,
            ..settings()
        };
        assert!(
            upcoming(&canceled(), &erase)
                .expect("deletion")
                .description
                .ends_with("volume Delete (erased)")
        );
        let gone = with(&canceled(), Input::Deleted, T0 + 30 * DAY).subscription;
        assert_eq!(upcoming(&gone, &settings()), None);
    }

    #[test]
    fn period_end_is_the_next_month_s_first_second_in_utc() {
        let day = |s: &str| day_start(s).expect("date");
        assert_eq!(period_end(T0), day("2026-12-01"));
        assert_eq!(period_end(day("2026-12-31") + DAY - 1), day("2027-01-01"));
        assert_eq!(period_end(day("2027-01-01")), day("2027-02-01"));
        assert_eq!(period_end(day("2028-02-29")), day("2028-03-01"));
        assert_eq!(period_end(day("1969-12-31")), day("1970-01-01"));
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in (-700_000..2_900_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(
                day_of(days * DAY),
                format!("{y:04}-{m:02}-{d:02}"),
                "{days}"
            );
        }
    }
}
