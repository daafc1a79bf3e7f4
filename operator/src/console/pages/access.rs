//! A client's "Access" panel: the device-share invite as the operator reports it
//! (`status.access`), the requests the admin can make about it, and handoff links.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Nav, csrf, fmt_rfc3339_ago, fmt_time, layout, no_store, opt};
use crate::api::{AccessAction, AccessState, Assistant};
use crate::children::GatewayToken;
use crate::console::db::{ClientRow, HandoffLinkRow};
use crate::console::extract::Path;
use crate::console::service::handoff::{self, IssuedLink, LinkState};
use crate::console::service::{self, ActionError};
use crate::console::{Console, Ctx, Session};

fn state_badge(s: AccessState) -> Markup {
    let class = match s {
        AccessState::Accepted => "ok",
        AccessState::Sent | AccessState::Pending => "warn",
        AccessState::Revoked => "bad",
        AccessState::Manual => "muted",
    };
    html! { span class={ "badge " (class) } #access-state { (s) } }
}

/// The manual way to share the device, for operators without an invite credential.
fn manual_steps(c: &ClientRow, a: Option<&Assistant>) -> Markup {
    let hostname = a
        .and_then(|a| a.status.as_ref()?.tailnet.as_ref()?.hostname.clone())
        .unwrap_or_else(|| {
            a.map(crate::children::gateway_statefulset::tailscale_hostname)
                .unwrap_or_else(|| c.assistant_name.clone())
        });
    html! {
        ol.steps #access-manual {
            li { "Open the Tailscale admin console → " strong { "Machines" } " → " code { (hostname) } "." }
            li { "Choose " strong { "Share…" } " and invite " strong { (c.email) } "." }
            li { "Create a handoff link below and send it to the client: it shows the address and their gateway token." }
        }
    }
}

fn link_state_badge(s: LinkState) -> Markup {
    let class = match s {
        LinkState::Open => "ok",
        LinkState::Spent => "muted",
        LinkState::Replaced | LinkState::Expired => "warn",
    };
    html! { span class={ "badge " (class) } { (s.as_str()) } }
}

/// The panel on the client page.
pub fn panel(
    c: &ClientRow,
    a: Option<&Assistant>,
    links: &[HandoffLinkRow],
    actions: bool,
    now: i64,
) -> Markup {
    let access = a.and_then(handoff::access_of);
    let state = access.map(|x| x.state).unwrap_or(AccessState::Manual);
    let action = |act: AccessAction, label: &str| {
        html! { a.button href={ "/clients/" (c.id) "/access/" (act.as_str()) } { (label) "…" } }
    };
    html! {
        div.panel #access {
            h2 { "Access" }
            dl.kv {
                dt { "Invite" } dd { (state_badge(state)) }
                @if let Some(x) = access {
                    dt { "Recipient" } dd { (opt(x.recipient.as_deref())) }
                    dt { "Device" } dd { (opt(x.device_id.as_deref())) }
                    dt { "Sent" } dd { (opt(x.last_sent_time.as_deref().map(|t| fmt_rfc3339_ago(t, now)).as_deref())) }
                    dt { "Since" } dd { (opt(x.last_transition_time.as_deref().map(|t| fmt_rfc3339_ago(t, now)).as_deref())) }
                    dt { "Accepted by" } dd { (opt(x.accepted_by.as_deref())) }
                    @if let Some(m) = &x.message { dt { "Message" } dd.wrap { (m) } }
                }
            }
            @if state == AccessState::Manual {
                p.dim { "The operator has no Tailscale invite credential: share the device by hand." }
                (manual_steps(c, a))
            }
            @if actions {
                div.actions {
                    @match state {
                        AccessState::Sent => {
                            (action(AccessAction::Resend, "Resend invite"))
                            (action(AccessAction::Revoke, "Revoke invite"))
                        }
                        // Pending: no invite yet (device not joined, or the API refused): ask again.
                        AccessState::Pending | AccessState::Accepted | AccessState::Revoked => {
                            (action(AccessAction::Reinvite, "Send a new invite"))
                        }
                        AccessState::Manual => {}
                    }
                    a.button.primary #create-handoff href={ "/clients/" (c.id) "/handoff" } { "Create handoff link…" }
                }
            }
            h3 { "Handoff links" }
            table #handoff-links {
                thead { tr { th { "Created" } th { "By" } th { "Expires" } th { "State" } } }
                tbody {
                    @for l in links {
                        tr {
                            td { (fmt_time(l.created_at)) }
                            td { (l.created_by) }
                            td { (fmt_time(l.expires_at)) }
                            td { (link_state_badge(LinkState::of(l, now))) }
                        }
                    }
                    @if links.is_empty() { tr { td colspan="4" .dim { "No handoff link yet." } } }
                }
            }
        }
    }
}

fn action_text(a: AccessAction) -> (&'static str, &'static [&'static str], &'static str) {
    match a {
        AccessAction::Resend => (
            "Resend the invite",
            &[
                "The operator asks Tailscale to e-mail the open invite to the client again.",
                "The invite link itself does not change.",
            ],
            "Resend invite",
        ),
        AccessAction::Revoke => (
            "Revoke the invite",
            &[
                "The operator deletes the open invite: its link stops working.",
                "No new invite is sent until you ask for one (Send a new invite).",
            ],
            "Revoke invite",
        ),
        AccessAction::Reinvite => (
            "Send a new invite",
            &[
                "The operator creates a new single-use invite for the device and Tailscale e-mails it to the client's address.",
            ],
            "Send new invite",
        ),
    }
}

async fn live(ctx: &Ctx, s: &Session, id: i64) -> Result<ClientRow, Response> {
    match ctx.db.client(id).await {
        Ok(Some(c)) if c.deleted_at.is_none() => Ok(c),
        Ok(Some(_)) => Err(Redirect::to(&format!("/clients/{id}")).into_response()),
        Ok(None) => Err(super::action_error(
            ctx,
            s,
            &ActionError::NotFound,
            "/clients",
        )),
        Err(e) => Err(super::action_error(ctx, s, &e.into(), "/clients")),
    }
}

fn confirm(
    ctx: &Console,
    s: &Session,
    c: &ClientRow,
    title: &str,
    lines: &[&str],
    action: String,
    button: &str,
) -> Response {
    let body = html! {
        h1.wrap { (title) }
        div.panel.confirm {
            p { "Client " strong { bdi { (c.name) } } ", assistant " code { (c.namespace) "/" (c.assistant_name) } "." }
            p { strong { "What happens:" } }
            ul.consequences { @for l in lines { li { (l) } } }
            form method="post" action=(action) {
                (csrf(s))
                div.actions {
                    button.danger type="submit" { (button) }
                    a.button href={ "/clients/" (c.id) } { "Cancel" }
                }
            }
        }
    };
    layout(ctx, s, Nav::Clients, title, body).into_response()
}

pub async fn confirm_action(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let Some(act) = handoff::parse_action(&action) else {
        return super::action_error(&ctx, &s, &ActionError::NotFound, &format!("/clients/{id}"));
    };
    let c = match live(&ctx, &s, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (title, lines, button) = action_text(act);
    confirm(
        &ctx,
        &s,
        &c,
        title,
        lines,
        format!("/clients/{id}/access/{}", act.as_str()),
        button,
    )
}

pub async fn action(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let Some(act) = handoff::parse_action(&action) else {
        return super::action_error(&ctx, &s, &ActionError::NotFound, &format!("/clients/{id}"));
    };
    match handoff::request_access(&ctx, &s.admin, id, act).await {
        Ok(_) => super::client::done(id, &format!("access-{}", act.as_str())),
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

pub async fn confirm_handoff(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    let c = match live(&ctx, &s, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lifetime = handoff::describe_lifetime(ctx.opts.handoff_lifetime);
    let lines = [
        "A new gateway token is set (the console cannot read the current one) and the gateway restarts to pick it up.".to_string(),
        "Devices using the old token must sign in again with the new one.".to_string(),
        "The client's earlier handoff links stop working.".to_string(),
        format!("The link is shown once, on the next page; it works for {lifetime} and reveals the token once."),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    confirm(
        &ctx,
        &s,
        &c,
        "Create a handoff link",
        &refs,
        format!("/clients/{id}/handoff"),
        "Create handoff link",
    )
}

/// The e-mail the admin sends the client with their link.
pub fn email_text(ctx: &Console, c: &ClientRow, link: &IssuedLink) -> String {
    let lifetime = handoff::describe_lifetime(link.lifetime);
    let contact = ctx
        .opts
        .support_contact
        .clone()
        .unwrap_or_else(|| "us".into());
    format!(
        "Hello {name},\n\nyour personal assistant is ready. Open this link on your phone:\n\n{url}\n\n\
         It shows your assistant's address (with a QR code), how to accept the invitation to \
         the private network it runs on, and your gateway token. The token is shown only once, \
         so have your assistant app or password manager ready. The link works for {lifetime}.\n\n\
         If the link says it was already used or has expired, reply to {contact} for a new one.\n",
        name = c.name,
        url = link.best(),
    )
}

/// The page that shows a new handoff link once (and the gateway token when `token` is given).
pub fn link_page(
    ctx: &Console,
    s: &Session,
    c: &ClientRow,
    title: &str,
    link: &IssuedLink,
    token: Option<&GatewayToken>,
    warnings: &[String],
) -> Markup {
    let body = html! {
        h1 { (title) }
        @if !warnings.is_empty() { ul.errors { @for w in warnings { li { (w) } } } }
        div.secret {
            strong { "Handoff link" }
            p { "Send this link to the client. It is shown only now; it works until " (fmt_time(link.expires_at)) " and reveals the gateway token once. Creating another link replaces it." }
            code #handoff-link { (link.best()) }
            @if link.url.is_none() {
                p.error #public-url-missing { "The console does not know its public address (--public-url is not set): prefix the path above with the console's external URL before sending it." }
            }
            p { label for="handoff-email" { "E-mail text for the client:" } }
            textarea #handoff-email readonly rows="12" { (email_text(ctx, c, link)) }
        }
        @if let Some(t) = token {
            div.secret {
                strong { "Gateway token" }
                p { "The client sees it on the handoff page; you see it only now." }
                code #gateway-token { (t.expose()) }
            }
        }
        p { a.button.primary href={ "/clients/" (c.id) } { "Continue to the client" } }
    };
    layout(ctx, s, Nav::Clients, title, body)
}

pub async fn handoff(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    match handoff::create_handoff(&ctx, &s.admin, id).await {
        // The token was rotated but no link exists: show the token, or it is lost.
        Ok(handoff::Handoff {
            token,
            link: None,
            warnings,
        }) => no_store(super::client::token_page(
            &ctx,
            &s,
            id,
            "Gateway token rotated, no link",
            &token,
            &warnings,
        )),
        Ok(handoff::Handoff {
            link: Some(link), ..
        }) => match ctx.db.client(id).await {
            Ok(Some(c)) => no_store(link_page(
                &ctx,
                &s,
                &c,
                "Handoff link created",
                &link,
                None,
                &[],
            )),
            Ok(None) => super::action_error(&ctx, &s, &ActionError::NotFound, "/clients"),
            Err(e) => super::action_error(&ctx, &s, &e.into(), "/clients"),
        },
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

/// Links of a client for its page (expired sealed tokens dropped first).
pub async fn links_of(ctx: &Console, id: i64) -> Vec<HandoffLinkRow> {
    let _ = ctx.db.purge_expired_handoff_tokens(service::now()).await;
    ctx.db.handoff_links(id).await.unwrap_or_default()
}
