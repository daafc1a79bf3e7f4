//! Headless Service the StatefulSet is governed by. It exposes no port: the gateway listens
//! on loopback and clients arrive through the Tailscale sidecar.

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use super::{BuildError, ChildNames, child_meta, selector_labels};
use crate::api::Assistant;
use crate::config::OperatorConfig;

pub fn build(assistant: &Assistant, _config: &OperatorConfig) -> Result<Service, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    Ok(Service {
        metadata: child_meta(assistant, &names.service, "gateway"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector_labels(assistant)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};

    #[test]
    fn service_is_headless_and_selects_the_gateway() {
        let s = build(&assistant("alice"), &config()).unwrap();
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(
            spec.selector.unwrap()["app.kubernetes.io/instance"],
            "alice"
        );
        assert!(spec.ports.is_none());
    }
}
