//! The client's one-time handoff page `/welcome/{token}`: the only client-facing route
//! without a session. Phone-first, no JavaScript. The GET never spends the link (chat apps'
//! link-preview bots fetch it); the "Show my gateway token" form POST reveals the token once
//! and spends the link.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::console::auth;
use crate::console::extract::Path;
use crate::console::service::handoff::{self, FoundLink, InviteView, LinkState, Reveal};
use crate::console::service::{self, ActionError};
use crate::console::{Console, Ctx};

/// Requests one client address may make to handoff pages per [`WINDOW`]: a person needs a
/// handful (open, reveal, a reload); a scanner is cut off quickly.
pub const REQUESTS_PER_WINDOW: u32 = 30;
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// The one key every handoff request is counted under (the limit is per address).
const LIMITER_KEY: &str = "welcome";

/// Rate limit per real client address (trusted-proxy aware) and headers that keep the page
/// out of caches, referrers and search indexes. Nothing here logs the path (it holds the
/// link token).
pub async fn guard(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = auth::client_ip(peer, req.headers(), &ctx.opts.trusted_proxies);
    let now = Instant::now();
    let mut res = match ctx.welcome_limiter.check(LIMITER_KEY, client, now) {
        Err(wait) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                frame(
                    "Too many requests",
                    html! {
                        h1 { "Too many requests" }
                        p { "Please wait " (wait.seconds()) " seconds and open the link again." }
                    },
                ),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.seconds().to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Ok(()) => {
            ctx.welcome_limiter.record_failure(LIMITER_KEY, client, now);
            next.run(req).await
        }
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    res
}

/// The page frame: large type, one column, no navigation to the admin console.
fn frame(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                meta name="referrer" content="no-referrer";
                title { (title) }
                link rel="stylesheet" href="/static/console.css";
                link rel="icon" href="data:,";
            }
            body.welcome {
                main.welcome { (content) }
            }
        }
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        frame(
            "Link not found",
            html! {
                h1 { "Link not found" }
                p { "This link is not valid. Check that it was copied completely, or ask whoever sent it to you for a new one." }
            },
        ),
    )
        .into_response()
}

fn failure(e: &ActionError) -> Response {
    tracing::error!(error = %e, "handoff page failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        frame(
            "Try again later",
            html! {
                h1 { "Something went wrong" }
                p { "The page could not be shown right now. Please try again in a few minutes; the link still works." }
            },
        ),
    )
        .into_response()
}

/// A link that can no longer reveal anything: says why and whom to ask.
fn gone(ctx: &Console, found: &FoundLink, state: LinkState) -> Response {
    let (title, why) = match state {
        LinkState::Spent => (
            "This link was already used",
            "Your gateway token was shown when this link was opened the first time, and it cannot be shown again.",
        ),
        LinkState::Replaced => (
            "This link was replaced",
            "A newer link was sent for your assistant; this one no longer works.",
        ),
        LinkState::Expired | LinkState::Open => (
            "This link has expired",
            "Links like this one work only for a limited time.",
        ),
    };
    let contact = handoff::contact_for(ctx, &found.link);
    (
        StatusCode::GONE,
        frame(
            title,
            html! {
                h1 { (title) }
                p { (why) }
                p.ask { "Need a new one? Ask " strong.contact { (contact) } "." }
            },
        ),
    )
        .into_response()
}

/// The assistant's address: `status.tailnet.url`, else `https://<fqdn>`.
fn address_of(a: Option<&crate::api::Assistant>) -> Option<String> {
    let t = a?.status.as_ref()?.tailnet.as_ref()?;
    t.url
        .clone()
        .or_else(|| {
            t.fqdn
                .as_deref()
                .map(|f| format!("https://{}", f.trim_end_matches('.')))
        })
        .filter(|u| u.starts_with("https://"))
}

/// The QR code of `text` as inline SVG (no image request, no script).
fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    // Inline in HTML: drop the XML declaration.
    Some(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

fn manual_steps(email: &str) -> Markup {
    html! {
        ol.steps {
            li { "Install the " strong { "Tailscale" } " app on this phone and sign in with " strong { (email) } " (a free personal account is enough)." }
            li { "Your provider shares the assistant's device with that address; Tailscale e-mails you an invitation." }
            li { "Open the invitation on this phone and accept it. The address above then opens your assistant." }
        }
    }
}

async fn load(ctx: &Console, token: &str) -> Result<Option<FoundLink>, ActionError> {
    // Refuse anything that cannot be a token before touching the database.
    if token.len() != 43
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(None);
    }
    handoff::find_link(ctx, token).await
}

pub async fn show(State(ctx): State<Ctx>, Path(token): Path<String>) -> Response {
    let found = match load(&ctx, &token).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(),
        Err(e) => return failure(&e),
    };
    if found.state != LinkState::Open {
        return gone(&ctx, &found, found.state);
    }
    let c = &found.client;
    let assistant = ctx
        .cluster
        .get(&c.namespace, &c.assistant_name)
        .await
        .ok()
        .flatten();
    let address = address_of(assistant.as_ref());
    let invite = handoff::invite_view(&ctx, assistant.as_ref());
    let now = service::now();
    let body = html! {
        h1 { "Welcome, " bdi { (c.name) } }
        p.lead { "Everything you need to reach your personal assistant from this phone." }
        section.step {
            h2 { "1. Your assistant's address" }
            @if let Some(url) = &address {
                p.address { a #assistant-address href=(url) { (url) } }
                @if let Some(svg) = qr_svg(url) {
                    figure.qr #assistant-qr aria-label="QR code of the address" { (PreEscaped(svg)) }
                    p.hint { "On another device, scan this code to open the address." }
                }
            } @else {
                p #assistant-address.pending { "Your assistant is still starting. Reload this page in a few minutes to see its address." }
            }
        }
        section.step {
            h2 { "2. Get access to it" }
            @match &invite {
                InviteView::Link(u) => {
                    p { "Your assistant runs on a private network (Tailscale). Accept the invitation to add it to your own free Tailscale account:" }
                    p { a.button.primary #invite-link href=(u) rel="noreferrer" { "Accept the device invitation" } }
                }
                InviteView::Emailed { recipient } => {
                    p #invite-emailed {
                        "Tailscale e-mailed an invitation to "
                        strong { (recipient.as_deref().unwrap_or(c.email.as_str())) }
                        ". Open it on this phone and accept it (install the Tailscale app if asked)."
                    }
                }
                InviteView::Accepted => {
                    p #invite-accepted { "The assistant is already shared with you: open the Tailscale app, make sure it is connected, then open the address above." }
                }
                InviteView::Manual => { (manual_steps(&c.email)) }
                InviteView::NotYet { state } => {
                    @if *state == crate::api::AccessState::Revoked {
                        p { "The invitation was withdrawn. Ask your provider for a new one." }
                    } @else {
                        p { "Your invitation is being prepared. Tailscale will e-mail it to " strong { (c.email) } " shortly." }
                    }
                }
            }
        }
        section.step {
            h2 { "3. Your gateway token" }
            p { "Your assistant asks for this token the first time you connect. It is shown " strong { "once" } ": copy it into your assistant app or a password manager right away." }
            form method="post" action=(handoff::welcome_path(&token)) {
                button.primary.big #reveal type="submit" { "Show my gateway token" }
            }
        }
        p.hint { "This link works until " (super::fmt_time(found.link.expires_at)) " (" (super::age(now, found.link.expires_at)) " left) and only once for the token." }
    };
    frame("Your assistant", body).into_response()
}

pub async fn reveal(State(ctx): State<Ctx>, Path(token): Path<String>) -> Response {
    let found = match load(&ctx, &token).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(),
        Err(e) => return failure(&e),
    };
    match handoff::reveal(&ctx, &token, &found).await {
        Ok(Reveal::Token(t)) => {
            let c = &found.client;
            let assistant = ctx
                .cluster
                .get(&c.namespace, &c.assistant_name)
                .await
                .ok()
                .flatten();
            let address = address_of(assistant.as_ref());
            frame(
                "Your gateway token",
                html! {
                    h1 { "Your gateway token" }
                    div.secret {
                        code #gateway-token { (t) }
                    }
                    p { strong { "Copy it now." } " This page cannot show it again: the link is used up. Paste it into your assistant app when it asks for the gateway token." }
                    @if let Some(url) = &address {
                        p { "Your assistant: " a href=(url) { (url) } }
                    }
                },
            )
            .into_response()
        }
        Ok(Reveal::Gone(state)) => gone(&ctx, &found, state),
        Err(e) => failure(&e),
    }
}
