//! `console-demo`: the admin console over a seeded in-memory cluster (demos and the browser
//! tests), with the flags of `clawhost console`. Statuses are what the operator would
//! write; nothing talks to Kubernetes.
//!
//! ```text
//! cargo run -p clawhost-testing --bin console-demo -- --listen 127.0.0.1:8080 --database-url sqlite:demo.sqlite
//! ```

use std::sync::Arc;

use clap::Parser;
use clawhost::api::{AccessState, AccessStatus};
use clawhost::config::OperatorConfig;
use clawhost::console::billing::model::{BillingSettings, Input, NewPrice, day_of, day_start};
use clawhost::console::cli::ConsoleArgs;
use clawhost::console::db::{Admin, Db};
use clawhost::console::service::billing::{self as bill, StartSubscription};
use clawhost::console::service::{self, ActionError};
use clawhost::console::{Console, serve_console};
use clawhost::sealing::SealingKey;
use clawhost_testing::memory_cluster::{MemoryCluster, demo_assistant, demo_invite, seed_records};

#[derive(Parser)]
#[command(
    name = "console-demo",
    about = "The clawhost admin console over a seeded in-memory cluster"
)]
struct Cli {
    #[command(flatten)]
    console: ConsoleArgs,
    /// Also seed a client whose data volume cannot be provisioned (accented owner name,
    /// Pending volume, events, no log): the browser tests of a person's first hour.
    #[arg(long, env = "CONSOLE_DEMO_STUCK_CLIENT")]
    stuck_client: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let stuck_client = cli.stuck_client;
    let ConsoleArgs { config, server } = cli.console;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match &config {
        Some(p) => OperatorConfig::load(p)?,
        None => OperatorConfig::default(),
    };
    let mut opts = server.options();
    // The demo stands in for the operator's invites: it needs the access key they share.
    let access_key = match opts.access_key.clone() {
        Some(k) => k,
        None => {
            let k = write_demo_access_key()?;
            opts.access_key = Some(k.clone());
            k
        }
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let db = Db::connect(&opts.database_url).await?;
        let cluster = Arc::new(MemoryCluster::seeded(&opts.namespace, config.clone()));
        // Snapshots and backup health for the Backups card and Fleet → Backups.
        cluster.seed_backup_demo(&opts.namespace);
        if stuck_client {
            cluster.insert(demo_assistant(
                &opts.namespace,
                "elodie-unal",
                "Élodie Ünal",
                "elodie@unal.example",
                "small",
            ));
            cluster.stall_volume(
                &opts.namespace,
                "elodie-unal",
                "storageclass.storage.k8s.io \"fast-ssd\" not found",
            );
        }
        let opts_namespace = opts.namespace.clone();
        let ctx = Console::new(db, cluster.clone(), config, opts);
        if let Err(e) = seed_records(&ctx).await {
            tracing::warn!(error = %e, "seeding demo records failed");
        }
        if let Err(e) = seed_billing(&ctx, &opts_namespace).await {
            tracing::warn!(error = %e, "seeding demo billing failed");
        }
        // After the records: these stand for Assistants created with kubectl (Fleet lists
        // them for adoption).
        cluster.seed_unmanaged(&opts_namespace);
        seed_access(&cluster, &opts_namespace, &access_key);
        // The simulated operator's invite step: clients created in the demo get a Sent
        // invite a moment after their device joins.
        let inviter = cluster.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tick.tick().await;
                inviter.send_pending_invites(&access_key);
            }
        });
        let mut stop = clawhost::runtime::shutdown_signal();
        serve_console(ctx, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
        anyhow::Ok(())
    })
}

/// Billing content for the pages (once per database): a price per plan from the first of
/// the month before last, three subscriptions from then on (one with a customer id, one
/// past due and about to be suspended, and the clinic, suspended by an admin so never
/// billable, cancelling at the end of this month), and the invoices of the month before
/// last (one paid). Last month is left to invoice, and
/// `chen-studio` has no subscription: the browser test starts one and runs the month.
async fn seed_billing(ctx: &Console, ns: &str) -> Result<(), ActionError> {
    if !ctx.db.plan_prices().await?.is_empty() {
        return Ok(());
    }
    let seed = Admin {
        id: 0,
        email: "demo-seed".into(),
    };
    let now = service::now();
    let rules = BillingSettings {
        seller: "Clawhost Demo Hosting Ltd\n1 Harbour Street, Malmö\nVAT SE556677889901".into(),
        ..BillingSettings::default()
    };
    bill::update_settings(ctx, &seed, &rules, now).await?;
    let first_of = |m: &str| day_start(&format!("{m}-01")).unwrap_or(now);
    let last_month = service::month_of(first_of(&service::month_of(now)) - 1);
    let month_before = service::month_of(first_of(&last_month) - 1);
    let start = first_of(&month_before);
    for (plan, monthly, setup_fee, trial_days) in [
        ("small", "19", "", 14),
        ("standard", "39", "49", 0),
        ("large", "89", "99", 0),
    ] {
        let p = NewPrice {
            plan: plan.into(),
            currency: "EUR".into(),
            monthly: monthly.into(),
            setup_fee: setup_fee.into(),
            trial_days: Some(trial_days),
            effective_from: day_of(start),
        };
        bill::set_price(ctx, &seed, &p, start).await?;
    }
    // A raise of the standard plan next month: the price list shows a scheduled price.
    let next_month = first_of(&service::month_of(now + 32 * 86_400));
    let raise = NewPrice {
        plan: "standard".into(),
        currency: "EUR".into(),
        monthly: "42".into(),
        setup_fee: "49".into(),
        trial_days: Some(0),
        effective_from: day_of(next_month),
    };
    bill::set_price(ctx, &seed, &raise, now).await?;
    let mut ids = Vec::new();
    for (name, day, customer) in [
        ("acme-legal", 0, Some("cus_DEMOACME")),
        ("bakery-lund", 9, None),
        ("dr-okafor", 14, None),
    ] {
        let Some(c) = ctx.db.client_by_assistant(ns, name).await? else {
            continue;
        };
        let req = StartSubscription {
            external_customer_id: customer.map(str::to_string),
            skip_trial: true,
        };
        bill::start_subscription(ctx, &seed, c.id, &req, start + day * 86_400).await?;
        ids.push((name, c.id));
    }
    let report = bill::run_invoices(
        ctx,
        "demo-seed",
        &month_before,
        first_of(&last_month) + 3600,
    )
    .await?;
    if let Some(n) = report.issued.first() {
        bill::mark_paid(
            ctx,
            "demo-seed",
            n,
            "console",
            first_of(&last_month) + 5 * 86_400,
        )
        .await?;
    }
    for (name, id) in ids {
        let input = match name {
            "dr-okafor" => Input::Cancel {
                at_period_end: true,
            },
            "bakery-lund" => Input::PaymentFailed {
                at: now - 3 * 86_400,
                reference: "demo: card declined".into(),
            },
            _ => continue,
        };
        bill::apply(ctx, "demo-seed", id, &input, now - 3 * 86_400).await?;
    }
    Ok(())
}

/// A fresh demo access key in a private temp file (the real one is a Secret mounted into
/// the operator and the console).
fn write_demo_access_key() -> anyhow::Result<SealingKey> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(clawhost::console::auth::random_token())?;
    let dir = std::env::temp_dir().join(format!("console-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("access-key");
    std::fs::write(&path, base64::engine::general_purpose::STANDARD.encode(raw))?;
    tracing::info!(path = %path.display(), "demo access key written");
    Ok(SealingKey::from_file(&path)?)
}

/// Invite states across the demo fleet: Sent (with a sealed invite URL), Accepted, Manual
/// and Pending.
fn seed_access(cluster: &MemoryCluster, ns: &str, key: &SealingKey) {
    cluster.set_access(
        ns,
        "acme-legal",
        Some(demo_invite(key, ns, "acme-legal", "it@acme-legal.example")),
    );
    let mut accepted = demo_invite(key, ns, "bakery-lund", "hej@bageri-lund.example");
    accepted.state = AccessState::Accepted;
    accepted.sealed_invite_url = None;
    accepted.accepted_by = Some("hej@bageri-lund.example".into());
    cluster.set_access(ns, "bakery-lund", Some(accepted));
    cluster.set_access(
        ns,
        "chen-studio",
        Some(AccessStatus {
            state: AccessState::Manual,
            message: Some(
                "no Tailscale invite credential configured: share the device by hand".into(),
            ),
            ..Default::default()
        }),
    );
    cluster.set_access(
        ns,
        "dr-okafor",
        Some(AccessStatus {
            state: AccessState::Pending,
            message: Some("waiting for the device to join the tailnet".into()),
            ..Default::default()
        }),
    );
}
