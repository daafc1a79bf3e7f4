//! API tokens: created (the value shown once) and revoked.

use serde_json::json;

use super::{ActionError, now};
use crate::console::Console;
use crate::console::auth;
use crate::console::db::Admin;

/// Creates an API token for `actor`; the value is returned once.
pub async fn create_api_token(
    ctx: &Console,
    actor: &Admin,
    name: &str,
) -> Result<String, ActionError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ActionError::invalid(
            "name",
            "must be 1 to 100 characters without control characters",
        ));
    }
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token());
    let prefix: String = token.chars().take(10).collect();
    let t = now();
    let id = ctx
        .db
        .create_api_token(actor.id, name, &auth::token_hash(&token), &prefix, t)
        .await?;
    ctx.db
        .audit(
            t,
            &actor.email,
            "api_token.create",
            None,
            &format!("api-token/{id}"),
            None,
            Some(&json!({"name": name, "prefix": prefix}).to_string()),
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
