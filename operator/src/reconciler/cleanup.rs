//! Ordered cleanup when an Assistant is deleted: stop the gateway, take the final snapshot
//! (`onDelete: Delete`), remove the tailnet device, honour `storage.onDelete` for every
//! claim in use, then release the finalizer. Every step is idempotent;
//! a failed step is retried and nothing after it runs (except a refused invite credential,
//! which may never be fixed: reported, and the device's removal ends its invites). Under `Retain` the volume is never
//! deleted, whatever fails (it has no ownerReference to begin with).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use serde_json::json;
use tracing::{info, warn};

use super::restore::publish;
use super::status::{BACKUP_HEALTHY, Observed};
use super::{Context, Error, FINALIZER, api_resource, apply, names, tailnet, write_status};
use crate::api::backup::{
    ASSISTANT_UID_LABEL, EXPIRES_AT_ANNOTATION, SKIP_FINAL_SNAPSHOT_ANNOTATION, SNAPSHOT_KIND_LABEL,
};
use crate::api::snapshot::VolumeSnapshot;
use crate::api::{Assistant, OnDelete, SnapshotKind};
use crate::backup::ApiState;
use crate::children::{self, RETAINED_LABEL, typed_value};
use crate::config::FinalSnapshotFailure;
use crate::tailscale::invites::InviteError;

const WAIT_FOR_POD: Duration = Duration::from_secs(5);
// In the core since in-place restores retain volumes too; re-exported for old callers.
pub use crate::children::{RETAINED_FROM_ANNOTATION, RETAINED_OWNER_EMAIL_ANNOTATION};

pub async fn run(cached: &Assistant, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    // The controller's cache can lag a cleanup that just finished (a reconcile queued by a
    // child's watch event): read the Assistant itself, so no step runs twice for it.
    let api: Api<Assistant> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(fresh) = api.get_opt(&cached.name_any()).await? else {
        forget(ctx, cached);
        return Ok(Action::await_change());
    };
    let a = &fresh;
    if !a.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let n = names(a);
    let terminating = crate::reconciler::status::compute(
        a,
        &ctx.config,
        &Observed {
            deleting: true,
            ..Default::default()
        },
    );
    if a.status.as_ref().and_then(|s| s.phase) != Some(crate::api::Phase::Terminating) {
        write_status(a, ctx, &ns, terminating).await?;
    }

    // 1. Scale the gateway to zero and wait until its pod is gone, so nothing writes the
    //    volume or re-registers the device while we clean up.
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(sts) = sts_api.get_opt(&n.statefulset).await?
        && sts.spec.as_ref().and_then(|s| s.replicas) != Some(0)
    {
        let mut stopped = a.clone();
        stopped.spec.suspended = true;
        if let Ok(desired) = children::gateway_statefulset::build(&stopped, &ctx.config) {
            let desired = apply::with_hash(typed_value(&desired));
            apply::apply(&ctx.client, &api_resource::<StatefulSet>(), &ns, &desired).await?;
        } else {
            // An invalid spec still has to stop: scale directly.
            sts_api
                .patch(
                    &n.statefulset,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": 0}})),
                )
                .await?;
        }
        info!("scaled gateway to zero for deletion");
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if pods
        .get_opt(&format!("{}-0", n.statefulset))
        .await?
        .is_some()
    {
        return Ok(Action::requeue(WAIT_FOR_POD));
    }

    // The claims in use: the one the spec wants, and any other live, non-retained claim of
    // this Assistant (an in-place restore stuck before its new claim, or a spec pointing
    // at a claim an earlier restore retained). The client's choice applies to each of them;
    // under Delete they have an owner, and the garbage collector must never take one
    // without its final snapshot: each is deleted here, explicitly, after it.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let claims = claims_in_use(a, &pvcs, &n).await?;
    let on_delete = a.storage().on_delete;

    // 2. Under Delete, the final snapshot of each claim first: the pod being gone is all it
    //    needs, and while it is pending no external call repeats on every pass.
    let mut unsnapshotted = Vec::new();
    if on_delete == OnDelete::Delete {
        let mut wait: Option<Action> = None;
        for pvc in &claims {
            match final_snapshot(a, ctx, &ns, pvc).await? {
                FinalSnapshot::Taken | FinalSnapshot::NotWanted => {}
                FinalSnapshot::Failed => unsnapshotted.push(pvc.name_any()),
                FinalSnapshot::Wait(action) => {
                    wait.get_or_insert(action);
                }
            }
        }
        if let Some(wait) = wait {
            return Ok(wait);
        }
    }

    // 3. Delete the device's open invites, so nobody can accept a share of a device that is
    //    going (only with the invites credential), then remove the device from the tailnet
    //    (only with Tailscale API credentials).
    if ctx.tailnet.is_some() || ctx.invites.is_some() {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let state = secrets.get_opt(&n.tailscale_state_secret).await?;
        let observation = super::observe::Observation {
            state: Observed {
                tailscale_state: state,
                ..Default::default()
            },
            ..Default::default()
        };
        // A state Secret deleted by hand leaves the device and its invite known only to
        // status.access.
        let (device, recorded_invite) = super::access::cleanup_targets(
            tailnet::device_id(&observation),
            a.status.as_ref().and_then(|s| s.access.as_ref()),
        );
        if let Some(invites) = &ctx.invites {
            match super::access::revoke_open_invites(
                invites.as_ref(),
                device.as_deref(),
                recorded_invite.as_deref(),
            )
            .await
            {
                Ok(deleted) => {
                    info!(device = ?device, deleted, "deleted the device's open invites")
                }
                Err(e) if super::access::revoke_failure_is_retried(&e) => {
                    return Err(Error::Tailnet(e.to_string()));
                }
                Err(e) => {
                    // Reported, not retried: see revoke_failure_is_retried.
                    warn!(device = ?device, error = %e, "could not delete the device's open invites; deleting anyway");
                    invites_left_open(a, ctx, &e).await;
                }
            }
        }
        if let (Some(tailnet), Some(id)) = (&ctx.tailnet, &device) {
            tailnet.delete_device(id).await.map_err(Error::Tailnet)?;
            info!(device = %id, "removed tailnet device");
        }
    }

    // 4. The volumes: keep them (unlinked, labelled) or delete them, as the client chose.
    //    Another Assistant's volume (retained under this name) is never touched here, nor
    //    are claims retained by earlier in-place restores (no owner).
    match on_delete {
        OnDelete::Retain => {
            // Snapshots are left as they are: no owner, so no garbage collection either.
            for pvc in &claims {
                retain(a, &ns, &pvcs, pvc).await?;
            }
        }
        OnDelete::Delete => {
            // 4a. The client chose Delete: its other snapshots go too; the final ones stay
            //     until their expiry (the janitor). A final snapshot that failed (Proceed)
            //     keeps the newest ready snapshot in its place.
            delete_other_snapshots(a, ctx, &ns, &unsnapshotted).await?;
            // 4b. The volumes, each after its final snapshot (uid precondition).
            for pvc in &claims {
                let claim = pvc.name_any();
                let params = DeleteParams::default().preconditions(Preconditions {
                    uid: pvc.uid(),
                    resource_version: None,
                });
                match pvcs.delete(&claim, &params).await {
                    Ok(_) => info!(pvc = %claim, "volume deleted (onDelete: Delete)"),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    // 5. Release the Assistant. The test op refuses the patch if the finalizers changed
    //    since we read them, so another controller's finalizer is never dropped.
    let remaining: Vec<&String> = a.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": a.finalizers()},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]))
    .expect("valid JSON patch");
    let api: Api<Assistant> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch(
            &a.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    info!("cleanup finished; finalizer removed");
    forget(ctx, a);
    Ok(Action::await_change())
}

/// The claims this Assistant uses: the desired one when it is this Assistant's, and every
/// other live (not being deleted), non-retained claim of its data that records its uid or
/// has it as an owner (one label-selected LIST). A claim already being deleted is left to
/// finish; a retained one (no owner) to whoever keeps it.
pub async fn claims_in_use(
    a: &Assistant,
    pvcs: &Api<PersistentVolumeClaim>,
    n: &children::ChildNames,
) -> Result<Vec<PersistentVolumeClaim>, Error> {
    let mut claims = Vec::new();
    if let Some(pvc) = pvcs.get_opt(&n.data_volume).await?
        && super::observe::volume_ownership(a, Some(&pvc)) == super::observe::VolumeOwnership::Ours
        && pvc.metadata.deletion_timestamp.is_none()
    {
        claims.push(pvc);
    }
    let selector = format!(
        "{}={},app.kubernetes.io/component=data",
        children::ASSISTANT_LABEL,
        n.base
    );
    let listed = pvcs.list(&ListParams::default().labels(&selector)).await?;
    let uid = a.uid().unwrap_or_default();
    claims.extend(
        listed
            .items
            .into_iter()
            .filter(|pvc| pvc.name_any() != n.data_volume && in_use_by(pvc, &uid)),
    );
    Ok(claims)
}

/// Whether a claim other than the desired one is still this Assistant's (uid `uid`): it
/// records that uid or is owned by it, is not retained, and is not being deleted.
pub fn in_use_by(pvc: &PersistentVolumeClaim, uid: &str) -> bool {
    let recorded = pvc
        .annotations()
        .get(children::ASSISTANT_UID_ANNOTATION)
        .map(String::as_str)
        == Some(uid);
    let owned = pvc.owner_references().iter().any(|o| o.uid == uid);
    !uid.is_empty()
        && (recorded || owned)
        && pvc.labels().get(RETAINED_LABEL).map(String::as_str) != Some("true")
        && pvc.metadata.deletion_timestamp.is_none()
}

/// Retains a claim in use (`onDelete: Retain`): no ownerReference to this Assistant, the
/// retained label and where it came from. Once only.
async fn retain(
    a: &Assistant,
    ns: &str,
    pvcs: &Api<PersistentVolumeClaim>,
    pvc: &PersistentVolumeClaim,
) -> Result<(), Error> {
    let claim = pvc.name_any();
    let uid = a.uid().unwrap_or_default();
    let owners: Vec<_> = pvc
        .owner_references()
        .iter()
        .filter(|o| o.uid != uid)
        .cloned()
        .collect();
    let already = pvc.labels().get(RETAINED_LABEL).map(String::as_str) == Some("true")
        && owners.len() == pvc.owner_references().len();
    if !already {
        let patch = json!({
            "metadata": {
                "ownerReferences": owners,
                "labels": {RETAINED_LABEL: "true"},
                "annotations": {
                    RETAINED_FROM_ANNOTATION: format!("{ns}/{}", a.name_any()),
                    RETAINED_OWNER_EMAIL_ANNOTATION: a.spec.owner.email,
                },
            }
        });
        pvcs.patch(&claim, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        info!(pvc = %claim, "volume retained");
    }
    Ok(())
}

/// How often a pending final snapshot is looked at again while the deletion waits for it.
const FINAL_SNAPSHOT_POLL: Duration = Duration::from_secs(15);
/// How often a deletion held by a failed final snapshot is looked at again (the skip
/// annotation, or a deleted failed snapshot, lets it go on).
const FINAL_SNAPSHOT_BLOCKED: Duration = Duration::from_secs(60);

/// Where the final snapshot stands, decided from the live object alone.
#[derive(Debug, Clone, PartialEq)]
pub enum FinalSnapshotStep {
    /// None exists yet: take it.
    Create,
    /// Being cut, within the deadline.
    Wait,
    /// readyToUse: the volume may go.
    Ready,
    /// Failed, or not ready past `readyDeadlineSeconds`: why.
    Failed(String),
}

/// The step for the newest final snapshot of the Assistant (`None`: there is none).
pub fn final_snapshot_step(
    newest: Option<&VolumeSnapshot>,
    now: Timestamp,
    ready_deadline: SignedDuration,
) -> FinalSnapshotStep {
    let Some(s) = newest else {
        return FinalSnapshotStep::Create;
    };
    let status = s.status.as_ref();
    if status.and_then(|st| st.ready_to_use) == Some(true) {
        return FinalSnapshotStep::Ready;
    }
    if let Some(error) = status.and_then(|st| st.error.as_ref()) {
        return FinalSnapshotStep::Failed(
            error
                .message
                .clone()
                .unwrap_or_else(|| "the snapshot controller reports an error".into()),
        );
    }
    let created = s.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match created {
        Some(created) if now.duration_since(created) >= ready_deadline => {
            FinalSnapshotStep::Failed(format!(
                "not ready after {} (created {created}); check the CSI driver / snapshot controller",
                humanize(ready_deadline)
            ))
        }
        _ => FinalSnapshotStep::Wait,
    }
}

fn humanize(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The newest final snapshot among an Assistant's snapshots (not being deleted).
pub fn newest_final(snapshots: &[VolumeSnapshot]) -> Option<&VolumeSnapshot> {
    snapshots
        .iter()
        .filter(|s| {
            s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str)
                == Some(SnapshotKind::Final.as_str())
                && s.metadata.deletion_timestamp.is_none()
        })
        .max_by_key(|s| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// What became of a claim's final snapshot in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum FinalSnapshot {
    /// Ready: the claim may go.
    Taken,
    /// None is wanted (config, skip annotation, backups off, no API, never bound).
    NotWanted,
    /// It failed and `onFailure: Proceed` goes on without it.
    Failed,
    /// The deletion waits (being cut, or held by a failure under `Block`).
    Wait(Action),
}

/// A final snapshot of the claim before it is deleted, when the operator config wants
/// one, backups are on for this client, the API is there, the claim is Bound and the
/// Assistant does not carry the skip annotation.
async fn final_snapshot(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    pvc: &PersistentVolumeClaim,
) -> Result<FinalSnapshot, Error> {
    let claim = pvc.name_any();
    let config = &ctx.config.backups.final_snapshot;
    if !config.enabled {
        return Ok(FinalSnapshot::NotWanted);
    }
    if a.annotations()
        .get(SKIP_FINAL_SNAPSHOT_ANNOTATION)
        .map(String::as_str)
        == Some("true")
    {
        info!(pvc = %claim, "deleting without a final snapshot ({SKIP_FINAL_SNAPSHOT_ANNOTATION})");
        return Ok(FinalSnapshot::NotWanted);
    }
    let policy = match crate::backup::effective_policy(a, &ctx.config) {
        Ok(Some(policy)) => policy,
        Ok(None) => {
            info!(pvc = %claim, "backups are off for this client: no final snapshot");
            return Ok(FinalSnapshot::NotWanted);
        }
        Err(e) => {
            let why = format!("the backup policy is invalid: {e}");
            return final_snapshot_failed(a, ctx, ns, &format!("of {claim}"), &why).await;
        }
    };
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        info!(pvc = %claim, "the volume was never bound: nothing to snapshot");
        return Ok(FinalSnapshot::NotWanted);
    }
    match ctx
        .snapshot_api
        .get(&ctx.client, ctx.clock.as_ref(), policy.class.as_deref())
        .await
    {
        ApiState::Available => {}
        ApiState::Unavailable => {
            warn!(pvc = %claim, "no VolumeSnapshot API: deleting the volume without a final snapshot");
            publish(
                ctx,
                a,
                EventType::Warning,
                "FinalSnapshotSkipped",
                format!(
                    "the cluster has no VolumeSnapshot API: {claim} is deleted without a final snapshot"
                ),
            )
            .await;
            return Ok(FinalSnapshot::NotWanted);
        }
        ApiState::ClassNotFound(class) => {
            let why = format!(
                "VolumeSnapshotClass \"{class}\" not found (operator config backups.volumeSnapshotClassName)"
            );
            return final_snapshot_failed(a, ctx, ns, &format!("of {claim}"), &why).await;
        }
    }
    let api: Api<VolumeSnapshot> = Api::namespaced(ctx.client.clone(), ns);
    let uid = a.uid().unwrap_or_default();
    let listed = api
        .list(&ListParams::default().labels(&format!("{ASSISTANT_UID_LABEL}={uid}")))
        .await
        .inspect_err(|e| invalidate_on_404(ctx, e))?;
    let now = ctx.clock.now();
    // This claim's: an Assistant with several claims in use has one final snapshot each.
    let of_claim: Vec<VolumeSnapshot> = listed
        .items
        .into_iter()
        .filter(|s| super::restore::source_claim(s).as_deref() == Some(claim.as_str()))
        .collect();
    let newest = newest_final(&of_claim);
    let deadline = policy.ready_deadline;
    match final_snapshot_step(newest, now, deadline) {
        FinalSnapshotStep::Ready => Ok(FinalSnapshot::Taken),
        FinalSnapshotStep::Wait => Ok(FinalSnapshot::Wait(Action::requeue(FINAL_SNAPSHOT_POLL))),
        FinalSnapshotStep::Failed(why) => {
            let name = newest.map(|s| s.name_any()).unwrap_or_default();
            final_snapshot_failed(a, ctx, ns, &name, &why).await
        }
        FinalSnapshotStep::Create => {
            let keep = SignedDuration::from_hours(i64::from(config.keep_days) * 24);
            let expires_at = now.checked_add(keep).unwrap_or(now);
            let snapshot = match crate::backup::build_snapshot(
                a,
                SnapshotKind::Final,
                &claim,
                now,
                policy.class.as_deref(),
                None,
                None,
                Some(expires_at),
            ) {
                Ok(s) => s,
                Err(e) => {
                    let why = format!("cannot build it: {e}");
                    return final_snapshot_failed(a, ctx, ns, &format!("of {claim}"), &why).await;
                }
            };
            let name = snapshot.name_any();
            match super::restore::create_snapshot(&ctx.client, ns, &snapshot).await {
                Ok(()) => {
                    ctx.metrics.observe_snapshot(SnapshotKind::Final, "created");
                    info!(pvc = %claim, snapshot = %name, expires_at = %expires_at, "took the final snapshot; the volume is deleted once it is ready");
                    Ok(FinalSnapshot::Wait(Action::requeue(FINAL_SNAPSHOT_POLL)))
                }
                Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
                    invalidate_on_404(ctx, &kube::Error::Api(e.clone()));
                    let why = format!("the API server refused it: {}", e.message);
                    final_snapshot_failed(a, ctx, ns, &name, &why).await
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// A final snapshot that failed: `Block` holds the deletion (BackupHealthy says why and
/// how to go on; its transition is the one Warning Event), `Proceed` goes on with a Warning.
async fn final_snapshot_failed(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    snapshot: &str,
    why: &str,
) -> Result<FinalSnapshot, Error> {
    let message = format!(
        "final snapshot {snapshot} failed: {why}; to delete without it annotate \
         {SKIP_FINAL_SNAPSHOT_ANNOTATION}=true"
    );
    match ctx.config.backups.final_snapshot.on_failure {
        FinalSnapshotFailure::Block => {
            warn!(%message, "deletion held by the final snapshot");
            let mut status = crate::reconciler::status::compute(
                a,
                &ctx.config,
                &Observed {
                    deleting: true,
                    now: Some(ctx.clock.now()),
                    ..Default::default()
                },
            );
            set_condition(
                &mut status,
                a.status.as_ref(),
                Condition {
                    type_: BACKUP_HEALTHY.into(),
                    status: "False".into(),
                    reason: "FinalSnapshotFailed".into(),
                    message,
                    observed_generation: a.metadata.generation,
                    last_transition_time: Time(ctx.clock.now()),
                },
            );
            write_status(a, ctx, ns, status).await?;
            Ok(FinalSnapshot::Wait(Action::requeue(FINAL_SNAPSHOT_BLOCKED)))
        }
        FinalSnapshotFailure::Proceed => {
            warn!(%message, "deleting without a good final snapshot (finalSnapshot.onFailure: Proceed)");
            publish(
                ctx,
                a,
                EventType::Warning,
                "FinalSnapshotFailed",
                format!("{message}; deleting anyway (finalSnapshot.onFailure: Proceed)"),
            )
            .await;
            Ok(FinalSnapshot::Failed)
        }
    }
}

/// Puts `c` in place of the condition of its type; it keeps its transition time while its
/// status is unchanged, so a held deletion writes its status once.
pub fn set_condition(
    status: &mut crate::api::AssistantStatus,
    old: Option<&crate::api::AssistantStatus>,
    mut c: Condition,
) {
    if let Some(previous) = old
        .into_iter()
        .flat_map(|s| s.conditions.iter())
        .find(|o| o.type_ == c.type_ && o.status == c.status)
    {
        c.last_transition_time = previous.last_transition_time.clone();
    }
    status.conditions.retain(|o| o.type_ != c.type_);
    status.conditions.push(c);
}

/// The Assistant's snapshots other than final ones (uid precondition), when the API is
/// there. When the final snapshot of a claim in `unsnapshotted` failed (`onFailure:
/// Proceed`), the newest ready snapshot (of that claim if there is one) is kept instead:
/// relabelled final with an expiry, so the client is never left without a backup and the
/// janitor deletes it when a final snapshot would have gone.
async fn delete_other_snapshots(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    unsnapshotted: &[String],
) -> Result<(), Error> {
    // The configured class, as every other caller asks: one cached answer, no flip.
    let class = ctx.config.backups.volume_snapshot_class_name.as_deref();
    if ctx
        .snapshot_api
        .get(&ctx.client, ctx.clock.as_ref(), class)
        .await
        == ApiState::Unavailable
    {
        return Ok(());
    }
    let api: Api<VolumeSnapshot> = Api::namespaced(ctx.client.clone(), ns);
    let uid = a.uid().unwrap_or_default();
    let listed = match api
        .list(&ListParams::default().labels(&format!("{ASSISTANT_UID_LABEL}={uid}")))
        .await
    {
        Ok(l) => l,
        Err(kube::Error::Api(e)) if e.code == 404 => {
            ctx.snapshot_api.invalidate();
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let others: Vec<&VolumeSnapshot> = listed
        .items
        .iter()
        .filter(|s| {
            s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str)
                != Some(SnapshotKind::Final.as_str())
                && s.metadata.deletion_timestamp.is_none()
        })
        .collect();
    // One kept in an earlier pass (relabelled, or a final snapshot that is ready) will do.
    let has_final = listed.items.iter().any(|s| {
        s.labels().get(SNAPSHOT_KIND_LABEL).map(String::as_str)
            == Some(SnapshotKind::Final.as_str())
            && s.metadata.deletion_timestamp.is_none()
            && s.status.as_ref().and_then(|st| st.ready_to_use) == Some(true)
    });
    let kept = if has_final {
        None
    } else {
        keep_in_place_of_final(&others, unsnapshotted)
    };
    if let Some(s) = kept {
        let name = s.name_any();
        let keep =
            SignedDuration::from_hours(i64::from(ctx.config.backups.final_snapshot.keep_days) * 24);
        let now = ctx.clock.now();
        let expires_at = now.checked_add(keep).unwrap_or(now);
        let patch = json!({
            "metadata": {
                "labels": {SNAPSHOT_KIND_LABEL: SnapshotKind::Final.as_str()},
                "annotations": {EXPIRES_AT_ANNOTATION: expires_at.to_string()},
            }
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        warn!(snapshot = %name, expires_at = %expires_at,
            "no final snapshot: kept the newest ready snapshot in its place (relabelled final)");
    }
    let mut deleted = Vec::new();
    for s in others {
        let name = s.name_any();
        if kept.is_some_and(|k| k.name_any() == name) {
            continue;
        }
        let params = DeleteParams::default().preconditions(Preconditions {
            uid: s.uid(),
            resource_version: None,
        });
        match api.delete(&name, &params).await {
            Ok(_) => deleted.push(name),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !deleted.is_empty() {
        info!(snapshots = ?deleted, "deleted the client's snapshots (onDelete: Delete; the final one is kept)");
    }
    Ok(())
}

/// The snapshot kept when a final snapshot failed: the newest ready one of a claim in
/// `unsnapshotted`, else the newest ready one at all (`None` when nothing failed).
pub fn keep_in_place_of_final<'a>(
    others: &[&'a VolumeSnapshot],
    unsnapshotted: &[String],
) -> Option<&'a VolumeSnapshot> {
    if unsnapshotted.is_empty() {
        return None;
    }
    let ready: Vec<&VolumeSnapshot> = others
        .iter()
        .copied()
        .filter(|s| s.status.as_ref().and_then(|st| st.ready_to_use) == Some(true))
        .collect();
    let newest = |of: &mut dyn Iterator<Item = &'a VolumeSnapshot>| {
        of.max_by_key(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.creation_time.clone())
                .or_else(|| s.metadata.creation_timestamp.clone())
                .map(|t| t.0)
        })
    };
    newest(
        &mut ready.iter().copied().filter(|s| {
            super::restore::source_claim(s).is_some_and(|c| unsnapshotted.contains(&c))
        }),
    )
    .or_else(|| newest(&mut ready.iter().copied()))
}

/// A 404 from a snapshot call: the CRDs went away; discovery asks again.
fn invalidate_on_404(ctx: &Context, e: &kube::Error) {
    if matches!(e, kube::Error::Api(s) if s.code == 404) {
        ctx.snapshot_api.invalidate();
    }
}

/// A Warning that the device's open invites may still be open (the device's removal ends
/// them when the tailnet credential is configured).
async fn invites_left_open(a: &Assistant, ctx: &Context, e: &InviteError) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InviteRevokeFailed".into(),
        note: Some(format!(
            "deleting without revoking the open device invite: {e}; if the device is not removed from the tailnet, delete the invite in the Tailscale admin console"
        )),
        action: "Cleanup".into(),
        secondary: None,
    };
    // Best effort, like every Event.
    if let Err(err) = recorder.publish(&event, &a.object_ref(&())).await {
        warn!(error = %err, "could not publish event");
    }
}

/// A deleted Assistant leaves the phase gauge and the backoff table.
fn forget(ctx: &Context, a: &Assistant) {
    let key = super::assistant_key(a);
    ctx.metrics.forget(&key);
    ctx.backoff.reset(&key);
    ctx.access_clock.forget(&key);
    ctx.backup_clock.forget(&key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::snapshot::{VolumeSnapshotError, VolumeSnapshotStatus};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn snapshot(name: &str, kind: SnapshotKind, created: &str) -> VolumeSnapshot {
        let mut s = VolumeSnapshot::default();
        s.metadata.name = Some(name.into());
        s.metadata.creation_timestamp = Some(Time(at(created)));
        s.metadata.labels =
            Some([(SNAPSHOT_KIND_LABEL.to_string(), kind.as_str().to_string())].into());
        s
    }

    #[test]
    fn the_final_snapshot_is_taken_awaited_and_failed_past_its_deadline() {
        let deadline = SignedDuration::from_hours(2);
        let now = at("2026-12-03T12:00:00Z");
        assert_eq!(
            final_snapshot_step(None, now, deadline),
            FinalSnapshotStep::Create
        );
        let mut s = snapshot(
            "alice-20261203-113000-final",
            SnapshotKind::Final,
            "2026-12-03T11:30:00Z",
        );
        assert_eq!(
            final_snapshot_step(Some(&s), now, deadline),
            FinalSnapshotStep::Wait
        );
        let late = at("2026-12-03T13:30:00Z");
        let FinalSnapshotStep::Failed(why) = final_snapshot_step(Some(&s), late, deadline) else {
            panic!("past the deadline");
        };
        assert!(
            why.starts_with("not ready after 2h (created 2026-12-03T11:30:00Z)"),
            "{why}"
        );
        s.status = Some(VolumeSnapshotStatus {
            error: Some(VolumeSnapshotError {
                message: Some("quota exceeded".into()),
                time: None,
            }),
            ..Default::default()
        });
        assert_eq!(
            final_snapshot_step(Some(&s), now, deadline),
            FinalSnapshotStep::Failed("quota exceeded".into())
        );
        s.status = Some(VolumeSnapshotStatus {
            ready_to_use: Some(true),
            ..Default::default()
        });
        assert_eq!(
            final_snapshot_step(Some(&s), late, deadline),
            FinalSnapshotStep::Ready
        );
    }

    #[test]
    fn only_final_snapshots_count_and_the_newest_wins() {
        let mut deleting = snapshot("c", SnapshotKind::Final, "2026-12-03T13:00:00Z");
        deleting.metadata.deletion_timestamp = Some(Time(at("2026-12-03T13:01:00Z")));
        let all = [
            snapshot("a", SnapshotKind::Final, "2026-12-03T10:00:00Z"),
            snapshot("b", SnapshotKind::Final, "2026-12-03T11:00:00Z"),
            snapshot("s", SnapshotKind::Scheduled, "2026-12-03T12:00:00Z"),
            deleting,
        ];
        assert_eq!(
            newest_final(&all).map(|s| s.name_any()).as_deref(),
            Some("b")
        );
        assert!(newest_final(&all[2..3]).is_none());
    }

    #[test]
    fn a_held_deletion_keeps_its_condition_time() {
        let c = |status: &str, t: &str| Condition {
            type_: BACKUP_HEALTHY.into(),
            status: status.into(),
            reason: "FinalSnapshotFailed".into(),
            message: "m".into(),
            observed_generation: None,
            last_transition_time: Time(at(t)),
        };
        let old = crate::api::AssistantStatus {
            conditions: vec![c("False", "2026-12-03T10:00:00Z")],
            ..Default::default()
        };
        let mut new = crate::api::AssistantStatus::default();
        set_condition(&mut new, Some(&old), c("False", "2026-12-03T11:00:00Z"));
        assert_eq!(new.conditions, old.conditions, "unchanged: no write");
        set_condition(&mut new, Some(&old), c("True", "2026-12-03T11:00:00Z"));
        assert_eq!(new.conditions.len(), 1);
        assert_eq!(
            new.conditions[0].last_transition_time,
            Time(at("2026-12-03T11:00:00Z"))
        );
    }

    #[test]
    fn a_claim_in_use_records_or_is_owned_by_the_assistant_and_is_not_retained() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let mut pvc = PersistentVolumeClaim::default();
        assert!(!in_use_by(&pvc, "uid-1"), "nobody's");
        pvc.metadata.owner_references = Some(vec![OwnerReference {
            uid: "uid-1".into(),
            ..Default::default()
        }]);
        assert!(
            in_use_by(&pvc, "uid-1"),
            "owned, from before uids were recorded"
        );
        assert!(!in_use_by(&pvc, "uid-2"));
        assert!(
            !in_use_by(&pvc, ""),
            "an Assistant without a uid owns nothing"
        );
        pvc.metadata.owner_references = None;
        pvc.metadata.annotations = Some(
            [(
                children::ASSISTANT_UID_ANNOTATION.to_string(),
                "uid-1".to_string(),
            )]
            .into(),
        );
        assert!(in_use_by(&pvc, "uid-1"), "recorded");
        pvc.metadata.labels = Some([(RETAINED_LABEL.to_string(), "true".to_string())].into());
        assert!(
            !in_use_by(&pvc, "uid-1"),
            "retained: kept by whoever keeps it"
        );
        pvc.metadata.labels = None;
        pvc.metadata.deletion_timestamp = Some(Time(at("2026-12-03T10:00:00Z")));
        assert!(!in_use_by(&pvc, "uid-1"), "being deleted");
    }

    #[test]
    fn a_failed_final_snapshot_keeps_the_newest_ready_one_of_its_claim() {
        use crate::api::snapshot::VolumeSnapshotStatus;
        let of = |name: &str, claim: &str, created: &str, ready: bool| {
            let mut s = snapshot(name, SnapshotKind::Scheduled, created);
            s.spec.source.persistent_volume_claim_name = Some(claim.into());
            s.status = Some(VolumeSnapshotStatus {
                ready_to_use: Some(ready),
                ..Default::default()
            });
            s
        };
        let all = [
            of("a", "alice-data", "2026-12-01T03:00:00Z", true),
            of("b", "alice-data", "2026-12-02T03:00:00Z", true),
            of("c", "alice-data", "2026-12-03T03:00:00Z", false),
            of("d", "alice-data-1a2b3c4d", "2026-12-03T04:00:00Z", true),
        ];
        let refs: Vec<&VolumeSnapshot> = all.iter().collect();
        let kept = |failed: &[&str]| {
            let failed: Vec<String> = failed.iter().map(|s| s.to_string()).collect();
            keep_in_place_of_final(&refs, &failed).map(|s| s.name_any())
        };
        assert_eq!(kept(&[]), None, "nothing failed: nothing kept");
        assert_eq!(
            kept(&["alice-data"]).as_deref(),
            Some("b"),
            "ready, of that claim"
        );
        assert_eq!(
            kept(&["other"]).as_deref(),
            Some("d"),
            "else the newest ready"
        );
    }
}
