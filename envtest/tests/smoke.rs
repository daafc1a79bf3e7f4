//! Smoke test of the harness against the real binaries (skipped without KUBEBUILDER_ASSETS).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clawhost_envtest::{ControlPlane, require_assets, writes_by};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_smoke() {
    let Some(_) = require_assets() else { return };

    let t0 = Instant::now();
    let mut cp = ControlPlane::start().await.expect("start control plane");
    eprintln!(
        "control plane (etcd + apiserver + controller manager) ready in {:?} at {} in {}",
        t0.elapsed(),
        cp.server_url(),
        cp.dir().display()
    );

    // Admin can list namespaces.
    let admin = cp.client("admin").await;
    let namespaces = Api::<Namespace>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .expect("admin lists namespaces");
    let names: Vec<_> = namespaces
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(names.contains(&"default".to_owned()), "{names:?}");
    assert!(names.contains(&"kube-system".to_owned()), "{names:?}");

    // An unprivileged user is really subject to RBAC.
    let operator = cp.client("clawhost-operator").await;
    match Api::<Secret>::all(operator)
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403 listing secrets as clawhost-operator, got {other:?}"),
    }

    // A write shows up in the audit log, attributed to its user.
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("smoke".into()),
            ..Default::default()
        },
        data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let events = cp.audit_events();
    let creates: Vec<_> = writes_by(&events, "admin")
        .filter(|e| e.verb == "create" && e.resource() == "configmaps" && e.name() == "smoke")
        .collect();
    assert_eq!(creates.len(), 1, "{creates:#?}");
    assert_eq!(creates[0].code(), Some(201));
    assert_eq!(creates[0].namespace(), "default");
    assert!(
        events.iter().all(|e| e.stage == "ResponseComplete"),
        "only ResponseComplete events"
    );
    assert_eq!(writes_by(&events, "bob").count(), 0);

    // The API server restarts on the same port, etcd and certificates; data survives.
    let t = Instant::now();
    cp.stop_apiserver().await;
    let stopped = t.elapsed();
    cp.start_apiserver().await.expect("restart apiserver");
    eprintln!(
        "apiserver stop took {stopped:?}, stop + start {:?}",
        t.elapsed()
    );
    let admin = cp.client("admin").await;
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .get("smoke")
        .await
        .expect("configmap survives an apiserver restart");
    Api::<Namespace>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .expect("list namespaces after restart");

    // CRDs install and become Established.
    let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let t = Instant::now();
    cp.install_crds(&[&crds]).await.expect("install CRDs");
    eprintln!("CRDs installed and Established in {:?}", t.elapsed());
    let crd = Api::<CustomResourceDefinition>::all(admin.clone())
        .get("assistants.clawhost.dev")
        .await
        .expect("CRD exists");
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);

    // The controller manager works: a StatefulSet gets its Pod.
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "smoke"},
        "spec": {
            "replicas": 1,
            "serviceName": "smoke",
            "selector": {"matchLabels": {"app": "smoke"}},
            "template": {
                "metadata": {"labels": {"app": "smoke"}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &sts)
        .await
        .expect("create statefulset");
    let pods = Api::<Pod>::namespaced(admin.clone(), "default");
    let t = Instant::now();
    loop {
        if pods.get_opt("smoke-0").await.expect("get pod").is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no Pod smoke-0 from the StatefulSet after 30 s; see {}",
            cp.dir().join("kube-controller-manager.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("StatefulSet -> Pod in {:?}", t.elapsed());
    let pod_creators: Vec<_> = cp
        .audit_events()
        .into_iter()
        .filter(|e| e.is_write() && e.verb == "create" && e.resource() == "pods")
        // The statefulset controller sometimes retries the create from a stale cache and
        // gets 409 AlreadyExists: a failed write, still a write.
        .filter(|e| e.code() == Some(201))
        .map(|e| e.user.username)
        .collect();
    assert_eq!(
        pod_creators,
        ["system:serviceaccount:kube-system:statefulset-controller"],
        "the statefulset controller creates the pod with its own service account"
    );

    let t = Instant::now();
    drop(cp);
    eprintln!("drop took {:?}", t.elapsed());
}
