//! The month's invoices and credit notes, the invoice run, exports, and one printable
//! invoice (the browser prints it to PDF: a print style sheet hides the console around it).

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::{form_errors, money, subnav};
use crate::console::billing::model::*;
use crate::console::extract::{Form, Path, Query};
use crate::console::pages::{Nav, csrf, fmt_time, layout};
use crate::console::service::billing::{self as bill, CreditRequest, InvoiceFilter};
use crate::console::service::{self, ActionError, FieldError, month_of, valid_month};
use crate::console::{Ctx, Session};

/// The page of one invoice (numbers are the business's prefix and digits, encoded anyway).
pub fn invoice_href(number: &str) -> String {
    format!("/billing/invoices/{}", urlencoding::encode(number))
}

#[derive(Deserialize, Default)]
pub struct MonthQuery {
    #[serde(default)]
    pub month: Option<String>,
    #[serde(default)]
    pub done: Option<String>,
}

/// The month asked for, or the previous month (the one an invoice run is for).
fn month_or_last(q: Option<&str>, now: i64) -> Result<String, ActionError> {
    match q.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) if valid_month(m) => Ok(m.to_string()),
        Some(_) => Err(ActionError::invalid("month", "a month as YYYY-MM")),
        None => Ok(previous_month(now)),
    }
}

/// `YYYY-MM` of the month before the one `now` falls in.
pub fn previous_month(now: i64) -> String {
    let this = month_of(now);
    let first = day_start(&format!("{this}-01")).unwrap_or(now);
    month_of(first - 1)
}

fn kind_label(k: DocumentKind) -> &'static str {
    match k {
        DocumentKind::Invoice => "Invoice",
        DocumentKind::CreditNote => "Credit note",
    }
}

/// Totals per currency ("120.00 EUR · 30.00 USD").
fn totals(list: &[Invoice]) -> String {
    let mut by: Vec<(String, i64)> = Vec::new();
    for i in list {
        match by.iter_mut().find(|(c, _)| *c == i.currency) {
            Some(e) => e.1 += i.total_cents,
            None => by.push((i.currency.clone(), i.total_cents)),
        }
    }
    if by.is_empty() {
        return "—".into();
    }
    by.iter()
        .map(|(c, t)| money(*t, c))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub(crate) fn paid_cell(i: &Invoice) -> Markup {
    html! {
        @match i.paid_at {
            Some(t) => span.badge.ok { "paid " (day_of(t)) },
            None if i.kind == DocumentKind::CreditNote => span.dim { "—" },
            None => span.badge.warn { "unpaid" },
        }
    }
}

/// The documents table (the month's list and a client's panel).
pub(crate) fn invoice_table(list: &[Invoice], with_client: bool) -> Markup {
    html! {
        table.list.invoices {
            thead { tr {
                th { "Number" } th { "Kind" } @if with_client { th { "Client" } } th { "Month" }
                th.num { "Total" } th { "Issued" } th { "Due" } th { "Paid" }
            } }
            tbody {
                @for i in list {
                    tr {
                        td { a href=(invoice_href(&i.number)) { (i.number) } }
                        td { (kind_label(i.kind)) @if let Some(c) = &i.corrects_number { span.dim { " of " (c) } } }
                        @if with_client { td.wrap { a href={ "/clients/" (i.client_id) } { bdi { (i.bill_to.name) } } } }
                        td { (i.month) }
                        td.num { (money(i.total_cents, &i.currency)) }
                        td { (day_of(i.issued_at)) }
                        td { (day_of(i.due_at)) }
                        td { (paid_cell(i)) }
                    }
                }
                @if list.is_empty() { tr { td colspan="8" .dim { "No invoices." } } }
            }
        }
    }
}

pub async fn list(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Response {
    let now = service::now();
    let month = match month_or_last(q.month.as_deref(), now) {
        Ok(m) => m,
        Err(e) => return super::super::action_error(&ctx, &s, &e, "/billing/invoices"),
    };
    let f = InvoiceFilter {
        month: Some(month.clone()),
        ..Default::default()
    };
    let docs = match bill::invoices(&ctx, &f).await {
        Ok(d) => d,
        Err(e) => return super::super::action_error(&ctx, &s, &e, "/billing"),
    };
    let invoices: Vec<Invoice> = docs
        .iter()
        .filter(|i| i.kind == DocumentKind::Invoice)
        .cloned()
        .collect();
    let unpaid = invoices.iter().filter(|i| i.paid_at.is_none()).count();
    let finished = month < month_of(now);
    let body = html! {
        div.titlebar {
            h1 { "Invoices " (month) }
            div.actions {
                a.button href={ "/billing/invoices.csv?month=" (month) } download { "Export CSV" }
                a.button href={ "/billing/invoices.json?month=" (month) } download { "Export JSON" }
            }
        }
        (subnav("/billing/invoices"))
        @if q.done.as_deref() == Some("run") { div.notice { "The invoice run finished; the month's invoices are below." } }
        form.filters method="get" action="/billing/invoices" {
            input type="month" name="month" value=(month) aria-label="Month";
            button type="submit" { "Show" }
            @if finished {
                a.button.primary #run-invoices href={ "/billing/invoices/run?month=" (month) } { "Run invoices for " (month) "…" }
            } @else {
                span.dim { "Invoices for " (month) " can be issued once the month is over." }
            }
        }
        div.stats {
            div.stat { div.n #invoice-count { (invoices.len()) } div.l { "invoices" } }
            div.stat { div.n { (docs.len() - invoices.len()) } div.l { "credit notes" } }
            div.stat { div.n { (totals(&docs)) } div.l { "total, net of credit notes" } }
            div.stat { div.n { (unpaid) } div.l { "unpaid" } }
        }
        (invoice_table(&docs, true))
    };
    layout(&ctx, &s, Nav::Billing, "Invoices", body).into_response()
}

pub async fn run_confirm(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Response {
    let now = service::now();
    let month = match month_or_last(q.month.as_deref(), now) {
        Ok(m) => m,
        Err(e) => return super::super::action_error(&ctx, &s, &e, "/billing/invoices"),
    };
    let body = html! {
        h1 { "Run invoices for " (month) }
        div.panel.confirm {
            p { "Issue the invoices of " strong { (month) } " for every client that had a subscription during it." }
            p { strong { "What happens:" } }
            ul.consequences {
                li { "Each client gets one invoice for the month, computed from its plan and price day by day (trial days free; suspended days per the billing settings), with the setup fee on its first invoice." }
                li { "Invoices get the next sequential numbers and cannot be changed afterwards: corrections are credit notes." }
                li { "Clients that already have an invoice for " (month) " are left alone: running it again issues nothing twice." }
                li { "Clients on a plan without a price are skipped and listed, so you can add the price and run again." }
            }
            form method="post" action="/billing/invoices/run" {
                (csrf(&s))
                input type="hidden" name="month" value=(month);
                div.actions {
                    button.primary type="submit" { "Issue invoices for " (month) }
                    a.button href={ "/billing/invoices?month=" (month) } { "Cancel" }
                }
            }
        }
    };
    layout(&ctx, &s, Nav::Billing, "Run invoices", body).into_response()
}

#[derive(Deserialize, Default)]
pub struct RunForm {
    #[serde(default)]
    month: String,
}

pub async fn run(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(f): Form<RunForm>,
) -> Response {
    let month = f.month.trim().to_string();
    let report = match bill::run_invoices(&ctx, &s.admin.email, &month, service::now()).await {
        Ok(r) => r,
        Err(e) => {
            return super::super::action_error(
                &ctx,
                &s,
                &e,
                &format!("/billing/invoices?month={}", urlencoding::encode(&month)),
            );
        }
    };
    let body = html! {
        h1 { "Invoice run " (report.month) }
        (subnav("/billing/invoices"))
        div.stats {
            div.stat { div.n #run-issued { (report.issued.len()) } div.l { "invoices issued" } }
            div.stat { div.n { (report.already_issued) } div.l { "already invoiced" } }
            div.stat { div.n { (report.nothing_billable) } div.l { "nothing billable" } }
            div.stat { div.n #run-skipped { (report.skipped.len()) } div.l { "skipped" } }
        }
        @if !report.skipped.is_empty() {
            div.panel {
                h2 { "Skipped" }
                ul.errors { @for (id, why) in &report.skipped { li { a href={ "/clients/" (id) } { "client " (id) } ": " (why) } } }
            }
        }
        @if !report.issued.is_empty() {
            div.panel {
                h2 { "Issued" }
                p { @for n in &report.issued { a href=(invoice_href(n)) { (n) } " " } }
            }
        }
        p { a.button.primary href={ "/billing/invoices?month=" (report.month) } { "Back to the invoices of " (report.month) } }
    };
    layout(&ctx, &s, Nav::Billing, "Invoice run", body).into_response()
}

/// The printable document. Everything outside `article.invoice` is `no-print`: the style
/// sheet's print rules hide it (and the console's header), so the PDF is the invoice alone.
fn invoice_page(
    ctx: &Ctx,
    s: &Session,
    inv: &Invoice,
    credits: &[Invoice],
    credit_form: &CreditRequest,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Response {
    let credited: i64 = credits.iter().map(|c| -c.total_cents).sum();
    let is_invoice = inv.kind == DocumentKind::Invoice;
    let body = html! {
        div.no-print {
            p { a href={ "/billing/invoices?month=" (inv.month) } { "← Invoices " (inv.month) } " · " a href={ "/clients/" (inv.client_id) } { "the client" } }
            @if let Some(n) = notice { div.notice { (n) } }
            (form_errors(errors))
            div.panel.invoice-actions {
                p.dim { "To print it or save it as PDF, use your browser's Print (Ctrl+P / ⌘P): only the invoice is printed." }
                div.actions {
                    @if is_invoice && inv.paid_at.is_none() {
                        form method="post" action={ (invoice_href(&inv.number)) "/paid" } {
                            (csrf(s))
                            button.primary #mark-paid type="submit" { "Mark paid" }
                        }
                    }
                    @if is_invoice && inv.total_cents > credited {
                        form.credit-form method="post" action={ (invoice_href(&inv.number)) "/credit-notes" } {
                            (csrf(s))
                            label for="credit-amount" { "Credit" }
                            input #credit-amount type="text" name="amount" value=(credit_form.amount) inputmode="decimal" size="8" placeholder=(format!("all {}", inv.currency));
                            label for="credit-reason" { "Reason" }
                            input #credit-reason type="text" name="reason" value=(credit_form.reason) size="30" maxlength="500" required;
                            button type="submit" { "Issue credit note" }
                        }
                    }
                }
                @if !credits.is_empty() {
                    p { "Credit notes: " @for c in credits { a href=(invoice_href(&c.number)) { (c.number) } " (" (money(c.total_cents, &c.currency)) ") " } }
                }
            }
        }
        article.invoice {
            div.invoice-head {
                div.seller { @for line in inv.seller.lines() { (line) br; } }
                div.doc {
                    h1 { (kind_label(inv.kind)) " " span #invoice-number { (inv.number) } }
                    dl.kv {
                        dt { "Issued" } dd { (day_of(inv.issued_at)) }
                        dt { "Period" } dd { (inv.month) }
                        @if let Some(c) = &inv.corrects_number { dt { "Corrects" } dd { (c) } }
                        @if is_invoice { dt { "Due" } dd #invoice-due { (day_of(inv.due_at)) } }
                    }
                }
            }
            div.parties {
                div.bill-to {
                    h2 { "Bill to" }
                    p { bdi { (inv.bill_to.name) } br; (inv.bill_to.email) br; span.dim { "Assistant " (inv.bill_to.assistant) } }
                }
                @if let Some(t) = inv.paid_at {
                    div.paid-stamp #paid-stamp { "PAID " (day_of(t)) @if let Some(v) = &inv.paid_via { span { " via " (v) } } }
                }
            }
            table.lines {
                thead { tr { th { "Description" } th { "From" } th { "To" } th.num { "Days" } th.num { "Monthly" } th.num { "Amount" } } }
                tbody {
                    @for l in &inv.lines {
                        tr {
                            td.wrap { (l.description) }
                            td { (l.from) } td { (l.to) }
                            td.num { @if l.days > 0 { (l.days) "/" (l.days_in_month) } }
                            td.num { (money(l.unit_cents, &inv.currency)) }
                            td.num { (money(l.amount_cents, &inv.currency)) }
                        }
                    }
                }
                tfoot { tr { td colspan="5" { strong { "Total" } } td.num #invoice-total { strong { (money(inv.total_cents, &inv.currency)) } } } }
            }
            @if !inv.note.is_empty() { p.note { (inv.note) } }
            @if is_invoice && inv.paid_at.is_none() {
                p.due-line { "Please pay " strong { (money(inv.total_cents, &inv.currency)) } " by " strong { (day_of(inv.due_at)) } ", quoting " (inv.number) "." }
            }
            p.dim.issued-by { "Issued " (fmt_time(inv.issued_at)) }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, layout(ctx, s, Nav::Billing, &inv.number, body)).into_response()
}

/// The invoice and the credit notes issued against it.
async fn with_credits(ctx: &Ctx, number: &str) -> Result<(Invoice, Vec<Invoice>), ActionError> {
    let inv = bill::invoice(ctx, number).await?;
    let credits = if inv.kind == DocumentKind::Invoice {
        bill::invoices(
            ctx,
            &InvoiceFilter {
                client_id: Some(inv.client_id),
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .filter(|c| c.corrects_number.as_deref() == Some(inv.number.as_str()))
        .collect()
    } else {
        Vec::new()
    };
    Ok((inv, credits))
}

fn done_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "paid" => "The invoice was marked paid.",
        "credited" => "The credit note was issued.",
        _ => return None,
    })
}

pub async fn show(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
    Query(q): Query<MonthQuery>,
) -> Response {
    match with_credits(&ctx, &number).await {
        Ok((inv, credits)) => invoice_page(
            &ctx,
            &s,
            &inv,
            &credits,
            &CreditRequest::default(),
            &[],
            q.done.as_deref().and_then(done_text),
        ),
        Err(e) => super::super::action_error(&ctx, &s, &e, "/billing/invoices"),
    }
}

/// After a payment: bring the client's Assistant in line now (a client suspended for
/// non-payment resumes at once). The payment is recorded either way; if the cluster cannot
/// be written now, the billing engine does it on its next pass.
pub(crate) async fn enforce_now(ctx: &Ctx, client_id: i64, now: i64) {
    if let Err(e) = crate::console::billing::engine::enforce_client(ctx, client_id, now).await {
        tracing::warn!(client_id, error = %e, "billing: the Assistant will be brought in line on the next engine pass");
    }
}

pub async fn mark_paid(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
) -> Response {
    let now = service::now();
    match bill::mark_paid(&ctx, &s.admin.email, &number, "console", now).await {
        Ok(inv) => {
            enforce_now(&ctx, inv.client_id, now).await;
            axum::response::Redirect::to(&format!("{}?done=paid", invoice_href(&number)))
                .into_response()
        }
        Err(e) => super::super::action_error(&ctx, &s, &e, &invoice_href(&number)),
    }
}

pub async fn credit(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
    Form(f): Form<CreditRequest>,
) -> Response {
    let now = service::now();
    match bill::credit_note(&ctx, &s.admin, &number, &f, now).await {
        Ok(cn) => {
            // As with "mark paid": a credit that settles the debt resumes the client at once.
            enforce_now(&ctx, cn.client_id, now).await;
            axum::response::Redirect::to(&format!("{}?done=credited", invoice_href(&number)))
                .into_response()
        }
        Err(ActionError::Invalid(errs)) => match with_credits(&ctx, &number).await {
            Ok((inv, credits)) => invoice_page(&ctx, &s, &inv, &credits, &f, &errs, None),
            Err(e) => super::super::action_error(&ctx, &s, &e, "/billing/invoices"),
        },
        Err(e) => super::super::action_error(&ctx, &s, &e, &invoice_href(&number)),
    }
}

/// The month's documents for the exports (default: last month; a malformed month is a 422).
pub(crate) async fn month_documents(
    ctx: &Ctx,
    month: Option<&str>,
) -> Result<(String, Vec<Invoice>), ActionError> {
    let month = month_or_last(month, service::now())?;
    let list = bill::invoices(
        ctx,
        &InvoiceFilter {
            month: Some(month.clone()),
            ..Default::default()
        },
    )
    .await?;
    Ok((month, list))
}

/// The JSON export's document: the month and every invoice and credit note with lines.
pub fn export_json(month: &str, list: &[Invoice]) -> serde_json::Value {
    serde_json::json!({ "month": month, "documents": list })
}

pub(crate) fn csv_response(month: &str, list: &[Invoice]) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"clawhost-invoices-{month}.csv\""),
            ),
        ],
        bill::invoices_csv(list),
    )
        .into_response()
}

pub(crate) fn json_response(month: &str, list: &[Invoice]) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"clawhost-invoices-{month}.json\""),
            ),
        ],
        export_json(month, list).to_string(),
    )
        .into_response()
}

pub async fn csv(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Response {
    match month_documents(&ctx, q.month.as_deref()).await {
        Ok((m, list)) => csv_response(&m, &list),
        Err(e) => super::super::action_error(&ctx, &s, &e, "/billing/invoices"),
    }
}

pub async fn json(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Response {
    match month_documents(&ctx, q.month.as_deref()).await {
        Ok((m, list)) => json_response(&m, &list),
        Err(e) => super::super::action_error(&ctx, &s, &e, "/billing/invoices"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_defaults_to_last_month() {
        let jan = day_start("2027-01-15").unwrap();
        assert_eq!(previous_month(jan), "2026-12");
        assert_eq!(month_or_last(None, jan).unwrap(), "2026-12");
        assert_eq!(month_or_last(Some("2026-11"), jan).unwrap(), "2026-11");
        assert!(month_or_last(Some("2026-13"), jan).is_err());
    }

    #[test]
    fn totals_are_per_currency() {
        let inv = |c: &str, t: i64| Invoice {
            id: 0,
            number: String::new(),
            kind: DocumentKind::Invoice,
            client_id: 1,
            month: "2026-11".into(),
            corrects_number: None,
            currency: c.into(),
            total_cents: t,
            lines: vec![],
            bill_to: BillTo {
                name: String::new(),
                email: String::new(),
                assistant: String::new(),
            },
            seller: String::new(),
            note: String::new(),
            issued_at: 0,
            due_at: 0,
            issued_by: String::new(),
            paid_at: None,
            paid_via: None,
        };
        assert_eq!(
            totals(&[inv("EUR", 2900), inv("USD", 100), inv("EUR", -900)]),
            "20.00 EUR · 1.00 USD"
        );
        assert_eq!(totals(&[]), "—");
    }
}
