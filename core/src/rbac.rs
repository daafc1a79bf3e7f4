//! The Kubernetes permissions clawhost needs, in one place. The Helm chart's ClusterRoles
//! are checked against these (`clawhost rbac`), and the reconcile tests check that every
//! request the operator makes is covered.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::children::kinds::CHILD_KINDS;

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// What the operator does: watch Assistants, write their status and finalizer, apply every
/// child kind (from the child-kind table), publish events, hold a leader Lease, discover the
/// API server's addresses for the NetworkPolicy. It also grants the sidecar Role's rules, so
/// it must hold them itself (RBAC escalation prevention): secrets get/update/patch and
/// events create/patch.
pub fn operator_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
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
    ];
    rules.extend(child_rules());
    rules.extend([
        rule("", &["events"], &["create", "patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "patch"],
        ),
        rule("discovery.k8s.io", &["endpointslices"], &["get", "list"]),
        // Backups: whether the configured class exists (BackupHealthy says when not).
        rule(
            "snapshot.storage.k8s.io",
            &["volumesnapshotclasses"],
            &["get"],
        ),
    ]);
    rules
}

/// One rule per API group and verb set, resources in table order: what every child kind
/// needs. Kinds sharing a resource (the three Secrets) get the union of their verbs.
fn child_rules() -> Vec<PolicyRule> {
    let mut per_resource: Vec<(String, String, Vec<&str>)> = Vec::new();
    for kind in CHILD_KINDS {
        let r = (kind.resource)();
        match per_resource
            .iter_mut()
            .find(|(g, p, _)| *g == r.group && *p == r.plural)
        {
            Some((_, _, verbs)) => {
                for v in kind.verbs {
                    if !verbs.contains(v) {
                        verbs.push(v);
                    }
                }
            }
            None => per_resource.push((r.group, r.plural, kind.verbs.to_vec())),
        }
    }
    let mut rules: Vec<(String, Vec<&str>, Vec<String>)> = Vec::new();
    for (group, plural, verbs) in per_resource {
        match rules
            .iter_mut()
            .find(|(g, v, _)| *g == group && *v == verbs)
        {
            Some((_, _, resources)) => resources.push(plural),
            None => rules.push((group, verbs, vec![plural])),
        }
    }
    rules
        .into_iter()
        .map(|(group, verbs, resources)| {
            let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
            rule(&group, &resources, &verbs)
        })
        .collect()
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
        // The client page's snapshot list, and the volumes kept by earlier restores.
        rule(
            "snapshot.storage.k8s.io",
            &["volumesnapshots"],
            &["get", "list"],
        ),
        rule("", &["persistentvolumeclaims"], &["list"]),
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

    /// Every (group, resource, verb) the operator held before the child-kind table drove
    /// these rules: the table changes how they are written, not what is granted.
    #[test]
    fn operator_permissions_are_exactly_these() {
        let mut got: Vec<String> = operator_rules()
            .iter()
            .flat_map(|r| {
                let g = r.api_groups.as_ref().unwrap()[0].clone();
                r.resources
                    .clone()
                    .unwrap()
                    .into_iter()
                    .flat_map(move |res| {
                        let g = g.clone();
                        r.verbs.iter().map(move |v| format!("{g}/{res}:{v}"))
                    })
            })
            .collect();
        got.sort();
        let child = [
            "get", "list", "watch", "create", "patch", "update", "delete",
        ];
        let mut want: Vec<String> = Vec::new();
        let mut add = |g: &str, res: &str, verbs: &[&str]| {
            want.extend(verbs.iter().map(|v| format!("{g}/{res}:{v}")))
        };
        add(
            "clawhost.dev",
            "assistants",
            &["get", "list", "watch", "patch", "update"],
        );
        add(
            "clawhost.dev",
            "assistants/status",
            &["get", "patch", "update"],
        );
        add("clawhost.dev", "assistants/finalizers", &["update"]);
        add(
            "",
            "secrets",
            &["get", "list", "watch", "create", "patch", "update"],
        );
        for res in ["serviceaccounts", "services", "persistentvolumeclaims"] {
            add("", res, &child);
        }
        add("apps", "statefulsets", &child);
        add("rbac.authorization.k8s.io", "roles", &child);
        add("rbac.authorization.k8s.io", "rolebindings", &child);
        add("networking.k8s.io", "networkpolicies", &child);
        add("", "pods", &["get", "list", "watch"]);
        add("", "events", &["create", "patch"]);
        add("events.k8s.io", "events", &["create", "patch"]);
        add("coordination.k8s.io", "leases", &["get", "create", "patch"]);
        add("discovery.k8s.io", "endpointslices", &["get", "list"]);
        add(
            "snapshot.storage.k8s.io",
            "volumesnapshots",
            &["get", "list", "create", "delete"],
        );
        add("snapshot.storage.k8s.io", "volumesnapshotclasses", &["get"]);
        want.sort();
        assert_eq!(got, want);
    }

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
