//! Usage: running hours per client for a month, and the CSV export for invoicing.

use crate::console::extract::Query;
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;
use maud::html;
use serde::Deserialize;

use super::{Nav, layout};
use crate::console::service::{month_of, now};
use crate::console::usage;
use crate::console::{Ctx, Session};

#[derive(Deserialize, Default)]
pub struct MonthQuery {
    #[serde(default)]
    pub month: Option<String>,
}

pub async fn show(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Response {
    let month = q
        .month
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| month_of(now()));
    let report = match usage::usage_report(&ctx, &month).await {
        Ok(r) => r,
        Err(e) => return super::action_error(&ctx, &s, &e, "/usage"),
    };
    let lines = &report.lines;
    let with_usage = lines.iter().filter(|l| l.running_minutes > 0).count();
    let total: i64 = lines.iter().map(|l| l.running_minutes).sum();
    let body = html! {
        div.titlebar {
            h1 { "Usage " (month) }
            a.button href={ "/usage.csv?month=" (month) } download { "Export CSV" }
        }
        form.filters method="get" action="/usage" {
            input type="month" name="month" value=(month);
            button type="submit" { "Show" }
            span.dim { "Running minutes are sampled every minute; only the Running phase counts, under the plan observed running." }
        }
        @if let Some(n) = report.gap_notice() {
            div.banner.usage-gap role="status" { strong { "Incomplete: " } (n) "; nobody was billed for those minutes." }
        }
        div.stats {
            div.stat { div.n { (with_usage) } div.l { "clients with usage" } }
            div.stat { div.n { (format!("{:.1}", total as f64 / 60.0)) } div.l { "running hours" } }
        }
        table.list {
            thead { tr { th { "Client" } th { "Assistant" } th { "Plan" } th { "Billing" } th.num { "Minutes" } th.num { "Hours" } } }
            tbody {
                @for l in lines {
                    tr {
                        td.wrap { a href={ "/clients/" (l.client_id) } { (l.name) } @if l.deleted { " " span.badge { "deleted" } } }
                        td.wrap { code { (l.assistant) } }
                        td { (l.plan) } td { (l.billing_status) }
                        td.num { (l.running_minutes) }
                        td.num { (format!("{:.1}", l.running_minutes as f64 / 60.0)) }
                    }
                }
                @if lines.is_empty() { tr { td colspan="6" .dim { "No clients in this month." } } }
            }
        }
    };
    layout(&ctx, &s, Nav::Usage, "Usage", body).into_response()
}

pub async fn csv(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Response {
    let month = q
        .month
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| month_of(now()));
    match usage::usage_report(&ctx, &month).await {
        Ok(report) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"clawhost-usage-{month}.csv\""),
                ),
            ],
            usage::report_csv(&report),
        )
            .into_response(),
        Err(e) => super::action_error(&ctx, &s, &e, "/usage"),
    }
}
