//! The console benchmark (`console-bench`): seeds 10,000 clients and times the heaviest pages in-process
//! (server time: routing, database, cluster cache, rendering; no network).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use tower::ServiceExt;

use clawhost::config::OperatorConfig;
use clawhost::console::db::{Db, NewClientRecord};
use clawhost::console::{Console, ConsoleOptions, app, auth, service};

use crate::memory_cluster::{MemoryCluster, demo_assistant};

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub median: Duration,
    pub p95: Duration,
}

/// Seeds `clients` clients into the database at `url` and an in-memory cluster.
pub async fn seed(
    url: &str,
    clients: usize,
) -> Result<(Arc<Console>, String, String, i64), Box<dyn std::error::Error>> {
    let db = Db::connect(url).await?;
    let config = OperatorConfig::default();
    let opts = ConsoleOptions {
        namespace: "clients".into(),
        ..Default::default()
    };
    let cluster = MemoryCluster::new(config.clone());
    let plans = ["small", "standard", "large"];
    let mut records = Vec::with_capacity(clients);
    for i in 0..clients {
        let name = format!("client-{i:05}");
        let plan = plans[i % 3];
        let mut a = demo_assistant(
            "clients",
            &name,
            &format!("Client {i:05} GmbH"),
            &format!("ops{i}@example.com"),
            plan,
        );
        a.spec.suspended = i % 10 == 0;
        cluster.insert(a);
        records.push(NewClientRecord {
            name: format!("Client {i:05} GmbH"),
            email: format!("ops{i}@example.com"),
            billing_status: "active".into(),
            notes: String::new(),
            namespace: "clients".into(),
            assistant_name: name,
        });
    }
    let now = service::now();
    for chunk in records.chunks(1000) {
        db.insert_clients(chunk, now).await?;
    }
    let admin = db.create_admin("bench@example.com", "x", now).await?;
    let sid = auth::random_token();
    db.create_session(&auth::token_hash(&sid), admin, "csrf", now, now + 3600)
        .await?;
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
    db.create_scoped_api_token(
        admin,
        "bench",
        &auth::token_hash(&token),
        "chk_",
        "full",
        None,
        now,
    )
    .await?;
    let mid = db
        .client_by_assistant("clients", &format!("client-{:05}", clients / 2))
        .await?
        .map(|c| c.id)
        .unwrap_or(1);
    let ctx = Console::new(db, Arc::new(cluster), config, opts);
    Ok((ctx, sid, token, mid))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Seeds, times each request `iterations` times (after a warm-up) and returns median and
/// p95; with `invoice_run`, then times the invoice run over the same clients.
pub async fn run(
    url: &str,
    clients: usize,
    iterations: usize,
    invoice_run: bool,
) -> Result<(Vec<Figure>, Option<InvoiceRunFigure>), Box<dyn std::error::Error>> {
    let (ctx, sid, token, mid) = seed(url, clients).await?;
    let pages = if iterations > 0 {
        time_pages(ctx.clone(), &sid, &token, mid, iterations).await?
    } else {
        Vec::new()
    };
    let invoices = if invoice_run {
        Some(time_invoice_run(&ctx).await?)
    } else {
        None
    };
    Ok((pages, invoices))
}

/// What the invoice run benchmark measured.
#[derive(Debug, Clone)]
pub struct InvoiceRunFigure {
    pub clients: usize,
    pub issued: usize,
    /// Clients with nothing to bill (suspended by request all month).
    pub nothing_billable: usize,
    /// Timeline points over all clients (the month's history the run reads).
    pub timeline_points: usize,
    pub elapsed: Duration,
}

/// Gives every seeded client a subscription since 2026-08-01 and a September with history
/// (a price change on the 16th for `standard`; every 7th client upgrades to `large` on the
/// 10th, every 13th is suspended for non-payment from the 20th, every 10th was suspended
/// by request all month), then times `run_invoices` for 2026-09 (all clients, one run).
pub async fn time_invoice_run(
    ctx: &Console,
) -> Result<InvoiceRunFigure, Box<dyn std::error::Error>> {
    use clawhost::console::billing::{NewPrice, SubscriptionState, TimelinePoint, day_start};
    use clawhost::console::service::billing as svc;

    let day = |d: &str| day_start(d).ok_or_else(|| format!("bad date {d}"));
    let aug1 = day("2026-08-01")?;
    let bench = clawhost::console::db::Admin {
        id: 0,
        email: "bench@example.com".into(),
    };
    for (plan, monthly, from) in [
        ("small", "19", "2026-08-01"),
        ("standard", "39", "2026-08-01"),
        ("standard", "45.50", "2026-09-16"),
        ("large", "79", "2026-08-01"),
    ] {
        let p = NewPrice {
            plan: plan.into(),
            currency: "EUR".into(),
            monthly: monthly.into(),
            setup_fee: "10".into(),
            trial_days: Some(0),
            effective_from: from.into(),
        };
        svc::set_price(ctx, &bench, &p, aug1).await?;
    }
    let keys = ctx.db.client_keys().await?;
    let plans: std::collections::HashMap<String, (String, bool)> = ctx
        .cluster
        .list()
        .await?
        .into_iter()
        .map(|a| {
            (
                a.metadata.name.clone().unwrap_or_default(),
                (a.spec.plan.clone().unwrap_or_default(), a.spec.suspended),
            )
        })
        .collect();
    // Bulk set-up in one transaction (the service starts subscriptions one at a time).
    let subs: Vec<_> = keys
        .iter()
        .map(|(id, _, _)| {
            let mut s = clawhost::console::billing::state::start(*id, None, None, aug1);
            s.setup_fee_invoiced = true;
            s
        })
        .collect();
    ctx.db.insert_subscriptions(&subs).await?;
    let (sep10, sep20) = (day("2026-09-10")?, day("2026-09-20")?);
    let mut points = Vec::new();
    for (i, (id, _, name)) in keys.iter().enumerate() {
        let (plan, suspended) = plans.get(name).cloned().unwrap_or_default();
        let point = |at, plan: &str, suspended, state| {
            (
                *id,
                TimelinePoint {
                    at,
                    plan: plan.to_string(),
                    suspended,
                    state,
                },
            )
        };
        points.push(point(aug1, &plan, suspended, SubscriptionState::Active));
        if i % 7 == 0 {
            points.push(point(sep10, "large", suspended, SubscriptionState::Active));
        }
        if i % 13 == 0 {
            let plan = if i % 7 == 0 { "large" } else { plan.as_str() };
            points.push(point(sep20, plan, true, SubscriptionState::Suspended));
        }
    }
    ctx.db.append_timeline_points(&points).await?;
    let oct1 = day("2026-10-01")?;
    let t = Instant::now();
    let report = svc::run_invoices(ctx, "bench", "2026-09", oct1).await?;
    let elapsed = t.elapsed();
    if !report.skipped.is_empty() {
        return Err(format!("invoice run skipped clients: {:?}", &report.skipped[..1]).into());
    }
    Ok(InvoiceRunFigure {
        clients: keys.len(),
        issued: report.issued.len(),
        nothing_billable: report.nothing_billable,
        timeline_points: points.len(),
        elapsed,
    })
}

async fn time_pages(
    ctx: Arc<Console>,
    sid: &str,
    token: &str,
    mid: i64,
    iterations: usize,
) -> Result<Vec<Figure>, Box<dyn std::error::Error>> {
    let router = app(ctx);
    let cases: Vec<(String, String, bool)> = vec![
        (
            "clients page (/clients, page 1 of 200)".into(),
            "/clients".into(),
            false,
        ),
        (
            "clients page, search (/clients?q=client 09)".into(),
            "/clients?q=client%2009".into(),
            false,
        ),
        (
            "clients page, phase filter (/clients?phase=Suspended)".into(),
            "/clients?phase=Suspended".into(),
            false,
        ),
        (
            "client page (/clients/{id})".into(),
            format!("/clients/{mid}"),
            false,
        ),
        (
            "API list (/api/v1/clients)".into(),
            "/api/v1/clients".into(),
            true,
        ),
        ("fleet page (/fleet)".into(), "/fleet".into(), false),
    ];
    let mut out = Vec::new();
    for (name, uri, api) in cases {
        let mut times = Vec::with_capacity(iterations);
        for i in 0..iterations + 3 {
            let mut req = Request::get(&uri);
            req = if api {
                req.header("authorization", format!("Bearer {token}"))
            } else {
                req.header("cookie", format!("{}={sid}", auth::SESSION_COOKIE))
            };
            let req = req.body(Body::empty())?;
            let t = Instant::now();
            let res = router.clone().oneshot(req).await?;
            let status = res.status();
            let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
            let el = t.elapsed();
            if !status.is_success() {
                return Err(format!("{uri}: HTTP {status}").into());
            }
            if i >= 3 {
                times.push(el);
            }
        }
        times.sort();
        out.push(Figure {
            name,
            median: percentile(&times, 0.5),
            p95: percentile(&times, 0.95),
        });
    }
    Ok(out)
}
