//! Passwords (argon2id), session and API tokens (random, stored as SHA-256), CSRF tokens and
//! the login rate limiter.

use std::collections::HashMap;
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

/// Failed sign-ins per key (e-mail, client address) within a sliding window.
pub struct RateLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl RateLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether another attempt is allowed for every key.
    pub fn allowed(&self, keys: &[String]) -> bool {
        let mut f = self.failures.lock().expect("lock");
        let now = Instant::now();
        keys.iter().all(|k| {
            let list = f.entry(k.clone()).or_default();
            list.retain(|t| now.duration_since(*t) < self.window);
            list.len() < self.max_failures
        })
    }

    pub fn record_failure(&self, keys: &[String]) {
        let mut f = self.failures.lock().expect("lock");
        // Bound memory under a spray of distinct keys.
        if f.len() > 100_000 {
            f.clear();
        }
        for k in keys {
            f.entry(k.clone()).or_default().push(Instant::now());
        }
    }

    pub fn reset(&self, keys: &[String]) {
        let mut f = self.failures.lock().expect("lock");
        for k in keys {
            f.remove(k);
        }
    }
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
    fn rate_limiter_blocks_after_max() {
        let r = RateLimiter::new(2, Duration::from_secs(60));
        let k = vec!["a".to_string()];
        assert!(r.allowed(&k));
        r.record_failure(&k);
        r.record_failure(&k);
        assert!(!r.allowed(&k));
        r.reset(&k);
        assert!(r.allowed(&k));
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
