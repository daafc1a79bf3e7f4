//! The audit log: who did what, when, and what changed; filtered and paged.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::{Nav, fmt_time, layout};
use crate::console::db::AuditEvent;
use crate::console::extract::Query;
use crate::console::service::{self, AuditQuery, changes};
use crate::console::{Ctx, Session};

/// What an event changed, one `field: before → after` line each (not raw JSON).
fn changes_markup(e: &AuditEvent) -> Markup {
    let list = changes(e.before.as_deref(), e.after.as_deref());
    html! {
        @if list.is_empty() { span.dim { "—" } }
        ul.changes {
            @for c in &list {
                li {
                    @if !c.field.is_empty() { bdi.field { (c.field) } ": " }
                    @match (&c.before, &c.after) {
                        (Some(b), Some(a)) => { bdi.before { (b) } " → " bdi.after { (a) } },
                        (None, Some(a)) => { bdi.after { (a) } },
                        (Some(b), None) => { bdi.before { (b) } },
                        (None, None) => {},
                    }
                }
            }
        }
    }
}

pub fn audit_table(events: &[AuditEvent], with_target: bool) -> Markup {
    html! {
        table.audit {
            thead { tr { th { "When" } th { "Who" } th { "Action" } @if with_target { th { "Target" } } th { "Changes" } } }
            tbody {
                @for e in events {
                    tr {
                        td { (fmt_time(e.at)) }
                        // Every user-supplied value is isolated (<bdi>): a bidi control in an
                        // old entry cannot visually reorder its neighbours.
                        td.wrap { bdi { (e.actor) } }
                        td { code { bdi { (e.action) } } }
                        @if with_target {
                            td.wrap { @if let Some(id) = e.client_id { a href={ "/clients/" (id) } { bdi { (e.target) } } } @else { bdi { (e.target) } } }
                        }
                        td.wrap { (changes_markup(e)) }
                    }
                }
                @if events.is_empty() { tr { td colspan="5" .dim { "No events." } } }
            }
        }
    }
}

/// `/audit` with the same filters and another page.
fn page_link(q: &AuditQuery, page: i64) -> String {
    let mut parts = vec![format!("page={page}")];
    for (k, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("client", &q.client),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", urlencoding::encode(v)));
        }
    }
    if let Some(id) = q.client_id {
        parts.push(format!("client_id={id}"));
    }
    format!("/audit?{}", parts.join("&"))
}

pub async fn show(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (result, actions) = futures::join!(service::audit_page(&ctx, &q), ctx.db.audit_actions());
    let page = match result {
        Ok(p) => p,
        Err(e) => return super::action_error(&ctx, &s, &e, "/audit"),
    };
    let actions = actions.unwrap_or_default();
    let pages = ((page.total + page.per_page - 1) / page.per_page).max(1);
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/audit" {
            input type="search" name="actor" placeholder="Who (e-mail)" value=[q.actor.as_deref()] size="20" aria-label="Who";
            select name="action" aria-label="Action" {
                option value="" { "All actions" }
                @for a in &actions { option value=(a) selected[q.action.as_deref() == Some(a.as_str())] { (a) } }
            }
            input type="search" name="client" placeholder="Client (assistant name)" value=[q.client.as_deref()] size="20" aria-label="Client";
            @if let Some(id) = q.client_id { input type="hidden" name="client_id" value=(id); }
            label.check { "From " input type="date" name="from" value=[q.from.as_deref()]; }
            label.check { "to " input type="date" name="to" value=[q.to.as_deref()]; }
            button type="submit" { "Filter" }
            span.dim { (page.total) " event" @if page.total != 1 { "s" } }
        }
        (audit_table(&page.events, true))
        div.pager {
            @if page.page > 1 { a href=(page_link(&q, page.page - 1)) { "← Newer" } }
            span { "Page " (page.page) " of " (pages) }
            @if page.page < pages { a href=(page_link(&q, page.page + 1)) { "Older →" } }
        }
    };
    layout(&ctx, &s, Nav::Audit, "Audit log", body).into_response()
}
