//! First run: while no administrator exists, every start of the console prints a one-time
//! setup link (`/setup/<token>`) in its log, as Gitea and Grafana do. The token is random,
//! stored only as a hash, valid for [`SETUP_TOKEN_SECONDS`], used once, and replaced by the
//! next start; once any administrator exists the link is refused.

use std::net::SocketAddr;

use super::db::DbError;
use super::{Console, auth, service::now};

/// How long a setup link works after the console printed it.
pub const SETUP_TOKEN_SECONDS: i64 = 3600;

/// What a setup link is worth right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupState {
    /// No administrator yet and the token is live: show the form.
    Open,
    /// No administrator yet, but the token is unknown, used or expired.
    InvalidToken,
    /// An administrator exists: setup is over for good.
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Invalid(String),
    #[error("this setup link is no longer valid (expired, used, or an administrator exists)")]
    Refused,
}

/// When no administrator exists: issues a new setup token (the previous one dies) and
/// returns it. `None` when an administrator exists (nothing to set up).
pub async fn issue_token(ctx: &Console) -> Result<Option<String>, DbError> {
    if ctx.db.admin_count().await? > 0 {
        return Ok(None);
    }
    let token = auth::random_token();
    let t = now();
    ctx.db
        .replace_setup_token(&auth::token_hash(&token), t, t + SETUP_TOKEN_SECONDS)
        .await?;
    Ok(Some(token))
}

/// The link as an operator can open it: an unspecified listen address becomes localhost.
pub fn setup_link(listen: SocketAddr, token: &str) -> String {
    let host = if listen.ip().is_unspecified() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    };
    format!("http://{host}/setup/{token}")
}

/// At start: prints the setup link in the log when no administrator exists.
pub async fn announce(ctx: &Console) {
    match issue_token(ctx).await {
        Ok(Some(token)) => tracing::warn!(
            "no administrator exists yet: open {} within {} minutes to create the first one (a new link is printed on each start until then), or run: {}",
            setup_link(ctx.opts.listen, &token),
            SETUP_TOKEN_SECONDS / 60,
            admin_create_command(&ctx.opts.database_url),
        ),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot issue a first-run setup link"),
    }
}

pub async fn state(ctx: &Console, token: &str) -> Result<SetupState, DbError> {
    if ctx.db.admin_count().await? > 0 {
        return Ok(SetupState::Done);
    }
    Ok(
        if ctx
            .db
            .setup_token_live(&auth::token_hash(token), now())
            .await?
        {
            SetupState::Open
        } else {
            SetupState::InvalidToken
        },
    )
}

/// Creates the first administrator with the setup token (spending it); returns the new
/// admin's id. Password rules are those of [`auth::hash_password`].
pub async fn create_first_admin(
    ctx: &Console,
    token: &str,
    email: &str,
    password: &str,
    repeat: &str,
) -> Result<(i64, String), SetupError> {
    if state(ctx, token).await? != SetupState::Open {
        return Err(SetupError::Refused);
    }
    let email =
        super::admins::check_email(email).map_err(|e| SetupError::Invalid(e.to_string()))?;
    if password != repeat {
        return Err(SetupError::Invalid("the two passwords differ".into()));
    }
    let hash = auth::hash_password(password).map_err(|e| SetupError::Invalid(e.to_string()))?;
    let id = ctx
        .db
        .create_first_admin_with_setup_token(&auth::token_hash(token), &email, &hash, now())
        .await?
        .ok_or(SetupError::Refused)?;
    ctx.db
        .audit(now(), "setup", "admin.create", None, &email, None, None)
        .await?;
    Ok((id, email))
}

/// `clawhost admin create` for the database in use, with any password in its URL hidden.
pub fn admin_create_command(database_url: &str) -> String {
    format!(
        "clawhost admin create --email you@example.com --database-url {}",
        redact_database_url(database_url)
    )
}

/// The URL without its secrets: the password of the user part and any `password=` query
/// parameter become `REDACTED`.
pub fn redact_database_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    let hidden = if userinfo.contains(':') {
                        ":REDACTED"
                    } else {
                        ""
                    };
                    format!("{scheme}://{user}{hidden}@{host}{path}")
                }
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    match query {
        None => base,
        Some(q) => {
            let q = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        format!("{k}=REDACTED")
                    }
                    _ => kv.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{base}?{q}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_passwords_are_redacted() {
        assert_eq!(
            redact_database_url("postgres://clawhost:s3cret@db:5432/console"),
            "postgres://clawhost:REDACTED@db:5432/console"
        );
        assert_eq!(
            redact_database_url("postgres://db/console?user=a&password=s3cret&sslmode=require"),
            "postgres://db/console?user=a&password=REDACTED&sslmode=require"
        );
        assert_eq!(
            redact_database_url("sqlite:///var/lib/clawhost/clawhost.sqlite"),
            "sqlite:///var/lib/clawhost/clawhost.sqlite"
        );
        assert_eq!(
            redact_database_url("postgres://user@db/console"),
            "postgres://user@db/console"
        );
    }

    #[test]
    fn setup_link_uses_a_reachable_host() {
        let l: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(setup_link(l, "t"), "http://localhost:8080/setup/t");
        let l: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(setup_link(l, "t"), "http://127.0.0.1:9000/setup/t");
    }
}
