//! Confirmation steps, without JavaScript: the action's button leads to a GET page that
//! says what will happen, and that page holds the real POST form. The POST routes are
//! unchanged, so the JSON API needs no confirmation.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Nav, csrf, layout};
use crate::console::extract::Path;
use crate::console::service::ActionError;
use crate::console::{Ctx, Session};

/// One confirmable action on a client: its POST path segment, title, consequences, button.
struct ClientAction {
    segment: &'static str,
    title: &'static str,
    consequences: &'static [&'static str],
    button: &'static str,
}

const ROTATE_TOKEN: ClientAction = ClientAction {
    segment: "rotate-token",
    title: "Rotate the gateway token",
    consequences: &[
        "A new gateway token is written to the client's Secret and the gateway restarts to pick it up (about a minute without the assistant).",
        "The old token stops working: every device of the client must be given the new token.",
        "The new token is shown once, on the next page; the console keeps no copy.",
    ],
    button: "Rotate gateway token",
};

const RESTART: ClientAction = ClientAction {
    segment: "restart",
    title: "Restart the gateway",
    consequences: &[
        "The gateway pod is restarted: the assistant is unavailable for about a minute and open conversations are cut off.",
        "The client's data on the volume is kept.",
    ],
    button: "Restart gateway",
};

const SUSPEND: ClientAction = ClientAction {
    segment: "suspend",
    title: "Suspend the assistant",
    consequences: &[
        "The gateway is stopped: the assistant does not answer until it is resumed.",
        "The volume and the client's data are kept; no running minutes are counted while it is suspended.",
    ],
    button: "Suspend assistant",
};

/// What one confirmation page shows and where its form posts.
struct Confirm<'a> {
    nav: Nav,
    title: &'a str,
    /// What the action applies to.
    subject: Markup,
    consequences: &'a [&'a str],
    /// The POST route that does it.
    action: String,
    button: &'a str,
    cancel: String,
}

fn confirm_page(ctx: &Ctx, s: &Session, c: Confirm<'_>) -> Response {
    let body = html! {
        h1.wrap { (c.title) }
        div.panel.confirm {
            p { (c.subject) }
            p { strong { "What happens:" } }
            ul.consequences { @for line in c.consequences { li { (line) } } }
            form method="post" action=(c.action) {
                (csrf(s))
                div.actions {
                    button.danger type="submit" { (c.button) }
                    a.button href=(c.cancel) { "Cancel" }
                }
            }
        }
    };
    layout(ctx, s, c.nav, c.title, body).into_response()
}

async fn client_confirm(ctx: Ctx, s: Session, id: i64, a: &ClientAction) -> Response {
    let c = match ctx.db.client(id).await {
        Ok(Some(c)) => c,
        Ok(None) => return super::action_error(&ctx, &s, &ActionError::NotFound, "/clients"),
        Err(e) => return super::action_error(&ctx, &s, &e.into(), "/clients"),
    };
    if c.deleted_at.is_some() {
        // Nothing to confirm on a deleted client: its page says so.
        return Redirect::to(&format!("/clients/{id}")).into_response();
    }
    let subject = html! {
        "Client " strong { (c.name) } ", assistant " code { (c.namespace) "/" (c.assistant_name) } "."
    };
    confirm_page(
        &ctx,
        &s,
        Confirm {
            nav: Nav::Clients,
            title: a.title,
            subject,
            consequences: a.consequences,
            action: format!("/clients/{id}/{}", a.segment),
            button: a.button,
            cancel: format!("/clients/{id}"),
        },
    )
}

pub async fn rotate_token(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    client_confirm(ctx, s, id, &ROTATE_TOKEN).await
}

pub async fn restart(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    client_confirm(ctx, s, id, &RESTART).await
}

pub async fn suspend(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    client_confirm(ctx, s, id, &SUSPEND).await
}

pub async fn revoke_token(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    let tokens = match ctx.db.list_api_tokens().await {
        Ok(t) => t,
        Err(e) => return super::action_error(&ctx, &s, &e.into(), "/tokens"),
    };
    let Some(t) = tokens
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
    else {
        return super::action_error(&ctx, &s, &ActionError::NotFound, "/tokens");
    };
    let subject = html! {
        "API token " strong { (t.name) } " (" code { (t.prefix) "…" } ", owner " (t.admin_email) ")."
    };
    confirm_page(
        &ctx,
        &s,
        Confirm {
            nav: Nav::Tokens,
            title: "Revoke the API token",
            subject,
            consequences: &[
                "Every script or integration using this token is refused (401) from now on.",
                "Revoking cannot be undone: create a new token to replace it.",
            ],
            action: format!("/tokens/{id}/revoke"),
            button: "Revoke token",
            cancel: "/tokens".into(),
        },
    )
}
