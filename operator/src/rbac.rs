//! The Kubernetes permissions clawhost needs, in one place. The Helm chart's ClusterRoles
//! are checked against these (`clawhost rbac`), and the reconcile tests check that every
//! request the operator makes is covered.

use k8s_openapi::api::rbac::v1::PolicyRule;

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

const CHILD_VERBS: &[&str] = &[
    "get", "list", "watch", "create", "patch", "update", "delete",
];

/// What the operator does: watch Assistants, write their status and finalizer, apply every
/// child kind, read pods, publish events, hold a leader Lease, discover the API server's
/// addresses for the NetworkPolicy. It also grants the sidecar Role's rules, so it must hold
/// them itself (RBAC escalation prevention): secrets get/update/patch and events create/patch.
pub fn operator_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "clawhost.dev",
            &["assistants"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            "clawhost.dev",
            &["assistants/status"],
            &["get", "patch", "update"],
        ),
        rule("clawhost.dev", &["assistants/finalizers"], &["update"]),
        rule(
            "",
            &["secrets"],
            &["get", "list", "watch", "create", "patch", "update"],
        ),
        rule(
            "",
            &["serviceaccounts", "services", "persistentvolumeclaims"],
            CHILD_VERBS,
        ),
        rule("apps", &["statefulsets"], CHILD_VERBS),
        rule(
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            CHILD_VERBS,
        ),
        rule("networking.k8s.io", &["networkpolicies"], CHILD_VERBS),
        rule("", &["pods"], &["get", "list", "watch"]),
        rule("", &["events"], &["create", "patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "patch"],
        ),
        rule("discovery.k8s.io", &["endpointslices"], &["get", "list"]),
    ]
}

/// What the admin console does: manage Assistants and the client's Secrets, read pods, logs
/// and events for the client page.
pub fn console_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "clawhost.dev",
            &["assistants"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule("", &["secrets"], &["create", "patch"]),
        rule("", &["pods"], &["get", "list"]),
        rule("", &["pods/log"], &["get"]),
        rule("", &["events"], &["list"]),
        rule("events.k8s.io", &["events"], &["list"]),
    ]
}

/// Whether `rules` allow `verb` on `group/resource` (optionally a named object).
pub fn allows(
    rules: &[PolicyRule],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    rules.iter().any(|r| {
        let has = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref()
                .is_some_and(|l| l.iter().any(|x| x == v || x == "*"))
        };
        has(&r.api_groups, group)
            && has(&r.resources, resource)
            && r.verbs.iter().any(|v| v == verb || v == "*")
            && match (&r.resource_names, name) {
                (None, _) => true,
                (Some(names), Some(n)) => names.is_empty() || names.iter().any(|x| x == n),
                (Some(names), None) => names.is_empty(),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::tailscale_rbac::sidecar_rules;

    #[test]
    fn no_wildcards() {
        for r in operator_rules().iter().chain(&console_rules()) {
            assert!(!r.verbs.iter().any(|v| v == "*"));
            assert!(!r.resources.as_ref().unwrap().iter().any(|v| v == "*"));
        }
    }

    /// The API server refuses to let the operator create a Role granting more than it holds.
    #[test]
    fn operator_holds_everything_it_grants_the_sidecar() {
        let held = operator_rules();
        for r in sidecar_rules("alice-tailscale-state") {
            for group in r.api_groups.as_ref().unwrap() {
                for res in r.resources.as_ref().unwrap() {
                    for verb in &r.verbs {
                        assert!(
                            allows(&held, group, res, verb, None),
                            "operator lacks {verb} {group}/{res} that it grants"
                        );
                    }
                }
            }
        }
    }
}
