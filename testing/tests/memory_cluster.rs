//! The in-memory cluster reports what the operator would write: statuses come from
//! `reconciler::status::compute`, names and hostnames from `children`.

use clawhost::api::{Assistant, Phase};
use clawhost::children::gateway_statefulset::tailscale_hostname;
use clawhost::children::{ChildNames, bounded_label};
use clawhost::config::OperatorConfig;
use clawhost::console::cluster::Cluster;
use clawhost::reconciler::status::{
    APPLIED, CONFIG_VALID, GATEWAY_READY, READY, STORAGE_READY, TAILNET_READY,
};
use clawhost_testing::memory_cluster::{DEVICE_IP, MemoryCluster, TAILNET_DOMAIN, demo_assistant};
use serde_json::json;

fn condition(a: &Assistant, type_: &str) -> (String, String) {
    let c = a
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no condition {type_}"));
    (c.status.clone(), c.reason.clone())
}

fn phase(a: &Assistant) -> Option<Phase> {
    a.status.as_ref().and_then(|s| s.phase)
}

async fn get(cluster: &MemoryCluster, name: &str) -> Assistant {
    cluster.get("clients", name).await.unwrap().unwrap()
}

#[tokio::test]
async fn seeded_fleet_has_the_operators_conditions() {
    let cluster = MemoryCluster::seeded("clients", OperatorConfig::default());
    let acme = get(&cluster, "acme-legal").await;
    assert_eq!(phase(&acme), Some(Phase::Running));
    let types: Vec<&str> = acme
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        [
            READY,
            CONFIG_VALID,
            APPLIED,
            STORAGE_READY,
            GATEWAY_READY,
            TAILNET_READY
        ]
    );
    assert_eq!(condition(&acme, READY), ("True".into(), "Ready".into()));
    let status = acme.status.as_ref().unwrap();
    let tailnet = status.tailnet.as_ref().unwrap();
    assert_eq!(tailnet.hostname.as_deref(), Some("clients-acme-legal"));
    assert_eq!(
        tailnet.url.as_deref(),
        Some(format!("https://clients-acme-legal.{TAILNET_DOMAIN}").as_str())
    );
    assert_eq!(tailnet.ips, [DEVICE_IP]);
    assert_eq!(
        status.gateway_token_secret.as_deref(),
        Some(ChildNames::new("acme-legal").gateway_token_secret.as_str())
    );
    assert_eq!(
        status.storage.as_ref().unwrap().claim_name.as_deref(),
        Some(ChildNames::new("acme-legal").data_volume.as_str())
    );

    let chen = get(&cluster, "chen-studio").await;
    assert_eq!(phase(&chen), Some(Phase::Degraded));
    assert_eq!(
        condition(&chen, READY),
        ("False".into(), "CrashLoopBackOff".into())
    );

    let okafor = get(&cluster, "dr-okafor").await;
    assert_eq!(phase(&okafor), Some(Phase::Suspended));
    assert_eq!(
        condition(&okafor, GATEWAY_READY),
        ("False".into(), "Suspended".into())
    );
    assert_eq!(
        cluster
            .gateway_log("clients", "dr-okafor", 10)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn long_names_get_the_operators_bounded_hostname() {
    let cluster = MemoryCluster::new(OperatorConfig::default());
    let name = format!("a-very-long-assistant-name-{}", "x".repeat(40));
    let a = cluster.insert(demo_assistant(
        "clients",
        &name,
        "Long",
        "l@example.com",
        "small",
    ));
    let hostname = a.status.unwrap().tailnet.unwrap().hostname.unwrap();
    assert_eq!(hostname, bounded_label(&format!("clients-{name}"), 63));
    assert!(hostname.len() <= 63);
    assert_eq!(hostname, tailscale_hostname(&get(&cluster, &name).await));
}

#[tokio::test]
async fn spec_changes_are_reconciled() {
    let cluster = MemoryCluster::seeded("clients", OperatorConfig::default());
    let a = cluster
        .patch(
            "clients",
            "acme-legal",
            json!({"spec": {"suspended": true}}),
        )
        .await
        .unwrap();
    assert_eq!(phase(&a), Some(Phase::Suspended));
    assert_eq!(a.status.as_ref().unwrap().observed_generation, Some(2));
    let a = cluster
        .patch(
            "clients",
            "dr-okafor",
            json!({"spec": {"suspended": false, "gateway": {"version": "2026.1.2"}}}),
        )
        .await
        .unwrap();
    assert_eq!(phase(&a), Some(Phase::Running));
    assert_eq!(
        a.status.unwrap().gateway_version.as_deref(),
        Some("2026.1.2")
    );
}
