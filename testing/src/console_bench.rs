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

/// Times each request `iterations` times (after a warm-up) and returns median and p95.
pub async fn run(
    url: &str,
    clients: usize,
    iterations: usize,
) -> Result<Vec<Figure>, Box<dyn std::error::Error>> {
    let (ctx, sid, token, mid) = seed(url, clients).await?;
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
