//! API tokens for `/api/v1`: created here, shown once, stored hashed.

use crate::console::extract::{Form, Path};
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{Nav, csrf, fmt_time, layout};
use crate::console::service;
use crate::console::{Ctx, Session};

async fn page(ctx: &Ctx, s: &Session, new_token: Option<&str>) -> Response {
    let tokens = match ctx.db.list_api_tokens().await {
        Ok(t) => t,
        Err(e) => return super::action_error(ctx, s, &e.into(), "/clients"),
    };
    let body = html! {
        h1 { "API tokens" }
        @if let Some(t) = new_token {
            div.secret {
                strong { "New API token" }
                p { "Copy it now: it is stored only as a hash and cannot be shown again." }
                code #api-token { (t) }
                p.dim { "Use it as " code { "Authorization: Bearer <token>" } " on " code { "/api/v1" } "." }
            }
        }
        div.panel {
            h2 { "Create a token" }
            form.filters method="post" action="/tokens" {
                (csrf(s))
                input type="text" name="name" placeholder="What is it for? (e.g. billing export)" size="40" required maxlength="100";
                button.primary type="submit" { "Create token" }
            }
        }
        table.list {
            thead { tr { th { "Name" } th { "Prefix" } th { "Owner" } th { "Created" } th { "Last used" } th { "" } } }
            tbody {
                @for t in &tokens {
                    tr {
                        td.wrap { (t.name) }
                        td { code { (t.prefix) "…" } }
                        td { (t.admin_email) }
                        td { (fmt_time(t.created_at)) }
                        td { (t.last_used_at.map(fmt_time).unwrap_or_else(|| "never".into())) }
                        td {
                            @if t.revoked_at.is_some() { span.badge { "revoked" } } @else {
                                // A confirmation page (GET) holds the real form.
                                a.button.danger href={ "/tokens/" (t.id) "/revoke" } { "Revoke…" }
                            }
                        }
                    }
                }
                @if tokens.is_empty() { tr { td colspan="6" .dim { "No API tokens." } } }
            }
        }
    };
    layout(ctx, s, Nav::Tokens, "API tokens", body).into_response()
}

pub async fn show(State(ctx): State<Ctx>, Extension(s): Extension<Session>) -> Response {
    page(&ctx, &s, None).await
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
}

pub async fn create(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Form(f): Form<NewToken>,
) -> Response {
    match service::create_api_token(&ctx, &s.admin, &f.name).await {
        // Every response is Cache-Control: no-store (security_headers), so the token is not cached.
        Ok(t) => page(&ctx, &s, Some(&t)).await,
        Err(e) => super::action_error(&ctx, &s, &e, "/tokens"),
    }
}

pub async fn revoke(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    match service::revoke_api_token(&ctx, &s.admin, id).await {
        Ok(()) => Redirect::to("/tokens").into_response(),
        Err(e) => super::action_error(&ctx, &s, &e, "/tokens"),
    }
}
