//! ServiceAccount, Role and RoleBinding for the Tailscale sidecar: it may read and update
//! its own state Secret (by name) and record events, nothing else. The gateway container
//! gets no API credentials at all.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{BuildError, ChildNames, child_meta};
use crate::api::Assistant;
use crate::config::OperatorConfig;

pub fn service_account(
    assistant: &Assistant,
    _config: &OperatorConfig,
) -> Result<ServiceAccount, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    Ok(ServiceAccount {
        metadata: child_meta(assistant, &names.service_account, "gateway"),
        // The pod mounts a projected token into the sidecar only.
        automount_service_account_token: Some(false),
        ..Default::default()
    })
}

/// The rules granted to the sidecar. The operator must hold each of them itself (RBAC
/// escalation prevention), which `rbac.rs` checks.
pub fn sidecar_rules(state_secret: &str) -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![state_secret.to_string()]),
            verbs: vec!["get".into(), "update".into(), "patch".into()],
            ..Default::default()
        },
        PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["events".into()]),
            verbs: vec!["create".into(), "patch".into()],
            ..Default::default()
        },
    ]
}

pub fn role(assistant: &Assistant, _config: &OperatorConfig) -> Result<Role, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    Ok(Role {
        metadata: child_meta(assistant, &names.tailscale_role, "tailscale"),
        rules: Some(sidecar_rules(&names.tailscale_state_secret)),
    })
}

pub fn role_binding(
    assistant: &Assistant,
    _config: &OperatorConfig,
) -> Result<RoleBinding, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    Ok(RoleBinding {
        metadata: child_meta(assistant, &names.tailscale_role, "tailscale"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names.tailscale_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.service_account.clone(),
            namespace: assistant.metadata.namespace.clone(),
            ..Default::default()
        }]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};

    #[test]
    fn role_is_limited_to_the_state_secret_by_name() {
        let r = role(&assistant("alice"), &config()).unwrap();
        let rules = r.rules.unwrap();
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["alice-tailscale-state".to_string()][..])
        );
        assert!(!rules.iter().any(|r| {
            r.verbs
                .iter()
                .any(|v| v == "create" && r.resources.as_ref().unwrap()[0] == "secrets")
        }));
        assert!(!rules.iter().any(|r| r.verbs.iter().any(|v| v == "*")));
    }

    #[test]
    fn binding_ties_the_gateway_service_account_to_the_role() {
        let a = assistant("alice");
        let b = role_binding(&a, &config()).unwrap();
        assert_eq!(b.role_ref.name, "alice-tailscale");
        let s = &b.subjects.unwrap()[0];
        assert_eq!(s.name, "alice-gateway");
        assert_eq!(s.namespace.as_deref(), Some("clients"));
        assert_eq!(
            service_account(&a, &config())
                .unwrap()
                .automount_service_account_token,
            Some(false)
        );
    }
}
