//! Leader election on the real API server: three replicas started together, several
//! rounds; exactly one acquires the Lease each round, and when it is killed another takes
//! over within the lease duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::support::*;

/// Rounds in CI; `CLAWHOST_LEADER_ROUNDS=20` for the longer proof.
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
    let admin = operator_namespace(&cp, "clients", true).await;
    create_assistant(&admin, &assistant_json("clients", "alice", json!({}))).await;
    let config = format!(
        "leaderElection:\n  enabled: true\n  leaseNamespace: default\n  leaseDurationSeconds: {LEASE_SECONDS}\n"
    );
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "default");
    let rounds = std::env::var("CLAWHOST_LEADER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let mut takeovers = Vec::new();
    for round in 0..rounds {
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
        "leader: {rounds} rounds of 3 replicas, one leader each; takeover after killing the leader: mean {mean:.1} s, max {:.1} s (lease {LEASE_SECONDS} s)",
        takeovers
            .iter()
            .map(Duration::as_secs_f64)
            .fold(0.0, f64::max)
    );
}

/// A leader frozen (SIGSTOP) past its lease: another replica takes over, and after the
/// frozen one resumes — with a change waiting in its watch — it writes nothing and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_does_not_write_after_it_resumes() {
    let _one = serial().await;
    let Some(cp) = control_plane(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    // Two replicas as two users, so the audit log tells their writes apart.
    let users = ["alice", "bob"];
    for user in users {
        grant_rbac(&admin, "operator", user).await;
    }
    let ns = "clients";
    namespace(&admin, ns).await;
    auth_key_secret(&admin, ns, "ts-auth", "authkey").await;
    create_assistant(&admin, &assistant_json(ns, "alice", json!({}))).await;
    let config = format!(
        "leaderElection:\n  enabled: true\n  leaseNamespace: default\n  leaseDurationSeconds: {LEASE_SECONDS}\n"
    );
    let mut replicas: Vec<Operator> = users
        .iter()
        .map(|u| Operator::spawn_as(&cp, Some(&config), u))
        .collect();
    for r in &mut replicas {
        r.wait_serving().await;
    }
    let leader = wait_for("a leader", Duration::from_secs(60), || async {
        (0..2).find(|i| acquired(&replicas[*i]))
    })
    .await;
    let other = 1 - leader;
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    wait_for(
        "the leader to reconcile",
        Duration::from_secs(60),
        || async { sts.get_opt("alice").await.ok()? },
    )
    .await;

    replicas[leader].signal(libc::SIGSTOP);
    wait_for(
        "the other replica to take over",
        Duration::from_secs(LEASE_SECONDS * 4),
        || async { acquired(&replicas[other]).then_some(()) },
    )
    .await;
    // A change the frozen replica will see in its watch when it resumes.
    patch_assistant(&admin, ns, "alice", json!({"spec": {"suspended": true}})).await;
    wait_for(
        "the new leader to apply it",
        Duration::from_secs(60),
        || async { (sts.get("alice").await.ok()?.spec?.replicas == Some(0)).then_some(()) },
    )
    .await;
    let resumed = jiff::Timestamp::now();
    replicas[leader].signal(libc::SIGCONT);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !replicas[leader].exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "the resumed replica did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its requests still in flight reach the audit log within a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen_user = users[leader];
    let writes: Vec<_> = cp
        .audit_events()
        .into_iter()
        .filter(|e| {
            e.user.username == frozen_user
                && e.is_write()
                && e.request_received_timestamp
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|t| t >= resumed)
        })
        .collect();
    assert!(
        writes.is_empty(),
        "the resumed ex-leader wrote:\n{}",
        describe(&writes.iter().collect::<Vec<_>>())
    );
    assert!(
        replicas[leader]
            .logs()
            .contains("paused longer than a leader may be")
    );
    eprintln!("leader: a leader frozen past its lease wrote nothing after resuming and exited");
}
