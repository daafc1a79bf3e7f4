//! Billing pages: what needs attention, the price list, the business's rules, the month's
//! invoices, a printable invoice, and a client's subscription panel. Thin: every action is
//! a `service::billing` call; no JavaScript (confirmations are GET pages holding the form).

pub mod invoices;
pub mod subscription;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, csrf, fmt_time, layout};
use crate::console::billing::model::*;
use crate::console::extract::{Form, Query};
use crate::console::service::billing::{self as bill, Attention};
use crate::console::service::{self, ActionError, FieldError};
use crate::console::{Ctx, Session};

/// Days ahead the "needs attention" page looks.
pub const ATTENTION_DAYS: i64 = 7;

/// The label a billing form field is shown under (the API keeps `field` and adds this).
pub fn billing_label(field: &str) -> &str {
    match field {
        "currency" => "Currency",
        "monthly" | "monthly_cents" => "Monthly price",
        "setup_fee" | "setup_fee_cents" => "Setup fee",
        "trial_days" => "Trial days",
        "effective_from" => "Effective from",
        "grace_days" => "Grace days",
        "payment_terms_days" => "Payment terms (days)",
        "retention_days" => "Retention (days)",
        "canceled_volume" => "Volume of a canceled client",
        "bill_suspended_days" => "Bill suspended days",
        "invoice_prefix" => "Invoice number prefix",
        "credit_note_prefix" => "Credit note number prefix",
        "seller" => "Seller",
        "amount" => "Amount",
        "reason" => "Reason",
        "month" => "Month",
        "external_customer_id" | "customer" => "Customer id",
        other => service::field_label(other),
    }
}

/// The problems of a refused form, as a list at its top.
pub(crate) fn form_errors(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            ul.errors role="alert" {
                @for f in errors { li { strong { (billing_label(&f.field)) } ": " (f.message) } }
            }
        }
    }
}

/// The billing section's own tabs.
pub(crate) fn subnav(current: &str) -> Markup {
    let tab = |href: &str, label: &str| {
        html! { a href=(href) class=[(href == current).then_some("active")] { (label) } }
    };
    html! {
        nav.billing-tabs {
            (tab("/billing", "Needs attention"))
            (tab("/billing/prices", "Prices"))
            (tab("/billing/invoices", "Invoices"))
            (tab("/billing/settings", "Settings"))
        }
    }
}

pub(crate) fn money(cents: i64, currency: &str) -> String {
    format_money(cents, currency)
}

/// "today", "tomorrow", "in 3 days", "2 days ago": how far `at`'s day is from `now`'s.
pub fn relative_day(at: i64, now: i64) -> String {
    let d = |t: i64| day_start(&day_of(t)).unwrap_or(t) / 86_400;
    match d(at) - d(now) {
        0 => "today".into(),
        1 => "tomorrow".into(),
        -1 => "yesterday".into(),
        n if n > 1 => format!("in {n} days"),
        n => format!("{} days ago", -n),
    }
}

/// "3 clients will be suspended tomorrow".
pub fn upcoming_sentence(event: &str, n: usize, when: &str) -> String {
    let who = if n == 1 {
        "1 client".to_string()
    } else {
        format!("{n} clients")
    };
    match event {
        "suspend" => format!("{who} will be suspended {when}"),
        "trial_ends" => format!("{who} will leave the trial {when}"),
        "cancel" => format!("{who} will be canceled (and suspended) {when}"),
        "delete" => format!("{who} will be deleted {when}"),
        other => format!("{who}: {} {when}", other.replace('_', " ")),
    }
}

/// The upcoming transitions grouped by day and kind, in order.
pub fn group_upcoming(a: &Attention) -> Vec<(String, &'static str, Vec<&bill::AttentionItem>)> {
    let mut groups: Vec<(String, &'static str, Vec<&bill::AttentionItem>)> = Vec::new();
    let mut items: Vec<&bill::AttentionItem> = a.upcoming.iter().collect();
    items.sort_by_key(|i| (i.upcoming.at, i.client_id));
    for i in items {
        let day = day_of(i.upcoming.at);
        match groups
            .iter_mut()
            .find(|(d, e, _)| *d == day && *e == i.upcoming.event)
        {
            Some(g) => g.2.push(i),
            None => groups.push((day, i.upcoming.event, vec![i])),
        }
    }
    groups
}

pub async fn attention(State(ctx): State<Ctx>, Extension(s): Extension<Session>) -> Response {
    let now = service::now();
    let a = match bill::attention(&ctx, now, ATTENTION_DAYS).await {
        Ok(a) => a,
        Err(e) => return super::action_error(&ctx, &s, &e, "/clients"),
    };
    let groups = group_upcoming(&a);
    let body = html! {
        h1 { "Billing" }
        (subnav("/billing"))
        div.stats {
            div.stat { div.n #attention-upcoming { (a.upcoming.len()) } div.l { "transitions in the next " (ATTENTION_DAYS) " days" } }
            a.stat href="#overdue" { div.n #attention-overdue { (a.overdue_invoices.len()) } div.l { "overdue invoices" } }
            a.stat href="/billing/prices" { div.n #attention-unpriced { (a.unpriced_plans.len()) } div.l { "plans without a price" } }
        }
        div.panel #upcoming {
            h2 { "Coming up in the next " (ATTENTION_DAYS) " days" }
            @if groups.is_empty() { p.dim { "No automatic transition is due in the next " (ATTENTION_DAYS) " days." } }
            @for (day, event, items) in &groups {
                div.attention-group {
                    h3 { (upcoming_sentence(event, items.len(), &relative_day(items[0].upcoming.at, now))) span.dim { " · " (day) } }
                    ul {
                        @for i in items {
                            li {
                                a href={ "/clients/" (i.client_id) } { bdi { (i.client_name) } }
                                " — " (i.upcoming.description) span.dim { " (" (fmt_time(i.upcoming.at)) ")" }
                            }
                        }
                    }
                }
            }
        }
        div.panel #overdue {
            h2 { "Overdue invoices" }
            @if a.overdue_invoices.is_empty() { p.dim { "No unpaid invoice is past its due date." } }
            @else {
                table {
                    thead { tr { th { "Number" } th { "Client" } th.num { "Total" } th { "Due" } th { "" } } }
                    tbody {
                        @for inv in &a.overdue_invoices {
                            tr {
                                td { a href=(invoices::invoice_href(&inv.number)) { (inv.number) } }
                                td.wrap { a href={ "/clients/" (inv.client_id) } { bdi { (inv.bill_to.name) } } }
                                td.num { (money(inv.total_cents, &inv.currency)) }
                                td { (day_of(inv.due_at)) " " span.badge.bad { (relative_day(inv.due_at, now)) } }
                                td { a href=(invoices::invoice_href(&inv.number)) { "Open / mark paid" } }
                            }
                        }
                    }
                }
            }
        }
        div.panel #unpriced {
            h2 { "Plans without a price" }
            @if a.unpriced_plans.is_empty() { p.dim { "Every plan has a price." } }
            @else {
                p { "Clients on these plans cannot be invoiced until the plan has a price:" }
                ul { @for p in &a.unpriced_plans { li { code { (p) } " — " a href={ "/billing/prices?plan=" (urlencoding::encode(p)) "#add-price" } { "add a price" } } } }
            }
        }
    };
    layout(&ctx, &s, Nav::Billing, "Billing", body).into_response()
}

/// The add-a-price form as typed (strings: a wrong number is a message, not a 422 page).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PriceForm {
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub monthly: String,
    #[serde(default)]
    pub setup_fee: String,
    #[serde(default)]
    pub trial_days: String,
    #[serde(default)]
    pub effective_from: String,
}

impl PriceForm {
    fn to_new_price(&self) -> Result<NewPrice, ActionError> {
        let trial = self.trial_days.trim();
        let trial_days = if trial.is_empty() {
            None
        } else {
            Some(trial.parse::<i64>().map_err(|_| {
                ActionError::invalid("trial_days", "a whole number of days (0 for no trial)")
            })?)
        };
        Ok(NewPrice {
            plan: self.plan.trim().to_string(),
            currency: self.currency.trim().to_uppercase(),
            monthly: self.monthly.trim().to_string(),
            setup_fee: self.setup_fee.trim().to_string(),
            trial_days,
            effective_from: self.effective_from.trim().to_string(),
        })
    }
}

/// `?plan=` preselects the form's plan (links from "plans without a price"); `?saved=1`
/// after a price was added.
#[derive(Deserialize, Default)]
pub struct PricesQuery {
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    saved: Option<String>,
}

fn price_row(p: &PlanPrice, status: Markup) -> Markup {
    html! {
        tr {
            td { (p.effective_from) }
            td.num { (money(p.monthly_cents, &p.currency)) }
            td.num { (money(p.setup_fee_cents, &p.currency)) }
            td.num { (p.trial_days) }
            td { (p.created_by) span.dim { " · " (fmt_time(p.created_at)) } }
            td { (status) }
        }
    }
}

async fn prices_page(
    ctx: &Ctx,
    s: &Session,
    form: &PriceForm,
    errors: &[FieldError],
    saved: bool,
) -> Response {
    let now = service::now();
    let list = match bill::price_list(ctx, now).await {
        Ok(l) => l,
        Err(e) => return super::action_error(ctx, s, &e, "/billing"),
    };
    let currency = if form.currency.is_empty() {
        list.plans
            .iter()
            .find_map(|p| p.current.as_ref().map(|c| c.currency.clone()))
            .unwrap_or_else(|| "EUR".into())
    } else {
        form.currency.clone()
    };
    let today = day_of(now);
    let effective = if form.effective_from.is_empty() {
        today.clone()
    } else {
        form.effective_from.clone()
    };
    let body = html! {
        h1 { "Prices" }
        (subnav("/billing/prices"))
        @if saved { div.notice { "The price was added." } }
        p.dim { "A price applies from its first day (UTC) until the plan's next price; it never changes invoices of days before it. Amounts are per month, prorated by day." }
        @for p in &list.plans {
            div.panel.price-plan id={ "plan-" (p.plan) } {
                h2 {
                    "Plan " code { (p.plan) } " "
                    @match &p.current {
                        Some(c) => span.badge.ok { (money(c.monthly_cents, &c.currency)) " / month" },
                        None => span.badge.bad { "no price: cannot be invoiced" },
                    }
                }
                @if p.history.is_empty() { p.dim { "No price yet." } }
                @else {
                    table {
                        thead { tr { th { "From" } th.num { "Monthly" } th.num { "Setup fee" } th.num { "Trial days" } th { "Added by" } th { "" } } }
                        tbody {
                            @for h in &p.history {
                                @let status = if p.current.as_ref().is_some_and(|c| c.id == h.id) {
                                    html! { span.badge.ok { "current" } }
                                } else if p.scheduled.iter().any(|x| x.id == h.id) {
                                    html! { span.badge.warn { "scheduled" } }
                                } else {
                                    html! { span.dim { "past" } }
                                };
                                (price_row(h, status))
                            }
                        }
                    }
                }
            }
        }
        div.panel #add-price {
            h2 { "Add a price" }
            (form_errors(errors))
            form method="post" action="/billing/prices" {
                (csrf(s))
                div.form-grid {
                    label for="price-plan" { "Plan" }
                    select #price-plan name="plan" {
                        @for p in &list.plans { option value=(p.plan) selected[form.plan == p.plan] { (p.plan) } }
                    }
                    label for="price-currency" { "Currency" }
                    div { input #price-currency type="text" name="currency" value=(currency) size="4" maxlength="3" required; div.hint { "ISO 4217 code (EUR, USD, CHF, JPY)." } }
                    label for="price-monthly" { "Monthly price" }
                    div { input #price-monthly type="text" name="monthly" value=(form.monthly) inputmode="decimal" placeholder="29.00" required; div.hint { "In units, e.g. 29 or 29.90." } }
                    label for="price-setup" { "Setup fee" }
                    div { input #price-setup type="text" name="setup_fee" value=(form.setup_fee) inputmode="decimal" placeholder="0"; div.hint { "Invoiced once, with the first invoice. Empty: none." } }
                    label for="price-trial" { "Trial days" }
                    div { input #price-trial type="number" name="trial_days" value=(form.trial_days) min="0" placeholder="0"; div.hint { "Free days at the start of a new subscription." } }
                    label for="price-from" { "Effective from" }
                    div { input #price-from type="date" name="effective_from" value=(effective) min=(today); div.hint { "Today or later (UTC): prices never change retroactively." } }
                    span {}
                    div { button.primary type="submit" { "Add price" } }
                }
            }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, layout(ctx, s, Nav::Billing, "Prices", body)).into_response()
}

#[derive(Deserialize, Default)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn prices(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<PricesQuery>,
) -> Response {
    let form = PriceForm {
        plan: q.plan.unwrap_or_default(),
        ..Default::default()
    };
    prices_page(&ctx, &s, &form, &[], q.saved.is_some()).await
}

pub async fn add_price(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(f): Form<PriceForm>,
) -> Response {
    let r = match f.to_new_price() {
        Ok(p) => bill::set_price(&ctx, &s.admin, &p, service::now()).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(_) => Redirect::to("/billing/prices?saved=1").into_response(),
        Err(ActionError::Invalid(errs)) => prices_page(&ctx, &s, &f, &errs, false).await,
        Err(e) => super::action_error(&ctx, &s, &e, "/billing/prices"),
    }
}

/// The rules form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    pub grace_days: String,
    #[serde(default)]
    pub payment_terms_days: String,
    #[serde(default)]
    pub retention_days: String,
    #[serde(default)]
    pub canceled_volume: String,
    /// A checkbox: present ("on") when ticked.
    #[serde(default)]
    pub bill_suspended_days: Option<String>,
    #[serde(default)]
    pub invoice_prefix: String,
    #[serde(default)]
    pub credit_note_prefix: String,
    #[serde(default)]
    pub seller: String,
}

impl SettingsForm {
    fn of(s: &BillingSettings) -> Self {
        Self {
            grace_days: s.grace_days.to_string(),
            payment_terms_days: s.payment_terms_days.to_string(),
            retention_days: s.retention_days.to_string(),
            canceled_volume: format!("{:?}", s.canceled_volume),
            bill_suspended_days: s.bill_suspended_days.then(|| "on".into()),
            invoice_prefix: s.invoice_prefix.clone(),
            credit_note_prefix: s.credit_note_prefix.clone(),
            seller: s.seller.clone(),
        }
    }

    /// Whole numbers and the volume choice; the service checks the ranges.
    fn to_settings(&self) -> Result<BillingSettings, ActionError> {
        let mut problems = Vec::new();
        let mut days = |field: &str, v: &str| match v.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                problems.push(FieldError {
                    field: field.into(),
                    message: "a whole number of days".into(),
                });
                0
            }
        };
        let grace_days = days("grace_days", &self.grace_days);
        let payment_terms_days = days("payment_terms_days", &self.payment_terms_days);
        let retention_days = days("retention_days", &self.retention_days);
        let canceled_volume = match self.canceled_volume.as_str() {
            "Delete" => VolumeOnCancel::Delete,
            "Retain" => VolumeOnCancel::Retain,
            _ => {
                problems.push(FieldError {
                    field: "canceled_volume".into(),
                    message: "choose Retain or Delete".into(),
                });
                VolumeOnCancel::Retain
            }
        };
        if !problems.is_empty() {
            return Err(ActionError::Invalid(problems));
        }
        Ok(BillingSettings {
            grace_days,
            payment_terms_days,
            retention_days,
            canceled_volume,
            bill_suspended_days: self.bill_suspended_days.is_some(),
            invoice_prefix: self.invoice_prefix.trim().to_string(),
            credit_note_prefix: self.credit_note_prefix.trim().to_string(),
            seller: self.seller.replace("\r\n", "\n").trim().to_string(),
            updated_at: 0,
        })
    }
}

fn settings_page(
    ctx: &Ctx,
    s: &Session,
    f: &SettingsForm,
    errors: &[FieldError],
    saved_at: Option<i64>,
    notice: bool,
) -> Response {
    let retain = f.canceled_volume != "Delete";
    let body = html! {
        h1 { "Billing settings" }
        (subnav("/billing/settings"))
        @if notice { div.notice { "The billing settings were saved." } }
        (form_errors(errors))
        form.panel method="post" action="/billing/settings" {
            (csrf(s))
            div.form-grid {
                label for="grace_days" { "Grace days" }
                div { input #grace_days type="number" name="grace_days" min="0" value=(f.grace_days) required; div.hint { "Days a client stays past due after a failed payment before its assistant is suspended." } }
                label for="payment_terms_days" { "Payment terms (days)" }
                div { input #payment_terms_days type="number" name="payment_terms_days" min="0" value=(f.payment_terms_days) required; div.hint { "An invoice is due this many days after it is issued; unpaid after that, a client without a payment provider becomes past due." } }
                label for="retention_days" { "Retention (days)" }
                div { input #retention_days type="number" name="retention_days" min="0" value=(f.retention_days) required; div.hint { "A canceled client's assistant is kept suspended this long, then deleted." } }
                span { "Volume of a canceled client" }
                div {
                    label { input type="radio" name="canceled_volume" value="Retain" checked[retain]; " Retain — keep the data volume when the assistant is deleted" }
                    br;
                    label { input type="radio" name="canceled_volume" value="Delete" checked[!retain]; " Delete — destroy the client's data with the assistant" }
                }
                span { "Suspended days" }
                div { label.check { input #bill_suspended_days type="checkbox" name="bill_suspended_days" checked[f.bill_suspended_days.is_some()]; " Bill days the client was suspended all day" } }
                label for="invoice_prefix" { "Invoice number prefix" }
                input #invoice_prefix type="text" name="invoice_prefix" value=(f.invoice_prefix) maxlength="16" required;
                label for="credit_note_prefix" { "Credit note number prefix" }
                input #credit_note_prefix type="text" name="credit_note_prefix" value=(f.credit_note_prefix) maxlength="16" required;
                label for="seller" { "Seller (printed on invoices)" }
                div { textarea #seller name="seller" rows="5" maxlength="2000" { (f.seller) } div.hint { "Name, address, tax id: as it should appear on every invoice." } }
                span {}
                div {
                    button.primary type="submit" { "Save settings" }
                    @if let Some(t) = saved_at.filter(|t| *t > 0) { span.dim { " Last saved " (fmt_time(t)) "." } }
                }
            }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        layout(ctx, s, Nav::Billing, "Billing settings", body),
    )
        .into_response()
}

pub async fn settings(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<SavedQuery>,
) -> Response {
    match bill::settings(&ctx).await {
        Ok(b) => settings_page(
            &ctx,
            &s,
            &SettingsForm::of(&b),
            &[],
            Some(b.updated_at),
            q.saved.is_some(),
        ),
        Err(e) => super::action_error(&ctx, &s, &e, "/billing"),
    }
}

pub async fn save_settings(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(f): Form<SettingsForm>,
) -> Response {
    let r = match f.to_settings() {
        Ok(b) => bill::update_settings(&ctx, &s.admin, &b, service::now()).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(_) => Redirect::to("/billing/settings?saved=1").into_response(),
        Err(ActionError::Invalid(errs)) => settings_page(&ctx, &s, &f, &errs, None, false),
        Err(e) => super::action_error(&ctx, &s, &e, "/billing/settings"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_days_count_calendar_days() {
        let noon = day_start("2026-12-03").unwrap() + 12 * 3600;
        assert_eq!(relative_day(noon + 3600, noon), "today");
        // 23:59 tonight is today, 00:01 tomorrow is tomorrow, whatever the hour now.
        assert_eq!(relative_day(noon + 12 * 3600 + 60, noon), "tomorrow");
        assert_eq!(relative_day(noon + 3 * 86_400, noon), "in 3 days");
        assert_eq!(relative_day(noon - 2 * 86_400, noon), "2 days ago");
    }

    #[test]
    fn sentences_count_clients() {
        assert_eq!(
            upcoming_sentence("suspend", 3, "tomorrow"),
            "3 clients will be suspended tomorrow"
        );
        assert_eq!(
            upcoming_sentence("delete", 1, "in 2 days"),
            "1 client will be deleted in 2 days"
        );
    }

    #[test]
    fn settings_form_reports_every_bad_number() {
        let f = SettingsForm {
            grace_days: "x".into(),
            payment_terms_days: "14".into(),
            retention_days: "".into(),
            canceled_volume: "Retain".into(),
            ..Default::default()
        };
        match f.to_settings() {
            Err(ActionError::Invalid(list)) => {
                let fields: Vec<_> = list.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(fields, ["grace_days", "retention_days"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
