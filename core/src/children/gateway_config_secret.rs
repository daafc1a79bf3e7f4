//! Gateway config Secret: `openclaw.json` (the client's config under the operator-managed
//! keys) and the Tailscale serve config. Mounted as directories, never via subPath: the
//! kubelet updates Secret volumes by an atomic symlink swap that subPath mounts never see.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use super::{BuildError, ChildNames, child_meta};
use crate::api::Assistant;
use crate::config::{GATEWAY_PORT, OperatorConfig};
pub use crate::openclaw::config::{deep_merge, openclaw_config};

pub const OPENCLAW_CONFIG_KEY: &str = "openclaw.json";
pub const SERVE_CONFIG_KEY: &str = "serve.json";

/// Tailscale serve config: HTTPS on 443 of the device to the loopback gateway; Funnel only
/// when the client asked for it. `${TS_CERT_DOMAIN}` is substituted by containerboot.
pub fn serve_config(assistant: &Assistant) -> Value {
    let host = "${TS_CERT_DOMAIN}:443";
    let mut serve = json!({
        "TCP": { "443": { "HTTPS": true } },
        "Web": { host: { "Handlers": { "/": { "Proxy": format!("http://127.0.0.1:{GATEWAY_PORT}") } } } },
    });
    if assistant.tailscale().funnel {
        serve["AllowFunnel"] = json!({ host: true });
    }
    serve
}

pub fn build(assistant: &Assistant, config: &OperatorConfig) -> Result<Secret, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("json serializes");
    Ok(Secret {
        metadata: child_meta(assistant, &names.gateway_config_secret, "gateway-config"),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            (
                OPENCLAW_CONFIG_KEY.to_string(),
                pretty(&openclaw_config(assistant, config)),
            ),
            (
                SERVE_CONFIG_KEY.to_string(),
                pretty(&serve_config(assistant)),
            ),
        ])),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GatewaySpec;
    use crate::testing::{assistant, config};

    fn with_config(cfg: Value) -> Assistant {
        let mut a = assistant("alice");
        a.spec.gateway = Some(GatewaySpec {
            config: cfg.as_object().cloned(),
            ..Default::default()
        });
        a
    }

    #[test]
    fn managed_keys_are_set() {
        let c = openclaw_config(&assistant("alice"), &config());
        assert_eq!(c["gateway"]["mode"], "local");
        assert_eq!(c["gateway"]["bind"], "loopback");
        assert_eq!(c["gateway"]["port"], 18789);
        assert_eq!(c["gateway"]["auth"], json!({"mode": "token"}));
        assert_eq!(c["gateway"]["trustedProxies"], json!(["127.0.0.1"]));
        assert_eq!(c["gateway"]["tailscale"], json!({"mode": "off"}));
        assert_eq!(c["agents"]["defaults"]["maxConcurrent"], 4);
    }

    #[test]
    fn client_config_is_deep_merged_under_managed_keys() {
        let a = with_config(json!({
            "agents": {"defaults": {"model": "anthropic/claude-sonnet-4-5", "maxConcurrent": 2}},
            "gateway": {"controlUi": {"enabled": false}},
            "channels": {"telegram": {"enabled": true}}
        }));
        let c = openclaw_config(&a, &config());
        assert_eq!(
            c["agents"]["defaults"]["model"],
            "anthropic/claude-sonnet-4-5"
        );
        assert_eq!(c["agents"]["defaults"]["maxConcurrent"], 2);
        assert_eq!(c["gateway"]["controlUi"]["enabled"], false);
        assert_eq!(c["gateway"]["mode"], "local");
        assert_eq!(c["channels"]["telegram"]["enabled"], true);
    }

    #[test]
    fn concurrency_is_bounded_by_the_plan() {
        let a = with_config(json!({"agents": {"defaults": {"maxConcurrent": 64}}}));
        assert_eq!(
            openclaw_config(&a, &config())["agents"]["defaults"]["maxConcurrent"],
            4
        );
    }

    #[test]
    fn serve_proxies_to_loopback_and_funnel_only_when_asked() {
        let mut a = assistant("alice");
        let s = serve_config(&a);
        assert_eq!(
            s["Web"]["${TS_CERT_DOMAIN}:443"]["Handlers"]["/"]["Proxy"],
            "http://127.0.0.1:18789"
        );
        assert!(s.get("AllowFunnel").is_none());
        a.spec.tailscale.as_mut().unwrap().funnel = true;
        assert_eq!(
            serve_config(&a)["AllowFunnel"]["${TS_CERT_DOMAIN}:443"],
            true
        );
    }

    #[test]
    fn secret_carries_both_files() {
        let s = build(&assistant("alice"), &config()).unwrap();
        let data = s.string_data.unwrap();
        let parsed: Value = serde_json::from_str(&data[OPENCLAW_CONFIG_KEY]).unwrap();
        assert_eq!(parsed["gateway"]["mode"], "local");
        assert!(data.contains_key(SERVE_CONFIG_KEY));
    }
}
