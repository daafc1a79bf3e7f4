//! Fleet: clients by phase, by gateway version and by plan.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, csrf, layout, phase_badge};
use crate::console::service::{self, AdoptRequest, BILLING_STATUSES};
use crate::console::{Ctx, Session};

fn breakdown(
    title: &str,
    m: &BTreeMap<String, i64>,
    total: i64,
    link: Option<&str>,
    badge: bool,
) -> Markup {
    let max = m.values().copied().max().unwrap_or(1).max(1);
    html! {
        div.panel {
            h2 { (title) }
            table {
                tbody {
                    @for (k, n) in m {
                        tr {
                            td.label {
                                @let label = if badge { phase_badge(k) } else { html! { (k) } };
                                @if let Some(l) = link { a href={ (l) (urlencoding::encode(k)) } { (label) } } @else { (label) }
                            }
                            td { progress.bar value=(n) max=(max) { (n) } }
                            td.num.count { (n) }
                            td.num.dim.count { (if total > 0 { n * 100 / total } else { 0 }) "%" }
                        }
                    }
                    @if m.is_empty() { tr { td.dim { "Nothing to show." } } }
                }
            }
        }
    }
}

pub async fn show(State(ctx): State<Ctx>, Extension(s): Extension<Session>) -> Response {
    let f = match service::fleet(&ctx).await {
        Ok(f) => f,
        Err(e) => return super::action_error(&ctx, &s, &e, "/clients"),
    };
    let running = f.by_phase.get("Running").copied().unwrap_or(0);
    let attention = f.need_attention;
    let body = html! {
        h1 { "Fleet" }
        div.stats {
            div.stat { div.n { (f.clients) } div.l { "clients" } }
            div.stat { div.n { (running) } div.l { "running" } }
            div.stat { div.n { (f.by_phase.get("Suspended").copied().unwrap_or(0)) } div.l { "suspended" } }
            div.stat { div.n { (attention) } div.l { "need attention" } }
            a.stat #never-connected href="/clients?never_connected=true" { div.n { (f.never_connected) } div.l { "never connected (" (ctx.opts.never_connected_days) "+ days)" } }
            a.stat #backups-missing href="/fleet/backups" { div.n { (f.without_backup_48h) } div.l { (if f.without_backup_48h == 1 { "client" } else { "clients" }) " without a backup in 48 h" } }
            div.stat { div.n { (f.by_version.len()) } div.l { "gateway versions" } }
        }
        div.grid {
            (breakdown("By phase", &f.by_phase, f.clients, Some("/clients?phase="), true))
            (breakdown("By gateway version", &f.by_version, f.clients, None, false))
            (breakdown("By plan", &f.by_plan, f.clients, Some("/clients?plan="), false))
        }
        @if !f.unmanaged.is_empty() {
            div.panel #unmanaged {
                h2 { "Assistants without a client record" }
                p.dim { "Created outside the console (for example with kubectl). They are not billed until adopted: adopting creates a client record linked to the Assistant and does not change the Assistant." }
                table.list {
                    thead { tr { th { "Assistant" } th { "Owner" } th { "Phase" } th {} } }
                    tbody {
                        @for u in &f.unmanaged {
                            tr {
                                td.wrap { code { (u.namespace) "/" (u.name) } }
                                td.wrap { bdi { (u.owner_name) } br; span.dim { (u.owner_email) } }
                                td { (phase_badge(&u.phase)) }
                                td { a.button href={ "/fleet/adopt?namespace=" (urlencoding::encode(&u.namespace)) "&name=" (urlencoding::encode(&u.name)) } { "Adopt…" } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&ctx, &s, Nav::Fleet, "Fleet", body).into_response()
}

#[derive(Deserialize, Default)]
pub struct AdoptQuery {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

fn adopt_page(
    ctx: &Ctx,
    s: &Session,
    a: &crate::api::Assistant,
    r: &AdoptRequest,
    errs: &[String],
) -> Markup {
    let billing = r.billing_status.as_deref().unwrap_or("active");
    let body = html! {
        div.titlebar { h1.wrap { "Adopt " code { (r.namespace) "/" (r.name) } } }
        @if !errs.is_empty() { ul.errors { @for e in errs { li { (e) } } } }
        div.panel {
            p { "This creates a client record for the Assistant, which keeps running unchanged. From now on its running minutes are billed to this client." }
            dl.kv {
                dt { "Owner" } dd { (a.spec.owner.name) " · " (a.spec.owner.email) span.dim { " (from spec.owner)" } }
                dt { "Plan" } dd { (service::plan_of(a, &ctx.config.default_plan)) }
                dt { "Phase" } dd { (phase_badge(service::phase_of(Some(a), true))) }
            }
            form method="post" action="/fleet/adopt" {
                (csrf(s))
                input type="hidden" name="namespace" value=(r.namespace);
                input type="hidden" name="name" value=(r.name);
                div.form-grid {
                    label for="billing_status" { "Billing status" }
                    div { select #billing_status name="billing_status" {
                        @for b in BILLING_STATUSES { option value=(b) selected[billing == b] { (b) } }
                    } }
                    label for="notes" { "Notes" }
                    div { textarea #notes name="notes" { (r.notes.as_deref().unwrap_or_default()) } }
                }
                div.actions {
                    button.primary type="submit" { "Adopt as client" }
                    a.button href="/fleet" { "Cancel" }
                }
            }
        }
    };
    layout(ctx, s, Nav::Fleet, "Adopt", body)
}

pub async fn adopt_form(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<AdoptQuery>,
) -> Response {
    let r = AdoptRequest {
        namespace: q.namespace,
        name: q.name,
        ..Default::default()
    };
    match ctx.cluster.get(&r.namespace, &r.name).await {
        Ok(Some(a)) => adopt_page(&ctx, &s, &a, &r, &[]).into_response(),
        Ok(None) => super::action_error(
            &ctx,
            &s,
            &service::ActionError::invalid(
                "name",
                format!(
                    "there is no Assistant {:?} in namespace {:?} to adopt",
                    r.name, r.namespace
                ),
            ),
            "/fleet",
        ),
        Err(e) => super::action_error(&ctx, &s, &e.into(), "/fleet"),
    }
}

pub async fn adopt(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(r): Form<AdoptRequest>,
) -> Response {
    match service::adopt(&ctx, &s.admin, &r).await {
        Ok(id) => Redirect::to(&format!("/clients/{id}?done=adopted")).into_response(),
        Err(service::ActionError::Invalid(list)) => {
            match ctx.cluster.get(&r.namespace, &r.name).await {
                // The form again, with what was typed and why it was refused.
                Ok(Some(a)) => {
                    let errs: Vec<String> = list
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect();
                    (
                        http::StatusCode::UNPROCESSABLE_ENTITY,
                        adopt_page(&ctx, &s, &a, &r, &errs),
                    )
                        .into_response()
                }
                _ => super::action_error(&ctx, &s, &service::ActionError::Invalid(list), "/fleet"),
            }
        }
        Err(e) => super::action_error(&ctx, &s, &e, "/fleet"),
    }
}
