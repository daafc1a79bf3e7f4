//! `clawhost admin create`: administrator accounts from the command line.

use super::db::Db;
use super::{auth, service::now};

/// The address, trimmed and lower-cased, if it is an e-mail address.
pub fn check_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_lowercase();
    let re = regex_lite::Regex::new(crate::api::assistant::EMAIL_PATTERN)?;
    if !re.is_match(&email) {
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

/// Creates the administrator, or sets its password with `reset`; audited as `cli`.
/// Returns what was done, for the terminal.
pub async fn create_or_reset(
    url: &str,
    email: &str,
    password: &str,
    reset: bool,
) -> anyhow::Result<String> {
    let hash = auth::hash_password(password)?;
    let db = Db::connect(url).await?;
    if db.admin_by_email(email).await?.is_some() {
        if !reset {
            anyhow::bail!(
                "administrator {email} already exists (use --reset to set a new password)"
            );
        }
        db.set_admin_password(email, &hash).await?;
        db.audit(
            now(),
            "cli",
            "admin.reset_password",
            None,
            email,
            None,
            None,
        )
        .await?;
        Ok(format!("password of {email} reset"))
    } else {
        db.create_admin(email, &hash, now()).await?;
        db.audit(now(), "cli", "admin.create", None, email, None, None)
            .await?;
        Ok(format!("administrator {email} created"))
    }
}
