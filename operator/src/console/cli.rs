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
    /// The console's external base URL (e.g. https://console.example.com): handoff links
    /// sent to clients are built from it (never from the request's Host header).
    #[arg(long, env = "CLAWHOST_CONSOLE_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// How long a handoff link stays open: 72h, 3d, 90m, 1d12h.
    #[arg(long, env = "CLAWHOST_HANDOFF_LIFETIME", default_value = "72h", value_parser = parse_lifetime)]
    handoff_lifetime: std::time::Duration,
    /// Whom a client with a used or expired handoff link should ask (e.g. an e-mail
    /// address); the issuing admin's e-mail when absent.
    #[arg(long, env = "CLAWHOST_SUPPORT_CONTACT")]
    support_contact: Option<String>,
    /// The access key shared with the operator (32 random bytes, base64): opens the sealed
    /// Tailscale invite URL shown on the client's handoff page.
    #[arg(long, env = "CLAWHOST_ACCESS_KEY_FILE", value_parser = parse_access_key)]
    access_key_file: Option<crate::sealing::SealingKey>,
    /// Days after creation from which a client whose invite is not accepted counts as
    /// "never connected".
    #[arg(long, env = "CLAWHOST_NEVER_CONNECTED_DAYS", default_value_t = 3)]
    never_connected_days: u32,
}

fn parse_lifetime(s: &str) -> Result<std::time::Duration, String> {
    crate::console::service::handoff::parse_lifetime(s).map_err(|e| e.to_string())
}

fn parse_access_key(s: &str) -> Result<crate::sealing::SealingKey, String> {
    crate::sealing::SealingKey::from_file(std::path::Path::new(s)).map_err(|e| e.to_string())
}

fn parse_public_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    if (s.starts_with("https://") || s.starts_with("http://"))
        && !s.contains(['?', '#', ' '])
        && s.len() > "https://".len()
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a base URL: use the console's external address, e.g. https://console.example.com"
        ))
    }
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
            public_url: self.public_url,
            handoff_lifetime: self.handoff_lifetime,
            support_contact: self.support_contact.filter(|c| !c.trim().is_empty()),
            access_key: self.access_key_file,
            never_connected_days: i64::from(self.never_connected_days),
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
