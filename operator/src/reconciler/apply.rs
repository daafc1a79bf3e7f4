//! Server-side apply with one field manager, skipped when the live object already matches:
//! a no-op reconcile must issue no writes.
//!
//! "Matches" means both: the live object carries the hash of the desired object we last
//! applied (catches fields we stopped setting, which a subset check cannot see), and every
//! field we set still has our value (catches hand edits).

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::quantity;
use crate::children::FIELD_MANAGER;

pub const APPLIED_HASH_ANNOTATION: &str = "clawhost.dev/applied-hash";

/// Hash of a desired object (without the hash annotation itself).
pub fn desired_hash(desired: &Value) -> String {
    let mut v = desired.clone();
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(APPLIED_HASH_ANNOTATION);
    }
    hex::encode(Sha256::digest(v.to_string().as_bytes()))[..16].to_string()
}

/// Adds the applied-hash annotation to a desired object.
pub fn with_hash(mut desired: Value) -> Value {
    let hash = desired_hash(&desired);
    let meta = desired["metadata"].as_object_mut().expect("metadata");
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    ann[APPLIED_HASH_ANNOTATION] = Value::String(hash);
    desired
}

/// The API server stores Secret `stringData` as base64 `data`; compare like with like.
fn as_stored(desired: &Value) -> Value {
    use base64::Engine;
    let mut v = desired.clone();
    if v["kind"] == "Secret"
        && let Some(Value::Object(sd)) = v.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        let data = v
            .as_object_mut()
            .expect("object")
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        for (k, s) in sd {
            data[k] = Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_str().unwrap_or_default()),
            );
        }
    }
    v
}

/// Whether every field of `want` is present in `have` with the same value. Lists must match
/// element by element. Quantities compare by value (the API server canonicalises them).
pub fn is_subset(want: &Value, have: &Value, parent_key: &str) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| is_subset(wv, hv, k))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b, parent_key))
        }
        (Value::String(w), Value::String(h)) if w != h => {
            quantity_parent(parent_key)
                && quantity::parse(w).is_some()
                && quantity::parse(w) == quantity::parse(h)
        }
        (Value::String(w), Value::Number(h)) if quantity_parent(parent_key) => {
            quantity::parse(w) == h.as_f64()
        }
        (w, h) => w == h,
    }
}

fn quantity_parent(key: &str) -> bool {
    matches!(
        key,
        "cpu" | "memory" | "storage" | "ephemeral-storage" | "sizeLimit"
    )
}

/// Whether `desired` (already carrying its hash) must be applied over `live`.
pub fn needs_apply(desired: &Value, live: Option<&Value>) -> bool {
    let Some(live) = live else { return true };
    let want_hash = desired
        .pointer(&format!(
            "/metadata/annotations/{}",
            APPLIED_HASH_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    let have_hash = live
        .pointer(&format!(
            "/metadata/annotations/{}",
            APPLIED_HASH_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    if want_hash != have_hash {
        return true;
    }
    !is_subset(&as_stored(desired), live, "")
}

/// Server-side apply, forced: the operator owns the fields it sets.
pub async fn apply(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    desired: &Value,
) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(desired),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_but_not_changed_values() {
        let want = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}]}}});
        let have = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10, "template": {"containers": [{"name": "a", "terminationMessagePath": "/dev/termination-log"}]}}});
        assert!(is_subset(&want, &have, ""));
        let edited = json!({"spec": {"replicas": 3, "template": {"containers": [{"name": "a"}]}}});
        assert!(!is_subset(&want, &edited, ""));
        let extra_item = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}, {"name": "b"}]}}});
        assert!(!is_subset(&want, &extra_item, ""));
    }

    #[test]
    fn quantities_compare_by_value() {
        let want = json!({"resources": {"limits": {"memory": "1.5Gi", "cpu": "1000m"}}});
        let have = json!({"resources": {"limits": {"memory": "1536Mi", "cpu": "1"}}});
        assert!(is_subset(&want, &have, ""));
        let bigger = json!({"resources": {"limits": {"memory": "2Gi", "cpu": "1"}}});
        assert!(!is_subset(&want, &bigger, ""));
    }

    #[test]
    fn removed_fields_are_caught_by_the_hash() {
        let old = with_hash(
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "x", "ownerReferences": [{"uid": "1"}]}}),
        );
        let new = with_hash(json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "x"}}));
        assert!(!needs_apply(&old, Some(&old)));
        // The new desired state is a subset of the old live object, yet must be applied.
        assert!(needs_apply(&new, Some(&old)));
    }

    #[test]
    fn secrets_compare_string_data_to_stored_data() {
        let desired = with_hash(
            json!({"kind": "Secret", "metadata": {"name": "c"}, "stringData": {"a": "hello"}}),
        );
        let mut live = desired.clone();
        live.as_object_mut().unwrap().remove("stringData");
        live["data"] = json!({"a": "aGVsbG8="});
        assert!(!needs_apply(&desired, Some(&live)));
        live["data"] = json!({"a": "Ynll"});
        assert!(needs_apply(&desired, Some(&live)));
    }
}
