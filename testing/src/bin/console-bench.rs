//! `console-bench`: seeds 10,000 clients and times the clients page, a client page, the API
//! list and the fleet page in-process (server time; see docs/performance.md).
//!
//! ```text
//! cargo run --release -p clawhost-testing --bin console-bench -- [--iterations 50] [--database-url URL] [--invoice-run]
//! ```
//!
//! `--invoice-run` also times the billing invoice run of one month for every client;
//! `--iterations 0 --invoice-run` times only that.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "console-bench",
    about = "Console benchmark: seed clients, time the heaviest pages"
)]
struct Cli {
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    #[arg(long, default_value_t = 50)]
    iterations: usize,
    /// Database to seed (default: a temporary SQLite file).
    #[arg(long)]
    database_url: Option<String>,
    /// Also time the invoice run of a month for every client (target ≤ 10 s).
    #[arg(long)]
    invoice_run: bool,
}

fn main() -> anyhow::Result<()> {
    let Cli {
        clients,
        iterations,
        database_url,
        invoice_run,
    } = Cli::parse();
    let dir = std::env::temp_dir().join(format!("clawhost-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = database_url.unwrap_or_else(|| format!("sqlite://{}/bench.sqlite", dir.display()));
    let (figures, invoices) = tokio::runtime::Runtime::new()?
        .block_on(clawhost_testing::console_bench::run(
            &url,
            clients,
            iterations,
            invoice_run,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "console bench: {clients} clients, {iterations} requests each, server time in-process"
    );
    println!("{:<58} {:>10} {:>10}", "request", "median", "p95");
    for f in figures {
        println!(
            "{:<58} {:>8.2}ms {:>8.2}ms",
            f.name,
            f.median.as_secs_f64() * 1000.0,
            f.p95.as_secs_f64() * 1000.0
        );
    }
    if let Some(f) = invoices {
        println!(
            "invoice run, {} clients: {:.2} s (target ≤ 10 s; {} invoices issued, {} with nothing billable, {} timeline points)",
            f.clients,
            f.elapsed.as_secs_f64(),
            f.issued,
            f.nothing_billable,
            f.timeline_points
        );
    }
    Ok(())
}
