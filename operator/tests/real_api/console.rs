//! The console's Kubernetes side (`KubeCluster`) on the real API server, as the console's
//! user bound only to `clawhost rbac console`, with the real operator running: create, list
//! from its watch cache, status, the operator's Events read back (published as
//! events.k8s.io/v1, read as core/v1: the same objects only on a real server), actions,
//! Secrets, delete.

use std::time::Duration;

use clawhost::api::Assistant;
use clawhost::console::cluster::{Cluster, KubeCluster};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;

use crate::support::*;

const STEP: Duration = Duration::from_secs(60);
const CONSOLE_USER: &str = "clawhost-console";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_cluster_on_the_real_api_server() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    grant_operator_rbac(&admin).await;
    grant_rbac(&admin, "console", CONSOLE_USER).await;
    let ns = "clients";
    namespace(&admin, ns).await;
    auth_key_secret(&admin, ns, "ts-auth", "authkey").await;
    let console = KubeCluster::with_watch(cp.client(CONSOLE_USER).await);
    let _op = Operator::start(&cp, None).await;

    let a: Assistant = serde_json::from_value(assistant_json(ns, "carol", json!({}))).unwrap();
    console
        .create(&a)
        .await
        .expect("the console creates an Assistant");
    wait_for("carol in the console's list", STEP, || async {
        console
            .list()
            .await
            .ok()?
            .iter()
            .any(|a| a.metadata.name.as_deref() == Some("carol"))
            .then_some(())
    })
    .await;
    let created = wait_for("carol's status, written by the operator", STEP, || async {
        console.get(ns, "carol").await.ok()?.filter(observed)
    })
    .await;
    assert!(created.status.unwrap().phase.is_some());
    let events = wait_for(
        "the operator's Events, read by the console",
        STEP,
        || async { Some(console.events(ns, "carol").await.ok()?).filter(|e| !e.is_empty()) },
    )
    .await;
    assert!(events.iter().all(|e| !e.reason.is_empty()), "{events:?}");
    // The data volume's events too (why a pod waits), read with the console's RBAC.
    let pvc_event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "carol-data.provisioning", "namespace": ns},
        "involvedObject": {"kind": "PersistentVolumeClaim", "name": "carol-data", "namespace": ns},
        "reason": "ProvisioningFailed", "type": "Warning", "message": "storageclass \"fast-ssd\" not found",
        "count": 1, "lastTimestamp": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(admin.clone(), ns)
        .create(&Default::default(), &pvc_event)
        .await
        .expect("create the volume's event");
    let events = console.events(ns, "carol").await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.object == "PersistentVolumeClaim/carol-data"
                && e.reason == "ProvisioningFailed"),
        "{events:?}"
    );
    assert_eq!(
        console.gateway_log(ns, "carol", 20).await.unwrap(),
        None,
        "no pod without a kubelet"
    );

    // An action: suspend, carried out by the operator.
    console
        .patch(ns, "carol", json!({"spec": {"suspended": true}}))
        .await
        .expect("patch");
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    wait_for("the suspend to reach the StatefulSet", STEP, || async {
        (sts.get_opt("carol").await.ok()??.spec?.replicas == Some(0)).then_some(())
    })
    .await;

    // Secrets: created, and one key replaced without reading the Secret.
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "carol-model", "namespace": ns}, "stringData": {"key": "one"}}),
    )
    .unwrap();
    console.create_secret(&s).await.expect("create secret");
    console
        .patch_secret_key(ns, "carol-model", "key", "two")
        .await
        .expect("patch secret key");
    let stored = Api::<Secret>::namespaced(admin.clone(), ns)
        .get("carol-model")
        .await
        .unwrap();
    assert_eq!(stored.data.unwrap()["key"].0, b"two");

    console.delete(ns, "carol").await.expect("delete");
    wait_for(
        "carol to be gone (the operator's cleanup ran)",
        STEP,
        || async { console.get(ns, "carol").await.ok()?.is_none().then_some(()) },
    )
    .await;
    // The same name again: a real deletion ran the operator's cleanup, and the first
    // carol's volume was retained, so the new one is told it belongs to someone else.
    console.create(&a).await.expect("re-create after deletion");
    wait_for("the re-created carol's volume conflict", STEP, || async {
        let again = console.get(ns, "carol").await.ok()??;
        (observed(&again)
            && condition(&again, "ConfigValid")?.1 == "VolumeBelongsToAnotherAssistant")
            .then_some(())
    })
    .await;
    let refused: Vec<_> = cp
        .audit_events()
        .into_iter()
        .filter(|e| e.user.username == CONSOLE_USER && e.code() == Some(403))
        .collect();
    assert!(
        refused.is_empty(),
        "RBAC refused the console: {}",
        describe(&refused.iter().collect::<Vec<_>>())
    );
    assert!(
        console.health().is_none(),
        "the console sees the cluster as reachable"
    );
}
