//! Invoices computed from what happened, pure: days billed per plan and price (prorated by
//! day), trial days free, suspended days per the business's rule, the setup fee once.

use super::model::*;

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
pub fn draft_invoice(
    month: &str,
    timeline: &[TimelinePoint],
    prices: &[PlanPrice],
    settings: &BillingSettings,
    setup_fee_due: bool,
) -> Result<Option<DraftInvoice>, InvoiceProblem> {
    let _ = (month, timeline, prices, settings, setup_fee_due);
    todo!("issue 15: invoice::draft_invoice")
}

/// The price of `plan` effective on `day` (`YYYY-MM-DD`): the latest with
/// `effective_from <= day`.
pub fn price_on<'a>(prices: &'a [PlanPrice], plan: &str, day: &str) -> Option<&'a PlanPrice> {
    let _ = (prices, plan, day);
    todo!("issue 15: invoice::price_on")
}

/// `INV-000042`: the prefix and the sequence number, zero-padded to six digits.
pub fn document_number(prefix: &str, seq: i64) -> String {
    format!("{prefix}-{seq:06}")
}
