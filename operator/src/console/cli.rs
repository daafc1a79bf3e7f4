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
    /// File holding the Stripe webhook signing secret (whsec_...), read on each event so a
    /// renewed Secret applies without a restart. Unset: no payment provider (the webhook
    /// answers 404; invoices are marked paid in the console).
    #[arg(long, env = "CLAWHOST_STRIPE_WEBHOOK_SECRET_FILE")]
    stripe_webhook_secret_file: Option<PathBuf>,
    /// How far a Stripe event's signed timestamp may be from now (older deliveries are
    /// refused as replays): 5m, 300s.
    #[arg(long, env = "CLAWHOST_STRIPE_TOLERANCE", default_value = "5m", value_parser = parse_span)]
    stripe_tolerance: std::time::Duration,
    /// How often the billing engine applies due transitions (trial end, grace end,
    /// cancellation, retention) and keeps suspensions in line: 60s, 5m.
    #[arg(long, env = "CLAWHOST_BILLING_INTERVAL", default_value = "60s", value_parser = parse_span)]
    billing_interval: std::time::Duration,
}

/// A duration flag: 60s, 5m, 1h (at least a second).
fn parse_span(s: &str) -> Result<std::time::Duration, String> {
    crate::console::service::handoff::parse_lifetime(s).map_err(|_| {
        format!("{s:?} is not a duration: use a number with a unit, e.g. 60s, 5m or 1h")
    })
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
            stripe_webhook_secret_file: self.stripe_webhook_secret_file,
            stripe_tolerance: self.stripe_tolerance,
            billing_interval: self.billing_interval,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ConsoleServerArgs,
    }

    fn options(args: &[&str]) -> Result<ConsoleOptions, clap::Error> {
        Cli::try_parse_from(std::iter::once("console").chain(args.iter().copied()))
            .map(|c| c.server.options())
    }

    #[test]
    fn billing_flags_default_to_no_provider_5m_and_60s() {
        let o = options(&[]).unwrap();
        assert_eq!(o.stripe_webhook_secret_file, None);
        assert_eq!(o.stripe_tolerance, std::time::Duration::from_secs(300));
        assert_eq!(o.billing_interval, std::time::Duration::from_secs(60));
    }

    #[test]
    fn billing_flags_are_read() {
        let o = options(&[
            "--stripe-webhook-secret-file",
            "/etc/clawhost/stripe/secret",
            "--stripe-tolerance",
            "2m",
            "--billing-interval",
            "5m",
        ])
        .unwrap();
        assert_eq!(
            o.stripe_webhook_secret_file.as_deref(),
            Some(std::path::Path::new("/etc/clawhost/stripe/secret"))
        );
        assert_eq!(o.stripe_tolerance, std::time::Duration::from_secs(120));
        assert_eq!(o.billing_interval, std::time::Duration::from_secs(300));
    }

    #[test]
    fn a_bad_duration_is_refused_with_an_example() {
        for bad in ["soon", "0s", "-5m"] {
            let flag = format!("--billing-interval={bad}");
            let e = options(&[&flag]).err().unwrap().to_string();
            assert!(e.contains("e.g. 60s, 5m or 1h"), "{bad}: {e}");
        }
    }
}
