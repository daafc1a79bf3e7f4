//! NetworkPolicy for the gateway pod: no ingress at all (clients arrive through Tailscale),
//! egress only to DNS, the API server (the sidecar keeps its state in a Secret), and the
//! public internet on the ports model providers and Tailscale need. Cloud metadata and
//! private ranges are never reachable.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildError, ChildNames, child_meta, selector_labels};
use crate::api::Assistant;
use crate::config::OperatorConfig;

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..Default::default()
    }
}

/// Internet peers: everything outside the blocked ranges, per address family.
fn internet(config: &OperatorConfig) -> Vec<NetworkPolicyPeer> {
    let blocked = &config.network_policy.blocked_cidrs;
    let family = |all: &str, v6: bool| {
        let except: Vec<String> = blocked
            .iter()
            .filter(|c| c.contains(':') == v6)
            .cloned()
            .collect();
        NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: all.into(),
                except: (!except.is_empty()).then_some(except),
            }),
            ..Default::default()
        }
    };
    vec![family("0.0.0.0/0", false), family("::/0", true)]
}

pub fn build(
    assistant: &Assistant,
    config: &OperatorConfig,
) -> Result<Option<NetworkPolicy>, BuildError> {
    let np = &config.network_policy;
    if !np.enabled {
        return Ok(None);
    }
    let names = ChildNames::for_assistant(assistant);
    let mut egress = vec![
        // Cluster DNS.
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(
                        [(
                            "kubernetes.io/metadata.name".to_string(),
                            np.dns_namespace.clone(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                }),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(np.dns_pod_labels.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
        },
        // Model providers, channels, Tailscale control plane and DERP over HTTPS/HTTP;
        // WireGuard and STUN for direct Tailscale connections.
        NetworkPolicyEgressRule {
            to: Some(internet(config)),
            ports: Some(vec![
                port("TCP", 443),
                port("TCP", 80),
                port("UDP", 41641),
                port("UDP", 3478),
            ]),
        },
    ];
    if !np.api_server_cidrs.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(
                np.api_server_cidrs
                    .iter()
                    .map(|c| NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: c.clone(),
                            except: None,
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(
                np.api_server_ports
                    .iter()
                    .map(|p| port("TCP", *p))
                    .collect(),
            ),
        });
    }
    Ok(Some(NetworkPolicy {
        metadata: child_meta(assistant, &names.network_policy, "gateway"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(assistant)),
                ..Default::default()
            }),
            // Ingress listed with no rules denies all ingress. The rule list stays absent:
            // the API server drops an empty list, and sending one rewrites the object on
            // every apply.
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(egress),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};

    fn policy(cfg: &OperatorConfig) -> NetworkPolicySpec {
        build(&assistant("alice"), cfg)
            .unwrap()
            .unwrap()
            .spec
            .unwrap()
    }

    #[test]
    fn denies_all_ingress() {
        let spec = policy(&config());
        assert_eq!(spec.ingress, None);
        assert!(spec.policy_types.unwrap().contains(&"Ingress".to_string()));
    }

    #[test]
    fn internet_egress_excludes_metadata_and_private_ranges() {
        let spec = policy(&config());
        let egress = spec.egress.unwrap();
        let internet = &egress[1];
        let v4 = internet.to.as_ref().unwrap()[0].ip_block.as_ref().unwrap();
        assert_eq!(v4.cidr, "0.0.0.0/0");
        let except = v4.except.as_ref().unwrap();
        for c in [
            "169.254.0.0/16",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ] {
            assert!(except.contains(&c.to_string()), "{c}");
        }
        let ports: Vec<(String, i32)> = internet
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| match &p.port {
                Some(IntOrString::Int(n)) => (p.protocol.clone().unwrap(), *n),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            ports,
            vec![
                ("TCP".into(), 443),
                ("TCP".into(), 80),
                ("UDP".into(), 41641),
                ("UDP".into(), 3478)
            ]
        );
        assert_eq!(
            egress.len(),
            2,
            "no API rule without known API server CIDRs"
        );
    }

    #[test]
    fn api_server_egress_when_known_and_policy_can_be_disabled() {
        let mut cfg = config();
        cfg.network_policy.api_server_cidrs = vec!["10.0.0.1/32".into()];
        let egress = policy(&cfg).egress.unwrap();
        assert_eq!(
            egress[2].to.as_ref().unwrap()[0]
                .ip_block
                .as_ref()
                .unwrap()
                .cidr,
            "10.0.0.1/32"
        );
        cfg.network_policy.enabled = false;
        assert!(build(&assistant("alice"), &cfg).unwrap().is_none());
    }
}
