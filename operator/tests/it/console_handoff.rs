//! Issue 14, console side: one-time handoff links (`/welcome/{token}`), the Access panel's
//! invite requests, the API scopes and the "never connected" filter.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use clawhost::api::{ACCESS_REQUEST_ANNOTATION, AccessState, AccessStatus};
use clawhost::console::auth;
use clawhost::console::cluster::Cluster;
use clawhost::sealing::{SealingKey, invite_url_context};
use http::{Method, Request, StatusCode};

use crate::console_support::{NS, TestApp};

/// Creates a handoff link through the page; returns its path `/welcome/...`.
async fn create_link(app: &TestApp, id: i64) -> String {
    let r = app.post(&format!("/clients/{id}/handoff"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    link_in(&r.body)
}

fn link_in(body: &str) -> String {
    let i = body.find("/welcome/").expect("a welcome link on the page");
    body[i..i + "/welcome/".len() + 43].to_string()
}

fn token_in(body: &str) -> String {
    let i = body
        .find("id=\"gateway-token\">")
        .expect("the gateway token")
        + "id=\"gateway-token\">".len();
    body[i..i + body[i..].find('<').unwrap()].to_string()
}

async fn anon_post(app: &TestApp, uri: &str) -> crate::console_support::Resp {
    app.post_raw(uri, None, "").await
}

fn gateway_token_of(app: &TestApp, assistant: &str) -> String {
    app.cluster
        .secret_value(
            NS,
            &format!("{assistant}-gateway-token"),
            clawhost::children::gateway_token_secret::TOKEN_KEY,
        )
        .or_else(|| {
            app.cluster
                .secret_names()
                .into_iter()
                .find(|(_, n)| n.contains(assistant) && n.contains("token"))
                .and_then(|(ns, n)| {
                    app.cluster.secret_value(
                        &ns,
                        &n,
                        clawhost::children::gateway_token_secret::TOKEN_KEY,
                    )
                })
        })
        .expect("gateway token Secret")
}

async fn single_use_and_get_never_spends(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let link = create_link(&app, id).await;
    let secret_token = gateway_token_of(&app, "acme-legal");
    // The database holds only the hash and a sealed value: never the link or gateway token.
    let rows = app.ctx.db.handoff_links(id).await.unwrap();
    let row = &rows[0];
    let link_token = link.trim_start_matches("/welcome/");
    assert_eq!(row.token_hash, auth::token_hash(link_token));
    let sealed = row.sealed_gateway_token.clone().unwrap();
    assert!(!sealed.contains(&secret_token) && !sealed.contains(link_token));

    // GETs (link-preview bots) never spend it.
    for _ in 0..3 {
        let g = app.get_anon(&link).await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.body);
        assert!(g.body.contains("Show my gateway token"));
        assert!(!g.body.contains(&secret_token), "GET never shows the token");
        assert_eq!(g.headers["cache-control"], "no-store");
        assert_eq!(g.headers["referrer-policy"], "no-referrer");
        assert!(
            g.headers["x-robots-tag"]
                .to_str()
                .unwrap()
                .contains("noindex")
        );
        assert!(g.body.contains("name=\"viewport\""));
        // The address and its QR code (the in-memory device is on the tailnet).
        assert!(g.body.contains("https://") && g.body.contains("<svg"));
    }
    // The POST reveals it once; the sealed copy is gone with it.
    let p = anon_post(&app, &link).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(token_in(&p.body), secret_token);
    assert!(
        app.ctx.db.handoff_links(id).await.unwrap()[0]
            .sealed_gateway_token
            .is_none()
    );
    // Second visit: used, and whom to ask (the issuing admin).
    for r in [anon_post(&app, &link).await, app.get_anon(&link).await] {
        assert_eq!(r.status, StatusCode::GONE);
        assert!(r.body.contains("already used"), "{}", r.body);
        assert!(r.body.contains("admin@example.com"));
        assert!(!r.body.contains(&secret_token));
    }
    // Audited with the link id, never a token.
    let events = app.ctx.db.audit_events(Some(id), 50, 0).await.unwrap();
    let text = format!("{events:?}");
    assert!(text.contains("handoff.issued") && text.contains("handoff.spent"));
    assert!(!text.contains(link_token) && !text.contains(&secret_token));
}

async fn racing_reveals_have_one_winner(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let link = create_link(&app, id).await;
    let (a, b) = futures::join!(anon_post(&app, &link), anon_post(&app, &link));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::GONE]);
    let loser = if a.status == StatusCode::GONE { &a } else { &b };
    assert!(loser.body.contains("already used"), "{}", loser.body);
}

async fn expired_and_replaced_links_are_refused(app: TestApp) {
    let id = app.client_id("bakery-lund").await;
    let first = create_link(&app, id).await;
    let second = create_link(&app, id).await;
    // The newer link replaced the first one (and dropped its sealed token).
    let r = anon_post(&app, &first).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.body.contains("replaced"), "{}", r.body);
    let rows = app.ctx.db.handoff_links(id).await.unwrap();
    assert!(rows[1].replaced_at.is_some() && rows[1].sealed_gateway_token.is_none());
    // Expiry: move the second link's end into the past.
    app.ctx
        .db
        .set_handoff_expiry(rows[0].id, clawhost::console::service::now() - 1)
        .await
        .unwrap();
    let g = app.get_anon(&second).await;
    assert_eq!(g.status, StatusCode::GONE);
    assert!(g.body.contains("expired"), "{}", g.body);
    let p = anon_post(&app, &second).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(!p.body.contains("gateway-token"));
    assert!(
        app.ctx.db.handoff_links(id).await.unwrap()[0]
            .sealed_gateway_token
            .is_none()
    );
    let text = format!(
        "{:?}",
        app.ctx.db.audit_events(Some(id), 50, 0).await.unwrap()
    );
    assert!(text.contains("handoff.replaced"));
    // Unknown tokens: the neutral not-found page.
    let bogus = format!("/welcome/{}", auth::random_token());
    let u = app.get_anon(&bogus).await;
    assert_eq!(u.status, StatusCode::NOT_FOUND);
    assert!(!u.body.contains("admin@example.com"));
}

async fn rotating_the_token_issues_a_new_link(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let old = create_link(&app, id).await;
    let r = app.post(&format!("/clients/{id}/rotate-token"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let new = link_in(&r.body);
    assert_ne!(new, old);
    assert!(
        r.body.contains("public-url-missing"),
        "no --public-url: said so"
    );
    assert_eq!(anon_post(&app, &old).await.status, StatusCode::GONE);
    let p = anon_post(&app, &new).await;
    assert_eq!(token_in(&p.body), gateway_token_of(&app, "acme-legal"));
    // The API's rotation returns the new link too (and replaces this one, spent already).
    let j = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/rotate-token"),
            None,
        )
        .await;
    assert_eq!(j.status, StatusCode::OK);
    assert!(
        j.json()["handoff"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/welcome/")
    );
}

async fn creating_a_client_issues_the_first_link(app: TestApp) {
    let fields = crate::console_support::new_client_fields("Nora Lind", "nora-lind");
    let r = app.post("/clients", &fields).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let link = link_in(&r.body);
    let shown = token_in(&r.body);
    assert!(
        r.body.contains("handoff-email"),
        "the e-mail text for the client"
    );
    // The link reveals the very token the creation wrote: no second rotation.
    let p = anon_post(&app, &link).await;
    assert_eq!(token_in(&p.body), shown);
    assert_eq!(gateway_token_of(&app, "nora-lind"), shown);
}

async fn welcome_is_rate_limited_per_address(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let link = create_link(&app, id).await;
    let from = |ip: [u8; 4]| {
        let mut req = Request::get(&link).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        req
    };
    let limit = clawhost::console::pages::welcome::REQUESTS_PER_WINDOW;
    for _ in 0..limit {
        assert_eq!(
            app.send(from([203, 0, 113, 7])).await.status,
            StatusCode::OK
        );
    }
    let r = app.send(from([203, 0, 113, 7])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    // Another address is not affected; the link was not spent by any of this.
    assert_eq!(
        app.send(from([198, 51, 100, 9])).await.status,
        StatusCode::OK
    );
    assert_eq!(anon_post(&app, &link).await.status, StatusCode::OK);
}

/// Captures every tracing line (all levels) written while it is alive on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn no_token_in_any_log_line(app: TestApp) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::info!("capture works");
    let id = app.client_id("acme-legal").await;
    let link = create_link(&app, id).await;
    app.get_anon(&link).await;
    let p = anon_post(&app, &link).await;
    let gateway = token_in(&p.body);
    anon_post(&app, &link).await;
    app.get_anon(&format!("{link}x")).await;
    let logs = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("capture works"), "capture is live");
    let token = link.trim_start_matches("/welcome/");
    assert!(!logs.contains(token), "link token in the log");
    assert!(!logs.contains(&gateway), "gateway token in the log");
}

async fn only_welcome_is_reachable_without_a_session(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    for uri in [
        format!("/clients/{id}"),
        format!("/clients/{id}/handoff"),
        format!("/clients/{id}/access/resend"),
    ] {
        let r = app.get_anon(&uri).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{uri}");
    }
    for uri in [
        format!("/clients/{id}/handoff"),
        format!("/clients/{id}/access/revoke"),
    ] {
        let r = anon_post(&app, &uri).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{uri}");
    }
    // The welcome routes are the only session-less ones besides sign-in, static files and
    // the payment provider's signed webhook.
    let public: Vec<_> = clawhost::console::routes()
        .into_iter()
        .filter(|r| {
            matches!(
                r.access,
                clawhost::console::Access::Public
                    | clawhost::console::Access::Handoff
                    | clawhost::console::Access::Webhook
            )
        })
        .map(|r| r.path)
        .collect();
    for p in &public {
        assert!(
            [
                "/healthz",
                "/static/console.css",
                "/login",
                "/setup/{token}",
                "/welcome/{token}",
                "/billing/stripe/webhook"
            ]
            .contains(p),
            "{p} is reachable without a session"
        );
    }
    // No links were issued by any of this.
    assert!(app.ctx.db.handoff_links(id).await.unwrap().is_empty());
}

fn sent(recipient: &str, sealed: Option<String>) -> AccessStatus {
    AccessStatus {
        state: AccessState::Sent,
        device_id: Some("nDEV123".into()),
        invite_id: Some("inv-1".into()),
        recipient: Some(recipient.into()),
        sealed_invite_url: sealed,
        last_sent_time: Some("2026-12-01T10:00:00Z".into()),
        ..Default::default()
    }
}

async fn console_with_key(app: &TestApp, key: Option<SealingKey>) -> axum::Router {
    let opts = clawhost::console::ConsoleOptions {
        namespace: NS.into(),
        access_key: key,
        support_contact: Some("help@hosting.example".into()),
        ..Default::default()
    };
    clawhost::console::app(clawhost::console::Console::new(
        app.ctx.db.clone(),
        app.cluster.clone(),
        clawhost::config::OperatorConfig::default(),
        opts,
    ))
}

async fn invite_link_shown_only_when_it_opens(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let key = SealingKey::random();
    let invite = "https://login.tailscale.com/admin/invite/SECRETINVITE42";
    let sealed = key.seal(invite, &invite_url_context(NS, "acme-legal"));
    app.cluster.set_access(
        NS,
        "acme-legal",
        Some(sent("it@acme-legal.example", Some(sealed))),
    );
    let link = create_link(&app, id).await;
    let get = |router: axum::Router, uri: String| async move {
        crate::console_support::send_to(&router, Request::get(uri).body(Body::empty()).unwrap())
            .await
    };
    // With the right key: the invite link.
    let r = get(console_with_key(&app, Some(key)).await, link.clone()).await;
    assert!(r.body.contains(invite), "{}", r.body);
    // Another key, or none: the e-mail notice, never the URL.
    for k in [Some(SealingKey::random()), None] {
        let r = get(console_with_key(&app, k).await, link.clone()).await;
        assert!(!r.body.contains("SECRETINVITE42"));
        assert!(r.body.contains("Tailscale e-mailed an invitation to"));
        assert!(r.body.contains("it@acme-legal.example"));
    }
    // The admin's JSON view never carries the sealed URL either.
    let j = app
        .api(Method::GET, &format!("/api/v1/clients/{id}/access"), None)
        .await;
    assert_eq!(j.json()["state"], "Sent");
    assert!(!j.body.contains("v1.") && !j.body.contains("SECRETINVITE42"));
    // Accepted and Manual say so.
    let mut accepted = sent("it@acme-legal.example", None);
    accepted.state = AccessState::Accepted;
    app.cluster.set_access(NS, "acme-legal", Some(accepted));
    assert!(
        app.get_anon(&link)
            .await
            .body
            .contains("already shared with you")
    );
    app.cluster.set_access(NS, "acme-legal", None);
    assert!(app.get_anon(&link).await.body.contains("Install the"));
    // A device not on the tailnet yet: still starting, no QR.
    app.cluster.set_joined(NS, "acme-legal", false);
    let r = app.get_anon(&link).await;
    assert!(r.body.contains("still starting") && !r.body.contains("<svg"));
    // A dead link names the support contact when one is configured.
    let router = console_with_key(&app, None).await;
    let spend = |uri: String| {
        Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::empty())
            .unwrap()
    };
    crate::console_support::send_to(&router, spend(link.clone())).await;
    let r = crate::console_support::send_to(&router, spend(link.clone())).await;
    assert!(r.body.contains("help@hosting.example"), "{}", r.body);
}

async fn access_panel_actions_set_the_annotation(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    app.cluster
        .set_access(NS, "acme-legal", Some(sent("it@acme-legal.example", None)));
    let page = app.get(&format!("/clients/{id}")).await;
    assert!(page.body.contains("id=\"access\""));
    assert!(page.body.contains("Resend invite") && page.body.contains("Revoke invite"));
    assert!(page.body.contains("it@acme-legal.example"));
    for action in ["resend", "revoke", "reinvite"] {
        let c = app.get(&format!("/clients/{id}/access/{action}")).await;
        assert_eq!(c.status, StatusCode::OK);
        assert!(
            c.body
                .contains(&format!("action=\"/clients/{id}/access/{action}\""))
        );
        let r = app
            .post(&format!("/clients/{id}/access/{action}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let a = app.cluster.get(NS, "acme-legal").await.unwrap().unwrap();
        let v = a.metadata.annotations.unwrap()[ACCESS_REQUEST_ANNOTATION].clone();
        assert_eq!(
            clawhost::api::parse_access_request(&v).map(|a| a.as_str()),
            Some(action),
            "{v}"
        );
    }
    assert_eq!(
        app.post(&format!("/clients/{id}/access/delete"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let text = format!(
        "{:?}",
        app.ctx.db.audit_events(Some(id), 50, 0).await.unwrap()
    );
    for a in ["access.resend", "access.revoke", "access.reinvite"] {
        assert!(text.contains(a), "{a}");
    }
    // Manual: the steps for the admin.
    app.cluster.set_access(NS, "acme-legal", None);
    let page = app.get(&format!("/clients/{id}")).await;
    assert!(page.body.contains("access-manual") && page.body.contains("Share…"));
}

async fn api_scopes_and_results(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let scoped = |scopes: &'static str| {
        let ctx = app.ctx.clone();
        let admin = app.admin;
        async move {
            let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
            ctx.db
                .create_scoped_api_token(
                    admin,
                    scopes,
                    &auth::token_hash(&token),
                    "chk_",
                    scopes,
                    None,
                    clawhost::console::service::now(),
                )
                .await
                .unwrap();
            token
        }
    };
    let call = |token: String, method: Method, uri: String| {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        app.send(req)
    };
    let read = scoped("clients:read").await;
    let write = scoped("clients:write").await;
    let rotate = scoped("clients:rotate-token").await;
    let access = format!("/api/v1/clients/{id}/access");
    let resend = format!("/api/v1/clients/{id}/access/resend");
    let handoff = format!("/api/v1/clients/{id}/handoff");
    assert_eq!(
        call(read.clone(), Method::GET, access.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(read.clone(), Method::POST, resend.clone())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(write.clone(), Method::POST, resend.clone())
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(write.clone(), Method::POST, handoff.clone())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = call(rotate, Method::POST, handoff).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let path = r.json()["path"].as_str().unwrap().to_string();
    assert!(r.json()["public_url_missing"].as_bool().unwrap());
    let p = anon_post(&app, &path).await;
    assert_eq!(token_in(&p.body), gateway_token_of(&app, "acme-legal"));
    let j = call(read, Method::GET, access).await.json();
    assert_eq!(j["handoff_links"][0]["state"], "spent");
}

async fn never_connected_filter(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let now = clawhost::console::service::now();
    // Every seeded client is new: none is "never connected" yet.
    let r = app.get("/clients?never_connected=true").await;
    assert!(!r.body.contains("Acme Legal"));
    // Make three clients old: one invite sent, one accepted, one shared by hand (Manual).
    for name in ["acme-legal", "bakery-lund", "chen-studio"] {
        let cid = app.client_id(name).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE clients SET created_at = {} WHERE id = {cid}",
            now - 10 * 86_400
        )))
        .execute(app.ctx.db.pool())
        .await
        .unwrap();
    }
    let mut accepted = sent("hej@bageri-lund.example", None);
    accepted.state = AccessState::Accepted;
    app.cluster.set_access(NS, "bakery-lund", Some(accepted));
    app.cluster
        .set_access(NS, "acme-legal", Some(sent("kontakt@acme.example", None)));
    let mut manual = sent("chen@studio.example", None);
    manual.state = AccessState::Manual;
    app.cluster.set_access(NS, "chen-studio", Some(manual));
    let r = app.get("/clients?never_connected=true").await;
    assert!(r.body.contains("Acme Legal"), "{}", r.body);
    assert!(!r.body.contains("Bageri Lund"));
    assert!(
        !r.body.contains("Chen Design Studio"),
        "a Manual client never counts"
    );
    let f = app.get("/fleet").await;
    let i = f
        .body
        .find("id=\"never-connected\"")
        .expect("the Fleet count");
    assert!(f.body[i..].contains("href=\"/clients?never_connected=true\""));
    assert!(
        f.body[i..i + 200].contains(">1<"),
        "{}",
        &f.body[i..i + 200]
    );
    let j = app
        .api(Method::GET, &format!("/api/v1/clients/{id}/access"), None)
        .await;
    assert_eq!(j.json()["never_connected"], true);
    // An unreadable cluster proves nothing: no client counts (not every one).
    app.cluster.set_unreachable(Some("connection refused"));
    let r = app.get("/clients?never_connected=true").await;
    assert!(!r.body.contains("Acme Legal"), "{}", r.body);
    let f = app.get("/fleet").await;
    let i = f.body.find("id=\"never-connected\"").unwrap();
    assert!(
        f.body[i..i + 200].contains(">0<"),
        "{}",
        &f.body[i..i + 200]
    );
    app.cluster.set_unreachable(None);
}

/// Renames a table so every statement on it fails (a database fault in one place), portably.
async fn rename_table(app: &TestApp, from: &str, to: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE {from} RENAME TO {to}"
    )))
    .execute(app.ctx.db.pool())
    .await
    .unwrap();
}

async fn racing_issues_leave_one_open_link(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let now = clawhost::console::service::now();
    let hashes: Vec<String> = (0..8).map(|i| format!("hash-{i}")).collect();
    let issues = hashes.iter().map(|h| {
        app.ctx
            .db
            .issue_handoff_link(id, h, "admin@x.io", now, now + 3600, |_| "sealed".into())
    });
    for r in futures::future::join_all(issues).await {
        r.unwrap();
    }
    let links = app.ctx.db.handoff_links(id).await.unwrap();
    assert_eq!(links.len(), 8);
    let open = links
        .iter()
        .filter(|l| l.spent_at.is_none() && l.replaced_at.is_none())
        .count();
    assert_eq!(open, 1, "exactly one link stays open");
}

async fn reveal_survives_a_failed_audit_write(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let link = create_link(&app, id).await;
    rename_table(&app, "audit_events", "audit_events_off").await;
    let p = anon_post(&app, &link).await;
    rename_table(&app, "audit_events_off", "audit_events").await;
    // The link is spent either way: the client must get the token, not "the link still works".
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(token_in(&p.body), gateway_token_of(&app, "acme-legal"));
    assert_eq!(anon_post(&app, &link).await.status, StatusCode::GONE);
}

async fn failed_link_still_shows_the_rotated_token(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    rename_table(&app, "handoff_links", "handoff_links_off").await;
    let r = app.post(&format!("/clients/{id}/handoff"), &[]).await;
    let rotated = app.post(&format!("/clients/{id}/rotate-token"), &[]).await;
    let j = app
        .api(
            Method::POST,
            &format!("/api/v1/clients/{id}/rotate-token"),
            None,
        )
        .await;
    let h = app
        .api(Method::POST, &format!("/api/v1/clients/{id}/handoff"), None)
        .await;
    rename_table(&app, "handoff_links_off", "handoff_links").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("could not be created"), "{}", r.body);
    let first = token_in(&r.body);
    assert_eq!(first.len(), token_in(&rotated.body).len());
    assert_ne!(
        first,
        token_in(&rotated.body),
        "each rotation shows its own token"
    );
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert!(rotated.body.contains("could not be created"));
    assert_eq!(j.status, StatusCode::OK, "{}", j.body);
    assert!(j.json()["handoff"].is_null());
    assert!(!j.json()["warnings"].as_array().unwrap().is_empty());
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert!(h.json()["handoff"].is_null());
    // The last token returned is the one in force.
    assert_eq!(
        h.json()["gateway_token"].as_str().unwrap(),
        gateway_token_of(&app, "acme-legal")
    );
}

both_backends!(
    racing_issues_leave_one_open_link,
    reveal_survives_a_failed_audit_write,
    failed_link_still_shows_the_rotated_token,
    single_use_and_get_never_spends,
    racing_reveals_have_one_winner,
    expired_and_replaced_links_are_refused,
    rotating_the_token_issues_a_new_link,
    creating_a_client_issues_the_first_link,
    welcome_is_rate_limited_per_address,
    no_token_in_any_log_line,
    only_welcome_is_reachable_without_a_session,
    invite_link_shown_only_when_it_opens,
    access_panel_actions_set_the_annotation,
    api_scopes_and_results,
    never_connected_filter,
);
