//! Every builder's output, for every example and generated edge case, on the real API
//! server: applied with server-side apply, then applied again. The second apply must leave
//! the object untouched (resourceVersion and generation), and the operator's own I/O-free
//! comparison must call the stored object in sync. This guards every field a builder will
//! ever set against the server dropping, defaulting or normalising it.

use clawhost::api::Assistant;
use clawhost::children::{self, GatewayToken};
use clawhost::config::OperatorConfig;
use clawhost::reconciler::apply::{self, Comparison};
use kube::ResourceExt;
use kube::core::ApiResource;
use serde_json::Value;

use crate::support::*;

/// Examples plus the manifest tier's generated edge cases, parsed as Assistants.
fn inputs() -> Vec<Assistant> {
    let root = repo_root();
    let cases = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/manifests/edge_cases.py"))
        .arg(cases.path())
        .output()
        .expect("python3 tests/manifests/edge_cases.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .chain(std::fs::read_dir(cases.path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut assistants: Vec<Assistant> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect();
    // A volume made from a snapshot: the server copies `dataSource` to `dataSourceRef`, and
    // the claim (named for the snapshot) must still be stored unchanged and in sync.
    assistants.push(
        serde_json::from_value(assistant_json(
            "builders-restore",
            "restored",
            serde_json::json!({"storage": {"size": "1Gi", "restoreFrom": {"volumeSnapshotName": "alice-20261203-030000-scheduled"}}}),
        ))
        .unwrap(),
    );
    assert!(
        assistants.len() >= 16,
        "expected examples + edge cases, got {}",
        assistants.len()
    );
    assistants
}

fn resource_of(obj: &Value) -> ApiResource {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "NetworkPolicy" => "networkpolicies".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    }
}

/// Paths whose values differ between two stored copies (for the failure message).
fn changed_paths(a: &Value, b: &Value, at: &str) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .keys()
            .chain(y.keys().filter(|k| !x.contains_key(*k)))
            .flat_map(|k| {
                changed_paths(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{at}/{k}"),
                )
            })
            .collect(),
        _ if a == b => Vec::new(),
        _ => vec![at.to_string()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builder_output_is_stored_unchanged_on_a_second_apply() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    let mut config = OperatorConfig::default();
    // What the operator discovers from the `kubernetes` EndpointSlice.
    config.network_policy.api_server_cidrs = vec!["127.0.0.1/32".into()];

    let mut checked = 0;
    let mut failures = Vec::new();
    for input in inputs() {
        let ns = input.namespace().unwrap();
        namespace(&admin, &ns).await;
        // Created for real, so children carry a real owner uid, as the operator builds them.
        let assistant = create_assistant(&admin, &serde_json::to_value(&input).unwrap()).await;
        let built = children::build_all(&assistant, &config, &GatewayToken::generate())
            .unwrap_or_else(|e| panic!("{}: {e}", assistant.name_any()));
        for object in built {
            let desired = apply::with_hash(object);
            let resource = resource_of(&desired);
            let label = format!(
                "{} {}/{}",
                resource.kind,
                ns,
                desired["metadata"]["name"].as_str().unwrap()
            );
            let first = apply::apply(&admin, &resource, &ns, &desired)
                .await
                .unwrap_or_else(|e| panic!("{label}: first apply refused: {e}"));
            let second = apply::apply(&admin, &resource, &ns, &desired)
                .await
                .unwrap_or_else(|e| panic!("{label}: second apply refused: {e}"));
            let mut second = second;
            let changed = changed_paths(
                &serde_json::to_value(&first).unwrap(),
                &serde_json::to_value(&second).unwrap(),
                "",
            );
            // The API server rewrites a PersistentVolumeClaim once after its creation with
            // nothing visible changed (only resourceVersion moves); from then on it is
            // stable. That one write is the server's, not a loop: accept exactly that, and
            // require the next apply to change nothing.
            if changed == ["/metadata/resourceVersion".to_string()] {
                let third = apply::apply(&admin, &resource, &ns, &desired)
                    .await
                    .unwrap();
                if third.metadata.resource_version != second.metadata.resource_version {
                    failures.push(format!("{label}: every apply rewrites it"));
                }
                second = third;
            } else if !changed.is_empty() {
                failures.push(format!(
                    "{label}: the second apply rewrote it; changed: {}",
                    changed.join(", ")
                ));
            }
            let stored = serde_json::to_value(&second).unwrap();
            let verdict = apply::compare(&desired, Some(&stored));
            if verdict != Comparison::InSync {
                failures.push(format!(
                    "{label}: the operator's comparison says {verdict:?} for what the server stored"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} objects:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("builders: {checked} objects applied twice, all unchanged and in sync");
}
