//! The clients list and a client's page: database records joined with the cluster's
//! Assistants.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ActionError, PER_PAGE_DEFAULT, PER_PAGE_MAX, month_of, now};
use crate::api::{Assistant, Phase};
use crate::console::Console;
use crate::console::cluster::EventInfo;
use crate::console::db::{AuditEvent, ClientFilter, ClientRow, ClientSort};

/// A client record joined with its Assistant (when the cluster answered and it exists).
#[derive(Debug, Clone)]
pub struct ClientView {
    pub record: ClientRow,
    pub assistant: Option<Arc<Assistant>>,
}

/// Phase name of an Assistant as the cluster has it now: `Missing` when the cluster has no
/// such Assistant, `Unknown` when the cluster did not answer (whatever was last seen: a
/// cached phase is not the current one).
pub fn phase_of(a: Option<&Assistant>, cluster_ok: bool) -> &'static str {
    match a {
        _ if !cluster_ok => "Unknown",
        Some(a) => a
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Phase::Pending)
            .as_str(),
        None => "Missing",
    }
}

/// The plan an Assistant runs on: its `spec.plan`, else the config's default plan.
pub fn plan_of(a: &Assistant, default_plan: &str) -> String {
    a.spec
        .plan
        .clone()
        .unwrap_or_else(|| default_plan.to_string())
}

/// Whether the operator has acted on the Assistant's current spec (its status describes
/// this generation, not an earlier one).
pub fn spec_observed(a: &Assistant) -> bool {
    let observed = a.status.as_ref().and_then(|s| s.observed_generation);
    match (a.metadata.generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// Whether the plan in the spec is what runs: a console "Change plan" only requests it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRollout {
    pub plan: String,
    /// `applied`, `pending` (the operator has not acted on this spec yet) or `refused`
    /// (the operator rejected the spec; the previous plan keeps running).
    pub state: &'static str,
    pub message: Option<String>,
}

pub fn plan_rollout(a: &Assistant, default_plan: &str) -> PlanRollout {
    let plan = plan_of(a, default_plan);
    if !spec_observed(a) {
        return PlanRollout {
            plan,
            state: "pending",
            message: Some(format!(
                "the operator has not applied the current spec yet (generation {}, last applied {})",
                a.metadata.generation.unwrap_or_default(),
                a.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .map_or("none".to_string(), |g| g.to_string())
            )),
        };
    }
    let refused = a.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| (c.type_ == "ConfigValid" || c.type_ == "Applied") && c.status == "False")
    });
    match refused {
        Some(c) => PlanRollout {
            plan,
            state: "refused",
            message: Some(format!("{}: {}", c.reason, c.message)),
        },
        None => PlanRollout {
            plan,
            state: "applied",
            message: None,
        },
    }
}

impl ClientView {
    /// Phase name, `Missing` when the cluster has no such Assistant, `Unknown` when the
    /// cluster did not answer.
    pub fn phase(&self, cluster_ok: bool) -> &'static str {
        phase_of(self.assistant.as_deref(), cluster_ok)
    }

    /// The phase last seen while the cluster does not answer (shown marked stale).
    pub fn last_known_phase(&self, cluster_ok: bool) -> Option<&'static str> {
        if cluster_ok {
            return None;
        }
        let a = self.assistant.as_deref()?;
        Some(phase_of(Some(a), true))
    }

    /// The plan the Assistant's spec names (the one source of truth), `None` without an
    /// Assistant.
    pub fn plan(&self, default_plan: &str) -> Option<String> {
        self.assistant.as_deref().map(|a| plan_of(a, default_plan))
    }

    pub fn ready(&self) -> Option<bool> {
        let s = self.assistant.as_ref()?.status.as_ref()?;
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status == "True")
    }

    pub fn version(&self) -> Option<String> {
        let a = self.assistant.as_ref()?;
        a.status
            .as_ref()
            .and_then(|s| s.gateway_version.clone())
            .or_else(|| a.spec.gateway.as_ref().and_then(|g| g.version.clone()))
    }

    pub fn tailnet(&self) -> Option<String> {
        self.assistant
            .as_ref()?
            .status
            .as_ref()?
            .tailnet
            .as_ref()?
            .fqdn
            .clone()
    }

    /// Creation time of the Assistant, else of the record (Unix seconds).
    pub fn created(&self) -> i64 {
        self.assistant
            .as_ref()
            .and_then(|a| a.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
            .unwrap_or(self.record.created_at)
    }

    pub fn summary(&self, cluster_ok: bool, default_plan: &str) -> ClientSummary {
        ClientSummary {
            id: self.record.id,
            name: self.record.name.clone(),
            email: self.record.email.clone(),
            plan: self.plan(default_plan),
            billing_status: self.record.billing_status.clone(),
            namespace: self.record.namespace.clone(),
            assistant: self.record.assistant_name.clone(),
            phase: self.phase(cluster_ok).to_string(),
            last_known_phase: self.last_known_phase(cluster_ok).map(str::to_string),
            stale: !cluster_ok,
            ready: self.ready(),
            version: self.version(),
            tailnet: self.tailnet(),
            created_at: self.created(),
            deleted: self.record.deleted_at.is_some(),
        }
    }
}

/// The JSON shape of a client in lists.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSummary {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// The Assistant's plan (live; last known while `stale`), `None` without an Assistant.
    pub plan: Option<String>,
    pub billing_status: String,
    pub namespace: String,
    pub assistant: String,
    /// `Unknown` while the cluster is unreachable.
    pub phase: String,
    /// While the cluster is unreachable: the phase last seen.
    pub last_known_phase: Option<String>,
    /// The cluster did not answer: Assistant data is last-known, not current.
    pub stale: bool,
    pub ready: Option<bool>,
    pub version: Option<String>,
    pub tailnet: Option<String>,
    pub created_at: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub billing: Option<String>,
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub per_page: Option<u32>,
    /// Deleted clients too (their records are kept for invoicing).
    #[serde(default)]
    pub include_deleted: Option<bool>,
    /// `name` (default), `assistant`, `created` (newest first) or `phase`.
    #[serde(default)]
    pub sort: Option<String>,
    /// Only clients whose invite is not accepted `--never-connected-days` after creation.
    #[serde(default)]
    pub never_connected: Option<bool>,
}

/// The list orders offered; anything else is the default (client name).
pub const LIST_SORTS: [&str; 4] = ["name", "assistant", "created", "phase"];

pub struct ClientPage {
    pub items: Vec<ClientView>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
    pub cluster_error: Option<String>,
}

type AssistantIndex = HashMap<(String, String), Arc<Assistant>>;

/// The Assistants by (namespace, name), and the cluster error when it did not answer: then
/// the index holds the last-known Assistants, which callers must show as stale.
pub(super) async fn assistant_index(ctx: &Console) -> (AssistantIndex, Option<String>) {
    let (list, error) = match ctx.cluster.list().await {
        Ok(list) => (list, None),
        Err(e) => (ctx.cluster.last_known(), Some(e.to_string())),
    };
    let idx = list
        .into_iter()
        .map(|a| {
            (
                (
                    a.metadata.namespace.clone().unwrap_or_default(),
                    a.metadata.name.clone().unwrap_or_default(),
                ),
                a,
            )
        })
        .collect();
    (idx, error)
}

pub(super) fn join(rows: Vec<ClientRow>, idx: &AssistantIndex) -> Vec<ClientView> {
    rows.into_iter()
        .map(|r| {
            let a = idx
                .get(&(r.namespace.clone(), r.assistant_name.clone()))
                .cloned();
            ClientView {
                record: r,
                assistant: a,
            }
        })
        .collect()
}

/// Clients page: database filters and pagination in SQL; phase and plan filters (cluster
/// data: the Assistant is the truth) filter the joined rows in memory, which stays fast at
/// 10,000 clients.
pub async fn list_clients(ctx: &Console, q: &ListQuery) -> Result<ClientPage, ActionError> {
    let per_page = q
        .per_page
        .unwrap_or(PER_PAGE_DEFAULT)
        .clamp(1, PER_PAGE_MAX);
    let page = q.page.unwrap_or(1).max(1);
    let filter = ClientFilter {
        q: q.q.as_ref().map(|s| s.trim().to_string()),
        billing_status: q.billing.clone(),
        include_deleted: q.include_deleted.unwrap_or(false),
    };
    let sort = q.sort.as_deref().unwrap_or("name");
    let db_sort = match sort {
        "assistant" => ClientSort::Assistant,
        "created" => ClientSort::Created,
        _ => ClientSort::Name,
    };
    let offset = (page as i64 - 1) * per_page as i64;
    let (idx, cluster_error) = assistant_index(ctx).await;
    let phase = q.phase.as_deref().filter(|p| !p.is_empty());
    let plan = q.plan.as_deref().filter(|p| !p.is_empty());
    let ok = cluster_error.is_none();
    // Phase and plan are cluster data: filtering or sorting by them joins every row, then pages.
    let never = q.never_connected == Some(true);
    let cutoff = super::handoff::never_connected_cutoff(ctx);
    if phase.is_some() || plan.is_some() || sort == "phase" || never {
        let default_plan = ctx.config.default_plan.as_str();
        let (rows, _) = ctx.db.list_clients_sorted(&filter, db_sort, None).await?;
        let mut all: Vec<ClientView> = join(rows, &idx)
            .into_iter()
            .filter(|v| phase.is_none_or(|p| v.phase(ok) == p))
            .filter(|v| plan.is_none_or(|p| v.plan(default_plan).as_deref() == Some(p)))
            .filter(|v| {
                !never
                    || (ok
                        && v.record.deleted_at.is_none()
                        && v.record.created_at < cutoff
                        && super::handoff::not_connected(v.assistant.as_deref()))
            })
            .collect();
        if sort == "phase" {
            // Stable: by name within a phase.
            all.sort_by_key(|v| v.phase(ok));
        }
        let total = all.len() as i64;
        let items = all
            .into_iter()
            .skip(offset as usize)
            .take(per_page as usize)
            .collect();
        return Ok(ClientPage {
            items,
            total,
            page,
            per_page,
            cluster_error,
        });
    }
    let (rows, total) = ctx
        .db
        .list_clients_sorted(&filter, db_sort, Some((per_page as i64, offset)))
        .await?;
    Ok(ClientPage {
        items: join(rows, &idx),
        total,
        page,
        per_page,
        cluster_error,
    })
}

pub struct ClientDetail {
    pub view: ClientView,
    pub cluster_error: Option<String>,
    pub events: Result<Vec<EventInfo>, String>,
    pub log: Result<Option<String>, String>,
    pub month: String,
    pub usage_minutes: i64,
    pub audit: Vec<AuditEvent>,
}

pub const LOG_LINES: i64 = 50;

pub async fn client_detail(ctx: &Console, id: i64) -> Result<ClientDetail, ActionError> {
    let record = ctx.db.client(id).await?.ok_or(ActionError::NotFound)?;
    let (ns, name) = (record.namespace.clone(), record.assistant_name.clone());
    let (assistant, cluster_error) = match ctx.cluster.get(&ns, &name).await {
        Ok(a) => (a.map(Arc::new), None),
        // Shown as last known (stale), never as current.
        Err(e) => (
            ctx.cluster.last_known().into_iter().find(|a| {
                a.metadata.namespace.as_deref() == Some(ns.as_str())
                    && a.metadata.name.as_deref() == Some(name.as_str())
            }),
            Some(e.to_string()),
        ),
    };
    let (events, log) = if cluster_error.is_some() || record.deleted_at.is_some() {
        (Ok(Vec::new()), Ok(None))
    } else {
        let (e, l) = futures::join!(
            ctx.cluster.events(&ns, &name),
            ctx.cluster.gateway_log(&ns, &name, LOG_LINES)
        );
        (e.map_err(|e| e.to_string()), l.map_err(|e| e.to_string()))
    };
    let month = month_of(now());
    let usage_minutes = ctx.db.usage_minutes(id, &month).await?;
    let audit = ctx.db.audit_events(Some(id), 20, 0).await?;
    Ok(ClientDetail {
        view: ClientView { record, assistant },
        cluster_error,
        events,
        log,
        month,
        usage_minutes,
        audit,
    })
}
