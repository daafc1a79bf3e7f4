//! Clients list and the new-client form.

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::{Markup, html};

use super::{Nav, age, csrf, layout, no_store, opt, phase_badge, ready_badge};
use crate::api::Phase;
use crate::console::service::{
    self, ActionError, BILLING_STATUSES, FieldError, ListQuery, MODEL_PROVIDERS, NewClient,
};
use crate::console::{Ctx, Session};

fn page_link(q: &ListQuery, page: u32) -> String {
    let mut parts = vec![format!("page={page}")];
    for (k, v) in [
        ("q", &q.q),
        ("plan", &q.plan),
        ("phase", &q.phase),
        ("billing", &q.billing),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", urlencoding::encode(v)));
        }
    }
    if let Some(pp) = q.per_page {
        parts.push(format!("per_page={pp}"));
    }
    format!("/clients?{}", parts.join("&"))
}

pub async fn list(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> Response {
    let page = match service::list_clients(&ctx, &q).await {
        Ok(p) => p,
        Err(e) => return super::action_error(&ctx, &s, &e, "/clients"),
    };
    let now = service::now();
    let ok = page.cluster_error.is_none();
    let pages = ((page.total + page.per_page as i64 - 1) / page.per_page as i64).max(1);
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let body = html! {
        div.titlebar {
            h1 { "Clients" }
            a.button.primary href="/clients/new" { "New client" }
        }
        form.filters method="get" action="/clients" {
            input type="search" name="q" placeholder="Search name, e-mail or assistant" value=[q.q.as_deref()] size="32";
            select name="plan" {
                option value="" { "All plans" }
                @for p in ctx.config.plans.keys() { option value=(p) selected[sel(&q.plan, p)] { (p) } }
            }
            select name="phase" {
                option value="" { "All phases" }
                @for p in Phase::ALL.iter().map(|p| p.as_str()).chain(["Missing", "Unknown"]) {
                    option value=(p) selected[sel(&q.phase, p)] { (p) }
                }
            }
            select name="billing" {
                option value="" { "All billing" }
                @for b in BILLING_STATUSES { option value=(b) selected[sel(&q.billing, b)] { (b) } }
            }
            button type="submit" { "Filter" }
            span.dim { (page.total) " client" @if page.total != 1 { "s" } }
        }
        table.list {
            thead { tr {
                th { "Name" } th { "Owner" } th { "Plan" } th { "Phase" } th { "Ready" }
                th { "Version" } th { "Tailnet name" } th.num { "Age" }
            } }
            tbody {
                @for v in &page.items {
                    tr {
                        td.wrap { a href={ "/clients/" (v.record.id) } { (v.record.assistant_name) } }
                        td.wrap { (v.record.name) br; span.dim { (v.record.email) } }
                        td { (v.record.plan) }
                        td { (phase_badge(v.phase(ok))) }
                        td { (ready_badge(v.ready())) }
                        td { (opt(v.version().as_deref())) }
                        td.wrap { (opt(v.tailnet().as_deref())) }
                        td.num title=(super::fmt_time(v.created())) { (age(v.created(), now)) }
                    }
                }
                @if page.items.is_empty() {
                    tr { td colspan="8" .dim { "No clients match." } }
                }
            }
        }
        div.pager {
            @if page.page > 1 { a href=(page_link(&q, page.page - 1)) { "← Previous" } }
            span { "Page " (page.page) " of " (pages) }
            @if (page.page as i64) < pages { a href=(page_link(&q, page.page + 1)) { "Next →" } }
        }
    };
    layout(&ctx, &s, Nav::Clients, "Clients", body).into_response()
}

fn field_errors<'a>(errs: &'a [FieldError], prefixes: &[&str]) -> Vec<&'a FieldError> {
    errs.iter()
        .filter(|e| {
            prefixes
                .iter()
                .any(|p| e.field == *p || e.field.starts_with(&format!("{p}.")))
        })
        .collect()
}

fn errs_markup(errs: &[FieldError], prefixes: &[&str]) -> Markup {
    html! { @for e in field_errors(errs, prefixes) { div.field-error { code { (e.field) } ": " (e.message) } } }
}

/// The new-client form, with values and per-field messages after a refused submission.
pub fn new_client_form(ctx: &Ctx, s: &Session, v: &NewClient, errs: &[FieldError]) -> Markup {
    let plan = v
        .plan
        .clone()
        .unwrap_or_else(|| ctx.config.default_plan.clone());
    let billing = v.billing_status.clone().unwrap_or_else(|| "active".into());
    let on_delete = v.on_delete.clone().unwrap_or_else(|| "Retain".into());
    let body = html! {
        div.titlebar { h1 { "New client" } }
        @if !errs.is_empty() {
            ul.errors {
                li { strong { "The client was not created. Fix these problems:" } }
                @for e in errs { li { code { (e.field) } ": " (e.message) } }
            }
        }
        // novalidate: the server's messages (the same as `clawhost render`) are the ones shown.
        form method="post" action="/clients" autocomplete="off" novalidate {
            (csrf(s))
            fieldset {
                legend { "Client" }
                div.form-grid {
                    label for="name" { "Client name" }
                    div { input #name type="text" name="name" value=(v.name) required maxlength="400";
                          div.hint { "Shown on invoices and in the gateway (any language)." }
                          (errs_markup(errs, &["spec.owner.name", "name"])) }
                    label for="email" { "E-mail" }
                    div { input #email type="email" name="email" value=(v.email) required;
                          (errs_markup(errs, &["spec.owner.email", "email"])) }
                    label for="billing_status" { "Billing status" }
                    div { select #billing_status name="billing_status" {
                            @for b in BILLING_STATUSES { option value=(b) selected[billing == b] { (b) } }
                          }
                          (errs_markup(errs, &["billing_status"])) }
                    label for="notes" { "Notes" }
                    div { textarea #notes name="notes" { (v.notes.as_deref().unwrap_or_default()) }
                          (errs_markup(errs, &["notes"])) }
                }
            }
            fieldset {
                legend { "Assistant" }
                div.form-grid {
                    label for="assistant_name" { "Assistant name" }
                    div { input #assistant_name type="text" name="assistant_name" value=(v.assistant_name) required;
                          div.hint { "Kubernetes name in namespace " code { (ctx.opts.namespace) } ": lowercase letters, digits, '-' and '.'." }
                          (errs_markup(errs, &["metadata.name"])) }
                    label for="plan" { "Plan" }
                    div { select #plan name="plan" {
                            @for p in ctx.config.plans.keys() { option value=(p) selected[plan == *p] { (p) } }
                          }
                          (errs_markup(errs, &["spec.plan", "spec.resources"])) }
                    label for="version" { "openclaw version" }
                    div { input #version type="text" name="version" value=[v.version.as_deref()] placeholder=(ctx.config.gateway.default_version);
                          div.hint { "Empty: the fleet default (" (ctx.config.gateway.default_version) ")." }
                          (errs_markup(errs, &["spec.gateway.version", "spec.gateway.image"])) }
                    label for="on_delete" { "Volume on deletion" }
                    div { select #on_delete name="on_delete" {
                            option value="Retain" selected[on_delete == "Retain"] { "Retain (keep the client's data)" }
                            option value="Delete" selected[on_delete == "Delete"] { "Delete with the assistant" }
                          }
                          (errs_markup(errs, &["spec.storage"])) }
                }
            }
            fieldset {
                legend { "Credentials" }
                div.form-grid {
                    label for="tailscale_auth_key" { "Tailscale auth key" }
                    div { input #tailscale_auth_key type="password" name="tailscale_auth_key" autocomplete="new-password";
                          div.hint { "Stored in a Secret; never shown again." }
                          (errs_markup(errs, &["spec.tailscale", "tailscale_auth_key"])) }
                    label for="tailscale_hostname" { "Tailnet machine name" }
                    div { input #tailscale_hostname type="text" name="tailscale_hostname" value=[v.tailscale_hostname.as_deref()];
                          div.hint { "Optional DNS label; derived from the assistant name when empty." } }
                    label for="model_provider" { "Model provider" }
                    div { select #model_provider name="model_provider" {
                            option value="" { "None" }
                            @for (id, label, _) in MODEL_PROVIDERS { option value=(id) selected[v.model_provider.as_deref() == Some(id)] { (label) } }
                          }
                          (errs_markup(errs, &["model_provider"])) }
                    label for="model_api_key" { "Model API key" }
                    div { input #model_api_key type="password" name="model_api_key" autocomplete="new-password";
                          div.hint { "Stored in a Secret; never shown again." }
                          (errs_markup(errs, &["model_api_key", "spec.gateway.env"])) }
                }
            }
            div.actions { button.primary type="submit" { "Create client" } a.button href="/clients" { "Cancel" } }
        }
    };
    layout(ctx, s, Nav::Clients, "New client", body)
}

pub async fn new_form(State(ctx): State<Ctx>, Extension(s): Extension<Session>) -> Response {
    new_client_form(&ctx, &s, &NewClient::default(), &[]).into_response()
}

pub async fn create(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(n): Form<NewClient>,
) -> Response {
    match service::create_client(&ctx, &s.admin, &n).await {
        Ok(c) => no_store(super::client::token_page(
            &ctx,
            &s,
            c.client_id,
            "Client created",
            &c.gateway_token,
            &c.warnings,
        )),
        Err(ActionError::Invalid(errs)) => {
            // Secrets are not echoed back into the form.
            let mut v = n.clone();
            v.tailscale_auth_key = None;
            v.model_api_key = None;
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                new_client_form(&ctx, &s, &v, &errs),
            )
                .into_response()
        }
        Err(e) => super::action_error(&ctx, &s, &e, "/clients/new"),
    }
}
