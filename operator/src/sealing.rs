//! Sealing a credential the operator and the console both handle but that must never be
//! readable where it is kept: the Tailscale invite URL in `status.access` (anyone holding
//! it can accept the invite) and the gateway token inside a handoff link's record.
//! ChaCha20-Poly1305 with a random nonce; the context (`aad`) binds a sealed value to the
//! one place it belongs, so it cannot be copied to another client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "v1.";

/// A 32-byte symmetric key. Its `Debug` never prints the key.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SealingError {
    #[error(
        "cannot read the access key file {path}: {reason} (it holds 32 random bytes, base64; create it with `head -c 32 /dev/urandom | base64`)"
    )]
    KeyFile { path: String, reason: String },
    #[error("the sealed value is damaged or was sealed with another access key")]
    Unreadable,
}

impl SealingKey {
    /// The access key shared by the operator and the console (32 bytes, base64).
    pub fn from_file(path: &std::path::Path) -> Result<Self, SealingError> {
        let err = |reason: String| SealingError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| err("not base64".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| err(format!("{} bytes, expected 32", b.len())))?;
        Ok(Self(key))
    }

    /// A key derived from a high-entropy secret (a handoff link's token), so a record can
    /// only be opened by whoever holds the link.
    pub fn derive(secret: &str, purpose: &str) -> Self {
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(secret.as_bytes());
        Self(h.finalize().into())
    }

    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encrypting in memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealingError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(SealingError::Unreadable)?;
        let (nonce, body) = raw.split_at(12);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealingError::Unreadable)?;
        String::from_utf8(plain).map_err(|_| SealingError::Unreadable)
    }
}

/// The context an invite URL is sealed under in `status.access`.
pub fn invite_url_context(namespace: &str, assistant: &str) -> String {
    format!("clawhost invite-url {namespace}/{assistant}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_key_and_context() {
        let key = SealingKey::random();
        let url = "https://login.tailscale.com/admin/invite/abc123";
        let ctx = invite_url_context("clients", "alice");
        let sealed = key.seal(url, &ctx);
        assert!(sealed.starts_with("v1.") && !sealed.contains("abc123"));
        assert_eq!(key.open(&sealed, &ctx).unwrap(), url);
        assert_ne!(key.seal(url, &ctx), sealed, "a fresh nonce each time");
        assert_eq!(
            key.open(&sealed, &invite_url_context("clients", "bob")),
            Err(SealingError::Unreadable)
        );
        assert_eq!(
            SealingKey::random().open(&sealed, &ctx),
            Err(SealingError::Unreadable)
        );
        assert_eq!(key.open("v1.AAAA", &ctx), Err(SealingError::Unreadable));
        assert_eq!(key.open("garbage", &ctx), Err(SealingError::Unreadable));
    }

    #[test]
    fn derived_keys_depend_on_secret_and_purpose() {
        let a = SealingKey::derive("link-token", "handoff");
        let sealed = a.seal("gateway-token", "c1");
        assert_eq!(
            SealingKey::derive("link-token", "handoff")
                .open(&sealed, "c1")
                .unwrap(),
            "gateway-token"
        );
        assert!(
            SealingKey::derive("other", "handoff")
                .open(&sealed, "c1")
                .is_err()
        );
        assert!(
            SealingKey::derive("link-token", "x")
                .open(&sealed, "c1")
                .is_err()
        );
    }

    #[test]
    fn key_files_are_checked_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "c2hvcnQ=\n").unwrap();
        let e = SealingKey::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("5 bytes, expected 32"), "{e}");
        std::fs::write(
            &p,
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .unwrap();
        let k = SealingKey::from_file(&p).unwrap();
        assert_eq!(format!("{k:?}"), "SealingKey(..)");
    }
}
