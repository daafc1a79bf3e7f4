//! The first-run setup page (`/setup/<token>`) and the sign-in page's first-run notice.
//! CSRF: the double-submit cookie of the sign-in form (there is no session yet).

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::auth::{
    self as a, CSRF_FIELD, LOGIN_CSRF_COOKIE, MIN_PASSWORD_LEN, SESSION_COOKIE, SESSION_SECONDS,
};
use crate::console::service::now;
use crate::console::setup::{self, SetupError, SetupState};
use crate::console::{Console, Ctx};

/// The sign-in page's notice while no administrator exists (`None` once one does).
pub async fn first_run_notice(ctx: &Console) -> Option<Markup> {
    match ctx.db.admin_count().await {
        Ok(0) => Some(html! {
            div.first-run role="status" {
                strong { "No administrator exists yet." }
                " Open the setup link printed in the console's log, or run "
                code { (setup::admin_create_command(&ctx.opts.database_url)) }
                " and sign in with that account."
            }
        }),
        _ => None,
    }
}

fn setup_markup(token: &str, csrf: &str, email: &str, error: Option<&str>) -> Markup {
    super::bare_page(
        "Set up",
        html! {
            form.login method="post" action={ "/setup/" (token) } {
                h1 { "Create the first administrator" }
                p.dim { "This one-time link works once and for an hour. More administrators can be added later with " code { "clawhost admin create" } "." }
                @if let Some(e) = error { ul.errors { li { (e) } } }
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label for="email" { "E-mail" }
                input #email type="email" name="email" value=(email) required autocomplete="username" autofocus;
                label for="password" { "Password " span.dim { "(at least " (MIN_PASSWORD_LEN) " characters)" } }
                input #password type="password" name="password" required minlength=(MIN_PASSWORD_LEN) autocomplete="new-password";
                label for="repeat" { "Repeat the password" }
                input #repeat type="password" name="repeat" required autocomplete="new-password";
                button.primary type="submit" { "Create administrator and sign in" }
            }
        },
    )
}

fn form_response(
    ctx: &Ctx,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    super::auth::with_login_csrf(ctx, headers, status, |csrf| {
        setup_markup(token, csrf, email, error)
    })
}

/// The page for a link that no longer works: 410 once an administrator exists, else 404.
fn refused(state: SetupState) -> Response {
    if state == SetupState::Done {
        (
            StatusCode::GONE,
            super::message_page(
                "Setup is complete",
                "An administrator exists, so this setup link no longer works. Sign in instead.",
            ),
        )
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            super::message_page(
                "Setup link not valid",
                "This setup link has expired, was already used or was replaced. Restart the console: it prints a new link in its log while no administrator exists.",
            ),
        )
            .into_response()
    }
}

fn db_unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "setup: database error");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        super::message_page(
            "Database unavailable",
            "The database did not answer; try again.",
        ),
    )
        .into_response()
}

pub async fn show(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    match setup::state(&ctx, &token).await {
        Ok(SetupState::Open) => form_response(&ctx, &headers, StatusCode::OK, &token, "", None),
        Ok(other) => refused(other),
        Err(e) => db_unavailable(&e),
    }
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
}

pub async fn create(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<SetupForm>,
) -> Response {
    let (admin_id, email) =
        match setup::create_first_admin(&ctx, &token, &f.email, &f.password, &f.repeat).await {
            Ok(x) => x,
            Err(SetupError::Invalid(msg)) => {
                return form_response(
                    &ctx,
                    &headers,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &token,
                    f.email.trim(),
                    Some(&msg),
                );
            }
            Err(SetupError::Refused) => {
                return match setup::state(&ctx, &token).await {
                    Ok(s) => refused(s),
                    Err(e) => db_unavailable(&e),
                };
            }
            Err(SetupError::Db(e)) => return db_unavailable(&e),
        };
    // Signed in at once: the person who just chose the password is at the keyboard.
    let sid = a::random_token();
    let t = now();
    if let Err(e) = ctx
        .db
        .create_session(
            &a::token_hash(&sid),
            admin_id,
            &a::random_token(),
            t,
            t + SESSION_SECONDS,
        )
        .await
    {
        return db_unavailable(&e);
    }
    tracing::info!(email = %email, "first administrator created with the setup link");
    let secure = super::super::is_secure(&ctx, &headers);
    let mut res = Redirect::to("/clients").into_response();
    let h = res.headers_mut();
    if let Ok(v) = a::set_cookie(SESSION_COOKIE, &sid, SESSION_SECONDS, secure).parse() {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = a::set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure).parse() {
        h.append(header::SET_COOKIE, v);
    }
    res
}
