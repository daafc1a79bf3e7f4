//! The fleet page: clients by phase, version and plan, and unmanaged Assistants.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ActionError;
use super::clients::{assistant_index, join};
use crate::console::Console;
use crate::console::db::ClientFilter;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Fleet {
    pub clients: i64,
    pub by_phase: BTreeMap<String, i64>,
    pub by_version: BTreeMap<String, i64>,
    pub by_plan: BTreeMap<String, i64>,
    /// Assistants in the cluster with no client record.
    pub unmanaged: Vec<String>,
    pub cluster_error: Option<String>,
}

pub async fn fleet(ctx: &Console) -> Result<Fleet, ActionError> {
    let (rows, total) = ctx.db.list_clients(&ClientFilter::default(), None).await?;
    let (idx, cluster_error) = assistant_index(ctx).await;
    let ok = cluster_error.is_none();
    let mut f = Fleet {
        clients: total,
        cluster_error,
        ..Default::default()
    };
    let mut known = std::collections::HashSet::new();
    for v in join(rows, &idx) {
        known.insert((v.record.namespace.clone(), v.record.assistant_name.clone()));
        *f.by_phase.entry(v.phase(ok).to_string()).or_default() += 1;
        *f.by_plan.entry(v.record.plan.clone()).or_default() += 1;
        if let Some(ver) = v.version() {
            *f.by_version.entry(ver).or_default() += 1;
        }
    }
    f.unmanaged = idx
        .keys()
        .filter(|k| !known.contains(*k))
        .map(|(ns, n)| format!("{ns}/{n}"))
        .collect();
    f.unmanaged.sort();
    Ok(f)
}
