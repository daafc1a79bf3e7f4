//! Running minutes per client, plan and month, from a sample of every Assistant each
//! minute (only what is observed Running counts, under the plan observed), minutes the
//! sampler could not observe the cluster, and the CSV export for invoicing.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::Console;
use super::cluster::ClusterError;
use super::db::ClientRow;
use super::service::{ActionError, month_of, plan_of, spec_observed, valid_month};
use crate::api::{Assistant, Phase};

/// One sampling pass at `now` (Unix seconds). Returns how many clients counted as running.
/// Idempotent per minute: a second pass in the same minute counts nothing. While the
/// cluster is unreachable (or the watch cache stale) nothing is counted: the minute is
/// recorded as a sampler gap and the error returned.
pub async fn sample_once(ctx: &Console, now: i64) -> Result<usize, ActionError> {
    let month = month_of(now);
    let minute = now.div_euclid(60);
    let assistants = match ctx.cluster.list().await {
        Ok(a) => a,
        Err(ClusterError::Unreachable(why)) => {
            ctx.db.record_sampler_gap(&month, minute, &why).await?;
            return Err(ClusterError::Unreachable(why).into());
        }
        Err(e) => return Err(e.into()),
    };
    let running: HashMap<(&str, &str), &Assistant> = assistants
        .iter()
        .filter(|a| a.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running))
        .map(|a| {
            (
                (
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default(),
                ),
                &**a,
            )
        })
        .collect();
    let mut samples = Vec::new();
    for (id, ns, name) in ctx.db.client_keys().await? {
        let Some(a) = running.get(&(ns.as_str(), name.as_str())) else {
            continue;
        };
        let spec_plan = plan_of(a, &ctx.config.default_plan);
        // A plan change the operator has not applied yet: what runs is still the plan
        // billed last minute.
        let plan = if spec_observed(a) {
            spec_plan
        } else {
            ctx.db.last_sampled_plan(id).await?.unwrap_or(spec_plan)
        };
        samples.push((id, plan));
    }
    ctx.db
        .record_running_minute(&samples, &month, minute)
        .await?;
    Ok(samples.len())
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
    /// The plan these minutes ran on; for a client without minutes, its current plan
    /// (empty when the cluster does not answer).
    pub plan: String,
    pub billing_status: String,
    pub assistant: String,
    pub running_minutes: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub month: String,
    /// One line per client and plan; live clients without minutes have one line with 0.
    pub lines: Vec<UsageLine>,
    /// Minutes of the month the sampler could not observe the cluster: nobody was billed
    /// for them.
    pub unsampled_minutes: i64,
}

impl UsageReport {
    /// The notice the usage page and the API carry when minutes are missing (the CSV has a
    /// column).
    pub fn gap_notice(&self) -> Option<String> {
        (self.unsampled_minutes > 0).then(|| {
            format!(
                "usage was not sampled for {} minutes in {} because the cluster was unreachable",
                self.unsampled_minutes, self.month
            )
        })
    }
}

/// First second after `month` (`YYYY-MM`, already validated), UTC.
fn month_end(month: &str) -> i64 {
    let (y, m) = month.split_once('-').unwrap_or_default();
    let (y, m): (i16, i8) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    jiff::civil::Date::new(y, m, 1)
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_second())
        .unwrap_or(i64::MAX)
}

pub async fn usage_report(ctx: &Console, month: &str) -> Result<UsageReport, ActionError> {
    if !valid_month(month) {
        return Err(ActionError::invalid(
            "month",
            format!("{month:?} is not a month like 2026-09"),
        ));
    }
    let rows = ctx.db.usage_for_month(month, month_end(month)).await?;
    // The current plan of clients without minutes (a cluster outage leaves it empty).
    let live_plans: HashMap<(String, String), String> = if rows.iter().any(|r| r.1.is_none()) {
        ctx.cluster
            .list()
            .await
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    (
                        a.metadata.namespace.clone().unwrap_or_default(),
                        a.metadata.name.clone().unwrap_or_default(),
                    ),
                    plan_of(a, &ctx.config.default_plan),
                )
            })
            .collect()
    } else {
        HashMap::new()
    };
    let lines = rows
        .into_iter()
        .map(|(c, plan, m): (ClientRow, Option<String>, i64)| {
            let plan = plan.unwrap_or_else(|| {
                live_plans
                    .get(&(c.namespace.clone(), c.assistant_name.clone()))
                    .cloned()
                    .unwrap_or_default()
            });
            UsageLine {
                client_id: c.id,
                name: c.name,
                email: c.email,
                plan,
                billing_status: c.billing_status,
                assistant: format!("{}/{}", c.namespace, c.assistant_name),
                running_minutes: m,
                deleted: c.deleted_at.is_some(),
            }
        })
        .collect();
    Ok(UsageReport {
        month: month.to_string(),
        lines,
        unsampled_minutes: ctx.db.sampler_gap_minutes(month).await?,
    })
}

pub async fn report(ctx: &Console, month: &str) -> Result<Vec<UsageLine>, ActionError> {
    Ok(usage_report(ctx, month).await?.lines)
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

/// The CSV of a report; a sampler gap is stated in a leading `#` comment line (so a
/// spreadsheet shows it) before the header.
/// The report as CSV. The header stays the first line (spreadsheets and scripts read it as
/// such); minutes the sampler could not observe are a column, the same for every row of
/// the month, so no reader can miss them.
pub fn report_csv(r: &UsageReport) -> String {
    to_csv(&r.month, &r.lines, r.unsampled_minutes)
}

pub fn to_csv(month: &str, lines: &[UsageLine], unsampled_minutes: i64) -> String {
    let mut out = String::from(
        "client_id,client_name,email,plan,billing_status,assistant,month,running_minutes,running_hours,month_unsampled_minutes\n",
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
            unsampled_minutes.to_string(),
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
