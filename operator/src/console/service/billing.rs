//! Billing actions shared by the pages, the JSON API, the webhook and the engine; each
//! change writes an audit event (actor: the admin's e-mail, `billing` for the engine,
//! `stripe` for the webhook). Time is a parameter: tests drive the clock.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::clients::plan_of;
use super::{ActionError, FieldError, valid_month};
use crate::console::Console;
use crate::console::billing::model::*;
use crate::console::billing::store::{CreditRefused, NewDocument, is_unique_violation};
use crate::console::billing::{invoice, state};
use crate::console::cluster::ClusterError;
use crate::console::db::{Admin, ClientRow, DbError};
use crate::console::usage::csv_field;

const DAY: i64 = 86_400;
const MAX_SELLER: usize = 2000;
const MAX_REASON: usize = 500;
const MAX_CUSTOMER_ID: usize = 255;

fn field(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: name.into(),
        message: message.into(),
    }
}

fn valid_currency(c: &str) -> bool {
    is_iso_currency(c)
}

fn valid_prefix(p: &str) -> bool {
    (1..=10).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

fn money_hint(typed: &str, currency: &str) -> String {
    let example = match minor_per_unit(currency) {
        1 => "1200",
        1000 => "29.900",
        _ => "29.90",
    };
    if typed.trim().is_empty() {
        format!("an amount in {currency}, e.g. {example}")
    } else {
        format!(
            "{:?} is not an amount in {currency}: use e.g. {example}",
            typed.trim()
        )
    }
}

/// Decimal units without the currency (`12.34`, `-5.00`, `1200`): the CSV's money cells.
fn money_units(minor: i64, currency: &str) -> String {
    let s = format_money(minor, currency);
    s.strip_suffix(&format!(" {currency}"))
        .unwrap_or(&s)
        .to_string()
}

/// `[start, end)` of a `YYYY-MM` month (Unix seconds, UTC).
pub fn month_bounds(month: &str) -> Option<(i64, i64)> {
    if !valid_month(month) {
        return None;
    }
    let first: jiff::civil::Date = format!("{month}-01").parse().ok()?;
    let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
    let at = |d: jiff::civil::Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_second())
    };
    Some((at(first)?, at(next)?))
}

/// The version a changed subscription is stored with: `now`, but always after the one it
/// replaces (two changes in one second still fail a stale compare-and-set).
fn next_version(sub: &Subscription, now: i64) -> i64 {
    now.max(sub.updated_at + 1)
}

async fn live_client(ctx: &Console, id: i64) -> Result<ClientRow, ActionError> {
    match ctx.db.client(id).await? {
        Some(c) if c.deleted_at.is_none() => Ok(c),
        _ => Err(ActionError::NotFound),
    }
}

fn target(c: &ClientRow) -> String {
    format!("{}/{}", c.namespace, c.assistant_name)
}

fn clean_customer_id(c: Option<&str>) -> Result<Option<String>, ActionError> {
    let Some(c) = c.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if c.len() > MAX_CUSTOMER_ID || !c.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ActionError::invalid(
            "external_customer_id",
            format!(
                "the provider's customer id (cus_...): up to {MAX_CUSTOMER_ID} printable characters, no spaces"
            ),
        ));
    }
    Ok(Some(c.to_string()))
}

/// Refuses a customer id another live subscription has (409). A deleted subscription that
/// still holds it (stored before deletions released their customer id) gives it back.
async fn customer_free(ctx: &Console, customer: &str, client_id: i64) -> Result<(), ActionError> {
    for old in ctx.db.release_deleted_customer(customer).await? {
        tracing::info!(client = old, %customer, "billing: a deleted client's customer id released");
    }
    match ctx.db.subscription_by_customer(customer).await? {
        Some(other) if other.client_id != client_id => Err(ActionError::Conflict(format!(
            "customer id {customer} belongs to another client (#{})",
            other.client_id
        ))),
        _ => Ok(()),
    }
}

fn unique_conflict(e: DbError) -> ActionError {
    if is_unique_violation(&e) {
        ActionError::Conflict("that customer id belongs to another client".into())
    } else {
        e.into()
    }
}

#[allow(clippy::too_many_arguments)]
async fn audit_steps(
    ctx: &Console,
    actor: &str,
    client_id: i64,
    target: &str,
    first: &Subscription,
    input: &Input,
    steps: &[Change],
    now: i64,
) -> Result<(), ActionError> {
    let mut before = first;
    for step in steps {
        ctx.db
            .audit(
                now,
                actor,
                &format!("billing.{}", step.event),
                Some(client_id),
                target,
                Some(&json!(before).to_string()),
                Some(&json!({"subscription": step.subscription, "input": input}).to_string()),
            )
            .await?;
        before = &step.subscription;
    }
    Ok(())
}

fn already_paid(inv: &Invoice, at: i64) -> ActionError {
    ActionError::Conflict(format!(
        "{} was paid already on {} ({})",
        inv.number,
        day_of(at),
        inv.paid_via.as_deref().unwrap_or("console")
    ))
}

/// The price list: for every sizing plan of the operator config, its price today, the
/// scheduled ones and the history.
#[derive(Debug, Clone, Serialize)]
pub struct PriceList {
    pub plans: Vec<PlanPrices>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanPrices {
    pub plan: String,
    /// Effective today; `None`: clients on this plan cannot be invoiced yet.
    pub current: Option<PlanPrice>,
    /// Starting after today, soonest first.
    pub scheduled: Vec<PlanPrice>,
    /// Every price, newest first.
    pub history: Vec<PlanPrice>,
}

pub async fn price_list(ctx: &Console, now: i64) -> Result<PriceList, ActionError> {
    let today = day_of(now);
    let all = ctx.db.plan_prices().await?;
    let mut names: Vec<String> = ctx.config.plans.keys().cloned().collect();
    // A plan removed from the config keeps its price history visible.
    for p in &all {
        if !names.contains(&p.plan) {
            names.push(p.plan.clone());
        }
    }
    let plans = names
        .into_iter()
        .map(|plan| {
            let mine: Vec<&PlanPrice> = all.iter().filter(|p| p.plan == plan).collect();
            let current = mine
                .iter()
                .filter(|p| p.effective_from <= today)
                .max_by(|a, b| a.effective_from.cmp(&b.effective_from))
                .map(|p| (*p).clone());
            let mut scheduled: Vec<PlanPrice> = mine
                .iter()
                .filter(|p| p.effective_from > today)
                .map(|p| (*p).clone())
                .collect();
            scheduled.sort_by(|a, b| a.effective_from.cmp(&b.effective_from));
            let mut history: Vec<PlanPrice> = mine.into_iter().cloned().collect();
            history.sort_by(|a, b| b.effective_from.cmp(&a.effective_from));
            PlanPrices {
                plan,
                current,
                scheduled,
                history,
            }
        })
        .collect();
    Ok(PriceList { plans })
}

/// Adds a price from `effective_from` (today or later; an earlier date is refused: prices
/// never change retroactively). Replaces a price scheduled for the same day that has not
/// started yet.
pub async fn set_price(
    ctx: &Console,
    actor: &Admin,
    p: &NewPrice,
    now: i64,
) -> Result<PlanPrice, ActionError> {
    let today = day_of(now);
    let mut errs = Vec::new();
    let plan = p.plan.trim();
    if !ctx.config.plans.contains_key(plan) {
        let known: Vec<&str> = ctx.config.plans.keys().map(String::as_str).collect();
        errs.push(field(
            "plan",
            format!(
                "{plan:?} is not a plan of the operator config ({})",
                known.join(", ")
            ),
        ));
    }
    let currency = p.currency.trim().to_ascii_uppercase();
    if !valid_currency(&currency) {
        errs.push(field(
            "currency",
            "use the 3-letter ISO 4217 code, e.g. EUR",
        ));
    }
    let monthly = parse_money(&p.monthly, &currency);
    if monthly.is_none() {
        errs.push(field("monthly", money_hint(&p.monthly, &currency)));
    }
    let setup_fee = if p.setup_fee.trim().is_empty() {
        Some(0)
    } else {
        parse_money(&p.setup_fee, &currency)
    };
    if setup_fee.is_none() {
        errs.push(field("setup_fee", money_hint(&p.setup_fee, &currency)));
    }
    let trial_days = p.trial_days.unwrap_or(0);
    if !(0..=365).contains(&trial_days) {
        errs.push(field("trial_days", "between 0 and 365 days"));
    }
    let from = match p.effective_from.trim() {
        "" => today.clone(),
        d => d.to_string(),
    };
    if day_start(&from).is_none() {
        errs.push(field("effective_from", "a date as YYYY-MM-DD"));
    } else if from < today {
        errs.push(field(
            "effective_from",
            format!("{from} is in the past: prices never change retroactively (today is {today})"),
        ));
    }
    if !errs.is_empty() {
        return Err(ActionError::Invalid(errs));
    }
    let new = PlanPrice {
        id: 0,
        plan: plan.to_string(),
        currency,
        monthly_cents: monthly.unwrap_or_default(),
        setup_fee_cents: setup_fee.unwrap_or_default(),
        trial_days,
        effective_from: from,
        created_by: actor.email.clone(),
        created_at: now,
    };
    let before = ctx
        .db
        .plan_prices()
        .await?
        .into_iter()
        .find(|x| x.plan == new.plan && x.effective_from == new.effective_from);
    let saved = ctx.db.put_plan_price(&new, &today).await?.ok_or_else(|| {
        ActionError::Conflict(format!(
            "a price of {} already applies from {}: schedule the change from a later day",
            new.plan, new.effective_from
        ))
    })?;
    ctx.db
        .audit(
            now,
            &actor.email,
            "billing.price_set",
            None,
            &format!("plan/{}", saved.plan),
            before.map(|b| json!(b).to_string()).as_deref(),
            Some(&json!(saved).to_string()),
        )
        .await?;
    Ok(saved)
}

pub async fn settings(ctx: &Console) -> Result<BillingSettings, ActionError> {
    Ok(ctx.db.billing_settings().await?)
}

pub async fn update_settings(
    ctx: &Console,
    actor: &Admin,
    s: &BillingSettings,
    now: i64,
) -> Result<BillingSettings, ActionError> {
    let mut errs = Vec::new();
    for (name, v, max) in [
        ("grace_days", s.grace_days, 90),
        ("payment_terms_days", s.payment_terms_days, 120),
        ("retention_days", s.retention_days, 3650),
    ] {
        if !(0..=max).contains(&v) {
            errs.push(field(name, format!("between 0 and {max} days")));
        }
    }
    let invoice_prefix = s.invoice_prefix.trim().to_string();
    let credit_prefix = s.credit_note_prefix.trim().to_string();
    for (name, v) in [
        ("invoice_prefix", &invoice_prefix),
        ("credit_note_prefix", &credit_prefix),
    ] {
        if !valid_prefix(v) {
            errs.push(field(
                name,
                "1 to 10 characters: capital letters, digits and '-'",
            ));
        }
    }
    if valid_prefix(&invoice_prefix) && invoice_prefix == credit_prefix {
        errs.push(field(
            "credit_note_prefix",
            "credit notes need their own number series: use a prefix other than the invoices'",
        ));
    }
    if s.seller.chars().count() > MAX_SELLER {
        errs.push(field("seller", format!("at most {MAX_SELLER} characters")));
    }
    if !errs.is_empty() {
        return Err(ActionError::Invalid(errs));
    }
    let before = ctx.db.billing_settings().await?;
    let new = BillingSettings {
        invoice_prefix,
        credit_note_prefix: credit_prefix,
        updated_at: now,
        ..s.clone()
    };
    ctx.db.save_billing_settings(&new).await?;
    ctx.db
        .audit(
            now,
            &actor.email,
            "billing.settings",
            None,
            "billing/settings",
            Some(&json!(before).to_string()),
            Some(&json!(new).to_string()),
        )
        .await?;
    Ok(new)
}

/// A client's subscription with what comes next and its invoices.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub subscription: Subscription,
    pub upcoming: Option<Upcoming>,
    pub invoices: Vec<Invoice>,
}

pub async fn subscription(
    ctx: &Console,
    client_id: i64,
) -> Result<Option<SubscriptionView>, ActionError> {
    let Some(sub) = ctx.db.subscription(client_id).await? else {
        return Ok(None);
    };
    let settings = ctx.db.billing_settings().await?;
    let upcoming = state::upcoming(&sub, &settings);
    let invoices = ctx.db.invoices_where(None, Some(client_id), false).await?;
    Ok(Some(SubscriptionView {
        subscription: sub,
        upcoming,
        invoices,
    }))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StartSubscription {
    /// The payment provider's customer id (`cus_...`), when there is one.
    #[serde(default)]
    pub external_customer_id: Option<String>,
    /// Skip the plan's trial.
    #[serde(default)]
    pub skip_trial: bool,
}

/// Starts a client's subscription now (409 when it has one). The client's plan is read
/// from its Assistant; its first timeline point is recorded.
pub async fn start_subscription(
    ctx: &Console,
    actor: &Admin,
    client_id: i64,
    req: &StartSubscription,
    now: i64,
) -> Result<Subscription, ActionError> {
    let c = live_client(ctx, client_id).await?;
    let customer = clean_customer_id(req.external_customer_id.as_deref())?;
    if ctx.db.subscription(client_id).await?.is_some() {
        return Err(ActionError::Conflict(
            "this client already has a subscription".into(),
        ));
    }
    if let Some(cus) = &customer {
        customer_free(ctx, cus, client_id).await?;
    }
    let a = ctx
        .cluster
        .get(&c.namespace, &c.assistant_name)
        .await?
        .ok_or(ActionError::Cluster(ClusterError::NotFound))?;
    let plan = plan_of(&a, &ctx.config.default_plan);
    let prices = ctx.db.plan_prices().await?;
    let price = if req.skip_trial {
        None
    } else {
        invoice::price_on(&prices, &plan, &day_of(now))
    };
    let mut sub = state::start(client_id, price, customer, now);
    // Linked now: the provider's earlier events for this customer are not this client's.
    if sub.external_customer_id.is_some() {
        sub.last_provider_event_at = Some(now);
    }
    let inserted = ctx
        .db
        .insert_subscription(&sub)
        .await
        .map_err(unique_conflict)?;
    if !inserted {
        return Err(ActionError::Conflict(
            "this client already has a subscription".into(),
        ));
    }
    ctx.db
        .record_observation(client_id, &plan, a.spec.suspended, sub.state, now)
        .await?;
    ctx.db
        .set_client_billing_status(client_id, sub.state.as_str(), now)
        .await?;
    ctx.db
        .audit(
            now,
            &actor.email,
            "billing.subscription_started",
            Some(client_id),
            &target(&c),
            None,
            Some(
                &json!({"subscription": sub, "plan": plan, "skip_trial": req.skip_trial})
                    .to_string(),
            ),
        )
        .await?;
    Ok(sub)
}

/// Sets or clears the provider's customer id (unique across clients: 409 when taken).
pub async fn set_customer_id(
    ctx: &Console,
    actor: &Admin,
    client_id: i64,
    customer: Option<&str>,
    now: i64,
) -> Result<Subscription, ActionError> {
    let c = live_client(ctx, client_id).await?;
    let customer = clean_customer_id(customer)?;
    let sub = ctx
        .db
        .subscription(client_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    if sub.external_customer_id == customer {
        return Ok(sub);
    }
    if let Some(cus) = &customer {
        customer_free(ctx, cus, client_id).await?;
    }
    let new = Subscription {
        external_customer_id: customer.clone(),
        // The link time: the provider's events for this customer created before it were
        // about its previous owner (or no one here) and are stale for this client.
        last_provider_event_at: if customer.is_some() {
            Some(now)
        } else {
            sub.last_provider_event_at
        },
        updated_at: next_version(&sub, now),
        ..sub.clone()
    };
    let stored = ctx
        .db
        .update_subscription_cas(&new, sub.updated_at)
        .await
        .map_err(unique_conflict)?;
    if !stored {
        // Lost the compare-and-set (another replica or the engine changed the row): a
        // retry may pass, as with `apply`.
        return Err(ActionError::Contended("the subscription"));
    }
    ctx.db
        .audit(
            now,
            &actor.email,
            "billing.customer_id",
            Some(client_id),
            &target(&c),
            Some(&json!({"external_customer_id": sub.external_customer_id}).to_string()),
            Some(&json!({"external_customer_id": customer}).to_string()),
        )
        .await?;
    Ok(new)
}

/// Applies `input` to a client's subscription (state::apply), stores the change with a
/// compare-and-set (a second console replica applying the same input changes nothing),
/// adds a timeline point, keeps `clients.billing_status` equal to the state and audits
/// `billing.<event>` as `actor`. Does not touch the cluster: callers that need the
/// Assistant changed now call `engine::enforce_client`.
pub async fn apply(
    ctx: &Console,
    actor: &str,
    client_id: i64,
    input: &Input,
    now: i64,
) -> Result<Option<Change>, ActionError> {
    // What time has made due (a midnight cancellation the engine has not applied yet) comes
    // first, stored as the engine would, so the timeline stays in time order.
    if *input != Input::Clock {
        match Box::pin(apply(ctx, "billing", client_id, &Input::Clock, now)).await {
            Ok(_) | Err(ActionError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let settings = ctx.db.billing_settings().await?;
    // A lost compare-and-set means another replica (or the engine) changed the row: read it
    // again and re-decide; the same input applied there is then a no-op here.
    for _ in 0..3 {
        let sub = ctx
            .db
            .subscription(client_id)
            .await?
            .ok_or(ActionError::NotFound)?;
        let change = match state::apply(&sub, input, &settings, now) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(refused) => return Err(ActionError::Conflict(refused.to_string())),
        };
        let mut new = change.subscription.clone();
        new.updated_at = next_version(&sub, now);
        // A deleted client gives its provider customer id back (another client may take
        // it); the audit entry's `before` keeps it in the history.
        if new.deleted_at.is_some() {
            new.external_customer_id = None;
        }
        if !ctx.db.update_subscription_cas(&new, sub.updated_at).await? {
            continue;
        }
        let last = ctx.db.last_timeline_point(client_id).await?;
        let (plan, suspended) = match last {
            Some(p) => (p.plan, p.suspended),
            None => (ctx.config.default_plan.clone(), false),
        };
        // A scheduled cancellation took effect at the period end, not when applied.
        let at = state::effective_at(&change, now);
        ctx.db
            .record_observation(client_id, &plan, suspended, new.state, at)
            .await?;
        ctx.db
            .set_client_billing_status(client_id, new.state.as_str(), now)
            .await?;
        let target = match ctx.db.client(client_id).await? {
            Some(c) => target(&c),
            None => format!("client/{client_id}"),
        };
        // The clock may make several transitions at once (the console was down): each is
        // audited under its own name.
        let steps = if *input == Input::Clock {
            state::clock_steps(&sub, &settings, now)
        } else {
            vec![Change {
                subscription: new.clone(),
                ..change.clone()
            }]
        };
        audit_steps(ctx, actor, client_id, &target, &sub, input, &steps, now).await?;
        return Ok(Some(Change {
            subscription: new,
            ..change
        }));
    }
    Err(ActionError::Contended("the subscription"))
}

/// Ends a timeline at the client's deletion: the points after it dropped, and from it on
/// the client canceled (its deletion day is billed like a cancellation's, the days after
/// are not).
fn cut_at_deletion(timeline: &mut Vec<TimelinePoint>, gone: i64) {
    timeline.retain(|p| p.at <= gone);
    if let Some(last) = timeline.iter().max_by_key(|p| p.at).cloned() {
        timeline.push(TimelinePoint {
            at: gone,
            state: SubscriptionState::Canceled,
            ..last
        });
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InvoiceRunReport {
    pub month: String,
    pub issued: Vec<String>,
    /// Clients that already had this month's invoice.
    pub already_issued: usize,
    /// Clients with nothing billable.
    pub nothing_billable: usize,
    /// Clients that could not be invoiced, and why (e.g. no price).
    pub skipped: Vec<(i64, String)>,
}

/// Issues the invoices of a finished `month` (refused while the month is not over) for
/// every client with a subscription during it; idempotent (a second run issues nothing).
pub async fn run_invoices(
    ctx: &Console,
    actor: &str,
    month: &str,
    now: i64,
) -> Result<InvoiceRunReport, ActionError> {
    let (start, end) =
        month_bounds(month).ok_or_else(|| ActionError::invalid("month", "a month as YYYY-MM"))?;
    if now < end {
        return Err(ActionError::Conflict(format!(
            "{month} is not over: its invoices can be issued from {}",
            day_of(end)
        )));
    }
    let settings = ctx.db.billing_settings().await?;
    let prices = ctx.db.plan_prices().await?;
    let already = ctx.db.invoiced_clients(month).await?;
    let subs: Vec<Subscription> = ctx
        .db
        .subscriptions()
        .await?
        .into_iter()
        .filter(|s| s.started_at < end && s.deleted_at.is_none_or(|d| d >= start))
        .collect();
    let mut timelines = ctx.db.timelines_for_period(start, end).await?;
    let start_plans = ctx.db.start_plans_with_fee_due().await?;
    let ids: Vec<i64> = subs
        .iter()
        .filter(|s| !already.contains(&s.client_id))
        .map(|s| s.client_id)
        .collect();
    let contacts = ctx.db.billing_contacts(&ids).await?;
    let mut report = InvoiceRunReport {
        month: month.to_string(),
        already_issued: subs.len() - ids.len(),
        ..Default::default()
    };
    let mut docs = Vec::new();
    let deleted = ctx.db.deleted_clients().await?;
    for s in subs.iter().filter(|s| !already.contains(&s.client_id)) {
        let mut timeline = timelines.remove(&s.client_id).unwrap_or_default();
        // A client deleted by an admin: nothing after its deletion is billed.
        if let Some(&gone) = deleted.get(&s.client_id) {
            cut_at_deletion(&mut timeline, gone);
        }
        let fee_plan = if s.setup_fee_invoiced {
            None
        } else {
            start_plans
                .get(&s.client_id)
                .map(String::as_str)
                .or_else(|| {
                    timeline
                        .iter()
                        .min_by_key(|p| p.at)
                        .map(|p| p.plan.as_str())
                })
        };
        match invoice::draft_invoice_for(month, &timeline, &prices, &settings, fee_plan) {
            Ok(Some(d)) => docs.push(NewDocument {
                kind: DocumentKind::Invoice,
                client_id: s.client_id,
                month: month.to_string(),
                corrects_number: None,
                currency: d.currency,
                total_cents: d.total_cents,
                lines: d.lines,
                bill_to: contacts.get(&s.client_id).cloned().unwrap_or(BillTo {
                    name: format!("client {}", s.client_id),
                    email: String::new(),
                    assistant: String::new(),
                }),
                seller: settings.seller.clone(),
                note: String::new(),
                issued_at: now,
                due_at: now + settings.payment_terms_days * DAY,
                issued_by: actor.to_string(),
                includes_setup_fee: d.includes_setup_fee,
            }),
            Ok(None) => report.nothing_billable += 1,
            Err(problem) => report.skipped.push((s.client_id, problem.to_string())),
        }
    }
    if docs.is_empty() {
        return Ok(report);
    }
    let batch = ctx
        .db
        .issue_invoices(&settings.invoice_prefix, &docs)
        .await?;
    report.already_issued += batch.already_issued.len();
    report.issued = batch.numbers;
    if !report.issued.is_empty() {
        // One entry for the run (10,000 invoices are not 10,000 audit rows); each invoice
        // is itself an immutable record with its issuer.
        ctx.db
            .audit(
                now,
                actor,
                "billing.invoice_run",
                None,
                &format!("invoices/{month}"),
                None,
                Some(
                    &json!({
                        "month": month,
                        "issued": report.issued.len(),
                        "first": report.issued.first(),
                        "last": report.issued.last(),
                        "skipped": report.skipped,
                    })
                    .to_string(),
                ),
            )
            .await?;
    }
    Ok(report)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvoiceFilter {
    #[serde(default)]
    pub month: Option<String>,
    #[serde(default)]
    pub client_id: Option<i64>,
    #[serde(default)]
    pub unpaid_only: bool,
}

pub async fn invoices(ctx: &Console, f: &InvoiceFilter) -> Result<Vec<Invoice>, ActionError> {
    if let Some(m) = f.month.as_deref().filter(|m| !m.is_empty())
        && !valid_month(m)
    {
        return Err(ActionError::invalid("month", "a month as YYYY-MM"));
    }
    Ok(ctx
        .db
        .invoices_where(
            f.month.as_deref().filter(|m| !m.is_empty()),
            f.client_id,
            f.unpaid_only,
        )
        .await?)
}

pub async fn invoice(ctx: &Console, number: &str) -> Result<Invoice, ActionError> {
    ctx.db
        .invoice_by_number(number.trim())
        .await?
        .ok_or(ActionError::NotFound)
}

/// Marks an invoice paid (once); when the client owes nothing else past due, applies
/// `PaymentSucceeded` (which resumes a client suspended for non-payment).
pub async fn mark_paid(
    ctx: &Console,
    actor: &str,
    number: &str,
    via: &str,
    now: i64,
) -> Result<Invoice, ActionError> {
    let inv = invoice(ctx, number).await?;
    let via = via.trim();
    if via.is_empty() || via.len() > 40 || via.chars().any(char::is_control) {
        return Err(ActionError::invalid(
            "via",
            "1 to 40 characters, e.g. console",
        ));
    }
    if inv.kind != DocumentKind::Invoice {
        return Err(ActionError::Conflict(format!(
            "{} is a credit note: only invoices are paid",
            inv.number
        )));
    }
    // Paid already: still 409, but first what the payment should have done (idempotent),
    // so retrying after a failed resume or audit brings the client back.
    if let Some(at) = inv.paid_at {
        resume_if_nothing_overdue(ctx, actor, &inv, now).await?;
        return Err(already_paid(&inv, at));
    }
    if !ctx.db.mark_invoice_paid(&inv.number, now, via).await? {
        let again = invoice(ctx, &inv.number).await?;
        resume_if_nothing_overdue(ctx, actor, &again, now).await?;
        return Err(already_paid(&again, again.paid_at.unwrap_or(now)));
    }
    ctx.db
        .audit(
            now,
            actor,
            "billing.invoice_paid",
            Some(inv.client_id),
            &format!("invoice/{}", inv.number),
            Some(&json!({"paid_at": null}).to_string()),
            Some(&json!({"paid_at": now, "paid_via": via}).to_string()),
        )
        .await?;
    resume_if_nothing_overdue(ctx, actor, &inv, now).await?;
    invoice(ctx, &inv.number).await
}

/// After `inv` was paid or credited to nothing owed: when the client owes nothing else past
/// due, the payment succeeded (a client held for non-payment resumes).
async fn resume_if_nothing_overdue(
    ctx: &Console,
    actor: &str,
    inv: &Invoice,
    now: i64,
) -> Result<(), ActionError> {
    let still_overdue = ctx.db.client_owes_overdue(inv.client_id, now).await?;
    if !still_overdue && ctx.db.subscription(inv.client_id).await?.is_some() {
        let input = Input::PaymentSucceeded {
            at: now,
            reference: inv.number.clone(),
        };
        match apply(ctx, actor, inv.client_id, &input, now).await {
            Ok(_) => {}
            // The payment is recorded either way; a state that takes no payment (canceled)
            // just stays as it is.
            Err(ActionError::Conflict(why)) => {
                tracing::info!(invoice = %inv.number, %why, "payment recorded; subscription unchanged");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreditRequest {
    /// Units, as typed; empty: the whole remaining amount of the invoice.
    #[serde(default)]
    pub amount: String,
    pub reason: String,
}

/// Issues a credit note against an invoice (its own number series); the credited total
/// can never exceed the invoice.
pub async fn credit_note(
    ctx: &Console,
    actor: &Admin,
    number: &str,
    req: &CreditRequest,
    now: i64,
) -> Result<Invoice, ActionError> {
    let inv = invoice(ctx, number).await?;
    if inv.kind != DocumentKind::Invoice {
        return Err(ActionError::Conflict(format!(
            "{} is a credit note: credit the invoice it corrects",
            inv.number
        )));
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(ActionError::invalid(
            "reason",
            format!("say why, in 1 to {MAX_REASON} characters (it is printed on the credit note)"),
        ));
    }
    let remaining = inv.total_cents - ctx.db.credited_total(&inv.number).await?;
    if remaining <= 0 {
        // As with "mark paid": a retry after a failed resume brings the client back.
        if inv.paid_at.is_none() {
            resume_if_nothing_overdue(ctx, &actor.email, &inv, now).await?;
        }
        return Err(ActionError::Conflict(format!(
            "{} is fully credited already",
            inv.number
        )));
    }
    let amount = if req.amount.trim().is_empty() {
        remaining
    } else {
        match parse_money(&req.amount, &inv.currency) {
            Some(a) if a > 0 && a <= remaining => a,
            Some(a) if a > remaining => {
                return Err(ActionError::invalid(
                    "amount",
                    format!(
                        "at most {} can be credited on {}",
                        format_money(remaining, &inv.currency),
                        inv.number
                    ),
                ));
            }
            _ => {
                return Err(ActionError::invalid(
                    "amount",
                    format!("{} more than 0", money_hint(&req.amount, &inv.currency)),
                ));
            }
        }
    };
    let settings = ctx.db.billing_settings().await?;
    let doc = NewDocument {
        kind: DocumentKind::CreditNote,
        client_id: inv.client_id,
        month: inv.month.clone(),
        corrects_number: Some(inv.number.clone()),
        currency: inv.currency.clone(),
        total_cents: -amount,
        lines: vec![InvoiceLine {
            kind: LineKind::Credit,
            description: reason.to_string(),
            plan: None,
            from: String::new(),
            to: String::new(),
            days: 0,
            days_in_month: 0,
            unit_cents: -amount,
            amount_cents: -amount,
        }],
        bill_to: inv.bill_to.clone(),
        seller: settings.seller.clone(),
        note: format!("Corrects invoice {}", inv.number),
        issued_at: now,
        due_at: now,
        issued_by: actor.email.clone(),
        includes_setup_fee: false,
    };
    let cn = match ctx
        .db
        .issue_credit_note(&settings.credit_note_prefix, &doc, inv.total_cents)
        .await
    {
        Ok(cn) => cn,
        Err(CreditRefused::Exceeds { remaining }) => {
            return Err(ActionError::invalid(
                "amount",
                format!(
                    "at most {} can be credited on {}",
                    format_money(remaining, &inv.currency),
                    inv.number
                ),
            ));
        }
        Err(CreditRefused::Db(e)) => return Err(e.into()),
    };
    ctx.db
        .audit(
            now,
            &actor.email,
            "billing.credit_note",
            Some(inv.client_id),
            &format!("invoice/{}", inv.number),
            None,
            Some(
                &json!({"number": cn.number, "corrects": inv.number, "total_cents": cn.total_cents, "reason": reason})
                    .to_string(),
            ),
        )
        .await?;
    // Credited to nothing owed while unpaid: as if paid (a disputed, then credited client
    // resumes when nothing else is overdue).
    if inv.paid_at.is_none() && ctx.db.owed_on(&inv.number).await? <= 0 {
        resume_if_nothing_overdue(ctx, &actor.email, &inv, now).await?;
    }
    Ok(cn)
}

/// One CSV row per invoice line of the month's documents (invoices and credit notes).
pub fn invoices_csv(list: &[Invoice]) -> String {
    let mut out = String::from(
        "number,kind,client_id,client_name,email,month,issued,due,currency,line,from,to,days,amount,total,paid\n",
    );
    let empty_line = InvoiceLine {
        kind: LineKind::Plan,
        description: String::new(),
        plan: None,
        from: String::new(),
        to: String::new(),
        days: 0,
        days_in_month: 0,
        unit_cents: 0,
        amount_cents: 0,
    };
    for inv in list {
        let lines: Vec<&InvoiceLine> = if inv.lines.is_empty() {
            vec![&empty_line]
        } else {
            inv.lines.iter().collect()
        };
        for l in lines {
            let row = [
                csv_field(&inv.number),
                inv.kind.as_str().to_string(),
                inv.client_id.to_string(),
                csv_field(&inv.bill_to.name),
                csv_field(&inv.bill_to.email),
                csv_field(&inv.month),
                day_of(inv.issued_at),
                day_of(inv.due_at),
                csv_field(&inv.currency),
                csv_field(&l.description),
                csv_field(&l.from),
                csv_field(&l.to),
                l.days.to_string(),
                money_units(l.amount_cents, &inv.currency),
                money_units(inv.total_cents, &inv.currency),
                inv.paid_at.map(day_of).unwrap_or_default(),
            ];
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out
}

/// The "needs attention" view: transitions due within `horizon_days`, soonest first,
/// unpaid invoices past due, and plans without a price.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attention {
    pub upcoming: Vec<AttentionItem>,
    pub overdue_invoices: Vec<Invoice>,
    pub unpriced_plans: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttentionItem {
    pub client_id: i64,
    pub client_name: String,
    pub upcoming: Upcoming,
}

pub async fn attention(
    ctx: &Console,
    now: i64,
    horizon_days: i64,
) -> Result<Attention, ActionError> {
    if !(0..=366).contains(&horizon_days) {
        return Err(ActionError::invalid(
            "horizon_days",
            "between 0 and 366 days",
        ));
    }
    let settings = ctx.db.billing_settings().await?;
    let until = now + horizon_days * DAY;
    let subs = ctx.db.subscriptions().await?;
    // A client with a payment provider customer id pays through the provider, which
    // collects our invoices and reports failures itself: an unpaid one is not a failed
    // payment here (the engine skips them too).
    let provider_billed: std::collections::HashSet<i64> = subs
        .iter()
        .filter(|s| s.external_customer_id.is_some())
        .map(|s| s.client_id)
        .collect();
    let mut due: Vec<Upcoming> = subs
        .iter()
        .filter_map(|s| state::upcoming(s, &settings))
        .filter(|u| u.at <= until)
        .collect();
    due.sort_by_key(|u| (u.at, u.client_id));
    let ids: Vec<i64> = due.iter().map(|u| u.client_id).collect();
    let names = ctx.db.billing_contacts(&ids).await?;
    let upcoming = due
        .into_iter()
        .map(|u| AttentionItem {
            client_id: u.client_id,
            client_name: names
                .get(&u.client_id)
                .map(|b| b.name.clone())
                .unwrap_or_else(|| format!("client {}", u.client_id)),
            upcoming: u,
        })
        .collect();
    let priced: std::collections::HashSet<String> = ctx
        .db
        .plan_prices()
        .await?
        .into_iter()
        .map(|p| p.plan)
        .collect();
    Ok(Attention {
        upcoming,
        overdue_invoices: ctx
            .db
            .overdue_invoices(now)
            .await?
            .into_iter()
            .filter(|i| !provider_billed.contains(&i.client_id))
            .collect(),
        unpriced_plans: ctx
            .config
            .plans
            .keys()
            .filter(|p| !priced.contains(*p))
            .cloned()
            .collect(),
    })
}
