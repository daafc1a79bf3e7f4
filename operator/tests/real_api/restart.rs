//! The API server restarts under a running operator (same etcd, same certificates). The
//! operator must notice (`/readyz` 503 while it cannot watch), recover by itself (the
//! watch resumes or re-lists after `410 Gone`), reconcile what changed meanwhile and after,
//! and never apply a stale cached spec.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use serde_json::json;

use crate::support::*;

const STEP: Duration = Duration::from_secs(90);

async fn replicas(sts: &Api<StatefulSet>, name: &str) -> Option<i32> {
    sts.get_opt(name).await.ok()??.spec?.replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_recovers_from_an_api_server_restart() {
    let _one = serial().await;
    let Some(mut cp) = control_plane(false).await else {
        return;
    };
    let ns = "clients";
    let admin = operator_namespace(&cp, ns, true).await;
    create_assistant(&admin, &assistant_json(ns, "before", json!({}))).await;
    // A short resync: a stale cached spec would be re-applied within seconds.
    let op = Operator::start(&cp, Some("reconcile:\n  resyncSeconds: 5\n")).await;
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    wait_for("before to converge", STEP, || async {
        replicas(&sts, "before").await.filter(|r| *r == 1)
    })
    .await;

    cp.stop_apiserver().await;
    let down = Instant::now();
    wait_for("/readyz 503 while the API server is down", STEP, || async {
        (op.readyz().await == Some(503)).then_some(())
    })
    .await;
    let noticed = down.elapsed();
    cp.start_apiserver().await.expect("restart the API server");
    let up = Instant::now();
    wait_for("/readyz 200 after the restart", STEP, || async {
        (op.readyz().await == Some(200)).then_some(())
    })
    .await;
    let ready_again = up.elapsed();

    // New and changed Assistants reconcile after the restart.
    let admin = cp.client("admin").await;
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    create_assistant(&admin, &assistant_json(ns, "after", json!({}))).await;
    wait_for(
        "after (created after the restart) to get its StatefulSet",
        STEP,
        || async { replicas(&sts, "after").await.filter(|r| *r == 1) },
    )
    .await;
    let reconciling_again = up.elapsed();
    patch_assistant(&admin, ns, "before", json!({"spec": {"suspended": true}})).await;
    wait_for("the suspend to be applied", STEP, || async {
        replicas(&sts, "before").await.filter(|r| *r == 0)
    })
    .await;
    patch_assistant(&admin, ns, "before", json!({"spec": {"suspended": false}})).await;
    wait_for("the resume to be applied", STEP, || async {
        replicas(&sts, "before").await.filter(|r| *r == 1)
    })
    .await;
    // Several resyncs later the resumed client is still resumed: no stale spec came back.
    // Three resync periods in which nothing may happen (a window, not synchronisation).
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        replicas(&sts, "before").await,
        Some(1),
        "a stale spec suspended the client again"
    );
    let a = get_assistant(&admin, ns, "before").await.unwrap();
    assert!(observed(&a));
    assert_ne!(a.status.unwrap().phase.unwrap().to_string(), "Suspended");
    eprintln!(
        "restart: /readyz 503 {:.1} s after the API server stopped; 200 again {:.1} s after it started; new Assistant reconciled {:.1} s after",
        noticed.as_secs_f64(),
        ready_again.as_secs_f64(),
        reconciling_again.as_secs_f64()
    );
}
