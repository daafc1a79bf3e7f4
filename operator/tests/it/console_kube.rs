//! The kube implementation of the console's cluster trait, against kube's mocked client
//! (as in kube-rs/controller-rs's ApiServerVerifier): each test checks the exact API
//! requests (method, path, query, patch type, body) and how answers are mapped.

use clawhost::api::Assistant;
use clawhost::console::cluster::{Cluster, ClusterError, KubeCluster};
use clawhost_testing::memory_cluster::demo_assistant;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mocked() -> (KubeCluster, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (KubeCluster::new(kube::Client::new(svc, "default")), handle)
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn status_404() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "assistants.clawhost.dev \"x\" not found", "reason": "NotFound", "code": 404})
}

fn assistant_json(name: &str) -> Value {
    let mut a = demo_assistant("clients", name, "Alice", "alice@example.com", "small");
    a.metadata.uid = Some("uid-1".into());
    let mut v = serde_json::to_value(&a).unwrap();
    v["apiVersion"] = json!("clawhost.dev/v1alpha1");
    v["kind"] = json!("Assistant");
    v["status"] = json!({"phase": "Running"});
    v
}

/// Next request: (method, path?query, content-type, body).
async fn next(
    handle: &mut Handle,
) -> (
    Method,
    String,
    Option<String>,
    Value,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (req, send) = handle.next_request().await.expect("a request");
    let method = req.method().clone();
    let uri = req.uri().path_and_query().unwrap().to_string();
    let ct = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, uri, ct, body, send)
}

#[tokio::test]
async fn get_list_and_not_found() {
    let (c, mut h) = mocked();
    let server = tokio::spawn(async move {
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(
            (m, uri.as_str()),
            (
                Method::GET,
                "/apis/clawhost.dev/v1alpha1/namespaces/clients/assistants/alice"
            )
        );
        send.send_response(json_response(200, &assistant_json("alice")));
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(
            (m, uri.as_str()),
            (
                Method::GET,
                "/apis/clawhost.dev/v1alpha1/namespaces/clients/assistants/ghost"
            )
        );
        send.send_response(json_response(404, &status_404()));
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(m, Method::GET);
        assert!(
            uri.starts_with("/apis/clawhost.dev/v1alpha1/assistants"),
            "{uri}"
        );
        send.send_response(json_response(200, &json!({"apiVersion": "clawhost.dev/v1alpha1", "kind": "AssistantList", "metadata": {}, "items": [assistant_json("alice"), assistant_json("bob")]})));
    });
    let a: Assistant = c.get("clients", "alice").await.unwrap().unwrap();
    assert_eq!(a.spec.owner.email, "alice@example.com");
    assert!(c.get("clients", "ghost").await.unwrap().is_none());
    assert_eq!(c.list().await.unwrap().len(), 2);
    assert_eq!(c.health(), None);
    server.await.unwrap();
}

#[tokio::test]
async fn writes_use_the_allowed_verbs_and_patch_types() {
    let (c, mut h) = mocked();
    let server = tokio::spawn(async move {
        // create Assistant
        let (m, uri, _, body, send) = next(&mut h).await;
        assert_eq!(m, Method::POST);
        assert!(
            uri.starts_with("/apis/clawhost.dev/v1alpha1/namespaces/clients/assistants?"),
            "{uri}"
        );
        assert!(uri.contains("fieldManager=clawhost-console"), "{uri}");
        assert_eq!(body["spec"]["owner"]["name"], "Alice");
        send.send_response(json_response(201, &assistant_json("alice")));
        // merge patch (suspend)
        let (m, uri, ct, body, send) = next(&mut h).await;
        assert_eq!(m, Method::PATCH);
        assert!(
            uri.starts_with("/apis/clawhost.dev/v1alpha1/namespaces/clients/assistants/alice?"),
            "{uri}"
        );
        assert_eq!(ct.as_deref(), Some("application/merge-patch+json"));
        assert_eq!(body, json!({"spec": {"suspended": true}}));
        send.send_response(json_response(200, &assistant_json("alice")));
        // create Secret
        let (m, uri, _, body, send) = next(&mut h).await;
        assert_eq!(m, Method::POST);
        assert!(
            uri.starts_with("/api/v1/namespaces/clients/secrets?"),
            "{uri}"
        );
        assert_eq!(body["stringData"]["authkey"], "tskey-1");
        send.send_response(json_response(409, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "secrets \"s\" already exists", "reason": "AlreadyExists", "code": 409})));
        // patch one Secret key (never a read)
        let (m, uri, ct, body, send) = next(&mut h).await;
        assert_eq!(m, Method::PATCH);
        assert!(
            uri.starts_with("/api/v1/namespaces/clients/secrets/alice-gateway-token?"),
            "{uri}"
        );
        assert_eq!(ct.as_deref(), Some("application/merge-patch+json"));
        assert_eq!(body, json!({"data": {"token": "bmV3LXRva2Vu"}}));
        send.send_response(json_response(200, &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alice-gateway-token"}})));
        // delete
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(m, Method::DELETE);
        assert_eq!(
            uri.trim_end_matches('?'),
            "/apis/clawhost.dev/v1alpha1/namespaces/clients/assistants/alice"
        );
        send.send_response(json_response(200, &assistant_json("alice")));
        // API refusal (e.g. CEL validation) maps to Rejected with the server's message
        let (_, _, _, _, send) = next(&mut h).await;
        send.send_response(json_response(422, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "storage.size may grow but never shrink", "reason": "Invalid", "code": 422})));
    });
    let a = demo_assistant("clients", "alice", "Alice", "alice@example.com", "small");
    c.create(&a).await.unwrap();
    c.patch("clients", "alice", json!({"spec": {"suspended": true}}))
        .await
        .unwrap();
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("s".into()),
            namespace: Some("clients".into()),
            ..Default::default()
        },
        string_data: Some([("authkey".to_string(), "tskey-1".to_string())].into()),
        ..Default::default()
    };
    assert!(matches!(
        c.create_secret(&secret).await,
        Err(ClusterError::AlreadyExists(_))
    ));
    c.patch_secret_key("clients", "alice-gateway-token", "token", "new-token")
        .await
        .unwrap();
    c.delete("clients", "alice").await.unwrap();
    let e = c
        .patch(
            "clients",
            "alice",
            json!({"spec": {"storage": {"size": "1Gi"}}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ClusterError::Rejected("storage.size may grow but never shrink".into())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn events_and_gateway_log() {
    let (c, mut h) = mocked();
    let server = tokio::spawn(async move {
        // The Assistant, its gateway pod and its data volume (PVC).
        for object in ["alice", "alice-0", "alice-data"] {
            let (m, uri, _, _, send) = next(&mut h).await;
            assert_eq!(m, Method::GET);
            assert!(
                uri.starts_with("/api/v1/namespaces/clients/events?"),
                "{uri}"
            );
            assert!(
                uri.contains(&format!("fieldSelector=involvedObject.name%3D{object}")),
                "{uri}"
            );
            send.send_response(json_response(200, &json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [{
                "metadata": {"name": format!("{object}.1"), "namespace": "clients"},
                "involvedObject": {"kind": match object {"alice" => "Assistant", "alice-0" => "Pod", _ => "PersistentVolumeClaim"}, "name": object},
                "reason": "Reconciled", "message": format!("about {object}"), "type": "Normal", "count": 2,
                "lastTimestamp": match object {"alice" => "2026-09-01T10:00:00Z", "alice-0" => "2026-09-01T11:00:00Z", _ => "2026-09-01T09:00:00Z"}
            }]})));
        }
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(m, Method::GET);
        assert!(
            uri.starts_with("/api/v1/namespaces/clients/pods/alice-0/log?"),
            "{uri}"
        );
        assert!(
            uri.contains("container=gateway") && uri.contains("tailLines=50"),
            "{uri}"
        );
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(b"line 1\nline 2\n".to_vec()))
                .unwrap(),
        );
        let (_, uri, _, _, send) = next(&mut h).await;
        assert!(uri.contains("/pods/bob-0/log"), "{uri}");
        send.send_response(json_response(404, &status_404()));
    });
    let ev = c.events("clients", "alice").await.unwrap();
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0].object, "Pod/alice-0", "newest first");
    assert_eq!(ev[1].message, "about alice");
    assert_eq!(
        ev[2].object, "PersistentVolumeClaim/alice-data",
        "the volume's events"
    );
    assert_eq!(
        c.gateway_log("clients", "alice", 50)
            .await
            .unwrap()
            .as_deref(),
        Some("line 1\nline 2\n")
    );
    assert_eq!(
        c.gateway_log("clients", "bob", 50).await.unwrap(),
        None,
        "no pod yet"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn connection_failure_is_unreachable_and_sets_health() {
    let (c, mut h) = mocked();
    let server = tokio::spawn(async move {
        let (_, send) = h.next_request().await.unwrap();
        send.send_error(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        let (_, send) = h.next_request().await.unwrap();
        send.send_response(json_response(200, &assistant_json("alice")));
    });
    let e = c.get("clients", "alice").await.unwrap_err();
    assert!(
        matches!(e, ClusterError::Unreachable(ref m) if m.contains("connection refused")),
        "{e:?}"
    );
    assert!(c.health().unwrap().contains("connection refused"));
    c.get("clients", "alice").await.unwrap();
    assert_eq!(c.health(), None, "recovers on the next success");
    server.await.unwrap();
}

fn snapshot_json(name: &str, kind: &str, taken: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": "clients", "uid": format!("u-{name}"),
                     "creationTimestamp": taken,
                     "labels": {"clawhost.dev/snapshot-kind": kind, "clawhost.dev/assistant-uid": "uid-1"},
                     "annotations": {"clawhost.dev/source-claim": "alice-data"}},
        "spec": {"source": {"persistentVolumeClaimName": "alice-data"}},
        "status": {"readyToUse": ready, "creationTime": taken, "restoreSize": "8Gi"}
    })
}

/// Backups (issue 16): snapshots are listed by the Assistant's uid label and come back
/// newest first; a 404 on the list is "no VolumeSnapshot API" (`Ok(None)`), not an error;
/// other failures are errors. Retained claims are listed by base name and retained label.
#[tokio::test]
async fn snapshots_and_retained_claims() {
    let (c, mut h) = mocked();
    let server = tokio::spawn(async move {
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(m, Method::GET);
        assert!(
            uri.starts_with("/apis/snapshot.storage.k8s.io/v1/namespaces/clients/volumesnapshots?"),
            "{uri}"
        );
        assert!(
            uri.contains("labelSelector=clawhost.dev%2Fassistant-uid%3Duid-1"),
            "{uri}"
        );
        send.send_response(json_response(200, &json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotList", "metadata": {},
            "items": [
                snapshot_json("alice-20261201-030000-scheduled", "scheduled", "2026-12-01T03:00:05Z", true),
                snapshot_json("alice-20261203-030000-scheduled", "scheduled", "2026-12-03T03:00:05Z", false),
                snapshot_json("alice-20261202-101500-manual", "manual", "2026-12-02T10:15:05Z", true),
                // Not clawhost's (no kind label): never listed.
                {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                 "metadata": {"name": "by-hand", "namespace": "clients", "creationTimestamp": "2026-12-04T00:00:00Z",
                              "labels": {"clawhost.dev/assistant-uid": "uid-1"}},
                 "spec": {"source": {"persistentVolumeClaimName": "alice-data"}}}
            ]})));
        // The resource type does not exist.
        let (_, _, _, _, send) = next(&mut h).await;
        send.send_response(json_response(404, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404})));
        let (_, _, _, _, send) = next(&mut h).await;
        send.send_response(json_response(403, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "volumesnapshots.snapshot.storage.k8s.io is forbidden", "reason": "Forbidden", "code": 403})));
        // Retained claims.
        let (m, uri, _, _, send) = next(&mut h).await;
        assert_eq!(m, Method::GET);
        assert!(
            uri.starts_with("/api/v1/namespaces/clients/persistentvolumeclaims?"),
            "{uri}"
        );
        assert!(
            uri.contains(
                "labelSelector=clawhost.dev%2Fassistant%3Dalice%2Cclawhost.dev%2Fretained%3Dtrue"
            ),
            "{uri}"
        );
        send.send_response(json_response(200, &json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {},
            "items": [{
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "alice-data", "namespace": "clients", "uid": "pvc-1",
                             "creationTimestamp": "2026-11-01T10:00:00Z",
                             "labels": {"clawhost.dev/assistant": "alice", "clawhost.dev/retained": "true"},
                             "annotations": {"clawhost.dev/retained-from": "clients/alice",
                                             "clawhost.dev/replaced-by": "alice-data-52bf4ab9",
                                             "clawhost.dev/assistant-uid": "uid-1",
                                             "clawhost.dev/retained-owner-email": "alice@example.com"}},
                "spec": {"resources": {"requests": {"storage": "5Gi"}}},
                "status": {"phase": "Bound", "capacity": {"storage": "8Gi"}}
            }]})));
    });
    let list = c.snapshots("clients", "uid-1").await.unwrap().unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "alice-20261203-030000-scheduled",
            "alice-20261202-101500-manual",
            "alice-20261201-030000-scheduled"
        ]
    );
    assert!(!list[0].ready && list[1].ready);
    assert_eq!(list[1].restore_size.as_deref(), Some("8Gi"));
    assert_eq!(c.snapshots("clients", "uid-1").await.unwrap(), None);
    assert!(matches!(
        c.snapshots("clients", "uid-1").await,
        Err(ClusterError::Rejected(m)) if m.contains("forbidden")
    ));
    let claims = c.retained_claims("clients", "alice").await.unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.name, "alice-data");
    assert_eq!(
        claim.capacity.as_deref(),
        Some("8Gi"),
        "status capacity first"
    );
    assert_eq!(claim.replaced_by.as_deref(), Some("alice-data-52bf4ab9"));
    assert_eq!(claim.retained_from.as_deref(), Some("clients/alice"));
    assert_eq!(
        claim.assistant_uid.as_deref(),
        Some("uid-1"),
        "whose volume it was, by uid"
    );
    assert_eq!(claim.owner_email.as_deref(), Some("alice@example.com"));
    assert_eq!(c.health(), None);
    server.await.unwrap();
}
