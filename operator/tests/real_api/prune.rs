//! Pruning on the real API server: a child the operator config no longer wants (the
//! NetworkPolicy, switched off) is deleted on the next reconcile; a same-named object that
//! is not the Assistant's and the client's data volume are never touched. Also: a deleted
//! Assistant leaves the operator's phase gauge.

use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::support::*;

const STEP: Duration = Duration::from_secs(90);

/// Sum of `clawhost_assistants{phase=…}` in the operator's metrics.
async fn assistants_gauge(op: &Operator) -> i64 {
    op.metrics_text()
        .await
        .lines()
        .filter(|l| l.starts_with("clawhost_assistants{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

async fn volume_uids(pvcs: &Api<PersistentVolumeClaim>) -> Vec<String> {
    pvcs.list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.metadata.uid.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_no_longer_desired_are_pruned_and_the_volume_is_kept() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let ns = "clients";
    let admin = operator_namespace(&cp, ns, true).await;
    for name in ["alice", "bob"] {
        create_assistant(&admin, &assistant_json(ns, name, json!({}))).await;
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);

    // 1. NetworkPolicies on (the default): every Assistant gets one.
    let resync = "reconcile:\n  resyncSeconds: 5\n";
    let mut op = Operator::start(&cp, Some(resync)).await;
    for name in ["alice", "bob"] {
        wait_for(&format!("{name}'s NetworkPolicy"), STEP, || async {
            policies.get_opt(&format!("{name}-gateway")).await.ok()?
        })
        .await;
    }
    wait_for("the phase gauge to count both", STEP, || async {
        (assistants_gauge(&op).await == 2).then_some(())
    })
    .await;
    assert_eq!(op.terminate(Duration::from_secs(30)), Some(0));
    // bob's policy is replaced by a hand-made one of the same name (no clawhost labels).
    policies
        .delete("bob-gateway", &DeleteParams::default())
        .await
        .unwrap();
    let foreign = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "bob-gateway", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    policies
        .create(
            &Default::default(),
            &serde_json::from_value(foreign).unwrap(),
        )
        .await
        .unwrap();
    let volumes_before = volume_uids(&pvcs).await;
    assert_eq!(volumes_before.len(), 2, "both data volumes exist");

    // 2. NetworkPolicies off: the operator prunes alice's, leaves the foreign one.
    let since = jiff::Timestamp::now();
    let mut op = Operator::start(
        &cp,
        Some(&format!("{resync}networkPolicy:\n  enabled: false\n")),
    )
    .await;
    let deadline = std::time::Instant::now() + STEP;
    while policies.get_opt("alice-gateway").await.unwrap().is_some() {
        if std::time::Instant::now() > deadline {
            let logs = op.logs();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            let status = get_assistant(&admin, ns, "alice").await.map(|a| a.status);
            let metrics = op.metrics_text().await;
            panic!(
                "alice's NetworkPolicy was not pruned within {STEP:?}\nalice's status: {status:?}\nmetrics:\n{}\nthe operator's last log lines:\n{}",
                metrics
                    .lines()
                    .filter(|l| l.starts_with("clawhost_"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Several resyncs later: still exactly one delete, the foreign policy and both volumes
    // are there, and both Assistants are still reconciled.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let deletes: Vec<_> = operator_requests(&cp, since)
        .into_iter()
        .filter(|e| e.verb == "delete")
        .collect();
    let described: Vec<_> = deletes.iter().collect();
    assert_eq!(
        deletes.len(),
        1,
        "one delete, of alice's policy:\n{}",
        describe(&described)
    );
    assert_eq!(deletes[0].resource(), "networkpolicies");
    assert_eq!(deletes[0].name(), "alice-gateway");
    assert!(
        policies.get_opt("bob-gateway").await.unwrap().is_some(),
        "a NetworkPolicy that is not the Assistant's is never pruned"
    );
    let volumes_after = volume_uids(&pvcs).await;
    assert_eq!(
        volumes_after, volumes_before,
        "prune never touches a volume"
    );
    let metrics = op.metrics_text().await;
    assert!(
        metrics
            .contains(r#"clawhost_child_applies_total{kind="NetworkPolicy",outcome="pruned"} 1"#),
        "pruned counter:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("child_applies"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // 3. A deleted Assistant leaves the phase gauge (and its volume stays: Retain).
    wait_for("the phase gauge to count both", STEP, || async {
        (assistants_gauge(&op).await == 2).then_some(())
    })
    .await;
    let assistants: Api<clawhost::api::Assistant> = Api::namespaced(admin.clone(), ns);
    assistants
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("alice to be gone", STEP, || async {
        get_assistant(&admin, ns, "alice")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    wait_for("the phase gauge to forget alice", STEP, || async {
        (assistants_gauge(&op).await == 1).then_some(())
    })
    .await;
    assert!(
        pvcs.get_opt("alice-data").await.unwrap().is_some(),
        "Retain keeps the volume"
    );
    assert_eq!(op.terminate(Duration::from_secs(30)), Some(0));
}
