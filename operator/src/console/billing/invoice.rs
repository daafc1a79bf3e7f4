//! Invoices computed from what happened, pure: days billed per plan and price (prorated by
//! day), trial days free, suspended days per the business's rule, the setup fee once.

use super::model::*;
use super::state::{civil_from_days, days_from_civil};

const DAY: i64 = 86_400;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Why a client's invoice cannot be drafted (the run skips it and lists why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceProblem {
    #[error("no price for plan {plan:?} on {day}: add one in Billing → Prices")]
    NoPrice { plan: String, day: String },
    #[error(
        "plan {plan:?} changes currency within {month} ({from} → {to}): issue this month by hand"
    )]
    MixedCurrency {
        plan: String,
        month: String,
        from: String,
        to: String,
    },
    #[error("{0:?} is not a month: expected YYYY-MM")]
    BadMonth(String),
}

/// The invoice of `month` (`YYYY-MM`) for one client, from its timeline (every point, in
/// order; the last one before the month gives the state at its start), the price history
/// of every plan and the rules. `setup_fee_due`: the setup fee was never invoiced.
/// `Ok(None)` when nothing is billable (the whole month in trial, not subscribed, ...).
///
/// A day is billed when at some moment of it the client was served on paid terms
/// (`active` or `past_due` and not suspended), or was suspended (not canceled) and
/// `bill_suspended_days` is set. It is billed on the plan of the last such moment, at the
/// price effective that day, as `monthly × days / days_in_month` per run of consecutive
/// days with the same plan and price (rounded half up per line).
///
/// The setup fee is settled by the client's first invoice with a billed day, whatever its
/// amount: the fee of the plan the client started on (the timeline's first point), at the
/// price in force on that first billed day, as the first line when above zero. A month spent
/// wholly in trial issues no invoice, and the fee waits (a client who leaves during the
/// trial never pays it); a fee added to the price list later, or the fee of a plan the
/// client upgrades to, is never charged.
pub fn draft_invoice(
    month: &str,
    timeline: &[TimelinePoint],
    prices: &[PlanPrice],
    settings: &BillingSettings,
    setup_fee_due: bool,
) -> Result<Option<DraftInvoice>, InvoiceProblem> {
    let start_plan = timeline
        .iter()
        .min_by_key(|p| p.at)
        .map(|p| p.plan.as_str());
    draft_invoice_for(
        month,
        timeline,
        prices,
        settings,
        setup_fee_due.then_some(start_plan).flatten(),
    )
}

/// [`draft_invoice`] with the plan the client started on given (`Some` while the setup fee
/// is due; the timeline given may begin after the subscription's start).
pub fn draft_invoice_for(
    month: &str,
    timeline: &[TimelinePoint],
    prices: &[PlanPrice],
    settings: &BillingSettings,
    setup_fee_plan: Option<&str>,
) -> Result<Option<DraftInvoice>, InvoiceProblem> {
    let (year, month_no) =
        parse_month(month).ok_or_else(|| InvoiceProblem::BadMonth(month.to_string()))?;
    let first_day = days_from_civil(year, month_no, 1);
    let days_in_month = days_in_month(year, month_no);

    let mut points: Vec<&TimelinePoint> = timeline.iter().collect();
    points.sort_by_key(|p| p.at); // stable: equal times keep their recorded order

    // Day by day: the plan of the day's last billable moment, if any.
    let mut billed: Vec<(i64, &str)> = Vec::new();
    let mut next = 0;
    let mut current: Option<&TimelinePoint> = None;
    for day in first_day..first_day + days_in_month {
        let (start, end) = (day * DAY, (day + 1) * DAY);
        // The state at the day's first second: the last point at or before it.
        while next < points.len() && points[next].at <= start {
            current = Some(points[next]);
            next += 1;
        }
        let mut plan = current
            .filter(|p| billable(p, settings))
            .map(|p| p.plan.as_str());
        while next < points.len() && points[next].at < end {
            let p = points[next];
            if billable(p, settings) {
                plan = Some(p.plan.as_str());
            }
            current = Some(p);
            next += 1;
        }
        if let Some(plan) = plan {
            billed.push((day, plan));
        }
    }
    let Some(&(first_billed, _)) = billed.first() else {
        return Ok(None);
    };

    // Runs of consecutive days on one plan at one price.
    let mut runs: Vec<(&str, &PlanPrice, i64, i64)> = Vec::new(); // plan, price, first, last
    for &(day, plan) in &billed {
        let price = price_on(prices, plan, &date(day)).ok_or_else(|| InvoiceProblem::NoPrice {
            plan: plan.to_string(),
            day: date(day),
        })?;
        match runs.last_mut() {
            Some((p, pr, _, last)) if *p == plan && pr.id == price.id && *last + 1 == day => {
                *last = day;
            }
            _ => runs.push((plan, price, day, day)),
        }
    }

    let mut lines = Vec::new();
    let mut currencies: Vec<(&str, &str)> = Vec::new(); // plan, currency, per line
    let includes_setup_fee = setup_fee_plan.is_some();
    if let Some(first_plan) = setup_fee_plan {
        let date = date(first_billed);
        let price = price_on(prices, first_plan, &date).ok_or_else(|| InvoiceProblem::NoPrice {
            plan: first_plan.to_string(),
            day: date.clone(),
        })?;
        if price.setup_fee_cents > 0 {
            currencies.push((first_plan, &price.currency));
            lines.push(InvoiceLine {
                kind: LineKind::SetupFee,
                description: format!("Setup fee, plan {first_plan}"),
                plan: Some(first_plan.to_string()),
                from: String::new(),
                to: String::new(),
                days: 0,
                days_in_month,
                unit_cents: price.setup_fee_cents,
                amount_cents: price.setup_fee_cents,
            });
        }
    }
    for (plan, price, first, last) in runs {
        let days = last - first + 1;
        currencies.push((plan, &price.currency));
        lines.push(InvoiceLine {
            kind: LineKind::Plan,
            description: format!(
                "Plan {plan}, {} ({days} of {days_in_month} days)",
                day_range(first, last)
            ),
            plan: Some(plan.to_string()),
            from: date(first),
            to: date(last),
            days,
            days_in_month,
            unit_cents: price.monthly_cents,
            amount_cents: prorate(price.monthly_cents, days, days_in_month),
        });
    }

    let currency = currencies[0].1;
    if let Some((plan, other)) = currencies.iter().find(|(_, c)| *c != currency) {
        return Err(InvoiceProblem::MixedCurrency {
            plan: plan.to_string(),
            month: month.to_string(),
            from: currency.to_string(),
            to: other.to_string(),
        });
    }
    let total_cents = lines
        .iter()
        .fold(0i64, |sum, l| sum.saturating_add(l.amount_cents));
    Ok(Some(DraftInvoice {
        currency: currency.to_string(),
        lines,
        total_cents,
        includes_setup_fee,
    }))
}

/// Whether a moment with this point's state is billed: served on paid terms, or held
/// (suspended by non-payment or by request, not canceled) when suspended days are billed.
/// Trial and canceled moments never are.
fn billable(p: &TimelinePoint, settings: &BillingSettings) -> bool {
    use SubscriptionState::*;
    let held = p.suspended || p.state == Suspended;
    match p.state {
        Active | PastDue | Suspended => !held || settings.bill_suspended_days,
        Trialing | Canceled => false,
    }
}

/// `monthly × days / days_in_month`, rounded half up, in integers (a full month is exactly
/// the monthly price).
pub fn prorate(monthly_cents: i64, days: i64, days_in_month: i64) -> i64 {
    if days_in_month <= 0 {
        return 0;
    }
    let (monthly, days, dim) = (
        i128::from(monthly_cents),
        i128::from(days),
        i128::from(days_in_month),
    );
    let exact_twice = 2 * monthly * days;
    let rounded = if exact_twice >= 0 {
        (exact_twice + dim) / (2 * dim)
    } else {
        -((-exact_twice + dim) / (2 * dim))
    };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// `(year, month)` of `YYYY-MM`.
fn parse_month(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&m).then_some((y, m))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(ny, nm, 1) - days_from_civil(year, month, 1)
}

/// `YYYY-MM-DD` of a day number.
fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `1–14 Nov 2026`, or `5 Nov 2026` for one day (both days in one month).
fn day_range(first: i64, last: i64) -> String {
    let (y, m, d1) = civil_from_days(first);
    let (_, _, d2) = civil_from_days(last);
    let name = usize::try_from(m - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("?");
    if d1 == d2 {
        format!("{d1} {name} {y}")
    } else {
        format!("{d1}\u{2013}{d2} {name} {y}")
    }
}

/// The price of `plan` effective on `day` (`YYYY-MM-DD`): the latest with
/// `effective_from <= day`.
pub fn price_on<'a>(prices: &'a [PlanPrice], plan: &str, day: &str) -> Option<&'a PlanPrice> {
    // `YYYY-MM-DD` strings order like the dates.
    prices
        .iter()
        .filter(|p| p.plan == plan && p.effective_from.as_str() <= day)
        .max_by(|a, b| (&a.effective_from, a.id).cmp(&(&b.effective_from, b.id)))
}

/// `INV-000042`: the prefix and the sequence number, zero-padded to six digits.
pub fn document_number(prefix: &str, seq: i64) -> String {
    format!("{prefix}-{seq:06}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscriptionState::*;

    fn at(day: &str, hh: i64, mm: i64) -> i64 {
        day_start(day).expect("a date") + hh * 3600 + mm * 60
    }

    fn point(at: i64, plan: &str, suspended: bool, state: SubscriptionState) -> TimelinePoint {
        TimelinePoint {
            at,
            plan: plan.into(),
            suspended,
            state,
        }
    }

    fn price(id: i64, plan: &str, monthly: i64, from: &str) -> PlanPrice {
        PlanPrice {
            id,
            plan: plan.into(),
            currency: "EUR".into(),
            monthly_cents: monthly,
            setup_fee_cents: 0,
            trial_days: 0,
            effective_from: from.into(),
            created_by: "owner@example.com".into(),
            created_at: 0,
        }
    }

    /// small 20.00 EUR, large 50.00 EUR, since January.
    fn prices() -> Vec<PlanPrice> {
        vec![
            price(1, "small", 2000, "2026-01-01"),
            price(2, "large", 5000, "2026-01-01"),
        ]
    }

    fn not_billing_suspended() -> BillingSettings {
        BillingSettings::default()
    }

    fn billing_suspended() -> BillingSettings {
        BillingSettings {
            bill_suspended_days: true,
            ..BillingSettings::default()
        }
    }

    fn draft(month: &str, timeline: &[TimelinePoint], settings: &BillingSettings) -> DraftInvoice {
        draft_invoice(month, timeline, &prices(), settings, false)
            .expect("drafts")
            .expect("something billable")
    }

    /// (from, to, days, amount) of each line.
    fn lines(d: &DraftInvoice) -> Vec<(&str, &str, i64, i64)> {
        d.lines
            .iter()
            .map(|l| (l.from.as_str(), l.to.as_str(), l.days, l.amount_cents))
            .collect()
    }

    fn small_since_october() -> Vec<TimelinePoint> {
        vec![point(at("2026-10-05", 9, 0), "small", false, Active)]
    }

    #[test]
    fn a_full_month_on_one_price_is_exactly_the_monthly_price() {
        for (month, days, last) in [
            ("2026-11", 30, "2026-11-30"),
            ("2026-12", 31, "2026-12-31"),
            ("2027-02", 28, "2027-02-28"),
            ("2028-02", 29, "2028-02-29"),
        ] {
            let d = draft(month, &small_since_october(), &not_billing_suspended());
            assert_eq!(d.currency, "EUR");
            assert_eq!(d.total_cents, 2000, "{month}");
            assert_eq!(d.lines.len(), 1, "{month}");
            let l = &d.lines[0];
            assert_eq!((l.kind, l.plan.as_deref()), (LineKind::Plan, Some("small")));
            assert_eq!((l.to.as_str(), l.days, l.days_in_month), (last, days, days));
            assert_eq!(l.unit_cents, 2000);
            assert!(!d.includes_setup_fee);
        }
        let d = draft("2026-11", &small_since_october(), &not_billing_suspended());
        assert_eq!(
            d.lines[0].description,
            "Plan small, 1\u{2013}30 Nov 2026 (30 of 30 days)"
        );
    }

    #[test]
    fn an_upgrade_mid_month_bills_the_new_plan_from_the_day_it_happened() {
        let mut t = small_since_october();
        t.push(point(at("2026-11-11", 14, 0), "large", false, Active));
        let d = draft("2026-11", &t, &not_billing_suspended());
        assert_eq!(
            lines(&d),
            [
                ("2026-11-01", "2026-11-10", 10, 667),  // 2000 × 10/30 = 666.67
                ("2026-11-11", "2026-11-30", 20, 3333), // 5000 × 20/30 = 3333.33
            ]
        );
        assert_eq!(d.total_cents, 4000);
        assert_eq!(
            d.lines[1].description,
            "Plan large, 11\u{2013}30 Nov 2026 (20 of 30 days)"
        );
    }

    #[test]
    fn trial_days_are_free_and_the_day_the_trial_ends_is_billed() {
        let t = vec![
            point(at("2026-10-20", 10, 0), "small", false, Trialing),
            point(at("2026-11-03", 10, 0), "small", false, Active),
        ];
        let d = draft("2026-11", &t, &not_billing_suspended());
        assert_eq!(lines(&d), [("2026-11-03", "2026-11-30", 28, 1867)]);
        // The whole month in trial: nothing to invoice, even with suspended days billed.
        assert_eq!(
            draft_invoice("2026-10", &t, &prices(), &billing_suspended(), true),
            Ok(None)
        );
    }

    #[test]
    fn days_suspended_all_day_follow_the_business_rule() {
        // An admin suspends the client on the 10th at noon and resumes it on the 20th.
        let mut t = small_since_october();
        t.push(point(at("2026-11-10", 12, 0), "small", true, Active));
        t.push(point(at("2026-11-20", 8, 0), "small", false, Active));
        let d = draft("2026-11", &t, &not_billing_suspended());
        assert_eq!(
            lines(&d),
            [
                ("2026-11-01", "2026-11-10", 10, 667),
                ("2026-11-20", "2026-11-30", 11, 733), // 733.33
            ]
        );
        let d = draft("2026-11", &t, &billing_suspended());
        assert_eq!(lines(&d), [("2026-11-01", "2026-11-30", 30, 2000)]);
    }

    #[test]
    fn a_day_with_a_short_suspension_is_still_billed() {
        let mut t = small_since_october();
        t.push(point(at("2026-11-05", 10, 0), "small", true, Active));
        t.push(point(at("2026-11-05", 14, 0), "small", false, Active));
        // Suspended overnight: both days had service.
        t.push(point(at("2026-11-12", 22, 0), "small", true, Active));
        t.push(point(at("2026-11-13", 7, 0), "small", false, Active));
        let d = draft("2026-11", &t, &not_billing_suspended());
        assert_eq!(lines(&d), [("2026-11-01", "2026-11-30", 30, 2000)]);
    }

    #[test]
    fn a_price_change_mid_month_splits_the_line() {
        let mut p = prices();
        p.push(price(3, "small", 2400, "2026-11-16"));
        let d = draft_invoice(
            "2026-11",
            &small_since_october(),
            &p,
            &not_billing_suspended(),
            false,
        )
        .expect("drafts")
        .expect("billable");
        assert_eq!(
            lines(&d),
            [
                ("2026-11-01", "2026-11-15", 15, 1000),
                ("2026-11-16", "2026-11-30", 15, 1200),
            ]
        );
        assert_eq!((d.lines[0].unit_cents, d.lines[1].unit_cents), (2000, 2400));
    }

    #[test]
    fn nothing_is_billable_without_a_subscription_in_the_month() {
        let settings = billing_suspended();
        assert_eq!(
            draft_invoice("2026-11", &[], &prices(), &settings, true),
            Ok(None)
        );
        // The month before the subscription started.
        let t = vec![point(at("2026-12-03", 9, 0), "small", false, Active)];
        assert_eq!(
            draft_invoice("2026-11", &t, &prices(), &settings, true),
            Ok(None)
        );
        // Its first month: from the day it started.
        let d = draft("2026-12", &t, &not_billing_suspended());
        assert_eq!(lines(&d), [("2026-12-03", "2026-12-31", 29, 1871)]); // 1870.97
        assert_eq!(
            d.lines[0].description,
            "Plan small, 3\u{2013}31 Dec 2026 (29 of 31 days)"
        );
    }

    #[test]
    fn a_cancellation_ends_the_billed_days() {
        let mut t = small_since_october();
        t.push(point(at("2026-11-18", 15, 0), "small", true, Canceled));
        let d = draft("2026-11", &t, &billing_suspended());
        assert_eq!(lines(&d), [("2026-11-01", "2026-11-18", 18, 1200)]);
        assert_eq!(
            draft_invoice("2026-12", &t, &prices(), &billing_suspended(), false),
            Ok(None)
        );

        // At the period end: the whole month, and nothing of the next.
        let mut t = small_since_october();
        t.push(point(at("2026-12-01", 0, 0), "small", true, Canceled));
        let d = draft("2026-11", &t, &not_billing_suspended());
        assert_eq!(lines(&d), [("2026-11-01", "2026-11-30", 30, 2000)]);
        assert_eq!(
            draft_invoice("2026-12", &t, &prices(), &not_billing_suspended(), false),
            Ok(None)
        );
    }

    #[test]
    fn proration_rounds_half_up_per_line_in_integers() {
        assert_eq!(prorate(1000, 1, 30), 33); // 33.33
        assert_eq!(prorate(1000, 2, 30), 67); // 66.67
        assert_eq!(prorate(15, 1, 30), 1); // 0.5
        assert_eq!(prorate(14, 1, 30), 0); // 0.47
        assert_eq!(prorate(45, 1, 30), 2); // 1.5
        assert_eq!(prorate(2999, 31, 31), 2999);
        assert_eq!(prorate(0, 12, 30), 0);
        assert_eq!(prorate(999_999_999_999_900, 29, 29), 999_999_999_999_900);
        // One day of a one-single-day line: "5 Nov 2026".
        let t = vec![
            point(at("2026-11-05", 9, 0), "small", false, Active),
            point(at("2026-11-05", 18, 0), "small", false, Canceled),
        ];
        let d = draft("2026-11", &t, &not_billing_suspended());
        assert_eq!(lines(&d), [("2026-11-05", "2026-11-05", 1, 67)]);
        assert_eq!(
            d.lines[0].description,
            "Plan small, 5 Nov 2026 (1 of 30 days)"
        );
    }

    #[test]
    fn the_days_of_the_month_are_its_calendar_days() {
        // Subscribed on the 15th at noon: the 15th is billed.
        for (month, dim, amount) in [
            ("2027-02", 28, 1000), // 2000 × 14/28
            ("2028-02", 29, 1034), // 2000 × 15/29 = 1034.48
            ("2026-11", 30, 1067), // 2000 × 16/30 = 1066.67
            ("2026-12", 31, 1097), // 2000 × 17/31 = 1096.77
        ] {
            let t = vec![point(
                at(&format!("{month}-15"), 12, 0),
                "small",
                false,
                Active,
            )];
            let d = draft(month, &t, &not_billing_suspended());
            assert_eq!(d.lines.len(), 1);
            assert_eq!(
                (d.lines[0].days, d.lines[0].days_in_month, d.total_cents),
                (dim - 14, dim, amount),
                "{month}"
            );
        }
    }

    #[test]
    fn the_setup_fee_is_invoiced_once_with_the_first_billed_day() {
        let mut p = prices();
        p[0].setup_fee_cents = 4900;
        let t = vec![
            point(at("2026-10-20", 10, 0), "small", false, Trialing),
            point(at("2026-11-03", 10, 0), "small", false, Active),
        ];
        let s = not_billing_suspended();
        // The trial month: no invoice, the fee waits.
        assert_eq!(draft_invoice("2026-10", &t, &p, &s, true), Ok(None));
        let d = draft_invoice("2026-11", &t, &p, &s, true)
            .expect("drafts")
            .expect("billable");
        assert!(d.includes_setup_fee);
        let fee = &d.lines[0];
        assert_eq!(
            (fee.kind, fee.amount_cents, fee.unit_cents, fee.days),
            (LineKind::SetupFee, 4900, 4900, 0)
        );
        assert_eq!(fee.description, "Setup fee, plan small");
        assert_eq!((fee.from.as_str(), fee.to.as_str()), ("", ""));
        assert_eq!(d.total_cents, 4900 + 1867);
        // Already invoiced: not again.
        let d = draft_invoice("2026-11", &t, &p, &s, false)
            .expect("drafts")
            .expect("billable");
        assert!(!d.includes_setup_fee);
        assert_eq!(d.total_cents, 1867);
        // No fee on the plan: no line, but this first billed invoice settles the fee (a fee
        // added to the price later is never charged).
        let d = draft_invoice("2026-11", &t, &prices(), &s, true)
            .expect("drafts")
            .expect("billable");
        assert!(d.includes_setup_fee);
        assert_eq!(d.lines.len(), 1);
        // The fee is the plan the client started on: upgraded during the trial to a plan
        // with a fee, it pays the start plan's (none here).
        let mut p = prices();
        p[1].setup_fee_cents = 9900;
        let up = vec![
            point(at("2026-10-20", 10, 0), "small", false, Trialing),
            point(at("2026-10-25", 10, 0), "large", false, Trialing),
            point(at("2026-11-03", 10, 0), "large", false, Active),
        ];
        let d = draft_invoice("2026-11", &up, &p, &s, true)
            .expect("drafts")
            .expect("billable");
        assert!(d.includes_setup_fee);
        assert!(d.lines.iter().all(|l| l.kind != LineKind::SetupFee));
        // ... and the start plan's fee when it has one, even billed on another plan.
        let d = draft_invoice_for("2026-11", &up[2..], &p, &s, Some("small"))
            .expect("drafts")
            .expect("billable");
        assert_eq!(d.lines[0].kind, LineKind::Plan);
        let mut p = prices();
        p[0].setup_fee_cents = 1500;
        p[1].setup_fee_cents = 9900;
        let d = draft_invoice_for("2026-11", &up[2..], &p, &s, Some("small"))
            .expect("drafts")
            .expect("billable");
        assert_eq!(
            (d.lines[0].kind, d.lines[0].amount_cents),
            (LineKind::SetupFee, 1500)
        );
    }

    #[test]
    fn a_billed_day_without_a_price_is_a_problem() {
        let t = vec![point(at("2026-10-05", 9, 0), "standard", false, Active)];
        let err = draft_invoice("2026-11", &t, &prices(), &not_billing_suspended(), false);
        assert_eq!(
            err,
            Err(InvoiceProblem::NoPrice {
                plan: "standard".into(),
                day: "2026-11-01".into()
            })
        );
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("no price for plan \"standard\" on 2026-11-01: add one in Billing → Prices".into())
        );
        // A price that starts mid-month does not cover the days before it.
        let p = vec![price(1, "small", 2000, "2026-11-10")];
        assert_eq!(
            draft_invoice(
                "2026-11",
                &small_since_october(),
                &p,
                &not_billing_suspended(),
                false
            ),
            Err(InvoiceProblem::NoPrice {
                plan: "small".into(),
                day: "2026-11-01".into()
            })
        );
    }

    #[test]
    fn one_invoice_has_one_currency() {
        let mut p = prices();
        p[1].currency = "USD".into();
        let mut t = small_since_october();
        t.push(point(at("2026-11-11", 14, 0), "large", false, Active));
        assert_eq!(
            draft_invoice("2026-11", &t, &p, &not_billing_suspended(), false),
            Err(InvoiceProblem::MixedCurrency {
                plan: "large".into(),
                month: "2026-11".into(),
                from: "EUR".into(),
                to: "USD".into()
            })
        );
        // The same plan changing currency mid-month.
        let mut p = prices();
        p.push(PlanPrice {
            currency: "CHF".into(),
            ..price(3, "small", 2100, "2026-11-16")
        });
        assert!(matches!(
            draft_invoice(
                "2026-11",
                &small_since_october(),
                &p,
                &not_billing_suspended(),
                false
            ),
            Err(InvoiceProblem::MixedCurrency { .. })
        ));
    }

    #[test]
    fn a_month_is_yyyy_mm() {
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "Nov",
            "2026-11-01",
            "",
        ] {
            assert_eq!(
                draft_invoice(
                    bad,
                    &small_since_october(),
                    &prices(),
                    &not_billing_suspended(),
                    false
                ),
                Err(InvoiceProblem::BadMonth(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn price_on_is_the_latest_price_effective_that_day() {
        let mut p = prices();
        p.push(price(3, "small", 2400, "2026-11-16"));
        p.push(price(4, "small", 2600, "2027-01-01"));
        let on = |day| price_on(&p, "small", day).map(|x| x.monthly_cents);
        assert_eq!(on("2025-12-31"), None);
        assert_eq!(on("2026-01-01"), Some(2000));
        assert_eq!(on("2026-11-15"), Some(2000));
        assert_eq!(on("2026-11-16"), Some(2400));
        assert_eq!(on("2026-12-31"), Some(2400));
        assert_eq!(on("2027-06-01"), Some(2600));
        assert_eq!(price_on(&p, "medium", "2027-06-01"), None);
    }

    /// The worked month of docs/billing.md, with its exact figures: `small` (20.00 EUR)
    /// since October, upgraded to `large` (50.00 EUR) on 11 November; October's invoice,
    /// due on the 16th at 10:00, is paid late: past due on the 16th, suspended when the
    /// 7 grace days end (23rd, 10:00), resumed when paid on the 27th at 11:00. The 24th,
    /// 25th and 26th are suspended all day.
    #[test]
    fn worked_month_in_docs() {
        let t = vec![
            point(at("2026-10-01", 9, 0), "small", false, Active),
            point(at("2026-11-11", 14, 0), "large", false, Active),
            point(at("2026-11-16", 10, 0), "large", false, PastDue),
            point(at("2026-11-23", 10, 0), "large", false, Suspended),
            point(at("2026-11-23", 10, 1), "large", true, Suspended),
            point(at("2026-11-27", 11, 0), "large", true, Active),
            point(at("2026-11-27", 11, 1), "large", false, Active),
        ];
        let d = draft("2026-11", &t, &not_billing_suspended());
        let described: Vec<_> = d
            .lines
            .iter()
            .map(|l| (l.description.as_str(), l.amount_cents))
            .collect();
        assert_eq!(
            described,
            [
                ("Plan small, 1\u{2013}10 Nov 2026 (10 of 30 days)", 667),
                ("Plan large, 11\u{2013}23 Nov 2026 (13 of 30 days)", 2167),
                ("Plan large, 27\u{2013}30 Nov 2026 (4 of 30 days)", 667),
            ]
        );
        assert_eq!(format_money(d.total_cents, &d.currency), "35.01 EUR");

        let d = draft("2026-11", &t, &billing_suspended());
        assert_eq!(
            lines(&d),
            [
                ("2026-11-01", "2026-11-10", 10, 667),
                ("2026-11-11", "2026-11-30", 20, 3333),
            ]
        );
        assert_eq!(format_money(d.total_cents, &d.currency), "40.00 EUR");
    }
}
