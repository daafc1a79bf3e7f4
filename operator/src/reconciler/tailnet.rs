//! The reconcile steps that use the Tailscale API: mint a single-use, pre-authorized,
//! tagged auth key for a new client (when the operator has OAuth credentials instead of
//! per-client keys); find a client's device for its removal on deletion.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{Context, Error, create_once, names, observe::Observation};
use crate::api::Assistant;
use crate::children::{child_meta, tailscale_state_secret::DEVICE_ID_KEY};
use crate::tailscale::TailnetApi;

/// Key of the minted auth key in `<base>-tailscale-authkey`.
pub const MINTED_KEY: &str = "authkey";

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
