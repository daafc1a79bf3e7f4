//! The real `clawhost operator` binary against a real API server and controller manager,
//! as a user bound only to the operator's ClusterRole: a fleet of Assistants of many shapes
//! in several namespaces converges, then stays quiet (0 writes in an idle window), undoes
//! drift with one write each, suspends and resumes, grows storage, shows refused applies in
//! status, never hands a retained volume to a new client, deletes with Retain and Delete,
//! follows the pod as the kubelet reports it, and is never refused by RBAC.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clawhost::api::Assistant;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::*;

const NAMESPACES: [&str; 3] = ["clients-a", "clients-b", "clients-c"];
/// How long the fleet must stay quiet.
const IDLE_WINDOW: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(180);
const STEP: Duration = Duration::from_secs(60);

/// 24 Assistants: eight shapes in each of three namespaces.
fn fleet() -> Vec<Value> {
    let shapes: Vec<(&str, Value)> = vec![
        ("minimal", json!({})),
        ("small", json!({"plan": "small"})),
        ("large", json!({"plan": "large"})),
        ("sleepy", json!({"suspended": true})),
        (
            "custom",
            json!({"resources": {"requests": {"cpu": "100m", "memory": "1.5Gi"}, "limits": {"cpu": "1500m", "memory": "3Gi"}}}),
        ),
        (
            "public",
            json!({"tailscale": {"authKeySecretRef": {"name": "ts-auth", "key": "authkey"}, "funnel": true, "tags": ["tag:a", "tag:b-2"], "hostname": "public-gw"}}),
        ),
        (
            "ephemeral",
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        ),
        (
            "configured",
            json!({"gateway": {"version": "2026.9.6", "config": {"agents": {"defaults": {"maxConcurrent": 1}}},
            "env": [{"name": "TELEGRAM_BOT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "ts-auth", "key": "authkey"}}}]}}),
        ),
    ];
    let mut out = Vec::new();
    for ns in NAMESPACES {
        for (name, spec) in &shapes {
            let mut spec = spec.clone();
            if *name == "public" {
                spec["tailscale"]["hostname"] = json!(format!("public-{ns}"));
            }
            out.push(assistant_json(ns, name, spec));
        }
    }
    out
}

async fn converged(client: &Client, ns: &str, name: &str) -> Option<Assistant> {
    let a = get_assistant(client, ns, name).await?;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let applied = condition(&a, "Applied").is_some_and(|c| c.0 == "True");
    (observed(&a) && applied && sts.get_opt(name).await.ok()??.spec.is_some()).then_some(a)
}

async fn wait_converged(client: &Client, ns: &str, name: &str, timeout: Duration) -> Assistant {
    wait_for(&format!("{ns}/{name} to converge"), timeout, || {
        converged(client, ns, name)
    })
    .await
}

/// Waits until the operator has written nothing for `quiet`, then returns the time.
async fn wait_quiet(cp: &clawhost_envtest::ControlPlane, quiet: Duration) -> jiff::Timestamp {
    wait_for(
        "the operator to go quiet",
        Duration::from_secs(120),
        || async {
            let since = jiff::Timestamp::now() - jiff::SignedDuration::try_from(quiet).unwrap();
            let recent = operator_requests(cp, since);
            recent
                .iter()
                .all(|e| !e.is_write())
                .then(jiff::Timestamp::now)
        },
    )
    .await
}

fn writes(events: &[clawhost_envtest::AuditEvent]) -> Vec<&clawhost_envtest::AuditEvent> {
    events.iter().filter(|e| e.is_write()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_fleet_on_the_real_api_server() {
    let _one = serial().await;
    let Some(cp) = control_plane(true).await else {
        return;
    };
    let admin = cp.client("admin").await;
    grant_operator_rbac(&admin).await;
    for ns in NAMESPACES {
        namespace(&admin, ns).await;
        auth_key_secret(&admin, ns, "ts-auth", "authkey").await;
    }
    // Volumes that can bind and grow: an expandable class and statically provisioned PVs,
    // bound by the controller manager's PV controller.
    apply_json(&admin, "storage.k8s.io/v1", "StorageClass", "storageclasses", None, &json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "expandable"},
        "provisioner": "kubernetes.io/no-provisioner", "allowVolumeExpansion": true, "volumeBindingMode": "Immediate",
    })).await;
    for i in 0..2 {
        apply_json(&admin, "v1", "PersistentVolume", "persistentvolumes", None, &json!({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": format!("pv-{i}")},
            "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "expandable",
                     "hostPath": {"path": format!("/tmp/pv-{i}")}, "persistentVolumeReclaimPolicy": "Retain"},
        })).await;
    }

    let fleet = fleet();
    for a in &fleet {
        create_assistant(&admin, a).await;
    }
    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    let mut op = Operator::start(&cp, None).await;
    wait_for("/readyz 200", STEP, || async {
        (op.readyz().await == Some(200)).then_some(())
    })
    .await;
    for a in &fleet {
        let (ns, name) = (
            a["metadata"]["namespace"].as_str().unwrap(),
            a["metadata"]["name"].as_str().unwrap(),
        );
        wait_converged(&admin, ns, name, CONVERGE).await;
    }
    let converge_time = clock.elapsed();
    let first = operator_requests(&cp, started);
    let first_writes = writes(&first).len();
    eprintln!(
        "fleet: {} Assistants converged in {:.1} s: {} requests, {} writes ({:.1} requests, {:.1} writes per Assistant)",
        fleet.len(),
        converge_time.as_secs_f64(),
        first.len(),
        first_writes,
        first.len() as f64 / fleet.len() as f64,
        first_writes as f64 / fleet.len() as f64
    );

    // Idle: requeues of unready Assistants keep reconciling; none may write.
    let quiet_from = wait_quiet(&cp, Duration::from_secs(10)).await;
    tokio::time::sleep(IDLE_WINDOW).await; // the idle window itself is what is measured
    let idle = operator_requests(&cp, quiet_from);
    let idle_writes = writes(&idle);
    eprintln!(
        "fleet: idle window {} s: {} requests, {} writes, {} dry runs",
        IDLE_WINDOW.as_secs(),
        idle.len(),
        idle_writes.len(),
        idle.iter().filter(|e| e.is_dry_run()).count()
    );
    assert!(
        idle_writes.is_empty(),
        "writes while idle:\n{}",
        describe(&idle_writes)
    );

    let ns = "clients-a";
    drift_is_undone_with_one_write_each(&cp, &admin, ns).await;
    suspend_and_resume(&admin, ns).await;
    storage_grows(&cp, &admin, ns).await;
    refused_apply_is_reported(&cp, &admin, &op, ns).await;
    plan_downgrade_keeps_the_volume(&admin, ns).await;
    quota_refusal_is_reported(&admin).await;
    retained_volume_is_not_handed_to_a_new_client(&admin, "clients-b").await;
    delete_removes_the_volume(&admin, "clients-b").await;
    another_controllers_finalizer_is_kept(&admin, "clients-b").await;
    a_late_secret_is_picked_up_by_its_watch(&admin, "clients-c").await;
    pod_lifecycle_follows_the_kubelet(&admin, "clients-c").await;

    let all = operator_requests(&cp, started);
    // The quota's refusals are 403s too; every other 403 would be RBAC's.
    let forbidden: Vec<_> = all
        .iter()
        .filter(|e| e.code() == Some(403) && e.namespace() != "clients-quota")
        .collect();
    assert!(
        forbidden.is_empty(),
        "RBAC refused the operator:\n{}",
        describe(&forbidden)
    );
    eprintln!(
        "fleet: {} operator requests in all, 0 refused by RBAC",
        all.len()
    );
    assert_eq!(
        op.terminate(Duration::from_secs(30)),
        Some(0),
        "SIGTERM stops it cleanly"
    );
}

async fn operator_writes_to(
    cp: &clawhost_envtest::ControlPlane,
    since: jiff::Timestamp,
    resource: &str,
    name: &str,
) -> usize {
    operator_requests(cp, since)
        .iter()
        .filter(|e| e.is_write() && e.resource() == resource && e.name() == name)
        .count()
}

async fn drift_is_undone_with_one_write_each(
    cp: &clawhost_envtest::ControlPlane,
    admin: &Client,
    ns: &str,
) {
    // A hand-edited StatefulSet.
    let since = jiff::Timestamp::now();
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    sts.patch(
        "minimal",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    wait_for("the StatefulSet edit to be undone", STEP, || async {
        (sts.get("minimal").await.ok()?.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    wait_quiet(cp, Duration::from_secs(5)).await;
    assert_eq!(
        operator_writes_to(cp, since, "statefulsets", "minimal").await,
        1,
        "one write restores the StatefulSet"
    );

    // A deleted NetworkPolicy.
    let since = jiff::Timestamp::now();
    let np: Api<NetworkPolicy> = Api::namespaced(admin.clone(), ns);
    np.delete("minimal-gateway", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the NetworkPolicy to come back", STEP, || async {
        np.get_opt("minimal-gateway").await.ok()?
    })
    .await;
    wait_quiet(cp, Duration::from_secs(5)).await;
    assert_eq!(
        operator_writes_to(cp, since, "networkpolicies", "minimal-gateway").await,
        1,
        "one write restores the NetworkPolicy"
    );

    // A hand-changed gateway config Secret.
    let since = jiff::Timestamp::now();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let before = secrets.get("minimal-gateway-config").await.unwrap().data;
    secrets
        .patch(
            "minimal-gateway-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"openclaw.json": "{}"}})),
        )
        .await
        .unwrap();
    wait_for("the config Secret to be restored", STEP, || async {
        (secrets.get("minimal-gateway-config").await.ok()?.data == before).then_some(())
    })
    .await;
    wait_quiet(cp, Duration::from_secs(5)).await;
    assert_eq!(
        operator_writes_to(cp, since, "secrets", "minimal-gateway-config").await,
        1,
        "one write restores the config Secret"
    );
}

async fn suspend_and_resume(admin: &Client, ns: &str) {
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    for (suspended, replicas, phase) in [(true, 0, "Suspended"), (false, 1, "")] {
        patch_assistant(
            admin,
            ns,
            "small",
            json!({"spec": {"suspended": suspended}}),
        )
        .await;
        let a = wait_converged(admin, ns, "small", STEP).await;
        assert_eq!(
            sts.get("small").await.unwrap().spec.unwrap().replicas,
            Some(replicas)
        );
        let got = a.status.unwrap().phase.unwrap().to_string();
        if !phase.is_empty() {
            assert_eq!(got, phase);
        } else {
            assert_ne!(got, "Suspended");
        }
    }
}

async fn storage_grows(cp: &clawhost_envtest::ControlPlane, admin: &Client, ns: &str) {
    create_assistant(
        admin,
        &assistant_json(
            ns,
            "grow",
            json!({"storage": {"size": "1Gi", "storageClassName": "expandable"}}),
        ),
    )
    .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);
    wait_for("grow-data to bind", STEP, || async {
        (pvcs
            .get_opt("grow-data")
            .await
            .ok()??
            .status?
            .phase
            .as_deref()
            == Some("Bound"))
        .then_some(())
    })
    .await;
    wait_converged(admin, ns, "grow", STEP).await;
    let since = jiff::Timestamp::now();
    patch_assistant(
        admin,
        ns,
        "grow",
        json!({"spec": {"storage": {"size": "2Gi"}}}),
    )
    .await;
    let a = wait_converged(admin, ns, "grow", STEP).await;
    let requested = pvcs
        .get("grow-data")
        .await
        .unwrap()
        .spec
        .unwrap()
        .resources
        .unwrap()
        .requests
        .unwrap()["storage"]
        .0
        .clone();
    assert_eq!(requested, "2Gi", "{:?}", a.status);
    assert_eq!(
        operator_writes_to(cp, since, "persistentvolumeclaims", "grow-data").await,
        1
    );
}

async fn refused_apply_is_reported(
    cp: &clawhost_envtest::ControlPlane,
    admin: &Client,
    op: &Operator,
    ns: &str,
) {
    // The default plan's volume is unbound (no default StorageClass): growing it is
    // forbidden by the API server, so a plan upgrade cannot be fully applied.
    let since = jiff::Timestamp::now();
    patch_assistant(admin, ns, "minimal", json!({"spec": {"plan": "large"}})).await;
    let a = wait_for("Applied=False on minimal", STEP, || async {
        let a = get_assistant(admin, ns, "minimal").await?;
        let c = condition(&a, "Applied")?;
        (observed(&a) && c.0 == "False").then_some(a)
    })
    .await;
    let (_, reason, message) = condition(&a, "Applied").unwrap();
    assert_eq!(reason, "ApplyRefused");
    assert!(
        message.contains("PersistentVolumeClaim minimal-data") && message.contains("Forbidden"),
        "{message}"
    );
    assert_eq!(
        a.status.as_ref().unwrap().phase.unwrap().to_string(),
        "Failed"
    );
    assert_ne!(
        condition(&a, "ConfigValid").unwrap().2,
        "the spec is valid and applied"
    );
    // Everything else is applied: the StatefulSet runs with the new plan's memory.
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    wait_for(
        "the large plan's resources on the StatefulSet",
        STEP,
        || async {
            let s = sts.get("minimal").await.ok()?;
            let limits = s
                .spec?
                .template
                .spec?
                .containers
                .into_iter()
                .find(|c| c.name == "gateway")?
                .resources?
                .limits?;
            (limits.get("memory").map(|q| q.0.as_str()) == Some("4Gi")).then_some(())
        },
    )
    .await;
    // One Event per condition that turned ApplyRefused (Applied, and Ready after it).
    let refused_events = wait_for("ApplyRefused events", STEP, || async {
        Some(events_for(admin, ns, "minimal", "ApplyRefused").await).filter(|n| *n >= 1)
    })
    .await;
    let metrics = op.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("clawhost_child_applies_total{")
                && l.contains("PersistentVolumeClaim")
                && l.contains("refused")),
        "{metrics}"
    );
    // Backed off: a handful of retries, not a hot loop.
    tokio::time::sleep(Duration::from_secs(20)).await; // the window whose retries are counted
    // Every patch of the claim since the plan change, refused or not (dry runs excluded).
    let attempts = operator_writes_to(cp, since, "persistentvolumeclaims", "minimal-data").await;
    assert!(
        attempts <= 6,
        "{attempts} attempts to patch minimal-data in ~25 s: not backed off"
    );
    assert_eq!(
        events_for(admin, ns, "minimal", "ApplyRefused").await,
        refused_events,
        "retries publish no further Events"
    );
    // Undo: back to the plan the volume has.
    patch_assistant(admin, ns, "minimal", json!({"spec": {"plan": "standard"}})).await;
    wait_converged(admin, ns, "minimal", Duration::from_secs(330)).await;
}

/// large (50Gi) → small: the volume keeps 50Gi (never shrinks through a plan), CPU and
/// memory follow the small plan, and the client is not Failed.
async fn plan_downgrade_keeps_the_volume(admin: &Client, ns: &str) {
    patch_assistant(admin, ns, "large", json!({"spec": {"plan": "small"}})).await;
    let a = wait_converged(admin, ns, "large", STEP).await;
    assert_ne!(a.status.unwrap().phase.unwrap().to_string(), "Failed");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);
    let requested = pvcs
        .get("large-data")
        .await
        .unwrap()
        .spec
        .unwrap()
        .resources
        .unwrap()
        .requests
        .unwrap()["storage"]
        .0
        .clone();
    assert_eq!(requested, "50Gi");
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    let limits = sts
        .get("large")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .find(|c| c.name == "gateway")
        .unwrap()
        .resources
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "2Gi", "the small plan's memory");
    // And back up: the large plan's size is the volume's already; nothing is refused.
    patch_assistant(admin, ns, "large", json!({"spec": {"plan": "large"}})).await;
    wait_converged(admin, ns, "large", STEP).await;
}

/// A namespace quota that allows no volume: admission refuses the claim; status says so
/// with the server's words, and the rest is applied.
async fn quota_refusal_is_reported(admin: &Client) {
    let ns = "clients-quota";
    namespace(admin, ns).await;
    auth_key_secret(admin, ns, "ts-auth", "authkey").await;
    apply_json(
        admin,
        "v1",
        "ResourceQuota",
        "resourcequotas",
        Some(ns),
        &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-volumes", "namespace": ns},
                "spec": {"hard": {"persistentvolumeclaims": "0"}}}),
    )
    .await;
    // Admission enforces a quota once the controller manager has computed its usage.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = Api::namespaced(admin.clone(), ns);
    wait_for("the quota's usage", STEP, || async {
        quotas
            .get("no-volumes")
            .await
            .ok()?
            .status?
            .used
            .map(|_| ())
    })
    .await;
    create_assistant(admin, &assistant_json(ns, "capped", json!({}))).await;
    let a = wait_for("Applied=False on capped", STEP, || async {
        let a = get_assistant(admin, ns, "capped").await?;
        (condition(&a, "Applied")?.0 == "False").then_some(a)
    })
    .await;
    let (_, reason, message) = condition(&a, "Applied").unwrap();
    assert_eq!(reason, "ApplyRefused");
    assert!(
        message.contains("PersistentVolumeClaim capped-data") && message.contains("exceeded quota"),
        "{message}"
    );
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    wait_for(
        "the StatefulSet, applied despite the refused claim",
        STEP,
        || async { sts.get_opt("capped").await.ok()? },
    )
    .await;
}

async fn retained_volume_is_not_handed_to_a_new_client(admin: &Client, ns: &str) {
    let assistants: Api<Assistant> = Api::namespaced(admin.clone(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    create_assistant(admin, &assistant_json(ns, "frank", json!({}))).await;
    let first = wait_converged(admin, ns, "frank", STEP).await;
    let old_sts_uid = sts.get("frank").await.unwrap().uid();
    assistants
        .delete("frank", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("frank to be deleted", STEP, || async {
        assistants
            .get_opt("frank")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let retained = pvcs
        .get("frank-data")
        .await
        .expect("the volume is retained");
    assert_eq!(
        retained
            .labels()
            .get("clawhost.dev/retained")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        retained.annotations().get("clawhost.dev/assistant-uid"),
        first.uid().as_ref()
    );
    wait_for("the old StatefulSet to be collected", STEP, || async {
        (sts.get_opt("frank").await.ok()?.map(|s| s.uid()) != Some(old_sts_uid.clone()))
            .then_some(())
    })
    .await;

    // Same name, another client.
    let mut other = assistant_json(ns, "frank", json!({}));
    other["spec"]["owner"] = json!({"name": "Another Frank", "email": "other-frank@example.com"});
    create_assistant(admin, &other).await;
    let a = wait_for("the volume conflict in status", STEP, || async {
        let a = get_assistant(admin, ns, "frank").await?;
        (observed(&a) && condition(&a, "ConfigValid")?.1 == "VolumeBelongsToAnotherAssistant")
            .then_some(a)
    })
    .await;
    let message = condition(&a, "ConfigValid").unwrap().2;
    let claim_uid = retained.uid().unwrap();
    assert!(
        message.contains("frank-data") && message.contains(&claim_uid),
        "{message}"
    );
    assert!(
        sts.get_opt("frank").await.unwrap().is_none(),
        "no pod may mount another client's volume"
    );

    // Adopting it is an explicit choice.
    patch_assistant(
        admin,
        ns,
        "frank",
        json!({"spec": {"storage": {"adoptRetainedVolume": claim_uid}}}),
    )
    .await;
    let adopted = wait_converged(admin, ns, "frank", STEP).await;
    let pvc = pvcs.get("frank-data").await.unwrap();
    assert_eq!(
        pvc.annotations().get("clawhost.dev/assistant-uid"),
        adopted.uid().as_ref()
    );
    assert!(!pvc.labels().contains_key("clawhost.dev/retained"));
}

async fn delete_removes_the_volume(admin: &Client, ns: &str) {
    let assistants: Api<Assistant> = Api::namespaced(admin.clone(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);
    assert!(pvcs.get_opt("ephemeral-data").await.unwrap().is_some());
    assistants
        .delete("ephemeral", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("ephemeral and its volume to go", STEP, || async {
        let gone = assistants.get_opt("ephemeral").await.ok()?.is_none();
        // A deleted claim may linger with the pvc-protection finalizer while a pod used it.
        let pvc = pvcs.get_opt("ephemeral-data").await.ok()?;
        (gone && pvc.is_none_or(|p| p.metadata.deletion_timestamp.is_some())).then_some(())
    })
    .await;
}

/// Deleting an Assistant that also carries another controller's finalizer: the operator
/// cleans up and removes only its own; the other stays until its owner removes it.
async fn another_controllers_finalizer_is_kept(admin: &Client, ns: &str) {
    let assistants: Api<Assistant> = Api::namespaced(admin.clone(), ns);
    let mut obj = assistant_json(ns, "shared", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    create_assistant(admin, &obj).await;
    wait_converged(admin, ns, "shared", STEP).await;
    assistants
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    let a = wait_for(
        "the operator to release only its own finalizer",
        STEP,
        || async {
            let a = assistants.get_opt("shared").await.ok()??;
            (a.metadata.finalizers.as_deref() == Some(&["example.com/keep".to_string()][..]))
                .then_some(a)
        },
    )
    .await;
    assert!(a.metadata.deletion_timestamp.is_some());
    assistants
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_for("shared to be gone", STEP, || async {
        assistants
            .get_opt("shared")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

/// A missing auth-key Secret is reported; creating it is picked up by the Secret watch
/// (nobody touches the Assistant).
async fn a_late_secret_is_picked_up_by_its_watch(admin: &Client, ns: &str) {
    let spec = json!({"tailscale": {"authKeySecretRef": {"name": "late-key", "key": "authkey"}}});
    create_assistant(admin, &assistant_json(ns, "patient", spec)).await;
    wait_for("SecretNotFound", STEP, || async {
        let a = get_assistant(admin, ns, "patient").await?;
        (condition(&a, "ConfigValid")?.1 == "SecretNotFound").then_some(())
    })
    .await;
    auth_key_secret(admin, ns, "late-key", "authkey").await;
    // Well inside the 60 s requeue of a blocked Assistant: only the watch can be this quick.
    wait_converged(admin, ns, "patient", Duration::from_secs(20)).await;
}

async fn pod_lifecycle_follows_the_kubelet(admin: &Client, ns: &str) {
    // A bound volume, so only the pod and the tailnet stand between it and Running.
    create_assistant(
        admin,
        &assistant_json(
            ns,
            "lively",
            json!({"storage": {"size": "1Gi", "storageClassName": "expandable"}}),
        ),
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), ns);
    wait_for(
        "the controller manager to create lively-0",
        STEP,
        || async { pods.get_opt("lively-0").await.ok()? },
    )
    .await;
    // The sidecar stores where the device is; the test writes it as tailscale would.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    secrets
        .patch("lively-tailscale-state", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"device_fqdn": "lively.tailnet-test.ts.net.", "device_ips": "[\"100.64.0.7\"]"}})))
        .await
        .unwrap();
    let phase_reason = |want_phase: &'static str, want_reason: &'static str| {
        move || async move {
            let a = get_assistant(admin, ns, "lively").await?;
            let phase = a.status.as_ref()?.phase?.to_string();
            let reason = condition(&a, "GatewayReady")?.1;
            (phase == want_phase && reason == want_reason).then_some(a)
        }
    };
    set_pod_status(admin, ns, "lively-0", pod_status(true, None)).await;
    let running = wait_for(
        "Running once the pod is ready",
        STEP,
        phase_reason("Running", "Ready"),
    )
    .await;
    // This cluster has no VolumeSnapshot API: BackupHealthy says so, and Ready (an input of
    // the phase) does not depend on it.
    let (backup_status, backup_reason, _) =
        condition(&running, "BackupHealthy").expect("BackupHealthy is reported");
    assert_eq!(
        (backup_status.as_str(), backup_reason.as_str()),
        ("False", "SnapshotAPIUnavailable")
    );
    assert_eq!(
        condition(&running, "Ready").map(|c| c.0),
        Some("True".into()),
        "a backup problem never makes the gateway NotReady"
    );
    set_pod_status(
        admin,
        ns,
        "lively-0",
        pod_status(false, Some(("CrashLoopBackOff", None))),
    )
    .await;
    wait_for(
        "Degraded while crash-looping",
        STEP,
        phase_reason("Degraded", "CrashLoopBackOff"),
    )
    .await;
    set_pod_status(
        admin,
        ns,
        "lively-0",
        pod_status(false, Some(("CrashLoopBackOff", Some("OOMKilled")))),
    )
    .await;
    let a = wait_for("OOMKilled named", STEP, || async {
        let a = get_assistant(admin, ns, "lively").await?;
        condition(&a, "GatewayReady")?
            .2
            .contains("OOMKilled")
            .then_some(a)
    })
    .await;
    assert_eq!(a.status.unwrap().phase.unwrap().to_string(), "Degraded");
    set_pod_status(admin, ns, "lively-0", pod_status(true, None)).await;
    wait_for("Running again", STEP, phase_reason("Running", "Ready")).await;
    // One Event per transition, however many reconciles ran meanwhile.
    let mut counts = BTreeMap::new();
    for reason in ["CrashLoopBackOff", "Ready"] {
        counts.insert(reason, events_for(admin, ns, "lively", reason).await);
    }
    assert_eq!(counts["CrashLoopBackOff"], 2, "{counts:?}"); // GatewayReady and Ready turned CrashLoopBackOff once
    assert!(counts["Ready"] >= 2, "{counts:?}");
}
