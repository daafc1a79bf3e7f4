//! Offline rendering: Assistant manifests in, every child object out (`clawhost render`).
//! Every problem is reported with its file, document and field; nothing panics on input.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::api::Assistant;
use crate::children::{self, BuildError, GatewayToken};
use crate::config::OperatorConfig;

const API_VERSION: &str = "clawhost.dev/v1alpha1";
const KIND: &str = "Assistant";

/// One problem with one input document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    pub file: String,
    /// 1-based document index within the file, when the problem is in a document.
    pub document: Option<usize>,
    /// `namespace/name` of the Assistant, when known.
    pub assistant: Option<String>,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(d) = self.document {
            write!(f, " (document {d}")?;
            if let Some(a) = &self.assistant {
                write!(f, ", Assistant {a}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Parses every Assistant in `text`. `file` names the source in messages.
pub fn parse_assistants(file: &str, text: &str) -> (Vec<Assistant>, Vec<RenderError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let err = |document: Option<usize>, assistant: Option<String>, message: String| RenderError {
        file: file.to_string(),
        document,
        assistant,
        message,
    };
    let mut seen_docs = 0;
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(Some(n), None, format!("malformed YAML: {e}")));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        seen_docs += 1;
        let json: Value = match serde_json::to_value(&value) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(
                    Some(n),
                    None,
                    format!("not representable as JSON: {e}"),
                ));
                continue;
            }
        };
        // `kubectl get asst -o yaml` prints a v1 List: render its items.
        let is_list = json.get("kind").and_then(Value::as_str) == Some("List")
            && json.get("apiVersion").and_then(Value::as_str) == Some("v1");
        let items = if is_list {
            json.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        } else {
            vec![json]
        };
        for item in &items {
            parse_object(item, n, &err, &mut out, &mut errors);
        }
    }
    if seen_docs == 0 && errors.is_empty() {
        errors.push(err(
            None,
            None,
            "no Assistant found (the file is empty)".into(),
        ));
    }
    (out, errors)
}

/// Parses one object of document `n` into `out`, or its problems into `errors`.
fn parse_object(
    json: &Value,
    n: usize,
    err: &dyn Fn(Option<usize>, Option<String>, String) -> RenderError,
    out: &mut Vec<Assistant>,
    errors: &mut Vec<RenderError>,
) {
    let Some(obj) = json.as_object() else {
        errors.push(err(
            Some(n),
            None,
            "expected a mapping (an Assistant object)".into(),
        ));
        return;
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION || kind != KIND {
        errors.push(err(
            Some(n),
            None,
            format!(
                "apiVersion {api_version:?} kind {kind:?} is not an Assistant (expected apiVersion {API_VERSION}, kind {KIND})"
            ),
        ));
        return;
    }
    let label = {
        let meta = obj.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
        let ns = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        name.map(|name| format!("{ns}/{name}"))
    };
    let mut unknown = Vec::new();
    let parsed: Result<Assistant, _> = {
        let mut track = |path: serde_ignored::Path<'_>| {
            // `?` marks an Option layer; apiVersion/kind are checked above.
            let path = path.to_string().replace(".?", "").replace("?.", "");
            if path != "apiVersion" && path != "kind" {
                unknown.push(path);
            }
        };
        let de = serde_ignored::Deserializer::new(json, &mut track);
        serde_path_to_error::deserialize(de)
    };
    match parsed {
        Err(e) => errors.push(err(Some(n), label, format!("{}: {}", e.path(), e.inner()))),
        Ok(_) if !unknown.is_empty() => {
            for path in unknown {
                errors.push(err(
                    Some(n),
                    label.clone(),
                    format!(
                        "{path}: unknown field (check spelling against docs/assistant-reference.md)"
                    ),
                ));
            }
        }
        Ok(mut a) => {
            // As kubectl does: a manifest without a namespace lands in `default`.
            a.metadata.namespace.get_or_insert_with(|| "default".into());
            out.push(a);
        }
    }
}

/// Renders the children of every Assistant; Secrets carry placeholders, never generated
/// values.
pub fn render_assistant(
    assistant: &Assistant,
    config: &OperatorConfig,
) -> Result<Vec<Value>, BuildError> {
    children::build_all(assistant, config, &GatewayToken::placeholder())
}

/// Reads, validates and renders files; returns the objects or every problem found.
pub fn render_files(
    files: &[PathBuf],
    config: &OperatorConfig,
) -> Result<Vec<Value>, Vec<RenderError>> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let text = match read_input(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(RenderError {
                    file,
                    document: None,
                    assistant: None,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let (assistants, errs) = parse_assistants(&file, &text);
        errors.extend(errs);
        for (i, a) in assistants.iter().enumerate() {
            match render_assistant(a, config) {
                Ok(objs) => objects.extend(objs),
                Err(BuildError::Invalid(problems)) => {
                    for p in problems.0 {
                        errors.push(RenderError {
                            file: file.clone(),
                            document: Some(i + 1),
                            assistant: Some(format!(
                                "{}/{}",
                                a.metadata.namespace.as_deref().unwrap_or("default"),
                                a.metadata.name.as_deref().unwrap_or("?")
                            )),
                            message: p.to_string(),
                        });
                    }
                }
                Err(e) => errors.push(RenderError {
                    file: file.clone(),
                    document: Some(i + 1),
                    assistant: None,
                    message: e.to_string(),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn read_input(path: &Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}

/// Multi-document YAML, like `helm template`.
pub fn to_yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| {
            format!(
                "---\n{}",
                serde_yaml::to_string(o).expect("JSON values serialize")
            )
        })
        .collect()
}

/// A `v1 List`, like `kubectl get -o json`.
pub fn to_json(objects: &[Value]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects,
    }))
    .expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::config;

    const MINIMAL: &str = r#"
apiVersion: clawhost.dev/v1alpha1
kind: Assistant
metadata:
  name: alice
  namespace: clients
spec:
  owner: {name: Alice, email: alice@example.com}
  tailscale:
    authKeySecretRef: {name: alice-tailscale, key: authkey}
"#;

    fn errors_of(text: &str) -> Vec<String> {
        let (ok, errs) = parse_assistants("in.yaml", text);
        let mut all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        for a in ok {
            if let Err(e) = render_assistant(&a, &config()) {
                all.push(e.to_string());
            }
        }
        all
    }

    #[test]
    fn minimal_assistant_renders_every_child() {
        let (a, errs) = parse_assistants("in.yaml", MINIMAL);
        assert!(errs.is_empty(), "{errs:?}");
        let objs = render_assistant(&a[0], &config()).unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Secret",
                "Secret",
                "Secret",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "PersistentVolumeClaim",
                "Service",
                "NetworkPolicy",
                "StatefulSet"
            ]
        );
        let yaml = to_yaml(&objs);
        assert!(yaml.contains(crate::children::gateway_token_secret::TOKEN_PLACEHOLDER));
        // Offline: no uid, so no ownerReference that the GC could act on.
        assert!(!yaml.contains("ownerReferences"));
    }

    #[test]
    fn empty_file_and_comment_only_file() {
        assert_eq!(
            errors_of(""),
            ["in.yaml: no Assistant found (the file is empty)"]
        );
        assert_eq!(
            errors_of("# nothing\n---\n"),
            ["in.yaml: no Assistant found (the file is empty)"]
        );
    }

    #[test]
    fn wrong_kind_and_api_version() {
        let e = errors_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("in.yaml (document 1): apiVersion \"v1\" kind \"ConfigMap\""),
            "{e:?}"
        );
    }

    #[test]
    fn malformed_yaml() {
        let e = errors_of("apiVersion: clawhost.dev/v1alpha1\nkind: [unclosed\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("malformed YAML"), "{e:?}");
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let text = MINIMAL
            .replace("  owner:", "  ownr: x\n  owner:")
            .replace("authKeySecretRef:", "funel: true\n    authKeySecretRef:");
        let e = errors_of(&text);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e.iter().any(|m| m.contains("spec.ownr: unknown field")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("spec.tailscale.funel: unknown field")),
            "{e:?}"
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let text = MINIMAL.replace(
            "owner: {name: Alice, email: alice@example.com}",
            "owner: {name: Alice, email: alice@example.com}\n  suspended: sometimes",
        );
        let e = errors_of(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("Assistant clients/alice): spec.suspended: invalid type"),
            "{e:?}"
        );
    }

    #[test]
    fn missing_required_fields() {
        let e = errors_of(
            "apiVersion: clawhost.dev/v1alpha1\nkind: Assistant\nmetadata: {name: bob}\nspec: {}\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("missing field `owner`"), "{e:?}");
    }

    #[test]
    fn semantic_problems_are_reported_together() {
        let text = MINIMAL.replace("alice@example.com", "nope").replace(
            "  tailscale:",
            "  gateway: {version: latest, config: {gateway: {bind: lan}}}\n  tailscale:",
        );
        let e = errors_of(&text);
        let all = e.join("\n");
        assert!(all.contains("spec.owner.email"), "{all}");
        assert!(all.contains("spec.gateway.version"), "{all}");
        assert!(all.contains("spec.gateway.config.gateway.bind"), "{all}");
    }

    #[test]
    fn kubectl_list_output_renders_each_item() {
        // What `kubectl get asst -o yaml` prints: a v1 List with status and server fields.
        let item = |name: &str| {
            serde_json::json!({
                "apiVersion": "clawhost.dev/v1alpha1", "kind": "Assistant",
                "metadata": {"name": name, "namespace": "clients", "uid": "u-1", "resourceVersion": "7",
                             "generation": 2, "creationTimestamp": "2026-11-25T00:00:00Z"},
                "spec": {"owner": {"name": "A", "email": "a@example.com"},
                         "tailscale": {"authKeySecretRef": {"name": "t", "key": "k"}}},
                "status": {"phase": "Running"}
            })
        };
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [item("a1"), item("a2")]});
        let (a, errs) = parse_assistants("list.yaml", &serde_yaml::to_string(&list).unwrap());
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(a.len(), 2);
        let objs = render_assistant(&a[1], &config()).unwrap();
        // With a real uid, children carry the controller ownerReference.
        assert_eq!(objs[0]["metadata"]["ownerReferences"][0]["uid"], "u-1");
    }

    #[test]
    fn namespace_defaults_like_kubectl() {
        let (a, _) = parse_assistants("in.yaml", &MINIMAL.replace("  namespace: clients\n", ""));
        assert_eq!(a[0].metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn hostile_input_is_refused_with_a_reason() {
        // Each input is refused with exactly one message that says what is wrong.
        let doc = "in.yaml (document 1): ";
        for (text, want) in [
            (
                "\u{0}",
                "malformed YAML: control characters are not allowed",
            ),
            ("- - - -", "expected a mapping (an Assistant object)"),
            ("[1, 2, 3]", "expected a mapping (an Assistant object)"),
            (
                "!!binary aGVsbG8=",
                "expected a mapping (an Assistant object)",
            ),
            (
                "{a: {b: {c: [}}}",
                "malformed YAML: did not find expected node content",
            ),
            (
                "apiVersion: clawhost.dev/v1alpha1\nkind: Assistant\nspec: 7\n",
                "spec: invalid type: integer `7`, expected struct AssistantSpec",
            ),
            (
                "apiVersion: clawhost.dev/v1alpha1\nkind: Assistant\nmetadata: {name: \"<script>\"}\nspec: {owner: {name: x, email: a@b.c}}\n",
                "metadata.name: \"<script>\" is not a valid Kubernetes name",
            ),
            ("&a [*a, *a]", "malformed YAML: recursion limit exceeded"),
            (
                "key: &anchor\n  x: 1\nother: *anchor\n",
                "apiVersion \"\" kind \"\" is not an Assistant",
            ),
        ] {
            let e = errors_of(text);
            assert_eq!(e.len(), 1, "{text:?}: {e:?}");
            assert!(e[0].contains(want), "{text:?}: want {want:?} in {e:?}");
            // Parse errors name the file and document; the one that parses (the bad
            // name) is refused by rendering, which also names the missing Tailscale key.
            if want.starts_with("metadata.name") {
                assert!(e[0].contains("spec.tailscale: is required"), "{e:?}");
            } else {
                assert!(e[0].starts_with(doc), "{text:?}: {e:?}");
            }
        }
    }

    /// Every example renders offline, and the restore example's claim is made from its
    /// snapshot (offline nothing is looked up: the cluster checks the snapshot).
    #[test]
    fn examples_render_and_the_restore_example_has_a_data_source() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{files:?}");
        let objects = render_files(&files, &config()).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let restored: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "PersistentVolumeClaim" && o["spec"]["dataSource"].is_object())
            .collect();
        assert_eq!(restored.len(), 1, "only the restore example");
        let pvc = restored[0];
        assert!(
            pvc["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("carol2-data-"),
            "{pvc}"
        );
        assert_eq!(
            pvc["spec"]["dataSource"],
            serde_json::json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "carol-20261203-141503-final"})
        );
        // The StatefulSet mounts that claim.
        let sts = objects
            .iter()
            .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "carol2")
            .unwrap();
        assert!(
            sts.to_string()
                .contains(pvc["metadata"]["name"].as_str().unwrap())
        );
    }
}
