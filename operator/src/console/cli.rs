//! The console's command-line settings, shared by `clawhost console`, `clawhost serve` and
//! the demo console of the `clawhost-testing` crate (so all take the same flags).

use std::path::PathBuf;

use super::ConsoleOptions;

/// `clawhost console`: the operator config and the server settings.
#[derive(clap::Args)]
pub struct ConsoleArgs {
    /// Operator config (plans, defaults) the console validates against.
    #[arg(long, env = "CLAWHOST_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub server: ConsoleServerArgs,
}

/// Console settings shared by `clawhost console` and `clawhost serve`.
#[derive(clap::Args)]
pub struct ConsoleServerArgs {
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "CLAWHOST_CONSOLE_LISTEN"
    )]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    db: DbArgs,
    /// Namespace new Assistants are created in.
    #[arg(
        long,
        default_value = "clawhost-clients",
        env = "CLAWHOST_CONSOLE_NAMESPACE"
    )]
    namespace: String,
    /// Mark cookies Secure even without X-Forwarded-Proto: https (TLS terminated elsewhere).
    #[arg(long)]
    secure_cookies: bool,
    /// Proxies (comma-separated IPs or CIDRs, e.g. the ingress controller's pod range) whose
    /// X-Forwarded-For gives the real client address for the sign-in limiter; from any other
    /// peer the header is ignored.
    #[arg(long, env = "CLAWHOST_CONSOLE_TRUSTED_PROXIES", value_parser = parse_cidrs, default_value = "")]
    trusted_proxies: TrustedProxies,
}

/// A parsed `--trusted-proxies` list (a newtype: clap would read a `Vec` as repeated flags).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Vec<crate::console::auth::IpCidr>);

fn parse_cidrs(s: &str) -> Result<TrustedProxies, String> {
    crate::console::auth::IpCidr::parse_list(s)
        .map(TrustedProxies)
        .map_err(|e| e.to_string())
}

impl ConsoleServerArgs {
    pub fn options(self) -> ConsoleOptions {
        let mut opts = ConsoleOptions {
            listen: self.listen,
            database_url: self.db.url(),
            namespace: self.namespace,
            secure_cookies: self.secure_cookies,
            trusted_proxies: self.trusted_proxies.0,
            ..Default::default()
        };
        if let Ok(v) = std::env::var("CLAWHOST_CONSOLE_USAGE_INTERVAL_SECONDS")
            && let Ok(n) = v.parse::<u64>()
        {
            opts.usage_interval = std::time::Duration::from_secs(n.max(1));
        }
        opts
    }
}

#[derive(clap::Args)]
pub struct DbArgs {
    /// sqlite:PATH (default ./clawhost.sqlite or $CLAWHOST_DATA_DIR/clawhost.sqlite) or postgres://...
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

impl DbArgs {
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(super::db::default_url)
    }
}
