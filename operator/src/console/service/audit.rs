//! Reading the audit log: filters shared by the page and the API, and the before/after
//! JSON turned into what changed.

use serde::Deserialize;
use serde_json::Value;

use super::{ActionError, FieldError};
use crate::console::Console;
use crate::console::db::{AuditEvent, AuditFilter};

pub const AUDIT_PER_PAGE: i64 = 100;

/// Query parameters of `/audit` and `/api/v1/audit`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Substring of the actor's e-mail.
    #[serde(default)]
    pub actor: Option<String>,
    /// Exact action, e.g. `client.delete`.
    #[serde(default)]
    pub action: Option<String>,
    /// Substring of the target: the client's `namespace/assistant`.
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub client_id: Option<i64>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub page: Option<u32>,
}

pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

fn day_start(field: &str, v: &str) -> Result<i64, FieldError> {
    v.trim()
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second())
        .ok_or_else(|| FieldError {
            field: field.into(),
            message: format!("{v:?} is not a date like 2026-12-31"),
        })
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl AuditQuery {
    pub fn filter(&self) -> Result<AuditFilter, ActionError> {
        let mut errs = Vec::new();
        let mut date = |field: &str, v: &Option<String>, plus_day: bool| {
            non_empty(v).and_then(|v| match day_start(field, &v) {
                Ok(t) => Some(if plus_day { t + 86_400 } else { t }),
                Err(e) => {
                    errs.push(e);
                    None
                }
            })
        };
        let from = date("from", &self.from, false);
        // `to` is inclusive: events before the next day's start.
        let until = date("to", &self.to, true);
        if !errs.is_empty() {
            return Err(ActionError::Invalid(errs));
        }
        Ok(AuditFilter {
            actor: non_empty(&self.actor),
            action: non_empty(&self.action),
            client_id: self.client_id,
            target: non_empty(&self.client),
            from,
            until,
        })
    }

    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1).max(1) as i64
    }
}

pub async fn audit_page(ctx: &Console, q: &AuditQuery) -> Result<AuditPage, ActionError> {
    let filter = q.filter()?;
    let page = q.page();
    let (events, total) = ctx
        .db
        .audit_search(&filter, AUDIT_PER_PAGE, (page - 1) * AUDIT_PER_PAGE)
        .await?;
    Ok(AuditPage {
        events,
        total,
        page,
        per_page: AUDIT_PER_PAGE,
    })
}

/// A stored before/after as JSON (a string that is not JSON stays a string).
pub fn audit_json(v: Option<&str>) -> Value {
    match v {
        None => Value::Null,
        Some(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())),
    }
}

/// One line of what changed: the field (dotted for nested objects), its value before and
/// after (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Null => out.push((prefix.to_string(), "none".into())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// What an event changed: fields that differ between before and after, in field order;
/// an event with only one side lists that side.
pub fn changes(before: Option<&str>, after: Option<&str>) -> Vec<Change> {
    let (mut b, mut a) = (Vec::new(), Vec::new());
    if let Some(s) = before {
        flatten("", &audit_json(Some(s)), &mut b);
    }
    if let Some(s) = after {
        flatten("", &audit_json(Some(s)), &mut a);
    }
    let mut fields: Vec<&String> = b.iter().chain(a.iter()).map(|(k, _)| k).collect();
    fields.sort();
    fields.dedup();
    let get = |list: &[(String, String)], k: &str| {
        list.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone())
    };
    fields
        .into_iter()
        .map(|f| Change {
            field: f.clone(),
            before: get(&b, f),
            after: get(&a, f),
        })
        .filter(|c| c.before != c.after)
        .collect()
}
