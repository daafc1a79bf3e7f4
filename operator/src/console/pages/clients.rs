//! Clients list and the new-client form.

use crate::console::extract::{Form, Query};
use axum::Extension;
use axum::extract::State;
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
        ("sort", &q.sort),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", urlencoding::encode(v)));
        }
    }
    if let Some(pp) = q.per_page {
        parts.push(format!("per_page={pp}"));
    }
    if q.include_deleted == Some(true) {
        parts.push("include_deleted=true".into());
    }
    if q.never_connected == Some(true) {
        parts.push("never_connected=true".into());
    }
    format!("/clients?{}", parts.join("&"))
}

/// The same filters, first page, another order.
fn sort_link(q: &ListQuery, sort: &str) -> String {
    let mut q = q.clone();
    q.sort = Some(sort.to_string());
    page_link(&q, 1)
}

/// A column header that sorts the list by it (bold when it is the current order).
fn sort_header(q: &ListQuery, sort: &str, label: &str) -> Markup {
    let current = q.sort.as_deref().unwrap_or("name") == sort;
    html! { a.sort href=(sort_link(q, sort)) aria-current=[current.then_some("true")] { (label) @if current { " ▾" } } }
}

/// "Client X was deleted; its volume was …": read back from the record and the delete's
/// audit event, so the notice states what happened, never what a link claims.
async fn deleted_notice(ctx: &Ctx, id: i64) -> Option<String> {
    let c = ctx.db.client(id).await.ok()??;
    c.deleted_at?;
    let ev = ctx
        .db
        .audit_events(Some(id), 1, 0)
        .await
        .ok()?
        .into_iter()
        .next();
    let volume = ev
        .filter(|e| e.action == "client.delete")
        .and_then(|e| e.after)
        .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
        .and_then(|a| a["volume"].as_str().map(str::to_string));
    let what = match volume.as_deref() {
        Some("Retain") => "its volume was retained (unlinked and labelled retained)",
        Some("Delete") => "its volume was deleted with the assistant",
        _ => "it had no assistant in the cluster",
    };
    Some(format!(
        "Client {} ({}) was deleted; {what}. The record is kept for invoicing.",
        c.name, c.assistant_name
    ))
}

#[derive(serde::Deserialize, Default)]
pub struct DeletedNotice {
    #[serde(default)]
    deleted: Option<i64>,
}

pub async fn list(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<ListQuery>,
    Query(n): Query<DeletedNotice>,
) -> Response {
    let notice = match n.deleted {
        Some(id) => deleted_notice(&ctx, id).await,
        None => None,
    };
    let page = match service::list_clients(&ctx, &q).await {
        Ok(p) => p,
        Err(e) => return super::action_error(&ctx, &s, &e, "/clients"),
    };
    let now = service::now();
    let ok = page.cluster_error.is_none();
    let pages = ((page.total + page.per_page as i64 - 1) / page.per_page as i64).max(1);
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let body = html! {
        @if let Some(t) = &notice { div.notice role="status" { (t) } }
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
            label.check { input type="checkbox" name="include_deleted" value="true" checked[q.include_deleted == Some(true)]; " Show deleted" }
            label.check { input #never-connected type="checkbox" name="never_connected" value="true" checked[q.never_connected == Some(true)]; " Never connected" }
            @if let Some(sort) = q.sort.as_deref().filter(|s| service::LIST_SORTS.contains(s)) {
                input type="hidden" name="sort" value=(sort);
            }
            button type="submit" { "Filter" }
            span.dim { (page.total) " client" @if page.total != 1 { "s" } }
        }
        table.list {
            thead { tr {
                // The first column is the default order: the client's name.
                th { (sort_header(&q, "name", "Client")) } th { (sort_header(&q, "assistant", "Assistant")) } th { "Plan" } th { (sort_header(&q, "phase", "Phase")) } th { "Ready" }
                th { "Version" } th { "Tailnet name" } th.num { (sort_header(&q, "created", "Age")) }
            } }
            tbody {
                @for v in &page.items {
                    tr class=[v.record.deleted_at.is_some().then_some("deleted")] {
                        td.wrap { a href={ "/clients/" (v.record.id) } { bdi { (v.record.name) } } br; span.dim { (v.record.email) } }
                        td.wrap { code { (v.record.assistant_name) } }
                        td { (opt(v.plan(&ctx.config.default_plan).as_deref())) }
                        td {
                            @if v.record.deleted_at.is_some() { span.badge.muted { "Deleted" } } @else {
                                (phase_badge(v.phase(ok)))
                                @if let Some(p) = v.last_known_phase(ok) { br; span.dim.stale title="last known before the cluster became unreachable" { "was " (p) } }
                            }
                        }
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

/// Next to its field the message alone is enough: the label is right beside it.
fn errs_markup(errs: &[FieldError], prefixes: &[&str]) -> Markup {
    html! { @for e in field_errors(errs, prefixes) { div.field-error { (e.message) } } }
}

/// Which secret inputs a refused submit had filled in (they are not sent back).
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretsDropped {
    pub tailscale_auth_key: bool,
    pub model_api_key: bool,
}

fn dropped_markup(dropped: bool) -> Markup {
    html! { @if dropped { div.field-error.dropped { "For your safety the key was not kept; enter it again." } } }
}

/// The new-client form, with values and per-field messages after a refused submission.
pub fn new_client_form(ctx: &Ctx, s: &Session, v: &NewClient, errs: &[FieldError]) -> Markup {
    new_client_form_dropped(ctx, s, v, errs, SecretsDropped::default())
}

/// The form after a refused submit that had secrets: says next to each that it was cleared.
pub fn new_client_form_dropped(
    ctx: &Ctx,
    s: &Session,
    v: &NewClient,
    errs: &[FieldError],
    dropped: SecretsDropped,
) -> Markup {
    use crate::validation::{MAX_DNS_LABEL_LEN, MAX_EMAIL_LEN, MAX_NAME_LEN, MAX_OWNER_NAME_CHARS};
    use service::{MAX_NOTES, MAX_SECRET_INPUT};
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
                @for e in errs { li { strong { (service::field_label(&e.field)) } ": " (e.message) } }
            }
        }
        // novalidate: the server's messages (the same as `clawhost render`) are the ones shown.
        form method="post" action="/clients" autocomplete="off" novalidate {
            (csrf(s))
            fieldset {
                legend { "Client" }
                div.form-grid {
                    label for="name" { "Client name" }
                    div { input #name type="text" name="name" value=(v.name) required maxlength=(MAX_OWNER_NAME_CHARS);
                          div.hint { "Shown on invoices and in the gateway (any language)." }
                          (errs_markup(errs, &["spec.owner.name", "name"])) }
                    label for="email" { "E-mail" }
                    div { input #email type="email" name="email" value=(v.email) required maxlength=(MAX_EMAIL_LEN);
                          (errs_markup(errs, &["spec.owner.email", "email"])) }
                    label for="billing_status" { "Billing status" }
                    div { select #billing_status name="billing_status" {
                            @for b in BILLING_STATUSES { option value=(b) selected[billing == b] { (b) } }
                          }
                          (errs_markup(errs, &["billing_status"])) }
                    label for="notes" { "Notes" }
                    div { textarea #notes name="notes" maxlength=(MAX_NOTES) { (v.notes.as_deref().unwrap_or_default()) }
                          (errs_markup(errs, &["notes"])) }
                }
            }
            fieldset {
                legend { "Assistant" }
                div.form-grid {
                    label for="assistant_name" { "Assistant name" }
                    div { input #assistant_name type="text" name="assistant_name" value=(v.assistant_name) required maxlength=(MAX_NAME_LEN);
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
                    @if let Some(r) = v.restore_from.as_deref().filter(|r| !r.is_empty()) {
                        label { "Restore from" }
                        div #restore-from {
                            input type="hidden" name="restore_from" value=(r);
                            @if let Some(from) = v.from { input type="hidden" name="from" value=(from); }
                            code { (r) }
                            div.hint { "The new client's volume starts as this snapshot (spec.storage.restoreFrom); the operator checks it is ready before making the volume." }
                            (errs_markup(errs, &["spec.storage.restoreFrom", "restore_from"]))
                        }
                    }
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
                    div { input #tailscale_auth_key type="password" name="tailscale_auth_key" autocomplete="new-password" maxlength=(MAX_SECRET_INPUT);
                          div.hint { "Stored in a Secret; never shown again." }
                          (dropped_markup(dropped.tailscale_auth_key))
                          (errs_markup(errs, &["spec.tailscale.authKeySecretRef", "tailscale_auth_key"]))
                          @for e in errs.iter().filter(|e| e.field == "spec.tailscale") { div.field-error { (e.message) } } }
                    label for="tailscale_hostname" { "Tailnet machine name" }
                    div { input #tailscale_hostname type="text" name="tailscale_hostname" value=[v.tailscale_hostname.as_deref()] maxlength=(MAX_DNS_LABEL_LEN);
                          div.hint { "Optional DNS label; derived from the assistant name when empty." }
                          (errs_markup(errs, &["spec.tailscale.hostname", "spec.tailscale.tags"])) }
                    label for="model_provider" { "Model provider" }
                    div { select #model_provider name="model_provider" {
                            option value="" { "None" }
                            @for (id, label, _) in MODEL_PROVIDERS { option value=(id) selected[v.model_provider.as_deref() == Some(id)] { (label) } }
                          }
                          (errs_markup(errs, &["model_provider"])) }
                    label for="model_api_key" { "Model API key" }
                    div { input #model_api_key type="password" name="model_api_key" autocomplete="new-password" maxlength=(MAX_SECRET_INPUT);
                          div.hint { "Stored in a Secret; never shown again." }
                          (dropped_markup(dropped.model_api_key))
                          (errs_markup(errs, &["model_api_key", "spec.gateway.env"])) }
                }
            }
            div.actions { button.primary type="submit" { "Create client" } a.button href="/clients" { "Cancel" } }
        }
    };
    layout(ctx, s, Nav::Clients, "New client", body)
}

/// `?restoreFrom=<snapshot>&from=<client id>`: "Restore as new client…" of a snapshot.
#[derive(serde::Deserialize, Default)]
pub struct NewFormQuery {
    #[serde(default, rename = "restoreFrom")]
    restore_from: Option<String>,
    #[serde(default)]
    from: Option<i64>,
}

pub async fn new_form(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<NewFormQuery>,
) -> Response {
    let mut v = NewClient {
        restore_from: q.restore_from.filter(|r| !r.trim().is_empty()),
        from: q.from,
        ..Default::default()
    };
    let mut errs = Vec::new();
    // Pre-filled from the client the snapshot was taken of: the same owner and plan.
    if let Some(from) = q.from
        && let Ok(Some(c)) = ctx.db.client(from).await
    {
        v.name = c.name.clone();
        v.email = c.email.clone();
        if let Ok(Some(a)) = ctx.cluster.get(&c.namespace, &c.assistant_name).await {
            v.plan = Some(service::plan_of(&a, &ctx.config.default_plan));
            v.on_delete = Some(format!("{:?}", a.storage().on_delete));
        }
        if v.restore_from.is_some() && c.namespace != ctx.opts.namespace {
            errs.push(FieldError {
                field: "restore_from".into(),
                message: format!(
                    "the snapshot is in namespace {}, new clients are created in {}: a volume is restored only within its namespace",
                    c.namespace, ctx.opts.namespace
                ),
            });
        }
    }
    new_client_form(&ctx, &s, &v, &errs).into_response()
}

pub async fn create(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(n): Form<NewClient>,
) -> Response {
    match service::create_client(&ctx, &s.admin, &n).await {
        Ok(c) => match (&c.handoff, ctx.db.client(c.client_id).await) {
            (Some(link), Ok(Some(row))) => no_store(super::access::link_page(
                &ctx,
                &s,
                &row,
                "Client created",
                link,
                Some(&c.gateway_token),
                &c.warnings,
            )),
            _ => no_store(super::client::token_page(
                &ctx,
                &s,
                c.client_id,
                "Client created",
                &c.gateway_token,
                &c.warnings,
            )),
        },
        Err(ActionError::Invalid(errs)) => {
            // Secrets are not echoed back into the form; the form says so next to them.
            let filled = |k: &Option<String>| k.as_deref().is_some_and(|k| !k.trim().is_empty());
            let dropped = SecretsDropped {
                tailscale_auth_key: filled(&n.tailscale_auth_key),
                model_api_key: filled(&n.model_api_key),
            };
            let mut v = n.clone();
            v.tailscale_auth_key = None;
            v.model_api_key = None;
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                new_client_form_dropped(&ctx, &s, &v, &errs, dropped),
            )
                .into_response()
        }
        Err(e) => super::action_error(&ctx, &s, &e, "/clients/new"),
    }
}
