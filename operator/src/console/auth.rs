//! Passwords (argon2id), session and API tokens (random, stored as SHA-256), CSRF tokens and
//! the login limiter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "clawhost_session";
pub const LOGIN_CSRF_COOKIE: &str = "clawhost_login_csrf";
pub const CSRF_FIELD: &str = "_csrf";
/// Sessions last a working day; sign in again after.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// API tokens are recognisable in logs and secret scanners by this prefix.
pub const API_TOKEN_PREFIX: &str = "chk_";
pub const MIN_PASSWORD_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// 32 random bytes, base64url: session ids, CSRF tokens, API tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Tokens are high-entropy, so a plain SHA-256 is enough to make a database leak useless.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    // Argon2::default() is argon2id v19 with the OWASP-recommended m=19 MiB, t=2, p=1.
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Spent on unknown e-mails so response time does not reveal which accounts exist.
pub fn dummy_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let h = DUMMY.get_or_init(|| hash_password("dummy-password-for-timing").unwrap_or_default());
    let _ = verify_password(password, h);
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// An address range (`10.0.0.0/8`, `fd00::/8`, or one address) of trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0:?} is not an IP address or CIDR range (like 10.0.0.0/8 or 192.168.1.7)")]
pub struct CidrError(String);

impl std::str::FromStr for IpCidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_string());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (s.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(IpCidr { addr, prefix })
    }
}

impl IpCidr {
    /// A comma-separated list (the flag and environment variable format).
    pub fn parse_list(s: &str) -> Result<Vec<IpCidr>, CidrError> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The address a sign-in really comes from: the peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its
/// left were written by the client and can be forged). A trusted proxy that names no
/// untrusted hop yields the proxy itself: every such request shares its bucket rather than
/// escaping the limit. `None` only without a peer address (never when served over TCP).
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[IpCidr],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .collect();
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip))
            .unwrap_or(peer),
    )
}

/// The key an address is rate-limited under: IPv4 as is (mapped ones unwrapped), IPv6 by
/// its /64, since one subscriber typically holds a whole /64 and could rotate through it.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
        v4 => v4,
    }
}

/// Why a sign-in attempt is refused before the password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, at least 1, for the message.
    pub fn seconds(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

#[derive(Debug, Clone, Copy)]
struct AccountFailures {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

#[derive(Debug, Clone, Copy)]
struct AddressWindow {
    started: Instant,
    failures: u32,
}

/// The sign-in limiter: per account, exponential backoff; per real client address, a cap
/// per window. It is never global: failures for other accounts or from other addresses
/// never delay an account's sign-in, and the same rules apply to unknown e-mails, so a
/// refusal does not reveal whether an account exists.
pub struct LoginLimiter {
    /// Failures an account may have before backoff starts.
    pub free_failures: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Failures one address may have per `address_window`.
    pub address_failures: u32,
    pub address_window: Duration,
    /// Bound on the entries of each map (a spray of distinct e-mails or addresses).
    pub max_entries: usize,
    accounts: Mutex<HashMap<String, AccountFailures>>,
    addresses: Mutex<HashMap<IpAddr, AddressWindow>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            free_failures: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            address_failures: 30,
            address_window: Duration::from_secs(15 * 60),
            max_entries: 10_000,
            accounts: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
        }
    }
}

impl LoginLimiter {
    /// A limiter of requests per client address only (`limit` per `window`): record every
    /// request under one key, and no account backoff ever starts.
    pub fn per_address(limit: u32, window: Duration) -> Self {
        Self {
            free_failures: u32::MAX,
            address_failures: limit,
            address_window: window,
            ..Self::default()
        }
    }

    /// `Err` with the wait when the attempt must be refused unchecked.
    pub fn check(&self, email: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), RetryAfter> {
        let mut wait = Duration::ZERO;
        if let Some(a) = lock(&self.accounts).get(email) {
            wait = wait.max(a.blocked_until.saturating_duration_since(now));
        }
        if let Some(ip) = ip.map(rate_key)
            && let Some(w) = lock(&self.addresses).get(&ip)
            && w.failures >= self.address_failures
        {
            wait = wait.max((w.started + self.address_window).saturating_duration_since(now));
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(RetryAfter(wait))
        }
    }

    pub fn record_failure(&self, email: &str, ip: Option<IpAddr>, now: Instant) {
        {
            let mut accounts = lock(&self.accounts);
            if accounts.len() >= self.max_entries && !accounts.contains_key(email) {
                self.evict_accounts(&mut accounts, now);
            }
            let a = accounts
                .entry(email.to_string())
                .or_insert(AccountFailures {
                    failures: 0,
                    blocked_until: now,
                    last_failure: now,
                });
            // A quiet account starts over: backoff is for bursts, not for a typo a week ago.
            if now.saturating_duration_since(a.blocked_until.max(a.last_failure)) > self.max_delay {
                a.failures = 0;
            }
            a.failures = a.failures.saturating_add(1);
            a.last_failure = now;
            if a.failures >= self.free_failures {
                let doublings = (a.failures - self.free_failures).min(30);
                let delay = self
                    .first_delay
                    .saturating_mul(1u32 << doublings)
                    .min(self.max_delay);
                a.blocked_until = now + delay;
            }
        }
        if let Some(ip) = ip.map(rate_key) {
            let mut addresses = lock(&self.addresses);
            if addresses.len() >= self.max_entries && !addresses.contains_key(&ip) {
                let window = self.address_window;
                addresses.retain(|_, w| now.saturating_duration_since(w.started) < window);
                if addresses.len() >= self.max_entries {
                    // Still full of live windows: forget the oldest half rather than grow.
                    let mut starts: Vec<Instant> = addresses.values().map(|w| w.started).collect();
                    starts.sort();
                    let cut = starts[starts.len() / 2];
                    addresses.retain(|_, w| w.started > cut);
                }
            }
            let w = addresses.entry(ip).or_insert(AddressWindow {
                started: now,
                failures: 0,
            });
            if now.saturating_duration_since(w.started) >= self.address_window {
                *w = AddressWindow {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// Accounts below the backoff threshold go first (a spray of random e-mails leaves only
    /// those), then idle ones; a targeted account under backoff is kept as long as possible.
    fn evict_accounts(&self, accounts: &mut HashMap<String, AccountFailures>, now: Instant) {
        let free = self.free_failures;
        accounts.retain(|_, a| a.failures >= free);
        let idle = self.max_delay;
        accounts.retain(|_, a| now.saturating_duration_since(a.blocked_until) < idle);
        if accounts.len() >= self.max_entries {
            let mut lasts: Vec<Instant> = accounts.values().map(|a| a.last_failure).collect();
            lasts.sort();
            let cut = lasts[lasts.len() / 2];
            accounts.retain(|_, a| a.last_failure > cut);
        }
    }

    /// A successful sign-in clears the account's backoff (not the address's count).
    pub fn record_success(&self, email: &str) {
        lock(&self.accounts).remove(email);
    }

    pub fn tracked(&self) -> (usize, usize) {
        (lock(&self.accounts).len(), lock(&self.addresses).len())
    }
}

/// A poisoned lock only means another request panicked mid-update of a counter: keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Value of one cookie from a `Cookie` header.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure behind TLS.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_weak_refused() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn account_backoff_doubles_and_resets() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        let ip = Some("203.0.113.9".parse().unwrap());
        for _ in 0..2 {
            assert!(l.check("a@x.io", ip, t0).is_ok());
            l.record_failure("a@x.io", ip, t0);
        }
        assert!(l.check("a@x.io", ip, t0).is_ok(), "two failures are free");
        l.record_failure("a@x.io", ip, t0);
        assert_eq!(
            l.check("a@x.io", ip, t0),
            Err(RetryAfter(Duration::from_secs(1)))
        );
        assert!(l.check("a@x.io", ip, t0 + Duration::from_secs(1)).is_ok());
        let t1 = t0 + Duration::from_secs(1);
        l.record_failure("a@x.io", ip, t1);
        assert_eq!(
            l.check("a@x.io", ip, t1),
            Err(RetryAfter(Duration::from_secs(2)))
        );
        // Other accounts are not affected.
        assert!(l.check("b@x.io", None, t1).is_ok());
        // Capped at 15 minutes.
        for _ in 0..40 {
            l.record_failure("a@x.io", None, t1);
        }
        assert_eq!(
            l.check("a@x.io", None, t1),
            Err(RetryAfter(Duration::from_secs(900)))
        );
        l.record_success("a@x.io");
        assert!(l.check("a@x.io", None, t1).is_ok());
    }

    #[test]
    fn address_cap_and_bounded_memory() {
        let l = LoginLimiter {
            max_entries: 100,
            ..Default::default()
        };
        let t0 = Instant::now();
        let spray: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..1000 {
            l.record_failure(&format!("random{i}@x.io"), Some(spray), t0);
        }
        let (accounts, addresses) = l.tracked();
        assert!(accounts <= 100 && addresses == 1, "{accounts} {addresses}");
        assert!(l.check("admin@x.io", Some(spray), t0).is_err());
        assert!(
            l.check("admin@x.io", Some("192.0.2.1".parse().unwrap()), t0)
                .is_ok()
        );
        assert!(l.check("admin@x.io", None, t0).is_ok());
        assert!(
            l.check("admin@x.io", Some(spray), t0 + Duration::from_secs(900))
                .is_ok()
        );
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let l = LoginLimiter::per_address(3, Duration::from_secs(600));
        let t0 = Instant::now();
        for i in 1..=3 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert!(l.check("k", Some(ip), t0).is_ok());
            l.record_failure("k", Some(ip), t0);
        }
        // A fresh address in the same /64 is refused; the next /64 is not.
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(l.check("k", Some(same), t0).is_err());
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check("k", Some(other), t0).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(rate_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_from_proxies() {
        let proxies = IpCidr::parse_list("10.0.0.0/8, fd00::/8").unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.5, 10.1.2.3".parse().unwrap(),
        );
        let proxy = Some("10.9.9.9".parse().unwrap());
        let direct = Some("192.0.2.8".parse().unwrap());
        assert_eq!(
            client_ip(proxy, &h, &proxies),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(client_ip(direct, &h, &proxies), direct);
        // Only trusted hops, or no header: counted under the proxy, never unlimited.
        assert_eq!(client_ip(proxy, &http::HeaderMap::new(), &proxies), proxy);
        let mut only_proxies = http::HeaderMap::new();
        only_proxies.insert("x-forwarded-for", "10.1.2.3, fd00::1".parse().unwrap());
        assert_eq!(client_ip(proxy, &only_proxies, &proxies), proxy);
        assert_eq!(client_ip(None, &h, &proxies), None);
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        assert!(IpCidr::parse_list("10.0.0.0/33").is_err());
        assert!(IpCidr::parse_list("ingress").is_err());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(proxies[0].contains(mapped));
        assert!(
            "0.0.0.0/0"
                .parse::<IpCidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn cookies_parse() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; clawhost_session=xyz".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
