//! `console-demo`: the admin console over a seeded in-memory cluster (demos and the browser
//! tests), with the flags of `clawhost console`. Statuses are what the operator would
//! write; nothing talks to Kubernetes.
//!
//! ```text
//! cargo run -p clawhost-testing --bin console-demo -- --listen 127.0.0.1:8080 --database-url sqlite:demo.sqlite
//! ```

use std::sync::Arc;

use clap::Parser;
use clawhost::config::OperatorConfig;
use clawhost::console::cli::ConsoleArgs;
use clawhost::console::db::Db;
use clawhost::console::{Console, serve_console};
use clawhost_testing::memory_cluster::{MemoryCluster, demo_assistant, seed_records};

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
    let opts = server.options();
    tokio::runtime::Runtime::new()?.block_on(async move {
        let db = Db::connect(&opts.database_url).await?;
        let cluster = Arc::new(MemoryCluster::seeded(&opts.namespace, config.clone()));
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
        // After the records: these stand for Assistants created with kubectl (Fleet lists
        // them for adoption).
        cluster.seed_unmanaged(&opts_namespace);
        let mut stop = clawhost::runtime::shutdown_signal();
        serve_console(ctx, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
        anyhow::Ok(())
    })
}
