//! `clawhost admin create|list|disable|enable`: administrator accounts from the command
//! line. Every command says which database it wrote, so a wrong `DATABASE_URL` shows.

use super::db::Db;
use super::{auth, service::now};

/// The address, trimmed and lower-cased, if it is an e-mail address.
pub fn check_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_lowercase();
    if !crate::validation::is_email(&email) {
        anyhow::bail!("{email:?} is not an e-mail address");
    }
    Ok(email)
}

/// One line of standard input, or a prompt typed twice on the terminal.
pub fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    Ok(if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let p = rpassword::prompt_password("Password: ")?;
        if p != rpassword::prompt_password("Repeat password: ")? {
            anyhow::bail!("the passwords differ");
        }
        p
    })
}

/// Where a database URL points, for the terminal: `sqlite:/absolute/path` or
/// `postgres://host:port/db` (never the password).
pub fn describe_database(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let file = path.split('?').next().unwrap_or_default();
        let abs = std::path::absolute(file)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| file.to_string());
        return format!("sqlite:{abs}");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return "an unrecognised database URL".into();
    };
    // user:password@host:port/db?params: keep host, port and database only.
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}/{db}")
}

fn written(url: &str, what: String) -> String {
    format!("{what} (database {})", describe_database(url))
}

/// Creates the administrator, or sets its password with `reset`; audited as `cli`.
/// A reset also ends the admin's sessions and revokes its API tokens: a password reset is
/// what one does after a compromise. Returns what was done, for the terminal.
pub async fn create_or_reset(
    url: &str,
    email: &str,
    password: &str,
    reset: bool,
) -> anyhow::Result<String> {
    let hash = auth::hash_password(password)?;
    let db = Db::connect(url).await?;
    if let Some(existing) = db.admin_by_email(email).await? {
        if !reset {
            anyhow::bail!(
                "administrator {email} already exists in {} (use --reset to set a new password)",
                describe_database(url)
            );
        }
        db.set_admin_password(email, &hash).await?;
        let sessions = db.delete_admin_sessions(existing.admin.id).await?;
        let tokens = db.revoke_admin_api_tokens(existing.admin.id, now()).await?;
        db.audit(
            now(),
            "cli",
            "admin.reset_password",
            None,
            email,
            None,
            Some(
                &serde_json::json!({"sessions_ended": sessions, "api_tokens_revoked": tokens})
                    .to_string(),
            ),
        )
        .await?;
        Ok(written(
            url,
            format!(
                "password of {email} reset; {sessions} session(s) ended, {tokens} API token(s) revoked"
            ),
        ))
    } else {
        db.create_admin(email, &hash, now()).await?;
        db.audit(now(), "cli", "admin.create", None, email, None, None)
            .await?;
        Ok(written(url, format!("administrator {email} created")))
    }
}

/// Disables (ending its sessions at once) or enables an administrator; audited as `cli`.
pub async fn set_disabled(url: &str, email: &str, disabled: bool) -> anyhow::Result<String> {
    let db = Db::connect(url).await?;
    let Some(admin) = db.admin_by_email(email).await? else {
        anyhow::bail!(
            "no administrator {email} in {} (see clawhost admin list)",
            describe_database(url)
        );
    };
    let t = now();
    db.set_admin_disabled(email, disabled.then_some(t)).await?;
    let (action, what) = if disabled {
        // Lookups check disabled_at already; deleting the sessions also frees the rows.
        let sessions = db.delete_admin_sessions(admin.admin.id).await?;
        (
            "admin.disable",
            format!(
                "administrator {email} disabled; {sessions} session(s) ended, its API tokens refused"
            ),
        )
    } else {
        ("admin.enable", format!("administrator {email} enabled"))
    };
    db.audit(t, "cli", action, None, email, None, None).await?;
    Ok(written(url, what))
}

/// A table of administrators for the terminal.
pub async fn list(url: &str) -> anyhow::Result<String> {
    let db = Db::connect(url).await?;
    let admins = db.list_admins(now()).await?;
    let time = |t: Option<i64>| t.map(super::pages::fmt_time).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{:<40} {:<17} {:<17} {:<17} {}\n",
        "E-MAIL", "CREATED", "DISABLED", "LAST SIGN-IN", "API TOKENS"
    );
    for a in &admins {
        out.push_str(&format!(
            "{:<40} {:<17} {:<17} {:<17} {}\n",
            a.email,
            time(Some(a.created_at)),
            time(a.disabled_at),
            time(a.last_sign_in_at),
            a.tokens
        ));
    }
    out.push_str(&format!(
        "{} administrator(s) in {}",
        admins.len(),
        describe_database(url)
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_description_never_has_the_password() {
        assert_eq!(
            describe_database("postgres://clawhost:s3cret@db.example:5432/console?sslmode=require"),
            "postgres://db.example:5432/console"
        );
        assert_eq!(
            describe_database("sqlite:///var/lib/c.sqlite"),
            "sqlite:/var/lib/c.sqlite"
        );
        assert!(describe_database("sqlite://rel.sqlite").ends_with("/rel.sqlite"));
        assert!(describe_database("sqlite://rel.sqlite").starts_with("sqlite:/"));
    }
}
