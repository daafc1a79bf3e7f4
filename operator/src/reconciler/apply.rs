//! Server-side apply with one field manager, skipped when the live object already matches:
//! a no-op reconcile must issue no writes.
//!
//! "Matches" means both: the live object carries the hash of the desired object we last
//! applied (catches fields we stopped setting, which a subset check cannot see), and every
//! field we set still has our value (catches hand edits). When only the second fails, a
//! server-side dry run decides (see [`ensure`]): the real API server drops and normalises
//! values in ways no client-side comparison can fully know, and guessing wrong must cost a
//! read, never a write loop. Why this design: `docs/architecture.md`.

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
/// element by element. Quantities compare by value (the API server canonicalises them). A
/// field `want` sets to its zero value (`false`, `0`, `""`, `[]`, `{}`, null) matches when
/// `have` lacks it: the API server drops such values, and an absent field means the same.
pub fn is_subset(want: &Value, have: &Value, parent_key: &str) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, wv)| match h.get(k) {
            Some(hv) => is_subset(wv, hv, k),
            None => is_zero(wv),
        }),
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

/// A value the API server stores as "absent".
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

fn quantity_parent(key: &str) -> bool {
    matches!(
        key,
        "cpu" | "memory" | "storage" | "ephemeral-storage" | "sizeLimit"
    )
}

/// How a live child stands against the desired object (which carries its hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Not there: create it.
    Missing,
    /// The desired object changed since it was last applied (the hash differs).
    DesiredChanged,
    /// Same desired object, but some field we set reads differently: a hand edit, or a
    /// value the API server normalises in a way this comparison does not know.
    FieldsDiffer,
    /// Nothing to do.
    InSync,
}

/// Compares without I/O; see [`Comparison`].
pub fn compare(desired: &Value, live: Option<&Value>) -> Comparison {
    let Some(live) = live else {
        return Comparison::Missing;
    };
    let hash_of = |v: &Value| {
        v.pointer(&format!(
            "/metadata/annotations/{}",
            APPLIED_HASH_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .map(str::to_owned)
    };
    if hash_of(desired) != hash_of(live) {
        Comparison::DesiredChanged
    } else if is_subset(&as_stored(desired), live, "") {
        Comparison::InSync
    } else {
        Comparison::FieldsDiffer
    }
}

/// Whether `desired` (already carrying its hash) must be applied over `live`, by the
/// I/O-free comparison alone.
pub fn needs_apply(desired: &Value, live: Option<&Value>) -> bool {
    compare(desired, live) != Comparison::InSync
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was written.
    Unchanged,
    /// One server-side apply was written.
    Applied(Comparison),
    /// The fields differed only as the API server stores them (a server-side dry run
    /// produced the live object): nothing was written.
    NormalisedOnly,
}

/// Applies `desired` unless the live object already is what the API server would store.
///
/// The I/O-free [`compare`] decides the common cases. When it sees differing fields under
/// an unchanged hash, the server decides: a dry-run apply shows what it would store, and a
/// real write happens only when that differs from the live object. So a field the server
/// normalises in a way we did not foresee costs one dry-run request per reconcile, never
/// a write loop.
pub async fn ensure(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    desired: &Value,
    live: Option<&Value>,
) -> Result<Outcome, kube::Error> {
    let comparison = compare(desired, live);
    match comparison {
        Comparison::InSync => return Ok(Outcome::Unchanged),
        Comparison::FieldsDiffer => {
            let would_store = apply_with(client, resource, namespace, desired, true).await?;
            let would_store = serde_json::to_value(would_store).unwrap_or_default();
            if live.is_some_and(|live| same_content(&would_store, live)) {
                return Ok(Outcome::NormalisedOnly);
            }
        }
        Comparison::Missing | Comparison::DesiredChanged => {}
    }
    apply(client, resource, namespace, desired).await?;
    Ok(Outcome::Applied(comparison))
}

/// Equal but for what every write changes (resourceVersion, generation, managedFields)
/// and status, which the apply does not touch.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
        }
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["resourceVersion", "generation", "managedFields"] {
                m.remove(k);
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Server-side apply, forced: the operator owns the fields it sets.
pub async fn apply(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    desired: &Value,
) -> Result<DynamicObject, kube::Error> {
    apply_with(client, resource, namespace, desired, false).await
}

async fn apply_with(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    desired: &Value,
    dry_run: bool,
) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    api.patch(name, &params, &Patch::Apply(desired)).await
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
    fn zero_values_match_absent_fields_but_not_other_values() {
        let want = json!({"spec": {"ingress": [], "readOnly": false, "replicas": 0, "labels": {}}});
        assert!(is_subset(&want, &json!({"spec": {}}), ""));
        assert!(!is_subset(&want, &json!({"spec": {"replicas": 1}}), ""));
        assert!(!is_subset(&want, &json!({"spec": {"readOnly": true}}), ""));
        assert!(!is_subset(&json!({"a": true}), &json!({}), ""));
        assert!(!is_subset(&json!({"a": [1]}), &json!({}), ""));
    }

    #[test]
    fn compare_names_why() {
        let desired =
            with_hash(json!({"kind": "Service", "metadata": {"name": "x"}, "spec": {"a": 1}}));
        assert_eq!(compare(&desired, None), Comparison::Missing);
        assert_eq!(compare(&desired, Some(&desired)), Comparison::InSync);
        let mut edited = desired.clone();
        edited["spec"]["a"] = json!(2);
        assert_eq!(compare(&desired, Some(&edited)), Comparison::FieldsDiffer);
        let other =
            with_hash(json!({"kind": "Service", "metadata": {"name": "x"}, "spec": {"a": 3}}));
        assert_eq!(compare(&other, Some(&desired)), Comparison::DesiredChanged);
    }

    #[test]
    fn same_content_ignores_write_bookkeeping_only() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "generation": 1, "managedFields": []}, "spec": {"a": 1}, "status": {"b": 1}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "2", "generation": 2}, "spec": {"a": 1}});
        assert!(same_content(&a, &b));
        let c = json!({"metadata": {"name": "x"}, "spec": {"a": 2}});
        assert!(!same_content(&a, &c));
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
