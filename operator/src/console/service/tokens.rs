//! API tokens: created with scopes and an expiry (the value shown once), and revoked.

use serde_json::json;

use super::{ActionError, now};
use crate::console::Console;
use crate::console::auth;
use crate::console::db::Admin;
use crate::console::scopes::Scopes;
use crate::validation::has_bidi_control;

/// Expiry choices the tokens page offers (days); "never" must be chosen explicitly.
pub const TOKEN_EXPIRY_DAYS: [u32; 3] = [30, 90, 365];
pub const TOKEN_EXPIRY_DEFAULT_DAYS: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenExpiry {
    Days(u32),
    Never,
}

impl TokenExpiry {
    /// `30`, `90`, `365` or `never`; empty means the default (90 days).
    pub fn parse(v: &str) -> Result<TokenExpiry, ActionError> {
        match v.trim() {
            "" => Ok(TokenExpiry::Days(TOKEN_EXPIRY_DEFAULT_DAYS)),
            "never" => Ok(TokenExpiry::Never),
            d => match d.parse::<u32>() {
                Ok(n) if (1..=3650).contains(&n) => Ok(TokenExpiry::Days(n)),
                _ => Err(ActionError::invalid(
                    "expires",
                    format!("{d:?} is not a number of days from 1 to 3650, or never"),
                )),
            },
        }
    }
}

/// Creates an API token for `actor` with `scopes`, expiring as chosen; the value is
/// returned once.
pub async fn create_scoped_api_token(
    ctx: &Console,
    actor: &Admin,
    name: &str,
    scopes: &Scopes,
    expiry: TokenExpiry,
) -> Result<String, ActionError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 100
        || name.chars().any(char::is_control)
        || has_bidi_control(name)
    {
        return Err(ActionError::invalid(
            "name",
            "must be 1 to 100 characters without control or bidirectional characters",
        ));
    }
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
    let prefix: String = token.chars().take(10).collect();
    let t = now();
    let expires_at = match expiry {
        TokenExpiry::Days(d) => Some(t + i64::from(d) * 86_400),
        TokenExpiry::Never => None,
    };
    let id = ctx
        .db
        .create_scoped_api_token(
            actor.id,
            name,
            &auth::token_hash(&token),
            &prefix,
            &scopes.stored(),
            expires_at,
            t,
        )
        .await?;
    ctx.db
        .audit(
            t,
            &actor.email,
            "api_token.create",
            None,
            &format!("api-token/{id}"),
            None,
            Some(
                &json!({"name": name, "prefix": prefix, "scopes": scopes.stored(), "expires_at": expires_at})
                    .to_string(),
            ),
        )
        .await?;
    Ok(token)
}

pub async fn revoke_api_token(ctx: &Console, actor: &Admin, id: i64) -> Result<(), ActionError> {
    if !ctx.db.revoke_api_token(id, now()).await? {
        return Err(ActionError::NotFound);
    }
    ctx.db
        .audit(
            now(),
            &actor.email,
            "api_token.revoke",
            None,
            &format!("api-token/{id}"),
            None,
            None,
        )
        .await?;
    Ok(())
}
