//! Issue 13, "truth and money": the console shows Unknown (not last-known state) during an
//! outage and bills nothing then; the Assistant's spec.plan is the one plan; unmanaged
//! Assistants can be adopted; the usage report lists clients with 0 minutes.

use crate::console_support::*;
use clawhost::console::cluster::Cluster;
use clawhost::console::service;
use clawhost::console::usage;
use clawhost_testing::memory_cluster::demo_assistant;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// A minute boundary in 2026-09.
const T0: i64 = 1_790_000_000 - 1_790_000_000 % 60;

fn item<'a>(list: &'a Value, assistant: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["assistant"] == assistant)
        .unwrap_or_else(|| panic!("{assistant} not in {list}"))
}

fn csv_line<'a>(csv: &'a str, assistant: &str) -> Vec<&'a str> {
    csv.lines()
        .filter(|l| l.contains(&format!(",{NS}/{assistant},")))
        .collect()
}

async fn outage_shows_unknown_and_samples_nothing(app: TestApp) {
    let month = service::month_of(T0);
    assert_eq!(usage::sample_once(&app.ctx, T0).await.unwrap(), 2);
    app.cluster
        .set_unreachable(Some("dial tcp 10.0.0.1:6443: connect: connection refused"));

    // The API: no last-known phase presented as current.
    let list = app.api(Method::GET, "/api/v1/clients", None).await.json();
    assert!(list["cluster_error"].as_str().unwrap().contains("refused"));
    let acme = item(&list, "acme-legal");
    assert_eq!(acme["phase"], "Unknown", "{acme}");
    assert_eq!(acme["last_known_phase"], "Running");
    assert_eq!(acme["stale"], true);
    for i in list["items"].as_array().unwrap() {
        assert_eq!(i["phase"], "Unknown", "{i}");
    }
    // The Unknown filter matches every client now.
    let unknown = app
        .api(Method::GET, "/api/v1/clients?phase=Unknown", None)
        .await
        .json();
    assert_eq!(unknown["total"], 4, "{unknown}");
    let running = app
        .api(Method::GET, "/api/v1/clients?phase=Running", None)
        .await
        .json();
    assert_eq!(running["total"], 0, "nothing is known to run: {running}");
    let page = app.get("/clients?phase=Unknown").await.body;
    assert!(page.contains("acme-legal") && page.contains("was Running"));

    // Fleet counts Unknown, not the cached phases.
    let fleet = app.api(Method::GET, "/api/v1/fleet", None).await.json();
    assert_eq!(fleet["by_phase"], json!({"Unknown": 4}), "{fleet}");

    // The client page marks what it shows as last known.
    let id = app.client_id("acme-legal").await;
    let detail = app.get(&format!("/clients/{id}")).await.body;
    assert!(detail.contains("Instance state unavailable"));
    assert!(detail.contains("last known: Running"), "{detail}");
    assert!(
        detail.contains("Actions are unavailable while the cluster is unreachable")
            && !detail.contains("/suspend\""),
        "{detail}"
    );
    let api_detail = app
        .api(Method::GET, &format!("/api/v1/clients/{id}"), None)
        .await
        .json();
    assert_eq!(api_detail["client"]["phase"], "Unknown");

    // No minute is billed while nothing is observed; the gap is recorded and stated.
    assert!(usage::sample_once(&app.ctx, T0 + 60).await.is_err());
    assert!(usage::sample_once(&app.ctx, T0 + 120).await.is_err());
    assert_eq!(app.ctx.db.usage_minutes(id, &month).await.unwrap(), 1);
    let notice = format!(
        "usage was not sampled for 2 minutes in {month} because the cluster was unreachable"
    );
    let usage_page = app.get(&format!("/usage?month={month}")).await.body;
    assert!(usage_page.contains(&notice), "{usage_page}");
    let csv = app.get(&format!("/usage.csv?month={month}")).await.body;
    let mut csv_lines = csv.lines();
    assert!(
        csv_lines
            .next()
            .is_some_and(|h| h.starts_with("client_id,") && h.ends_with(",month_unsampled_minutes")),
        "{csv}"
    );
    assert!(csv_lines.all(|row| row.ends_with(",2")), "{csv}");
    let api_usage = app
        .api(Method::GET, &format!("/api/v1/usage?month={month}"), None)
        .await
        .json();
    assert_eq!(api_usage["unsampled_minutes"], 2);
    assert_eq!(api_usage["notice"], notice.as_str());

    // Recovery: phases are current again and minutes count again.
    app.cluster.set_unreachable(None);
    let list = app.api(Method::GET, "/api/v1/clients", None).await.json();
    assert_eq!(item(&list, "acme-legal")["phase"], "Running");
    assert_eq!(item(&list, "acme-legal")["stale"], false);
    assert_eq!(usage::sample_once(&app.ctx, T0 + 180).await.unwrap(), 2);
    assert_eq!(app.ctx.db.usage_minutes(id, &month).await.unwrap(), 2);
}

async fn kubectl_plan_change_is_what_the_console_shows(app: TestApp) {
    let month = service::month_of(T0);
    // `kubectl patch asst acme-legal --type merge -p '{"spec":{"plan":"large"}}'`
    app.cluster
        .patch(NS, "acme-legal", json!({"spec": {"plan": "large"}}))
        .await
        .unwrap();
    let list = app.api(Method::GET, "/api/v1/clients", None).await.json();
    assert_eq!(item(&list, "acme-legal")["plan"], "large");
    let large = app
        .api(Method::GET, "/api/v1/clients?plan=large", None)
        .await
        .json();
    let names: Vec<&str> = large["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["assistant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-legal", "chen-studio"], "{large}");
    let standard = app.get("/clients?plan=standard").await.body;
    assert!(!standard.contains("acme-legal") && standard.contains("dr-okafor"));
    let fleet = app.api(Method::GET, "/api/v1/fleet", None).await.json();
    assert_eq!(fleet["by_plan"]["large"], 2, "{fleet}");
    assert_eq!(fleet["by_plan"]["standard"], 1, "{fleet}");
    // The dropdown preselects the live plan, so "Change plan" cannot silently revert it.
    let id = app.client_id("acme-legal").await;
    let page = app.get(&format!("/clients/{id}")).await.body;
    assert!(
        page.contains(r#"<option value="large" selected>"#),
        "{page}"
    );
    assert!(!page.contains(r#"<option value="standard" selected>"#));
    // Usage is billed on the plan observed.
    usage::sample_once(&app.ctx, T0).await.unwrap();
    let csv = app.get(&format!("/usage.csv?month={month}")).await.body;
    assert_eq!(
        csv_line(&csv, "acme-legal"),
        [format!(
            "{id},Acme Legal LLP,it@acme-legal.example,large,active,{NS}/acme-legal,{month},1,0.02,0"
        )
        .as_str()],
        "{csv}"
    );
}

async fn change_plan_is_requested_and_billed_as_observed(app: TestApp) {
    let month = service::month_of(T0);
    let bakery = app.client_id("bakery-lund").await;
    usage::sample_once(&app.ctx, T0).await.unwrap();
    // The operator has not acted yet: the page says so, and the running plan is billed.
    app.cluster.hold_operator(true);
    let r = app
        .post(&format!("/clients/{bakery}/plan"), &[("plan", "large")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = app.get(r.location().unwrap()).await.body;
    assert!(page.contains("A plan change was requested"), "{page}");
    assert!(!page.contains("The plan was changed"));
    assert!(page.contains("not applied yet"), "{page}");
    let api = app
        .api(Method::GET, &format!("/api/v1/clients/{bakery}"), None)
        .await
        .json();
    assert_eq!(api["plan_rollout"]["state"], "pending", "{api}");
    usage::sample_once(&app.ctx, T0 + 60).await.unwrap();
    app.cluster.hold_operator(false);
    let page = app.get(&format!("/clients/{bakery}")).await.body;
    assert!(
        page.contains(r#"plan-rollout"#) && page.contains(">applied</span>"),
        "{page}"
    );
    usage::sample_once(&app.ctx, T0 + 120).await.unwrap();
    let csv = app.get(&format!("/usage.csv?month={month}")).await.body;
    let lines = csv_line(&csv, "bakery-lund");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].contains(",large,") && lines[0].contains(&format!(",{month},1,")));
    assert!(lines[1].contains(",small,") && lines[1].contains(&format!(",{month},2,")));

    // A plan the API server refuses the operator (a quota sized for the current plan):
    // shown as refused, and never billed.
    let acme = app.client_id("acme-legal").await;
    app.cluster.set_quota(
        NS,
        "acme-legal",
        "standard",
        "exceeded quota: clients-quota, requested: limits.memory=8Gi",
    );
    let r = app
        .post(&format!("/clients/{acme}/plan"), &[("plan", "large")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = app.get(r.location().unwrap()).await.body;
    assert!(page.contains("refused by the operator"), "{page}");
    assert!(
        page.contains("ApplyRefused") && page.contains("exceeded quota"),
        "{page}"
    );
    let api = app
        .api(Method::GET, &format!("/api/v1/clients/{acme}"), None)
        .await
        .json();
    assert_eq!(api["plan_rollout"]["state"], "refused", "{api}");
    usage::sample_once(&app.ctx, T0 + 180).await.unwrap();
    let csv = app.get(&format!("/usage.csv?month={month}")).await.body;
    assert!(
        csv_line(&csv, "acme-legal")
            .iter()
            .all(|l| !l.contains(",large,")),
        "{csv}"
    );
}

async fn adopt_unmanaged_assistants(app: TestApp) {
    app.cluster.insert(demo_assistant(
        NS,
        "kubectl-lab",
        "Lab Team",
        "lab@example.com",
        "small",
    ));
    let mut broken = demo_assistant(NS, "kubectl-broken", "Broken", "b@example.com", "small");
    broken.spec.plan = Some("platinum".into());
    app.cluster.insert(broken);

    let fleet = app.api(Method::GET, "/api/v1/fleet", None).await.json();
    assert_eq!(
        fleet["unmanaged"],
        json!([
            {"namespace": NS, "name": "kubectl-broken", "phase": "Failed", "owner_name": "Broken", "owner_email": "b@example.com"},
            {"namespace": NS, "name": "kubectl-lab", "phase": "Running", "owner_name": "Lab Team", "owner_email": "lab@example.com"},
        ]),
        "{fleet}"
    );
    // chen-studio (Degraded) and the Failed unmanaged one.
    assert_eq!(fleet["need_attention"], 2, "{fleet}");
    let page = app.get("/fleet").await.body;
    assert!(page.contains("/fleet/adopt?namespace=clients&amp;name=kubectl-lab"));
    assert!(
        page.contains(r#"<div class="n">2</div><div class="l">need attention"#),
        "{page}"
    );

    // Creating a client with that name points to adopt.
    let r = app
        .post("/clients", &new_client_fields("Lab", "kubectl-lab"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("adopt it from the Fleet page"),
        "{}",
        r.body
    );

    // Adopt through the page: prefilled from spec.owner; the Assistant is not touched.
    let before = app.cluster.get(NS, "kubectl-lab").await.unwrap().unwrap();
    let form = app
        .get("/fleet/adopt?namespace=clients&name=kubectl-lab")
        .await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Lab Team") && form.body.contains("lab@example.com"));
    let audits = app.audit_count().await;
    let r = app
        .post(
            "/fleet/adopt",
            &[
                ("namespace", NS),
                ("name", "kubectl-lab"),
                ("billing_status", "trial"),
                ("notes", "came from kubectl"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = app.client_id("kubectl-lab").await;
    assert_eq!(
        r.location(),
        Some(format!("/clients/{id}?done=adopted").as_str())
    );
    let rec = app.ctx.db.client(id).await.unwrap().unwrap();
    assert_eq!(
        (
            rec.name.as_str(),
            rec.email.as_str(),
            rec.billing_status.as_str(),
            rec.notes.as_str()
        ),
        ("Lab Team", "lab@example.com", "trial", "came from kubectl")
    );
    let after = app.cluster.get(NS, "kubectl-lab").await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap(),
        "adopting does not touch the Assistant"
    );
    assert_eq!(app.audit_count().await, audits + 1);
    let ev = &app.ctx.db.audit_events(Some(id), 1, 0).await.unwrap()[0];
    assert_eq!(
        (ev.action.as_str(), ev.actor.as_str()),
        ("client.adopt", "admin@example.com")
    );
    // Billed from now on.
    assert_eq!(usage::sample_once(&app.ctx, T0).await.unwrap(), 3);
    assert_eq!(
        app.ctx
            .db
            .usage_minutes(id, &service::month_of(T0))
            .await
            .unwrap(),
        1
    );

    // And through the API.
    let r = app
        .api(
            Method::POST,
            "/api/v1/clients/adopt",
            Some(json!({"namespace": NS, "name": "kubectl-broken"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let broken_id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        app.ctx
            .db
            .client(broken_id)
            .await
            .unwrap()
            .unwrap()
            .billing_status,
        "active"
    );
    let again = app
        .api(
            Method::POST,
            "/api/v1/clients/adopt",
            Some(json!({"namespace": NS, "name": "kubectl-broken"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.body.contains("already belongs to a client"));
    let missing = app
        .api(
            Method::POST,
            "/api/v1/clients/adopt",
            Some(json!({"namespace": NS, "name": "nobody"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fleet = app.api(Method::GET, "/api/v1/fleet", None).await.json();
    assert_eq!(fleet["unmanaged"], json!([]));
    assert_eq!(fleet["clients"], 6);
}

async fn usage_lists_clients_without_minutes(app: TestApp) {
    let now = service::now();
    let month = service::month_of(now);
    assert_eq!(usage::sample_once(&app.ctx, now).await.unwrap(), 2);
    let csv = app.get(&format!("/usage.csv?month={month}")).await.body;
    for zero in ["chen-studio", "dr-okafor"] {
        let lines = csv_line(&csv, zero);
        assert_eq!(lines.len(), 1, "{zero}: {csv}");
        assert!(lines[0].ends_with(&format!(",{month},0,0.00,0")), "{csv}");
    }
    assert!(
        csv_line(&csv, "dr-okafor")[0].contains(",standard,"),
        "current plan: {csv}"
    );
    let page = app.get(&format!("/usage?month={month}")).await.body;
    assert!(page.contains("Chen Design Studio") && page.contains("Dr. Okafor Clinic"));
    let api = app
        .api(Method::GET, &format!("/api/v1/usage?month={month}"), None)
        .await
        .json();
    assert_eq!(api["clients"].as_array().unwrap().len(), 4, "{api}");
    // Deleted clients stay only when they have minutes to invoice.
    for name in ["dr-okafor", "acme-legal"] {
        let id = app.client_id(name).await;
        let r = app
            .post(
                &format!("/clients/{id}/delete"),
                &[("confirm", name), ("retention", "Retain")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    let csv = app.get(&format!("/usage.csv?month={month}")).await.body;
    assert!(csv_line(&csv, "dr-okafor").is_empty(), "{csv}");
    assert_eq!(csv_line(&csv, "acme-legal").len(), 1, "{csv}");
    // A month before the clients existed lists none of them.
    let old = app.get("/usage.csv?month=2020-01").await.body;
    assert_eq!(old.lines().count(), 1, "{old}");
}

/// kubectl bypasses the console's input rules; adoption applies them.
async fn adopting_an_assistant_with_a_bidi_owner_name_is_refused(app: TestApp) {
    app.cluster.insert(demo_assistant(
        NS,
        "kubectl-rtl",
        "evil\u{202E}gnp.exe",
        "rtl@example.com",
        "small",
    ));
    let r = app
        .api(
            Method::POST,
            "/api/v1/clients/adopt",
            Some(json!({"namespace": NS, "name": "kubectl-rtl"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("spec.owner.name"), "{}", r.body);
    assert!(
        app.ctx
            .db
            .client_by_assistant(NS, "kubectl-rtl")
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(
    adopting_an_assistant_with_a_bidi_owner_name_is_refused,
    outage_shows_unknown_and_samples_nothing,
    kubectl_plan_change_is_what_the_console_shows,
    change_plan_is_requested_and_billed_as_observed,
    adopt_unmanaged_assistants,
    usage_lists_clients_without_minutes,
);
