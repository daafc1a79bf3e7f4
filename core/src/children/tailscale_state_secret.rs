//! Tailscale state Secret: pre-created empty so the sidecar only needs get/update/patch on
//! this one name (Kubernetes cannot restrict `create` by name). The sidecar writes its node
//! key and `device_id`, `device_fqdn`, `device_ips`; the operator never overwrites them.

use k8s_openapi::api::core::v1::Secret;

use super::{BuildError, ChildNames, child_meta};
use crate::api::Assistant;
use crate::config::OperatorConfig;

pub const DEVICE_FQDN_KEY: &str = "device_fqdn";
pub const DEVICE_IPS_KEY: &str = "device_ips";
pub const DEVICE_ID_KEY: &str = "device_id";

pub fn build(assistant: &Assistant, _config: &OperatorConfig) -> Result<Secret, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    Ok(Secret {
        metadata: child_meta(assistant, &names.tailscale_state_secret, "tailscale-state"),
        type_: Some("Opaque".into()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};

    #[test]
    fn state_secret_is_empty_and_named_for_the_sidecar() {
        let s = build(&assistant("alice"), &config()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("alice-tailscale-state"));
        assert!(s.data.is_none() && s.string_data.is_none());
    }
}
