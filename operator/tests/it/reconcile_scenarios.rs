//! Reconcile scenarios against the in-memory API server: the operator's real code and its
//! real HTTP requests, with the API's answers under test control.

use std::sync::Arc;

use clawhost::api::{Assistant, Phase};
use clawhost::config::OperatorConfig;
use clawhost::reconciler::{self, Context, FINALIZER};
use clawhost_testing::fake_apiserver::{FakeApiServer, Fault, FaultKind, fixtures};
use http::Method;
use serde_json::{Value, json};

const NS: &str = "clients";
const CRD: &str = "apis/clawhost.dev/v1alpha1";

fn assistant_json(name: &str) -> Value {
    fixtures::assistant(NS, name)
}

fn auth_secret(name: &str) -> Value {
    fixtures::auth_key_secret(NS, name)
}

struct Harness {
    fake: FakeApiServer,
    ctx: Arc<Context>,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(OperatorConfig::default())
    }
    fn with_config(config: OperatorConfig) -> Self {
        let fake = FakeApiServer::new();
        let ctx = Arc::new(Context::new(fake.client(), config));
        Self { fake, ctx }
    }
    fn seed(&self, name: &str) {
        self.fake.seed_client(NS, name);
    }
    fn assistant(&self, name: &str) -> Assistant {
        serde_json::from_value(
            self.fake
                .get(CRD, "assistants", NS, name)
                .expect("assistant exists"),
        )
        .unwrap()
    }
    async fn reconcile(
        &self,
        name: &str,
    ) -> Result<kube::runtime::controller::Action, reconciler::Error> {
        let a = self.assistant(name);
        reconciler::reconcile(Arc::new(a), self.ctx.clone()).await
    }
    fn summaries(&self) -> Vec<String> {
        self.fake.requests().iter().map(|r| r.summary()).collect()
    }
    fn writes(&self) -> Vec<String> {
        self.fake.writes().iter().map(|r| r.summary()).collect()
    }
    fn status(&self, name: &str) -> clawhost::api::AssistantStatus {
        self.assistant(name).status.expect("status written")
    }
    fn condition(&self, name: &str, t: &str) -> (String, String, String) {
        let s = self.status(name);
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }
    fn sts_replicas(&self, name: &str) -> i64 {
        self.fake
            .get("apis/apps/v1", "statefulsets", NS, name)
            .unwrap()["spec"]["replicas"]
            .as_i64()
            .unwrap()
    }
    fn edit_spec(&self, name: &str, f: impl FnOnce(&mut Value)) {
        self.fake.update(CRD, "assistants", NS, name, |o| {
            f(&mut o["spec"]);
            let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
            o["metadata"]["generation"] = json!(g + 1);
        });
    }
    /// Makes the pod exist and be ready, and the volume bound, as the cluster would.
    fn cluster_runs(&self, name: &str) {
        self.fake.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-0"), "namespace": NS},
            "status": {"phase": "Running", "containerStatuses": [{"name": "gateway", "ready": true, "restartCount": 0, "image": "x", "imageID": "y"}]}
        }));
        self.fake.update(
            "api/v1",
            "persistentvolumeclaims",
            NS,
            &format!("{name}-data"),
            |o| {
                o["status"] = json!({"phase": "Bound", "capacity": {"storage": "10Gi"}});
            },
        );
    }
}

#[tokio::test]
async fn first_reconcile_creates_every_child_with_exact_requests() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    let expected = [
        "PATCH assistants", // finalizer
        // every kind of the child-kind table, in its order
        "GET secrets", // token
        "GET secrets", // config
        "GET secrets", // tailscale state
        "GET serviceaccounts",
        "GET roles",
        "GET rolebindings",
        "GET persistentvolumeclaims",
        "GET services",
        "GET networkpolicies",
        "GET statefulsets",
        "GET pods",
        "GET secrets",  // the referenced auth key
        "POST secrets", // token
        "POST secrets", // tailscale state
        "APPLY secrets",
        "APPLY serviceaccounts",
        "APPLY roles",
        "APPLY rolebindings",
        "APPLY persistentvolumeclaims",
        "APPLY services",
        "APPLY networkpolicies",
        "APPLY statefulsets",
        // the backup step: discovery (once per process), this Assistant's snapshots
        "GET /apis/snapshot.storage.k8s.io/v1",
        "LIST volumesnapshots",
        "APPLY assistants/status",
    ];
    assert_eq!(h.summaries(), expected);
    let a = h.assistant("alice");
    assert!(
        a.metadata
            .finalizers
            .unwrap()
            .contains(&FINALIZER.to_string())
    );
    assert_eq!(
        h.status("alice").phase,
        Some(Phase::Pending),
        "waiting for the volume"
    );
    // The token is random, 43 characters, and never appears in status.
    let token = h
        .fake
        .get("api/v1", "secrets", NS, "alice-gateway-token")
        .unwrap();
    let t = token["data"]["token"].as_str().unwrap();
    assert!(t.len() > 40);
    assert!(
        !serde_json::to_string(&h.status("alice"))
            .unwrap()
            .contains(t)
    );
}

#[tokio::test]
async fn noop_reconcile_issues_zero_writes() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    h.cluster_runs("alice");
    h.reconcile("alice").await.unwrap(); // status moves on
    h.fake.clear_requests();
    h.reconcile("alice").await.unwrap();
    assert_eq!(h.writes(), Vec::<String>::new(), "no-op reconcile wrote");
    assert!(!h.summaries().is_empty());
}

#[tokio::test]
async fn token_is_never_overwritten_by_a_reconcile() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    let before = h
        .fake
        .get("api/v1", "secrets", NS, "alice-gateway-token")
        .unwrap()["data"]
        .clone();
    h.edit_spec("alice", |s| s["plan"] = json!("large"));
    h.reconcile("alice").await.unwrap();
    let after = h
        .fake
        .get("api/v1", "secrets", NS, "alice-gateway-token")
        .unwrap()["data"]
        .clone();
    assert_eq!(before, after);
}

#[tokio::test]
async fn missing_secret_gets_a_condition_then_a_fix_is_picked_up() {
    let h = Harness::new();
    h.fake.put(assistant_json("alice"));
    let action = h.reconcile("alice").await.unwrap();
    assert!(
        format!("{action:?}").contains("60s"),
        "bounded requeue: {action:?}"
    );
    let (status, reason, message) = h.condition("alice", "ConfigValid");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert_eq!(message, "secret clients/alice-ts not found");
    assert_eq!(h.status("alice").phase, Some(Phase::Failed));
    assert!(
        h.fake
            .get("apis/apps/v1", "statefulsets", NS, "alice")
            .is_none(),
        "nothing applied"
    );

    // A secret without the key is named precisely.
    h.fake.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alice-ts", "namespace": NS}, "stringData": {"other": "x"}}));
    h.reconcile("alice").await.unwrap();
    assert_eq!(
        h.condition("alice", "ConfigValid").2,
        "secret clients/alice-ts has no key authkey"
    );

    h.fake.put(auth_secret("alice"));
    h.reconcile("alice").await.unwrap();
    assert_eq!(h.condition("alice", "ConfigValid").0, "True");
    assert_eq!(h.sts_replicas("alice"), 1);
}

#[tokio::test]
async fn suspend_and_resume_keep_everything() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    let objects = h.fake.object_count();
    h.edit_spec("alice", |s| s["suspended"] = json!(true));
    h.reconcile("alice").await.unwrap();
    assert_eq!(h.sts_replicas("alice"), 0);
    assert_eq!(h.status("alice").phase, Some(Phase::Suspended));
    assert_eq!(h.fake.object_count(), objects, "nothing deleted");
    h.edit_spec("alice", |s| s["suspended"] = json!(false));
    h.reconcile("alice").await.unwrap();
    assert_eq!(h.sts_replicas("alice"), 1);
}

#[tokio::test]
async fn storage_grows_and_refuses_to_shrink() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    let size = |h: &Harness| {
        h.fake
            .get("api/v1", "persistentvolumeclaims", NS, "alice-data")
            .unwrap()["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(size(&h), "10Gi");
    h.edit_spec("alice", |s| s["storage"] = json!({"size": "20Gi"}));
    h.reconcile("alice").await.unwrap();
    assert_eq!(size(&h), "20Gi");
    h.edit_spec("alice", |s| s["storage"] = json!({"size": "5Gi"}));
    h.fake.clear_requests();
    h.reconcile("alice").await.unwrap();
    assert_eq!(size(&h), "20Gi", "never shrunk");
    let (status, reason, message) = h.condition("alice", "ConfigValid");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "StorageShrinkRefused")
    );
    assert!(message.contains("already requests 20Gi"), "{message}");
    assert_eq!(h.writes(), vec!["APPLY assistants/status"]);
}

#[tokio::test]
async fn tailscale_state_fills_tailnet_status() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    h.cluster_runs("alice");
    h.fake
        .update("api/v1", "secrets", NS, "alice-tailscale-state", |o| {
            o["data"] = json!({
                "device_fqdn": base64("clients-alice.tail0123.ts.net."),
                "device_ips": base64(r#"["100.100.1.2"]"#),
                "device_id": base64("nDEV123"),
            });
        });
    h.reconcile("alice").await.unwrap();
    let s = h.status("alice");
    let t = s.tailnet.unwrap();
    assert_eq!(t.fqdn.as_deref(), Some("clients-alice.tail0123.ts.net"));
    assert_eq!(t.ips, vec!["100.100.1.2"]);
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(h.condition("alice", "Ready").0, "True");
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn delete_and_cleanup(h: &Harness, name: &str) {
    // kubectl delete: the finalizer holds the object.
    h.fake.update(CRD, "assistants", NS, name, |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-11-25T01:00:00Z");
    });
    // First pass scales down and waits for the pod.
    h.reconcile(name).await.unwrap();
    assert_eq!(h.sts_replicas(name), 0);
    assert!(
        h.fake.get(CRD, "assistants", NS, name).is_some(),
        "held while the pod runs"
    );
    h.fake.remove("api/v1", "pods", NS, &format!("{name}-0"));
    h.reconcile(name).await.unwrap();
    assert!(
        h.fake.get(CRD, "assistants", NS, name).is_none(),
        "finalizer released"
    );
}

#[tokio::test]
async fn deletion_with_retain_keeps_and_labels_the_volume() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    h.cluster_runs("alice");
    delete_and_cleanup(&h, "alice").await;
    let pvc = h
        .fake
        .get("api/v1", "persistentvolumeclaims", NS, "alice-data")
        .expect("volume kept");
    assert_eq!(pvc["metadata"]["labels"]["clawhost.dev/retained"], "true");
    assert!(
        pvc["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|o| o.is_empty())
    );
    assert_eq!(
        pvc["metadata"]["annotations"]["clawhost.dev/retained-from"],
        "clients/alice"
    );
}

#[tokio::test]
async fn deletion_with_delete_removes_the_volume() {
    // The final snapshot before the volume goes has its own scenarios (cleanup_scenarios);
    // here the volume step alone.
    let mut config = OperatorConfig::default();
    config.backups.final_snapshot.enabled = false;
    let h = Harness::with_config(config);
    h.seed("alice");
    h.edit_spec("alice", |s| s["storage"] = json!({"onDelete": "Delete"}));
    h.reconcile("alice").await.unwrap();
    let pvc = h
        .fake
        .get("api/v1", "persistentvolumeclaims", NS, "alice-data")
        .unwrap();
    assert_eq!(pvc["metadata"]["ownerReferences"][0]["kind"], "Assistant");
    h.cluster_runs("alice");
    delete_and_cleanup(&h, "alice").await;
    assert!(
        h.fake
            .get("api/v1", "persistentvolumeclaims", NS, "alice-data")
            .is_none()
    );
}

#[tokio::test]
async fn retain_volume_survives_even_when_cleanup_keeps_failing() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    h.fake.update(CRD, "assistants", NS, "alice", |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-11-25T01:00:00Z");
    });
    h.fake.inject(Fault {
        method: Some(Method::PATCH),
        path_contains: "persistentvolumeclaims".into(),
        times: 3,
        kind: FaultKind::Status(500),
    });
    for _ in 0..3 {
        assert!(h.reconcile("alice").await.is_err());
        assert!(
            h.fake.get(CRD, "assistants", NS, "alice").is_some(),
            "finalizer kept while the volume step fails"
        );
    }
    h.reconcile("alice").await.unwrap();
    assert!(
        h.fake
            .get("api/v1", "persistentvolumeclaims", NS, "alice-data")
            .is_some()
    );
    assert!(
        !h.fake.requests().iter().any(|r| r.method == "DELETE"),
        "nothing deleted"
    );
}

#[tokio::test]
async fn hand_edits_and_deletions_of_children_are_restored() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    h.fake
        .update("apis/apps/v1", "statefulsets", NS, "alice", |o| {
            o["spec"]["replicas"] = json!(5)
        });
    h.fake.remove(
        "apis/networking.k8s.io/v1",
        "networkpolicies",
        NS,
        "alice-gateway",
    );
    h.fake.clear_requests();
    h.reconcile("alice").await.unwrap();
    assert_eq!(h.sts_replicas("alice"), 1);
    assert!(
        h.fake
            .get(
                "apis/networking.k8s.io/v1",
                "networkpolicies",
                NS,
                "alice-gateway"
            )
            .is_some()
    );
    let w = h.writes();
    assert!(
        w.contains(&"APPLY statefulsets".to_string())
            && w.contains(&"APPLY networkpolicies".to_string()),
        "{w:?}"
    );
    assert!(
        !w.contains(&"APPLY serviceaccounts".to_string()),
        "untouched children left alone: {w:?}"
    );
}

#[tokio::test]
async fn api_faults_retry_and_converge_without_duplicates() {
    for (kind, path) in [
        (FaultKind::Status(500), "statefulsets"),
        (FaultKind::Status(429), "persistentvolumeclaims"),
        (FaultKind::Status(409), "/status"),
        (FaultKind::TransportError, "networkpolicies"),
        (FaultKind::Status(503), "secrets/alice-gateway-token"),
    ] {
        let h = Harness::new();
        h.seed("alice");
        h.fake.inject(Fault {
            method: None,
            path_contains: path.into(),
            times: 2,
            kind: kind.clone(),
        });
        let mut errors = 0;
        let mut ok = false;
        for _ in 0..5 {
            match h.reconcile("alice").await {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(_) => errors += 1,
            }
        }
        assert!(ok, "{kind:?} on {path}: never converged");
        assert!(errors >= 1, "{kind:?} on {path}: fault not seen");
        h.reconcile("alice").await.unwrap();
        assert_eq!(h.sts_replicas("alice"), 1);
        let posts = h
            .fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count();
        assert!(posts <= 2 + errors, "{kind:?}: duplicate creates ({posts})");
        assert_eq!(
            h.fake.list("api/v1", "secrets").len(),
            4,
            "{kind:?}: exactly auth, token, state, config"
        );
        assert!(!h.fake.requests().iter().any(|r| r.method == "DELETE"));
    }
}

#[tokio::test]
async fn a_token_created_by_a_lost_response_is_not_replaced() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    let token = h
        .fake
        .get("api/v1", "secrets", NS, "alice-gateway-token")
        .unwrap()["data"]
        .clone();
    // Simulate a reconcile that read before the create landed: the create answers 409.
    h.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "secrets/alice-gateway-token".into(),
        times: 1,
        kind: FaultKind::Status(404),
    });
    h.reconcile("alice").await.unwrap();
    assert_eq!(
        h.fake
            .get("api/v1", "secrets", NS, "alice-gateway-token")
            .unwrap()["data"],
        token
    );
}

#[tokio::test]
async fn invalid_spec_gets_a_condition_and_no_writes_to_children() {
    let h = Harness::new();
    h.seed("alice");
    h.edit_spec("alice", |s| {
        s["gateway"] = json!({"version": "latest", "config": {"gateway": {"bind": "lan"}}})
    });
    h.reconcile("alice").await.unwrap();
    let (status, reason, message) = h.condition("alice", "ConfigValid");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("spec.gateway.version")
            && message.contains("spec.gateway.config.gateway.bind"),
        "{message}"
    );
    assert!(
        h.fake
            .writes()
            .iter()
            .all(|w| w.path.contains("assistants"))
    );
}

/// Every request the operator makes in these scenarios is allowed by the ClusterRole the
/// chart installs (`clawhost rbac operator`).
#[tokio::test]
async fn every_request_is_covered_by_the_operator_rbac() {
    let h = Harness::new();
    h.seed("alice");
    h.reconcile("alice").await.unwrap();
    h.cluster_runs("alice");
    h.reconcile("alice").await.unwrap();
    delete_and_cleanup(&h, "alice").await;
    let rules = clawhost::rbac::operator_rules();
    for r in h.fake.requests() {
        let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        let (group, rest) = if parts[0] == "api" {
            ("", &parts[2..])
        } else {
            (parts[1], &parts[3..])
        };
        if rest.is_empty() {
            // API discovery (`/apis/<group>/<version>`): every authenticated user may.
            continue;
        }
        let rest = if rest[0] == "namespaces" {
            &rest[2..]
        } else {
            rest
        };
        let resource = match rest.get(2) {
            Some(sub) => format!("{}/{sub}", rest[0]),
            None => rest[0].to_string(),
        };
        let verb = match r.method.as_str() {
            "GET" if rest.len() == 1 => "list",
            "GET" => "get",
            "POST" => "create",
            "PATCH" => "patch",
            "PUT" => "update",
            "DELETE" => "delete",
            m => panic!("unexpected method {m}"),
        };
        assert!(
            clawhost::rbac::allows(&rules, group, &resource, verb, None),
            "operator ClusterRole lacks {verb} {group}/{resource} used by {}",
            r.path
        );
    }
}

#[tokio::test]
async fn a_hanging_api_call_times_out_and_the_next_reconcile_converges() {
    let fake = FakeApiServer::new();
    use std::time::{Duration, Instant};
    // A budget a loaded runner cannot miss on a healthy reconcile (in-process, milliseconds),
    // and a hang far beyond it: only the reconcile timeout can end the first call early.
    let budget = Duration::from_secs(3);
    let hang = Duration::from_secs(600);
    let mut ctx = Context::new(fake.client(), OperatorConfig::default());
    ctx.reconcile_timeout = budget;
    let h = Harness {
        fake,
        ctx: Arc::new(ctx),
    };
    h.seed("alice");
    h.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "statefulsets".into(),
        times: 1,
        kind: FaultKind::Delay(hang),
    });
    let started = Instant::now();
    let err = h.reconcile("alice").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, reconciler::Error::Timeout(d) if d == budget),
        "{err}"
    );
    assert_eq!(err.reason(), "timeout");
    // Cut off by the budget, not by the hang ending.
    assert!(took >= budget && took < hang / 10, "took {took:?}");
    h.reconcile("alice").await.unwrap();
    assert_eq!(h.sts_replicas("alice"), 1);
}
