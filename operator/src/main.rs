//! The `clawhost` command: render, CRD, RBAC and config tools, and (later) the operator
//! and console servers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use clawhost::config::OperatorConfig;
use clawhost::console::cli::{ConsoleArgs, ConsoleServerArgs, DbArgs};
use clawhost::{crd, rbac, render};

#[derive(Parser)]
#[command(
    name = "clawhost",
    version,
    about = "Hosting control plane for private openclaw gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print every Kubernetes object of the Assistants in FILEs, without a cluster.
    Render {
        /// Assistant manifest(s); `-` reads standard input.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Operator config (defaults built in).
        #[arg(long, env = "CLAWHOST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Print the Assistant CustomResourceDefinition.
    Crd,
    /// Print the RBAC rules the operator or the console needs.
    Rbac {
        #[arg(value_enum)]
        component: Component,
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Run the operator: reconcile Assistants in the cluster of the current kubeconfig (or
    /// in-cluster service account).
    Operator {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run the operator and the admin console in one process.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        console: ConsoleServerArgs,
    },
    /// Operator config tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Serve the admin console (clients, billing records, usage, audit).
    Console(ConsoleArgs),
    /// Console administrator accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator (or reset its password with --reset).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Set a new password if the account exists.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List administrators: e-mail, created, disabled, last sign-in, live API tokens.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable an administrator: it cannot sign in, and its sessions and API tokens stop
    /// working at once.
    Disable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Enable a disabled administrator again (its revoked tokens stay revoked).
    Enable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Operator config file (defaults built in).
    #[arg(long, env = "CLAWHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Address of /healthz, /readyz and /metrics. Loopback by default: in a pod, pass
    /// 0.0.0.0:9090 (the chart does) so probes and Prometheus can reach it.
    #[arg(long, env = "CLAWHOST_METRICS_ADDR", default_value = "127.0.0.1:9090")]
    metrics_addr: std::net::SocketAddr,
    /// Log format.
    #[arg(long, env = "CLAWHOST_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// The one logging setup of every server: stderr, `RUST_LOG` or a default that keeps
/// kube's per-request errors out.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // kube_client's HTTP layer logs every failed request as an ERROR: during an outage
        // that is a line per retry, and the operator already reports each failure once
        // with its context (watch, reconcile).
        tracing_subscriber::EnvFilter::new(
            "info,kube=warn,kube_client=warn,kube_client::client::builder=off,kube_runtime=warn,tower=warn,hyper=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn run_server(server: ServerArgs, console: Option<ConsoleServerArgs>) -> anyhow::Result<ExitCode> {
    init_logging(server.log_format);
    let config = load_config(server.config.as_ref())?;
    let config_for_console = config.clone();
    runtime()?.block_on(async move {
        let shutdown = clawhost::runtime::shutdown_signal();
        let operator = clawhost::runtime::run(
            config,
            clawhost::runtime::OperatorOptions {
                metrics_addr: server.metrics_addr,
            },
            shutdown.clone(),
        );
        match console {
            Some(console) => {
                let mut stop = shutdown.clone();
                let console =
                    clawhost::console::serve(console.options(), config_for_console, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    });
                // Either failing stops both: a half-running control plane hides problems.
                tokio::try_join!(operator, async {
                    console.await.map_err(anyhow::Error::from)
                })?;
            }
            None => operator.await?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Clone, Copy, ValueEnum)]
enum Component {
    Operator,
    Console,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file; prints the effective config with defaults filled in.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<OperatorConfig> {
    Ok(match path {
        Some(p) => OperatorConfig::load(p)?,
        None => OperatorConfig::default(),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Render {
            files,
            config,
            output,
        } => {
            let config = load_config(config.as_ref())?;
            match render::render_files(&files, &config) {
                Ok(objects) => {
                    match output {
                        Format::Yaml => print!("{}", render::to_yaml(&objects)),
                        Format::Json => println!("{}", render::to_json(&objects)),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    eprintln!("{} problem(s); nothing rendered", errors.len());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Operator { server } => run_server(server, None),
        Command::Serve { server, console } => run_server(server, Some(console)),
        Command::Crd => {
            print!("{}", crd::crd_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rbac { component, output } => {
            let rules = match component {
                Component::Operator => rbac::operator_rules(),
                Component::Console => rbac::console_rules(),
            };
            match output {
                Format::Yaml => print!("{}", serde_yaml::to_string(&rules)?),
                Format::Json => println!("{}", serde_json::to_string_pretty(&rules)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Console(args) => run_console(args),
        Command::Admin { command } => run_admin(command),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let cfg = OperatorConfig::load(&config)?;
            print!("{}", serde_yaml::to_string(&cfg)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_admin(command: AdminCommand) -> anyhow::Result<ExitCode> {
    use clawhost::console::admins;
    let out = match command {
        AdminCommand::Create {
            email,
            password_stdin,
            reset,
            db,
        } => {
            let email = admins::check_email(&email)?;
            let password = admins::read_password(password_stdin)?;
            runtime()?.block_on(admins::create_or_reset(&db.url(), &email, &password, reset))?
        }
        AdminCommand::List { db } => runtime()?.block_on(admins::list(&db.url()))?,
        AdminCommand::Disable { email, db } => {
            let email = admins::check_email(&email)?;
            runtime()?.block_on(admins::set_disabled(&db.url(), &email, true))?
        }
        AdminCommand::Enable { email, db } => {
            let email = admins::check_email(&email)?;
            runtime()?.block_on(admins::set_disabled(&db.url(), &email, false))?
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The one tokio runtime builder of every command that needs one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run_console(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    use clawhost::console;
    init_logging(LogFormat::Text);
    let config = load_config(args.config.as_ref())?;
    let opts = args.server.options();
    runtime()?.block_on(async move {
        let mut stop = clawhost::runtime::shutdown_signal();
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        console::serve(opts, config, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metrics and health stay on loopback unless asked (the chart passes 0.0.0.0:9090).
    #[test]
    fn metrics_listen_on_loopback_by_default() {
        let cli = Cli::try_parse_from(["clawhost", "serve"]).unwrap();
        let Command::Serve { server, .. } = cli.command else {
            panic!("serve")
        };
        if std::env::var_os("CLAWHOST_METRICS_ADDR").is_none() {
            assert_eq!(server.metrics_addr.to_string(), "127.0.0.1:9090");
        }
        let cli = Cli::try_parse_from(["clawhost", "operator", "--metrics-addr", "0.0.0.0:9090"])
            .unwrap();
        let Command::Operator { server } = cli.command else {
            panic!("operator")
        };
        assert_eq!(server.metrics_addr.to_string(), "0.0.0.0:9090");
    }
}
