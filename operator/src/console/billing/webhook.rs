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
    match ctx.db.insert_provider_event(&event, payload, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(event = %event.id, r#type = %event.type_, outcome = "duplicate", "Stripe webhook");
            return Reply {
                status: StatusCode::OK,
                body: json!({"received": true, "duplicate": true}),
            };
        }
        Err(e) => {
            tracing::error!(event = %event.id, error = %e, "Stripe webhook: cannot store the event");
            return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "database error; retry");
        }
    }
    match process(ctx, &event, now).await {
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
async fn process(
    ctx: &Console,
    event: &stripe::Event,
    now: i64,
) -> Result<(Option<i64>, String), service::ActionError> {
    let Some(input) = &event.input else {
        return Ok((None, format!("ignored: {} is not handled", event.type_)));
    };
    let Some(customer) = &event.customer else {
        return Ok((None, "ignored: no customer".into()));
    };
    let Some(sub) = ctx.db.subscription_by_customer(customer).await? else {
        return Ok((None, "ignored: unknown customer".into()));
    };
    let client_id = Some(sub.client_id);
    // A status or a failed payment older than the last provider event applied is stale (a
    // failure delivered after the later payment must not suspend a client who paid). A
    // payment always applies: late or not, the money was received.
    if matches!(
        input,
        Input::ProviderStatus { .. } | Input::PaymentFailed { .. }
    ) && let Some(last) = sub.last_provider_event_at.filter(|l| event.created < *l)
    {
        return Ok((
            client_id,
            format!(
                "ignored: older than the last event applied ({})",
                crate::console::pages::fmt_time(last)
            ),
        ));
    }
    if sub.deleted_at.is_some() {
        return Ok((client_id, "ignored: the client was deleted".into()));
    }
    let outcome = match billing::apply(ctx, PROVIDER, sub.client_id, input, now).await {
        Ok(Some(change)) => format!("applied: {}", change.event),
        Ok(None) => "no change".to_string(),
        Err(e) if e.status().is_server_error() || is_retryable(&e) => return Err(e),
        // The state machine refuses it (e.g. payment news for a deleted client): retrying
        // will not change that, so it is acknowledged with the reason.
        Err(e) => format!("refused: {e}"),
    };
    ctx.db
        .note_provider_event_at(sub.client_id, event.created, now)
        .await?;
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
