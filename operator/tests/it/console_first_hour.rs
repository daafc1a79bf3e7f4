//! A person's first hour with the console (issue 13, items 10, 11, 12, 14): the first-run
//! setup link, accent-insensitive search, why a pod is stuck (volume events, the empty
//! log), one timestamp format, implausible versions and downgrade confirmation.

use crate::console_support::*;
use axum::body::Body;
use clawhost::children::ChildNames;
use clawhost::console::setup;
use http::{Method, Request, StatusCode};
use serde_json::json;

// ----- first run -----

/// The test console without any administrator (a fresh installation).
async fn without_admins(app: &TestApp) {
    sqlx::query("DELETE FROM admins")
        .execute(app.ctx.db.pool())
        .await
        .unwrap();
    assert_eq!(app.ctx.db.admin_count().await.unwrap(), 0);
}

/// The value a response sets for one cookie.
fn set_cookie_value(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Opens the setup page and submits the form with its CSRF double-submit cookie.
async fn submit_setup(app: &TestApp, token: &str, fields: &[(&str, &str)]) -> Resp {
    let page = app.get_anon(&format!("/setup/{token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = set_cookie_value(&page, "clawhost_login_csrf").expect("CSRF cookie");
    let mut all = vec![("_csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    app.post_raw(
        &format!("/setup/{token}"),
        Some(&format!("clawhost_login_csrf={csrf}")),
        &form_body(&all),
    )
    .await
}

async fn setup_link_creates_the_first_admin_once(app: TestApp) {
    without_admins(&app).await;
    let login = app.get_anon("/login").await;
    assert!(
        login.body.contains("No administrator exists yet")
            && login.body.contains("setup link printed in the console")
            && login
                .body
                .contains("clawhost admin create --email you@example.com --database-url "),
        "first-run notice on the sign-in page: {}",
        login.body
    );
    // A failed sign-in while no admin exists says the same, not only "Wrong e-mail or password".
    let csrf = set_cookie_value(&login, "clawhost_login_csrf").expect("CSRF cookie");
    let failed = app
        .post_raw(
            "/login",
            Some(&format!("clawhost_login_csrf={csrf}")),
            &form_body(&[
                ("_csrf", csrf.as_str()),
                ("email", "me@example.com"),
                ("password", "a password of mine"),
            ]),
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    assert!(
        failed.body.contains("No administrator exists yet"),
        "first-run notice after a failed sign-in: {}",
        failed.body
    );
    let token = setup::issue_token(&app.ctx)
        .await
        .unwrap()
        .expect("a token");
    // Stored hashed only.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM setup_tokens")
        .fetch_all(app.ctx.db.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);

    assert_eq!(
        app.get_anon("/setup/not-the-token").await.status,
        StatusCode::NOT_FOUND
    );
    // CSRF: the double-submit cookie is required, as on /login.
    let no_csrf = app
        .post_raw(
            &format!("/setup/{token}"),
            None,
            "email=a%40example.com&password=long-enough-password&repeat=long-enough-password",
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    // The password rules of auth::hash_password; the token survives a refused form.
    let weak = submit_setup(
        &app,
        &token,
        &[
            ("email", "owner@example.com"),
            ("password", "short"),
            ("repeat", "short"),
        ],
    )
    .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        weak.body.contains("at least 12 characters"),
        "{}",
        weak.body
    );
    let differ = submit_setup(
        &app,
        &token,
        &[
            ("email", "owner@example.com"),
            ("password", "long-enough-password"),
            ("repeat", "long-enough-passwore"),
        ],
    )
    .await;
    assert_eq!(differ.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.ctx.db.admin_count().await.unwrap(), 0);

    let done = submit_setup(
        &app,
        &token,
        &[
            ("email", "Owner@Example.com"),
            ("password", "long-enough-password"),
            ("repeat", "long-enough-password"),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), Some("/clients"));
    let sid = set_cookie_value(&done, "clawhost_session").expect("signed in");
    let admin = app
        .ctx
        .db
        .admin_by_email("owner@example.com")
        .await
        .unwrap()
        .expect("admin created");
    assert!(clawhost::console::auth::verify_password(
        "long-enough-password",
        &admin.password_hash
    ));
    let clients = app
        .send(
            Request::get("/clients")
                .header("cookie", format!("clawhost_session={sid}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(clients.status, StatusCode::OK, "the new session works");
    assert!(clients.body.contains("owner@example.com"));

    // Single use, and refused for good once an administrator exists.
    assert_eq!(
        app.get_anon(&format!("/setup/{token}")).await.status,
        StatusCode::GONE
    );
    let again = app
        .post_raw(
            &format!("/setup/{token}"),
            Some("clawhost_login_csrf=x"),
            "_csrf=x&email=evil%40example.com&password=long-enough-password&repeat=long-enough-password",
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(
        app.ctx
            .db
            .admin_by_email("evil@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(app.ctx.db.admin_count().await.unwrap(), 1);
    assert!(
        setup::issue_token(&app.ctx).await.unwrap().is_none(),
        "no new link once an administrator exists"
    );
    assert!(
        !app.get_anon("/login")
            .await
            .body
            .contains("No administrator exists yet")
    );
    let audit = app.ctx.db.audit_events(None, 10, 0).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == "setup"
        && e.action == "admin.create"
        && e.target == "owner@example.com"));
}

async fn setup_link_expires_and_a_restart_replaces_it(app: TestApp) {
    without_admins(&app).await;
    let first = setup::issue_token(&app.ctx).await.unwrap().unwrap();
    let second = setup::issue_token(&app.ctx).await.unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(
        app.get_anon(&format!("/setup/{first}")).await.status,
        StatusCode::NOT_FOUND,
        "the previous start's link dies"
    );
    assert_eq!(
        app.get_anon(&format!("/setup/{second}")).await.status,
        StatusCode::OK
    );
    let page = app.get_anon(&format!("/setup/{second}")).await;
    let csrf = set_cookie_value(&page, "clawhost_login_csrf").unwrap();
    sqlx::query("UPDATE setup_tokens SET expires_at = 0")
        .execute(app.ctx.db.pool())
        .await
        .unwrap();
    assert_eq!(
        app.get_anon(&format!("/setup/{second}")).await.status,
        StatusCode::NOT_FOUND,
        "expired"
    );
    let late = app
        .post_raw(
            &format!("/setup/{second}"),
            Some(&format!("clawhost_login_csrf={csrf}")),
            &form_body(&[
                ("_csrf", &csrf),
                ("email", "late@example.com"),
                ("password", "long-enough-password"),
                ("repeat", "long-enough-password"),
            ]),
        )
        .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert_eq!(app.ctx.db.admin_count().await.unwrap(), 0);
}

#[test]
fn sign_in_notice_hides_the_database_password() {
    let cmd = setup::admin_create_command("postgres://clawhost:hunter2-secret@db:5432/console");
    assert!(!cmd.contains("hunter2"), "{cmd}");
    assert!(cmd.contains("postgres://clawhost:REDACTED@db:5432/console"));
}

// ----- accented search -----

async fn add_client(app: &TestApp, name: &str, email: &str, assistant: &str) {
    app.ctx
        .db
        .insert_client(
            &clawhost::console::db::NewClientRecord {
                name: name.into(),
                email: email.into(),

                billing_status: "active".into(),
                notes: String::new(),
                namespace: NS.into(),
                assistant_name: assistant.into(),
            },
            clawhost::console::service::now(),
        )
        .await
        .unwrap();
}

async fn names_found(app: &TestApp, q: &str) -> Vec<String> {
    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/clients?q={}", urlencoding::encode(q)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut names: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn accented_names_are_found(app: TestApp) {
    add_client(
        &app,
        "Élodie Martin",
        "elodie@martin.example",
        "elodie-martin",
    )
    .await;
    add_client(&app, "Ünal Kaya", "unal@kaya.example", "unal-kaya").await;
    add_client(&app, "Łukasz Nowak", "ŁUKASZ@nowak.example", "lukasz").await;
    for q in ["Élodie", "élodie", "ÉLODIE", "elodie", "Elodie Mart"] {
        assert_eq!(names_found(&app, q).await, ["Élodie Martin"], "q={q}");
    }
    for q in ["Ünal", "ünal", "unal", "UNAL KAYA"] {
        assert_eq!(names_found(&app, q).await, ["Ünal Kaya"], "q={q}");
    }
    assert_eq!(
        names_found(&app, "łukasz@").await,
        ["Łukasz Nowak"],
        "e-mail, any case"
    );
    // Wildcards stay literal.
    assert!(names_found(&app, "%").await.is_empty());
    assert!(names_found(&app, "_lodie").await.is_empty());
    // The page uses the same filter.
    let page = app.get("/clients?q=%C3%A9lodie").await;
    assert!(page.body.contains("Élodie Martin"), "{}", page.body);
    assert!(!page.body.contains("Ünal Kaya"));

    // Rows without a key (written before the migration, or by a bulk insert) are keyed at
    // start and before a search; keying again changes nothing.
    sqlx::query("UPDATE clients SET search_key = ''")
        .execute(app.ctx.db.pool())
        .await
        .unwrap();
    assert!(app.ctx.db.backfill_search_keys().await.unwrap() >= 7);
    assert_eq!(app.ctx.db.backfill_search_keys().await.unwrap(), 0);
    app.ctx
        .db
        .insert_clients(
            &[clawhost::console::db::NewClientRecord {
                name: "Zoë Ångström".into(),
                email: "zoe@example.com".into(),

                billing_status: "active".into(),
                notes: String::new(),
                namespace: NS.into(),
                assistant_name: "zoe".into(),
            }],
            clawhost::console::service::now(),
        )
        .await
        .unwrap();
    assert_eq!(names_found(&app, "angstrom").await, ["Zoë Ångström"]);
    assert_eq!(names_found(&app, "Élodie").await, ["Élodie Martin"]);
}

#[test]
fn search_folding() {
    use clawhost::console::db::search_fold;
    assert_eq!(search_fold("Élodie"), "elodie");
    assert_eq!(search_fold("ÜNAL"), "unal");
    assert_eq!(search_fold("Ångström"), "angstrom");
    assert_eq!(search_fold("ﬁne"), "fine", "compatibility forms fold too");
}

// ----- why a pod is stuck -----

async fn volume_events_and_the_empty_log_explain_a_stuck_pod(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let pvc = ChildNames::new("acme-legal").data_volume;
    app.cluster.stall_volume(
        NS,
        "acme-legal",
        "storageclass.storage.k8s.io \"fast-ssd\" not found",
    );
    let page = app.get(&format!("/clients/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!("PersistentVolumeClaim/{pvc}")),
        "the volume's events are shown: {}",
        page.body
    );
    assert!(page.body.contains("ProvisioningFailed"));
    assert!(page.body.contains("fast-ssd"));
    assert!(
        page.body
            .contains("No log lines yet: the gateway pod has not started"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("class=\"log\""), "no empty log box");

    // A pod that runs but wrote nothing yet.
    let bakery = app.client_id("bakery-lund").await;
    app.cluster.add_event(
        NS,
        "PersistentVolumeClaim",
        &ChildNames::new("bakery-lund").data_volume,
        "Normal",
        "ProvisioningSucceeded",
        "volume provisioned",
    );
    let page = app.get(&format!("/clients/{bakery}")).await;
    assert!(page.body.contains("ProvisioningSucceeded"));

    // Suspended: no pod, and the page says why.
    let okafor = app.client_id("dr-okafor").await;
    let page = app.get(&format!("/clients/{okafor}")).await;
    assert!(
        page.body
            .contains("No log lines: the assistant is suspended"),
        "{}",
        page.body
    );
}

async fn every_time_on_the_client_page_has_one_format(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    app.cluster.stall_volume(NS, "acme-legal", "no storage");
    let page = app.get(&format!("/clients/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let rfc3339 = regex_lite::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}").unwrap();
    assert!(
        !rfc3339.is_match(&page.body),
        "an RFC 3339 time on the page: {:?}",
        rfc3339.find(&page.body).map(|m| m.as_str())
    );
    let console =
        regex_lite::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC \(\d+[smhd] ago\)").unwrap();
    // Conditions and events (three objects) carry the age.
    assert!(
        console.find_iter(&page.body).count() >= 4,
        "times with their age: {}",
        page.body
    );
}

// ----- versions -----

async fn spec_version(app: &TestApp, name: &str) -> Option<String> {
    use clawhost::console::cluster::Cluster;
    app.cluster
        .get(NS, name)
        .await
        .unwrap()
        .unwrap()
        .spec
        .gateway
        .and_then(|g| g.version)
}

async fn implausible_versions_are_refused(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    for (v, says) in [
        ("9999.1.1", "after today"),
        ("2026.13.1", "month"),
        ("2026.2.40", "day"),
    ] {
        let r = app
            .api(
                Method::POST,
                &format!("/api/v1/clients/{id}/version"),
                Some(json!({"version": v})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{v}: {}",
            r.body
        );
        assert!(r.body.contains(says), "{v}: {}", r.body);
        let page = app
            .post(&format!("/clients/{id}/version"), &[("version", v)])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    let mut fields = new_client_fields("Future Client", "future");
    for f in fields.iter_mut() {
        if f.0 == "version" {
            f.1 = "9999.1.1";
        }
    }
    let r = app.post("/clients", &fields).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "new client with 9999.1.1"
    );
    let a = spec_version(&app, "acme-legal").await;
    assert_eq!(a, None, "nothing changed");
}

async fn a_downgrade_needs_confirmation(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let running = app.ctx.config.gateway.default_version.clone();
    let uri = format!("/api/v1/clients/{id}/version");
    let api = |body| app.api(Method::POST, &uri, Some(body));
    let refused = api(json!({"version": "2026.1.24"})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains(&format!("downgrade from {running} to 2026.1.24")),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("allow_downgrade"));
    assert_eq!(spec_version(&app, "acme-legal").await, None);

    // The page asks in a second step (no JavaScript), then does it.
    let ask = app
        .post(
            &format!("/clients/{id}/version"),
            &[("version", "2026.1.24")],
        )
        .await;
    assert_eq!(ask.status, StatusCode::CONFLICT);
    assert!(
        ask.body
            .contains(&format!("Downgrade from {running} to 2026.1.24")),
        "{}",
        ask.body
    );
    assert!(
        ask.body
            .contains("name=\"confirm_downgrade\" value=\"yes\"")
    );
    assert_eq!(spec_version(&app, "acme-legal").await, None);
    let yes = app
        .post(
            &format!("/clients/{id}/version"),
            &[("version", "2026.1.24"), ("confirm_downgrade", "yes")],
        )
        .await;
    assert_eq!(yes.status, StatusCode::SEE_OTHER, "{}", yes.body);
    assert_eq!(
        spec_version(&app, "acme-legal").await.as_deref(),
        Some("2026.1.24")
    );

    // Upgrading needs no confirmation; the API's explicit flag allows going back.
    let up = api(json!({"version": running})).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    let back = api(json!({"version": "2026.1.24", "allow_downgrade": true})).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let audit = app.ctx.db.audit_events(Some(id), 5, 0).await.unwrap();
    assert!(
        audit[0]
            .after
            .as_deref()
            .unwrap_or_default()
            .contains("\"downgrade\":true"),
        "{:?}",
        audit[0]
    );
}

both_backends!(
    setup_link_creates_the_first_admin_once,
    setup_link_expires_and_a_restart_replaces_it,
    accented_names_are_found,
    volume_events_and_the_empty_log_explain_a_stuck_pod,
    every_time_on_the_client_page_has_one_format,
    implausible_versions_are_refused,
    a_downgrade_needs_confirmation,
);

/// The operator passes today's date too: a release dated in the future is an invalid spec.
#[tokio::test]
async fn the_operator_refuses_a_release_dated_in_the_future() {
    use clawhost::reconciler::{self, Context};
    use clawhost_testing::fake_apiserver::FakeApiServer;
    const CRD: &str = "apis/clawhost.dev/v1alpha1";
    let fake = FakeApiServer::new();
    let ctx = std::sync::Arc::new(Context::new(
        fake.client(),
        clawhost::config::OperatorConfig::default(),
    ));
    fake.seed_client("clients", "alice");
    fake.update(CRD, "assistants", "clients", "alice", |o| {
        o["spec"]["gateway"] = json!({"version": "9999.1.1"});
    });
    let get = || -> clawhost::api::Assistant {
        serde_json::from_value(fake.get(CRD, "assistants", "clients", "alice").unwrap()).unwrap()
    };
    reconciler::reconcile(std::sync::Arc::new(get()), ctx)
        .await
        .unwrap();
    let status = get().status.expect("status written");
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "ConfigValid")
        .expect("ConfigValid");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        c.message.contains("spec.gateway.version") && c.message.contains("after today"),
        "{}",
        c.message
    );
}
