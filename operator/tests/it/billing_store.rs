//! Issue 15, the store and the billing service: price history, gap-free numbering (also
//! under two concurrent runs), immutable invoices, credit notes, the invoice run, the
//! subscription state machine through `service::billing::apply` with a controlled clock,
//! the "needs attention" view and the CSV export. Every test runs on SQLite and PostgreSQL.

use clawhost::console::billing::store::NewDocument;
use clawhost::console::billing::{self, *};
use clawhost::console::db::Admin;
use clawhost::console::service::ActionError;
use clawhost::console::service::billing as svc;
use http::StatusCode;
use sqlx::AssertSqlSafe;

use crate::console_support::TestApp;

const DAY: i64 = 86_400;

/// Noon (UTC) of a `YYYY-MM-DD` day.
fn noon(day: &str) -> i64 {
    billing::day_start(day).expect("a date") + DAY / 2
}

fn admin(app: &TestApp) -> Admin {
    Admin {
        id: app.admin,
        email: "admin@example.com".into(),
    }
}

fn price(plan: &str, monthly: &str, from: &str, trial: i64) -> NewPrice {
    NewPrice {
        plan: plan.into(),
        currency: "EUR".into(),
        monthly: monthly.into(),
        setup_fee: String::new(),
        trial_days: Some(trial),
        effective_from: from.into(),
    }
}

fn fields(e: &ActionError) -> Vec<String> {
    match e {
        ActionError::Invalid(list) => list.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

async fn audits(app: &TestApp, action: &str) -> usize {
    app.ctx
        .db
        .audit_events(None, 10_000, 0)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action)
        .count()
}

/// A document as the run would issue it, for the numbering tests (no rules involved).
fn doc(client_id: i64, month: &str, total: i64) -> NewDocument {
    NewDocument {
        kind: DocumentKind::Invoice,
        client_id,
        month: month.into(),
        corrects_number: None,
        currency: "EUR".into(),
        total_cents: total,
        lines: vec![InvoiceLine {
            kind: LineKind::Plan,
            description: "standard".into(),
            plan: Some("standard".into()),
            from: format!("{month}-01"),
            to: format!("{month}-30"),
            days: 30,
            days_in_month: 30,
            unit_cents: total,
            amount_cents: total,
        }],
        bill_to: BillTo {
            name: format!("Client {client_id}"),
            email: format!("c{client_id}@example.com"),
            assistant: format!("client-{client_id}"),
        },
        seller: "Hosting AB".into(),
        note: String::new(),
        issued_at: noon("2026-10-01"),
        due_at: noon("2026-10-15"),
        issued_by: "admin@example.com".into(),
        includes_setup_fee: false,
    }
}

fn seq(number: &str) -> i64 {
    number.rsplit('-').next().unwrap().parse().unwrap()
}

async fn price_history(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let now = noon("2026-09-10");
    let p = svc::set_price(ctx, &me, &price("standard", "29.90", "", 14), now)
        .await
        .unwrap();
    assert_eq!(
        (p.effective_from.as_str(), p.monthly_cents, p.trial_days),
        ("2026-09-10", 2990, 14),
        "an empty date means today"
    );
    // Never retroactive.
    let e = svc::set_price(ctx, &me, &price("standard", "19", "2026-09-09", 0), now)
        .await
        .unwrap_err();
    assert_eq!(fields(&e), ["effective_from"], "{e}");
    // Today's price has started: it is not replaced (that would re-price today).
    let e = svc::set_price(ctx, &me, &price("standard", "19", "2026-09-10", 0), now)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    // A future price applies from its date; a second one for that day replaces it.
    svc::set_price(ctx, &me, &price("standard", "39", "2026-09-20", 0), now)
        .await
        .unwrap();
    svc::set_price(ctx, &me, &price("standard", "35.50", "2026-09-20", 0), now)
        .await
        .unwrap();
    let list = svc::price_list(ctx, now).await.unwrap();
    let std = list.plans.iter().find(|p| p.plan == "standard").unwrap();
    assert_eq!(std.current.as_ref().unwrap().monthly_cents, 2990);
    assert_eq!(
        std.scheduled
            .iter()
            .map(|p| p.monthly_cents)
            .collect::<Vec<_>>(),
        [3550]
    );
    assert_eq!(std.history.len(), 2, "the scheduled price was replaced");
    assert!(
        list.plans
            .iter()
            .any(|p| p.plan == "small" && p.current.is_none())
    );
    let later = svc::price_list(ctx, noon("2026-09-20")).await.unwrap();
    let std = later.plans.iter().find(|p| p.plan == "standard").unwrap();
    assert_eq!(std.current.as_ref().unwrap().monthly_cents, 3550);
    assert!(std.scheduled.is_empty());
    assert_eq!(audits(&app, "billing.price_set").await, 3);

    // Validation, all problems at once.
    let bad = NewPrice {
        plan: "gold".into(),
        currency: "EURO".into(),
        monthly: "-3".into(),
        setup_fee: "1.234".into(),
        trial_days: Some(400),
        effective_from: "2026-13-01".into(),
    };
    let e = svc::set_price(ctx, &me, &bad, now).await.unwrap_err();
    assert_eq!(
        fields(&e),
        [
            "plan",
            "currency",
            "monthly",
            "setup_fee",
            "trial_days",
            "effective_from"
        ],
        "{e}"
    );
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let jpy = NewPrice {
        currency: "jpy".into(),
        monthly: "1200".into(),
        ..price("small", "", "", 0)
    };
    let p = svc::set_price(ctx, &me, &jpy, now).await.unwrap();
    assert_eq!((p.currency.as_str(), p.monthly_cents), ("JPY", 1200));
}

async fn settings_are_validated_and_audited(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let now = noon("2026-09-10");
    let s = svc::settings(ctx).await.unwrap();
    assert_eq!((s.grace_days, s.invoice_prefix.as_str()), (7, "INV"));
    let bad = BillingSettings {
        grace_days: 91,
        payment_terms_days: -1,
        retention_days: 3651,
        invoice_prefix: "inv".into(),
        credit_note_prefix: "CN-LONGER-THAN-10".into(),
        seller: "x".repeat(2001),
        ..s.clone()
    };
    let e = svc::update_settings(ctx, &me, &bad, now).await.unwrap_err();
    assert_eq!(
        fields(&e),
        [
            "grace_days",
            "payment_terms_days",
            "retention_days",
            "invoice_prefix",
            "credit_note_prefix",
            "seller"
        ]
    );
    let same = BillingSettings {
        credit_note_prefix: "INV".into(),
        ..s.clone()
    };
    let e = svc::update_settings(ctx, &me, &same, now)
        .await
        .unwrap_err();
    assert_eq!(fields(&e), ["credit_note_prefix"], "own series");
    let good = BillingSettings {
        grace_days: 3,
        bill_suspended_days: true,
        canceled_volume: VolumeOnCancel::Delete,
        invoice_prefix: "R2026".into(),
        seller: "Hosting AB\nVAT SE0000".into(),
        ..s
    };
    let saved = svc::update_settings(ctx, &me, &good, now).await.unwrap();
    assert_eq!(svc::settings(ctx).await.unwrap(), saved);
    assert_eq!(saved.updated_at, now);
    assert!(saved.bill_suspended_days && saved.canceled_volume == VolumeOnCancel::Delete);
    assert_eq!(audits(&app, "billing.settings").await, 1);
}

async fn numbering_is_sequential_and_a_failed_insert_gives_its_number_back(app: TestApp) {
    let db = &app.ctx.db;
    let batch = db
        .issue_invoices(
            "INV",
            &[
                doc(1, "2026-09", 100),
                doc(2, "2026-09", 200),
                doc(3, "2026-09", 300),
            ],
        )
        .await
        .unwrap();
    assert_eq!(batch.numbers, ["INV-000001", "INV-000002", "INV-000003"]);
    // A second invoice for client 2's September violates the one-per-month index: the
    // transaction fails and its number is not used.
    let e = db.issue_document("INV", &doc(2, "2026-09", 999)).await;
    assert!(e.is_err(), "a second invoice for one month is refused");
    let next = db
        .issue_document("INV", &doc(2, "2026-10", 200))
        .await
        .unwrap();
    assert_eq!(next.number, "INV-000004", "no gap after the failed insert");
    // The batch skips a client that has the month already (a concurrent run was first).
    let batch = db
        .issue_invoices("INV", &[doc(1, "2026-09", 100), doc(4, "2026-09", 400)])
        .await
        .unwrap();
    assert_eq!(batch.numbers, ["INV-000005"]);
    assert_eq!(batch.already_issued, [1]);
    // A series per prefix.
    let other = db.issue_document("R", &doc(5, "2026-09", 1)).await.unwrap();
    assert_eq!(other.number, "R-000001");
    let stored = db.invoice_by_number("INV-000002").await.unwrap().unwrap();
    assert_eq!(stored.total_cents, 200);
    assert_eq!(stored.lines, doc(2, "2026-09", 200).lines);
    assert_eq!(stored.bill_to.name, "Client 2");
}

/// Two runs at once (two console replicas): every number 1..N exactly once.
async fn concurrent_runs_never_repeat_or_skip(app: TestApp) {
    let db = app.ctx.db.clone();
    let a: Vec<NewDocument> = (1..=60).map(|c| doc(c, "2026-09", c)).collect();
    let b: Vec<NewDocument> = (61..=120).map(|c| doc(c, "2026-09", c)).collect();
    // Overlapping runs of the same clients: each client is invoiced once.
    let c: Vec<NewDocument> = (1..=120).map(|c| doc(c, "2026-09", c)).collect();
    let (db1, db2, db3) = (db.clone(), db.clone(), db.clone());
    let (ra, rb, rc) = tokio::join!(
        tokio::spawn(async move { db1.issue_invoices("INV", &a).await }),
        tokio::spawn(async move { db2.issue_invoices("INV", &b).await }),
        tokio::spawn(async move { db3.issue_invoices("INV", &c).await }),
    );
    let (ra, rb, rc) = (
        ra.unwrap().unwrap(),
        rb.unwrap().unwrap(),
        rc.unwrap().unwrap(),
    );
    let mut all: Vec<i64> = ra
        .numbers
        .iter()
        .chain(&rb.numbers)
        .chain(&rc.numbers)
        .map(|n| seq(n))
        .collect();
    all.sort();
    assert_eq!(all, (1..=120).collect::<Vec<_>>(), "no gap, no repeat");
    let list = db
        .invoices_where(Some("2026-09"), None, false)
        .await
        .unwrap();
    assert_eq!(list.len(), 120, "one invoice per client");
    assert_eq!(
        ra.already_issued.len() + rb.already_issued.len() + rc.already_issued.len(),
        120,
        "every client was skipped by the runs that came second"
    );
}

async fn issued_invoices_are_immutable_and_paid_once(app: TestApp) {
    let ctx = &app.ctx;
    let db = &ctx.db;
    let inv = db
        .issue_document("INV", &doc(1, "2026-09", 1000))
        .await
        .unwrap();
    for sql in [
        "UPDATE invoices SET total_cents = 1 WHERE number = 'INV-000001'",
        "UPDATE invoices SET lines_json = '[]' WHERE number = 'INV-000001'",
        "DELETE FROM invoices WHERE number = 'INV-000001'",
    ] {
        let r = sqlx::query(AssertSqlSafe(sql)).execute(db.pool()).await;
        let e = r.expect_err(sql).to_string();
        assert!(
            e.contains("immutable") || e.contains("never deleted"),
            "{sql}: {e}"
        );
    }
    let now = noon("2026-10-20");
    let paid = svc::mark_paid(ctx, "admin@example.com", &inv.number, "console", now)
        .await
        .unwrap();
    assert_eq!(
        (paid.paid_at, paid.paid_via.as_deref()),
        (Some(now), Some("console"))
    );
    let e = svc::mark_paid(ctx, "admin@example.com", &inv.number, "console", now + 1)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    assert!(e.to_string().contains("paid already"), "{e}");
    // The database refuses it too.
    let r = sqlx::query("UPDATE invoices SET paid_at = 5 WHERE number = 'INV-000001'")
        .execute(db.pool())
        .await;
    assert!(r.unwrap_err().to_string().contains("already paid"));
    assert_eq!(audits(&app, "billing.invoice_paid").await, 1);
    let e = svc::mark_paid(ctx, "admin@example.com", "INV-999999", "console", now)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::NOT_FOUND);
}

async fn credit_notes_never_exceed_the_invoice(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let now = noon("2026-10-20");
    let inv = ctx
        .db
        .issue_document("INV", &doc(1, "2026-09", 1000))
        .await
        .unwrap();
    let req = |amount: &str, reason: &str| svc::CreditRequest {
        amount: amount.into(),
        reason: reason.into(),
    };
    let cn = svc::credit_note(ctx, &me, &inv.number, &req("6", "3 days down"), now)
        .await
        .unwrap();
    assert_eq!(cn.number, "CN-000001", "credit notes have their own series");
    assert_eq!(cn.kind, DocumentKind::CreditNote);
    assert_eq!(cn.total_cents, -600);
    assert_eq!(cn.corrects_number.as_deref(), Some("INV-000001"));
    assert_eq!(cn.month, "2026-09");
    assert_eq!(cn.lines.len(), 1);
    assert_eq!(
        (
            cn.lines[0].kind,
            cn.lines[0].description.as_str(),
            cn.lines[0].amount_cents
        ),
        (LineKind::Credit, "3 days down", -600)
    );
    assert_eq!(
        cn.paid_at, None,
        "a credit note is its own document, not paid"
    );
    let e = svc::credit_note(ctx, &me, &inv.number, &req("4.01", "more"), now)
        .await
        .unwrap_err();
    assert_eq!(fields(&e), ["amount"]);
    assert!(e.to_string().contains("4.00 EUR"), "{e}");
    for bad in [req("0", "zero"), req("abc", "x"), req("1", "  ")] {
        let e = svc::credit_note(ctx, &me, &inv.number, &bad, now)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    }
    // Empty amount: the rest.
    let rest = svc::credit_note(ctx, &me, &inv.number, &req("", "goodwill"), now)
        .await
        .unwrap();
    assert_eq!(
        (rest.number.as_str(), rest.total_cents),
        ("CN-000002", -400)
    );
    let e = svc::credit_note(ctx, &me, &inv.number, &req("", "again"), now)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    let e = svc::credit_note(ctx, &me, &cn.number, &req("1", "x"), now)
        .await
        .unwrap_err();
    assert_eq!(
        e.status(),
        StatusCode::CONFLICT,
        "a credit note is not credited"
    );
    let e = svc::mark_paid(ctx, &me.email, &cn.number, "console", now)
        .await
        .unwrap_err();
    assert_eq!(
        e.status(),
        StatusCode::CONFLICT,
        "a credit note is not paid"
    );
    // Invoice numbering was not touched by the credit notes.
    let next = ctx
        .db
        .issue_document("INV", &doc(2, "2026-09", 5))
        .await
        .unwrap();
    assert_eq!(next.number, "INV-000002");
    assert_eq!(audits(&app, "billing.credit_note").await, 2);
}

/// trial → active → past_due → (grace) → suspended → paid → active, on a clock the test
/// drives; every step audited once, the record's billing status following.
async fn state_machine_through_apply(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    svc::set_price(ctx, &me, &price("standard", "30", "", 14), t0)
        .await
        .unwrap();
    let id = app.client_id("acme-legal").await;
    let sub = svc::start_subscription(ctx, &me, id, &svc::StartSubscription::default(), t0)
        .await
        .unwrap();
    assert_eq!(sub.state, SubscriptionState::Trialing);
    assert_eq!(sub.trial_ends_at, Some(t0 + 14 * DAY));
    let again = svc::start_subscription(ctx, &me, id, &Default::default(), t0).await;
    assert_eq!(again.unwrap_err().status(), StatusCode::CONFLICT);
    let status = |app: &TestApp| {
        let ctx = app.ctx.clone();
        async move { ctx.db.client(id).await.unwrap().unwrap().billing_status }
    };
    assert_eq!(status(&app).await, "trialing");
    let tl = ctx.db.timeline(id).await.unwrap();
    assert_eq!(tl.len(), 1);
    assert_eq!((tl[0].plan.as_str(), tl[0].suspended), ("standard", false));

    // Nothing due yet.
    assert!(
        svc::apply(ctx, "billing", id, &Input::Clock, t0 + DAY)
            .await
            .unwrap()
            .is_none()
    );
    let t1 = t0 + 14 * DAY;
    let c = svc::apply(ctx, "billing", id, &Input::Clock, t1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.from, c.to, c.event),
        (
            SubscriptionState::Trialing,
            SubscriptionState::Active,
            "trial_ended"
        )
    );
    assert_eq!(status(&app).await, "active");

    let t2 = noon("2026-10-16");
    let failed = Input::PaymentFailed {
        at: t2,
        reference: "INV-000001".into(),
    };
    let c = svc::apply(ctx, "billing", id, &failed, t2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.to, SubscriptionState::PastDue);
    assert_eq!(c.subscription.suspend_at, Some(t2 + 7 * DAY));
    // The same input again (another replica, a retried webhook): nothing, no audit.
    assert!(
        svc::apply(ctx, "billing", id, &failed, t2)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(audits(&app, "billing.payment_failed").await, 1);
    assert_eq!(status(&app).await, "past_due");

    // The day before the grace ends: "needs attention" lists the suspension.
    let att = svc::attention(ctx, t2 + 6 * DAY, 1).await.unwrap();
    assert_eq!(att.upcoming.len(), 1, "{att:?}");
    assert_eq!(att.upcoming[0].client_name, "Acme Legal LLP");
    assert_eq!(att.upcoming[0].upcoming.event, "suspend");
    assert_eq!(att.upcoming[0].upcoming.at, t2 + 7 * DAY);
    assert!(
        svc::attention(ctx, t2, 1)
            .await
            .unwrap()
            .upcoming
            .is_empty(),
        "not yet within a day"
    );

    // Still in grace: nothing.
    assert!(
        svc::apply(ctx, "billing", id, &Input::Clock, t2 + 7 * DAY - 1)
            .await
            .unwrap()
            .is_none()
    );
    let t3 = t2 + 7 * DAY;
    let c = svc::apply(ctx, "billing", id, &Input::Clock, t3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.to, c.event),
        (SubscriptionState::Suspended, "grace_expired")
    );
    assert_eq!(
        c.subscription.suspension_reason,
        Some(SuspensionReason::NonPayment)
    );
    assert_eq!(status(&app).await, "suspended");
    let stored = ctx.db.subscription(id).await.unwrap().unwrap();
    assert_eq!(
        stored, c.subscription,
        "what apply returns is what is stored"
    );

    let t4 = t3 + 3 * DAY;
    let paid = Input::PaymentSucceeded {
        at: t4,
        reference: "INV-000001".into(),
    };
    let c = svc::apply(ctx, "admin@example.com", id, &paid, t4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.from, c.to),
        (SubscriptionState::Suspended, SubscriptionState::Active)
    );
    assert_eq!(status(&app).await, "active");

    // The timeline has a point per state (plan and suspension as last observed).
    let states: Vec<SubscriptionState> = ctx
        .db
        .timeline(id)
        .await
        .unwrap()
        .iter()
        .map(|p| p.state)
        .collect();
    use SubscriptionState::*;
    assert_eq!(states, [Trialing, Active, PastDue, Suspended, Active]);
    for (action, n) in [
        ("billing.subscription_started", 1),
        ("billing.trial_ended", 1),
        ("billing.payment_failed", 1),
        ("billing.grace_expired", 1),
        ("billing.payment_succeeded", 1),
    ] {
        assert_eq!(audits(&app, action).await, n, "{action}");
    }
    let ev = app.ctx.db.audit_events(Some(id), 1, 0).await.unwrap();
    assert_eq!(ev[0].actor, "admin@example.com");
    assert_eq!(ev[0].target, "clients/acme-legal");

    // A refused input is a 409 with the rule's reason.
    let e = svc::apply(ctx, "billing", id, &Input::Deleted, t4)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    // No subscription: 404.
    let other = app.client_id("bakery-lund").await;
    let e = svc::apply(ctx, "billing", other, &Input::Clock, t4)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::NOT_FOUND);
}

/// Two replicas apply one input at the same moment: one change, one audit entry.
async fn concurrent_applies_change_once(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    let id = app.client_id("acme-legal").await;
    svc::start_subscription(ctx, &me, id, &Default::default(), t0)
        .await
        .unwrap();
    let t1 = t0 + DAY;
    let failed = Input::PaymentFailed {
        at: t1,
        reference: "pi_1".into(),
    };
    let runs = (0..4).map(|_| {
        let ctx = app.ctx.clone();
        let failed = failed.clone();
        tokio::spawn(async move { svc::apply(&ctx, "billing", id, &failed, t1).await })
    });
    let results = futures::future::join_all(runs).await;
    let changed = results
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(changed, 1);
    assert_eq!(audits(&app, "billing.payment_failed").await, 1);
    // A stale compare-and-set changes nothing.
    let sub = ctx.db.subscription(id).await.unwrap().unwrap();
    let stale = Subscription {
        state: SubscriptionState::Active,
        ..sub.clone()
    };
    assert!(
        !ctx.db
            .update_subscription_cas(&stale, sub.updated_at - 1)
            .await
            .unwrap()
    );
    assert_eq!(ctx.db.subscription(id).await.unwrap().unwrap(), sub);
}

async fn paying_the_last_overdue_invoice_resumes(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    let id = app.client_id("acme-legal").await;
    svc::start_subscription(ctx, &me, id, &Default::default(), t0)
        .await
        .unwrap();
    let mut a = doc(id, "2026-09", 1000);
    a.due_at = noon("2026-10-15");
    let mut b = doc(id, "2026-10", 1000);
    b.due_at = noon("2026-11-15");
    let inv_a = ctx.db.issue_document("INV", &a).await.unwrap();
    let inv_b = ctx.db.issue_document("INV", &b).await.unwrap();
    let t1 = noon("2026-10-16");
    svc::apply(
        ctx,
        "billing",
        id,
        &Input::PaymentFailed {
            at: t1,
            reference: inv_a.number.clone(),
        },
        t1,
    )
    .await
    .unwrap()
    .unwrap();
    svc::apply(ctx, "billing", id, &Input::Clock, t1 + 7 * DAY)
        .await
        .unwrap()
        .unwrap();
    let att = svc::attention(ctx, noon("2026-11-20"), 0).await.unwrap();
    assert_eq!(
        att.overdue_invoices
            .iter()
            .map(|i| i.number.as_str())
            .collect::<Vec<_>>(),
        [inv_a.number.as_str(), inv_b.number.as_str()]
    );
    // Paying one of two overdue invoices does not resume.
    let t2 = noon("2026-11-20");
    svc::mark_paid(ctx, "admin@example.com", &inv_b.number, "console", t2)
        .await
        .unwrap();
    let sub = ctx.db.subscription(id).await.unwrap().unwrap();
    assert_eq!(
        sub.state,
        SubscriptionState::Suspended,
        "another invoice is overdue"
    );
    svc::mark_paid(ctx, "admin@example.com", &inv_a.number, "console", t2)
        .await
        .unwrap();
    let sub = ctx.db.subscription(id).await.unwrap().unwrap();
    assert_eq!(sub.state, SubscriptionState::Active);
    assert_eq!(audits(&app, "billing.payment_succeeded").await, 1);
    assert!(
        svc::attention(ctx, t2, 0)
            .await
            .unwrap()
            .overdue_invoices
            .is_empty()
    );
}

async fn attention_lists_unpriced_plans(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let now = noon("2026-09-01");
    let att = svc::attention(ctx, now, 7).await.unwrap();
    assert_eq!(att.unpriced_plans, ["large", "small", "standard"]);
    svc::set_price(ctx, &me, &price("small", "10", "2026-09-05", 0), now)
        .await
        .unwrap();
    let att = svc::attention(ctx, now, 7).await.unwrap();
    assert_eq!(att.unpriced_plans, ["large", "standard"]);
    let e = svc::attention(ctx, now, -1).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn customer_ids_are_unique(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    let a = app.client_id("acme-legal").await;
    let b = app.client_id("bakery-lund").await;
    let start = svc::StartSubscription {
        external_customer_id: Some("cus_A".into()),
        skip_trial: true,
    };
    svc::start_subscription(ctx, &me, a, &start, t0)
        .await
        .unwrap();
    let e = svc::start_subscription(ctx, &me, b, &start, t0)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    svc::start_subscription(ctx, &me, b, &Default::default(), t0)
        .await
        .unwrap();
    let e = svc::set_customer_id(ctx, &me, b, Some("cus_A"), t0)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT);
    let e = svc::set_customer_id(ctx, &me, b, Some("cus 1"), t0)
        .await
        .unwrap_err();
    assert_eq!(fields(&e), ["external_customer_id"]);
    let s = svc::set_customer_id(ctx, &me, b, Some("cus_B"), t0)
        .await
        .unwrap();
    assert_eq!(s.external_customer_id.as_deref(), Some("cus_B"));
    assert_eq!(
        ctx.db
            .subscription_by_customer("cus_B")
            .await
            .unwrap()
            .unwrap()
            .client_id,
        b
    );
    let s = svc::set_customer_id(ctx, &me, a, None, t0).await.unwrap();
    assert_eq!(s.external_customer_id, None);
    svc::set_customer_id(ctx, &me, b, Some("cus_A"), t0)
        .await
        .unwrap();
    assert_eq!(audits(&app, "billing.customer_id").await, 3);
}

async fn observations_append_only_changes(app: TestApp) {
    let db = &app.ctx.db;
    let t0 = noon("2026-09-01");
    use SubscriptionState::Active;
    assert!(
        db.record_observation(1, "small", false, Active, t0)
            .await
            .unwrap()
    );
    assert!(
        !db.record_observation(1, "small", false, Active, t0 + 60)
            .await
            .unwrap()
    );
    assert!(
        db.record_observation(1, "large", false, Active, t0 + 120)
            .await
            .unwrap()
    );
    assert!(
        db.record_observation(1, "large", true, Active, t0 + 180)
            .await
            .unwrap()
    );
    assert!(
        db.record_observation(2, "small", false, Active, t0 + 180)
            .await
            .unwrap()
    );
    let last = db.last_timeline_points().await.unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(
        (last[&1].plan.as_str(), last[&1].suspended, last[&1].at),
        ("large", true, t0 + 180)
    );
    assert_eq!(db.timeline(1).await.unwrap().len(), 3);
    // The month's view: the last point before it, then the ones inside.
    let (start, end) = svc::month_bounds("2026-09").unwrap();
    assert_eq!(
        svc::month_bounds("2026-12").unwrap().1,
        billing::day_start("2027-01-01").unwrap()
    );
    let by_client = db.timelines_for_period(start + DAY, end).await.unwrap();
    assert_eq!(
        by_client[&1].iter().map(|p| p.at).collect::<Vec<_>>(),
        [t0 + 180],
        "only the state at the start of the period"
    );
    let by_client = db.timelines_for_period(t0 + 150, end).await.unwrap();
    assert_eq!(
        by_client[&1].iter().map(|p| p.at).collect::<Vec<_>>(),
        [t0 + 120, t0 + 180]
    );
}

/// The invoice run: only a finished month, one invoice per client and month however often
/// it runs (also two runs at once), a price change mid-month billed at both prices, the
/// setup fee once, unpriced plans skipped with the reason.
async fn invoice_run(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-08-20");
    svc::set_price(ctx, &me, &price("standard", "30", "", 0), t0)
        .await
        .unwrap();
    svc::set_price(ctx, &me, &price("standard", "60", "2026-09-16", 0), t0)
        .await
        .unwrap();
    let small = NewPrice {
        setup_fee: "5".into(),
        ..price("small", "10", "", 0)
    };
    svc::set_price(ctx, &me, &small, t0).await.unwrap();
    let acme = app.client_id("acme-legal").await;
    let bakery = app.client_id("bakery-lund").await;
    let chen = app.client_id("chen-studio").await;
    for id in [acme, bakery, chen] {
        svc::start_subscription(ctx, &me, id, &Default::default(), t0)
            .await
            .unwrap();
    }
    let run = |month: &'static str, now: i64| {
        let ctx = app.ctx.clone();
        async move { svc::run_invoices(&ctx, "admin@example.com", month, now).await }
    };
    let (_, sep_end) = svc::month_bounds("2026-09").unwrap();
    let e = run("2026-09", sep_end - 1).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    assert!(e.to_string().contains("not over"), "{e}");
    let e = run("2026-9", sep_end).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let aug = run("2026-08", billing::day_start("2026-09-01").unwrap())
        .await
        .unwrap();
    assert_eq!(aug.issued, ["INV-000001", "INV-000002"], "{aug:?}");
    assert_eq!(aug.skipped.len(), 1, "{aug:?}");
    assert_eq!(aug.skipped[0].0, chen);
    assert!(aug.skipped[0].1.contains("large"), "{aug:?}");
    let a = svc::invoice(ctx, "INV-000001").await.unwrap();
    assert_eq!((a.client_id, a.month.as_str()), (acme, "2026-08"));
    assert_eq!(a.bill_to.name, "Acme Legal LLP");
    assert_eq!(a.total_cents, 3000 * 12 / 31, "20–31 Aug of 31 days");
    assert_eq!(a.due_at, a.issued_at + 14 * DAY);
    let b = svc::invoice(ctx, "INV-000002").await.unwrap();
    assert_eq!(b.lines[0].kind, LineKind::SetupFee, "{b:?}");
    assert_eq!(b.total_cents, 500 + 387);
    assert!(
        ctx.db
            .subscription(bakery)
            .await
            .unwrap()
            .unwrap()
            .setup_fee_invoiced
    );

    // Idempotent.
    let again = run("2026-08", sep_end).await.unwrap();
    assert!(again.issued.is_empty(), "{again:?}");
    assert_eq!(again.already_issued, 2);
    assert_eq!(
        audits(&app, "billing.invoice_run").await,
        1,
        "a run that issues nothing changes nothing"
    );

    // September: the price changed on the 16th; the setup fee is not billed twice.
    let sep = run("2026-09", sep_end).await.unwrap();
    assert_eq!(sep.issued, ["INV-000003", "INV-000004"]);
    let a = svc::invoice(ctx, "INV-000003").await.unwrap();
    let plan_lines: Vec<(i64, i64, i64)> = a
        .lines
        .iter()
        .map(|l| (l.days, l.unit_cents, l.amount_cents))
        .collect();
    assert_eq!(plan_lines, [(15, 3000, 1500), (15, 6000, 3000)], "{a:?}");
    assert_eq!(a.total_cents, 4500);
    let b = svc::invoice(ctx, "INV-000004").await.unwrap();
    assert_eq!(b.total_cents, 1000);
    assert!(b.lines.iter().all(|l| l.kind == LineKind::Plan));

    // Two runs at once (two replicas): each client once, consecutive numbers.
    let (_, oct_end) = svc::month_bounds("2026-10").unwrap();
    let (r1, r2) = tokio::join!(
        tokio::spawn(run("2026-10", oct_end)),
        tokio::spawn(run("2026-10", oct_end))
    );
    let (r1, r2) = (r1.unwrap().unwrap(), r2.unwrap().unwrap());
    let mut numbers: Vec<String> = r1.issued.iter().chain(&r2.issued).cloned().collect();
    numbers.sort();
    assert_eq!(numbers, ["INV-000005", "INV-000006"], "{r1:?} {r2:?}");
    let list = svc::invoices(
        ctx,
        &svc::InvoiceFilter {
            month: Some("2026-10".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(list.len(), 2);
    let unpaid = svc::invoices(
        ctx,
        &svc::InvoiceFilter {
            client_id: Some(acme),
            unpaid_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(unpaid.len(), 3);
    let csv = svc::invoices_csv(&list);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.contains(",Acme Legal LLP,it@acme-legal.example,2026-10,")
            && csv.contains(",60.00,60.00,"),
        "{csv}"
    );
}

/// The console was down past two transitions: one clock pass makes both, each audited under
/// its own name; the view shows what comes next; a scheduled cancellation's timeline point
/// is at the period end, not when the engine got to it.
async fn clock_catch_up_audits_each_step(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    svc::set_price(ctx, &me, &price("standard", "30", "", 14), t0)
        .await
        .unwrap();
    let id = app.client_id("acme-legal").await;
    assert!(svc::subscription(ctx, id).await.unwrap().is_none());
    svc::start_subscription(ctx, &me, id, &Default::default(), t0)
        .await
        .unwrap();
    let c = svc::apply(
        ctx,
        &me.email,
        id,
        &Input::Cancel {
            at_period_end: true,
        },
        t0,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(c.event, "cancel_scheduled");
    let view = svc::subscription(ctx, id).await.unwrap().unwrap();
    let next = view.upcoming.unwrap();
    assert_eq!((next.event, next.at), ("trial_ends", t0 + 14 * DAY));
    assert!(view.invoices.is_empty());

    let oct1 = billing::day_start("2026-10-01").unwrap();
    let c = svc::apply(ctx, "billing", id, &Input::Clock, oct1 + DAY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.from, c.to),
        (SubscriptionState::Trialing, SubscriptionState::Canceled)
    );
    assert_eq!(audits(&app, "billing.trial_ended").await, 1);
    assert_eq!(audits(&app, "billing.canceled").await, 1);
    let last = ctx.db.last_timeline_point(id).await.unwrap().unwrap();
    assert_eq!((last.state, last.at), (SubscriptionState::Canceled, oct1));
    assert_eq!(
        ctx.db.client(id).await.unwrap().unwrap().billing_status,
        "canceled"
    );
}

fn invoice_for_csv(
    number: &str,
    name: &str,
    currency: &str,
    lines: &[(&str, i64)],
    total: i64,
) -> Invoice {
    Invoice {
        id: 1,
        number: number.into(),
        kind: if total < 0 {
            DocumentKind::CreditNote
        } else {
            DocumentKind::Invoice
        },
        client_id: 7,
        month: "2026-09".into(),
        corrects_number: None,
        currency: currency.into(),
        total_cents: total,
        lines: lines
            .iter()
            .map(|(d, a)| InvoiceLine {
                kind: LineKind::Plan,
                description: (*d).into(),
                plan: Some("standard".into()),
                from: "2026-09-01".into(),
                to: "2026-09-15".into(),
                days: 15,
                days_in_month: 30,
                unit_cents: *a,
                amount_cents: *a,
            })
            .collect(),
        bill_to: BillTo {
            name: name.into(),
            email: "a@b.example".into(),
            assistant: "x".into(),
        },
        seller: String::new(),
        note: String::new(),
        issued_at: noon("2026-10-01"),
        due_at: noon("2026-10-15"),
        issued_by: "admin@example.com".into(),
        paid_at: Some(noon("2026-10-03")),
        paid_via: Some("console".into()),
    }
}

#[test]
fn csv_defuses_formulas_and_prints_decimal_totals() {
    let list = [
        invoice_for_csv(
            "INV-000001",
            "=HYPERLINK(\"http://evil\")",
            "EUR",
            &[("standard, 1–15 Sep", 1234), ("large", 5)],
            1239,
        ),
        invoice_for_csv("CN-000001", "Kaito", "JPY", &[("credit", -1200)], -1200),
    ];
    let csv = svc::invoices_csv(&list);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "number,kind,client_id,client_name,email,month,issued,due,currency,line,from,to,days,amount,total,paid"
    );
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[1],
        "INV-000001,invoice,7,\"'=HYPERLINK(\"\"http://evil\"\")\",a@b.example,2026-09,2026-10-01,2026-10-15,EUR,\"standard, 1–15 Sep\",2026-09-01,2026-09-15,15,12.34,12.39,2026-10-03"
    );
    assert!(
        lines[2].ends_with(",large,2026-09-01,2026-09-15,15,0.05,12.39,2026-10-03"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("CN-000001,credit_note,7,Kaito,"),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].contains(",JPY,credit,") && lines[3].contains(",-1200,-1200,"),
        "{}",
        lines[3]
    );
}

both_backends!(
    price_history,
    settings_are_validated_and_audited,
    numbering_is_sequential_and_a_failed_insert_gives_its_number_back,
    concurrent_runs_never_repeat_or_skip,
    issued_invoices_are_immutable_and_paid_once,
    credit_notes_never_exceed_the_invoice,
    state_machine_through_apply,
    concurrent_applies_change_once,
    paying_the_last_overdue_invoice_resumes,
    attention_lists_unpriced_plans,
    customer_ids_are_unique,
    observations_append_only_changes,
    invoice_run,
    clock_catch_up_audits_each_step,
    the_setup_fee_is_settled_by_the_first_billed_invoice,
    a_setup_fee_is_settled_once_under_the_lock,
    zero_and_fully_credited_invoices_are_not_owed,
    an_input_after_a_due_cancellation_comes_after_it,
);

fn fee(plan: &str, monthly: &str, fee: &str, from: &str, trial: i64) -> NewPrice {
    NewPrice {
        setup_fee: fee.into(),
        ..price(plan, monthly, from, trial)
    }
}

/// The setup fee is settled by the first invoice with a billed day, fee or not: a fee added
/// to the price later is not charged to existing clients, and a client that upgraded during
/// its trial pays the fee of the plan it started on, not the other plan's.
async fn the_setup_fee_is_settled_by_the_first_billed_invoice(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-08-20");
    svc::set_price(ctx, &me, &price("standard", "30", "", 0), t0)
        .await
        .unwrap();
    svc::set_price(ctx, &me, &price("small", "10", "", 0), t0)
        .await
        .unwrap();
    svc::set_price(ctx, &me, &fee("large", "50", "20", "", 0), t0)
        .await
        .unwrap();
    let acme = app.client_id("acme-legal").await;
    let bakery = app.client_id("bakery-lund").await;
    for id in [acme, bakery] {
        svc::start_subscription(ctx, &me, id, &Default::default(), t0)
            .await
            .unwrap();
    }
    // bakery (small, no fee) moves to large (fee 20) on the 25th: the timeline says so.
    ctx.db
        .append_timeline_points(&[(
            bakery,
            TimelinePoint {
                at: noon("2026-08-25"),
                plan: "large".into(),
                suspended: false,
                state: SubscriptionState::Active,
            },
        )])
        .await
        .unwrap();
    // A fee is added to standard from September: acme's August invoice settled its fee.
    svc::set_price(ctx, &me, &fee("standard", "30", "9", "2026-09-01", 0), t0)
        .await
        .unwrap();
    let aug = svc::run_invoices(ctx, "admin@example.com", "2026-08", noon("2026-09-01"))
        .await
        .unwrap();
    assert_eq!(aug.issued.len(), 2, "{aug:?}");
    for number in &aug.issued {
        let inv = svc::invoice(ctx, number).await.unwrap();
        assert!(
            inv.lines.iter().all(|l| l.kind == LineKind::Plan),
            "no fee: acme's plan had none on its first day, bakery started on small: {inv:?}"
        );
    }
    for id in [acme, bakery] {
        let sub = ctx.db.subscription(id).await.unwrap().unwrap();
        assert!(sub.setup_fee_invoiced, "settled by the first invoice");
    }
    let sep = svc::run_invoices(ctx, "admin@example.com", "2026-09", noon("2026-10-01"))
        .await
        .unwrap();
    assert_eq!(sep.issued.len(), 2, "{sep:?}");
    for number in &sep.issued {
        let inv = svc::invoice(ctx, number).await.unwrap();
        assert!(
            inv.lines.iter().all(|l| l.kind == LineKind::Plan),
            "a fee added later is not charged: {inv:?}"
        );
    }
}

/// Two runs for different months racing for a client whose fee is due: the fee is marked
/// under the counter lock, and the second invoice drops its fee line.
async fn a_setup_fee_is_settled_once_under_the_lock(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let id = app.client_id("acme-legal").await;
    svc::start_subscription(ctx, &me, id, &Default::default(), noon("2026-08-20"))
        .await
        .unwrap();
    let with_fee = |month: &str| {
        let mut d = doc(id, month, 3000);
        d.lines.insert(
            0,
            InvoiceLine {
                kind: LineKind::SetupFee,
                description: "Setup fee, plan standard".into(),
                plan: Some("standard".into()),
                from: String::new(),
                to: String::new(),
                days: 0,
                days_in_month: 30,
                unit_cents: 900,
                amount_cents: 900,
            },
        );
        d.total_cents = 3900;
        d.includes_setup_fee = true;
        d
    };
    // Both drafted while the fee was due (as two concurrent runs would).
    let aug = ctx
        .db
        .issue_invoices("INV", &[with_fee("2026-08")])
        .await
        .unwrap();
    let sep = ctx
        .db
        .issue_invoices("INV", &[with_fee("2026-09")])
        .await
        .unwrap();
    let a = svc::invoice(ctx, &aug.numbers[0]).await.unwrap();
    let b = svc::invoice(ctx, &sep.numbers[0]).await.unwrap();
    assert_eq!((a.total_cents, a.lines.len()), (3900, 2));
    assert_eq!((b.total_cents, b.lines.len()), (3000, 1), "{b:?}");
    assert_eq!(b.lines[0].kind, LineKind::Plan);
    assert!(
        ctx.db
            .subscription(id)
            .await
            .unwrap()
            .unwrap()
            .setup_fee_invoiced
    );
}

/// A 0.00 invoice (a free plan) is issued paid (`zero`) and never falls due; a fully
/// credited unpaid invoice is not overdue, and crediting the last overdue one resumes.
async fn zero_and_fully_credited_invoices_are_not_owed(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-08-20");
    svc::set_price(ctx, &me, &price("standard", "0", "", 0), t0)
        .await
        .unwrap();
    svc::set_price(ctx, &me, &price("small", "10", "", 0), t0)
        .await
        .unwrap();
    let acme = app.client_id("acme-legal").await;
    let bakery = app.client_id("bakery-lund").await;
    for id in [acme, bakery] {
        svc::start_subscription(ctx, &me, id, &Default::default(), t0)
            .await
            .unwrap();
    }
    let issued = noon("2026-09-01");
    let aug = svc::run_invoices(ctx, "admin@example.com", "2026-08", issued)
        .await
        .unwrap();
    assert_eq!(aug.issued.len(), 2, "{aug:?}");
    let mut by_client = std::collections::HashMap::new();
    for n in &aug.issued {
        let inv = svc::invoice(ctx, n).await.unwrap();
        by_client.insert(inv.client_id, inv);
    }
    let free = &by_client[&acme];
    assert_eq!(free.total_cents, 0);
    assert_eq!(
        (free.paid_at, free.paid_via.as_deref()),
        (Some(issued), Some("zero")),
        "a zero invoice is issued paid"
    );
    let owed = &by_client[&bakery];
    assert_eq!((owed.paid_at, owed.paid_via.as_deref()), (None, None));
    // Past the due date only bakery's invoice is overdue.
    let later = owed.due_at + DAY;
    let overdue: Vec<String> = ctx
        .db
        .overdue_invoices(later)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.number)
        .collect();
    assert_eq!(overdue, std::slice::from_ref(&owed.number));
    // bakery's payment failed (the engine's way); a full credit note (a dispute settled)
    // makes nothing owed: not overdue any more, and the client resumes.
    svc::apply(
        ctx,
        "billing",
        bakery,
        &Input::PaymentFailed {
            at: later,
            reference: owed.number.clone(),
        },
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        ctx.db.subscription(bakery).await.unwrap().unwrap().state,
        SubscriptionState::PastDue
    );
    // A partial credit still leaves something owed: still past due.
    svc::credit_note(
        ctx,
        &me,
        &owed.number,
        &svc::CreditRequest {
            amount: "1".into(),
            reason: "goodwill".into(),
        },
        later + 60,
    )
    .await
    .unwrap();
    assert_eq!(ctx.db.overdue_invoices(later + 61).await.unwrap().len(), 1);
    assert_eq!(
        ctx.db.subscription(bakery).await.unwrap().unwrap().state,
        SubscriptionState::PastDue
    );
    svc::credit_note(
        ctx,
        &me,
        &owed.number,
        &svc::CreditRequest {
            amount: String::new(),
            reason: "disputed: service was down".into(),
        },
        later + 120,
    )
    .await
    .unwrap();
    assert!(
        ctx.db
            .overdue_invoices(later + 121)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        svc::attention(ctx, later + 121, 0)
            .await
            .unwrap()
            .overdue_invoices
            .is_empty()
    );
    assert_eq!(
        ctx.db.subscription(bakery).await.unwrap().unwrap().state,
        SubscriptionState::Active,
        "credited to nothing owed: resumed"
    );
}

/// A cancellation scheduled for the period end is due at midnight; an input applied before
/// the engine got to it (a failed payment at 00:05) comes after it: the client is canceled
/// at midnight and the new month is not billed.
async fn an_input_after_a_due_cancellation_comes_after_it(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    svc::set_price(ctx, &me, &price("standard", "30", "", 0), t0)
        .await
        .unwrap();
    let id = app.client_id("acme-legal").await;
    svc::start_subscription(ctx, &me, id, &Default::default(), t0)
        .await
        .unwrap();
    svc::apply(
        ctx,
        "admin@example.com",
        id,
        &Input::Cancel {
            at_period_end: true,
        },
        noon("2026-09-10"),
    )
    .await
    .unwrap();
    let midnight = billing::day_start("2026-10-01").unwrap();
    // The engine has not run since; a failed payment arrives at 00:05.
    let _ = svc::apply(
        ctx,
        "stripe",
        id,
        &Input::PaymentFailed {
            at: midnight + 300,
            reference: "in_1".into(),
        },
        midnight + 300,
    )
    .await;
    let sub = ctx.db.subscription(id).await.unwrap().unwrap();
    assert_eq!(sub.state, SubscriptionState::Canceled);
    // The engine's pass changes nothing more.
    svc::apply(ctx, "billing", id, &Input::Clock, midnight + 600)
        .await
        .unwrap();
    let nov = billing::day_start("2026-11-01").unwrap();
    let t = ctx.db.timelines_for_period(midnight, nov).await.unwrap();
    let points = t.get(&id).cloned().unwrap_or_default();
    assert!(
        points.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order: {points:?}"
    );
    assert!(
        points
            .iter()
            .filter(|p| p.at >= midnight)
            .all(|p| p.state == SubscriptionState::Canceled),
        "nothing but canceled from midnight: {points:?}"
    );
    let oct = svc::run_invoices(ctx, "admin@example.com", "2026-10", nov)
        .await
        .unwrap();
    assert!(oct.issued.is_empty(), "October is not billed: {oct:?}");
}

// Fix-3 (issue 15 review): "mark paid" and a full credit note are retry-safe.
both_backends!(
    a_repeated_payment_or_credit_still_resumes,
    a_customer_id_change_losing_the_race_is_contended,
);

/// The payment (or the full credit) was recorded but the client not resumed (the resume or
/// its audit failed): marking it paid again, or crediting it again, answers 409 and still
/// resumes the client.
async fn a_repeated_payment_or_credit_still_resumes(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    let acme = app.client_id("acme-legal").await;
    let bakery = app.client_id("bakery-lund").await;
    let mut invoices = Vec::new();
    for id in [acme, bakery] {
        svc::start_subscription(ctx, &me, id, &Default::default(), t0)
            .await
            .unwrap();
        let mut d = doc(id, "2026-09", 1000);
        d.due_at = noon("2026-10-15");
        let inv = ctx.db.issue_document("INV", &d).await.unwrap();
        let t1 = noon("2026-10-16");
        svc::apply(
            ctx,
            "billing",
            id,
            &Input::PaymentFailed {
                at: t1,
                reference: inv.number.clone(),
            },
            t1,
        )
        .await
        .unwrap()
        .unwrap();
        svc::apply(ctx, "billing", id, &Input::Clock, t1 + 7 * DAY)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ctx.db.subscription(id).await.unwrap().unwrap().state,
            SubscriptionState::Suspended
        );
        invoices.push(inv);
    }
    let t2 = noon("2026-11-01");
    // Paid, not resumed (as if the resume had failed).
    assert!(
        ctx.db
            .mark_invoice_paid(&invoices[0].number, t2, "console")
            .await
            .unwrap()
    );
    let e = svc::mark_paid(ctx, "admin@example.com", &invoices[0].number, "console", t2)
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    assert_eq!(
        ctx.db.subscription(acme).await.unwrap().unwrap().state,
        SubscriptionState::Active,
        "the retry resumed it"
    );
    // Credited to nothing owed, not resumed.
    let mut cn = doc(bakery, "2026-09", -1000);
    cn.kind = DocumentKind::CreditNote;
    cn.corrects_number = Some(invoices[1].number.clone());
    ctx.db.issue_credit_note("CN", &cn, 1000).await.unwrap();
    let e = svc::credit_note(
        ctx,
        &me,
        &invoices[1].number,
        &svc::CreditRequest {
            amount: String::new(),
            reason: "again".into(),
        },
        t2,
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT, "{e}");
    assert_eq!(
        ctx.db.subscription(bakery).await.unwrap().unwrap().state,
        SubscriptionState::Active,
        "the retry resumed it"
    );
}

/// Changes of a client's customer id racing each other: one wins, the others lost the
/// compare-and-set and answer 503 ("try again"), not 409 (nothing was refused).
async fn a_customer_id_change_losing_the_race_is_contended(app: TestApp) {
    let ctx = &app.ctx;
    let me = admin(&app);
    let t0 = noon("2026-09-01");
    let id = app.client_id("acme-legal").await;
    svc::start_subscription(ctx, &me, id, &Default::default(), t0)
        .await
        .unwrap();
    let ids: Vec<String> = (0..4).map(|i| format!("cus_race{i}")).collect();
    let runs = ids
        .iter()
        .map(|c| svc::set_customer_id(ctx, &me, id, Some(c.as_str()), t0 + DAY));
    let results = futures::future::join_all(runs).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost: Vec<&ActionError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(won >= 1, "{results:?}");
    assert!(!lost.is_empty(), "the changes raced: {results:?}");
    for e in lost {
        assert!(matches!(e, ActionError::Contended(_)), "{e:?}");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
    }
}
