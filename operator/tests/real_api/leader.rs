//! Leader election on the real API server: three replicas started together, several
//! rounds; exactly one acquires the Lease each round, and when it is killed another takes
//! over within the lease duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::support::*;

const ROUNDS: usize = 5;
const LEASE_SECONDS: u64 = 8;
const ACQUIRED: &str = "acquired the leader lease";

fn acquired(op: &Operator) -> bool {
    op.logs().contains(ACQUIRED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_three_replicas_leads() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    grant_operator_rbac(&admin).await;
    namespace(&admin, "clients").await;
    auth_key_secret(&admin, "clients", "ts-auth", "authkey").await;
    create_assistant(&admin, &assistant_json("clients", "alice", json!({}))).await;
    let config = format!(
        "leaderElection:\n  enabled: true\n  leaseNamespace: default\n  leaseDurationSeconds: {LEASE_SECONDS}\n"
    );
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "default");
    let mut takeovers = Vec::new();
    for round in 0..ROUNDS {
        let _ = leases
            .delete("clawhost-operator", &DeleteParams::default())
            .await;
        // Started at the same instant, as a Deployment's replicas are.
        let mut replicas: Vec<Operator> = (0..3)
            .map(|_| Operator::spawn(&cp, Some(&config)))
            .collect();
        for r in &mut replicas {
            r.wait_serving().await;
        }
        wait_for("a leader", Duration::from_secs(60), || async {
            replicas.iter().any(acquired).then_some(())
        })
        .await;
        // Longer than a lease period: a second replica that wrongly believed it led would
        // have said so by now.
        tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 2)).await;
        let leaders: Vec<usize> = (0..3).filter(|i| acquired(&replicas[*i])).collect();
        assert_eq!(
            leaders.len(),
            1,
            "round {round}: replicas {leaders:?} all acquired the lease"
        );
        let holder = leases
            .get("clawhost-operator")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity;
        eprintln!("leader: round {round}: one leader ({holder:?})");

        // The leader dies: another takes over within the lease duration (plus renewal).
        let killed = Instant::now();
        replicas[leaders[0]].kill();
        let next = wait_for(
            "a new leader",
            Duration::from_secs(LEASE_SECONDS * 4),
            || async { (0..3).find(|i| *i != leaders[0] && acquired(&replicas[*i])) },
        )
        .await;
        takeovers.push(killed.elapsed());
        let others = (0..3)
            .filter(|i| *i != leaders[0] && *i != next && acquired(&replicas[*i]))
            .count();
        assert_eq!(others, 0, "round {round}: two replicas took over");
    }
    let mean = takeovers.iter().map(Duration::as_secs_f64).sum::<f64>() / takeovers.len() as f64;
    eprintln!(
        "leader: {ROUNDS} rounds of 3 replicas, one leader each; takeover after killing the leader: mean {mean:.1} s, max {:.1} s (lease {LEASE_SECONDS} s)",
        takeovers
            .iter()
            .map(Duration::as_secs_f64)
            .fold(0.0, f64::max)
    );
}
