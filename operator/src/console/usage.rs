//! Running minutes per client per month, from a sample of every Assistant's phase each
//! minute (Running counts), and the CSV export for invoicing.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::Console;
use super::db::ClientRow;
use super::service::{ActionError, month_of, valid_month};
use crate::api::Phase;

/// One sampling pass at `now` (Unix seconds). Returns how many clients counted as running.
/// Idempotent per minute: a second pass in the same minute counts nothing.
pub async fn sample_once(ctx: &Console, now: i64) -> Result<usize, ActionError> {
    let assistants = ctx.cluster.list().await?;
    let running: HashSet<(String, String)> = assistants
        .iter()
        .filter(|a| a.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running))
        .map(|a| {
            (
                a.metadata.namespace.clone().unwrap_or_default(),
                a.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let ids: Vec<i64> = ctx
        .db
        .client_keys()
        .await?
        .into_iter()
        .filter(|(_, ns, n)| running.contains(&(ns.clone(), n.clone())))
        .map(|(id, _, _)| id)
        .collect();
    ctx.db
        .record_running_minute(&ids, &month_of(now), now.div_euclid(60))
        .await?;
    Ok(ids.len())
}

/// Samples every `interval` until the console stops; errors are logged, never fatal.
pub async fn run_sampler(ctx: std::sync::Arc<Console>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        match sample_once(&ctx, super::service::now()).await {
            Ok(n) => tracing::debug!(running = n, "usage sampled"),
            Err(e) => tracing::warn!(error = %e, "usage sample skipped"),
        }
        if let Err(e) = ctx.db.delete_expired_sessions(super::service::now()).await {
            tracing::warn!(error = %e, "session clean-up failed");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageLine {
    pub client_id: i64,
    pub name: String,
    pub email: String,
    pub plan: String,
    pub billing_status: String,
    pub assistant: String,
    pub running_minutes: i64,
    pub deleted: bool,
}

pub async fn report(ctx: &Console, month: &str) -> Result<Vec<UsageLine>, ActionError> {
    if !valid_month(month) {
        return Err(ActionError::invalid(
            "month",
            format!("{month:?} is not a month like 2026-09"),
        ));
    }
    Ok(ctx
        .db
        .usage_for_month(month)
        .await?
        .into_iter()
        .map(|(c, m): (ClientRow, i64)| UsageLine {
            client_id: c.id,
            name: c.name,
            email: c.email,
            plan: c.plan,
            billing_status: c.billing_status,
            assistant: format!("{}/{}", c.namespace, c.assistant_name),
            running_minutes: m,
            deleted: c.deleted_at.is_some(),
        })
        .collect())
}

/// One CSV field (RFC 4180). Cells a spreadsheet would run as a formula get a leading
/// apostrophe, so a client named `=HYPERLINK(...)` cannot attack whoever opens the invoice.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn to_csv(month: &str, lines: &[UsageLine]) -> String {
    let mut out = String::from(
        "client_id,client_name,email,plan,billing_status,assistant,month,running_minutes,running_hours\n",
    );
    for l in lines {
        let row = [
            l.client_id.to_string(),
            csv_field(&l.name),
            csv_field(&l.email),
            csv_field(&l.plan),
            csv_field(&l.billing_status),
            csv_field(&l.assistant),
            month.to_string(),
            l.running_minutes.to_string(),
            format!("{:.2}", l.running_minutes as f64 / 60.0),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
