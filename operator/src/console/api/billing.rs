//! `/api/v1/billing/...` and `/api/v1/clients/{id}/subscription...`: the billing pages'
//! actions for scripts (scopes `billing:read` / `billing:write`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{JsonBody, error};
use crate::console::Ctx;
use crate::console::billing::model::*;
use crate::console::db::Admin;
use crate::console::extract::{Path, Query};
use crate::console::pages::billing::billing_label;
use crate::console::pages::billing::invoices::enforce_now;
use crate::console::pages::billing::invoices::{csv_response, json_response, month_documents};
use crate::console::pages::billing::subscription::action_input;
use crate::console::service::billing::{
    self as bill, CreditRequest, InvoiceFilter, StartSubscription,
};
use crate::console::service::{self, ActionError, valid_month};

/// Like the rest of the API (422 with the problems, 404, 409), with billing's labels.
fn billing_error(e: ActionError) -> Response {
    super::action_error_labelled(e, billing_label)
}

fn reply<T: serde::Serialize>(r: Result<T, ActionError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => billing_error(e),
    }
}

fn created<T: serde::Serialize>(r: Result<T, ActionError>) -> Response {
    match r {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => billing_error(e),
    }
}

pub async fn prices(State(ctx): State<Ctx>) -> Response {
    reply(bill::price_list(&ctx, service::now()).await)
}

pub async fn add_price(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    JsonBody(p): JsonBody<NewPrice>,
) -> Response {
    created(bill::set_price(&ctx, &a, &p, service::now()).await)
}

pub async fn settings(State(ctx): State<Ctx>) -> Response {
    reply(bill::settings(&ctx).await)
}

/// The settings with the fields of `patch` replaced: a PUT may send only what changes.
/// An unknown field is refused (a typo would otherwise be silently ignored).
pub fn merge_settings(
    current: &BillingSettings,
    patch: &serde_json::Value,
) -> Result<BillingSettings, ActionError> {
    let Some(fields) = patch.as_object() else {
        return Err(ActionError::invalid(
            "settings",
            "a JSON object with the fields to change",
        ));
    };
    let mut merged = serde_json::to_value(current)
        .map_err(|e| ActionError::invalid("settings", e.to_string()))?;
    let mut problems = Vec::new();
    for (k, v) in fields {
        if k == "updated_at" {
            continue;
        }
        match merged.get_mut(k) {
            Some(slot) => *slot = v.clone(),
            None => problems.push(service::FieldError {
                field: k.clone(),
                message: "no such setting".into(),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(ActionError::Invalid(problems));
    }
    serde_json::from_value(merged).map_err(|e| ActionError::invalid("settings", e.to_string()))
}

pub async fn put_settings(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Response {
    let r = match bill::settings(&ctx).await {
        Ok(current) => match merge_settings(&current, &patch) {
            Ok(s) => bill::update_settings(&ctx, &a, &s, service::now()).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    reply(r)
}

#[derive(Deserialize)]
pub struct DaysQuery {
    #[serde(default)]
    days: Option<i64>,
}

pub async fn attention(State(ctx): State<Ctx>, Query(q): Query<DaysQuery>) -> Response {
    let days = q
        .days
        .unwrap_or(crate::console::pages::billing::ATTENTION_DAYS);
    if !(0..=366).contains(&days) {
        return billing_error(ActionError::invalid("days", "between 0 and 366"));
    }
    reply(bill::attention(&ctx, service::now(), days).await)
}

/// `{"subscription": null, ...}` for a client without one (404 only for no such client).
pub async fn subscription(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Response {
    match ctx.db.client(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return billing_error(ActionError::NotFound),
        Err(e) => return billing_error(e.into()),
    }
    match bill::subscription(&ctx, id).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => {
            Json(json!({"subscription": null, "upcoming": null, "invoices": []})).into_response()
        }
        Err(e) => billing_error(e),
    }
}

pub async fn start(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    // The body is optional: none starts with the defaults (the plan's trial, no customer).
    let req: StartSubscription = if body.iter().all(u8::is_ascii_whitespace) {
        StartSubscription::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
        }
    };
    let now = service::now();
    let r = bill::start_subscription(&ctx, &a, id, &req, now).await;
    if r.is_ok() {
        enforce_now(&ctx, id, now).await;
    }
    created(r)
}

/// `cancel`, `cancel-now`, `reactivate`: the change made (`changed: false` when the
/// subscription already was so).
pub async fn act(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let Some(input) = action_input(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown subscription action: use cancel, cancel-now or reactivate (POST .../subscription starts one)",
        );
    };
    let now = service::now();
    match bill::apply(&ctx, &a.email, id, &input, now).await {
        Ok(change) => {
            enforce_now(&ctx, id, now).await;
            Json(json!({
                "changed": change.is_some(),
                "event": change.as_ref().map(|c| c.event),
                "from": change.as_ref().map(|c| c.from),
                "to": change.as_ref().map(|c| c.to),
                "subscription": change.map(|c| c.subscription),
            }))
            .into_response()
        }
        Err(e) => billing_error(e),
    }
}

#[derive(Deserialize)]
pub struct CustomerBody {
    /// `null` or empty clears it.
    #[serde(default)]
    external_customer_id: Option<String>,
}

pub async fn set_customer(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<CustomerBody>,
) -> Response {
    let c = b
        .external_customer_id
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    reply(bill::set_customer_id(&ctx, &a, id, c, service::now()).await)
}

#[derive(Deserialize)]
pub struct RunBody {
    month: String,
}

pub async fn run_invoices(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    JsonBody(b): JsonBody<RunBody>,
) -> Response {
    reply(bill::run_invoices(&ctx, &a.email, b.month.trim(), service::now()).await)
}

#[derive(Deserialize)]
pub struct InvoiceQuery {
    #[serde(default)]
    month: Option<String>,
    #[serde(default)]
    client_id: Option<i64>,
    #[serde(default)]
    unpaid: Option<bool>,
}

pub async fn invoices(State(ctx): State<Ctx>, Query(q): Query<InvoiceQuery>) -> Response {
    let month = q
        .month
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    if let Some(m) = &month
        && !valid_month(m)
    {
        return billing_error(ActionError::invalid("month", "a month as YYYY-MM"));
    }
    let f = InvoiceFilter {
        month,
        client_id: q.client_id,
        unpaid_only: q.unpaid.unwrap_or(false),
    };
    match bill::invoices(&ctx, &f).await {
        Ok(list) => Json(json!({ "invoices": list })).into_response(),
        Err(e) => billing_error(e),
    }
}

pub async fn invoice(State(ctx): State<Ctx>, Path(number): Path<String>) -> Response {
    reply(bill::invoice(&ctx, &number).await)
}

pub async fn mark_paid(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(number): Path<String>,
) -> Response {
    let now = service::now();
    match bill::mark_paid(&ctx, &a.email, &number, "console", now).await {
        Ok(inv) => {
            enforce_now(&ctx, inv.client_id, now).await;
            Json(inv).into_response()
        }
        Err(e) => billing_error(e),
    }
}

pub async fn credit_note(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(number): Path<String>,
    JsonBody(b): JsonBody<CreditRequest>,
) -> Response {
    let now = service::now();
    let r = bill::credit_note(&ctx, &a, &number, &b, now).await;
    // As with "mark paid": a credit that settles the debt resumes the client at once.
    if let Ok(cn) = &r {
        enforce_now(&ctx, cn.client_id, now).await;
    }
    created(r)
}

#[derive(Deserialize)]
pub struct MonthQuery {
    #[serde(default)]
    month: Option<String>,
}

pub async fn export_csv(State(ctx): State<Ctx>, Query(q): Query<MonthQuery>) -> Response {
    match month_documents(&ctx, q.month.as_deref()).await {
        Ok((m, list)) => csv_response(&m, &list),
        Err(e) => billing_error(e),
    }
}

pub async fn export_json(State(ctx): State<Ctx>, Query(q): Query<MonthQuery>) -> Response {
    match month_documents(&ctx, q.month.as_deref()).await {
        Ok((m, list)) => json_response(&m, &list),
        Err(e) => billing_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_changes_only_the_fields_sent() {
        let cur = BillingSettings::default();
        let s = merge_settings(&cur, &json!({"grace_days": 3, "seller": "ACME"})).unwrap();
        assert_eq!(s.grace_days, 3);
        assert_eq!(s.seller, "ACME");
        assert_eq!(s.retention_days, cur.retention_days);
    }

    #[test]
    fn a_put_refuses_unknown_and_mistyped_fields() {
        let cur = BillingSettings::default();
        match merge_settings(&cur, &json!({"grace_dayz": 3})) {
            Err(ActionError::Invalid(p)) => assert_eq!(p[0].field, "grace_dayz"),
            other => panic!("{other:?}"),
        }
        assert!(merge_settings(&cur, &json!({"grace_days": "x"})).is_err());
        assert!(merge_settings(&cur, &json!([1])).is_err());
    }
}
