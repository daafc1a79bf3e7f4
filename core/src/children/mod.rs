//! Desired state: one pure builder per child object of an Assistant.
//!
//! Every builder is `fn(&Assistant, &OperatorConfig) -> Result<Object, BuildError>` (the
//! token Secret also takes the token, so randomness stays outside). No builder does I/O;
//! the reconciler applies what they return.

pub mod data_volume;
pub mod gateway_config_secret;
pub mod gateway_statefulset;
pub mod gateway_token_secret;
pub mod headless_service;
pub mod kinds;
pub mod network_policy;
pub mod tailscale_rbac;
pub mod tailscale_state_secret;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};

use crate::api::{Assistant, RestoreFrom};
use crate::config::OperatorConfig;
use crate::validation::{self, Problems};

pub use gateway_token_secret::GatewayToken;

/// Field manager for every server-side apply of the operator.
pub const FIELD_MANAGER: &str = "clawhost";
/// Label on every child: the Assistant it belongs to (by its short name).
pub const ASSISTANT_LABEL: &str = "clawhost.dev/assistant";
/// Annotation on every child: the full Assistant name (labels cap at 63 characters), so
/// watch events map back to the Assistant even for objects it does not own.
pub const ASSISTANT_NAME_ANNOTATION: &str = "clawhost.dev/assistant-name";
/// Annotation on the data volume: the uid of the Assistant it belongs to. A new Assistant
/// that reuses a name never mounts a volume recorded for another uid.
pub const ASSISTANT_UID_ANNOTATION: &str = "clawhost.dev/assistant-uid";
/// Label set on a volume kept after its Assistant was deleted, or replaced by a restore.
pub const RETAINED_LABEL: &str = "clawhost.dev/retained";
/// On a retained volume: `<namespace>/<assistant>` it was kept from.
pub const RETAINED_FROM_ANNOTATION: &str = "clawhost.dev/retained-from";
/// On a retained volume: whose data it holds.
pub const RETAINED_OWNER_EMAIL_ANNOTATION: &str = "clawhost.dev/retained-owner-email";
/// Pod-template annotation: hash of everything that needs a restart to take effect.
pub const RESTART_HASH_ANNOTATION: &str = "clawhost.dev/restart-hash";
/// Assistant annotation the console sets to restart the gateway (any new value rolls it).
pub const RESTART_REQUESTED_ANNOTATION: &str = "clawhost.dev/restart-requested-at";

/// StatefulSet names must leave room for the `controller-revision-hash` pod label (63).
const MAX_BASE_NAME: usize = 52;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(#[from] Problems),
    #[error("Assistant has no {0}")]
    MissingMetadata(&'static str),
}

/// Short, stable name every child derives from: the Assistant name when it is a DNS label
/// of at most 52 characters, else a readable prefix plus a hash of the full name.
pub fn base_name(assistant_name: &str) -> String {
    let is_label = !assistant_name.is_empty()
        && assistant_name.len() <= MAX_BASE_NAME
        && assistant_name.starts_with(|c: char| c.is_ascii_lowercase())
        && assistant_name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !assistant_name.ends_with('-');
    if is_label {
        return assistant_name.to_string();
    }
    bounded_label(assistant_name, MAX_BASE_NAME)
}

/// A DNS-1035 label of at most `max` characters: sanitised prefix + 8 hex of the input's hash.
pub fn bounded_label(input: &str, max: usize) -> String {
    let hash = &hex::encode(Sha256::digest(input.as_bytes()))[..8];
    let mut prefix: String = input
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        prefix.insert_str(0, "a-");
    }
    prefix.truncate(max - hash.len() - 1);
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}-{hash}")
}

/// Names of every child of one Assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildNames {
    pub base: String,
    pub gateway_token_secret: String,
    pub gateway_config_secret: String,
    pub tailscale_state_secret: String,
    pub service_account: String,
    pub tailscale_role: String,
    pub data_volume: String,
    pub statefulset: String,
    pub service: String,
    pub network_policy: String,
}

impl ChildNames {
    pub fn for_assistant(assistant: &Assistant) -> Self {
        let mut names = Self::new(assistant.metadata.name.as_deref().unwrap_or_default());
        let storage = assistant.storage();
        names.data_volume = data_claim_name(&names.base, storage.restore_from.as_ref());
        names
    }

    /// The names of an Assistant without `storage.restoreFrom` (its data claim is
    /// `<base>-data`); use [`ChildNames::for_assistant`] when the Assistant is at hand.
    pub fn new(assistant_name: &str) -> Self {
        let base = base_name(assistant_name);
        Self {
            gateway_token_secret: format!("{base}-gateway-token"),
            gateway_config_secret: format!("{base}-gateway-config"),
            tailscale_state_secret: format!("{base}-tailscale-state"),
            service_account: format!("{base}-gateway"),
            tailscale_role: format!("{base}-tailscale"),
            data_volume: format!("{base}-data"),
            statefulset: base.clone(),
            service: base.clone(),
            network_policy: format!("{base}-gateway"),
            base,
        }
    }
}

/// The data claim's name: `<base>-data` without restoreFrom; with it
/// `<base>-data-<first 8 hex of SHA-256(volumeSnapshotName)>`. A claim's `dataSource` is
/// immutable, so a claim of a given name always comes from the same snapshot, and an in-place
/// restore switches to a new claim instead of deleting the old one.
pub fn data_claim_name(base: &str, restore_from: Option<&RestoreFrom>) -> String {
    match restore_from {
        None => format!("{base}-data"),
        Some(r) => {
            let hash = hex::encode(Sha256::digest(r.volume_snapshot_name.as_bytes()));
            format!("{base}-data-{}", &hash[..8])
        }
    }
}

/// Labels that select the gateway pod.
pub fn selector_labels(assistant: &Assistant) -> BTreeMap<String, String> {
    let names = ChildNames::for_assistant(assistant);
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "openclaw".into()),
        ("app.kubernetes.io/instance".into(), names.base.clone()),
        ("app.kubernetes.io/component".into(), "gateway".into()),
    ])
}

/// Recommended labels for a child, with its component.
pub fn labels(assistant: &Assistant, component: &str) -> BTreeMap<String, String> {
    let names = ChildNames::for_assistant(assistant);
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "openclaw".into()),
        ("app.kubernetes.io/instance".into(), names.base.clone()),
        ("app.kubernetes.io/component".into(), component.into()),
        ("app.kubernetes.io/part-of".into(), "clawhost".into()),
        ("app.kubernetes.io/managed-by".into(), "clawhost".into()),
        (ASSISTANT_LABEL.into(), names.base),
    ])
}

/// The controller ownerReference, when the Assistant exists in a cluster (has a uid). An
/// offline render has none: a made-up uid would let the garbage collector delete the child.
pub fn owner_reference(assistant: &Assistant) -> Option<OwnerReference> {
    assistant.controller_owner_ref(&())
}

/// Metadata of a child: name, namespace, labels, controller owner.
pub fn child_meta(assistant: &Assistant, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: assistant.metadata.namespace.clone(),
        labels: Some(labels(assistant, component)),
        annotations: Some(BTreeMap::from([(
            ASSISTANT_NAME_ANNOTATION.to_string(),
            assistant.metadata.name.clone().unwrap_or_default(),
        )])),
        owner_references: owner_reference(assistant).map(|o| vec![o]),
        ..Default::default()
    }
}

/// Validates the Assistant, then builds every desired child, in apply order.
pub fn build_all(
    assistant: &Assistant,
    config: &OperatorConfig,
    token: &GatewayToken,
) -> Result<Vec<serde_json::Value>, BuildError> {
    validation::validate(assistant, config, None)?;
    kinds::desired_children(assistant, config, token)
}

/// JSON of a k8s-openapi object with apiVersion and kind set.
pub fn typed_value<K>(obj: &K) -> serde_json::Value
where
    K: k8s_openapi::Resource + serde::Serialize,
{
    let mut v = serde_json::to_value(obj).expect("k8s objects serialize");
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), K::API_VERSION.into());
        map.insert("kind".into(), K::KIND.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(base_name("alice"), "alice");
        assert_eq!(base_name("alice-2"), "alice-2");
    }

    #[test]
    fn long_or_odd_names_get_a_stable_hash_suffix() {
        let long = "a".repeat(60);
        let b = base_name(&long);
        assert_eq!(b.len(), MAX_BASE_NAME);
        assert_eq!(b, base_name(&long), "stable");
        assert_ne!(b, base_name(&"a".repeat(61)), "distinct");
        // Dots and leading digits are not DNS-1035 labels; similar names do not collide.
        let dotted = base_name("alice.smith");
        let dashed = base_name("alice-smith");
        assert_ne!(dotted, dashed);
        assert!(dotted.starts_with("alice-smith-"), "{dotted}");
        assert!(base_name("7up").starts_with("a-7up-"));
        for n in [long.as_str(), "alice.smith", "7up", &"x.".repeat(120)] {
            let b = base_name(n);
            assert!(b.len() <= MAX_BASE_NAME, "{b}");
            assert!(
                regex_lite::Regex::new(crate::api::assistant::DNS_LABEL_PATTERN)
                    .unwrap()
                    .is_match(&b),
                "{b}"
            );
        }
    }
}
