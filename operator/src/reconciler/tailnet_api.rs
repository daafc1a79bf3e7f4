//! The Tailscale API as the operator uses it: mint a single-use, pre-authorized, tagged
//! auth key for a new client (when the operator has OAuth credentials instead of per-client
//! keys), and remove a client's device when the Assistant is deleted.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{Context, Error, create_once, names, observe::Observation};
use crate::api::Assistant;
use crate::children::{child_meta, tailscale_state_secret::DEVICE_ID_KEY};

/// Key of the minted auth key in `<base>-tailscale-authkey`.
pub const MINTED_KEY: &str = "authkey";

#[async_trait]
pub trait TailnetApi: Send + Sync {
    /// A new single-use, pre-authorized auth key carrying `tags`.
    async fn mint_auth_key(&self, tags: &[String], description: &str) -> Result<String, String>;
    /// Removes a device; a device that is already gone counts as removed.
    async fn delete_device(&self, device_id: &str) -> Result<(), String>;
}

/// Creates the minted-key Secret once, for an Assistant without its own key whose sidecar
/// has not joined yet.
pub async fn ensure_auth_key(
    a: &Assistant,
    ctx: &Context,
    tailnet: &dyn TailnetApi,
    ns: &str,
    observed: &Observation,
) -> Result<(), Error> {
    if a.tailscale().auth_key_secret_ref.is_some() {
        return Ok(());
    }
    let n = names(a);
    let name = format!("{}-tailscale-authkey", n.base);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    if api.get_opt(&name).await?.is_some() || device_id(observed).is_some() {
        return Ok(());
    }
    let mut tags: Vec<String> = ctx.config.tailscale.default_tags.clone();
    tags.extend(a.tailscale().tags);
    let key = tailnet
        .mint_auth_key(&tags, &format!("clawhost {ns}/{}", n.base))
        .await
        .map_err(Error::Tailnet)?;
    let secret = Secret {
        metadata: child_meta(a, &name, "tailscale-authkey"),
        string_data: Some([(MINTED_KEY.to_string(), key)].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    create_once(&api, &secret).await
}

pub fn device_id(observed: &Observation) -> Option<String> {
    observed
        .state
        .tailscale_state
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(DEVICE_ID_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| !s.is_empty())
}
