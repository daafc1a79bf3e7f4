//! API tokens for `/api/v1`: created here with scopes and an expiry, shown once, stored
//! hashed.

use crate::console::extract::Path;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{Nav, csrf, fmt_time, layout};
use crate::console::scopes::{Scope, Scopes};
use crate::console::service::{self, ActionError, TOKEN_EXPIRY_DAYS, TokenExpiry};
use crate::console::{Ctx, Session};

async fn page(ctx: &Ctx, s: &Session, new_token: Option<&str>) -> Response {
    let tokens = match ctx.db.list_api_tokens().await {
        Ok(t) => t,
        Err(e) => return super::action_error(ctx, s, &e.into(), "/clients"),
    };
    let now = service::now();
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
            form.token-form method="post" action="/tokens" {
                (csrf(s))
                div.form-grid {
                    label for="token-name" { "Name" }
                    input #token-name type="text" name="name" placeholder="What is it for? (e.g. billing export)" size="40" required maxlength="100";
                    span { "Access" }
                    div.scopes {
                        label { input type="radio" name="preset" value="read" checked; " Read-only " code { "read" } span.dim { " — every GET of the API" } }
                        label { input type="radio" name="preset" value="full"; " Full " code { "full" } span.dim { " — everything, including delete and rotate-token" } }
                        label { input type="radio" name="preset" value="custom"; " Only the scopes ticked below:" }
                        @for sc in Scope::ALL {
                            label.scope { input type="checkbox" name="scope" value=(sc.name()); " " code { (sc.name()) } }
                        }
                    }
                    label for="token-expires" { "Expires" }
                    select #token-expires name="expires" {
                        @for d in TOKEN_EXPIRY_DAYS {
                            option value=(d) selected[d == service::TOKEN_EXPIRY_DEFAULT_DAYS] { "in " (d) " days" }
                        }
                        option value="never" { "never (not recommended)" }
                    }
                    span {}
                    div { button.primary type="submit" { "Create token" } }
                }
            }
        }
        table.list {
            thead { tr { th { "Name" } th { "Prefix" } th { "Owner" } th { "Scopes" } th { "Created" } th { "Expires" } th { "Last used" } th { "" } } }
            tbody {
                @for t in &tokens {
                    tr {
                        td.wrap { (t.name) }
                        td { code { (t.prefix) "…" } }
                        td { (t.admin_email) }
                        td.scopes-cell { @for sc in Scopes::from_stored(&t.scopes).items() { code { (sc) } " " } }
                        td { (fmt_time(t.created_at)) }
                        td { (t.expires_at.map(fmt_time).unwrap_or_else(|| "never".into())) }
                        td { (t.last_used_at.map(fmt_time).unwrap_or_else(|| "never".into())) }
                        td {
                            @if t.revoked_at.is_some() { span.badge { "revoked" } }
                            @else if t.expires_at.is_some_and(|e| e <= now) { span.badge.warn { "expired" } }
                            @else {
                                // A confirmation page (GET) holds the real form.
                                a.button.danger href={ "/tokens/" (t.id) "/revoke" } { "Revoke…" }
                            }
                        }
                    }
                }
                @if tokens.is_empty() { tr { td colspan="8" .dim { "No API tokens." } } }
            }
        }
    };
    layout(ctx, s, Nav::Tokens, "API tokens", body).into_response()
}

pub async fn show(State(ctx): State<Ctx>, Extension(s): Extension<Session>) -> Response {
    page(&ctx, &s, None).await
}

/// Every value of a url-encoded form (checkboxes repeat their name).
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let decode = |v: &str| {
        urlencoding::decode(&v.replace('+', " "))
            .map(|v| v.into_owned())
            .unwrap_or_default()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Name, scopes (a preset, or the ticked scopes with `custom`) and expiry of the form.
fn parse_new_token(body: &[u8]) -> Result<(String, Scopes, TokenExpiry), ActionError> {
    let fields = form_fields(body);
    let one = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let preset = match one("preset") {
        "" => "read",
        p => p,
    };
    let scopes = if preset == "custom" {
        Scopes::parse(
            fields
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str()),
        )
    } else {
        Scopes::parse([preset])
    }
    .map_err(|e| ActionError::invalid("scopes", e.to_string()))?;
    Ok((
        one("name").to_string(),
        scopes,
        TokenExpiry::parse(one("expires"))?,
    ))
}

pub async fn create(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    body: Bytes,
) -> Response {
    let created = match parse_new_token(&body) {
        Ok((name, scopes, expiry)) => {
            service::create_scoped_api_token(&ctx, &s.admin, &name, &scopes, expiry).await
        }
        Err(e) => Err(e),
    };
    match created {
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
