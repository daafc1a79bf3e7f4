//! The fleet page: clients by phase, version and plan, and unmanaged Assistants.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::ActionError;
use super::clients::{assistant_index, phase_of, plan_of};
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
/// Assistants: at 10,000 clients the page stays within its 100 ms budget.
pub async fn fleet(ctx: &Console) -> Result<Fleet, ActionError> {
    let keys = ctx.db.client_keys().await?;
    let (idx, cluster_error) = assistant_index(ctx).await;
    let ok = cluster_error.is_none();
    let default_plan = ctx.config.default_plan.as_str();
    let mut f = Fleet {
        clients: keys.len() as i64,
        cluster_error,
        ..Default::default()
    };
    let mut known = HashSet::with_capacity(keys.len());
    for (_, ns, name) in keys {
        let key = (ns, name);
        let a = idx.get(&key).map(|a| &**a);
        let phase = phase_of(a, ok);
        *f.by_phase.entry(phase.to_string()).or_default() += 1;
        if ATTENTION_PHASES.contains(&phase) {
            f.need_attention += 1;
        }
        if let Some(a) = a {
            *f.by_plan.entry(plan_of(a, default_plan)).or_default() += 1;
            let version = a
                .status
                .as_ref()
                .and_then(|s| s.gateway_version.clone())
                .or_else(|| a.spec.gateway.as_ref().and_then(|g| g.version.clone()));
            if let Some(v) = version {
                *f.by_version.entry(v).or_default() += 1;
            }
        }
        known.insert(key);
    }
    for (key, a) in &idx {
        if known.contains(key) {
            continue;
        }
        let phase = phase_of(Some(a), ok);
        if ATTENTION_PHASES.contains(&phase) {
            f.need_attention += 1;
        }
        f.unmanaged.push(UnmanagedAssistant {
            namespace: key.0.clone(),
            name: key.1.clone(),
            phase: phase.to_string(),
            owner_name: a.spec.owner.name.clone(),
            owner_email: a.spec.owner.email.clone(),
        });
    }
    f.unmanaged
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(f)
}
