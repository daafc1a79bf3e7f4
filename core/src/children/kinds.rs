//! The child kinds of an Assistant, in one table. Observe, apply, prune, the controller's
//! watches, `clawhost render` and `clawhost rbac` all read [`CHILD_KINDS`]; adding a child
//! kind is one entry here plus its builder.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::core::ApiResource;
use serde_json::Value;

use super::{
    BuildError, ChildNames, GatewayToken, data_volume, gateway_config_secret, gateway_statefulset,
    gateway_token_secret, headless_service, network_policy, tailscale_rbac, tailscale_state_secret,
    typed_value,
};
use crate::api::Assistant;
use crate::config::OperatorConfig;

/// Which child; indexes what observe read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildId {
    GatewayTokenSecret,
    GatewayConfigSecret,
    TailscaleStateSecret,
    ServiceAccount,
    TailscaleRole,
    TailscaleRoleBinding,
    DataVolume,
    Service,
    NetworkPolicy,
    StatefulSet,
    Pod,
    VolumeSnapshot,
}

/// A builder of an applied child: `None` when the operator config does not want it (then a
/// live copy is pruned, if the kind allows).
pub type ApplyBuilder = fn(&Assistant, &OperatorConfig) -> Result<Option<Value>, BuildError>;
/// A builder of a child created once (the token comes from outside: builders stay pure).
pub type CreateBuilder =
    fn(&Assistant, &OperatorConfig, &GatewayToken) -> Result<Value, BuildError>;

/// How the operator writes a kind.
#[derive(Clone, Copy)]
pub enum Lifecycle {
    /// Server-side applied on every reconcile where it differs from the live copy.
    Applied(ApplyBuilder),
    /// Created once, never overwritten: the token must survive every re-render; the
    /// Tailscale state Secret's content belongs to the sidecar.
    CreatedOnce(CreateBuilder),
    /// Only read (the pod belongs to the StatefulSet).
    Observed,
    /// Many per Assistant, listed by the `clawhost.dev/assistant-uid` label, created and
    /// deleted by their own module (backups): never read by name, applied or pruned. The
    /// API may be absent from the cluster, so it is discovered before any call.
    Listed,
}

/// What happens to a live child that is no longer desired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Deleted (when it carries this Assistant's labels and annotation).
    WhenNotDesired,
    /// Never deleted by prune.
    Never,
}

/// Who owns the child, for the garbage collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A controller ownerReference to the Assistant: deleted with it.
    Assistant,
    /// No ownerReference to the Assistant: the data volume outlives it under `Retain`;
    /// the pod belongs to its StatefulSet.
    NotTheAssistant,
}

/// One kind of child object.
pub struct ChildKind {
    pub id: ChildId,
    /// Kind name, for logs, metrics and the watch's health.
    pub kind: &'static str,
    pub resource: fn() -> ApiResource,
    pub name: fn(&ChildNames) -> String,
    pub lifecycle: Lifecycle,
    pub prune: Prune,
    pub owner: Owner,
    /// Whether the controller watches the kind (by metadata, label-selected).
    pub watch: bool,
    /// What the operator needs on the kind (`clawhost rbac operator`).
    pub verbs: &'static [&'static str],
}

fn resource<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

const READ: &[&str] = &["get", "list", "watch"];
/// Secrets: also patch/update, which the sidecar's Role grants (RBAC escalation prevention
/// requires the operator to hold what it grants).
const SECRET: &[&str] = &["get", "list", "watch", "create", "patch", "update"];
const CHILD: &[&str] = &[
    "get", "list", "watch", "create", "patch", "update", "delete",
];

fn applied<K: k8s_openapi::Resource + serde::Serialize>(
    built: Result<K, BuildError>,
) -> Result<Option<Value>, BuildError> {
    built.map(|o| Some(typed_value(&o)))
}

/// Every child kind, in apply (and render) order: what the StatefulSet's pod needs exists
/// before the StatefulSet.
pub const CHILD_KINDS: &[ChildKind] = &[
    ChildKind {
        id: ChildId::GatewayTokenSecret,
        kind: "Secret",
        resource: resource::<Secret>,
        name: |n| n.gateway_token_secret.clone(),
        lifecycle: Lifecycle::CreatedOnce(|a, c, token| {
            gateway_token_secret::build(a, c, token).map(|o| typed_value(&o))
        }),
        prune: Prune::Never,
        owner: Owner::Assistant,
        watch: true,
        verbs: SECRET,
    },
    ChildKind {
        id: ChildId::GatewayConfigSecret,
        kind: "Secret",
        resource: resource::<Secret>,
        name: |n| n.gateway_config_secret.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(gateway_config_secret::build(a, c))),
        prune: Prune::Never,
        owner: Owner::Assistant,
        watch: true,
        verbs: SECRET,
    },
    ChildKind {
        id: ChildId::TailscaleStateSecret,
        kind: "Secret",
        resource: resource::<Secret>,
        name: |n| n.tailscale_state_secret.clone(),
        lifecycle: Lifecycle::CreatedOnce(|a, c, _| {
            tailscale_state_secret::build(a, c).map(|o| typed_value(&o))
        }),
        prune: Prune::Never,
        owner: Owner::Assistant,
        watch: true,
        verbs: SECRET,
    },
    ChildKind {
        id: ChildId::ServiceAccount,
        kind: "ServiceAccount",
        resource: resource::<ServiceAccount>,
        name: |n| n.service_account.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(tailscale_rbac::service_account(a, c))),
        prune: Prune::WhenNotDesired,
        owner: Owner::Assistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::TailscaleRole,
        kind: "Role",
        resource: resource::<Role>,
        name: |n| n.tailscale_role.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(tailscale_rbac::role(a, c))),
        prune: Prune::WhenNotDesired,
        owner: Owner::Assistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::TailscaleRoleBinding,
        kind: "RoleBinding",
        resource: resource::<RoleBinding>,
        name: |n| n.tailscale_role.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(tailscale_rbac::role_binding(a, c))),
        prune: Prune::WhenNotDesired,
        owner: Owner::Assistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::DataVolume,
        kind: "PersistentVolumeClaim",
        resource: resource::<PersistentVolumeClaim>,
        name: |n| n.data_volume.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(data_volume::build(a, c))),
        // The client's data: only `storage.onDelete: Delete` removes it (cleanup), and prune
        // refuses it whatever this says.
        prune: Prune::Never,
        owner: Owner::NotTheAssistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::Service,
        kind: "Service",
        resource: resource::<Service>,
        name: |n| n.service.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(headless_service::build(a, c))),
        prune: Prune::WhenNotDesired,
        owner: Owner::Assistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::NetworkPolicy,
        kind: "NetworkPolicy",
        resource: resource::<NetworkPolicy>,
        name: |n| n.network_policy.clone(),
        lifecycle: Lifecycle::Applied(|a, c| {
            network_policy::build(a, c).map(|o| o.map(|o| typed_value(&o)))
        }),
        prune: Prune::WhenNotDesired,
        owner: Owner::Assistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::StatefulSet,
        kind: "StatefulSet",
        resource: resource::<StatefulSet>,
        name: |n| n.statefulset.clone(),
        lifecycle: Lifecycle::Applied(|a, c| applied(gateway_statefulset::build(a, c))),
        prune: Prune::WhenNotDesired,
        owner: Owner::Assistant,
        watch: true,
        verbs: CHILD,
    },
    ChildKind {
        id: ChildId::Pod,
        kind: "Pod",
        resource: resource::<Pod>,
        name: |n| format!("{}-0", n.statefulset),
        lifecycle: Lifecycle::Observed,
        prune: Prune::Never,
        owner: Owner::NotTheAssistant,
        watch: true,
        verbs: READ,
    },
    ChildKind {
        id: ChildId::VolumeSnapshot,
        kind: "VolumeSnapshot",
        resource: resource::<crate::api::snapshot::VolumeSnapshot>,
        // Documentation only: snapshots are listed by label, never read by name.
        name: |n| format!("{}-<yyyymmdd>-<hhmmss>-<kind>", n.base),
        lifecycle: Lifecycle::Listed,
        // Retention deletes them, prune never; no owner, so the garbage collector never
        // removes a backup (under Retain they outlive the Assistant).
        prune: Prune::Never,
        owner: Owner::NotTheAssistant,
        // A watch on a CRD the cluster may lack would fail the operator's readiness.
        watch: false,
        verbs: &["get", "list", "create", "delete"],
    },
];

/// The table entry of one child.
pub fn child_kind(id: ChildId) -> &'static ChildKind {
    CHILD_KINDS
        .iter()
        .find(|k| k.id == id)
        .expect("every ChildId has an entry in CHILD_KINDS")
}

/// Whether prune may delete this kind: never the data volume, whatever the table says.
pub fn prunable(kind: &ChildKind) -> bool {
    kind.prune == Prune::WhenNotDesired && kind.id != ChildId::DataVolume
}

/// Every desired child of one Assistant, in apply order (what `clawhost render` prints).
pub fn desired_children(
    assistant: &Assistant,
    config: &OperatorConfig,
    token: &GatewayToken,
) -> Result<Vec<Value>, BuildError> {
    let mut out = Vec::new();
    for kind in CHILD_KINDS {
        match kind.lifecycle {
            Lifecycle::Applied(build) => out.extend(build(assistant, config)?),
            Lifecycle::CreatedOnce(build) => out.push(build(assistant, config, token)?),
            Lifecycle::Observed | Lifecycle::Listed => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};
    use std::collections::BTreeSet;

    #[test]
    fn every_child_id_has_exactly_one_entry() {
        let ids: BTreeSet<ChildId> = CHILD_KINDS.iter().map(|k| k.id).collect();
        assert_eq!(ids.len(), CHILD_KINDS.len(), "an id listed twice");
        for id in [
            ChildId::GatewayTokenSecret,
            ChildId::GatewayConfigSecret,
            ChildId::TailscaleStateSecret,
            ChildId::ServiceAccount,
            ChildId::TailscaleRole,
            ChildId::TailscaleRoleBinding,
            ChildId::DataVolume,
            ChildId::Service,
            ChildId::NetworkPolicy,
            ChildId::StatefulSet,
            ChildId::Pod,
            ChildId::VolumeSnapshot,
        ] {
            assert_eq!(child_kind(id).id, id);
        }
    }

    #[test]
    fn the_data_volume_is_never_prunable_whatever_the_table_says() {
        let volume = child_kind(ChildId::DataVolume);
        assert!(!prunable(volume));
        let pretend = ChildKind {
            prune: Prune::WhenNotDesired,
            lifecycle: Lifecycle::Observed,
            verbs: CHILD,
            ..*volume
        };
        assert!(!prunable(&pretend));
    }

    #[test]
    fn prunable_kinds_hold_the_delete_verb_and_only_applied_kinds_are_pruned() {
        for k in CHILD_KINDS {
            if prunable(k) {
                assert!(
                    k.verbs.contains(&"delete"),
                    "{:?} prunable without delete",
                    k.id
                );
                assert!(matches!(k.lifecycle, Lifecycle::Applied(_)), "{:?}", k.id);
            }
        }
    }

    /// The table's kind, name and owner columns agree with what the builders produce.
    #[test]
    fn table_agrees_with_the_builders() {
        let mut a = assistant("alice");
        a.metadata.uid = Some("uid-1".into());
        let c = config();
        let names = ChildNames::for_assistant(&a);
        let token = GatewayToken::placeholder();
        for k in CHILD_KINDS {
            let built = match k.lifecycle {
                Lifecycle::Applied(b) => b(&a, &c).unwrap(),
                Lifecycle::CreatedOnce(b) => Some(b(&a, &c, &token).unwrap()),
                Lifecycle::Observed | Lifecycle::Listed => continue,
            };
            let Some(o) = built else { continue };
            assert_eq!(o["kind"], k.kind, "{:?}", k.id);
            assert_eq!(o["kind"], (k.resource)().kind, "{:?}", k.id);
            assert_eq!(o["metadata"]["name"], (k.name)(&names), "{:?}", k.id);
            let owned = o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["uid"] == "uid-1"));
            assert_eq!(owned, k.owner == Owner::Assistant, "{:?}", k.id);
        }
    }

    /// Listed kinds (snapshots) are never watched, owned by the Assistant or pruned, and
    /// the snapshot builder agrees with the table.
    #[test]
    fn listed_kinds_are_never_watched_owned_or_pruned() {
        let listed: Vec<&ChildKind> = CHILD_KINDS
            .iter()
            .filter(|k| matches!(k.lifecycle, Lifecycle::Listed))
            .collect();
        assert_eq!(listed.len(), 1);
        for k in &listed {
            assert!(!k.watch, "{:?}", k.id);
            assert_eq!(k.owner, Owner::NotTheAssistant, "{:?}", k.id);
            assert!(!prunable(k), "{:?}", k.id);
        }
        let a = assistant("alice");
        let snap = crate::backup::build_snapshot(
            &a,
            crate::api::SnapshotKind::Manual,
            "alice-data",
            jiff::Timestamp::UNIX_EPOCH,
            None,
            None,
            Some("snapshot:1"),
            None,
        )
        .unwrap()
        .to_value();
        let k = child_kind(ChildId::VolumeSnapshot);
        let r = (k.resource)();
        assert_eq!(snap["kind"], k.kind);
        assert_eq!(snap["apiVersion"], r.api_version);
        assert!(snap["metadata"].get("ownerReferences").is_none());
    }
}
