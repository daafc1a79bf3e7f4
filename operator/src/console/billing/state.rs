//! The subscription state machine, pure: `trialing → active → past_due → suspended`,
//! `canceled` (suspended at the end of the period, deleted after retention), and what it
//! means for the cluster.

use super::model::*;

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
    let _ = (client_id, price, external_customer_id, now);
    todo!("issue 15: state::start")
}

/// The subscription after `input` at `now`, or `None` when nothing changes (so applying
/// the same input twice, or `Clock` before anything is due, is a no-op).
pub fn apply(
    sub: &Subscription,
    input: &Input,
    settings: &BillingSettings,
    now: i64,
) -> Result<Option<Change>, Refused> {
    let _ = (sub, input, settings, now);
    todo!("issue 15: state::apply")
}

/// The next transition the clock will make, if any (for "needs attention").
pub fn upcoming(sub: &Subscription, settings: &BillingSettings) -> Option<Upcoming> {
    let _ = (sub, settings);
    todo!("issue 15: state::upcoming")
}

/// What the Assistant should have for this subscription.
pub fn desired_cluster(sub: &Subscription) -> ClusterIntent {
    let _ = sub;
    todo!("issue 15: state::desired_cluster")
}

/// First second of the month after the one `now` falls in (UTC): the end of the period
/// a cancellation waits for.
pub fn period_end(now: i64) -> i64 {
    let _ = now;
    todo!("issue 15: state::period_end")
}
