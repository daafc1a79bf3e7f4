//! Server-rendered pages (maud escapes every interpolated value). No JavaScript.

pub mod access;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod billing;
pub mod client;
pub mod clients;
pub mod confirm;
pub mod fleet;
pub mod setup;
pub mod tokens;
pub mod usage;
pub mod welcome;

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::service::ActionError;
use super::{Console, Session};

pub const CSS: &str = include_str!("console.css");

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        message_page("Not found", "There is no page at this address."),
    )
        .into_response()
}

/// A bare page (no navigation) with a title and a message.
pub fn message_page(title: &str, message: &str) -> Markup {
    bare_page(
        title,
        html! {
            div.login {
                h1 { (title) }
                p { (message) }
                p { a href="/clients" { "Back to the console" } }
            }
        },
    )
}

/// The frame of the pages without a session (sign-in, first-run setup, messages): the
/// brand on the dark band and one narrow panel.
pub fn bare_page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body.bare {
                main.narrow {
                    div.brandline { span.logo { "◆" } " clawhost " span.sub { "console" } }
                    (content)
                }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · clawhost console" }
        link rel="stylesheet" href="/static/console.css";
        link rel="icon" href="data:,";
    }
}

/// Which navigation entry is highlighted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Clients,
    Fleet,
    Usage,
    Audit,
    Tokens,
    Billing,
}

/// The page frame: navigation, the cluster banner, the signed-in admin and sign-out.
pub fn layout(ctx: &Console, s: &Session, nav: Nav, title: &str, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=[(n == nav).then_some("active")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top {
                    a.brand href="/clients" { span.logo { "◆" } " clawhost" span.sub { "console" } }
                    nav {
                        (item(Nav::Clients, "/clients", "Clients"))
                        (item(Nav::Fleet, "/fleet", "Fleet"))
                        (item(Nav::Usage, "/usage", "Usage"))
                        (item(Nav::Billing, "/billing", "Billing"))
                        (item(Nav::Audit, "/audit", "Audit log"))
                        (item(Nav::Tokens, "/tokens", "API tokens"))
                    }
                    div.who {
                        span { (s.admin.email) }
                        form method="post" action="/logout" {
                            (csrf(s))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some(reason) = ctx.cluster.health() {
                    div.banner role="alert" {
                        strong { "Kubernetes cluster unreachable. " }
                        "Client records, usage and the audit log still work; instance state and actions are unavailable (phases show as Unknown, with the last known one marked \"was\"; usage is not sampled). Reason: "
                        code { (reason) }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name=(super::auth::CSRF_FIELD) value=(s.csrf); }
}

/// Renders an action error as a page with the right status.
pub fn action_error(ctx: &Console, s: &Session, e: &ActionError, back: &str) -> Response {
    let body = html! {
        h1 { "The action was not carried out" }
        @match e {
            ActionError::Invalid(list) => {
                ul.errors { @for f in list { li { strong { (super::service::field_label(&f.field)) } ": " (f.message) } } }
            }
            ActionError::Db(_) => p.error { "A database error occurred; it has been logged." }
            other => p.error { (other.to_string()) }
        }
        p { a.button href=(back) { "Back" } }
    };
    if let ActionError::Db(d) = e {
        tracing::error!(error = %d, "database error");
    }
    (e.status(), layout(ctx, s, Nav::Clients, "Error", body)).into_response()
}

/// The one format of every time on the console's pages: "2026-12-03 07:10 UTC".
pub fn fmt_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// [`fmt_time`] with the age: "2026-12-03 07:10 UTC (5m ago)".
pub fn fmt_time_ago(unix: i64, now: i64) -> String {
    format!("{} ({} ago)", fmt_time(unix), age(unix, now))
}

/// A Kubernetes (RFC 3339) timestamp in the console's format, with its age; text that is
/// not a timestamp is shown as it is.
pub fn fmt_rfc3339_ago(s: &str, now: i64) -> String {
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => fmt_time_ago(t.as_second(), now),
        Err(_) => s.to_string(),
    }
}

/// "3d", "5h", "12m": the age column, like kubectl.
pub fn age(unix: i64, now: i64) -> String {
    let s = (now - unix).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

pub fn phase_badge(phase: &str) -> Markup {
    let class = match phase {
        "Running" => "ok",
        "Suspended" => "muted",
        "Degraded" | "Pending" | "Provisioning" | "Terminating" => "warn",
        "Failed" | "Missing" => "bad",
        _ => "muted",
    };
    html! { span class={ "badge " (class) } { (phase) } }
}

pub fn ready_badge(ready: Option<bool>) -> Markup {
    match ready {
        Some(true) => html! { span.badge.ok { "Ready" } },
        Some(false) => html! { span.badge.warn { "Not ready" } },
        None => html! { span.dim { "—" } },
    }
}

pub fn opt(s: Option<&str>) -> Markup {
    match s {
        Some(v) if !v.is_empty() => html! { (v) },
        _ => html! { span.dim { "—" } },
    }
}

/// Marks content as already escaped (only for static strings).
pub fn raw(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}

/// A page response that is never cached (it may hold a one-time token).
pub fn no_store(m: Markup) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], m).into_response()
}
