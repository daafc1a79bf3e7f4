//! `POST /billing/stripe/webhook`: the payment provider's events. The signature is the
//! credential (no session, no token); every verified event is stored once by its id, so a
//! replay or a retry is acknowledged without being applied again. The payload is stored,
//! never logged; the secret is read from its file per request and never shown.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::model::Input;
use super::{engine, stripe};
use crate::console::Console;
use crate::console::Ctx;
use crate::console::db::{Db, DbError};
use crate::console::service::{self, billing};

/// The largest event accepted (Stripe's events are a few KiB).
pub const BODY_LIMIT: usize = 256 * 1024;
pub const SIGNATURE_HEADER: &str = "stripe-signature";
/// The audit actor and `provider_events.provider` of this webhook.
pub const PROVIDER: &str = "stripe";

/// The outcome of a stored event being processed.
const RECEIVED: &str = "received";
/// The outcome of an event for a customer no subscription has (yet): a replay of it,
/// after the customer id was set, is processed again.
const UNKNOWN_CUSTOMER: &str = "ignored: unknown customer";
/// How long a delivery processing an event (outcome still `received`) holds it: a
/// duplicate within it is answered 409 (in flight), one after it takes the event over
/// (the first attempt crashed or is stuck).
pub const IN_FLIGHT_LEASE: i64 = 60;

/// What a duplicate delivery does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Processed already: acknowledged as a duplicate.
    Done,
    /// Being processed by another delivery: 409, the provider retries later.
    InFlight,
    /// Taken over: process it now.
    Taken,
    /// A replay of an event ignored for an unknown customer, taken over: process it now.
    Replayed,
}

/// A stored provider event (the webhook's record of what it did with it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderEvent {
    pub event_id: String,
    pub provider: String,
    pub type_: String,
    pub created: i64,
    pub customer: Option<String>,
    pub client_id: Option<i64>,
    pub received_at: i64,
    pub outcome: String,
}

impl Db {
    /// Stores a received event unless one with its id is stored: `false` for a duplicate.
    pub async fn insert_provider_event(
        &self,
        e: &stripe::Event,
        payload: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        let r = sqlx::query(
            "INSERT INTO provider_events (event_id, provider, type, created, customer, client_id, received_at, outcome, payload) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, 'received', $7) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&e.id)
        .bind(PROVIDER)
        .bind(&e.type_)
        .bind(e.created)
        .bind(e.customer.as_deref())
        .bind(now)
        .bind(payload)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// What to do with a delivery of an event already stored (see [`Claim`]): an event
    /// still `received` past its lease, or one ignored for an unknown customer (a replay
    /// after the customer id was set), is taken over by a compare-and-set and processed
    /// again; one still `received` within its lease is in flight.
    pub async fn claim_provider_event(&self, event_id: &str, now: i64) -> Result<Claim, DbError> {
        use sqlx::Row;
        let Some(row) =
            sqlx::query("SELECT outcome, received_at FROM provider_events WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(self.pool())
                .await?
        else {
            // Forgotten meanwhile (its processing failed): the provider retries it.
            return Ok(Claim::InFlight);
        };
        let outcome: String = row.try_get("outcome")?;
        let received_at: i64 = row.try_get("received_at")?;
        let (taken, claim) = if outcome == RECEIVED {
            if now < received_at.saturating_add(IN_FLIGHT_LEASE) {
                return Ok(Claim::InFlight);
            }
            let r = sqlx::query(
                "UPDATE provider_events SET received_at = $1 \
                 WHERE event_id = $2 AND outcome = $3 AND received_at = $4",
            )
            .bind(now)
            .bind(event_id)
            .bind(RECEIVED)
            .bind(received_at)
            .execute(self.pool())
            .await?;
            (r, Claim::Taken)
        } else if outcome == UNKNOWN_CUSTOMER {
            let r = sqlx::query(
                "UPDATE provider_events SET outcome = $1, received_at = $2 \
                 WHERE event_id = $3 AND outcome = $4",
            )
            .bind(RECEIVED)
            .bind(now)
            .bind(event_id)
            .bind(UNKNOWN_CUSTOMER)
            .execute(self.pool())
            .await?;
            (r, Claim::Replayed)
        } else {
            return Ok(Claim::Done);
        };
        Ok(if taken.rows_affected() == 1 {
            claim
        } else {
            // Another delivery took it over first.
            Claim::InFlight
        })
    }

    /// `created` of the latest `customer.subscription.*` event of the client that was
    /// processed (what `last_provider_event_at` holds, without the link time).
    pub async fn last_status_event_at(&self, client_id: i64) -> Result<Option<i64>, DbError> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT MAX(created) AS last FROM provider_events \
             WHERE client_id = $1 AND type LIKE 'customer.subscription.%' \
             AND outcome <> 'received' AND outcome NOT LIKE 'ignored%'",
        )
        .bind(client_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?)
    }

    /// `created` of the latest `invoice.paid` of the client that was processed (applied,
    /// or no change because nothing was owed): a payment failure older than it is stale.
    pub async fn last_payment_event_at(&self, client_id: i64) -> Result<Option<i64>, DbError> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT MAX(created) AS last FROM provider_events \
             WHERE client_id = $1 AND type = 'invoice.paid' \
             AND outcome <> 'received' AND outcome NOT LIKE 'ignored%' AND outcome NOT LIKE 'refused%'",
        )
        .bind(client_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?)
    }

    pub async fn set_provider_event_outcome(
        &self,
        event_id: &str,
        client_id: Option<i64>,
        outcome: &str,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE provider_events SET client_id = $1, outcome = $2 WHERE event_id = $3")
            .bind(client_id)
            .bind(outcome)
            .bind(event_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets an event that could not be processed, so the provider's retry is.
    pub async fn forget_provider_event(&self, event_id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM provider_events WHERE event_id = $1")
            .bind(event_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stored events, newest first (the client page, tests).
    pub async fn provider_events(
        &self,
        client_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ProviderEvent>, DbError> {
        use sqlx::Row;
        const COLUMNS: &str =
            "event_id, provider, type, created, customer, client_id, received_at, outcome";
        let rows = match client_id {
            Some(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM provider_events WHERE client_id = $1 ORDER BY received_at DESC, event_id LIMIT $2"
                )))
                .bind(id)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM provider_events ORDER BY received_at DESC, event_id LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(ProviderEvent {
                    event_id: r.try_get("event_id")?,
                    provider: r.try_get("provider")?,
                    type_: r.try_get("type")?,
                    created: r.try_get("created")?,
                    customer: r.try_get("customer")?,
                    client_id: r.try_get("client_id")?,
                    received_at: r.try_get("received_at")?,
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Records that the provider's view of the subscription is as of `created` (an older
    /// status event arriving late is then ignored). Never moves backwards.
    pub async fn note_provider_event_at(
        &self,
        client_id: i64,
        created: i64,
        now: i64,
    ) -> Result<(), DbError> {
        // A new version too (`updated_at`, as `next_version`): an `apply` that read the
        // row before this write then fails its compare-and-set and re-reads, rather than
        // writing the old `last_provider_event_at` back.
        sqlx::query(
            "UPDATE subscriptions SET last_provider_event_at = $1, \
             updated_at = CASE WHEN updated_at >= $3 THEN updated_at + 1 ELSE $3 END \
             WHERE client_id = $2 \
             AND (last_provider_event_at IS NULL OR last_provider_event_at < $1)",
        )
        .bind(created)
        .bind(client_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": message.into()}),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// The signing secret, read now (a renewed Secret applies without a restart); `Err` is
/// the reply when there is none.
async fn secret(ctx: &Console) -> Result<String, Reply> {
    let Some(path) = &ctx.opts.stripe_webhook_secret_file else {
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            "no payment provider configured",
        ));
    };
    let unavailable = || {
        Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the webhook signing secret cannot be read; the event can be retried",
        )
    };
    match tokio::fs::read_to_string(path).await {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => {
            tracing::error!(file = %path.display(), "the Stripe webhook secret file is empty");
            Err(unavailable())
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e.kind(), "cannot read the Stripe webhook secret file");
            Err(unavailable())
        }
    }
}

/// Handles one delivery at `now`: verify, store once, apply to the customer's
/// subscription, bring its Assistant in line.
pub async fn handle(ctx: &Console, signature: Option<&str>, body: &[u8], now: i64) -> Reply {
    let secret = match secret(ctx).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let tolerance = i64::try_from(ctx.opts.stripe_tolerance.as_secs()).unwrap_or(i64::MAX);
    if let Err(e) = stripe::verify_signature(signature, body, secret.as_bytes(), now, tolerance) {
        tracing::warn!(error = %e, "Stripe webhook: refused an event");
        return Reply::error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let event = match stripe::parse_event(body) {
        Ok(e) => e,
        Err(e) => return Reply::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Ok(payload) = std::str::from_utf8(body) else {
        return Reply::error(StatusCode::BAD_REQUEST, "the event is not UTF-8");
    };
    let stored = match ctx.db.insert_provider_event(&event, payload, now).await {
        Ok(true) => Ok(Claim::Taken),
        Ok(false) => ctx.db.claim_provider_event(&event.id, now).await,
        Err(e) => Err(e),
    };
    let replay = match stored {
        Ok(Claim::Taken) => false,
        Ok(Claim::Replayed) => true,
        Ok(Claim::Done) => {
            tracing::info!(event = %event.id, r#type = %event.type_, outcome = "duplicate", "Stripe webhook");
            return Reply {
                status: StatusCode::OK,
                body: json!({"received": true, "duplicate": true}),
            };
        }
        Ok(Claim::InFlight) => {
            tracing::info!(event = %event.id, r#type = %event.type_, outcome = "in flight", "Stripe webhook");
            return Reply {
                status: StatusCode::CONFLICT,
                body: json!({"received": false, "in_flight": true}),
            };
        }
        Err(e) => {
            tracing::error!(event = %event.id, error = %e, "Stripe webhook: cannot store the event");
            return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "database error; retry");
        }
    };
    // A `created` far in the future counts as now in every comparison.
    let created = stripe::effective_created(event.created, now, tolerance);
    match process(ctx, &event, created, replay, now).await {
        Ok((client_id, outcome)) => {
            if let Err(e) = ctx
                .db
                .set_provider_event_outcome(&event.id, client_id, &outcome)
                .await
            {
                tracing::warn!(event = %event.id, error = %e, "Stripe webhook: outcome not stored");
            }
            tracing::info!(event = %event.id, r#type = %event.type_, outcome = %outcome, "Stripe webhook");
            Reply {
                status: StatusCode::OK,
                body: json!({"received": true, "outcome": outcome}),
            }
        }
        Err(e) => {
            // Not applied: forget it so the provider's retry is processed, not a duplicate.
            if let Err(e) = ctx.db.forget_provider_event(&event.id).await {
                tracing::error!(event = %event.id, error = %e, "Stripe webhook: cannot forget a failed event");
            }
            tracing::error!(event = %event.id, r#type = %event.type_, error = %e, "Stripe webhook: event not applied");
            Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event could not be applied; retry",
            )
        }
    }
}

/// What the event does to its customer's subscription: the client and the outcome to
/// store. `Err` only for failures a retry may get past (database).
/// `created` is the event's, clamped to `now` when far in the future. `replay`: an event
/// first ignored for an unknown customer, delivered again after the customer id was set
/// (it is older than the link, which it is not compared with: only with the status events
/// applied since).
async fn process(
    ctx: &Console,
    event: &stripe::Event,
    created: i64,
    replay: bool,
    now: i64,
) -> Result<(Option<i64>, String), service::ActionError> {
    use crate::console::pages::fmt_time;
    let Some(input) = &event.input else {
        return Ok((None, format!("ignored: {} is not handled", event.type_)));
    };
    let Some(customer) = &event.customer else {
        return Ok((None, "ignored: no customer".into()));
    };
    let Some(sub) = ctx.db.subscription_by_customer(customer).await? else {
        return Ok((None, UNKNOWN_CUSTOMER.into()));
    };
    let client_id = Some(sub.client_id);
    if sub.deleted_at.is_some() {
        return Ok((client_id, "ignored: the client was deleted".into()));
    }
    // Why the event does not move the subscription, if it does not (see docs/billing.md,
    // "Out of order"): any event older than `last_provider_event_at` (the last
    // `customer.subscription.*` applied, or when the customer id was linked); a failure
    // older than the last payment received; a payment made before the failure it would
    // clear.
    let last_applied = if replay {
        ctx.db.last_status_event_at(sub.client_id).await?
    } else {
        sub.last_provider_event_at
    };
    let stale = if let Some(last) = last_applied.filter(|l| created < *l) {
        Some(format!(
            "ignored: older than the last event applied ({})",
            fmt_time(last)
        ))
    } else {
        match input {
            Input::PaymentFailed { .. } => ctx
                .db
                .last_payment_event_at(sub.client_id)
                .await?
                .filter(|paid| created < *paid)
                .map(|paid| {
                    format!(
                        "ignored: older than the last payment received ({})",
                        fmt_time(paid)
                    )
                }),
            Input::PaymentSucceeded { .. } => sub
                .past_due_since
                .filter(|since| created < *since)
                .map(|since| format!("ignored: paid before the failure of {}", fmt_time(since))),
            _ => None,
        }
    };
    let outcome = match stale {
        Some(why) => why,
        None => apply_event(ctx, &sub, input, created, now).await?,
    };
    // The money was received: a console invoice it names is marked paid even when the
    // event does not move the subscription.
    let outcome = match &event.console_invoice {
        Some(number) => {
            format!(
                "{outcome}; {}",
                collect_console_invoice(ctx, sub.client_id, number, now).await?
            )
        }
        None => outcome,
    };
    if let Err(e) = engine::enforce_client(ctx, sub.client_id, now).await {
        // The engine's next pass does it: the subscription is already right.
        tracing::warn!(client = sub.client_id, error = %e, "Stripe webhook: Assistant not updated yet");
    }
    Ok((client_id, outcome))
}

/// Applies a current event's input; a status event advances `last_provider_event_at`.
async fn apply_event(
    ctx: &Console,
    sub: &super::model::Subscription,
    input: &Input,
    created: i64,
    now: i64,
) -> Result<String, service::ActionError> {
    let outcome = match billing::apply(ctx, PROVIDER, sub.client_id, input, now).await {
        Ok(Some(change)) => format!("applied: {}", change.event),
        Ok(None) => "no change".to_string(),
        Err(e) if e.status().is_server_error() || is_retryable(&e) => return Err(e),
        // The state machine refuses it (e.g. payment news for a deleted client): retrying
        // will not change that, so it is acknowledged with the reason.
        Err(e) => format!("refused: {e}"),
    };
    if matches!(input, Input::ProviderStatus { .. }) {
        ctx.db
            .note_provider_event_at(sub.client_id, created, now)
            .await?;
    }
    Ok(outcome)
}

/// `apply` lost its compare-and-set every time (the subscription kept changing): not a
/// refusal of the event, so it is answered 503 and the provider retries it.
fn is_retryable(e: &service::ActionError) -> bool {
    matches!(e, service::ActionError::Contended(_))
}

/// An `invoice.paid` naming a console invoice (`metadata.clawhost_invoice`): the provider
/// collected that invoice of ours, so it is marked paid `via` stripe; one of another
/// client, or unknown, is left alone. The outcome's suffix.
async fn collect_console_invoice(
    ctx: &Console,
    client_id: i64,
    number: &str,
    now: i64,
) -> Result<String, service::ActionError> {
    match billing::invoice(ctx, number).await {
        Ok(inv) if inv.client_id == client_id => {}
        Ok(_) | Err(service::ActionError::NotFound) => {
            return Ok(format!(
                "invoice {number} not this client's: not marked paid"
            ));
        }
        Err(e) => return Err(e),
    }
    match billing::mark_paid(ctx, PROVIDER, number, PROVIDER, now).await {
        Ok(_) => Ok(format!("invoice {number} marked paid")),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => Ok(format!("invoice {number}: {e}")),
    }
}

/// The route's handler.
pub async fn receive(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    handle(&ctx, signature, &body, service::now())
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use service::ActionError;

    #[test]
    fn a_lost_compare_and_set_is_retried_a_refusal_is_not() {
        assert!(is_retryable(&ActionError::Contended("the subscription")));
        assert!(!is_retryable(&ActionError::Conflict(
            "the subscription is canceled: the Assistant was deleted".into()
        )));
        assert!(!is_retryable(&ActionError::NotFound));
    }
}
