//! Backups in the console (issue 16): the Backups card (health, snapshots, restore buttons,
//! retained volumes, the restored banner), "Back up now", the in-place restore's confirm
//! flow and its refusals, "Restore as new client", Fleet → Backups and its ordering, the
//! delete page's final-snapshot note and "delete without final snapshot", the JSON API with
//! its scopes, and the audit entries. On SQLite and PostgreSQL.

use crate::console_support::{NS, TestApp, new_client_fields};
use clawhost::api::{
    BACKUP_REQUEST_ANNOTATION, BackupStatus, SKIP_FINAL_SNAPSHOT_ANNOTATION,
    SUSPENDED_REASON_ANNOTATION, SnapshotKind, parse_backup_request,
};
use clawhost::children::data_claim_name;
use clawhost::console::cluster::{Cluster, RetainedClaim};
use clawhost::console::db::{AuditEvent, NewClientRecord};
use clawhost::console::{auth, service};
use clawhost_testing::memory_cluster::demo_snapshot;
use http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

both_backends!(
    backups_card_shows_health_snapshots_and_restore_buttons,
    back_up_now_sets_the_request_annotation_and_audits,
    restore_in_place_confirm_flow_keeps_the_old_volume,
    restore_refuses_other_clients_unready_and_unknown_snapshots,
    restore_as_new_client_prefills_and_sets_restore_from,
    fleet_backups_lists_clients_without_a_backup_first,
    delete_page_says_final_snapshot_and_offers_skip_when_it_fails,
    api_lists_requests_and_restores_with_scopes,
    back_up_now_clicks_in_one_second_are_distinct_requests,
    restore_in_place_refuses_what_the_operator_would_refuse,
    restore_as_new_client_checks_the_snapshot_and_fits_its_size,
    retained_volumes_of_an_earlier_assistant_are_listed_apart,
    fleet_backups_missing_is_the_operators_verdict,
);

async fn audit_of(app: &TestApp, action: &str) -> Vec<AuditEvent> {
    app.ctx
        .db
        .audit_events(None, 10_000, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

fn after(e: &AuditEvent) -> serde_json::Value {
    serde_json::from_str(e.after.as_deref().unwrap_or("null")).unwrap()
}

async fn assistant(app: &TestApp, name: &str) -> clawhost::api::Assistant {
    app.cluster.get(NS, name).await.unwrap().unwrap()
}

/// Backup status and health as the operator would report them, the last snapshot
/// `hours_ago` (none when `None`).
fn set_health(
    app: &TestApp,
    name: &str,
    hours_ago: Option<i64>,
    health: (&'static str, &'static str, &str),
) {
    let last = hours_ago.map(|h| Timestamp::now() - SignedDuration::from_hours(h));
    let status = BackupStatus {
        last_snapshot: last.map(|_| format!("{name}-last")),
        last_snapshot_time: last.map(|t| t.to_string()),
        next_run: Some("2030-01-01T03:00:00Z".into()),
        ..Default::default()
    };
    app.cluster.set_backup(
        NS,
        name,
        Some((status, (health.0, health.1, health.2.to_string()))),
    );
}

async fn backups_card_shows_health_snapshots_and_restore_buttons(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let acme = app.client_id("acme-legal").await;
    let page = app.get(&format!("/clients/{acme}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    assert!(b.contains("id=\"backups\""), "the Backups card");
    assert!(b.contains("SnapshotReady"), "BackupHealthy reason");
    assert!(b.contains("id=\"backup-now\""), "Back up now button");
    assert!(b.contains("Next run"));
    let snaps = app
        .cluster
        .snapshots(
            NS,
            assistant(&app, "acme-legal")
                .await
                .metadata
                .uid
                .as_deref()
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snaps.len(), 4);
    assert!(
        snaps.windows(2).all(|w| w[0].taken >= w[1].taken),
        "newest first"
    );
    for s in &snaps {
        assert!(b.contains(&s.name), "{} listed", s.name);
        assert!(
            b.contains(&format!("/clients/{acme}/backups/{}/restore", s.name)),
            "Restore here on the ready {}",
            s.name
        );
        assert!(
            b.contains(&format!(
                "/clients/new?restoreFrom={}&amp;from={acme}",
                s.name
            )),
            "Restore as new client on {}",
            s.name
        );
    }
    // Kinds and states are columns.
    assert!(b.contains(">manual<") && b.contains(">scheduled<"));

    // A failed snapshot says why and offers no restore.
    let bakery = app.client_id("bakery-lund").await;
    let b = app.get(&format!("/clients/{bakery}")).await.body;
    assert!(b.contains("SnapshotFailed") && b.contains("snapshot quota exceeded"));
    assert!(b.contains(">Failed<"));
    let uid = assistant(&app, "bakery-lund").await.metadata.uid.unwrap();
    let list = app.cluster.snapshots(NS, &uid).await.unwrap().unwrap();
    let failed = list.iter().find(|s| s.error.is_some()).unwrap();
    assert!(!b.contains(&format!("/backups/{}/restore", failed.name)));

    // Retained volumes are listed.
    let acme_uid = assistant(&app, "acme-legal").await.metadata.uid.unwrap();
    app.cluster.add_retained_claim(
        NS,
        "acme-legal",
        RetainedClaim {
            name: "acme-legal-data-0badc0de".into(),
            uid: "u1".into(),
            capacity: Some("8Gi".into()),
            retained_from: Some(format!("{NS}/acme-legal")),
            replaced_by: Some("acme-legal-data".into()),
            restored_from: None,
            created: Some("2026-11-01T10:00:00Z".into()),
            assistant_uid: Some(acme_uid.clone()),
            owner_email: Some("it@acme-legal.example".into()),
        },
    );
    let b = app.get(&format!("/clients/{acme}")).await.body;
    assert!(b.contains("Retained volumes") && b.contains("acme-legal-data-0badc0de"));
    assert!(!b.contains("id=\"retained-other\""));

    // Without the VolumeSnapshot API the card says so; the page still renders.
    app.cluster.set_snapshot_api(false);
    let page = app.get(&format!("/clients/{acme}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("no VolumeSnapshot API"));
    assert!(!page.body.contains("id=\"snapshots\""));
}

async fn back_up_now_sets_the_request_annotation_and_audits(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let id = app.client_id("acme-legal").await;
    let uid = assistant(&app, "acme-legal").await.metadata.uid.unwrap();
    let before = app
        .cluster
        .snapshots(NS, &uid)
        .await
        .unwrap()
        .unwrap()
        .len();
    let r = app.post(&format!("/clients/{id}/backups"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location(),
        Some(format!("/clients/{id}?done=backup-requested").as_str())
    );
    let a = assistant(&app, "acme-legal").await;
    let value = a.metadata.annotations.as_ref().unwrap()[BACKUP_REQUEST_ANNOTATION].clone();
    let (kind, at) = parse_backup_request(&value).expect("a request the operator acts on");
    assert_eq!(kind, SnapshotKind::Manual);
    let at: Timestamp = at.parse().expect("an RFC 3339 time");
    assert!(Timestamp::now().duration_since(at).abs() < SignedDuration::from_secs(60));
    let ev = audit_of(&app, "backup.requested").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(after(&ev[0])["request"], value);
    assert_eq!(ev[0].client_id, Some(id));
    // The simulated operator took it; the card lists it.
    let list = app.cluster.snapshots(NS, &uid).await.unwrap().unwrap();
    assert_eq!(list.len(), before + 1);
    let page = app
        .get(&format!("/clients/{id}?done=backup-requested"))
        .await;
    assert!(page.body.contains("A snapshot was requested"));
    assert!(page.body.contains(&list[0].name));

    // A second click is a second request (a value is acted on once).
    let r = app.post(&format!("/clients/{id}/backups"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let second = assistant(&app, "acme-legal")
        .await
        .metadata
        .annotations
        .unwrap()[BACKUP_REQUEST_ANNOTATION]
        .clone();
    assert_ne!(second, value);

    // Backups off for the client: refused, nothing written, nothing audited.
    app.cluster
        .patch(
            NS,
            "acme-legal",
            json!({"spec": {"backup": {"enabled": false}}}),
        )
        .await
        .unwrap();
    let writes = app.cluster.writes();
    let r = app.post(&format!("/clients/{id}/backups"), &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("backups are off"));
    assert_eq!(app.cluster.writes(), writes);
    assert_eq!(audit_of(&app, "backup.requested").await.len(), 2);
}

async fn restore_in_place_confirm_flow_keeps_the_old_volume(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let id = app.client_id("acme-legal").await;
    let uid = assistant(&app, "acme-legal").await.metadata.uid.unwrap();
    let snap = app.cluster.snapshots(NS, &uid).await.unwrap().unwrap()[1].clone();
    let path = format!("/clients/{id}/backups/{}/restore", snap.name);
    let page = app.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for says in [
        "is suspended",
        "A new volume is made from the snapshot",
        "acme-legal-data",
        "kept, labelled retained",
        "once the new claim",
        "status.storage.claimName",
        "then wait for Ready",
        "A pre-restore snapshot of it is taken too (crash-consistent",
        "name=\"confirm\"",
    ] {
        assert!(page.body.contains(says), "confirm page says {says:?}");
    }
    // A wrong confirmation: the page again, nothing written.
    let writes = app.cluster.writes();
    let r = app.post(&path, &[("confirm", "acme")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("to confirm the restore"));
    assert_eq!(app.cluster.writes(), writes);

    let r = app.post(&path, &[("confirm", "acme-legal")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location(),
        Some(format!("/clients/{id}?done=restored").as_str())
    );
    let a = assistant(&app, "acme-legal").await;
    assert!(a.spec.suspended);
    let from = a.storage().restore_from.unwrap();
    assert_eq!(from.volume_snapshot_name, snap.name);
    let new_claim = data_claim_name("acme-legal", Some(&from));
    let ev = audit_of(&app, "backup.restored_in_place").await;
    assert_eq!(ev.len(), 1);
    let after = after(&ev[0]);
    assert_eq!(after["restore_from"], snap.name.as_str());
    assert_eq!(after["claim"], new_claim.as_str());
    assert_eq!(after["previous_claim_kept"], "acme-legal-data");

    // The banner: restored from X, the previous volume kept, Resume offered.
    let b = app.get(&format!("/clients/{id}")).await.body;
    assert!(b.contains("id=\"restored-banner\""));
    assert!(b.contains(&format!("Restored from <code>{}</code>", snap.name)));
    assert!(b.contains("the previous volume <code>acme-legal-data</code> is kept (retained)"));
    assert!(b.contains(&format!(
        "Resume once the new claim <code>{new_claim}</code> exists (status.storage.claimName names it), then wait for Ready"
    )));
    let banner = &b[b.find("restored-banner").unwrap()..];
    let banner = &banner[..banner.find("</div>").unwrap()];
    assert!(
        !banner.contains("StorageReady"),
        "not a condition a suspended client reaches on a WaitForFirstConsumer class"
    );
    assert!(
        banner.contains(&format!("/clients/{id}/resume")),
        "Resume in the banner"
    );
    assert!(b.contains("Retained volumes") && b.contains(&new_claim));

    // The events panel follows the volume to the restored claim.
    app.cluster.add_event(
        NS,
        "PersistentVolumeClaim",
        &new_claim,
        "Warning",
        "ProvisioningFailed",
        "waiting for the snapshot content to be restored",
    );
    let b = app.get(&format!("/clients/{id}")).await.body;
    assert!(b.contains("waiting for the snapshot content to be restored"));
    assert!(b.contains(&format!("PersistentVolumeClaim/{new_claim}")));

    // Restoring the same snapshot again is refused.
    let r = app.post(&path, &[("confirm", "acme-legal")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Suspended by billing: the banner has no Resume button.
    app.cluster
        .patch(
            NS,
            "acme-legal",
            json!({"metadata": {"annotations": {SUSPENDED_REASON_ANNOTATION: "NonPayment"}}}),
        )
        .await
        .unwrap();
    let b = app.get(&format!("/clients/{id}")).await.body;
    let banner = &b[b.find("restored-banner").unwrap()..];
    let banner = &banner[..banner.find("</div>").unwrap()];
    assert!(!banner.contains("/resume"), "{banner}");
    assert!(banner.contains("suspended by billing"));
}

async fn restore_refuses_other_clients_unready_and_unknown_snapshots(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let acme = app.client_id("acme-legal").await;
    let bakery = app.client_id("bakery-lund").await;
    let bakery_uid = assistant(&app, "bakery-lund").await.metadata.uid.unwrap();
    let list = app
        .cluster
        .snapshots(NS, &bakery_uid)
        .await
        .unwrap()
        .unwrap();
    let theirs = list.iter().find(|s| s.ready).unwrap().name.clone();
    let failed = list
        .iter()
        .find(|s| s.error.is_some())
        .unwrap()
        .name
        .clone();
    let writes = app.cluster.writes();
    // Another client's snapshot, by this client's route.
    for (id, snap, status, says) in [
        (
            acme,
            theirs.as_str(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "is not a snapshot of acme-legal",
        ),
        (
            acme,
            "acme-legal-19990101-030000-scheduled",
            StatusCode::UNPROCESSABLE_ENTITY,
            "is not a snapshot of",
        ),
        (
            bakery,
            failed.as_str(),
            StatusCode::CONFLICT,
            "only a ready snapshot can be restored",
        ),
    ] {
        let path = format!("/clients/{id}/backups/{snap}/restore");
        let page = app.get(&path).await;
        assert_eq!(page.status, status, "GET {path}: {}", page.body);
        assert!(page.body.contains(says), "GET {path}: {}", page.body);
        let confirm = if id == acme {
            "acme-legal"
        } else {
            "bakery-lund"
        };
        let r = app.post(&path, &[("confirm", confirm)]).await;
        assert_eq!(r.status, status, "POST {path}");
        assert!(r.body.contains(says));
    }
    // A pending one.
    app.cluster.add_snapshot(
        NS,
        "acme-legal",
        demo_snapshot(
            "acme-legal",
            SnapshotKind::Manual,
            Timestamp::now(),
            false,
            None,
            None,
        ),
    );
    let uid = assistant(&app, "acme-legal").await.metadata.uid.unwrap();
    let pending = app.cluster.snapshots(NS, &uid).await.unwrap().unwrap()[0].clone();
    assert!(!pending.ready);
    let r = app
        .post(
            &format!("/clients/{acme}/backups/{}/restore", pending.name),
            &[("confirm", "acme-legal")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("is not ready to use yet"));
    // No snapshot API at all.
    app.cluster.set_snapshot_api(false);
    let r = app
        .get(&format!("/clients/{acme}/backups/{theirs}/restore"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("no VolumeSnapshot API"));
    assert_eq!(app.cluster.writes(), writes, "refusals write nothing");
    assert!(audit_of(&app, "backup.restored_in_place").await.is_empty());
    assert!(!assistant(&app, "acme-legal").await.spec.suspended);
}

async fn restore_as_new_client_prefills_and_sets_restore_from(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let id = app.client_id("acme-legal").await;
    let uid = assistant(&app, "acme-legal").await.metadata.uid.unwrap();
    let snap = app.cluster.snapshots(NS, &uid).await.unwrap().unwrap()[0]
        .name
        .clone();
    let page = app
        .get(&format!("/clients/new?restoreFrom={snap}&from={id}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    assert!(b.contains("id=\"restore-from\""));
    assert!(b.contains(&format!(
        "<input type=\"hidden\" name=\"restore_from\" value=\"{snap}\">"
    )));
    assert!(
        b.contains("value=\"Acme Legal LLP\""),
        "owner name pre-filled"
    );
    assert!(
        b.contains("value=\"it@acme-legal.example\""),
        "e-mail pre-filled"
    );
    assert!(
        b.contains("<option value=\"standard\" selected>"),
        "plan pre-filled"
    );
    // Without the query the form has no restore line.
    assert!(!app.get("/clients/new").await.body.contains("restore-from"));

    assert!(
        b.contains(&format!(
            "<input type=\"hidden\" name=\"from\" value=\"{id}\">"
        )),
        "the form carries the client the snapshot is of"
    );
    let from = id.to_string();
    let mut fields = new_client_fields("Acme Legal (restored)", "acme-restored");
    fields.push(("restore_from", snap.as_str()));
    fields.push(("from", from.as_str()));
    let r = app.post("/clients", &fields).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let a = assistant(&app, "acme-restored").await;
    assert_eq!(a.storage().restore_from.unwrap().volume_snapshot_name, snap);
    let ev = audit_of(&app, "client.create").await;
    let created = ev
        .iter()
        .find(|e| e.target.ends_with("/acme-restored"))
        .expect("audited");
    assert_eq!(after(created)["assistant"]["restore_from"], snap.as_str());

    // Restored as new, later suspended (billing): no "restored in place" banner, since no
    // retained claim was replaced by its volume.
    app.cluster
        .patch(NS, "acme-restored", json!({"spec": {"suspended": true}}))
        .await
        .unwrap();
    let restored_id = app.client_id("acme-restored").await;
    let b = app.get(&format!("/clients/{restored_id}")).await.body;
    assert!(b.contains("id=\"backups\""));
    assert!(
        !b.contains("restored-banner"),
        "no banner for a client restored as new"
    );

    // Not a snapshot name: the form again, with the line and the message.
    let mut fields = new_client_fields("Bad", "acme-bad");
    fields.push(("restore_from", "Not_A_Name"));
    let r = app.post("/clients", &fields).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("is not a VolumeSnapshot name"));
    assert!(app.cluster.get(NS, "acme-bad").await.unwrap().is_none());
}

/// The names of the fleet page's rows, in order.
fn row_order(body: &str, names: &[&str]) -> Vec<String> {
    let table = &body[body.find("id=\"fleet-backups\"").expect("the table")..];
    let mut found: Vec<(usize, String)> = names
        .iter()
        .filter_map(|n| {
            table
                .find(&format!("/{n}</code>"))
                .map(|i| (i, n.to_string()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

async fn fleet_backups_lists_clients_without_a_backup_first(app: TestApp) {
    let r = app
        .post("/clients", &new_client_fields("Newer Ltd", "newer-ltd"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    set_health(
        &app,
        "acme-legal",
        Some(1),
        ("True", "SnapshotReady", "acme is ready"),
    );
    set_health(
        &app,
        "bakery-lund",
        Some(20),
        ("False", "SnapshotFailed", "bakery failed: quota"),
    );
    // chen-studio: no snapshot at all since it was created.
    set_health(
        &app,
        "chen-studio",
        None,
        (
            "False",
            "SnapshotMissing",
            "no ready snapshot since the Assistant was created",
        ),
    );
    set_health(
        &app,
        "dr-okafor",
        Some(6 * 24),
        ("True", "Suspended", "suspended: no scheduled snapshots"),
    );
    set_health(
        &app,
        "newer-ltd",
        Some(3 * 24),
        (
            "False",
            "SnapshotMissing",
            "no ready snapshot since then (window 48h)",
        ),
    );
    assert!(assistant(&app, "dr-okafor").await.spec.suspended);

    let page = app.get("/fleet/backups").await;
    assert_eq!(page.status, StatusCode::OK);
    let all = [
        "acme-legal",
        "bakery-lund",
        "chen-studio",
        "dr-okafor",
        "newer-ltd",
    ];
    // (1) none in 48 h, oldest (none) first; (2) unhealthy; (3) the rest, oldest first:
    // the suspended clinic is not "missing" (nothing writes its volume).
    assert_eq!(
        row_order(&page.body, &all),
        [
            "chen-studio",
            "newer-ltd",
            "bakery-lund",
            "dr-okafor",
            "acme-legal"
        ]
    );
    assert!(
        page.body.contains("bakery failed: quota"),
        "reason and message"
    );
    assert!(page.body.contains("2030-01-01 03:00 UTC"), "next run");
    assert!(page.body.contains("3d ago"), "the age of the last snapshot");
    assert!(page.body.contains("none in 48 h"));

    // The same through the API.
    let j = app
        .api(Method::GET, "/api/v1/fleet/backups", None)
        .await
        .json();
    let names: Vec<&str> = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["assistant_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chen-studio",
            "newer-ltd",
            "bakery-lund",
            "dr-okafor",
            "acme-legal"
        ]
    );
    assert_eq!(j["missing"], 2);

    // The Fleet page counts them and links here.
    let fleet = app.get("/fleet").await.body;
    let stat = &fleet[fleet.find("id=\"backups-missing\"").expect("the count")..];
    assert!(stat.starts_with("id=\"backups-missing\" href=\"/fleet/backups\""));
    assert!(stat.contains(">2<") && stat.contains("clients without a backup in 48 h"));
    assert_eq!(
        app.api(Method::GET, "/api/v1/fleet", None).await.json()["without_backup_48h"],
        2
    );

    // Backups off for chen-studio: it no longer counts as missing.
    app.cluster
        .patch(
            NS,
            "chen-studio",
            json!({"spec": {"backup": {"enabled": false}}}),
        )
        .await
        .unwrap();
    let j = app
        .api(Method::GET, "/api/v1/fleet/backups", None)
        .await
        .json();
    assert_eq!(j["missing"], 1);
}

async fn delete_page_says_final_snapshot_and_offers_skip_when_it_fails(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    // Retain: no final snapshot to mention.
    let page = app.get(&format!("/clients/{id}/delete")).await;
    assert!(!page.body.contains("final-snapshot-note"));
    app.cluster
        .patch(
            NS,
            "acme-legal",
            json!({"spec": {"storage": {"onDelete": "Delete"}}}),
        )
        .await
        .unwrap();
    let page = app.get(&format!("/clients/{id}/delete")).await;
    assert!(page.body.contains("id=\"final-snapshot-note\""));
    assert!(
        page.body
            .contains("a final snapshot of the volume is taken first")
    );
    assert!(!page.body.contains("Delete without final snapshot"));
    // Not offered while the final snapshot has not failed: refused if forced.
    let writes = app.cluster.writes();
    let r = app
        .post(
            &format!("/clients/{id}/delete"),
            &[("skip_final_snapshot", "true"), ("confirm", "acme-legal")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(app.cluster.writes(), writes);

    set_health(
        &app,
        "acme-legal",
        Some(1),
        (
            "False",
            "FinalSnapshotFailed",
            "final snapshot acme-legal-20261203-101500-final failed: driver error; to delete without it annotate clawhost.dev/skip-final-snapshot=true",
        ),
    );
    let page = app.get(&format!("/clients/{id}/delete")).await;
    assert!(page.body.contains("id=\"final-snapshot-failed\""));
    assert!(page.body.contains("driver error"));
    assert!(page.body.contains("Delete without final snapshot"));
    // The confirmation is required.
    let r = app
        .post(
            &format!("/clients/{id}/delete"),
            &[("skip_final_snapshot", "true"), ("confirm", "nope")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post(
            &format!("/clients/{id}/delete"),
            &[("skip_final_snapshot", "true"), ("confirm", "acme-legal")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = assistant(&app, "acme-legal").await;
    assert_eq!(
        a.metadata.annotations.unwrap()[SKIP_FINAL_SNAPSHOT_ANNOTATION],
        "true"
    );
    let ev = audit_of(&app, "backup.skip_final_snapshot").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].client_id, Some(id));
}

async fn token_with(app: &TestApp, scopes: &str) -> String {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
    app.ctx
        .db
        .create_scoped_api_token(
            app.admin,
            scopes,
            &auth::token_hash(&token),
            "chk_",
            scopes,
            None,
            service::now(),
        )
        .await
        .unwrap();
    token
}

async fn api_as(
    app: &TestApp,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<serde_json::Value>,
) -> crate::console_support::Resp {
    let mut r = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    let b = match body {
        Some(v) => {
            r = r.header("content-type", "application/json");
            axum::body::Body::from(v.to_string())
        }
        None => axum::body::Body::empty(),
    };
    app.send(r.body(b).unwrap()).await
}

async fn api_lists_requests_and_restores_with_scopes(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let id = app.client_id("bakery-lund").await;
    let j = app
        .api(Method::GET, &format!("/api/v1/clients/{id}/backups"), None)
        .await
        .json();
    assert_eq!(j["snapshot_api"], true);
    let snaps = j["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[0]["state"], "Failed", "newest first: the failing one");
    assert!(snaps[0]["error"].as_str().unwrap().contains("quota"));
    assert_eq!(snaps[1]["state"], "Ready");
    assert_eq!(j["health"]["reason"], "SnapshotFailed");
    let ready = snaps[1]["name"].as_str().unwrap().to_string();

    // A read-only token reads but cannot act.
    let read = token_with(&app, "clients:read").await;
    let r = api_as(
        &app,
        &read,
        Method::GET,
        &format!("/api/v1/clients/{id}/backups"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api_as(
        &app,
        &read,
        Method::POST,
        &format!("/api/v1/clients/{id}/backups"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api_as(
        &app,
        &read,
        Method::POST,
        &format!("/api/v1/clients/{id}/backups/{ready}/restore"),
        Some(json!({"confirm": "bakery-lund"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let write = token_with(&app, "clients:read clients:write").await;
    let r = api_as(
        &app,
        &write,
        Method::POST,
        &format!("/api/v1/clients/{id}/backups"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let value = r.json()["request"].as_str().unwrap().to_string();
    assert!(value.starts_with("snapshot:"));
    assert_eq!(
        assistant(&app, "bakery-lund")
            .await
            .metadata
            .annotations
            .unwrap()[BACKUP_REQUEST_ANNOTATION],
        value
    );
    // Refusals: the wrong confirmation, an unknown snapshot.
    let r = api_as(
        &app,
        &write,
        Method::POST,
        &format!("/api/v1/clients/{id}/backups/{ready}/restore"),
        Some(json!({"confirm": "x"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["problems"][0]["field"], "confirm");
    let r = api_as(
        &app,
        &write,
        Method::POST,
        &format!("/api/v1/clients/{id}/backups/nope/restore"),
        Some(json!({"confirm": "bakery-lund"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api_as(
        &app,
        &write,
        Method::POST,
        &format!("/api/v1/clients/{id}/backups/{ready}/restore"),
        Some(json!({"confirm": "bakery-lund"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let a = assistant(&app, "bakery-lund").await;
    assert!(a.spec.suspended);
    assert_eq!(
        a.storage().restore_from.unwrap().volume_snapshot_name,
        ready
    );
    assert_eq!(audit_of(&app, "backup.restored_in_place").await.len(), 1);
    assert_eq!(audit_of(&app, "backup.requested").await.len(), 1);
    let j = app
        .api(Method::GET, &format!("/api/v1/clients/{id}/backups"), None)
        .await
        .json();
    assert_eq!(j["restored"]["snapshot"], ready.as_str());
    assert_eq!(j["restored"]["previous_claim"], "bakery-lund-data");
}

/// Three clicks at once: three distinct requests, each to the nanosecond (the operator acts
/// on a value once; a value at whole seconds repeated the first click's on the third).
async fn back_up_now_clicks_in_one_second_are_distinct_requests(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let id = app.client_id("acme-legal").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = app.post(&format!("/clients/{id}/backups"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let v = assistant(&app, "acme-legal")
            .await
            .metadata
            .annotations
            .unwrap()[BACKUP_REQUEST_ANNOTATION]
            .clone();
        assert!(
            !seen.contains(&v),
            "{v} repeats an earlier request: {seen:?}"
        );
        seen.push(v);
    }
    // Never back in time nor equal, even with the clock at the previous request's second.
    let first = seen[0].clone();
    let (_, t) = parse_backup_request(&first).unwrap();
    let t: Timestamp = t.parse().unwrap();
    let whole = Timestamp::from_second(t.as_second()).unwrap();
    for at in [whole, t] {
        let next = service::backups::unique_request(Some(&first), at);
        assert_ne!(next, first);
        let (_, n) = parse_backup_request(&next).unwrap();
        assert!(n.parse::<Timestamp>().unwrap() > t, "{next} after {first}");
    }
}

/// The operator refuses restoreFrom with adoptRetainedVolume, and a restore to a claim kept
/// retained by an earlier restore (S1, S2, S1 again): the console refuses them (409) before
/// its patch suspends the client, and says what to do instead.
async fn restore_in_place_refuses_what_the_operator_would_refuse(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let id = app.client_id("acme-legal").await;
    let uid = assistant(&app, "acme-legal").await.metadata.uid.unwrap();
    let list = app.cluster.snapshots(NS, &uid).await.unwrap().unwrap();
    let ready: Vec<String> = list
        .iter()
        .filter(|s| s.ready)
        .map(|s| s.name.clone())
        .collect();
    let (s1, s2) = (&ready[0], &ready[1]);
    for s in [s1, s2] {
        let r = app
            .post(
                &format!("/clients/{id}/backups/{s}/restore"),
                &[("confirm", "acme-legal")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let writes = app.cluster.writes();
    let r = app
        .post(
            &format!("/clients/{id}/backups/{s1}/restore"),
            &[("confirm", "acme-legal")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let s1_claim = data_claim_name(
        "acme-legal",
        Some(&clawhost::api::RestoreFrom {
            volume_snapshot_name: s1.clone(),
        }),
    );
    assert!(
        r.body
            .contains(&format!("({s1_claim}) already exists, kept (retained)"))
    );
    assert!(r.body.contains("pre-restore snapshot") && r.body.contains("NEW Assistant"));
    assert_eq!(app.cluster.writes(), writes, "nothing written");
    assert_eq!(
        assistant(&app, "acme-legal")
            .await
            .storage()
            .restore_from
            .unwrap()
            .volume_snapshot_name,
        *s2
    );

    // adoptRetainedVolume set: refused, not suspended.
    let bakery = app.client_id("bakery-lund").await;
    let buid = assistant(&app, "bakery-lund").await.metadata.uid.unwrap();
    let theirs = app
        .cluster
        .snapshots(NS, &buid)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .find(|s| s.ready)
        .unwrap()
        .name;
    app.cluster
        .patch(
            NS,
            "bakery-lund",
            json!({"spec": {"storage": {"adoptRetainedVolume": "bakery-lund-data-0ld"}}}),
        )
        .await
        .unwrap();
    let writes = app.cluster.writes();
    let r = app
        .post(
            &format!("/clients/{bakery}/backups/{theirs}/restore"),
            &[("confirm", "bakery-lund")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("adoptRetainedVolume"));
    assert_eq!(app.cluster.writes(), writes);
    assert!(!assistant(&app, "bakery-lund").await.spec.suspended);
    // The API likewise.
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{bakery}/backups/{theirs}/restore"),
            Some(json!({"confirm": "bakery-lund"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Backups off: the confirm page promises no pre-restore snapshot.
    let page = app
        .get(&format!("/clients/{bakery}/backups/{theirs}/restore"))
        .await;
    assert!(page.body.contains("A pre-restore snapshot"));
    app.cluster
        .patch(
            NS,
            "bakery-lund",
            json!({"spec": {"backup": {"enabled": false}}}),
        )
        .await
        .unwrap();
    let page = app
        .get(&format!("/clients/{bakery}/backups/{theirs}/restore"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("pre-restore snapshot"), "{}", page.body);
}

/// "Restore as new client" resolves the snapshot on the server like an in-place restore: the
/// `from` client's, ready, in the console's namespace (form and JSON API; 422, nothing
/// written); and the new volume is at least the snapshot's restoreSize.
async fn restore_as_new_client_checks_the_snapshot_and_fits_its_size(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let acme = app.client_id("acme-legal").await.to_string();
    let buid = assistant(&app, "bakery-lund").await.metadata.uid.unwrap();
    let bakery_list = app.cluster.snapshots(NS, &buid).await.unwrap().unwrap();
    let bakery_ready = bakery_list.iter().find(|s| s.ready).unwrap().name.clone();
    let bakery_failed = bakery_list
        .iter()
        .find(|s| s.error.is_some())
        .unwrap()
        .name
        .clone();
    let bakery = app.client_id("bakery-lund").await.to_string();
    // A client in another namespace, with a ready snapshot.
    app.cluster
        .insert(clawhost_testing::memory_cluster::demo_assistant(
            "elsewhere",
            "far-co",
            "Far Co",
            "it@far.example",
            "standard",
        ));
    let far = app
        .ctx
        .db
        .insert_client(
            &NewClientRecord {
                name: "Far Co".into(),
                email: "it@far.example".into(),
                billing_status: "active".into(),
                notes: String::new(),
                namespace: "elsewhere".into(),
                assistant_name: "far-co".into(),
            },
            service::now(),
        )
        .await
        .unwrap()
        .to_string();
    let far_snap = demo_snapshot(
        "far-co",
        SnapshotKind::Manual,
        Timestamp::now(),
        true,
        None,
        Some("10Gi"),
    );
    app.cluster
        .add_snapshot("elsewhere", "far-co", far_snap.clone());

    let writes = app.cluster.writes();
    for (snap, from, says) in [
        (
            bakery_ready.as_str(),
            Some(acme.as_str()),
            "is not a snapshot of acme-legal",
        ),
        (bakery_ready.as_str(), None, "say which client"),
        (
            bakery_failed.as_str(),
            Some(bakery.as_str()),
            "only a ready snapshot can be restored",
        ),
        (
            far_snap.name.as_str(),
            Some(far.as_str()),
            "a volume is restored only within its namespace",
        ),
        (bakery_ready.as_str(), Some("99999"), "does not exist"),
    ] {
        let mut fields = new_client_fields("Thief", "thief-co");
        fields.push(("restore_from", snap));
        if let Some(f) = from {
            fields.push(("from", f));
        }
        let r = app.post("/clients", &fields).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{snap} from {from:?}: {}",
            r.body
        );
        assert!(r.body.contains(says), "{says:?}: {}", r.body);
        let mut body = json!({
            "name": "Thief", "email": "t@thief.example", "assistant_name": "thief-co",
            "restore_from": snap,
        });
        if let Some(f) = from {
            body["from"] = json!(f.parse::<i64>().unwrap());
        }
        let r = app.api(Method::POST, "/api/v1/clients", Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "API {snap} from {from:?}: {}",
            r.body
        );
        assert!(r.body.contains(says), "API {says:?}: {}", r.body);
    }
    assert_eq!(app.cluster.writes(), writes, "nothing written");
    assert!(app.cluster.get(NS, "thief-co").await.unwrap().is_none());

    // The volume grew past the plan (standard: 10Gi): the new client asks for the snapshot's
    // restoreSize; a smaller snapshot keeps the plan's size.
    let big = demo_snapshot(
        "acme-legal",
        SnapshotKind::Manual,
        Timestamp::now() - SignedDuration::from_hours(1),
        true,
        None,
        Some("24Gi"),
    );
    app.cluster.add_snapshot(NS, "acme-legal", big.clone());
    let r = app
        .api(
            Method::POST,
            "/api/v1/clients",
            Some(json!({"name": "Acme Big", "email": "it@acme-legal.example",
                        "assistant_name": "acme-big", "plan": "standard",
                        "tailscale_auth_key": "tskey-auth-big",
                        "restore_from": big.name, "from": acme.parse::<i64>().unwrap()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let a = assistant(&app, "acme-big").await;
    assert_eq!(a.storage().size.as_deref(), Some("24Gi"));
    assert_eq!(
        a.storage().restore_from.unwrap().volume_snapshot_name,
        big.name
    );
    let small = demo_snapshot(
        "acme-legal",
        SnapshotKind::Manual,
        Timestamp::now() - SignedDuration::from_hours(2),
        true,
        None,
        Some("2Gi"),
    );
    app.cluster.add_snapshot(NS, "acme-legal", small.clone());
    let mut fields = new_client_fields("Acme Small", "acme-small");
    fields.push(("restore_from", small.name.as_str()));
    fields.push(("from", acme.as_str()));
    let r = app.post("/clients", &fields).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(assistant(&app, "acme-small").await.storage().size, None);
}

/// A new Assistant reusing a name sees the earlier one's retained volumes apart (owner
/// e-mail, no adopt hint), not as its own: retained claims are matched by the
/// `clawhost.dev/assistant-uid` annotation, not the base-name label.
async fn retained_volumes_of_an_earlier_assistant_are_listed_apart(app: TestApp) {
    app.cluster.seed_backup_demo(NS);
    let acme = app.client_id("acme-legal").await;
    app.cluster.add_retained_claim(
        NS,
        "acme-legal",
        RetainedClaim {
            name: "acme-legal-data".into(),
            uid: "u-old".into(),
            capacity: Some("8Gi".into()),
            retained_from: Some(format!("{NS}/acme-legal")),
            replaced_by: None,
            restored_from: None,
            created: Some("2025-01-01T10:00:00Z".into()),
            assistant_uid: Some("an-earlier-uid".into()),
            owner_email: Some("former@old-acme.example".into()),
        },
    );
    let b = app.get(&format!("/clients/{acme}")).await.body;
    assert!(b.contains("id=\"retained-other\""), "listed apart");
    assert!(b.contains("former@old-acme.example"));
    assert!(!b.contains("id=\"retained\""), "not among this client's");
    assert!(!b.contains("adoptRetainedVolume"), "no adopt hint for it");
    let id = acme;
    let j = app
        .api(Method::GET, &format!("/api/v1/clients/{id}/backups"), None)
        .await
        .json();
    assert_eq!(j["retained_claims"], json!([]), "{j}");
    assert_eq!(j["retained_other"][0]["name"], "acme-legal-data", "{j}");
    assert_eq!(
        j["retained_other"][0]["owner_email"],
        "former@old-acme.example"
    );
}

/// Fleet → Backups and the Fleet count follow the operator's verdict: a new client awaiting
/// its first snapshot, a weekly schedule five days after its last snapshot and an Assistant
/// not yet evaluated (created now) are not missing; SnapshotMissing is.
async fn fleet_backups_missing_is_the_operators_verdict(app: TestApp) {
    let r = app
        .post("/clients", &new_client_fields("Fresh Co", "fresh-co"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    set_health(
        &app,
        "fresh-co",
        None,
        (
            "True",
            "AwaitingFirstSnapshot",
            "first scheduled snapshot at 2030-01-01T03:00:00Z",
        ),
    );
    set_health(
        &app,
        "acme-legal",
        Some(5 * 24),
        ("True", "SnapshotReady", "weekly: acme-legal-last is ready"),
    );
    // chen-studio: not evaluated yet, created just now.
    set_health(
        &app,
        "bakery-lund",
        Some(3 * 24),
        (
            "False",
            "SnapshotMissing",
            "no ready snapshot since then (window 48h)",
        ),
    );
    let j = app
        .api(Method::GET, "/api/v1/fleet/backups", None)
        .await
        .json();
    let missing: Vec<&str> = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["missing"] == true)
        .map(|r| r["assistant_name"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["bakery-lund"], "{j}");
    assert_eq!(j["missing"], 1);
    assert_eq!(
        app.api(Method::GET, "/api/v1/fleet", None).await.json()["without_backup_48h"],
        1
    );
    let page = app.get("/fleet/backups").await.body;
    assert_eq!(page.matches("none in 48 h").count(), 1, "one badge");
}
