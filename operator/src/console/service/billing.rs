//! Billing actions shared by the pages, the JSON API, the webhook and the engine; each
//! change writes an audit event (actor: the admin's e-mail, `billing` for the engine,
//! `stripe` for the webhook). Time is a parameter: tests drive the clock.

use serde::{Deserialize, Serialize};

use super::ActionError;
use crate::console::Console;
use crate::console::billing::model::*;
use crate::console::db::Admin;

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
    let _ = (ctx, now);
    todo!("issue 15: price_list")
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
    let _ = (ctx, actor, p, now);
    todo!("issue 15: set_price")
}

pub async fn settings(ctx: &Console) -> Result<BillingSettings, ActionError> {
    let _ = ctx;
    todo!("issue 15: settings")
}

pub async fn update_settings(
    ctx: &Console,
    actor: &Admin,
    s: &BillingSettings,
    now: i64,
) -> Result<BillingSettings, ActionError> {
    let _ = (ctx, actor, s, now);
    todo!("issue 15: update_settings")
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
    let _ = (ctx, client_id);
    todo!("issue 15: subscription")
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
    let _ = (ctx, actor, client_id, req, now);
    todo!("issue 15: start_subscription")
}

/// Sets or clears the provider's customer id (unique across clients: 409 when taken).
pub async fn set_customer_id(
    ctx: &Console,
    actor: &Admin,
    client_id: i64,
    customer: Option<&str>,
    now: i64,
) -> Result<Subscription, ActionError> {
    let _ = (ctx, actor, client_id, customer, now);
    todo!("issue 15: set_customer_id")
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
    let _ = (ctx, actor, client_id, input, now);
    todo!("issue 15: apply")
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
    let _ = (ctx, actor, month, now);
    todo!("issue 15: run_invoices")
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
    let _ = (ctx, f);
    todo!("issue 15: invoices")
}

pub async fn invoice(ctx: &Console, number: &str) -> Result<Invoice, ActionError> {
    let _ = (ctx, number);
    todo!("issue 15: invoice")
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
    let _ = (ctx, actor, number, via, now);
    todo!("issue 15: mark_paid")
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
    let _ = (ctx, actor, number, req, now);
    todo!("issue 15: credit_note")
}

/// One CSV row per invoice line of the month's documents (invoices and credit notes).
pub fn invoices_csv(list: &[Invoice]) -> String {
    let _ = list;
    todo!("issue 15: invoices_csv")
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
    let _ = (ctx, now, horizon_days);
    todo!("issue 15: attention")
}
