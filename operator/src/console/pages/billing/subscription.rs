//! A client's subscription on its page: the state and its dates, why it is suspended, the
//! payment provider's customer id, the actions (each through a confirmation page) and the
//! client's invoices.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::invoices::{enforce_now, invoice_table};
use crate::console::billing::model::*;
use crate::console::db::ClientRow;
use crate::console::extract::{Form, Path};
use crate::console::pages::{Nav, csrf, fmt_time, layout};
use crate::console::service::billing::{self as bill, StartSubscription, SubscriptionView};
use crate::console::service::{self, ActionError};
use crate::console::{Ctx, Session};

/// One subscription action: its path segment, what the confirmation page says, its button.
pub struct SubAction {
    pub segment: &'static str,
    pub title: &'static str,
    pub consequences: &'static [&'static str],
    pub button: &'static str,
    /// The client page's notice key after it.
    pub done: &'static str,
}

pub const ACTIONS: [SubAction; 4] = [
    SubAction {
        segment: "start",
        title: "Start the subscription",
        consequences: &[
            "The subscription starts now on the plan the assistant runs, at the plan's current price.",
            "With trial days in the price it starts as a trial; invoices begin when the trial ends.",
            "The setup fee, if the price has one, is on the client's first invoice.",
        ],
        button: "Start subscription",
        done: "subscription-started",
    },
    SubAction {
        segment: "cancel",
        title: "Cancel at the end of the month",
        consequences: &[
            "The client keeps the assistant until the end of this month (UTC), then it is suspended.",
            "After the retention period of the billing settings, the assistant is deleted (the volume as the settings say).",
            "Until the month ends, Reactivate undoes the cancellation.",
        ],
        button: "Cancel at period end",
        done: "subscription-cancel-scheduled",
    },
    SubAction {
        segment: "cancel-now",
        title: "Cancel now",
        consequences: &[
            "The subscription ends now and the assistant is suspended at once (reason: canceled).",
            "Days until now are still invoiced with the month; nothing after.",
            "After the retention period of the billing settings, the assistant is deleted (the volume as the settings say); until then Reactivate brings it back.",
        ],
        button: "Cancel now",
        done: "subscription-canceled",
    },
    SubAction {
        segment: "reactivate",
        title: "Reactivate the subscription",
        consequences: &[
            "A scheduled cancellation is withdrawn, or a canceled client not yet deleted becomes active again.",
            "A suspension made by the cancellation is lifted (an admin's own suspension stays).",
            "Invoicing resumes from today.",
        ],
        button: "Reactivate",
        done: "subscription-reactivated",
    },
];

pub fn action(segment: &str) -> Option<&'static SubAction> {
    ACTIONS.iter().find(|a| a.segment == segment)
}

/// The input an action applies (`start` is not an input: it creates the subscription).
pub fn action_input(segment: &str) -> Option<Input> {
    Some(match segment {
        "cancel" => Input::Cancel {
            at_period_end: true,
        },
        "cancel-now" => Input::Cancel {
            at_period_end: false,
        },
        "reactivate" => Input::Reactivate,
        _ => return None,
    })
}

/// Fixed texts for the client page's notice after a subscription action.
pub fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "subscription-started" => "The subscription was started.",
        "subscription-cancel-scheduled" => {
            "The subscription will be canceled at the end of the month."
        }
        "subscription-canceled" => {
            "The subscription was canceled; the assistant is suspended until it is deleted at the end of retention."
        }
        "subscription-reactivated" => "The subscription was reactivated.",
        "subscription-unchanged" => "Nothing changed: the subscription was already in that state.",
        "subscription-customer" => "The payment provider's customer id was saved.",
        _ => return None,
    })
}

fn state_badge(state: SubscriptionState) -> Markup {
    let class = match state {
        SubscriptionState::Active => "ok",
        SubscriptionState::Trialing => "muted",
        SubscriptionState::PastDue => "warn",
        SubscriptionState::Suspended | SubscriptionState::Canceled => "bad",
    };
    html! { span #subscription-state class={ "badge " (class) } { (state.as_str()) } }
}

fn date_row(label: &str, at: Option<i64>) -> Markup {
    html! { @if let Some(t) = at { dt { (label) } dd { (fmt_time(t)) } } }
}

/// The actions a subscription in this state offers (the state machine has the last word).
fn offered(sub: &Subscription) -> Vec<&'static SubAction> {
    let pick = |seg: &str| action(seg);
    let segs: &[&str] = match sub.state {
        SubscriptionState::Canceled if sub.deleted_at.is_none() => &["reactivate"],
        SubscriptionState::Canceled => &[],
        _ if sub.cancel_at.is_some() => &["reactivate", "cancel-now"],
        _ => &["cancel", "cancel-now"],
    };
    segs.iter().filter_map(|s| pick(s)).collect()
}

/// The panel on the client's page.
pub async fn panel(ctx: &Ctx, s: &Session, r: &ClientRow, now: i64) -> Markup {
    let view = bill::subscription(ctx, r.id).await;
    let deleted = r.deleted_at.is_some();
    html! {
        div.panel #subscription {
            h2 { "Subscription" }
            @match &view {
                Err(e) => p.error { "The subscription could not be read: " (e) },
                Ok(None) => {
                    p.dim #no-subscription { "No subscription: this client is not invoiced." }
                    @if !deleted {
                        div.actions { a.button.primary #start-subscription href={ "/clients/" (r.id) "/subscription/start" } { "Start subscription…" } }
                    }
                }
                Ok(Some(v)) => (subscription_body(s, r, v, now, deleted)),
            }
        }
    }
}

fn subscription_body(
    s: &Session,
    r: &ClientRow,
    v: &SubscriptionView,
    now: i64,
    deleted: bool,
) -> Markup {
    let sub = &v.subscription;
    let canceled = sub.state == SubscriptionState::Canceled;
    html! {
        dl.kv {
            dt { "State" } dd {
                (state_badge(sub.state))
                @if let Some(reason) = sub.suspension_reason { " " span.badge.bad #suspension-reason { (reason.describe()) } }
            }
            (date_row("Started", Some(sub.started_at)))
            (date_row("Trial ends", sub.trial_ends_at))
            (date_row("Past due since", sub.past_due_since))
            (date_row("Suspends on", sub.suspend_at))
            (date_row("Suspended since", sub.suspended_at))
            @if !canceled { (date_row("Cancels on", sub.cancel_at)) }
            (date_row("Canceled", sub.canceled_at))
            (date_row("Deletes on", sub.delete_at))
            (date_row("Deleted", sub.deleted_at))
            @if let Some(u) = &v.upcoming {
                dt { "Next" } dd #subscription-next { (u.description) span.dim { " (" (super::relative_day(u.at, now)) ", " (fmt_time(u.at)) ")" } }
            }
            dt { "Customer id" } dd {
                form.inline method="post" action={ "/clients/" (r.id) "/subscription/customer" } {
                    (csrf(s))
                    input #customer-id type="text" name="customer" value=[sub.external_customer_id.as_deref()] placeholder="cus_… (payment provider)" size="24" maxlength="255" aria-label="Payment provider customer id" disabled[deleted];
                    @if !deleted { " " button type="submit" { "Save" } }
                }
                div.dim { "Payment provider events for this customer id apply to this subscription; without one, mark invoices paid on the invoice page." }
            }
        }
        @if !deleted {
            div.actions {
                @for a in offered(sub) {
                    a.button.danger[a.segment.starts_with("cancel")] id={ "subscription-" (a.segment) } href={ "/clients/" (r.id) "/subscription/" (a.segment) } { (a.button) "…" }
                }
            }
        }
        h3 { "Invoices" }
        (invoice_table(&v.invoices, false))
    }
}

pub async fn confirm(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path((id, segment)): Path<(i64, String)>,
) -> Response {
    let Some(a) = action(&segment) else {
        return super::super::action_error(
            &ctx,
            &s,
            &ActionError::NotFound,
            &format!("/clients/{id}"),
        );
    };
    let c = match ctx.db.client(id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return super::super::action_error(&ctx, &s, &ActionError::NotFound, "/clients");
        }
        Err(e) => return super::super::action_error(&ctx, &s, &e.into(), "/clients"),
    };
    if c.deleted_at.is_some() {
        return Redirect::to(&format!("/clients/{id}")).into_response();
    }
    let body = html! {
        h1.wrap { (a.title) }
        div.panel.confirm {
            p { "Client " strong { bdi { (c.name) } } ", assistant " code { (c.namespace) "/" (c.assistant_name) } "." }
            p { strong { "What happens:" } }
            ul.consequences { @for line in a.consequences { li { (line) } } }
            form method="post" action={ "/clients/" (id) "/subscription/" (a.segment) } {
                (csrf(&s))
                @if a.segment == "start" {
                    div.form-grid {
                        label for="start-customer" { "Customer id (optional)" }
                        input #start-customer type="text" name="external_customer_id" placeholder="cus_…" maxlength="255";
                        span {}
                        label.check { input #skip-trial type="checkbox" name="skip_trial"; " Skip the trial (invoice from today)" }
                    }
                }
                div.actions {
                    @if a.segment.starts_with("cancel") { button.danger type="submit" { (a.button) } }
                    @else { button.primary type="submit" { (a.button) } }
                    a.button href={ "/clients/" (id) "#subscription" } { "Back" }
                }
            }
        }
    };
    layout(&ctx, &s, Nav::Clients, a.title, body).into_response()
}

/// The start form (a checkbox is present only when ticked).
#[derive(Debug, Default, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    external_customer_id: String,
    #[serde(default)]
    skip_trial: Option<String>,
}

pub async fn act(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path((id, segment)): Path<(i64, String)>,
    Form(f): Form<StartForm>,
) -> Response {
    let back = format!("/clients/{id}");
    let Some(a) = action(&segment) else {
        return super::super::action_error(&ctx, &s, &ActionError::NotFound, &back);
    };
    let now = service::now();
    let done = match action_input(a.segment) {
        None => {
            let customer = f.external_customer_id.trim();
            let req = StartSubscription {
                external_customer_id: (!customer.is_empty()).then(|| customer.to_string()),
                skip_trial: f.skip_trial.is_some(),
            };
            bill::start_subscription(&ctx, &s.admin, id, &req, now)
                .await
                .map(|_| a.done)
        }
        Some(input) => bill::apply(&ctx, &s.admin.email, id, &input, now)
            .await
            .map(|c| {
                if c.is_some() {
                    a.done
                } else {
                    "subscription-unchanged"
                }
            }),
    };
    match done {
        Ok(key) => {
            enforce_now(&ctx, id, now).await;
            Redirect::to(&format!("/clients/{id}?done={key}#subscription")).into_response()
        }
        Err(e) => super::super::action_error(&ctx, &s, &e, &back),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CustomerForm {
    #[serde(default)]
    customer: String,
}

pub async fn set_customer(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(f): Form<CustomerForm>,
) -> Response {
    let c = f.customer.trim();
    let customer = (!c.is_empty()).then_some(c);
    match bill::set_customer_id(&ctx, &s.admin, id, customer, service::now()).await {
        Ok(_) => Redirect::to(&format!(
            "/clients/{id}?done=subscription-customer#subscription"
        ))
        .into_response(),
        Err(e) => super::super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_but_start_is_an_input_and_has_a_notice() {
        for a in &ACTIONS {
            assert_eq!(action_input(a.segment).is_none(), a.segment == "start");
            assert!(notice_text(a.done).is_some(), "{}", a.done);
        }
        assert!(action("delete").is_none());
    }
}
