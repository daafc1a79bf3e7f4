//! Operator metrics (OpenMetrics via prometheus-client).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Phase;
use crate::backup::BackupState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Child kind and what the apply step did (bounded: a handful of kinds and outcomes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabel {
    pub kind: String,
    pub outcome: String,
}

/// A Tailscale API call: operation (`create_invite`, `mint_auth_key`, …) and result (`ok`,
/// an HTTP status such as `401` or `429`, `5xx`, `transport`). Both bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCallLabel {
    pub operation: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// `clawhost_assistants_backup{state}`: ok, missing, new, suspended, disabled.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupStateLabel {
    pub state: String,
}

/// A snapshot's kind (scheduled, manual, final, pre-upgrade, pre-restore) and what happened
/// to it (created, refused, failed, pruned, expired). Both bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotLabel {
    pub kind: String,
    pub outcome: String,
}

pub struct Metrics {
    pub reconciles: Counter,
    pub errors: Family<ReasonLabel, Counter>,
    pub duration: Histogram,
    pub assistants: Family<PhaseLabel, Gauge>,
    /// Apply decisions per child kind: applied (created, changed, drift), normalised
    /// (a dry run found nothing to write), refused.
    pub applies: Family<ApplyLabel, Counter>,
    /// Tailscale API calls (OAuth client and device invites), so the calls per onboarded
    /// client can be read off.
    pub tailscale_calls: Family<ApiCallLabel, Counter>,
    /// Assistants by backup state (the `ClawhostBackupMissing` alert reads `missing`).
    pub assistants_backup: Family<BackupStateLabel, Gauge>,
    /// Snapshot creations, refusals, failures and deletions.
    pub snapshots: Family<SnapshotLabel, Counter>,
    phases: Mutex<HashMap<String, Phase>>,
    backup_states: Mutex<HashMap<String, BackupState>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            assistants: Family::default(),
            applies: Family::default(),
            tailscale_calls: Family::default(),
            assistants_backup: Family::default(),
            snapshots: Family::default(),
            phases: Mutex::default(),
            backup_states: Mutex::default(),
        }
    }
}

/// Longest wait between retries of a failing Assistant.
impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "clawhost_reconciles",
            "Reconciles run",
            self.reconciles.clone(),
        );
        registry.register(
            "clawhost_reconcile_errors",
            "Reconciles that failed, by reason",
            self.errors.clone(),
        );
        registry.register(
            "clawhost_reconcile_duration_seconds",
            "Time per reconcile",
            self.duration.clone(),
        );
        registry.register(
            "clawhost_child_applies",
            "Child object apply decisions, by kind and outcome (created, changed, drift_restored, normalised, refused, pruned)",
            self.applies.clone(),
        );
        registry.register(
            "clawhost_tailscale_api_calls",
            "Tailscale API calls, by operation and result (ok, an HTTP status, 5xx, transport)",
            self.tailscale_calls.clone(),
        );
        registry.register(
            "clawhost_assistants",
            "Assistants by phase",
            self.assistants.clone(),
        );
        registry.register(
            "clawhost_assistants_backup",
            "Assistants by backup state (ok, missing, new, suspended, disabled); missing: no ready snapshot within twice the schedule interval",
            self.assistants_backup.clone(),
        );
        registry.register(
            "clawhost_snapshots",
            "Volume snapshots, by kind and outcome (created, refused, failed, pruned, expired)",
            self.snapshots.clone(),
        );
    }

    /// Records an Assistant's backup state; the gauge counts Assistants per state.
    pub fn set_backup_state(&self, key: &str, state: BackupState) {
        let mut states = self.backup_states.lock().expect("lock");
        if let Some(old) = states.insert(key.to_string(), state) {
            if old == state {
                return;
            }
            self.backup_gauge(old).dec();
        }
        self.backup_gauge(state).inc();
    }

    fn backup_gauge(&self, state: BackupState) -> Gauge {
        self.assistants_backup
            .get_or_create(&BackupStateLabel {
                state: state.as_str().to_string(),
            })
            .clone()
    }

    /// Counts one snapshot event (`outcome`: created, refused, failed, pruned, expired).
    pub fn observe_snapshot(&self, kind: crate::api::SnapshotKind, outcome: &str) {
        self.snapshots
            .get_or_create(&SnapshotLabel {
                kind: kind.as_str().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Records what the apply step did for one child; unchanged children are not counted.
    pub fn observe_apply(&self, kind: &str, outcome: crate::reconciler::apply::Outcome) {
        use crate::reconciler::apply::{Comparison, Outcome};
        let outcome = match outcome {
            Outcome::Unchanged => return,
            Outcome::NormalisedOnly => "normalised",
            Outcome::Applied(Comparison::Missing) => "created",
            Outcome::Applied(Comparison::DesiredChanged) => "changed",
            Outcome::Applied(_) => "drift_restored",
        };
        self.applies
            .get_or_create(&ApplyLabel {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn observe_refusal(&self, kind: &str) {
        self.count_apply(kind, "refused");
    }

    /// A child deleted because it is no longer desired.
    pub fn observe_prune(&self, kind: &str) {
        self.count_apply(kind, "pruned");
    }

    fn count_apply(&self, kind: &str, outcome: &str) {
        self.applies
            .get_or_create(&ApplyLabel {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn observe_reconcile(&self, took: Duration, error: Option<String>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.errors.get_or_create(&ReasonLabel { reason }).inc();
        }
    }

    /// Records an Assistant's phase; the gauge counts Assistants per phase.
    pub fn set_phase(&self, key: &str, phase: Phase) {
        let mut phases = self.phases.lock().expect("lock");
        if let Some(old) = phases.insert(key.to_string(), phase) {
            if old == phase {
                return;
            }
            self.assistants
                .get_or_create(&PhaseLabel {
                    phase: old.to_string(),
                })
                .dec();
        }
        self.assistants
            .get_or_create(&PhaseLabel {
                phase: phase.to_string(),
            })
            .inc();
    }

    /// Drops a deleted Assistant from the phase gauge.
    pub fn forget(&self, key: &str) {
        if let Some(old) = self.phases.lock().expect("lock").remove(key) {
            self.assistants
                .get_or_create(&PhaseLabel {
                    phase: old.to_string(),
                })
                .dec();
        }
        if let Some(old) = self.backup_states.lock().expect("lock").remove(key) {
            self.backup_gauge(old).dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_gauge_moves_between_phases() {
        let m = Metrics::default();
        m.set_phase("a", Phase::Provisioning);
        m.set_phase("a", Phase::Running);
        m.set_phase("b", Phase::Running);
        let get = |p: Phase| {
            m.assistants
                .get_or_create(&PhaseLabel {
                    phase: p.to_string(),
                })
                .get()
        };
        assert_eq!(get(Phase::Provisioning), 0);
        assert_eq!(get(Phase::Running), 2);
        m.forget("a");
        assert_eq!(get(Phase::Running), 1);
    }

    #[test]
    fn backup_gauge_moves_between_states_and_forgets() {
        let m = Metrics::default();
        m.set_backup_state("a", BackupState::New);
        m.set_backup_state("a", BackupState::Ok);
        m.set_backup_state("a", BackupState::Ok);
        m.set_backup_state("b", BackupState::Missing);
        let get = |s: BackupState| m.backup_gauge(s).get();
        assert_eq!(
            (get(BackupState::New), get(BackupState::Ok), get(BackupState::Missing)),
            (0, 1, 1)
        );
        m.forget("b");
        assert_eq!(get(BackupState::Missing), 0);
        m.observe_snapshot(crate::api::SnapshotKind::Scheduled, "created");
        let mut text = String::new();
        let mut registry = Registry::default();
        m.register(&mut registry);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"clawhost_snapshots_total{kind="scheduled",outcome="created"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"clawhost_assistants_backup{state="ok"} 1"#), "{text}");
    }
}
