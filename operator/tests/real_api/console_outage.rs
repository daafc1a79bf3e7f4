//! The console through an API server outage (issue 13): its `KubeCluster` watch cache must
//! not present last-known phases as current, and the usage sampler must bill nothing while
//! it cannot observe the cluster; after the restart both recover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawhost::config::OperatorConfig;
use clawhost::console::cluster::{Cluster, KubeCluster};
use clawhost::console::db::{Db, NewClientRecord};
use clawhost::console::service::{self, ListQuery};
use clawhost::console::{Console, ConsoleOptions, usage};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

const STEP: Duration = Duration::from_secs(60);
const CONSOLE_USER: &str = "clawhost-console";
/// How long the watch may fail before the cache counts as stale (short for the test).
const GRACE: Duration = Duration::from_secs(2);

async fn set_running(admin: &kube::Client, ns: &str, name: &str) {
    let api: Api<clawhost::api::Assistant> = Api::namespaced(admin.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "observedGeneration": 1}})),
    )
    .await
    .expect("write the status as the operator would");
}

async fn acme_phase(ctx: &Console) -> (String, Option<String>) {
    let page = service::list_clients(ctx, &ListQuery::default())
        .await
        .expect("list");
    let ok = page.cluster_error.is_none();
    let v = &page.items[0];
    (v.phase(ok).to_string(), page.cluster_error.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_outage_shows_unknown_and_bills_nothing() {
    let _one = serial().await;
    let Some(mut cp) = control_plane(false).await else {
        return;
    };
    let admin = cp.client("admin").await;
    grant_rbac(&admin, "console", CONSOLE_USER).await;
    let ns = "clients";
    namespace(&admin, ns).await;
    create_assistant(&admin, &assistant_json(ns, "acme", json!({}))).await;
    set_running(&admin, ns, "acme").await;

    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/console.sqlite", dir.path().display()))
        .await
        .unwrap();
    let cluster = Arc::new(KubeCluster::with_watch_grace(
        cp.client(CONSOLE_USER).await,
        GRACE,
    ));
    let ctx = Console::new(
        db,
        cluster.clone(),
        OperatorConfig::default(),
        ConsoleOptions {
            namespace: ns.into(),
            ..Default::default()
        },
    );
    let id = ctx
        .db
        .insert_client(
            &NewClientRecord {
                name: "Acme".into(),
                email: "it@acme.example".into(),
                billing_status: "active".into(),
                notes: String::new(),
                namespace: ns.into(),
                assistant_name: "acme".into(),
            },
            service::now(),
        )
        .await
        .unwrap();
    wait_for("acme Running in the console", STEP, || async {
        (acme_phase(&ctx).await.0 == "Running").then_some(())
    })
    .await;
    let t0 = service::now() - service::now() % 60;
    let month = service::month_of(t0);
    assert_eq!(usage::sample_once(&ctx, t0).await.unwrap(), 1);

    cp.stop_apiserver().await;
    let down = Instant::now();
    let error = wait_for("the console to show acme as Unknown", STEP, || async {
        let (phase, error) = acme_phase(&ctx).await;
        (phase == "Unknown").then_some(error)
    })
    .await;
    let noticed = down.elapsed();
    assert!(error.is_some(), "the page carries the cluster error");
    assert!(cluster.health().is_some(), "the banner shows");
    // The last-known phase stays available, marked stale.
    let page = service::list_clients(&ctx, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items[0].last_known_phase(false), Some("Running"));
    assert!(usage::sample_once(&ctx, t0 + 60).await.is_err());
    assert_eq!(ctx.db.usage_minutes(id, &month).await.unwrap(), 1);
    assert_eq!(ctx.db.sampler_gap_minutes(&month).await.unwrap(), 1);

    cp.start_apiserver().await.expect("restart the API server");
    let up = Instant::now();
    wait_for("acme Running again after the restart", STEP, || async {
        (acme_phase(&ctx).await == ("Running".to_string(), None)).then_some(())
    })
    .await;
    let recovered = up.elapsed();
    assert_eq!(usage::sample_once(&ctx, t0 + 120).await.unwrap(), 1);
    assert_eq!(ctx.db.usage_minutes(id, &month).await.unwrap(), 2);
    eprintln!(
        "console outage: Unknown {:.1} s after the API server stopped (grace {} s); current again {:.1} s after it started",
        noticed.as_secs_f64(),
        GRACE.as_secs(),
        recovered.as_secs_f64()
    );
}
