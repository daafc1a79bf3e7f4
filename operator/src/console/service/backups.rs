//! Backups of a client's volume (CSI VolumeSnapshots, docs/backups.md): the client's
//! snapshots and retained volumes, "back up now", restore in place, and the fleet's backup
//! health. The console only patches the Assistant and reads; the operator takes, prunes and
//! restores snapshots.

use std::cmp::Ordering;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::actions::{assistant_of, audit, live_client};
use super::{ActionError, now};
use crate::api::{
    Assistant, BACKUP_REQUEST_ANNOTATION, BackupStatus, SKIP_FINAL_SNAPSHOT_ANNOTATION,
    SUSPENDED_REASON_ANNOTATION,
};
use crate::backup::SnapshotInfo;
use crate::children::ChildNames;
use crate::config::OperatorConfig;
use crate::console::Console;
use crate::console::cluster::RetainedClaim;
use crate::console::db::{Admin, ClientRow};

/// Condition type of backup health (written by the operator's status step).
pub use crate::reconciler::status::BACKUP_HEALTHY;
/// `BackupHealthy` reason while a deletion waits on a final snapshot that failed.
pub const FINAL_SNAPSHOT_FAILED: &str = "FinalSnapshotFailed";
/// The fleet view's and the Fleet page's threshold: no ready snapshot for this long.
pub const MISSING_AFTER_SECONDS: i64 = 48 * 3600;

/// One client's Backups card.
#[derive(Debug, Clone)]
pub struct ClientBackups {
    /// `None`: the cluster has no VolumeSnapshot API. `Err`: the list failed.
    pub snapshots: Result<Option<Vec<SnapshotInfo>>, String>,
    /// Retained claims of this Assistant (its uid in `clawhost.dev/assistant-uid`).
    pub retained: Result<Vec<RetainedClaim>, String>,
    /// Retained claims under the same name of another (earlier) Assistant: not this
    /// client's data, listed apart with their owner, never offered for adoption here.
    pub retained_other: Vec<RetainedClaim>,
    pub health: Option<Condition>,
    pub status: Option<BackupStatus>,
    /// After an in-place restore, while suspended: what the banner says.
    pub restored: Option<RestoredBanner>,
}

/// "Restored from X; the previous volume Y is kept (retained). Resume once the new claim
/// exists, then wait for Ready." Shown only while a retained claim is `replaced-by` the
/// current one (an in-place restore of this Assistant), not for a client restored as new.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredBanner {
    pub snapshot: String,
    /// The claim the restore replaced (retained, `replaced-by` the current one).
    pub previous_claim: String,
    /// The claim the restore made.
    pub new_claim: String,
    /// `status.storage.claimName` names the new claim: the operator made it, resuming lets
    /// the pod mount it (a WaitForFirstConsumer class binds it only then).
    pub claim_created: bool,
    /// The suspension is billing's (`clawhost.dev/suspended-reason`): no Resume button.
    pub billing_suspension: bool,
}

pub fn condition<'a>(a: &'a Assistant, type_: &str) -> Option<&'a Condition> {
    a.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn annotation<'a>(a: &'a Assistant, key: &str) -> Option<&'a str> {
    a.metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(key))
        .map(String::as_str)
}

/// Whether backups are on for this Assistant: the operator's kill switch, then
/// `spec.backup.enabled`, then its plan's (the same order as the operator's policy).
pub fn backups_enabled(a: &Assistant, config: &OperatorConfig) -> bool {
    let plan = config
        .plan(a.spec.plan.as_deref())
        .and_then(|(_, p)| p.backup.as_ref())
        .and_then(|b| b.enabled);
    config.backups.enabled && a.backup().enabled.or(plan).unwrap_or(true)
}

fn parse_time(t: Option<&str>) -> Option<i64> {
    t?.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The card's content for one Assistant: two reads (snapshots by uid, retained claims by
/// base name, then split by the claims' `clawhost.dev/assistant-uid`), each failing on its own.
pub async fn client_backups(ctx: &Console, a: &Assistant) -> ClientBackups {
    let ns = a.metadata.namespace.as_deref().unwrap_or_default();
    let uid = a.metadata.uid.as_deref().unwrap_or_default();
    let names = ChildNames::for_assistant(a);
    let snapshots = ctx
        .cluster
        .snapshots(ns, uid)
        .await
        .map_err(|e| e.to_string());
    let retained = ctx
        .cluster
        .retained_claims(ns, &names.base)
        .await
        .map_err(|e| e.to_string());
    let (retained, retained_other) = match retained {
        Ok(all) => {
            let (mine, other): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(|c| c.assistant_uid.as_deref() == Some(uid));
            (Ok(mine), other)
        }
        Err(e) => (Err(e), Vec::new()),
    };
    let previous = retained.as_ref().ok().and_then(|l| {
        l.iter()
            .find(|c| c.replaced_by.as_deref() == Some(names.data_volume.as_str()))
            .map(|c| c.name.clone())
    });
    let restored = a
        .storage()
        .restore_from
        .filter(|_| a.spec.suspended)
        .zip(previous)
        .map(|(r, previous_claim)| RestoredBanner {
            snapshot: r.volume_snapshot_name,
            previous_claim,
            claim_created: a
                .status
                .as_ref()
                .and_then(|s| s.storage.as_ref())
                .and_then(|s| s.claim_name.as_deref())
                == Some(names.data_volume.as_str()),
            new_claim: names.data_volume.clone(),
            billing_suspension: annotation(a, SUSPENDED_REASON_ANNOTATION).is_some(),
        });
    ClientBackups {
        snapshots,
        retained,
        retained_other,
        health: condition(a, BACKUP_HEALTHY).cloned(),
        status: a.status.as_ref().and_then(|s| s.backup.clone()),
        restored,
    }
}

/// "Back up now": a new `clawhost.dev/backup-request` value (`snapshot:<RFC 3339 now, to
/// the nanosecond>`), which the operator acts on once. Returns the value; never the one
/// already there, so every click is a new request.
pub async fn request_backup(ctx: &Console, actor: &Admin, id: i64) -> Result<String, ActionError> {
    let c = live_client(ctx, id).await?;
    let a = assistant_of(ctx, &c).await?;
    if !backups_enabled(&a, &ctx.config) {
        return Err(ActionError::Conflict(
            "backups are off for this client (operator config, plan or spec.backup.enabled: false): \
             the operator would not take the snapshot"
                .into(),
        ));
    }
    let before = annotation(&a, BACKUP_REQUEST_ANNOTATION).map(str::to_string);
    let value = unique_request(before.as_deref(), jiff::Timestamp::now());
    ctx.cluster
        .patch(
            &c.namespace,
            &c.assistant_name,
            json!({"metadata": {"annotations": {BACKUP_REQUEST_ANNOTATION: value}}}),
        )
        .await?;
    audit(
        ctx,
        actor,
        "backup.requested",
        &c,
        json!({"request": before}),
        json!({"request": value}),
    )
    .await?;
    Ok(value)
}

/// `snapshot:<at>` to the nanosecond (jiff prints the fraction), moved on by a nanosecond
/// while it is not later than the previous request's time: two clicks in one second are two
/// requests, and a value is never reused.
pub fn unique_request(before: Option<&str>, at: jiff::Timestamp) -> String {
    let previous = before
        .and_then(crate::api::parse_backup_request)
        .and_then(|(_, t)| t.parse::<jiff::Timestamp>().ok());
    let at = match previous {
        Some(p) if at <= p => p
            .checked_add(jiff::SignedDuration::from_nanos(1))
            .unwrap_or(at),
        _ => at,
    };
    format!("snapshot:{at}")
}

/// What a restore confirmation or request refers to, checked against the cluster: the
/// client, its Assistant and the snapshot (this Assistant's, ready).
pub struct RestoreTarget {
    pub client: ClientRow,
    pub assistant: Assistant,
    pub snapshot: SnapshotInfo,
}

/// The snapshot `name` of client `id`, refused unless it is this client's and ready.
pub async fn restore_target(
    ctx: &Console,
    id: i64,
    name: &str,
) -> Result<RestoreTarget, ActionError> {
    let c = live_client(ctx, id).await?;
    let a = assistant_of(ctx, &c).await?;
    let uid = a.metadata.uid.as_deref().unwrap_or_default();
    let list = ctx
        .cluster
        .snapshots(&c.namespace, uid)
        .await?
        .ok_or_else(|| {
            ActionError::Conflict(
                "the cluster has no VolumeSnapshot API: there is nothing to restore from".into(),
            )
        })?;
    let Some(s) = list.into_iter().find(|s| s.name == name) else {
        return Err(ActionError::invalid(
            "snapshot",
            format!(
                "{name:?} is not a snapshot of {} (choose one from the client's Backups card)",
                c.assistant_name
            ),
        ));
    };
    if !s.ready || s.deleting {
        let why = match (&s.error, s.deleting) {
            (_, true) => "is being deleted".to_string(),
            (Some(e), _) => format!("failed: {e}"),
            (None, _) => "is not ready to use yet".to_string(),
        };
        return Err(ActionError::Conflict(format!(
            "snapshot {name} {why}: only a ready snapshot can be restored"
        )));
    }
    Ok(RestoreTarget {
        client: c,
        assistant: a,
        snapshot: s,
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RestoreRequest {
    /// Must equal the Assistant name.
    #[serde(default)]
    pub confirm: String,
}

/// In-place restore: suspend, and make the data volume a new claim from `snapshot`; the
/// operator keeps the current claim, retained, and never deletes it. Resuming is separate
/// (after StorageReady), so a client suspended by billing stays suspended.
pub async fn restore_in_place(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    snapshot: &str,
    req: &RestoreRequest,
) -> Result<(), ActionError> {
    let t = restore_target(ctx, id, snapshot).await?;
    let c = &t.client;
    if req.confirm.trim() != c.assistant_name {
        return Err(ActionError::invalid(
            "confirm",
            format!(
                "type the Assistant name {:?} to confirm the restore",
                c.assistant_name
            ),
        ));
    }
    let current = t.assistant.storage().restore_from;
    if current.as_ref().map(|r| r.volume_snapshot_name.as_str()) == Some(snapshot) {
        return Err(ActionError::Conflict(format!(
            "the volume was already restored from {snapshot}"
        )));
    }
    refuse_doomed_restore(ctx, &t, snapshot).await?;
    let before_claim = ChildNames::for_assistant(&t.assistant).data_volume;
    let mut after = t.assistant.clone();
    after
        .spec
        .storage
        .get_or_insert_with(Default::default)
        .restore_from = Some(crate::api::RestoreFrom {
        volume_snapshot_name: snapshot.to_string(),
    });
    let new_claim = ChildNames::for_assistant(&after).data_volume;
    // Both in one patch: the API server's rule accepts restoreFrom on an existing
    // Assistant only together with suspended: true.
    let patch = json!({"spec": {"suspended": true, "storage": {"restoreFrom": {"volumeSnapshotName": snapshot}}}});
    ctx.cluster
        .patch(&c.namespace, &c.assistant_name, patch)
        .await?;
    audit(
        ctx,
        actor,
        "backup.restored_in_place",
        c,
        json!({"suspended": t.assistant.spec.suspended, "restore_from": current.map(|r| r.volume_snapshot_name), "claim": before_claim}),
        json!({"suspended": true, "restore_from": snapshot, "claim": new_claim, "previous_claim_kept": before_claim}),
    )
    .await
}

/// Refuses (409) an in-place restore the operator would refuse after the patch had already
/// suspended the client: with `adoptRetainedVolume` set (the API rules refuse it together
/// with restoreFrom), or when the claim this snapshot restores to already exists, kept
/// retained by an earlier restore (restoring S1, S2, then S1 again).
async fn refuse_doomed_restore(
    ctx: &Console,
    t: &RestoreTarget,
    snapshot: &str,
) -> Result<(), ActionError> {
    if let Some(adopt) = t.assistant.storage().adopt_retained_volume {
        return Err(ActionError::Conflict(format!(
            "this Assistant adopts the retained volume {adopt} (spec.storage.adoptRetainedVolume): \
             an in-place restore cannot be combined with it; restore as a new client instead"
        )));
    }
    let names = ChildNames::for_assistant(&t.assistant);
    let target = crate::children::data_claim_name(
        &names.base,
        Some(&crate::api::RestoreFrom {
            volume_snapshot_name: snapshot.to_string(),
        }),
    );
    let ns = t.client.namespace.as_str();
    if ctx
        .cluster
        .retained_claims(ns, &names.base)
        .await?
        .iter()
        .any(|c| c.name == target)
    {
        return Err(ActionError::Conflict(format!(
            "the volume restored from {snapshot} ({target}) already exists, kept (retained) by an \
             earlier restore, so the operator would refuse to make it again: restore from the \
             pre-restore snapshot of {target} or a newer snapshot of it, or adopt {target} into a \
             NEW Assistant (spec.storage.adoptRetainedVolume)"
        )));
    }
    Ok(())
}

/// Sets `clawhost.dev/skip-final-snapshot: "true"` on a client's Assistant whose deletion
/// is held by a failed final snapshot: the operator then deletes the volume without it.
/// The client record may be marked deleted already: its Assistant is what waits.
pub async fn skip_final_snapshot(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    confirm: &str,
) -> Result<(), ActionError> {
    let c = ctx.db.client(id).await?.ok_or(ActionError::NotFound)?;
    if confirm.trim() != c.assistant_name {
        return Err(ActionError::invalid(
            "confirm",
            format!(
                "type the Assistant name {:?} to confirm deleting without a final snapshot",
                c.assistant_name
            ),
        ));
    }
    let a = assistant_of(ctx, &c).await?;
    if condition(&a, BACKUP_HEALTHY).map(|c| c.reason.as_str()) != Some(FINAL_SNAPSHOT_FAILED) {
        return Err(ActionError::Conflict(
            "the final snapshot has not failed: deleting without it is offered only when it blocks the deletion"
                .into(),
        ));
    }
    ctx.cluster
        .patch(
            &c.namespace,
            &c.assistant_name,
            json!({"metadata": {"annotations": {SKIP_FINAL_SNAPSHOT_ANNOTATION: "true"}}}),
        )
        .await?;
    audit(
        ctx,
        actor,
        "backup.skip_final_snapshot",
        &c,
        json!({"final_snapshot": condition(&a, BACKUP_HEALTHY).map(|c| c.message.clone())}),
        json!({SKIP_FINAL_SNAPSHOT_ANNOTATION: "true"}),
    )
    .await
}

/// Whether a snapshot name could be one (`DNS_SUBDOMAIN_PATTERN`, ≤ 253): the new-client form's
/// `restore_from` is checked before it reaches the API server.
pub fn valid_snapshot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// One row of the fleet's backup health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupRow {
    pub client_id: i64,
    pub namespace: String,
    pub assistant_name: String,
    pub owner_name: String,
    pub last_snapshot: Option<String>,
    /// Unix seconds of `status.backup.lastSnapshotTime`.
    pub last_snapshot_time: Option<i64>,
    pub next_run: Option<String>,
    /// `BackupHealthy` status and reason (absent until the operator evaluated backups).
    pub status: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub enabled: bool,
    pub suspended: bool,
    /// Backups are missing by the operator's verdict ([`missing_backup`]).
    pub missing: bool,
}

impl BackupRow {
    /// 0: missing (first), 1: BackupHealthy False, 2: the rest.
    fn group(&self) -> u8 {
        if self.missing {
            0
        } else if self.status.as_deref() == Some("False") {
            1
        } else {
            2
        }
    }
}

/// Sorted for attention: (1) missing ([`missing_backup`]), oldest (or none) first; (2)
/// `BackupHealthy=False`; (3) the rest by last snapshot time, oldest first.
pub fn sort_backup_rows(rows: &mut [BackupRow]) {
    rows.sort_by(|a, b| {
        a.group()
            .cmp(&b.group())
            .then_with(|| match (a.last_snapshot_time, b.last_snapshot_time) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => x.cmp(&y),
            })
            .then_with(|| (&a.namespace, &a.assistant_name).cmp(&(&b.namespace, &b.assistant_name)))
    });
}

/// Backups are on, the client is not suspended, and the operator's verdict says missing:
/// `BackupHealthy` reason `SnapshotMissing` (no ready snapshot within twice the schedule's
/// interval: a weekly schedule is not "missing" after two days), or `BackupHealthy=False`
/// for another reason with no ready snapshot in 48 h. Before the operator evaluated the
/// Assistant: no ready snapshot in 48 h and the Assistant is older than that. A new client
/// (`AwaitingFirstSnapshot`) is never missing. Allocation-free: the Fleet page counts these
/// over every client.
pub fn missing_backup(a: &Assistant, config: &OperatorConfig, now: i64) -> bool {
    if a.spec.suspended || !backups_enabled(a, config) {
        return false;
    }
    let last = parse_time(
        a.status
            .as_ref()
            .and_then(|s| s.backup.as_ref())
            .and_then(|b| b.last_snapshot_time.as_deref()),
    );
    let none_in_48h = last.is_none_or(|t| t < now - MISSING_AFTER_SECONDS);
    match condition(a, BACKUP_HEALTHY) {
        Some(c) if c.reason == "SnapshotMissing" => true,
        Some(c) if c.reason == "AwaitingFirstSnapshot" => false,
        Some(c) => c.status == "False" && none_in_48h,
        None => {
            let created = a
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second());
            none_in_48h && created.is_none_or(|t| t < now - MISSING_AFTER_SECONDS)
        }
    }
}

pub fn backup_row(id: i64, a: &Assistant, config: &OperatorConfig, now: i64) -> BackupRow {
    let backup = a.status.as_ref().and_then(|s| s.backup.as_ref());
    let health = condition(a, BACKUP_HEALTHY);
    let last = parse_time(backup.and_then(|b| b.last_snapshot_time.as_deref()));
    let enabled = backups_enabled(a, config);
    let suspended = a.spec.suspended;
    BackupRow {
        client_id: id,
        namespace: a.metadata.namespace.clone().unwrap_or_default(),
        assistant_name: a.metadata.name.clone().unwrap_or_default(),
        owner_name: a.spec.owner.name.clone(),
        last_snapshot: backup.and_then(|b| b.last_snapshot.clone()),
        last_snapshot_time: last,
        next_run: backup.and_then(|b| b.next_run.clone()),
        status: health.map(|c| c.status.clone()),
        reason: health.map(|c| c.reason.clone()),
        message: health.map(|c| c.message.clone()),
        enabled,
        suspended,
        missing: missing_backup(a, config, now),
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct FleetBackups {
    pub rows: Vec<BackupRow>,
    /// Rows whose backups are missing ([`missing_backup`]).
    pub missing: usize,
    pub cluster_error: Option<String>,
}

/// The fleet's backup health from the Assistants list only (no snapshot list per client).
pub async fn fleet_backups(ctx: &Console) -> Result<FleetBackups, ActionError> {
    let keys = ctx.db.client_keys_created().await?;
    let list = ctx.cluster.list().await?;
    let t = now();
    let idx: std::collections::HashMap<(&str, &str), &Assistant> = list
        .iter()
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
    let mut rows: Vec<BackupRow> = keys
        .iter()
        .filter_map(|(id, ns, name, _)| {
            idx.get(&(ns.as_str(), name.as_str()))
                .map(|a| backup_row(*id, a, &ctx.config, t))
        })
        .collect();
    sort_backup_rows(&mut rows);
    Ok(FleetBackups {
        missing: rows.iter().filter(|r| r.missing).count(),
        rows,
        cluster_error: None,
    })
}

/// A snapshot for the JSON API.
pub fn snapshot_json(s: &SnapshotInfo) -> serde_json::Value {
    json!({
        "name": s.name,
        "kind": s.kind.as_str(),
        "taken": s.taken.to_string(),
        "ready": s.ready,
        "state": snapshot_state(s),
        "error": s.error,
        "restore_size": s.restore_size,
        "source_claim": s.source_claim,
        "request": s.request,
        "expires_at": s.expires_at.map(|t| t.to_string()),
    })
}

/// `Ready`, `Failed`, `Deleting` or `Pending`.
pub fn snapshot_state(s: &SnapshotInfo) -> &'static str {
    if s.deleting {
        "Deleting"
    } else if s.ready {
        "Ready"
    } else if s.error.is_some() {
        "Failed"
    } else {
        "Pending"
    }
}
