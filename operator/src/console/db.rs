//! The console's own database: admin accounts, sessions, API tokens, client business
//! records, the audit trail and usage. One code path for SQLite and PostgreSQL through
//! sqlx's `Any` driver; SQL is kept portable (`$N` placeholders work on both).

use std::borrow::Cow;
use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Row, SqlSafeStr};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?} (use sqlite:PATH or postgres://...)")]
    UnsupportedUrl(String),
    #[error("cannot create database directory {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("cannot make the database file {0} private (mode 0600): {1}")]
    Mode(String, std::io::Error),
}

/// The database holds password hashes and the audit trail: only the console's user may read
/// it. Creates the file 0600 (whatever the umask), or tightens an existing one with a log line.
fn private_file(file: &Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |e| DbError::Mode(file.display().to_string(), e);
        match std::fs::metadata(file) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                        .map_err(err)?;
                    tracing::warn!(file = %file.display(), old_mode = format!("{mode:o}"), "database file was readable by others; set to mode 0600");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(file)
                {
                    // Another process created it first: still set the mode below.
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(err(e)),
                }
                // The umask can only remove bits, but set it explicitly anyway: one rule.
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "console",
        include_str!("../../migrations/sqlite/0001_console.sql"),
    ),
    (
        2,
        "truth",
        include_str!("../../migrations/sqlite/0002_truth.sql"),
    ),
    (
        3,
        "security",
        include_str!("../../migrations/sqlite/0003_security.sql"),
    ),
    (
        4,
        "first hour",
        include_str!("../../migrations/sqlite/0004_first_hour.sql"),
    ),
    (
        5,
        "handoff",
        include_str!("../../migrations/sqlite/0005_handoff.sql"),
    ),
    (
        6,
        "billing",
        include_str!("../../migrations/sqlite/0006_billing.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "console",
        include_str!("../../migrations/postgres/0001_console.sql"),
    ),
    (
        2,
        "truth",
        include_str!("../../migrations/postgres/0002_truth.sql"),
    ),
    (
        3,
        "security",
        include_str!("../../migrations/postgres/0003_security.sql"),
    ),
    (
        4,
        "first hour",
        include_str!("../../migrations/postgres/0004_first_hour.sql"),
    ),
    (
        5,
        "handoff",
        include_str!("../../migrations/postgres/0005_handoff.sql"),
    ),
    (
        6,
        "billing",
        include_str!("../../migrations/postgres/0006_billing.sql"),
    ),
];

/// The migrations of one backend, embedded in the binary.
pub fn migrator(backend: Backend) -> Migrator {
    let list = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    Migrator::with_migrations(
        list.iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    Cow::Borrowed(*d),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i64,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct AdminWithHash {
    pub admin: Admin,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub billing_status: String,
    pub notes: String,
    pub namespace: String,
    pub assistant_name: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewClientRecord {
    pub name: String,
    pub email: String,
    pub billing_status: String,
    pub notes: String,
    pub namespace: String,
    pub assistant_name: String,
}

/// Database-side filters of the clients list.
#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    /// Substring of name, e-mail or Assistant name (case-insensitive).
    pub q: Option<String>,
    pub billing_status: Option<String>,
    pub include_deleted: bool,
}

/// Filters of the audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Substring of the actor's e-mail (case-insensitive).
    pub actor: Option<String>,
    /// Exact action, e.g. `client.delete`.
    pub action: Option<String>,
    pub client_id: Option<i64>,
    /// Substring of the target (`namespace/assistant`, `api-token/N`).
    pub target: Option<String>,
    /// Unix seconds: from (inclusive), until (exclusive).
    pub from: Option<i64>,
    pub until: Option<i64>,
}

/// Database-side orders of the clients list (phase is cluster data: sorted in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientSort {
    /// Client (owner) name, the first column.
    #[default]
    Name,
    Assistant,
    /// Newest first.
    Created,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub client_id: Option<i64>,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiTokenRow {
    pub id: i64,
    pub admin_email: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Space-separated presets and scopes (see `scopes::Scopes`).
    pub scopes: String,
    /// `None`: never expires (chosen explicitly at creation).
    pub expires_at: Option<i64>,
}

/// An unrevoked API token as the API guard sees it.
#[derive(Debug, Clone)]
pub struct ApiTokenAuth {
    pub admin: Admin,
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub admin_disabled: bool,
}

/// One line of `clawhost admin list`.
#[derive(Debug, Clone)]
pub struct AdminSummary {
    pub email: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_sign_in_at: Option<i64>,
    /// Live (unrevoked, unexpired) API tokens.
    pub tokens: i64,
}

/// One handoff link of a client (never its token: only the hash is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffLinkRow {
    pub id: i64,
    pub client_id: i64,
    pub token_hash: String,
    /// The gateway token sealed with a key derived from the link token; `None` once the
    /// link is spent, replaced or expired.
    pub sealed_gateway_token: Option<String>,
    /// E-mail of the admin who issued it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
    pub replaced_at: Option<i64>,
}

const HANDOFF_COLUMNS: &str = "id, client_id, token_hash, sealed_gateway_token, created_by, created_at, expires_at, spent_at, replaced_at";

fn handoff_from_row(r: &AnyRow) -> Result<HandoffLinkRow, sqlx::Error> {
    Ok(HandoffLinkRow {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        token_hash: r.try_get("token_hash")?,
        sealed_gateway_token: r.try_get("sealed_gateway_token")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        spent_at: r.try_get("spent_at")?,
        replaced_at: r.try_get("replaced_at")?,
    })
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

const CLIENT_COLUMNS: &str = "id, name, email, billing_status, notes, namespace, assistant_name, created_at, updated_at, deleted_at";

fn client_from_row(r: &AnyRow) -> Result<ClientRow, sqlx::Error> {
    Ok(ClientRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        billing_status: r.try_get("billing_status")?,
        notes: r.try_get("notes")?,
        namespace: r.try_get("namespace")?,
        assistant_name: r.try_get("assistant_name")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        deleted_at: r.try_get("deleted_at")?,
    })
}

/// Default location of the embedded database: `$CLAWHOST_DATA_DIR/clawhost.sqlite`, else
/// `./clawhost.sqlite`.
pub fn default_url() -> String {
    match std::env::var("CLAWHOST_DATA_DIR") {
        Ok(dir) if !dir.is_empty() => {
            format!("sqlite://{}/clawhost.sqlite", dir.trim_end_matches('/'))
        }
        _ => "sqlite://clawhost.sqlite".into(),
    }
}

/// Text folded for searching: lower case, compatibility-decomposed, combining marks
/// (accents) dropped, so `Élodie`, `ELODIE` and `elodie` compare equal on every database.
pub fn search_fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    s.to_lowercase()
        .nfkd()
        .filter(|c| !is_combining_mark(*c) && !c.is_control())
        .collect()
}

/// The stored search key of a client: its searchable fields folded, one per line (a line
/// break cannot be typed in the search box, so a match never spans two fields).
pub fn search_key(name: &str, email: &str, assistant_name: &str) -> String {
    [name, email, assistant_name].map(search_fold).join("\n")
}

impl Db {
    /// Connects, creating (SQLite) and migrating the database as needed.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or_default();
            if !file.is_empty()
                && file != ":memory:"
                && let Some(parent) = Path::new(file).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| DbError::Dir(parent.display().to_string(), e))?;
            }
            if !file.is_empty() && file != ":memory:" {
                private_file(Path::new(file))?;
            }
            // mode=rwc creates the file on first start: zero set-up.
            let url = if path.contains('?') {
                format!("sqlite://{path}")
            } else {
                format!("sqlite://{path}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(DbError::UnsupportedUrl(url.to_string()));
        };
        let max = match backend {
            // SQLite has one writer; a few readers are enough and avoid lock churn.
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets page reads proceed while the usage sampler writes.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        migrator(backend).run(&pool).await?;
        if let Some(file) = url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
            .filter(|f| !f.is_empty() && *f != ":memory:")
        {
            // SQLite gives -wal/-shm the main file's mode; tighten ones left by an older version.
            for suffix in ["-wal", "-shm"] {
                let side = format!("{file}{suffix}");
                if Path::new(&side).exists() {
                    private_file(Path::new(&side))?;
                }
            }
        }
        let db = Self { pool, backend };
        db.backfill_search_keys().await?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    // ----- admins -----

    pub async fn create_admin(
        &self,
        email: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO admins (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    pub async fn set_admin_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE admins SET password_hash = $1 WHERE email = $2")
            .bind(password_hash)
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn admin_by_email(&self, email: &str) -> Result<Option<AdminWithHash>, DbError> {
        let row = sqlx::query("SELECT id, email, password_hash FROM admins WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(AdminWithHash {
                admin: Admin {
                    id: r.try_get("id")?,
                    email: r.try_get("email")?,
                },
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    pub async fn admin_count(&self) -> Result<i64, DbError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM admins")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    // ----- first-run setup tokens -----

    /// Makes `token_hash` the only setup token (an earlier printed link stops working).
    pub async fn replace_setup_token(
        &self,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a setup token exists, is unused and has not expired.
    pub async fn setup_token_live(&self, token_hash: &str, now: i64) -> Result<bool, DbError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM setup_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Spends the setup token and creates the first administrator, in one transaction:
    /// `None` (nothing written) when the token is not live or an administrator exists, so
    /// two racing submissions cannot both create one.
    pub async fn create_first_admin_with_setup_token(
        &self,
        token_hash: &str,
        email: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<i64>, DbError> {
        let mut tx = self.pool.begin().await?;
        let spent = sqlx::query(
            "UPDATE setup_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let admins: i64 = sqlx::query("SELECT COUNT(*) AS n FROM admins")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if admins > 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO admins (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        Ok(Some(id))
    }

    // ----- sessions -----

    pub async fn create_session(
        &self,
        id_hash: &str,
        admin_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, admin_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(admin_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The admin and CSRF token of a live session.
    pub async fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<(Admin, String)>, DbError> {
        let row = sqlx::query(
            "SELECT a.id AS id, a.email AS email, s.csrf_token AS csrf FROM sessions s JOIN admins a ON a.id = s.admin_id WHERE s.id_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                Admin {
                    id: r.try_get("id")?,
                    email: r.try_get("email")?,
                },
                r.try_get("csrf")?,
            ))
        })
        .transpose()
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64, DbError> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    // ----- API tokens -----

    /// Creates a token with its scopes and expiry (`None`: never).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_scoped_api_token(
        &self,
        admin_id: i64,
        name: &str,
        token_hash: &str,
        prefix: &str,
        scopes: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (admin_id, name, token_hash, prefix, created_at, scopes, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(admin_id)
        .bind(name)
        .bind(token_hash)
        .bind(prefix)
        .bind(now)
        .bind(scopes)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// An unrevoked token with its scopes, expiry and whether its admin is disabled; records
    /// its use only when it is still good (an expired token's last use stays its last real use).
    pub async fn api_token_auth(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ApiTokenAuth>, DbError> {
        let row = sqlx::query(
            "SELECT t.id AS tid, a.id AS id, a.email AS email, t.scopes AS scopes, t.expires_at AS expires_at, a.disabled_at AS disabled_at FROM api_tokens t JOIN admins a ON a.id = t.admin_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let tid: i64 = r.try_get("tid")?;
        let expires_at: Option<i64> = r.try_get("expires_at")?;
        let disabled_at: Option<i64> = r.try_get("disabled_at")?;
        if disabled_at.is_none() && expires_at.is_none_or(|e| e > now) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(tid)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(ApiTokenAuth {
            admin: Admin {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
            },
            scopes: r.try_get("scopes")?,
            expires_at,
            admin_disabled: disabled_at.is_some(),
        }))
    }

    /// Ends every session of an admin; returns how many.
    pub async fn delete_admin_sessions(&self, admin_id: i64) -> Result<u64, DbError> {
        let r = sqlx::query("DELETE FROM sessions WHERE admin_id = $1")
            .bind(admin_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Revokes every live API token of an admin; returns how many.
    pub async fn revoke_admin_api_tokens(&self, admin_id: i64, now: i64) -> Result<u64, DbError> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE admin_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(admin_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Disables (`Some(now)`) or enables (`None`) an admin; false if no such admin.
    pub async fn set_admin_disabled(
        &self,
        email: &str,
        disabled_at: Option<i64>,
    ) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE admins SET disabled_at = $1 WHERE email = $2")
            .bind(disabled_at)
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// When the admin is disabled, if it is.
    pub async fn admin_disabled_at(&self, admin_id: i64) -> Result<Option<i64>, DbError> {
        let row = sqlx::query("SELECT disabled_at FROM admins WHERE id = $1")
            .bind(admin_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("disabled_at")?,
            None => None,
        })
    }

    pub async fn record_sign_in(&self, admin_id: i64, now: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE admins SET last_sign_in_at = $1 WHERE id = $2")
            .bind(now)
            .bind(admin_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn list_admins(&self, now: i64) -> Result<Vec<AdminSummary>, DbError> {
        let rows = sqlx::query(
            "SELECT a.email AS email, a.created_at AS created_at, a.disabled_at AS disabled_at, a.last_sign_in_at AS last_sign_in_at, \
             (SELECT COUNT(*) FROM api_tokens t WHERE t.admin_id = a.id AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $1)) AS tokens \
             FROM admins a ORDER BY a.email",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AdminSummary {
                    email: r.try_get("email")?,
                    created_at: r.try_get("created_at")?,
                    disabled_at: r.try_get("disabled_at")?,
                    last_sign_in_at: r.try_get("last_sign_in_at")?,
                    tokens: r.try_get("tokens")?,
                })
            })
            .collect()
    }

    pub async fn list_api_tokens(&self) -> Result<Vec<ApiTokenRow>, DbError> {
        let rows = sqlx::query(
            "SELECT t.id AS id, a.email AS email, t.name AS name, t.prefix AS prefix, t.created_at AS created_at, t.last_used_at AS last_used_at, t.revoked_at AS revoked_at, t.scopes AS scopes, t.expires_at AS expires_at FROM api_tokens t JOIN admins a ON a.id = t.admin_id ORDER BY t.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiTokenRow {
                    id: r.try_get("id")?,
                    admin_email: r.try_get("email")?,
                    name: r.try_get("name")?,
                    prefix: r.try_get("prefix")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                    scopes: r.try_get("scopes")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    pub async fn revoke_api_token(&self, id: i64, now: i64) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    // ----- clients -----

    pub async fn insert_client(&self, c: &NewClientRecord, now: i64) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO clients (name, email, billing_status, notes, namespace, assistant_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.email)
        .bind(&c.billing_status)
        .bind(&c.notes)
        .bind(&c.namespace)
        .bind(&c.assistant_name)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let id: i64 = row.try_get("id")?;
        self.set_search_key(id, &search_key(&c.name, &c.email, &c.assistant_name))
            .await?;
        Ok(id)
    }

    /// Many records in one transaction (seeding and benchmarks).
    pub async fn insert_clients(&self, list: &[NewClientRecord], now: i64) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for c in list {
            sqlx::query(
                "INSERT INTO clients (name, email, billing_status, notes, namespace, assistant_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&c.name)
            .bind(&c.email)
            .bind(&c.billing_status)
            .bind(&c.notes)
            .bind(&c.namespace)
            .bind(&c.assistant_name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn client(&self, id: i64) -> Result<Option<ClientRow>, DbError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(client_from_row).transpose()?)
    }

    pub async fn client_by_assistant(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClientRow>, DbError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE namespace = $1 AND assistant_name = $2 AND deleted_at IS NULL"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(client_from_row).transpose()?)
    }

    /// Clients matching `filter`, ordered by name; `page` is (limit, offset) or everything.
    /// Returns the page and the total number of matches.
    pub async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: Option<(i64, i64)>,
    ) -> Result<(Vec<ClientRow>, i64), DbError> {
        self.list_clients_sorted(filter, ClientSort::Name, page)
            .await
    }

    /// [`Db::list_clients`] in the order `sort` names.
    pub async fn list_clients_sorted(
        &self,
        filter: &ClientFilter,
        sort: ClientSort,
        page: Option<(i64, i64)>,
    ) -> Result<(Vec<ClientRow>, i64), DbError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if !filter.include_deleted {
            clauses.push("deleted_at IS NULL".into());
        }
        if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
            // Rows written by a path that did not fill the key yet are keyed first.
            self.backfill_search_keys().await?;
            // Escape LIKE wildcards so a search for "50%" means the characters.
            let esc = search_fold(q)
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            binds.push(format!("%{esc}%"));
            clauses.push(format!("search_key LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(b) = filter.billing_status.as_deref().filter(|b| !b.is_empty()) {
            binds.push(b.to_string());
            clauses.push(format!("billing_status = ${}", binds.len()));
        }
        let wh = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM clients{wh}");
        let mut cq = sqlx::query(AssertSqlSafe(count_sql));
        for b in &binds {
            cq = cq.bind(b.clone());
        }
        let total: i64 = cq.fetch_one(&self.pool).await?.try_get("n")?;
        let order = match sort {
            ClientSort::Name => "LOWER(name), id",
            ClientSort::Assistant => "assistant_name, id",
            ClientSort::Created => "created_at DESC, id DESC",
        };
        let mut sql = format!("SELECT {CLIENT_COLUMNS} FROM clients{wh} ORDER BY {order}");
        if let Some((limit, offset)) = page {
            sql.push_str(&format!(" LIMIT {} OFFSET {}", limit.max(0), offset.max(0)));
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let rows = rows
            .iter()
            .map(client_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total))
    }

    async fn set_search_key(&self, id: i64, key: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE clients SET search_key = $1 WHERE id = $2")
            .bind(key)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Fills the search key of every client that has none (older rows, bulk inserts).
    /// Idempotent; a no-op costs one indexed lookup. Returns how many rows were keyed.
    pub async fn backfill_search_keys(&self) -> Result<u64, DbError> {
        let rows = sqlx::query(
            "SELECT id, name, email, assistant_name FROM clients WHERE search_key = ''",
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let name: String = r.try_get("name")?;
            let email: String = r.try_get("email")?;
            let assistant: String = r.try_get("assistant_name")?;
            sqlx::query("UPDATE clients SET search_key = $1 WHERE id = $2")
                .bind(search_key(&name, &email, &assistant))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    pub async fn update_client_record(
        &self,
        id: i64,
        billing_status: &str,
        notes: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE clients SET billing_status = $1, notes = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(billing_status)
        .bind(notes)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deleted clients keep their record (invoices still need it) but free the Assistant name.
    pub async fn mark_client_deleted(&self, id: i64, now: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE clients SET deleted_at = $1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_client_row(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (id, namespace, assistant name) of every live client, for the usage sampler.
    pub async fn client_keys(&self) -> Result<Vec<(i64, String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT id, namespace, assistant_name FROM clients WHERE deleted_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("namespace")?,
                    r.try_get("assistant_name")?,
                ))
            })
            .collect()
    }

    // ----- audit -----

    #[allow(clippy::too_many_arguments)]
    pub async fn audit(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        client_id: Option<i64>,
        target: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, action, client_id, target, before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(client_id)
        .bind(target)
        .bind(before)
        .bind(after)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Most recent audit events, optionally of one client.
    pub async fn audit_events(
        &self,
        client_id: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AuditEvent>, DbError> {
        let base = "SELECT id, at, actor, action, client_id, target, before_json, after_json FROM audit_events";
        let sql = match client_id {
            Some(_) => format!(
                "{base} WHERE client_id = $1 ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
            ),
            None => format!("{base} ORDER BY id DESC LIMIT {limit} OFFSET {offset}"),
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(id) = client_id {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    client_id: r.try_get("client_id")?,
                    target: r.try_get("target")?,
                    before: r.try_get("before_json")?,
                    after: r.try_get("after_json")?,
                })
            })
            .collect()
    }

    /// Audit events matching `filter`, newest first, one page; with the number of matches.
    pub async fn audit_search(
        &self,
        filter: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditEvent>, i64), DbError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut text: Vec<String> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let like = |v: &str| {
            format!(
                "%{}%",
                v.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        };
        // Placeholders are numbered in one sequence; text and integer binds are kept apart
        // (the Any driver needs each bound with its own type) and bound in order below.
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if let Some(a) = filter.actor.as_deref().filter(|v| !v.is_empty()) {
            let i = next();
            text.push(like(a));
            clauses.push(format!("LOWER(actor) LIKE ${i} ESCAPE '\\'"));
        }
        if let Some(a) = filter.action.as_deref().filter(|v| !v.is_empty()) {
            let i = next();
            text.push(a.to_string());
            clauses.push(format!("action = ${i}"));
        }
        if let Some(t) = filter.target.as_deref().filter(|v| !v.is_empty()) {
            let i = next();
            text.push(like(t));
            clauses.push(format!("LOWER(target) LIKE ${i} ESCAPE '\\'"));
        }
        let mut order: Vec<(bool, usize)> = (0..text.len()).map(|i| (true, i)).collect();
        for (col, op, v) in [
            ("client_id", "=", filter.client_id),
            ("at", ">=", filter.from),
            ("at", "<", filter.until),
        ] {
            if let Some(v) = v {
                let i = next();
                order.push((false, ints.len()));
                ints.push((i, v));
                clauses.push(format!("{col} {op} ${i}"));
            }
        }
        let wh = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        macro_rules! bind_all {
            ($q:expr) => {{
                let mut q = $q;
                for (is_text, i) in &order {
                    q = if *is_text {
                        q.bind(text[*i].clone())
                    } else {
                        q.bind(ints[*i].1)
                    };
                }
                q
            }};
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM audit_events{wh}");
        let total: i64 = bind_all!(sqlx::query(AssertSqlSafe(count_sql)))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let sql = format!(
            "SELECT id, at, actor, action, client_id, target, before_json, after_json FROM audit_events{wh} ORDER BY id DESC LIMIT {} OFFSET {}",
            limit.max(0),
            offset.max(0)
        );
        let rows = bind_all!(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        let events = rows
            .iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    client_id: r.try_get("client_id")?,
                    target: r.try_get("target")?,
                    before: r.try_get("before_json")?,
                    after: r.try_get("after_json")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok((events, total))
    }

    /// The distinct actions in the audit log (the filter's choices).
    pub async fn audit_actions(&self) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query("SELECT DISTINCT action FROM audit_events ORDER BY action")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("action")?)).collect()
    }

    // ----- usage -----

    /// Counts `minute` (Unix minutes) as a running minute of each client, once, under the
    /// plan observed running: `(client id, plan)` pairs.
    pub async fn record_running_minute(
        &self,
        running: &[(i64, String)],
        month: &str,
        minute: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for (id, plan) in running {
            let counted = sqlx::query(
                "INSERT INTO usage_samples (client_id, month, running_minutes, last_minute) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (client_id, month) DO UPDATE SET running_minutes = usage_samples.running_minutes + 1, last_minute = excluded.last_minute \
                 WHERE usage_samples.last_minute < excluded.last_minute",
            )
            .bind(*id)
            .bind(month)
            .bind(minute)
            .execute(&mut *tx)
            .await?;
            // usage_samples is the per-client guard: a minute another replica already
            // counted is not added to any plan either.
            if counted.rows_affected() == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO usage_plan_minutes (client_id, month, plan, running_minutes, last_minute) VALUES ($1, $2, $3, 1, $4) \
                 ON CONFLICT (client_id, month, plan) DO UPDATE SET running_minutes = usage_plan_minutes.running_minutes + 1, last_minute = excluded.last_minute",
            )
            .bind(*id)
            .bind(month)
            .bind(plan)
            .bind(minute)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that `minute` could not be sampled (once, whichever replica notices).
    pub async fn record_sampler_gap(
        &self,
        month: &str,
        minute: i64,
        reason: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO usage_gaps (minute, month, reason) VALUES ($1, $2, $3) ON CONFLICT (minute) DO NOTHING",
        )
        .bind(minute)
        .bind(month)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many minutes of `month` the sampler could not observe the cluster.
    pub async fn sampler_gap_minutes(&self, month: &str) -> Result<i64, DbError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM usage_gaps WHERE month = $1")
            .bind(month)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// The plan each client's last sampled minute ran on (a rollout in progress keeps
    /// billing the plan that is still running).
    pub async fn last_sampled_plan(&self, client_id: i64) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT plan FROM usage_plan_minutes WHERE client_id = $1 ORDER BY last_minute DESC LIMIT 1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("plan"))
            .transpose()
            .map_err(Into::into)
    }

    pub async fn usage_minutes(&self, client_id: i64, month: &str) -> Result<i64, DbError> {
        let row = sqlx::query(
            "SELECT running_minutes FROM usage_samples WHERE client_id = $1 AND month = $2",
        )
        .bind(client_id)
        .bind(month)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("running_minutes")?,
            None => 0,
        })
    }

    /// The usage lines of `month`: one per client and plan it ran on, and every client
    /// live in the month with none (0 minutes; it still has to appear on the invoice run).
    /// Deleted clients appear only with usage. `month_end` is the first second after the
    /// month: clients created later were not live in it.
    pub async fn usage_for_month(
        &self,
        month: &str,
        month_end: i64,
    ) -> Result<Vec<(ClientRow, Option<String>, i64)>, DbError> {
        let cols = CLIENT_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c} AS {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols}, u.plan AS usage_plan, u.running_minutes AS running_minutes FROM clients c \
             LEFT JOIN usage_plan_minutes u ON u.client_id = c.id AND u.month = $1 \
             WHERE u.client_id IS NOT NULL OR (c.deleted_at IS NULL AND c.created_at < $2) \
             ORDER BY LOWER(c.name), c.id, u.plan"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(month)
            .bind(month_end)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let minutes: Option<i64> = r.try_get("running_minutes")?;
                Ok((
                    client_from_row(r)?,
                    r.try_get("usage_plan")?,
                    minutes.unwrap_or(0),
                ))
            })
            .collect()
    }
}

// ----- handoff links -----
impl Db {
    /// Issues a link: marks the client's open links replaced, inserts the new one and
    /// stores the gateway token sealed by `seal(row id)`, in one transaction. Returns the
    /// new link's id and the ids of the links it replaced. Issues for one client are
    /// serialized, so racing ones still leave exactly one open link.
    pub async fn issue_handoff_link(
        &self,
        client_id: i64,
        token_hash: &str,
        created_by: &str,
        now: i64,
        expires_at: i64,
        seal: impl FnOnce(i64) -> String,
    ) -> Result<(i64, Vec<i64>), DbError> {
        let mut tx = self.pool.begin().await?;
        // Lock the client row first (a no-op write: a row lock on PostgreSQL, the write lock
        // on SQLite). Without it, under READ COMMITTED two issues both see no open link to
        // replace and both insert one.
        sqlx::query("UPDATE clients SET id = id WHERE id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        let replaced: Vec<i64> = sqlx::query(
            "UPDATE handoff_links SET replaced_at = $1, sealed_gateway_token = NULL WHERE client_id = $2 AND spent_at IS NULL AND replaced_at IS NULL AND expires_at > $1 RETURNING id",
        )
        .bind(now)
        .bind(client_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        let id: i64 = sqlx::query(
            "INSERT INTO handoff_links (client_id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(client_id)
        .bind(token_hash)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        sqlx::query("UPDATE handoff_links SET sealed_gateway_token = $1 WHERE id = $2")
            .bind(seal(id))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((id, replaced))
    }

    pub async fn handoff_link_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<HandoffLinkRow>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HANDOFF_COLUMNS} FROM handoff_links WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(handoff_from_row).transpose()?)
    }

    /// Spends an open link: `true` for exactly one caller (a racing second one, or a link
    /// replaced or expired meanwhile, gets `false`). The sealed token goes with it.
    pub async fn spend_handoff_link(&self, id: i64, now: i64) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE handoff_links SET spent_at = $1, sealed_gateway_token = NULL WHERE id = $2 AND spent_at IS NULL AND replaced_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Drops the sealed tokens of expired links (they can never be revealed).
    pub async fn purge_expired_handoff_tokens(&self, now: i64) -> Result<u64, DbError> {
        let r = sqlx::query(
            "UPDATE handoff_links SET sealed_gateway_token = NULL WHERE expires_at <= $1 AND sealed_gateway_token IS NOT NULL",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// The client's links, newest first.
    pub async fn handoff_links(&self, client_id: i64) -> Result<Vec<HandoffLinkRow>, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HANDOFF_COLUMNS} FROM handoff_links WHERE client_id = $1 ORDER BY id DESC LIMIT 50"
        )))
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(handoff_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Moves a link's expiry (tests and operations: end a link now).
    pub async fn set_handoff_expiry(&self, id: i64, expires_at: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE handoff_links SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live clients' keys with their creation time: (id, namespace, Assistant name,
    /// created_at); Fleet reads these once for every count.
    pub async fn client_keys_created(&self) -> Result<Vec<(i64, String, String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT id, namespace, assistant_name, created_at FROM clients WHERE deleted_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("namespace")?,
                    r.try_get("assistant_name")?,
                    r.try_get("created_at")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}
