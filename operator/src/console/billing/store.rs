//! The billing tables (migration 0006): prices, settings, subscriptions, the timeline,
//! invoices with gap-free numbers, provider events. Portable SQL for SQLite and PostgreSQL.
//!
//! Numbering: a document's number is taken from `document_counters` in the transaction
//! that inserts it, so a failed insert gives its number back and two concurrent runs never
//! repeat one (the counter row is locked until the transaction ends).

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::invoice::document_number;
use super::model::*;
use crate::console::db::{Db, DbError};

/// A decoding problem in a stored row (a JSON column, an unknown state name).
fn decode_err(what: impl std::fmt::Display) -> DbError {
    DbError::Sqlx(sqlx::Error::Decode(what.to_string().into()))
}

/// Whether a database error is a unique-constraint violation (both databases).
pub fn is_unique_violation(e: &DbError) -> bool {
    match e {
        DbError::Sqlx(sqlx::Error::Database(d)) => {
            d.is_unique_violation()
                || d.message().contains("UNIQUE constraint")
                || d.message().contains("duplicate key")
        }
        _ => false,
    }
}

const PRICE_COLUMNS: &str = "id, plan, currency, monthly_cents, setup_fee_cents, trial_days, effective_from, created_by, created_at";

fn price_from_row(r: &AnyRow) -> Result<PlanPrice, sqlx::Error> {
    Ok(PlanPrice {
        id: r.try_get("id")?,
        plan: r.try_get("plan")?,
        currency: r.try_get("currency")?,
        monthly_cents: r.try_get("monthly_cents")?,
        setup_fee_cents: r.try_get("setup_fee_cents")?,
        trial_days: r.try_get("trial_days")?,
        effective_from: r.try_get("effective_from")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

const SUBSCRIPTION_COLUMNS: &str = "client_id, state, started_at, trial_ends_at, past_due_since, suspend_at, suspended_at, suspension_reason, cancel_at, canceled_at, delete_at, deleted_at, external_customer_id, setup_fee_invoiced, last_provider_event_at, updated_at";

fn state_from(s: &str) -> Result<SubscriptionState, DbError> {
    SubscriptionState::parse(s)
        .ok_or_else(|| decode_err(format!("unknown subscription state {s:?}")))
}

fn subscription_from_row(r: &AnyRow) -> Result<Subscription, DbError> {
    let state: String = r.try_get("state")?;
    let reason: Option<String> = r.try_get("suspension_reason")?;
    let setup: i64 = r.try_get("setup_fee_invoiced")?;
    Ok(Subscription {
        client_id: r.try_get("client_id")?,
        state: state_from(&state)?,
        started_at: r.try_get("started_at")?,
        trial_ends_at: r.try_get("trial_ends_at")?,
        past_due_since: r.try_get("past_due_since")?,
        suspend_at: r.try_get("suspend_at")?,
        suspended_at: r.try_get("suspended_at")?,
        suspension_reason: reason.as_deref().and_then(SuspensionReason::parse),
        cancel_at: r.try_get("cancel_at")?,
        canceled_at: r.try_get("canceled_at")?,
        delete_at: r.try_get("delete_at")?,
        deleted_at: r.try_get("deleted_at")?,
        external_customer_id: r.try_get("external_customer_id")?,
        setup_fee_invoiced: setup != 0,
        last_provider_event_at: r.try_get("last_provider_event_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn point_from_row(r: &AnyRow) -> Result<(i64, TimelinePoint), DbError> {
    let state: String = r.try_get("state")?;
    let suspended: i64 = r.try_get("suspended")?;
    Ok((
        r.try_get("client_id")?,
        TimelinePoint {
            at: r.try_get("at")?,
            plan: r.try_get("plan")?,
            suspended: suspended != 0,
            state: state_from(&state)?,
        },
    ))
}

const INVOICE_COLUMNS: &str = "id, number, kind, client_id, month, corrects_number, currency, total_cents, lines_json, bill_to_json, seller, note, issued_at, due_at, issued_by, paid_at, paid_via";

fn invoice_from_row(r: &AnyRow) -> Result<Invoice, DbError> {
    let kind: String = r.try_get("kind")?;
    let kind = match kind.as_str() {
        "invoice" => DocumentKind::Invoice,
        "credit_note" => DocumentKind::CreditNote,
        other => return Err(decode_err(format!("unknown document kind {other:?}"))),
    };
    let lines: String = r.try_get("lines_json")?;
    let bill_to: String = r.try_get("bill_to_json")?;
    Ok(Invoice {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        kind,
        client_id: r.try_get("client_id")?,
        month: r.try_get("month")?,
        corrects_number: r.try_get("corrects_number")?,
        currency: r.try_get("currency")?,
        total_cents: r.try_get("total_cents")?,
        lines: serde_json::from_str(&lines).map_err(decode_err)?,
        bill_to: serde_json::from_str(&bill_to).map_err(decode_err)?,
        seller: r.try_get("seller")?,
        note: r.try_get("note")?,
        issued_at: r.try_get("issued_at")?,
        due_at: r.try_get("due_at")?,
        issued_by: r.try_get("issued_by")?,
        paid_at: r.try_get("paid_at")?,
        paid_via: r.try_get("paid_via")?,
    })
}

/// A document to issue: everything but its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDocument {
    pub kind: DocumentKind,
    pub client_id: i64,
    pub month: String,
    pub corrects_number: Option<String>,
    pub currency: String,
    pub total_cents: i64,
    pub lines: Vec<InvoiceLine>,
    pub bill_to: BillTo,
    pub seller: String,
    pub note: String,
    pub issued_at: i64,
    pub due_at: i64,
    pub issued_by: String,
    /// This invoice settles the setup fee (the client's first with a billed day; the fee
    /// line, if any, is among the lines): the subscription's fee is marked invoiced with it,
    /// and the fee line dropped if another invoice settled it first.
    pub includes_setup_fee: bool,
}

/// What [`Db::issue_invoices`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuedBatch {
    /// The numbers issued, in the order of the documents given.
    pub numbers: Vec<String>,
    /// Clients skipped because they had this month's invoice (another run was first).
    pub already_issued: Vec<i64>,
}

/// Why a credit note was not issued.
#[derive(Debug, thiserror::Error)]
pub enum CreditRefused {
    #[error("the invoice has {remaining} left to credit")]
    Exceeds { remaining: i64 },
    #[error("{0}")]
    Db(#[from] DbError),
}

/// An invoice that is owed: unpaid, and its total plus its credit notes' totals above 0 (a
/// zero or fully credited invoice owes nothing).
const OWED: &str = "kind = 'invoice' AND paid_at IS NULL AND total_cents + COALESCE((SELECT SUM(cn.total_cents) FROM invoices cn WHERE cn.kind = 'credit_note' AND cn.corrects_number = invoices.number), 0) > 0";

/// Rows per multi-row INSERT: 17 parameters each, well under both databases' limits.
const INSERT_CHUNK: usize = 200;

/// Locks the series' counter row until the transaction ends and returns its last number
/// (0 for a new series). The no-op upsert takes the row lock on PostgreSQL and the write
/// lock on SQLite, so numbering transactions run one after the other.
async fn lock_counter(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    series: &str,
) -> Result<i64, DbError> {
    let r = sqlx::query(
        "INSERT INTO document_counters (series, last_number) VALUES ($1, 0) \
         ON CONFLICT (series) DO UPDATE SET last_number = document_counters.last_number \
         RETURNING last_number",
    )
    .bind(series)
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.try_get("last_number")?)
}

/// Inserts `docs` numbered `prefix-(last+1)..` and advances the counter, inside `tx`.
async fn insert_numbered(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    prefix: &str,
    last: i64,
    docs: &[&NewDocument],
) -> Result<Vec<String>, DbError> {
    // The setup fee is settled by the client's first invoice with a billed day: marked under
    // the counter lock, only while still due, so two runs (different months) racing for the
    // same client settle it once; the loser drops its fee line.
    let fee_clients: Vec<i64> = docs
        .iter()
        .filter(|d| d.includes_setup_fee)
        .map(|d| d.client_id)
        .collect();
    let mut settled = HashSet::new();
    for chunk in fee_clients.chunks(500) {
        let list = (1..=chunk.len())
            .map(|k| format!("${k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE subscriptions SET setup_fee_invoiced = 1 WHERE client_id IN ({list}) AND setup_fee_invoiced = 0 RETURNING client_id"
        )));
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            settled.insert(r.try_get::<i64, _>("client_id")?);
        }
    }
    let adjusted: Vec<NewDocument> = docs
        .iter()
        .filter(|d| d.includes_setup_fee && !settled.contains(&d.client_id))
        .map(|d| {
            let mut d = (*d).clone();
            d.lines.retain(|l| l.kind != LineKind::SetupFee);
            d.total_cents = d
                .lines
                .iter()
                .fold(0i64, |sum, l| sum.saturating_add(l.amount_cents));
            d.includes_setup_fee = false;
            d
        })
        .collect();
    let mut adjusted_iter = adjusted.iter();
    let docs: Vec<&NewDocument> = docs
        .iter()
        .map(|d| {
            if d.includes_setup_fee && !settled.contains(&d.client_id) {
                adjusted_iter.next().unwrap_or(d)
            } else {
                *d
            }
        })
        .collect();

    let mut numbers = Vec::with_capacity(docs.len());
    let mut seq = last;
    for chunk in docs.chunks(INSERT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO invoices (number, kind, client_id, month, corrects_number, currency, total_cents, lines_json, bill_to_json, seller, note, issued_at, due_at, issued_by, paid_at, paid_via) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 16;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(
                &(1..=16)
                    .map(|k| format!("${}", b + k))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            sql.push(')');
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for d in chunk {
            seq += 1;
            let number = document_number(prefix, seq);
            let lines = serde_json::to_string(&d.lines).map_err(decode_err)?;
            let bill_to = serde_json::to_string(&d.bill_to).map_err(decode_err)?;
            q = q
                .bind(number.clone())
                .bind(d.kind.as_str())
                .bind(d.client_id)
                .bind(d.month.clone())
                .bind(d.corrects_number.clone())
                .bind(d.currency.clone())
                .bind(d.total_cents)
                .bind(lines)
                .bind(bill_to)
                .bind(d.seller.clone())
                .bind(d.note.clone())
                .bind(d.issued_at)
                .bind(d.due_at)
                .bind(d.issued_by.clone());
            // An invoice of 0 owes nothing: issued paid (`zero`), so it never falls due.
            let zero = d.kind == DocumentKind::Invoice && d.total_cents == 0;
            q = q
                .bind(zero.then_some(d.issued_at))
                .bind(zero.then(|| "zero".to_string()));
            numbers.push(number);
        }
        q.execute(&mut **tx).await?;
    }
    if seq != last {
        sqlx::query("UPDATE document_counters SET last_number = $1 WHERE series = $2")
            .bind(seq)
            .bind(prefix)
            .execute(&mut **tx)
            .await?;
    }
    Ok(numbers)
}

impl Db {
    // ----- prices -----

    /// Every price of every plan, by plan then start day.
    pub async fn plan_prices(&self) -> Result<Vec<PlanPrice>, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PRICE_COLUMNS} FROM plan_prices ORDER BY plan, effective_from"
        )))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(price_from_row).collect::<Result<_, _>>()?)
    }

    /// Adds a price, or replaces the one of the same plan and day when that day is after
    /// `today` (it has not started). `None`: a price of that day has started already.
    pub async fn put_plan_price(
        &self,
        p: &PlanPrice,
        today: &str,
    ) -> Result<Option<PlanPrice>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO plan_prices (plan, currency, monthly_cents, setup_fee_cents, trial_days, effective_from, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (plan, effective_from) DO UPDATE SET currency = excluded.currency, monthly_cents = excluded.monthly_cents, \
             setup_fee_cents = excluded.setup_fee_cents, trial_days = excluded.trial_days, created_by = excluded.created_by, created_at = excluded.created_at \
             WHERE plan_prices.effective_from > $9 \
             RETURNING {PRICE_COLUMNS}"
        )))
        .bind(&p.plan)
        .bind(&p.currency)
        .bind(p.monthly_cents)
        .bind(p.setup_fee_cents)
        .bind(p.trial_days)
        .bind(&p.effective_from)
        .bind(&p.created_by)
        .bind(p.created_at)
        .bind(today)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(price_from_row).transpose()?)
    }

    // ----- settings -----

    pub async fn billing_settings(&self) -> Result<BillingSettings, DbError> {
        let r = sqlx::query(
            "SELECT grace_days, payment_terms_days, retention_days, canceled_volume, bill_suspended_days, invoice_prefix, credit_note_prefix, seller, updated_at FROM billing_settings WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?;
        let volume: String = r.try_get("canceled_volume")?;
        let bill_suspended: i64 = r.try_get("bill_suspended_days")?;
        Ok(BillingSettings {
            grace_days: r.try_get("grace_days")?,
            payment_terms_days: r.try_get("payment_terms_days")?,
            retention_days: r.try_get("retention_days")?,
            canceled_volume: if volume == "Delete" {
                VolumeOnCancel::Delete
            } else {
                VolumeOnCancel::Retain
            },
            bill_suspended_days: bill_suspended != 0,
            invoice_prefix: r.try_get("invoice_prefix")?,
            credit_note_prefix: r.try_get("credit_note_prefix")?,
            seller: r.try_get("seller")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    pub async fn save_billing_settings(&self, s: &BillingSettings) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE billing_settings SET grace_days = $1, payment_terms_days = $2, retention_days = $3, canceled_volume = $4, bill_suspended_days = $5, invoice_prefix = $6, credit_note_prefix = $7, seller = $8, updated_at = $9 WHERE id = 1",
        )
        .bind(s.grace_days)
        .bind(s.payment_terms_days)
        .bind(s.retention_days)
        .bind(match s.canceled_volume {
            VolumeOnCancel::Retain => "Retain",
            VolumeOnCancel::Delete => "Delete",
        })
        .bind(i64::from(s.bill_suspended_days))
        .bind(&s.invoice_prefix)
        .bind(&s.credit_note_prefix)
        .bind(&s.seller)
        .bind(s.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // ----- subscriptions -----

    pub async fn subscription(&self, client_id: i64) -> Result<Option<Subscription>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE client_id = $1"
        )))
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    /// The live (not deleted) subscription whose provider customer id is `customer`.
    pub async fn subscription_by_customer(
        &self,
        customer: &str,
    ) -> Result<Option<Subscription>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE external_customer_id = $1 AND deleted_at IS NULL"
        )))
        .bind(customer)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    /// Clears `customer` from a deleted subscription still holding it (rows deleted before
    /// deletions released their customer id), so a live client can take it; the clients
    /// released.
    pub async fn release_deleted_customer(&self, customer: &str) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query(
            "UPDATE subscriptions SET external_customer_id = NULL, updated_at = updated_at + 1 \
             WHERE external_customer_id = $1 AND deleted_at IS NOT NULL RETURNING client_id",
        )
        .bind(customer)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("client_id")?))
            .collect()
    }

    /// Every subscription, by client id (one query: the engine and the invoice run).
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY client_id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(subscription_from_row).collect()
    }

    /// Inserts a new subscription; `false` when the client has one already.
    pub async fn insert_subscription(&self, s: &Subscription) -> Result<bool, DbError> {
        let r = bind_subscription(
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (client_id) DO NOTHING"
            ))),
            s,
        )
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Inserts many new subscriptions in one transaction (imports, the benchmark); clients
    /// that have one already keep it. Returns how many were inserted.
    pub async fn insert_subscriptions(&self, list: &[Subscription]) -> Result<u64, DbError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for s in list {
            n += bind_subscription(
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (client_id) DO NOTHING"
                ))),
                s,
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Stores `s` only if the stored row still has `updated_at == expected_updated_at`
    /// (compare-and-set); `false` when someone else changed it first.
    pub async fn update_subscription_cas(
        &self,
        s: &Subscription,
        expected_updated_at: i64,
    ) -> Result<bool, DbError> {
        let r = bind_subscription(
            sqlx::query(
                "UPDATE subscriptions SET state = $2, started_at = $3, trial_ends_at = $4, past_due_since = $5, suspend_at = $6, suspended_at = $7, \
                 suspension_reason = $8, cancel_at = $9, canceled_at = $10, delete_at = $11, deleted_at = $12, external_customer_id = $13, \
                 setup_fee_invoiced = $14, last_provider_event_at = $15, updated_at = $16 \
                 WHERE client_id = $1 AND updated_at = $17",
            ),
            s,
        )
        .bind(expected_updated_at)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Keeps the client record's billing status equal to the subscription state.
    pub async fn set_client_billing_status(
        &self,
        client_id: i64,
        status: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE clients SET billing_status = $1, updated_at = $2 WHERE id = $3 AND billing_status <> $1",
        )
        .bind(status)
        .bind(now)
        .bind(client_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `(id, name, email, assistant_name)` of the given clients (deleted ones too: an
    /// invoice is addressed as the records say).
    pub async fn billing_contacts(&self, ids: &[i64]) -> Result<HashMap<i64, BillTo>, DbError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = (1..=chunk.len())
                .map(|k| format!("${k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, name, email, namespace, assistant_name FROM clients WHERE id IN ({list})"
            )));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.insert(
                    r.try_get("id")?,
                    BillTo {
                        name: r.try_get("name")?,
                        email: r.try_get("email")?,
                        assistant: r.try_get("assistant_name")?,
                    },
                );
            }
        }
        Ok(out)
    }

    // ----- timeline -----

    /// A client's timeline, in order.
    pub async fn timeline(&self, client_id: i64) -> Result<Vec<TimelinePoint>, DbError> {
        let rows = sqlx::query(
            "SELECT client_id, at, plan, suspended, state FROM billing_timeline WHERE client_id = $1 ORDER BY at, id",
        )
        .bind(client_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| point_from_row(r).map(|(_, p)| p))
            .collect()
    }

    /// The last point of every client, in one query (the engine compares each tick).
    pub async fn last_timeline_points(&self) -> Result<HashMap<i64, TimelinePoint>, DbError> {
        self.last_points_before(i64::MAX).await
    }

    /// Each client's last point with `at < before`.
    async fn last_points_before(
        &self,
        before: i64,
    ) -> Result<HashMap<i64, TimelinePoint>, DbError> {
        let rows = sqlx::query(
            "SELECT client_id, at, plan, suspended, state FROM ( \
               SELECT client_id, at, plan, suspended, state, \
                 ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY at DESC, id DESC) AS rn \
               FROM billing_timeline WHERE at < $1) t WHERE rn = 1",
        )
        .bind(before)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(point_from_row).collect()
    }

    /// When each deleted client was deleted (`clients.deleted_at`).
    pub async fn deleted_clients(&self) -> Result<HashMap<i64, i64>, DbError> {
        let rows = sqlx::query("SELECT id, deleted_at FROM clients WHERE deleted_at IS NOT NULL")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("deleted_at")?)))
            .collect()
    }

    /// The plan each client with its setup fee still due started on (its first timeline
    /// point): the setup fee is that plan's.
    pub async fn start_plans_with_fee_due(&self) -> Result<HashMap<i64, String>, DbError> {
        let rows = sqlx::query(
            "SELECT client_id, plan FROM ( \
               SELECT t.client_id, t.plan, \
                 ROW_NUMBER() OVER (PARTITION BY t.client_id ORDER BY t.at, t.id) AS rn \
               FROM billing_timeline t JOIN subscriptions s ON s.client_id = t.client_id \
               WHERE s.setup_fee_invoiced = 0) f WHERE rn = 1",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("client_id")?, r.try_get("plan")?)))
            .collect()
    }

    /// Appends points (one transaction).
    pub async fn append_timeline_points(
        &self,
        points: &[(i64, TimelinePoint)],
    ) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        for chunk in points.chunks(INSERT_CHUNK) {
            let values = (0..chunk.len())
                .map(|i| {
                    let b = i * 5;
                    format!(
                        "(${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO billing_timeline (client_id, at, plan, suspended, state) VALUES {values}"
            )));
            for (id, p) in chunk {
                q = q
                    .bind(*id)
                    .bind(p.at)
                    .bind(p.plan.clone())
                    .bind(i64::from(p.suspended))
                    .bind(p.state.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The client's last point.
    pub async fn last_timeline_point(
        &self,
        client_id: i64,
    ) -> Result<Option<TimelinePoint>, DbError> {
        let row = sqlx::query(
            "SELECT client_id, at, plan, suspended, state FROM billing_timeline WHERE client_id = $1 ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(|r| point_from_row(r).map(|(_, p)| p))
            .transpose()
    }

    /// Appends a point for the client unless its last point has the same plan, suspension
    /// and state; `true` when a point was added. For many clients at once, compare against
    /// [`Db::last_timeline_points`] and call [`Db::append_timeline_points`].
    pub async fn record_observation(
        &self,
        client_id: i64,
        plan: &str,
        suspended: bool,
        state: SubscriptionState,
        now: i64,
    ) -> Result<bool, DbError> {
        if let Some(p) = self.last_timeline_point(client_id).await?
            && p.plan == plan
            && p.suspended == suspended
            && p.state == state
        {
            return Ok(false);
        }
        self.append_timeline_points(&[(
            client_id,
            TimelinePoint {
                at: now,
                plan: plan.to_string(),
                suspended,
                state,
            },
        )])
        .await?;
        Ok(true)
    }

    /// Every client's points relevant to `[start, end)`: its last point before `start`
    /// (the state at the month's start) and every point inside, in order. Two queries
    /// for all clients (the invoice run).
    pub async fn timelines_for_period(
        &self,
        start: i64,
        end: i64,
    ) -> Result<HashMap<i64, Vec<TimelinePoint>>, DbError> {
        let mut out: HashMap<i64, Vec<TimelinePoint>> = HashMap::new();
        for (id, p) in self.last_points_before(start).await? {
            out.entry(id).or_default().push(p);
        }
        let rows = sqlx::query(
            "SELECT client_id, at, plan, suspended, state FROM billing_timeline WHERE at >= $1 AND at < $2 ORDER BY client_id, at, id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let (id, p) = point_from_row(r)?;
            out.entry(id).or_default().push(p);
        }
        Ok(out)
    }

    // ----- invoices and credit notes -----

    /// Documents, newest first; all filters optional.
    pub async fn invoices_where(
        &self,
        month: Option<&str>,
        client_id: Option<i64>,
        unpaid_only: bool,
    ) -> Result<Vec<Invoice>, DbError> {
        let mut clauses = Vec::new();
        let mut n = 0;
        if month.is_some() {
            n += 1;
            clauses.push(format!("month = ${n}"));
        }
        if client_id.is_some() {
            n += 1;
            clauses.push(format!("client_id = ${n}"));
        }
        if unpaid_only {
            clauses.push("kind = 'invoice' AND paid_at IS NULL".into());
        }
        let wh = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices{wh} ORDER BY id DESC"
        )));
        if let Some(m) = month {
            q = q.bind(m.to_string());
        }
        if let Some(c) = client_id {
            q = q.bind(c);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(invoice_from_row).collect()
    }

    pub async fn invoice_by_number(&self, number: &str) -> Result<Option<Invoice>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE number = $1"
        )))
        .bind(number)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(invoice_from_row).transpose()
    }

    /// Clients that have an invoice (not a credit note) for `month`.
    pub async fn invoiced_clients(&self, month: &str) -> Result<HashSet<i64>, DbError> {
        let rows =
            sqlx::query("SELECT client_id FROM invoices WHERE month = $1 AND kind = 'invoice'")
                .bind(month)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("client_id")?))
            .collect()
    }

    /// Unpaid invoices whose due date is before `now` and that still owe something (total
    /// plus their credit notes above 0), oldest due first.
    pub async fn overdue_invoices(&self, now: i64) -> Result<Vec<Invoice>, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE {OWED} AND due_at < $1 ORDER BY due_at, id"
        )))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(invoice_from_row).collect()
    }

    /// Whether the client has an invoice that still owes something past its due date.
    pub async fn client_owes_overdue(&self, client_id: i64, now: i64) -> Result<bool, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id FROM invoices WHERE {OWED} AND due_at < $1 AND client_id = $2 LIMIT 1"
        )))
        .bind(now)
        .bind(client_id)
        .fetch_all(self.pool())
        .await?;
        Ok(!rows.is_empty())
    }

    /// What an invoice still owes: its total plus its credit notes' (negative) totals.
    pub async fn owed_on(&self, number: &str) -> Result<i64, DbError> {
        let rows = sqlx::query(
            "SELECT total_cents FROM invoices WHERE number = $1 OR (kind = 'credit_note' AND corrects_number = $1)",
        )
        .bind(number)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>("total_cents"))
            .sum::<Result<i64, _>>()
            .map_err(Into::into)
    }

    /// Issues invoices with consecutive numbers of the series `prefix` in one transaction;
    /// clients that have this month's invoice meanwhile (a concurrent run) are skipped,
    /// checked under the counter's lock. Marks setup fees invoiced in the same transaction.
    pub async fn issue_invoices(
        &self,
        prefix: &str,
        docs: &[NewDocument],
    ) -> Result<IssuedBatch, DbError> {
        let mut tx = self.pool().begin().await?;
        let last = lock_counter(&mut tx, prefix).await?;
        // Read under the lock: a run that committed while this one waited is seen here.
        let mut months: Vec<&str> = docs.iter().map(|d| d.month.as_str()).collect();
        months.sort_unstable();
        months.dedup();
        let mut taken = HashSet::new();
        for m in months {
            for r in
                sqlx::query("SELECT client_id FROM invoices WHERE month = $1 AND kind = 'invoice'")
                    .bind(m)
                    .fetch_all(&mut *tx)
                    .await?
            {
                taken.insert((m.to_string(), r.try_get::<i64, _>("client_id")?));
            }
        }
        let (fresh, stale): (Vec<&NewDocument>, Vec<&NewDocument>) = docs.iter().partition(|d| {
            d.kind != DocumentKind::Invoice || !taken.contains(&(d.month.clone(), d.client_id))
        });
        let numbers = insert_numbered(&mut tx, prefix, last, &fresh).await?;
        tx.commit().await?;
        Ok(IssuedBatch {
            numbers,
            already_issued: stale.iter().map(|d| d.client_id).collect(),
        })
    }

    /// Issues one document with the next number of `prefix` (one transaction: a failed
    /// insert gives the number back).
    pub async fn issue_document(
        &self,
        prefix: &str,
        doc: &NewDocument,
    ) -> Result<Invoice, DbError> {
        let mut tx = self.pool().begin().await?;
        let last = lock_counter(&mut tx, prefix).await?;
        let numbers = insert_numbered(&mut tx, prefix, last, &[doc]).await?;
        tx.commit().await?;
        let number = numbers.into_iter().next().unwrap_or_default();
        self.invoice_by_number(&number)
            .await?
            .ok_or_else(|| decode_err(format!("issued document {number} not found")))
    }

    /// Issues a credit note (its `total_cents` negative, `corrects_number` set) unless the
    /// credit notes on that invoice would then exceed `invoice_total`; checked under the
    /// series' lock, so two concurrent credits cannot both pass.
    pub async fn issue_credit_note(
        &self,
        prefix: &str,
        doc: &NewDocument,
        invoice_total: i64,
    ) -> Result<Invoice, CreditRefused> {
        let corrects = doc.corrects_number.clone().unwrap_or_default();
        let mut tx = self.pool().begin().await.map_err(DbError::from)?;
        let last = lock_counter(&mut tx, prefix).await?;
        let credited = credited_in(&mut tx, &corrects).await?;
        let remaining = invoice_total - credited;
        if -doc.total_cents > remaining {
            return Err(CreditRefused::Exceeds { remaining });
        }
        let numbers = insert_numbered(&mut tx, prefix, last, &[doc]).await?;
        tx.commit().await.map_err(DbError::from)?;
        let number = numbers.into_iter().next().unwrap_or_default();
        Ok(self
            .invoice_by_number(&number)
            .await?
            .ok_or_else(|| decode_err(format!("issued document {number} not found")))?)
    }

    /// The amount credited so far on an invoice (positive).
    pub async fn credited_total(&self, invoice_number: &str) -> Result<i64, DbError> {
        let mut tx = self.pool().begin().await?;
        let v = credited_in(&mut tx, invoice_number).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Sets paid_at/paid_via once; `false` when it was paid already (or is no invoice).
    pub async fn mark_invoice_paid(
        &self,
        number: &str,
        at: i64,
        via: &str,
    ) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE invoices SET paid_at = $1, paid_via = $2 WHERE number = $3 AND kind = 'invoice' AND paid_at IS NULL",
        )
        .bind(at)
        .bind(via)
        .bind(number)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

async fn credited_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    invoice_number: &str,
) -> Result<i64, DbError> {
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back for the Any driver.
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(-total_cents), 0) AS BIGINT) AS n FROM invoices WHERE kind = 'credit_note' AND corrects_number = $1",
    )
    .bind(invoice_number)
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.try_get("n")?)
}

fn bind_subscription<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    s: &Subscription,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(s.client_id)
        .bind(s.state.as_str())
        .bind(s.started_at)
        .bind(s.trial_ends_at)
        .bind(s.past_due_since)
        .bind(s.suspend_at)
        .bind(s.suspended_at)
        .bind(s.suspension_reason.map(|r| r.as_str()))
        .bind(s.cancel_at)
        .bind(s.canceled_at)
        .bind(s.delete_at)
        .bind(s.deleted_at)
        .bind(s.external_customer_id.clone())
        .bind(i64::from(s.setup_fee_invoiced))
        .bind(s.last_provider_event_at)
        .bind(s.updated_at)
}
