//! Sign-in and sign-out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::auth::{
    self as a, CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS,
};
use crate::console::service::now;
use crate::console::{Ctx, Session};

/// The peer address when the server runs with connect info (absent in in-process tests).
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

fn login_markup(csrf: &str, email: &str, error: Option<&str>, notice: Option<Markup>) -> Markup {
    super::bare_page(
        "Sign in",
        html! {
            form.login method="post" action="/login" {
                h1 { "Sign in" }
                @if let Some(n) = notice { (n) }
                @if let Some(e) = error { ul.errors { li { (e) } } }
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label for="email" { "E-mail" }
                input #email type="email" name="email" value=(email) required autocomplete="username" autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" required autocomplete="current-password";
                button.primary type="submit" { "Sign in" }
            }
        },
    )
}

fn secure(ctx: &Ctx, headers: &HeaderMap) -> bool {
    super::super::is_secure(ctx, headers)
}

fn login_response(
    ctx: &Ctx,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    login_response_with_notice(ctx, headers, status, email, error, None)
}

fn login_response_with_notice(
    ctx: &Ctx,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    notice: Option<Markup>,
) -> Response {
    with_login_csrf(ctx, headers, status, |csrf| {
        login_markup(csrf, email, error, notice)
    })
}

/// A page holding a pre-session form (sign-in, first-run setup): a fresh CSRF token in the
/// double-submit cookie and in the form `render` builds.
pub(super) fn with_login_csrf(
    ctx: &Ctx,
    headers: &HeaderMap,
    status: StatusCode,
    render: impl FnOnce(&str) -> Markup,
) -> Response {
    let csrf = a::random_token();
    let cookie = a::set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, secure(ctx, headers));
    (status, [(header::SET_COOKIE, cookie)], render(&csrf)).into_response()
}

pub async fn login_page(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let notice = super::setup::first_run_notice(&ctx).await;
    login_response_with_notice(&ctx, &headers, StatusCode::OK, "", None, notice)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn login(
    State(ctx): State<Ctx>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let email = f.email.trim().to_lowercase();
    let client = a::client_ip(ip, &headers, &ctx.opts.trusted_proxies);
    let started = std::time::Instant::now();
    if let Err(wait) = ctx.login_limiter.check(&email, client, started) {
        // The same answer whether or not the account exists.
        let n = wait.seconds();
        let msg = format!(
            "Too many failed sign-ins. Try again in {n} second{}.",
            if n == 1 { "" } else { "s" }
        );
        let mut res = login_response(
            &ctx,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            Some(&msg),
        );
        if let Ok(v) = wait.seconds().to_string().parse() {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let admin = match ctx.db.admin_by_email(&email).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "sign-in lookup failed");
            return login_response(
                &ctx,
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                &email,
                Some("The database is unavailable."),
            );
        }
    };
    let ok = match &admin {
        Some(adm) => a::verify_password(&f.password, &adm.password_hash),
        None => {
            a::dummy_verify(&f.password);
            false
        }
    };
    let Some(adm) = admin.filter(|_| ok) else {
        ctx.login_limiter
            .record_failure(&email, client, std::time::Instant::now());
        tracing::info!(email = %email, "failed sign-in");
        // With no administrator yet, say how to create one (a first-run, not a typo).
        let notice = super::setup::first_run_notice(&ctx).await;
        return login_response_with_notice(
            &ctx,
            &headers,
            StatusCode::UNAUTHORIZED,
            &email,
            Some("Wrong e-mail or password."),
            notice,
        );
    };
    ctx.login_limiter.record_success(&email);
    // The right password of a disabled account: say so (it proves nothing to an attacker).
    if !matches!(ctx.db.admin_disabled_at(adm.admin.id).await, Ok(None)) {
        tracing::info!(email = %email, "sign-in of a disabled administrator refused");
        return login_response(
            &ctx,
            &headers,
            StatusCode::FORBIDDEN,
            &email,
            Some(
                "This account is disabled. Ask another administrator to run clawhost admin enable.",
            ),
        );
    }
    let sid = a::random_token();
    let t = now();
    if let Err(e) = ctx
        .db
        .create_session(
            &a::token_hash(&sid),
            adm.admin.id,
            &a::random_token(),
            t,
            t + SESSION_SECONDS,
        )
        .await
    {
        tracing::error!(error = %e, "session creation failed");
        return login_response(
            &ctx,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            &email,
            Some("The database is unavailable."),
        );
    }
    let _ = ctx.db.record_sign_in(adm.admin.id, t).await;
    let _ = ctx
        .db
        .audit(
            t,
            &adm.admin.email,
            "admin.sign_in",
            None,
            "console",
            None,
            None,
        )
        .await;
    let s = secure(&ctx, &headers);
    let mut res = Redirect::to("/clients").into_response();
    let h = res.headers_mut();
    if let Ok(v) = a::set_cookie(SESSION_COOKIE, &sid, SESSION_SECONDS, s).parse() {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = a::set_cookie(LOGIN_CSRF_COOKIE, "", 0, s).parse() {
        h.append(header::SET_COOKIE, v);
    }
    res
}

pub async fn logout(
    State(ctx): State<Ctx>,
    axum::Extension(s): axum::Extension<Session>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = a::cookie(&headers, SESSION_COOKIE) {
        let _ = ctx.db.delete_session(&a::token_hash(id)).await;
    }
    let _ = ctx
        .db
        .audit(
            now(),
            &s.admin.email,
            "admin.sign_out",
            None,
            "console",
            None,
            None,
        )
        .await;
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = a::set_cookie(SESSION_COOKIE, "", 0, s.secure).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
