//! The Tailscale API, as the reconciler needs it ([`TailnetApi`]), and its HTTP client
//! ([`http::TailscaleApi`], OAuth client credentials); device-share invites
//! ([`invites::DeviceInvites`], a user-owned API access token).

pub mod http;
pub mod invites;

use async_trait::async_trait;

pub use http::from_config;

/// What the reconciler asks of the tailnet. The real client is [`http::TailscaleApi`];
/// tests pass their own.
#[async_trait]
pub trait TailnetApi: Send + Sync {
    /// A new single-use, pre-authorized auth key carrying `tags`.
    async fn mint_auth_key(&self, tags: &[String], description: &str) -> Result<String, String>;
    /// Removes a device; a device that is already gone counts as removed.
    async fn delete_device(&self, device_id: &str) -> Result<(), String>;
}
