//! The audit log: who did what, when, with before and after.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, fmt_time, layout, opt};
use crate::console::db::AuditEvent;
use crate::console::{Ctx, Session};

pub const PAGE: i64 = 100;

pub fn audit_table(events: &[AuditEvent], with_target: bool) -> Markup {
    html! {
        table {
            thead { tr { th { "When" } th { "Who" } th { "Action" } @if with_target { th { "Target" } } th { "Before" } th { "After" } } }
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
                        td.wrap { code { bdi { (opt(e.before.as_deref())) } } }
                        td.wrap { code { bdi { (opt(e.after.as_deref())) } } }
                    }
                }
                @if events.is_empty() { tr { td colspan="6" .dim { "No events." } } }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page: Option<u32>,
}

pub async fn show(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).max(1) as i64;
    let events = match ctx.db.audit_events(None, PAGE, (page - 1) * PAGE).await {
        Ok(e) => e,
        Err(e) => return super::action_error(&ctx, &s, &e.into(), "/clients"),
    };
    let body = html! {
        h1 { "Audit log" }
        (audit_table(&events, true))
        div.pager {
            @if page > 1 { a href={ "/audit?page=" (page - 1) } { "← Newer" } }
            span { "Page " (page) }
            @if events.len() as i64 == PAGE { a href={ "/audit?page=" (page + 1) } { "Older →" } }
        }
    };
    layout(&ctx, &s, Nav::Audit, "Audit log", body).into_response()
}
