//! Fleet: clients by phase, by gateway version and by plan.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::{Nav, layout, phase_badge};
use crate::console::service;
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
    let attention: i64 = ["Degraded", "Failed", "Missing"]
        .iter()
        .filter_map(|p| f.by_phase.get(*p))
        .sum();
    let body = html! {
        h1 { "Fleet" }
        div.stats {
            div.stat { div.n { (f.clients) } div.l { "clients" } }
            div.stat { div.n { (running) } div.l { "running" } }
            div.stat { div.n { (f.by_phase.get("Suspended").copied().unwrap_or(0)) } div.l { "suspended" } }
            div.stat { div.n { (attention) } div.l { "need attention" } }
            div.stat { div.n { (f.by_version.len()) } div.l { "gateway versions" } }
        }
        div.grid {
            (breakdown("By phase", &f.by_phase, f.clients, Some("/clients?phase="), true))
            (breakdown("By gateway version", &f.by_version, f.clients, None, false))
            (breakdown("By plan", &f.by_plan, f.clients, Some("/clients?plan="), false))
        }
        @if !f.unmanaged.is_empty() {
            div.panel {
                h2 { "Assistants without a client record" }
                p.dim { "Created outside the console (for example with kubectl)." }
                ul { @for u in &f.unmanaged { li { code { (u) } } } }
            }
        }
    };
    layout(&ctx, &s, Nav::Fleet, "Fleet", body).into_response()
}
