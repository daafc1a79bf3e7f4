//! Billing in the console (issue 15): every billing page renders for an admin, each form
//! works end to end (price, settings, subscription start/cancel/reactivate, invoice run,
//! mark paid, credit note) and shows its validation errors, the JSON API with its scopes,
//! the exports, and the printable invoice. On SQLite and PostgreSQL.

use crate::console_support::{NS, TestApp};
use clawhost::api::SUSPENDED_REASON_ANNOTATION;
use clawhost::console::billing::model::*;
use clawhost::console::cluster::Cluster;
use clawhost::console::db::Admin;
use clawhost::console::service::billing::{self as bill, StartSubscription};
use clawhost::console::{auth, service};
use http::{Method, StatusCode};
use serde_json::json;

both_backends!(
    billing_pages_render,
    price_form_adds_a_price_and_shows_errors,
    settings_form_saves_and_shows_errors,
    subscription_actions_from_the_client_page,
    invoice_run_payment_and_credit_note_from_the_pages,
    printable_invoice_has_lines_totals_and_no_console_chrome,
    exports_are_attachments_with_every_document,
    api_covers_prices_settings_subscriptions_and_invoices,
    api_scopes_guard_billing,
    a_subscribed_clients_billing_status_is_read_only,
    a_deleted_client_is_billed_up_to_its_deletion_only,
);

fn admin(app: &TestApp) -> Admin {
    Admin {
        id: app.admin,
        email: "admin@example.com".into(),
    }
}

/// The first second of the month before the current one, and that month (`YYYY-MM`).
fn last_month() -> (i64, String) {
    let this = service::month_of(service::now());
    let first_of_this = day_start(&format!("{this}-01")).unwrap();
    let month = service::month_of(first_of_this - 1);
    (day_start(&format!("{month}-01")).unwrap(), month)
}

/// A price for `plan` from the first of last month, and a subscription (no trial) started
/// on its second day: last month has a billable invoice. Set through the service with a
/// past clock (the handlers read the real one).
async fn subscribed_last_month(app: &TestApp, assistant: &str, plan: &str) -> i64 {
    let (start, _) = last_month();
    let p = NewPrice {
        plan: plan.into(),
        currency: "EUR".into(),
        monthly: "30".into(),
        setup_fee: "10".into(),
        trial_days: Some(0),
        effective_from: day_of(start),
    };
    bill::set_price(&app.ctx, &admin(app), &p, start)
        .await
        .unwrap();
    let id = app.client_id(assistant).await;
    bill::start_subscription(
        &app.ctx,
        &admin(app),
        id,
        &StartSubscription::default(),
        start + 86_400,
    )
    .await
    .unwrap();
    id
}

/// Runs last month's invoices through the pages and returns the first number issued.
async fn run_last_month(app: &TestApp) -> String {
    let (_, month) = last_month();
    let r = app
        .post("/billing/invoices/run", &[("month", month.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = bill::invoices(
        &app.ctx,
        &bill::InvoiceFilter {
            month: Some(month),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    list.first().expect("an invoice was issued").number.clone()
}

async fn token_with(app: &TestApp, scopes: &str) -> String {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
    app.ctx
        .db
        .create_scoped_api_token(
            app.admin,
            scopes,
            &auth::token_hash(&token),
            "chk_",
            scopes,
            None,
            service::now(),
        )
        .await
        .unwrap();
    token
}

async fn api_as(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    uri: &str,
    body: Option<serde_json::Value>,
) -> crate::console_support::Resp {
    let mut r = http::Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let b = match body {
        Some(v) => {
            r = r.header("content-type", "application/json");
            axum::body::Body::from(v.to_string())
        }
        None => axum::body::Body::empty(),
    };
    app.send(r.body(b).unwrap()).await
}

async fn billing_pages_render(app: TestApp) {
    let id = subscribed_last_month(&app, "acme-legal", "standard").await;
    let number = run_last_month(&app).await;
    let (_, month) = last_month();
    for (uri, expect) in [
        ("/billing".to_string(), "Plans without a price"),
        ("/billing/prices".to_string(), "Add a price"),
        ("/billing/settings".to_string(), "Grace days"),
        (format!("/billing/invoices?month={month}"), number.as_str()),
        (
            format!("/billing/invoices/run?month={month}"),
            "Issue invoices for",
        ),
        (format!("/billing/invoices/{number}"), "Bill to"),
        (format!("/clients/{id}"), "Subscription"),
        (
            format!("/clients/{id}/subscription/cancel"),
            "Cancel at period end",
        ),
        (
            format!("/clients/{id}/subscription/cancel-now"),
            "Cancel now",
        ),
    ] {
        let r = app.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
        assert!(r.body.contains(expect), "{uri} lacks {expect:?}");
        assert!(r.body.contains(r#"href="/billing""#), "{uri}: nav entry");
    }
    // The unpriced plans are listed on the attention page (only "standard" has a price).
    let a = app.get("/billing").await;
    assert!(a.body.contains("<code>small</code>") && a.body.contains("<code>large</code>"));
    assert!(!a.body.contains("<code>standard</code>"));
    // "Add a price" from the attention page preselects the plan.
    let pre = app.get("/billing/prices?plan=large").await;
    assert!(
        pre.body.contains(r#"<option value="large" selected>"#),
        "plan preselected"
    );
    // A client without a subscription offers to start one; an unknown action is a 404.
    let other = app.client_id("bakery-lund").await;
    let c = app.get(&format!("/clients/{other}")).await;
    assert!(c.body.contains("no-subscription") && c.body.contains("Start subscription"));
    let bad = app
        .get(&format!("/clients/{other}/subscription/explode"))
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    let missing = app.get("/billing/invoices/INV-999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad_month = app.get("/billing/invoices?month=2026-13").await;
    assert_eq!(bad_month.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn price_form_adds_a_price_and_shows_errors(app: TestApp) {
    let today = day_of(service::now());
    let ok = app
        .post(
            "/billing/prices",
            &[
                ("plan", "small"),
                ("currency", "eur"),
                ("monthly", "29.90"),
                ("setup_fee", "49"),
                ("trial_days", "14"),
                ("effective_from", today.as_str()),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), Some("/billing/prices?saved=1"));
    let page = app.get("/billing/prices?saved=1").await;
    assert!(page.body.contains("The price was added"));
    assert!(page.body.contains("29.90 EUR") && page.body.contains("49.00 EUR"));
    let list = bill::price_list(&app.ctx, service::now()).await.unwrap();
    let small = list.plans.iter().find(|p| p.plan == "small").unwrap();
    let cur = small.current.as_ref().expect("current price");
    assert_eq!(
        (cur.monthly_cents, cur.setup_fee_cents, cur.trial_days),
        (2990, 4900, 14)
    );
    assert_eq!(cur.created_by, "admin@example.com");

    // Wrong inputs: 422, the form again with the message and what was typed.
    let yesterday = day_of(service::now() - 86_400);
    for (field, value, label) in [
        ("monthly", "twelve", "Monthly price"),
        ("trial_days", "a week", "Trial days"),
        ("effective_from", yesterday.as_str(), "Effective from"),
    ] {
        let mut fields = vec![
            ("plan", "large"),
            ("currency", "EUR"),
            ("monthly", "99"),
            ("trial_days", ""),
            ("effective_from", ""),
        ];
        fields.retain(|(k, _)| *k != field);
        fields.push((field, value));
        let r = app.post("/billing/prices", &fields).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.body
        );
        assert!(
            r.body.contains("class=\"errors\""),
            "{field}: errors listed"
        );
        assert!(r.body.contains(label), "{field}: labelled {label}");
        assert!(
            r.body.contains(&format!("value=\"{value}\"")),
            "{field}: kept"
        );
    }
    let list = bill::price_list(&app.ctx, service::now()).await.unwrap();
    let large = list.plans.iter().find(|p| p.plan == "large").unwrap();
    assert!(large.history.is_empty(), "no refused price was stored");
}

async fn settings_form_saves_and_shows_errors(app: TestApp) {
    let r = app
        .post(
            "/billing/settings",
            &[
                ("grace_days", "5"),
                ("payment_terms_days", "10"),
                ("retention_days", "60"),
                ("canceled_volume", "Delete"),
                ("bill_suspended_days", "on"),
                ("invoice_prefix", "RE"),
                ("credit_note_prefix", "GS"),
                ("seller", "Claw GmbH\r\nHauptstr. 1\r\nDE123456789"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let s = bill::settings(&app.ctx).await.unwrap();
    assert_eq!(
        (s.grace_days, s.payment_terms_days, s.retention_days),
        (5, 10, 60)
    );
    assert_eq!(s.canceled_volume, VolumeOnCancel::Delete);
    assert!(s.bill_suspended_days);
    assert_eq!(
        (s.invoice_prefix.as_str(), s.credit_note_prefix.as_str()),
        ("RE", "GS")
    );
    assert_eq!(s.seller, "Claw GmbH\nHauptstr. 1\nDE123456789");
    let page = app.get("/billing/settings?saved=1").await;
    assert!(page.body.contains("were saved") && page.body.contains("value=\"60\""));
    assert!(page.body.contains("Claw GmbH"));

    // Unticking the checkbox clears it (a form sends nothing for it).
    let bad = app
        .post(
            "/billing/settings",
            &[
                ("grace_days", "soon"),
                ("payment_terms_days", "10"),
                ("retention_days", "60"),
                ("canceled_volume", "Retain"),
                ("invoice_prefix", "RE"),
                ("credit_note_prefix", "GS"),
                ("seller", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Grace days") && bad.body.contains("value=\"soon\""));
    assert_eq!(
        bill::settings(&app.ctx).await.unwrap().grace_days,
        5,
        "unchanged"
    );
    let ok = app
        .post(
            "/billing/settings",
            &[
                ("grace_days", "5"),
                ("payment_terms_days", "10"),
                ("retention_days", "60"),
                ("canceled_volume", "Retain"),
                ("invoice_prefix", "RE"),
                ("credit_note_prefix", "GS"),
                ("seller", ""),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(!bill::settings(&app.ctx).await.unwrap().bill_suspended_days);
}

async fn subscription_actions_from_the_client_page(app: TestApp) {
    let id = app.client_id("bakery-lund").await;
    let page = app.get(&format!("/clients/{id}/subscription/start")).await;
    assert!(page.body.contains("Start the subscription") && page.body.contains("skip_trial"));
    // A customer id with spaces is refused, shown as an error page, nothing started.
    let bad = app
        .post(
            &format!("/clients/{id}/subscription/start"),
            &[("external_customer_id", "cus 1")],
        )
        .await;
    assert!(bad.status.is_client_error(), "{}", bad.status);
    assert!(bill::subscription(&app.ctx, id).await.unwrap().is_none());

    let r = app
        .post(
            &format!("/clients/{id}/subscription/start"),
            &[("external_customer_id", "cus_BAKERY"), ("skip_trial", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location(),
        Some(format!("/clients/{id}?done=subscription-started#subscription").as_str())
    );
    let c = app
        .get(&format!("/clients/{id}?done=subscription-started"))
        .await;
    assert!(c.body.contains("The subscription was started"));
    assert!(c.body.contains(r#"id="subscription-state""#) && c.body.contains(">active<"));
    assert!(c.body.contains("cus_BAKERY"));
    // Starting twice: 409 page.
    let again = app
        .post(&format!("/clients/{id}/subscription/start"), &[])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // Cancel at period end, then reactivate (undo), then cancel now.
    let r = app
        .post(&format!("/clients/{id}/subscription/cancel"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sub = bill::subscription(&app.ctx, id).await.unwrap().unwrap();
    assert!(sub.subscription.cancel_at.is_some());
    let c = app.get(&format!("/clients/{id}")).await;
    assert!(c.body.contains("Cancels on") && c.body.contains("subscription-reactivate"));
    let r = app
        .post(&format!("/clients/{id}/subscription/reactivate"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sub = bill::subscription(&app.ctx, id).await.unwrap().unwrap();
    assert!(sub.subscription.cancel_at.is_none());
    assert_eq!(sub.subscription.state, SubscriptionState::Active);

    let r = app
        .post(&format!("/clients/{id}/subscription/cancel-now"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sub = bill::subscription(&app.ctx, id).await.unwrap().unwrap();
    assert_eq!(sub.subscription.state, SubscriptionState::Canceled);
    // The Assistant is suspended at once, with the reason billing gives.
    let a = app.cluster.get(NS, "bakery-lund").await.unwrap().unwrap();
    assert!(a.spec.suspended, "suspended by the cancellation");
    assert_eq!(
        a.metadata
            .annotations
            .as_ref()
            .and_then(|m| m.get(SUSPENDED_REASON_ANNOTATION))
            .map(String::as_str),
        Some("canceled")
    );
    let c = app.get(&format!("/clients/{id}")).await;
    assert!(c.body.contains("Deletes on") && c.body.contains(">canceled<"));
    assert!(c.body.contains("suspended: subscription canceled"));

    // Reactivated, the Assistant serves again.
    let r = app
        .post(&format!("/clients/{id}/subscription/reactivate"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = app.cluster.get(NS, "bakery-lund").await.unwrap().unwrap();
    assert!(!a.spec.suspended, "resumed by the reactivation");

    // The customer id form clears it.
    let r = app
        .post(
            &format!("/clients/{id}/subscription/customer"),
            &[("customer", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sub = bill::subscription(&app.ctx, id).await.unwrap().unwrap();
    assert_eq!(sub.subscription.external_customer_id, None);

    let actions: Vec<String> = app
        .ctx
        .db
        .audit_events(Some(id), 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("billing."))
        .collect();
    assert!(actions.len() >= 5, "every action audited: {actions:?}");
}

async fn invoice_run_payment_and_credit_note_from_the_pages(app: TestApp) {
    let id = subscribed_last_month(&app, "acme-legal", "standard").await;
    let (_, month) = last_month();
    let list = app.get(&format!("/billing/invoices?month={month}")).await;
    assert!(
        list.body.contains("id=\"run-invoices\""),
        "a finished month can be run"
    );
    // The current month cannot be run yet: no button.
    let this = app.get("/billing/invoices?month=").await;
    assert_eq!(this.status, StatusCode::OK);
    let current = service::month_of(service::now());
    let now_page = app.get(&format!("/billing/invoices?month={current}")).await;
    assert!(!now_page.body.contains("id=\"run-invoices\""));

    let r = app
        .post("/billing/invoices/run", &[("month", month.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains(r#"<div class="n" id="run-issued">1</div>"#),
        "{}",
        r.body
    );
    // Run again: nothing issued twice.
    let again = app
        .post("/billing/invoices/run", &[("month", month.as_str())])
        .await;
    assert!(
        again
            .body
            .contains(r#"<div class="n" id="run-issued">0</div>"#)
    );
    // The current month is refused with a message.
    let early = app
        .post("/billing/invoices/run", &[("month", current.as_str())])
        .await;
    assert!(early.status.is_client_error(), "{}", early.status);

    let docs = bill::invoices(
        &app.ctx,
        &bill::InvoiceFilter {
            client_id: Some(id),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(docs.len(), 1);
    let inv = &docs[0];
    let list = app.get(&format!("/billing/invoices?month={month}")).await;
    assert!(list.body.contains(&inv.number) && list.body.contains("unpaid"));
    let client = app.get(&format!("/clients/{id}")).await;
    assert!(client.body.contains(&inv.number), "the client's invoices");

    // Mark paid.
    let r = app
        .post(&format!("/billing/invoices/{}/paid", inv.number), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = app
        .get(&format!("/billing/invoices/{}?done=paid", inv.number))
        .await;
    assert!(page.body.contains("marked paid") && page.body.contains("id=\"paid-stamp\""));
    assert!(!page.body.contains("id=\"mark-paid\""), "paid once");
    let twice = app
        .post(&format!("/billing/invoices/{}/paid", inv.number), &[])
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);

    // A credit note larger than the invoice: refused on the form, with what was typed.
    let too_much = app
        .post(
            &format!("/billing/invoices/{}/credit-notes", inv.number),
            &[("amount", "100000"), ("reason", "goodwill")],
        )
        .await;
    assert_eq!(too_much.status.as_u16() / 100, 4, "{}", too_much.body);
    let no_reason = app
        .post(
            &format!("/billing/invoices/{}/credit-notes", inv.number),
            &[("amount", "5"), ("reason", "")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.body.contains("Reason") && no_reason.body.contains("value=\"5\""));
    let ok = app
        .post(
            &format!("/billing/invoices/{}/credit-notes", inv.number),
            &[("amount", "5"), ("reason", "outage on the 3rd")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let page = app.get(&format!("/billing/invoices/{}", inv.number)).await;
    let cn = bill::invoices(
        &app.ctx,
        &bill::InvoiceFilter {
            client_id: Some(id),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .find(|d| d.kind == DocumentKind::CreditNote)
    .expect("credit note");
    assert_eq!(cn.total_cents, -500);
    assert!(page.body.contains(&cn.number) && page.body.contains("-5.00 EUR"));
    let cn_page = app.get(&format!("/billing/invoices/{}", cn.number)).await;
    assert!(cn_page.body.contains("Credit note") && cn_page.body.contains(&inv.number));
}

async fn printable_invoice_has_lines_totals_and_no_console_chrome(app: TestApp) {
    bill::update_settings(
        &app.ctx,
        &admin(&app),
        &BillingSettings {
            seller: "Claw Hosting Ltd\n1 Harbour St".into(),
            ..BillingSettings::default()
        },
        service::now(),
    )
    .await
    .unwrap();
    subscribed_last_month(&app, "acme-legal", "standard").await;
    let number = run_last_month(&app).await;
    let inv = bill::invoice(&app.ctx, &number).await.unwrap();
    let page = app.get(&format!("/billing/invoices/{number}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let start = page
        .body
        .find("<article class=\"invoice\">")
        .expect("the document");
    let end = page.body[start..].find("</article>").unwrap() + start;
    let doc = &page.body[start..end];
    assert!(
        doc.contains("Claw Hosting Ltd<br>1 Harbour St"),
        "seller block"
    );
    assert!(doc.contains("Acme Legal LLP") && doc.contains("Bill to"));
    assert!(!inv.lines.is_empty());
    for l in &inv.lines {
        assert!(doc.contains(&l.description), "line {}", l.description);
        assert!(doc.contains(&format_money(l.amount_cents, &inv.currency)));
        if l.days > 0 {
            assert!(doc.contains(&l.from) && doc.contains(&l.to));
            assert!(doc.contains(&format!("{}/{}", l.days, l.days_in_month)));
        }
    }
    assert!(doc.contains(&format_money(inv.total_cents, &inv.currency)));
    assert!(doc.contains(&day_of(inv.due_at)), "due date");
    // The document holds nothing of the session: no form, no CSRF token, no admin.
    assert!(!doc.contains("<form") && !doc.contains(&app.csrf));
    assert!(!doc.contains("admin@example.com"));
    // Outside it everything is marked no-print, and print hides those and the header.
    assert!(page.body.contains("<div class=\"no-print\">"));
    let css = app.get_anon("/static/console.css").await.body;
    let print = &css[css.find("@media print").expect("a print style sheet")..];
    for sel in ["header.top", ".no-print", ".banner"] {
        assert!(print.contains(sel), "print hides {sel}");
    }
    assert!(!page.body.contains("onclick") && !page.body.contains("<script"));
    assert!(page.body.contains("use your browser's Print"));
}

async fn exports_are_attachments_with_every_document(app: TestApp) {
    subscribed_last_month(&app, "acme-legal", "standard").await;
    subscribed_last_month(&app, "bakery-lund", "small").await;
    let number = run_last_month(&app).await;
    let (_, month) = last_month();
    for csv in [
        app.get(&format!("/billing/invoices.csv?month={month}"))
            .await,
        app.api(
            Method::GET,
            &format!("/api/v1/billing/invoices.csv?month={month}"),
            None,
        )
        .await,
    ] {
        assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
        assert!(
            csv.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let cd = csv.headers["content-disposition"].to_str().unwrap();
        assert!(cd.starts_with("attachment;") && cd.contains(&format!("invoices-{month}.csv")));
        assert!(csv.body.contains(&number));
        assert!(csv.body.lines().count() >= 3, "a header and a row per line");
    }
    for js in [
        app.get(&format!("/billing/invoices.json?month={month}"))
            .await,
        app.api(
            Method::GET,
            &format!("/api/v1/billing/invoices.json?month={month}"),
            None,
        )
        .await,
    ] {
        assert_eq!(js.status, StatusCode::OK);
        assert!(
            js.headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        let v = js.json();
        assert_eq!(v["month"], month.as_str());
        let docs = v["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 2);
        for d in docs {
            assert!(d["number"].is_string() && d["lines"].is_array());
            assert!(d["total_cents"].is_i64() && d["currency"] == "EUR");
            assert!(d["bill_to"]["name"].is_string());
        }
    }
    let bad = app.get("/billing/invoices.csv?month=nope").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn api_covers_prices_settings_subscriptions_and_invoices(app: TestApp) {
    let today = day_of(service::now());
    let r = app
        .api(
            Method::POST,
            "/api/v1/billing/prices",
            Some(json!({"plan": "large", "currency": "EUR", "monthly": "99", "effective_from": today})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["monthly_cents"], 9900);
    let bad = app
        .api(
            Method::POST,
            "/api/v1/billing/prices",
            Some(json!({"plan": "large", "currency": "EUR", "monthly": "9.999"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["problems"][0]["field"], "monthly");
    let prices = app
        .api(Method::GET, "/api/v1/billing/prices", None)
        .await
        .json();
    let large = prices["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plan"] == "large")
        .unwrap()
        .clone();
    assert_eq!(large["current"]["monthly_cents"], 9900);

    // Settings: a PUT changes only what it sends; an unknown field is a 422.
    let r = app
        .api(
            Method::PUT,
            "/api/v1/billing/settings",
            Some(json!({"grace_days": 3})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let s = app
        .api(Method::GET, "/api/v1/billing/settings", None)
        .await
        .json();
    assert_eq!(
        (s["grace_days"].as_i64(), s["retention_days"].as_i64()),
        (Some(3), Some(30))
    );
    let typo = app
        .api(
            Method::PUT,
            "/api/v1/billing/settings",
            Some(json!({"grace": 3})),
        )
        .await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(typo.json()["problems"][0]["field"], "grace");

    // Subscriptions.
    let id = app.client_id("acme-legal").await;
    let none = app
        .api(
            Method::GET,
            &format!("/api/v1/clients/{id}/subscription"),
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(none.json()["subscription"].is_null());
    let unknown = app
        .api(Method::GET, "/api/v1/clients/999999/subscription", None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/subscription"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["client_id"], id);
    let twice = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/subscription"),
            Some(json!({})),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let r = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{id}/subscription/customer"),
            Some(json!({"external_customer_id": "cus_ACME"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["external_customer_id"], "cus_ACME");
    let taken = app.client_id("bakery-lund").await;
    app.api(
        Method::POST,
        &format!("/api/v1/clients/{taken}/subscription"),
        None,
    )
    .await;
    let dup = app
        .api(
            Method::PUT,
            &format!("/api/v1/clients/{taken}/subscription/customer"),
            Some(json!({"external_customer_id": "cus_ACME"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/subscription/cancel"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert_eq!(v["changed"], true);
    assert!(v["subscription"]["cancel_at"].is_i64());
    let again = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/subscription/cancel"),
            None,
        )
        .await;
    assert_eq!(again.json()["changed"], false, "{}", again.body);
    let nope = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/subscription/explode"),
            None,
        )
        .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    let att = app
        .api(Method::GET, "/api/v1/billing/attention?days=40", None)
        .await;
    assert_eq!(att.status, StatusCode::OK);
    let att = att.json();
    assert!(
        att["upcoming"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["client_id"] == id),
        "the cancellation is listed: {att}"
    );
    assert!(
        att["unpriced_plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "small")
    );
    let bad_days = app
        .api(Method::GET, "/api/v1/billing/attention?days=-1", None)
        .await;
    assert_eq!(bad_days.status, StatusCode::UNPROCESSABLE_ENTITY);
    let sub = app
        .api(
            Method::GET,
            &format!("/api/v1/clients/{id}/subscription"),
            None,
        )
        .await
        .json();
    assert!(sub["upcoming"]["event"].is_string() && sub["invoices"].is_array());

    // Invoices: a run for last month, listing, one invoice, paid, a credit note.
    let (start, month) = last_month();
    bill::set_price(
        &app.ctx,
        &admin(&app),
        &NewPrice {
            plan: "small".into(),
            currency: "EUR".into(),
            monthly: "20".into(),
            effective_from: day_of(start),
            ..Default::default()
        },
        start,
    )
    .await
    .unwrap();
    let early = app
        .api(
            Method::POST,
            "/api/v1/billing/invoice-runs",
            Some(json!({"month": service::month_of(service::now())})),
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    let bad = app
        .api(
            Method::POST,
            "/api/v1/billing/invoice-runs",
            Some(json!({"month": "11/2026"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let run = app
        .api(
            Method::POST,
            "/api/v1/billing/invoice-runs",
            Some(json!({"month": month})),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    assert_eq!(run.json()["month"], month.as_str());
    let list = app
        .api(
            Method::GET,
            &format!("/api/v1/billing/invoices?month={month}&unpaid=true"),
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.json()["invoices"].is_array());
    let bad_month = app
        .api(Method::GET, "/api/v1/billing/invoices?month=2026-1", None)
        .await;
    assert_eq!(bad_month.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = app
        .api(Method::GET, "/api/v1/billing/invoices/INV-424242", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn api_scopes_guard_billing(app: TestApp) {
    let read = token_with(&app, "billing:read").await;
    let clients = token_with(&app, "clients:read").await;
    let ok = api_as(
        &app,
        Some(&read),
        Method::GET,
        "/api/v1/billing/prices",
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let body = json!({"plan": "small", "currency": "EUR", "monthly": "1"});
    let write = api_as(
        &app,
        Some(&read),
        Method::POST,
        "/api/v1/billing/prices",
        Some(body.clone()),
    )
    .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert!(write.body.contains("billing:write"));
    let put = api_as(
        &app,
        Some(&read),
        Method::PUT,
        "/api/v1/billing/settings",
        Some(json!({"grace_days": 1})),
    )
    .await;
    assert_eq!(put.status, StatusCode::FORBIDDEN);
    let other = api_as(
        &app,
        Some(&clients),
        Method::GET,
        "/api/v1/billing/invoices",
        None,
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.body.contains("billing:read"));
    let anon = api_as(&app, None, Method::GET, "/api/v1/billing/settings", None).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    // The read preset includes billing:read; it still cannot start a subscription.
    let preset = token_with(&app, "read").await;
    let id = app.client_id("acme-legal").await;
    let r = api_as(
        &app,
        Some(&preset),
        Method::GET,
        &format!("/api/v1/clients/{id}/subscription"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api_as(
        &app,
        Some(&preset),
        Method::POST,
        &format!("/api/v1/clients/{id}/subscription"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        bill::price_list(&app.ctx, service::now())
            .await
            .unwrap()
            .plans
            .iter()
            .all(|p| p.history.is_empty())
    );
}

async fn a_subscribed_clients_billing_status_is_read_only(app: TestApp) {
    let id = subscribed_last_month(&app, "bakery-lund", "small").await;
    let status = app.ctx.db.client(id).await.unwrap().unwrap().billing_status;
    // Changing it by the record form is refused with why; nothing changes.
    let other = if status == "past_due" {
        "active"
    } else {
        "past_due"
    };
    let r = app
        .post(
            &format!("/clients/{id}/record"),
            &[("billing_status", other), ("notes", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("the subscription sets the billing status"));
    let e = service::update_record(
        &app.ctx,
        &admin(&app),
        id,
        &service::RecordUpdate {
            billing_status: other.into(),
            notes: String::new(),
        },
    )
    .await;
    assert!(
        matches!(&e, Err(service::ActionError::Invalid(f)) if f[0].field == "billing_status"),
        "{e:?}"
    );
    assert_eq!(
        app.ctx.db.client(id).await.unwrap().unwrap().billing_status,
        status
    );
    // The notes stay editable (the form sends the status unchanged).
    let r = app
        .post(
            &format!("/clients/{id}/record"),
            &[("billing_status", status.as_str()), ("notes", "pays late")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let c = app.ctx.db.client(id).await.unwrap().unwrap();
    assert_eq!(
        (c.billing_status.as_str(), c.notes.as_str()),
        (status.as_str(), "pays late")
    );
    // The page shows the status read-only.
    let page = app.get(&format!("/clients/{id}")).await;
    assert!(page.body.contains("(set by the subscription)"));
    assert!(!page.body.contains(r#"select name="billing_status""#));
    // A client without a subscription keeps the select.
    let free = app.client_id("acme-legal").await;
    let page = app.get(&format!("/clients/{free}")).await;
    assert!(page.body.contains(r#"select name="billing_status""#));
}

/// An admin deletes a subscribed client mid-month: its subscription ends with it (canceled,
/// deleted), the month's invoice bills up to the deletion day only, the next month nothing,
/// and the engine's overdue logic leaves it alone. A client deleted without its subscription
/// ending (before this was done) is cut at its deletion too.
async fn a_deleted_client_is_billed_up_to_its_deletion_only(app: TestApp) {
    let id = subscribed_last_month(&app, "bakery-lund", "small").await;
    let before = service::now();
    service::delete_client(
        &app.ctx,
        &admin(&app),
        id,
        &service::DeleteRequest {
            confirm: "bakery-lund".into(),
            retention: None,
        },
    )
    .await
    .unwrap();
    let sub = bill::subscription(&app.ctx, id).await.unwrap().unwrap();
    assert_eq!(sub.subscription.state, SubscriptionState::Canceled);
    assert!(sub.subscription.deleted_at.is_some(), "{sub:?}");

    // The old way: a client row deleted while its subscription runs on.
    let other = subscribed_last_month(&app, "acme-legal", "standard").await;
    app.ctx.db.mark_client_deleted(other, before).await.unwrap();

    let this = service::month_of(before);
    let (start, end) = bill::month_bounds(&this).unwrap();
    let run = bill::run_invoices(&app.ctx, "admin@example.com", &this, end)
        .await
        .unwrap();
    assert_eq!(run.issued.len(), 2, "{run:?}");
    let today = day_of(before);
    for n in &run.issued {
        let inv = bill::invoice(&app.ctx, n).await.unwrap();
        let last = inv.lines.iter().map(|l| l.to.clone()).max().unwrap();
        assert!(
            last <= today,
            "billed up to the deletion day ({today}): {inv:?}"
        );
        assert_eq!(
            inv.lines.iter().map(|l| l.days).sum::<i64>(),
            (day_start(&today).unwrap() - start) / 86_400 + 1,
            "{inv:?}"
        );
    }
    let next = service::month_of(end);
    let (_, next_end) = bill::month_bounds(&next).unwrap();
    let run = bill::run_invoices(&app.ctx, "admin@example.com", &next, next_end)
        .await
        .unwrap();
    assert!(run.issued.is_empty(), "{run:?}");
    // Long past the invoice's due date, the engine does not fail a payment for it.
    clawhost::console::billing::engine::tick(&app.ctx, next_end + 60 * 86_400)
        .await
        .unwrap();
    let sub = bill::subscription(&app.ctx, id).await.unwrap().unwrap();
    assert_eq!(sub.subscription.state, SubscriptionState::Canceled);
    let failed = app
        .ctx
        .db
        .audit_events(Some(id), 100, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "billing.payment_failed")
        .count();
    assert_eq!(failed, 0);
}

// Fix-3 (issue 15 review): deletion order, a credit note's immediate enforcement.
both_backends!(
    a_failed_delete_leaves_the_client_live_and_a_retry_finishes,
    a_credit_note_settling_the_debt_resumes_at_once,
);

/// Deleting a client ends its subscription before the client is marked deleted: when ending
/// it fails, the client stays live (not deleted with a running subscription) and deleting it
/// again finishes the job.
async fn a_failed_delete_leaves_the_client_live_and_a_retry_finishes(app: TestApp) {
    let id = subscribed_last_month(&app, "bakery-lund", "small").await;
    let db = &app.ctx.db;
    let req = service::DeleteRequest {
        confirm: "bakery-lund".into(),
        retention: None,
    };
    // The subscription's change fails (its settings cannot be read).
    sqlx::query("ALTER TABLE billing_settings RENAME TO billing_settings_away")
        .execute(db.pool())
        .await
        .unwrap();
    let failed = service::delete_client(&app.ctx, &admin(&app), id, &req).await;
    sqlx::query("ALTER TABLE billing_settings_away RENAME TO billing_settings")
        .execute(db.pool())
        .await
        .unwrap();
    assert!(failed.is_err(), "{failed:?}");
    let c = db.client(id).await.unwrap().unwrap();
    assert!(c.deleted_at.is_none(), "still live: {c:?}");
    let sub = db.subscription(id).await.unwrap().unwrap();
    assert_eq!(sub.state, SubscriptionState::Active);
    assert!(sub.deleted_at.is_none());

    service::delete_client(&app.ctx, &admin(&app), id, &req)
        .await
        .unwrap();
    let c = db.client(id).await.unwrap().unwrap();
    assert!(c.deleted_at.is_some());
    let sub = db.subscription(id).await.unwrap().unwrap();
    assert_eq!(sub.state, SubscriptionState::Canceled);
    assert!(sub.deleted_at.is_some(), "{sub:?}");
}

/// A client suspended for non-payment whose invoice is credited to nothing owed (from the
/// page or the API) serves again right away, without waiting for the engine's next pass.
async fn a_credit_note_settling_the_debt_resumes_at_once(app: TestApp) {
    const DAY: i64 = 86_400;
    let bakery = subscribed_last_month(&app, "bakery-lund", "small").await;
    let acme = subscribed_last_month(&app, "acme-legal", "standard").await;
    run_last_month(&app).await;
    let now = service::now();
    let mut numbers = Vec::new();
    for (id, name) in [(bakery, "bakery-lund"), (acme, "acme-legal")] {
        let inv = bill::invoices(
            &app.ctx,
            &bill::InvoiceFilter {
                client_id: Some(id),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0);
        bill::apply(
            &app.ctx,
            "billing",
            id,
            &Input::PaymentFailed {
                at: now - 8 * DAY,
                reference: inv.number.clone(),
            },
            now - 8 * DAY,
        )
        .await
        .unwrap();
        bill::apply(&app.ctx, "billing", id, &Input::Clock, now - 60)
            .await
            .unwrap();
        clawhost::console::billing::engine::enforce_client(&app.ctx, id, now)
            .await
            .unwrap();
        let a = app.cluster.get(NS, name).await.unwrap().unwrap();
        assert!(a.spec.suspended, "{name} suspended for non-payment");
        numbers.push(inv.number);
    }
    let serving = |a: clawhost::api::Assistant| {
        !a.spec.suspended
            && a.metadata
                .annotations
                .as_ref()
                .and_then(|m| m.get(SUSPENDED_REASON_ANNOTATION))
                .is_none()
    };

    let r = app
        .post(
            &format!("/billing/invoices/{}/credit-notes", numbers[0]),
            &[("amount", ""), ("reason", "disputed: service was down")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = app.cluster.get(NS, "bakery-lund").await.unwrap().unwrap();
    assert!(
        serving(a),
        "resumed by the page's credit note, no engine pass"
    );

    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/billing/invoices/{}/credit-notes", numbers[1]),
            Some(json!({"amount": "", "reason": "disputed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let a = app.cluster.get(NS, "acme-legal").await.unwrap().unwrap();
    assert!(
        serving(a),
        "resumed by the API's credit note, no engine pass"
    );
}
