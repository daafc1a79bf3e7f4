//! Authorization: walks the one route table, so a new route cannot be forgotten. Every
//! non-public route refuses an anonymous request; every state-changing route refuses a
//! request without a valid CSRF token; the API refuses cookies (so CSRF cannot apply) and
//! every API route refuses a token that lacks the scope the route declares.

use crate::console_support::*;
use axum::body::Body;
use clawhost::console::scopes::Scope;
use clawhost::console::{Access, auth, routes, service};
use http::{Method, Request, StatusCode};

fn concrete(path: &str, id: i64) -> String {
    path.replace("{id}", &id.to_string())
}

fn request(
    method: &Method,
    uri: &str,
    cookie: Option<&str>,
    body: &str,
    json: bool,
) -> Request<Body> {
    let mut r = Request::builder().method(method.clone()).uri(uri);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r = r.header(
        "content-type",
        if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        },
    );
    r.body(Body::from(body.to_string())).unwrap()
}

async fn every_route_is_guarded(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let audit_before = app.audit_count().await;
    let (other_cookie, other_csrf) = app.second_session().await;
    let table = routes();
    // The second session is live (its cookie opens a page), so refusing its token below is
    // about the token's binding to the session, not a dead session.
    let page = table
        .iter()
        .find(|r| r.access == Access::Page && r.path != "/" && !r.path.contains('{'))
        .expect("a page route");
    let live = app
        .send(request(
            &page.method,
            page.path,
            Some(&other_cookie),
            "",
            false,
        ))
        .await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "second session on {}",
        page.path
    );
    assert!(table.len() >= 40, "route table lists every route");
    let mut checked = 0;
    for r in &table {
        let uri = concrete(r.path, id);
        // A body that would be accepted, so only the guard can refuse it.
        let form = "confirm=acme-legal&retention=Delete&version=2026.10.1&plan=large&billing_status=trial&notes=x&name=t&email=a@example.com&password=x";
        match r.access {
            // The first-run setup link is public, but refused once an administrator exists.
            Access::Public if r.path.starts_with("/setup/") => {
                let res = app.send(request(&r.method, &uri, None, "", false)).await;
                assert_eq!(res.status, StatusCode::GONE, "{} {uri}", r.method);
            }
            Access::Public => {
                let res = app.send(request(&r.method, &uri, None, "", false)).await;
                assert!(
                    res.status.is_success(),
                    "{} {uri} is public: {}",
                    r.method,
                    res.status
                );
            }
            // The client's handoff page: no session; an unknown link token is a plain 404.
            Access::Handoff => {
                assert!(
                    r.path.starts_with("/welcome/"),
                    "{} is a handoff route",
                    r.path
                );
                let res = app.send(request(&r.method, &uri, None, "", false)).await;
                assert_eq!(res.status, StatusCode::NOT_FOUND, "{} {uri}", r.method);
            }
            // The payment provider's webhook: its signature is the credential, checked
            // against the configured secret; with none configured it does not exist.
            Access::Webhook => {
                assert_eq!(r.method, Method::POST);
                let res = app.send(request(&r.method, &uri, None, "{}", true)).await;
                assert_eq!(
                    res.status,
                    StatusCode::NOT_FOUND,
                    "{uri} without a provider"
                );
                let res = app
                    .send(request(&r.method, &uri, Some(&app.cookie), "{}", true))
                    .await;
                assert_eq!(
                    res.status,
                    StatusCode::NOT_FOUND,
                    "{uri}: a session is no credential"
                );
            }
            Access::Page => {
                assert_eq!(r.method, Method::GET, "pages only read");
                let res = app.send(request(&r.method, &uri, None, "", false)).await;
                assert_eq!(res.status, StatusCode::SEE_OTHER, "{uri} anonymous");
                assert_eq!(res.location(), Some("/login"));
                let bogus = app
                    .send(request(
                        &r.method,
                        &uri,
                        Some("clawhost_session=forged"),
                        "",
                        false,
                    ))
                    .await;
                assert_eq!(bogus.status, StatusCode::SEE_OTHER, "{uri} forged session");
            }
            Access::Form => {
                assert_ne!(r.method, Method::GET);
                let anon = app
                    .send(request(
                        &r.method,
                        &uri,
                        None,
                        &format!("_csrf={}&{form}", app.csrf),
                        false,
                    ))
                    .await;
                assert_eq!(anon.status, StatusCode::SEE_OTHER, "{uri} anonymous");
                assert_eq!(anon.location(), Some("/login"));
                let no_csrf = app
                    .send(request(&r.method, &uri, Some(&app.cookie), form, false))
                    .await;
                assert_eq!(no_csrf.status, StatusCode::FORBIDDEN, "{uri} without CSRF");
                let wrong = app
                    .send(request(
                        &r.method,
                        &uri,
                        Some(&app.cookie),
                        &format!("_csrf=wrong&{form}"),
                        false,
                    ))
                    .await;
                assert_eq!(
                    wrong.status,
                    StatusCode::FORBIDDEN,
                    "{uri} with a wrong CSRF token"
                );
                // Another live session's token (well-formed, genuinely issued) does not
                // work with this session's cookie: the token is bound to its session.
                assert_ne!(other_csrf, app.csrf);
                let other = app
                    .send(request(
                        &r.method,
                        &uri,
                        Some(&app.cookie),
                        &format!("_csrf={}&{form}", urlencoding::encode(&other_csrf)),
                        false,
                    ))
                    .await;
                assert_eq!(
                    other.status,
                    StatusCode::FORBIDDEN,
                    "{uri} with another session's CSRF token"
                );
            }
            Access::LoginForm => {
                let no_cookie = app
                    .send(request(
                        &r.method,
                        &uri,
                        None,
                        &format!("_csrf=abc&{form}"),
                        false,
                    ))
                    .await;
                assert_eq!(
                    no_cookie.status,
                    StatusCode::FORBIDDEN,
                    "{uri} without the CSRF cookie"
                );
                let mismatch = app
                    .send(request(
                        &r.method,
                        &uri,
                        Some("clawhost_login_csrf=abc"),
                        &format!("_csrf=abd&{form}"),
                        false,
                    ))
                    .await;
                assert_eq!(
                    mismatch.status,
                    StatusCode::FORBIDDEN,
                    "{uri} CSRF mismatch"
                );
            }
            Access::Api(scope) => {
                let body = if r.method == Method::GET || r.method == Method::DELETE {
                    ""
                } else {
                    "{\"plan\":\"large\",\"version\":\"2026.10.1\"}"
                };
                let anon = app.send(request(&r.method, &uri, None, body, true)).await;
                assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{uri} anonymous");
                // A signed-in browser session is not an API credential: no CSRF exposure.
                let cookie = app
                    .send(request(&r.method, &uri, Some(&app.cookie), body, true))
                    .await;
                assert_eq!(
                    cookie.status,
                    StatusCode::UNAUTHORIZED,
                    "{uri} with only a session cookie"
                );
                let mut bad = request(&r.method, &uri, None, body, true);
                bad.headers_mut().insert(
                    "authorization",
                    "Bearer chk_not-a-real-token".parse().unwrap(),
                );
                assert_eq!(
                    app.send(bad).await.status,
                    StatusCode::UNAUTHORIZED,
                    "{uri} unknown token"
                );
                // A live token holding every scope but this route's: 403 naming the scope.
                let others: Vec<&str> = Scope::ALL
                    .iter()
                    .filter(|s| **s != scope)
                    .map(|s| s.name())
                    .collect();
                let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
                app.ctx
                    .db
                    .create_scoped_api_token(
                        app.admin,
                        "scoped",
                        &auth::token_hash(&token),
                        "chk_",
                        &others.join(" "),
                        Some(service::now() + 3600),
                        service::now(),
                    )
                    .await
                    .unwrap();
                let mut lacking = request(&r.method, &uri, None, body, true);
                lacking
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                let res = app.send(lacking).await;
                assert_eq!(
                    res.status,
                    StatusCode::FORBIDDEN,
                    "{} {uri} without {scope}",
                    r.method
                );
                let msg = res.json()["error"].as_str().unwrap_or_default().to_string();
                assert!(msg.contains(scope.name()), "{uri}: {msg}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, table.len());
    // Nothing changed: no audit event, every Assistant still there and unchanged.
    assert_eq!(app.audit_count().await, audit_before);
    use clawhost::console::cluster::Cluster;
    let a = app
        .cluster
        .get(NS, "acme-legal")
        .await
        .unwrap()
        .expect("not deleted");
    assert!(!a.spec.suspended && a.spec.plan.as_deref() == Some("standard"));
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

async fn state_changing_routes_are_never_get(_app: TestApp) {
    for r in routes() {
        if r.method == Method::GET {
            assert!(
                match r.access {
                    Access::Public | Access::Page | Access::Handoff => true,
                    Access::Api(scope) => scope.is_read(),
                    _ => false,
                },
                "{} {} changes state via GET (or needs a write scope to read)",
                r.method,
                r.path
            );
        } else {
            assert!(
                match r.access {
                    // The handoff POST spends its own link: the token in the path is the credential.
                    Access::Form | Access::LoginForm | Access::Handoff => true,
                    // A signed provider event.
                    Access::Webhook => true,
                    Access::Api(scope) => !scope.is_read(),
                    _ => false,
                },
                "{} {} changes state with a read scope",
                r.method,
                r.path
            );
        }
    }
}

both_backends!(every_route_is_guarded, state_changing_routes_are_never_get);
