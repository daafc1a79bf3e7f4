//! The fleet page: clients by phase, version and plan, and unmanaged Assistants.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::ActionError;
use super::clients::phase_of;
use crate::api::Assistant;
use crate::console::Console;

/// Phases that need someone to look (a client's or an unmanaged Assistant's).
pub const ATTENTION_PHASES: [&str; 3] = ["Degraded", "Failed", "Missing"];

#[derive(Debug, Clone, Serialize, Default)]
pub struct Fleet {
    pub clients: i64,
    pub by_phase: BTreeMap<String, i64>,
    pub by_version: BTreeMap<String, i64>,
    /// The plan each client's Assistant names (`spec.plan`, else the default plan).
    pub by_plan: BTreeMap<String, i64>,
    /// Clients and unmanaged Assistants that are Degraded, Failed or Missing.
    pub need_attention: i64,
    /// Clients whose invite is not accepted `--never-connected-days` after creation.
    pub never_connected: i64,
    /// Clients whose backups are missing by the operator's verdict
    /// ([`super::backups::missing_backup`]): the head of Fleet → Backups.
    pub without_backup_48h: i64,
    /// Assistants in the cluster with no client record (created with kubectl): adoptable.
    pub unmanaged: Vec<UnmanagedAssistant>,
    pub cluster_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnmanagedAssistant {
    pub namespace: String,
    pub name: String,
    /// `Unknown` while the cluster is unreachable.
    pub phase: String,
    pub owner_name: String,
    pub owner_email: String,
}

/// Reads only the clients' keys (not whole records) and aggregates over the cluster's
/// Assistants with borrowed keys (no allocation per client): at 10,000 clients the page
/// stays within its 100 ms budget.
pub async fn fleet(ctx: &Console) -> Result<Fleet, ActionError> {
    let keys = ctx.db.client_keys_created().await?;
    let never_cutoff = super::handoff::never_connected_cutoff(ctx);
    let mut never_connected = 0;
    let (list, cluster_error) = match ctx.cluster.list().await {
        Ok(list) => (list, None),
        // Shown as Unknown below, never as current.
        Err(e) => (ctx.cluster.last_known(), Some(e.to_string())),
    };
    let ok = cluster_error.is_none();
    let default_plan = ctx.config.default_plan.as_str();
    // (namespace, name) -> (Assistant, has a client record)
    let mut idx: HashMap<(&str, &str), (&Assistant, bool)> = list
        .iter()
        .map(|a| {
            (
                (
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.metadata.name.as_deref().unwrap_or_default(),
                ),
                (&**a, false),
            )
        })
        .collect();
    let mut by_phase: HashMap<&'static str, i64> = HashMap::new();
    let mut by_plan: HashMap<&str, i64> = HashMap::new();
    let mut by_version: HashMap<&str, i64> = HashMap::new();
    let mut need_attention = 0;
    let mut without_backup_48h = 0;
    let t = super::now();
    for (_, ns, name, created_at) in &keys {
        let a = match idx.get_mut(&(ns.as_str(), name.as_str())) {
            Some(entry) => {
                entry.1 = true;
                Some(entry.0)
            }
            None => None,
        };
        // Stale last-known Assistants are no evidence either way: no count while unreadable.
        if ok && *created_at < never_cutoff && super::handoff::not_connected(a) {
            never_connected += 1;
        }
        let phase = phase_of(a, ok);
        *by_phase.entry(phase).or_default() += 1;
        if ATTENTION_PHASES.contains(&phase) {
            need_attention += 1;
        }
        if let Some(a) = a
            && ok
            && super::backups::missing_backup(a, &ctx.config, t)
        {
            without_backup_48h += 1;
        }
        if let Some(a) = a {
            *by_plan
                .entry(a.spec.plan.as_deref().unwrap_or(default_plan))
                .or_default() += 1;
            let version = a
                .status
                .as_ref()
                .and_then(|s| s.gateway_version.as_deref())
                .or_else(|| a.spec.gateway.as_ref().and_then(|g| g.version.as_deref()));
            if let Some(v) = version {
                *by_version.entry(v).or_default() += 1;
            }
        }
    }
    let mut unmanaged = Vec::new();
    for ((ns, name), (a, managed)) in &idx {
        if *managed {
            continue;
        }
        let phase = phase_of(Some(a), ok);
        if ATTENTION_PHASES.contains(&phase) {
            need_attention += 1;
        }
        unmanaged.push(UnmanagedAssistant {
            namespace: ns.to_string(),
            name: name.to_string(),
            phase: phase.to_string(),
            owner_name: a.spec.owner.name.clone(),
            owner_email: a.spec.owner.email.clone(),
        });
    }
    unmanaged.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let owned = |m: HashMap<&str, i64>| -> BTreeMap<String, i64> {
        m.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
    };
    Ok(Fleet {
        clients: keys.len() as i64,
        by_phase: owned(by_phase),
        by_version: owned(by_version),
        by_plan: owned(by_plan),
        need_attention,
        never_connected,
        without_backup_48h,
        unmanaged,
        cluster_error,
    })
}
