//! `console-demo`: the admin console over a seeded in-memory cluster (demos and the browser
//! tests). Statuses are what the operator would write; nothing talks to Kubernetes.
//!
//! ```text
//! cargo run -p clawhost-testing --bin console-demo -- --listen 127.0.0.1:8080 --database-url sqlite:demo.sqlite
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use clawhost::config::OperatorConfig;
use clawhost::console::db::Db;
use clawhost::console::{Console, ConsoleOptions, serve_console};
use clawhost_testing::memory_cluster::{MemoryCluster, seed_records};

#[derive(Parser)]
#[command(
    name = "console-demo",
    about = "The clawhost admin console over a seeded in-memory cluster"
)]
struct Cli {
    /// Operator config (plans, defaults) the console validates against.
    #[arg(long, env = "CLAWHOST_CONFIG")]
    config: Option<PathBuf>,
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "CLAWHOST_CONSOLE_LISTEN"
    )]
    listen: std::net::SocketAddr,
    /// sqlite:PATH or postgres://... (default: as `clawhost console`).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Namespace of the demo Assistants and of new ones.
    #[arg(
        long,
        default_value = "clawhost-clients",
        env = "CLAWHOST_CONSOLE_NAMESPACE"
    )]
    namespace: String,
    /// Seconds between usage samples.
    #[arg(
        long,
        env = "CLAWHOST_CONSOLE_USAGE_INTERVAL_SECONDS",
        default_value_t = 60
    )]
    usage_interval_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match &cli.config {
        Some(p) => OperatorConfig::load(p)?,
        None => OperatorConfig::default(),
    };
    let opts = ConsoleOptions {
        listen: cli.listen,
        database_url: cli
            .database_url
            .unwrap_or_else(clawhost::console::db::default_url),
        namespace: cli.namespace,
        usage_interval: Duration::from_secs(cli.usage_interval_seconds.max(1)),
        ..Default::default()
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let db = Db::connect(&opts.database_url).await?;
        let cluster = Arc::new(MemoryCluster::seeded(&opts.namespace, config.clone()));
        let ctx = Console::new(db, cluster, config, opts);
        if let Err(e) = seed_records(&ctx).await {
            tracing::warn!(error = %e, "seeding demo records failed");
        }
        let mut stop = clawhost::runtime::shutdown_signal();
        serve_console(ctx, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
        anyhow::Ok(())
    })
}
