//! Issue 13 security: scoped and expiring API tokens, sessions and tokens dying with a
//! password reset or a disabled admin, the admin CLI, the sign-in limiter (per account,
//! never global; trusted proxies), e-mail and bidi validation, audit isolation, the SQLite
//! file's mode.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use clawhost::config::OperatorConfig;
use clawhost::console::scopes::Scopes;
use clawhost::console::service::{self, TokenExpiry};
use clawhost::console::{Console, ConsoleOptions, admins, app as console_app, auth};
use http::{Method, Request, StatusCode};

use crate::console_support::*;

/// A token created the way the tokens page does; returns its value.
async fn token(app: &TestApp, scopes: &str, expiry: TokenExpiry) -> String {
    let admin = clawhost::console::db::Admin {
        id: app.admin,
        email: "admin@example.com".into(),
    };
    service::create_scoped_api_token(
        &app.ctx,
        &admin,
        "test token",
        &Scopes::parse([scopes]).unwrap(),
        expiry,
    )
    .await
    .unwrap()
}

async fn call(app: &TestApp, token: &str, method: Method, uri: &str) -> Resp {
    app.send(
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn read_only_token_cannot_delete_or_rotate(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let read = token(&app, "read", TokenExpiry::Days(30)).await;
    for uri in [
        "/api/v1/clients".to_string(),
        format!("/api/v1/clients/{id}"),
        "/api/v1/fleet".into(),
        "/api/v1/usage".into(),
        "/api/v1/audit".into(),
    ] {
        let r = call(&app, &read, Method::GET, &uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
    }
    let del = call(
        &app,
        &read,
        Method::DELETE,
        &format!("/api/v1/clients/{id}?retention=Delete"),
    )
    .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    assert!(
        del.json()["error"]
            .as_str()
            .unwrap()
            .contains("clients:delete")
    );
    let rot = call(
        &app,
        &read,
        Method::POST,
        &format!("/api/v1/clients/{id}/rotate-token"),
    )
    .await;
    assert_eq!(rot.status, StatusCode::FORBIDDEN);
    assert!(
        rot.json()["error"]
            .as_str()
            .unwrap()
            .contains("clients:rotate-token")
    );
    assert!(
        !rot.body.contains("gateway"),
        "no token leaks: {}",
        rot.body
    );
    // A per-action token: usage only.
    let usage = token(&app, "usage:read", TokenExpiry::Days(30)).await;
    assert_eq!(
        call(&app, &usage, Method::GET, "/api/v1/usage")
            .await
            .status,
        StatusCode::OK
    );
    let r = call(&app, &usage, Method::GET, "/api/v1/clients").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("clients:read"), "{}", r.body);
    // Last use is recorded and shown.
    let tokens = app.ctx.db.list_api_tokens().await.unwrap();
    let used = tokens.iter().find(|t| t.scopes == "usage:read").unwrap();
    assert!(used.last_used_at.is_some());
    assert!(used.expires_at.unwrap() > service::now() + 29 * 86_400);
    let page = app.get("/tokens").await;
    assert!(page.body.contains("usage:read"), "scopes listed");
    assert!(page.body.contains("Expires") && page.body.contains("Last used"));
    // Nothing was deleted.
    assert!(
        app.ctx
            .db
            .client(id)
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_none()
    );
}

async fn expired_token_is_refused_saying_expired(app: TestApp) {
    let value = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
    let now = service::now();
    app.ctx
        .db
        .create_scoped_api_token(
            app.admin,
            "old",
            &auth::token_hash(&value),
            "chk_",
            "full",
            Some(now - 60),
            now - 90 * 86_400,
        )
        .await
        .unwrap();
    let r = call(&app, &value, Method::GET, "/api/v1/clients").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["error"].as_str().unwrap().contains("expired"),
        "{}",
        r.body
    );
    let t = app.ctx.db.list_api_tokens().await.unwrap();
    let old = t.iter().find(|t| t.name == "old").unwrap();
    assert_eq!(old.last_used_at, None, "a refused use is not a use");
    assert!(app.get("/tokens").await.body.contains("expired"));
}

async fn tokens_page_creates_scoped_expiring_tokens(app: TestApp) {
    let r = app
        .post(
            "/tokens",
            &[
                ("name", "billing export"),
                ("preset", "custom"),
                ("scope", "usage:read"),
                ("scope", "clients:read"),
                ("expires", "30"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let value = r
        .body
        .split("id=\"api-token\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(value.starts_with("chk_"));
    let t = app.ctx.db.list_api_tokens().await.unwrap();
    let made = t.iter().find(|t| t.name == "billing export").unwrap();
    assert_eq!(made.scopes, "usage:read clients:read");
    let days = (made.expires_at.unwrap() - made.created_at) / 86_400;
    assert_eq!(days, 30);
    let del = call(&app, &value, Method::DELETE, "/api/v1/clients/1").await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    // Defaults: read-only, 90 days; "never" only when chosen.
    app.post("/tokens", &[("name", "defaults")]).await;
    app.post(
        "/tokens",
        &[
            ("name", "forever"),
            ("preset", "full"),
            ("expires", "never"),
        ],
    )
    .await;
    let t = app.ctx.db.list_api_tokens().await.unwrap();
    let d = t.iter().find(|t| t.name == "defaults").unwrap();
    assert_eq!(d.scopes, "read");
    assert_eq!((d.expires_at.unwrap() - d.created_at) / 86_400, 90);
    let f = t.iter().find(|t| t.name == "forever").unwrap();
    assert_eq!((f.scopes.as_str(), f.expires_at), ("full", None));
    // Unknown scopes and expiries are refused, not widened.
    for bad in [
        vec![("name", "x"), ("preset", "admin")],
        vec![("name", "x"), ("preset", "custom")],
        vec![("name", "x"), ("preset", "custom"), ("scope", "root")],
        vec![("name", "x"), ("expires", "-1")],
        vec![("name", "x\u{202E}gnirts")],
    ] {
        let r = app.post("/tokens", &bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    assert_eq!(app.ctx.db.list_api_tokens().await.unwrap().len(), 4);
}

/// A console over its own SQLite file, so the admin CLI functions can open it too.
async fn sqlite_with_url() -> (TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/console.sqlite", dir.path().display());
    (build(&url, Some(dir)).await, url)
}

#[tokio::test]
async fn password_reset_ends_sessions_and_revokes_tokens() {
    let (app, url) = sqlite_with_url().await;
    assert_eq!(app.get("/clients").await.status, StatusCode::OK);
    assert_eq!(
        app.api(Method::GET, "/api/v1/clients", None).await.status,
        StatusCode::OK
    );
    let said = admins::create_or_reset(&url, "admin@example.com", "a new password 1", true)
        .await
        .unwrap();
    assert!(
        said.contains("1 session(s) ended") && said.contains("1 API token(s) revoked"),
        "{said}"
    );
    let file = url.trim_start_matches("sqlite://");
    assert!(said.contains(&format!("sqlite:{file}")), "{said}");
    let page = app.get("/clients").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/login"));
    assert_eq!(
        app.api(Method::GET, "/api/v1/clients", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = app.ctx.db.audit_events(None, 5, 0).await.unwrap();
    assert_eq!(audit[0].action, "admin.reset_password");
    assert!(
        audit[0]
            .after
            .as_deref()
            .unwrap()
            .contains("api_tokens_revoked")
    );
    // Creating says where too.
    let made = admins::create_or_reset(&url, "second@example.com", "another password 1", false)
        .await
        .unwrap();
    assert!(made.contains(&format!("sqlite:{file}")), "{made}");
}

async fn sign_in(
    router: &axum::Router,
    email: &str,
    password: &str,
    peer: &str,
    xff: Option<&str>,
) -> Resp {
    let body = form_body(&[("_csrf", "abc"), ("email", email), ("password", password)]);
    let mut r = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "clawhost_login_csrf=abc");
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    let mut req = r.body(Body::from(body)).unwrap();
    let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    send_to(router, req).await
}

#[tokio::test]
async fn disabled_admin_cannot_sign_in_and_its_session_and_tokens_stop() {
    let (app, url) = sqlite_with_url().await;
    let hash = auth::hash_password("correct horse battery").unwrap();
    app.ctx
        .db
        .set_admin_password("admin@example.com", &hash)
        .await
        .unwrap();
    let said = admins::set_disabled(&url, "admin@example.com", true)
        .await
        .unwrap();
    assert!(
        said.contains("disabled") && said.contains("sqlite:"),
        "{said}"
    );
    assert_eq!(app.get("/clients").await.status, StatusCode::SEE_OTHER);
    let r = app.api(Method::GET, "/api/v1/clients", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("disabled"), "{}", r.body);
    let r = sign_in(
        &app.router,
        "admin@example.com",
        "correct horse battery",
        "192.0.2.1",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("disabled"));
    assert!(
        !r.headers
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("clawhost_session="))
    );
    let list = admins::list(&url).await.unwrap();
    let line = list
        .lines()
        .find(|l| l.starts_with("admin@example.com"))
        .unwrap();
    assert!(
        line.split_whitespace().count() >= 6,
        "disabled time shown: {line}"
    );
    assert!(list.contains("1 administrator(s) in sqlite:"), "{list}");
    // Enabled again: signs in, and the (unrevoked) token works again.
    admins::set_disabled(&url, "admin@example.com", false)
        .await
        .unwrap();
    let r = sign_in(
        &app.router,
        "admin@example.com",
        "correct horse battery",
        "192.0.2.1",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        app.api(Method::GET, "/api/v1/clients", None).await.status,
        StatusCode::OK
    );
    let list = admins::list(&url).await.unwrap();
    let line = list
        .lines()
        .find(|l| l.starts_with("admin@example.com"))
        .unwrap();
    assert!(line.trim_end().ends_with(" 1"), "one live token: {line}");
    assert!(
        admins::set_disabled(&url, "nobody@example.com", true)
            .await
            .is_err()
    );
}

/// The limiter is keyed by account and real client address, so a spray of failures with
/// random e-mails never stops an admin's correct sign-in (with or without a proxy).
async fn spray_never_locks_out_an_admin(app: TestApp) {
    let hash = auth::hash_password("correct horse battery").unwrap();
    app.ctx
        .db
        .set_admin_password("admin@example.com", &hash)
        .await
        .unwrap();
    // Directly reachable console: the attacker's address is capped, the admin's is not.
    let mut refused = 0;
    for i in 0..40 {
        let r = sign_in(
            &app.router,
            &format!("random{i}@example.com"),
            "guess",
            "198.51.100.7",
            None,
        )
        .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused > 0, "the spraying address is limited");
    let ok = sign_in(
        &app.router,
        "admin@example.com",
        "correct horse battery",
        "192.0.2.10",
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    let r = sign_in(
        &app.router,
        "random99@example.com",
        "guess",
        "198.51.100.7",
        Some("192.0.2.99"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // Behind a trusted ingress every request comes from its address: X-Forwarded-For counts.
    let opts = ConsoleOptions {
        namespace: NS.into(),
        trusted_proxies: auth::IpCidr::parse_list("10.0.0.0/8").unwrap(),
        ..Default::default()
    };
    let proxied = console_app(Console::new(
        app.ctx.db.clone(),
        app.cluster.clone(),
        OperatorConfig::default(),
        opts,
    ));
    for i in 0..40 {
        sign_in(
            &proxied,
            &format!("random{i}@example.com"),
            "guess",
            "10.0.0.5",
            Some("198.51.100.7"),
        )
        .await;
    }
    let ok = sign_in(
        &proxied,
        "admin@example.com",
        "correct horse battery",
        "10.0.0.5",
        Some("192.0.2.10"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    // Even with no client address at all (a proxy that sends no header).
    let ok = sign_in(
        &proxied,
        "admin@example.com",
        "correct horse battery",
        "10.0.0.5",
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
}

async fn account_backoff_gives_the_same_answer_for_unknown_accounts(app: TestApp) {
    let hash = auth::hash_password("correct horse battery").unwrap();
    app.ctx
        .db
        .set_admin_password("admin@example.com", &hash)
        .await
        .unwrap();
    let mut last = Vec::new();
    for (n, email) in ["admin@example.com", "nobody@example.com"]
        .iter()
        .enumerate()
    {
        // Each from its own address: only the account's backoff applies.
        let peer = format!("192.0.2.{}", 20 + n);
        for _ in 0..3 {
            let r = sign_in(&app.router, email, "wrong password!", &peer, None).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let r = sign_in(&app.router, email, "correct horse battery", &peer, None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert!(r.body.contains("Try again in 1 second."), "{}", r.body);
        assert_eq!(r.headers.get("retry-after").unwrap(), "1");
        last.push(
            r.body
                .split("<ul class=\"errors\">")
                .nth(1)
                .unwrap()
                .split("</ul>")
                .next()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(last[0], last[1], "no account-existence leak");
    // Another account is unaffected.
    let r = sign_in(&app.router, "other@example.com", "x", "192.0.2.20", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn markup_emails_and_bidi_names_are_refused(app: TestApp) {
    const XSS: &str = "\"><svg/onload=alert(1)>@x.com";
    let before = app
        .ctx
        .db
        .list_clients(&Default::default(), None)
        .await
        .unwrap()
        .1;
    let mut f = new_client_fields("Evil", "evil-one");
    f[1] = ("email", XSS);
    let r = app.post("/clients", &f).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .api(
            Method::POST,
            "/api/v1/clients",
            Some(serde_json::json!({"name": "Evil", "email": XSS, "assistant_name": "evil-two"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(admins::check_email(XSS).is_err());
    assert!(admins::check_email("a b@example.com").is_err());
    assert_eq!(
        admins::check_email(" Ops@Example.com ").unwrap(),
        "ops@example.com"
    );
    let f = new_client_fields("Acme \u{202E}lagel", "evil-three");
    let r = app.post("/clients", &f).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("bidirectional"), "{}", r.body);
    let after = app
        .ctx
        .db
        .list_clients(&Default::default(), None)
        .await
        .unwrap()
        .1;
    assert_eq!(before, after, "nothing created");
}

async fn audit_page_isolates_user_values(app: TestApp) {
    // An entry written before names were checked.
    app.ctx
        .db
        .audit(
            service::now(),
            "admin@example.com",
            "client.create",
            None,
            "old\u{202E}name",
            None,
            Some("{\"name\":\"x\u{202E}y\"}"),
        )
        .await
        .unwrap();
    let page = app.get("/audit").await;
    assert!(
        page.body.contains("<bdi>old\u{202E}name</bdi>"),
        "target isolated"
    );
    assert!(
        page.body.contains("<bdi>admin@example.com</bdi>"),
        "actor isolated"
    );
    assert!(
        page.body
            .contains("<bdi class=\"field\">name</bdi>: <bdi class=\"after\">x\u{202E}y</bdi>"),
        "after isolated"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.sqlite");
    let db = clawhost::console::db::Db::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    db.create_admin("a@example.com", "x", 1).await.unwrap();
    assert_eq!(mode(&file), 0o600);
    let wal = dir.path().join("new.sqlite-wal");
    assert!(wal.exists(), "WAL mode");
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&dir.path().join("new.sqlite-shm")), 0o600);
    drop(db);
    // An existing world-readable file (an older version) is tightened at start.
    let old = dir.path().join("old.sqlite");
    std::fs::write(&old, b"").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    clawhost::console::db::Db::connect(&format!("sqlite://{}", old.display()))
        .await
        .unwrap();
    assert_eq!(mode(&old), 0o600);
}

/// A name stored before bidi controls were refused cannot reorder the list or the headline.
async fn stored_names_are_isolated_on_the_pages(app: TestApp) {
    let id = app
        .ctx
        .db
        .insert_client(
            &clawhost::console::db::NewClientRecord {
                name: "old\u{202E}record".into(),
                email: "old@example.com".into(),
                billing_status: "active".into(),
                notes: String::new(),
                namespace: "clients".into(),
                assistant_name: "old-record".into(),
            },
            service::now(),
        )
        .await
        .unwrap();
    let list = app.get("/clients?q=old").await.body;
    assert!(list.contains("<bdi>old\u{202E}record</bdi>"), "{list}");
    let page = app.get(&format!("/clients/{id}")).await.body;
    assert!(page.contains("<bdi>old\u{202E}record</bdi>"), "{page}");
}

both_backends!(
    stored_names_are_isolated_on_the_pages,
    read_only_token_cannot_delete_or_rotate,
    expired_token_is_refused_saying_expired,
    tokens_page_creates_scoped_expiring_tokens,
    spray_never_locks_out_an_admin,
    account_backoff_gives_the_same_answer_for_unknown_accounts,
    markup_emails_and_bidi_names_are_refused,
    audit_page_isolates_user_values,
);
