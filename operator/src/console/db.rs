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
        Ok(Self { pool, backend })
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
            "SELECT a.id AS id, a.email AS email, s.csrf_token AS csrf FROM sessions s JOIN admins a ON a.id = s.admin_id WHERE s.id_hash = $1 AND s.expires_at > $2",
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

    pub async fn create_api_token(
        &self,
        admin_id: i64,
        name: &str,
        token_hash: &str,
        prefix: &str,
        now: i64,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (admin_id, name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(admin_id)
        .bind(name)
        .bind(token_hash)
        .bind(prefix)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The admin an unrevoked API token belongs to; records its use.
    pub async fn api_token_admin(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Admin>, DbError> {
        let row = sqlx::query(
            "SELECT t.id AS tid, a.id AS id, a.email AS email FROM api_tokens t JOIN admins a ON a.id = t.admin_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let tid: i64 = r.try_get("tid")?;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(tid)
            .execute(&self.pool)
            .await?;
        Ok(Some(Admin {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
        }))
    }

    pub async fn list_api_tokens(&self) -> Result<Vec<ApiTokenRow>, DbError> {
        let rows = sqlx::query(
            "SELECT t.id AS id, a.email AS email, t.name AS name, t.prefix AS prefix, t.created_at AS created_at, t.last_used_at AS last_used_at, t.revoked_at AS revoked_at FROM api_tokens t JOIN admins a ON a.id = t.admin_id ORDER BY t.id DESC",
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
        Ok(row.try_get("id")?)
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
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if !filter.include_deleted {
            clauses.push("deleted_at IS NULL".into());
        }
        if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
            // Escape LIKE wildcards so a search for "50%" means the characters.
            let esc = q
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            binds.push(format!("%{esc}%"));
            let n = binds.len();
            clauses.push(format!(
                "(LOWER(name) LIKE ${n} ESCAPE '\\' OR LOWER(email) LIKE ${n} ESCAPE '\\' OR LOWER(assistant_name) LIKE ${n} ESCAPE '\\')"
            ));
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
        let mut sql = format!("SELECT {CLIENT_COLUMNS} FROM clients{wh} ORDER BY LOWER(name), id");
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
