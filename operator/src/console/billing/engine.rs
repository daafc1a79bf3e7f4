//! The billing engine: every interval it applies the transitions that are due (trial end,
//! grace end, cancellation, retention end; an unpaid invoice past due for a client without
//! a payment provider), records what each subscribed client has (plan, suspension) on the
//! timeline, and keeps each Assistant's suspension in line with its subscription, writing
//! only when they differ (level-based, like the operator: a lost write is redone next
//! tick, an idle fleet costs no writes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::model::*;
use super::state;
use crate::api::{Assistant, OnDelete, SUSPENDED_REASON_ANNOTATION};
use crate::console::Console;
use crate::console::cluster::ClusterError;
use crate::console::db::{ClientFilter, ClientRow};
use crate::console::service::{self, ActionError, billing};

/// The audit actor of everything the engine does.
pub const ACTOR: &str = "billing";

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub transitions: usize,
    pub cluster_writes: usize,
    pub timeline_points: usize,
    /// Per-client problems (the pass goes on with the others).
    pub errors: Vec<String>,
}

impl TickReport {
    fn is_idle(&self) -> bool {
        self.transitions == 0 && self.cluster_writes == 0 && self.timeline_points == 0
    }
}

/// The patch that brings an Assistant in line with a `Serve` or `Suspend` intent.
#[derive(Debug, Clone, PartialEq)]
enum ClusterAction {
    Suspend(SuspensionReason, Value),
    /// Lift a suspension billing made.
    Resume(Value),
}

/// The reason annotation billing left on an Assistant, as written (an unknown value is
/// still billing's: it is replaced or removed like a known one).
fn reason_annotation(a: &Assistant) -> Option<&str> {
    a.metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(SUSPENDED_REASON_ANNOTATION))
        .map(String::as_str)
}

/// The write that brings `a` in line with `intent`, pure; `None`: it matches already, or
/// billing may not touch it, or the intent is not a patch (`Delete` is
/// [`delete_assistant`], `Gone` is nothing). An Assistant suspended without
/// the reason annotation was suspended by an admin: billing neither takes it over (paying
/// would then lift it) nor resumes it.
fn action_for(a: &Assistant, intent: ClusterIntent) -> Option<ClusterAction> {
    let annotation = reason_annotation(a);
    match intent {
        ClusterIntent::Suspend(reason) => {
            let done = a.spec.suspended && annotation == Some(reason.as_str());
            let by_admin = a.spec.suspended && annotation.is_none();
            (!done && !by_admin).then(|| {
                ClusterAction::Suspend(
                    reason,
                    json!({
                        "metadata": {"annotations": {SUSPENDED_REASON_ANNOTATION: reason.as_str()}},
                        "spec": {"suspended": true},
                    }),
                )
            })
        }
        ClusterIntent::Serve => annotation.is_some().then(|| {
            ClusterAction::Resume(json!({
                "metadata": {"annotations": {SUSPENDED_REASON_ANNOTATION: null}},
                "spec": {"suspended": null},
            }))
        }),
        ClusterIntent::Delete | ClusterIntent::Gone => None,
    }
}

fn target(c: &ClientRow) -> String {
    format!("{}/{}", c.namespace, c.assistant_name)
}

fn on_delete_of(v: VolumeOnCancel) -> OnDelete {
    match v {
        VolumeOnCancel::Retain => OnDelete::Retain,
        VolumeOnCancel::Delete => OnDelete::Delete,
    }
}

/// Brings one client's Assistant (`current`: as seen now, `None` when it is gone) in line
/// with `sub`; returns the Assistant afterwards (`None`: gone) and how many writes it took.
async fn enforce(
    ctx: &Console,
    client: &ClientRow,
    sub: &Subscription,
    settings: &BillingSettings,
    current: Option<Assistant>,
    now: i64,
) -> Result<(Option<Assistant>, usize), ActionError> {
    let intent = state::desired_cluster_at(sub, now);
    if deletion_due(client, sub, now) {
        let Some(writes) = delete_assistant(ctx, client, settings, current.as_ref(), now).await?
        else {
            // Not claimed (reactivated meanwhile): the Assistant stays.
            return Ok((current, 0));
        };
        return Ok((None, writes));
    }
    let Some(a) = current else {
        return Ok((None, 0));
    };
    let Some(action) = action_for(&a, intent) else {
        return Ok((Some(a), 0));
    };
    // `sub` may be stale (the pass read every subscription first; a payment may have
    // landed since): the write is made only if a fresh read still wants it.
    let fresh = ctx.db.subscription(client.id).await?;
    if fresh.as_ref().map(|f| state::desired_cluster_at(f, now)) != Some(intent) {
        tracing::info!(
            client = client.id,
            "Assistant left as it is: the subscription changed since it was read"
        );
        return Ok((Some(a), 0));
    }
    let was_reason = reason_annotation(&a).map(str::to_string);
    let before = json!({"suspended": a.spec.suspended, "reason": was_reason});
    let (patch, action_name, after) = match action {
        ClusterAction::Suspend(reason, patch) => (
            patch,
            "billing.suspend",
            json!({"suspended": true, "reason": reason.as_str(), "why": reason.describe()}),
        ),
        ClusterAction::Resume(patch) => (
            patch,
            "billing.resume",
            json!({"suspended": false, "reason": null, "why": format!("subscription {}", sub.state)}),
        ),
    };
    let patched = ctx
        .cluster
        .patch(&client.namespace, &client.assistant_name, patch)
        .await?;
    ctx.db
        .audit(
            now,
            ACTOR,
            action_name,
            Some(client.id),
            &target(client),
            Some(&before.to_string()),
            Some(&after.to_string()),
        )
        .await?;
    tracing::info!(client = client.id, assistant = %target(client), action = action_name, "billing changed the Assistant");
    Ok((Some(patched), 1))
}

/// Whether `client`'s Assistant is to be deleted now: retention is over, or the deletion
/// was claimed (`deleted_at` set) but the client row is still live (the cluster delete
/// failed: retried every pass until it succeeds).
fn deletion_due(client: &ClientRow, sub: &Subscription, now: i64) -> bool {
    client.deleted_at.is_none()
        && (state::desired_cluster_at(sub, now) == ClusterIntent::Delete
            || (sub.state == SubscriptionState::Canceled && sub.deleted_at.is_some()))
}

/// The end of retention: like `service::delete_client`, as actor `billing` with the
/// volume policy of the settings. The deletion is claimed first: `Deleted` is applied
/// (compare-and-set) on a fresh read that must still be canceled with retention over, so
/// a client reactivated since `sub` was read is never deleted (`Ok(None)`: not claimed).
/// Only then is the Assistant deleted and the client row marked deleted; if that fails,
/// the next pass retries it ([`deletion_due`]).
async fn delete_assistant(
    ctx: &Console,
    client: &ClientRow,
    settings: &BillingSettings,
    current: Option<&Assistant>,
    now: i64,
) -> Result<Option<usize>, ActionError> {
    let Some(fresh) = ctx.db.subscription(client.id).await? else {
        return Ok(None);
    };
    if fresh.deleted_at.is_none() {
        if state::desired_cluster_at(&fresh, now) != ClusterIntent::Delete {
            tracing::info!(client = client.id, state = %fresh.state, "retention end not claimed: the subscription changed");
            return Ok(None);
        }
        match billing::apply(ctx, ACTOR, client.id, &Input::Deleted, now).await {
            Ok(_) => {}
            // Reactivated between the read and the claim.
            Err(ActionError::Conflict(why)) => {
                tracing::info!(client = client.id, %why, "retention end not claimed");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let claimed = ctx.db.subscription(client.id).await?;
        if !claimed
            .is_some_and(|s| s.state == SubscriptionState::Canceled && s.deleted_at.is_some())
        {
            return Ok(None);
        }
    } else if fresh.state != SubscriptionState::Canceled {
        return Ok(None);
    }
    let volume = on_delete_of(settings.canceled_volume);
    let mut writes = 0;
    let mut plan = None;
    if let Some(a) = current {
        plan = Some(service::plan_of(a, &ctx.config.default_plan));
        if a.storage().on_delete != volume {
            ctx.cluster
                .patch(
                    &client.namespace,
                    &client.assistant_name,
                    json!({"spec": {"storage": {"onDelete": format!("{volume:?}")}}}),
                )
                .await?;
            writes += 1;
        }
        match ctx
            .cluster
            .delete(&client.namespace, &client.assistant_name)
            .await
        {
            Ok(()) => writes += 1,
            Err(ClusterError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.db.mark_client_deleted(client.id, now).await?;
    // `billing.delete` is the cluster action; `apply(Deleted)` audited the state's
    // `billing.deleted` itself.
    ctx.db
        .audit(
            now,
            ACTOR,
            "billing.delete",
            Some(client.id),
            &target(client),
            Some(&json!({"name": client.name, "plan": plan, "retention_days": settings.retention_days}).to_string()),
            Some(&json!({"deleted": true, "volume": format!("{volume:?}"), "had_assistant": current.is_some()}).to_string()),
        )
        .await?;
    tracing::info!(client = client.id, assistant = %target(client), volume = ?volume, "billing deleted the Assistant at the end of retention");
    Ok(Some(writes))
}

/// A client row an admin deleted never has the cluster touched on its behalf: its
/// namespace/name may already belong to a new client (live rows are unique per
/// namespace/name, deleted ones are not), so at retention end only its subscription
/// records the deletion. The rule for ownership is therefore: an Assistant is acted on
/// only for the one live client row with its namespace/name.
async fn retire_deleted_client(
    ctx: &Console,
    client: &ClientRow,
    sub: &Subscription,
    now: i64,
) -> Result<bool, ActionError> {
    if state::desired_cluster_at(sub, now) != ClusterIntent::Delete {
        return Ok(false);
    }
    Ok(billing::apply(ctx, ACTOR, client.id, &Input::Deleted, now)
        .await?
        .is_some())
}

/// The timeline point `a` stands for under `sub`.
fn observed_point(ctx: &Console, a: &Assistant, sub: &Subscription, now: i64) -> TimelinePoint {
    TimelinePoint {
        at: now,
        plan: service::plan_of(a, &ctx.config.default_plan),
        suspended: a.spec.suspended,
        state: sub.state,
    }
}

fn same_point(a: &TimelinePoint, b: &TimelinePoint) -> bool {
    a.plan == b.plan && a.suspended == b.suspended && a.state == b.state
}

/// One pass at `now`.
pub async fn tick(ctx: &Console, now: i64) -> Result<TickReport, ActionError> {
    let mut report = TickReport::default();
    let settings = ctx.db.billing_settings().await?;

    // 1. Time-based transitions that are due.
    for sub in ctx.db.subscriptions().await? {
        if state::upcoming(&sub, &settings).is_some_and(|u| u.at <= now) {
            match billing::apply(ctx, ACTOR, sub.client_id, &Input::Clock, now).await {
                Ok(Some(_)) => report.transitions += 1,
                Ok(None) => {}
                Err(e) => report
                    .errors
                    .push(format!("client {}: clock transition: {e}", sub.client_id)),
            }
        }
    }

    // 2. Our own invoices unpaid past due, for clients the provider does not bill.
    let subs: HashMap<i64, Subscription> = ctx
        .db
        .subscriptions()
        .await?
        .into_iter()
        .map(|s| (s.client_id, s))
        .collect();
    let mut failed = HashSet::new();
    // Oldest due first: the first one per client is the failure that counts.
    for inv in ctx.db.overdue_invoices(now.saturating_add(1)).await? {
        let Some(sub) = subs.get(&inv.client_id) else {
            continue;
        };
        let paying = matches!(
            sub.state,
            SubscriptionState::Trialing | SubscriptionState::Active
        );
        if sub.external_customer_id.is_some() || !paying || !failed.insert(inv.client_id) {
            continue;
        }
        let input = Input::PaymentFailed {
            at: inv.due_at,
            reference: inv.number.clone(),
        };
        match billing::apply(ctx, ACTOR, inv.client_id, &input, now).await {
            Ok(Some(_)) => report.transitions += 1,
            Ok(None) => {}
            Err(e) => report.errors.push(format!(
                "client {}: invoice {} past due: {e}",
                inv.client_id, inv.number
            )),
        }
    }

    // 2b. The mirror of 2: a client the provider does not bill, held for non-payment,
    // who owes nothing past due any more (paid, credited) is resumed, even if the resume
    // at mark-paid time failed. Same query as the service's, same bound as 2.
    for sub in subs.values() {
        let held = sub.state == SubscriptionState::PastDue
            || (sub.state == SubscriptionState::Suspended
                && sub.suspension_reason == Some(SuspensionReason::NonPayment));
        if sub.external_customer_id.is_some() || !held || failed.contains(&sub.client_id) {
            continue;
        }
        match ctx
            .db
            .client_owes_overdue(sub.client_id, now.saturating_add(1))
            .await
        {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                report
                    .errors
                    .push(format!("client {}: overdue check: {e}", sub.client_id));
                continue;
            }
        }
        let input = Input::PaymentSucceeded {
            at: now,
            reference: "nothing overdue".into(),
        };
        match billing::apply(ctx, ACTOR, sub.client_id, &input, now).await {
            Ok(Some(_)) => report.transitions += 1,
            Ok(None) => {}
            Err(e) => report
                .errors
                .push(format!("client {}: nothing overdue: {e}", sub.client_id)),
        }
    }

    // 3.–4. Observe every subscribed client's Assistant and bring it in line. Never on
    // stale state: without a current view of the cluster nothing is observed or changed.
    let assistants = match ctx.cluster.list().await {
        Ok(list) => list,
        Err(e) => {
            report.errors.push(format!(
                "cluster not observed, Assistants left as they are: {e}"
            ));
            return Ok(report);
        }
    };
    let by_key: HashMap<(&str, &str), &Arc<Assistant>> = assistants
        .iter()
        .map(|a| {
            (
                (
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default(),
                ),
                a,
            )
        })
        .collect();
    let subs = ctx.db.subscriptions().await?;
    let clients = all_clients(ctx).await?;
    let last = ctx.db.last_timeline_points().await?;
    let mut points = Vec::new();
    for sub in &subs {
        let Some(client) = clients.get(&sub.client_id) else {
            continue;
        };
        let intent = state::desired_cluster_at(sub, now);
        let cached = by_key
            .get(&(client.namespace.as_str(), client.assistant_name.as_str()))
            .map(|a| (***a).clone());
        // A client deleted by an admin keeps its subscription; at retention end only the
        // subscription records it (see `retire_deleted_client`).
        if client.deleted_at.is_some() {
            match retire_deleted_client(ctx, client, sub, now).await {
                Ok(true) => report.transitions += 1,
                Ok(false) => {}
                Err(e) => report
                    .errors
                    .push(format!("client {}: retention end: {e}", client.id)),
            }
            continue;
        }
        // The watch cache may lag a write of ours by a moment: before writing, read the
        // Assistant itself, so a lagging cache never causes a second write.
        let needs_write = deletion_due(client, sub, now)
            || cached
                .as_ref()
                .is_some_and(|a| action_for(a, intent).is_some());
        let current = if needs_write {
            match ctx
                .cluster
                .get(&client.namespace, &client.assistant_name)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    report
                        .errors
                        .push(format!("client {} ({}): {e}", client.id, target(client)));
                    continue;
                }
            }
        } else {
            cached
        };
        let after = match enforce(ctx, client, sub, &settings, current, now).await {
            Ok((after, writes)) => {
                report.cluster_writes += writes;
                after
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("client {} ({}): {e}", client.id, target(client)));
                continue;
            }
        };
        if let Some(a) = after {
            let point = observed_point(ctx, &a, sub, now);
            if !last
                .get(&sub.client_id)
                .is_some_and(|p| same_point(p, &point))
            {
                points.push((sub.client_id, point));
            }
        }
    }
    if !points.is_empty() {
        ctx.db.append_timeline_points(&points).await?;
        report.timeline_points = points.len();
    }
    Ok(report)
}

/// Every client row by id, deleted ones too (one query per pass, not one per client).
async fn all_clients(ctx: &Console) -> Result<HashMap<i64, ClientRow>, ActionError> {
    let filter = ClientFilter {
        include_deleted: true,
        ..Default::default()
    };
    let (rows, _) = ctx.db.list_clients(&filter, None).await?;
    Ok(rows.into_iter().map(|c| (c.id, c)).collect())
}

/// Brings one client's Assistant in line with its subscription now (after a webhook or an
/// admin action, so paying resumes at once rather than at the next tick).
pub async fn enforce_client(ctx: &Console, client_id: i64, now: i64) -> Result<(), ActionError> {
    let Some(sub) = ctx.db.subscription(client_id).await? else {
        return Ok(());
    };
    let Some(client) = ctx.db.client(client_id).await? else {
        return Err(ActionError::NotFound);
    };
    if client.deleted_at.is_some() {
        retire_deleted_client(ctx, &client, &sub, now).await?;
        return Ok(());
    }
    enforce_with(ctx, &client, &sub, now).await
}

/// [`enforce_client`] with `sub` as read by the caller (possibly stale: the engine's pass
/// reads every subscription first). Public for the tests that drive an interleaving.
#[doc(hidden)]
pub async fn enforce_with(
    ctx: &Console,
    client: &ClientRow,
    sub: &Subscription,
    now: i64,
) -> Result<(), ActionError> {
    let client_id = client.id;
    let settings = ctx.db.billing_settings().await?;
    let current = ctx
        .cluster
        .get(&client.namespace, &client.assistant_name)
        .await?;
    let (after, _) = enforce(ctx, client, sub, &settings, current, now).await?;
    if let Some(a) = after {
        let p = observed_point(ctx, &a, sub, now);
        ctx.db
            .record_observation(client_id, &p.plan, p.suspended, p.state, now)
            .await?;
    }
    Ok(())
}

/// Runs [`tick`] every `interval` until the console stops; errors are logged.
pub async fn run(ctx: Arc<Console>, interval: Duration) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        timer.tick().await;
        match tick(&ctx, service::now()).await {
            Ok(r) => {
                for e in &r.errors {
                    tracing::warn!(error = %e, "billing engine");
                }
                if !r.is_idle() {
                    tracing::info!(
                        transitions = r.transitions,
                        cluster_writes = r.cluster_writes,
                        timeline_points = r.timeline_points,
                        "billing engine pass"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "billing engine pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assistant(suspended: bool, reason: Option<&str>) -> Assistant {
        let mut a = Assistant::new("alice", Default::default());
        a.spec.suspended = suspended;
        if let Some(r) = reason {
            a.metadata.annotations = Some(
                [(SUSPENDED_REASON_ANNOTATION.to_string(), r.to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        a
    }

    const NON_PAYMENT: ClusterIntent = ClusterIntent::Suspend(SuspensionReason::NonPayment);

    #[test]
    fn suspends_a_serving_assistant_with_the_reason() {
        let Some(ClusterAction::Suspend(reason, patch)) =
            action_for(&assistant(false, None), NON_PAYMENT)
        else {
            panic!("expected a suspension");
        };
        assert_eq!(reason, SuspensionReason::NonPayment);
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {SUSPENDED_REASON_ANNOTATION: "non-payment"}},
                   "spec": {"suspended": true}})
        );
    }

    #[test]
    fn writes_nothing_when_the_assistant_matches() {
        assert_eq!(
            action_for(&assistant(true, Some("non-payment")), NON_PAYMENT),
            None
        );
        assert_eq!(
            action_for(&assistant(false, None), ClusterIntent::Serve),
            None
        );
        assert_eq!(
            action_for(&assistant(true, None), ClusterIntent::Gone),
            None
        );
    }

    #[test]
    fn never_takes_over_or_lifts_an_admins_suspension() {
        // Suspended by hand (no annotation): neither annotated (paying would lift it) nor
        // resumed.
        assert_eq!(action_for(&assistant(true, None), NON_PAYMENT), None);
        assert_eq!(
            action_for(&assistant(true, None), ClusterIntent::Serve),
            None
        );
    }

    #[test]
    fn lifts_only_its_own_suspension() {
        let Some(ClusterAction::Resume(patch)) =
            action_for(&assistant(true, Some("non-payment")), ClusterIntent::Serve)
        else {
            panic!("expected a resume");
        };
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {SUSPENDED_REASON_ANNOTATION: null}},
                   "spec": {"suspended": null}})
        );
    }

    #[test]
    fn a_changed_reason_is_rewritten() {
        let canceled = ClusterIntent::Suspend(SuspensionReason::Canceled);
        assert!(matches!(
            action_for(&assistant(true, Some("non-payment")), canceled),
            Some(ClusterAction::Suspend(SuspensionReason::Canceled, _))
        ));
    }
}
