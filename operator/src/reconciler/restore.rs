//! In-place restore (docs/backups.md): `spec.storage.restoreFrom` gives the data claim a new
//! name, so the claim the Assistant used so far is switched away from, never deleted. Before
//! the normal apply creates the new claim from the snapshot, this step retains the outgoing
//! claim (labelled, unlinked from the Assistant, `replaced-by` the new one). Once no pod
//! mounts it any more, a best-effort pre-restore snapshot of it is taken (retried on later
//! passes until it exists), so a restore can itself be rolled back. Nothing here deletes a
//! claim or writes the Assistant's spec.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::observe::Observation;
use super::{Context, Error, api_resource, names};
use crate::api::backup::{
    ASSISTANT_UID_LABEL, REPLACED_BY_ANNOTATION, SNAPSHOT_KIND_LABEL, SOURCE_CLAIM_ANNOTATION,
};
use crate::api::snapshot::VolumeSnapshot;
use crate::api::{Assistant, SnapshotKind};
use crate::backup::ApiState;
use crate::children::kinds::ChildId;
use crate::children::{
    ASSISTANT_LABEL, ASSISTANT_UID_ANNOTATION, RETAINED_FROM_ANNOTATION, RETAINED_LABEL,
    RETAINED_OWNER_EMAIL_ANNOTATION,
};

/// How long after the new claim was created the pre-restore snapshot of the claim it
/// replaced is still tried (each pass LISTs the claims meanwhile).
pub const PRE_RESTORE_RETRY_FOR: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// One pass, for an Assistant whose spec is valid: when `restoreFrom` is set and its claim
/// does not exist yet, every other live claim of this Assistant is retained first. Runs
/// before `apply_children`; an error stops the reconcile before the new claim is applied.
/// Then (this pass or a later one, within [`PRE_RESTORE_RETRY_FOR`] of the new claim) each
/// claim retained for the current one gets its pre-restore snapshot once the pod no longer
/// mounts it.
pub async fn run(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    observed: &Observation,
) -> Result<(), Error> {
    let Some(from) = a.storage().restore_from else {
        return Ok(());
    };
    let n = names(a);
    let uid = a.uid().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!(
        "{ASSISTANT_LABEL}={},app.kubernetes.io/component=data",
        n.base
    );
    // The new claim is applied only after the outgoing one was retained (same reconcile,
    // and an error stops it), so once it exists there is nothing left to switch away from.
    if let Some(live) = observed.live.get(ChildId::DataVolume) {
        let created = live
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if created.is_some_and(|c| ctx.clock.now() < c + PRE_RESTORE_RETRY_FOR) {
            let claims = pvcs.list(&ListParams::default().labels(&selector)).await?;
            let replaced = replaced_claims(&claims.items, &uid, &n.data_volume);
            pre_restore_snapshots(a, ctx, ns, observed, &replaced).await;
        }
        return Ok(());
    }
    let claims = pvcs.list(&ListParams::default().labels(&selector)).await?;
    let outgoing = outgoing_claims(&claims.items, &uid, &n.data_volume);
    for pvc in &outgoing {
        let claim = pvc.name_any();
        pvcs.patch(
            &claim,
            &PatchParams::default(),
            &Patch::Merge(retain_patch(a, pvc, &n.data_volume)),
        )
        .await?;
        info!(pvc = %claim, new = %n.data_volume, snapshot = %from.volume_snapshot_name,
            "retained the outgoing volume of an in-place restore");
        publish(
            ctx,
            a,
            EventType::Normal,
            "VolumeRetainedForRestore",
            format!(
                "kept {claim} (retained, never deleted by the operator); the volume is now {} \
                 from the snapshot {}",
                n.data_volume, from.volume_snapshot_name
            ),
        )
        .await;
    }
    let retained: Vec<String> = outgoing.iter().map(|c| c.name_any()).collect();
    pre_restore_snapshots(a, ctx, ns, observed, &retained).await;
    Ok(())
}

/// Claims this Assistant's restores retained in favour of `current` (uid recorded,
/// `replaced-by` it, not being deleted).
pub fn replaced_claims(
    claims: &[PersistentVolumeClaim],
    assistant_uid: &str,
    current: &str,
) -> Vec<String> {
    claims
        .iter()
        .filter(|pvc| {
            !assistant_uid.is_empty()
                && pvc
                    .annotations()
                    .get(ASSISTANT_UID_ANNOTATION)
                    .map(String::as_str)
                    == Some(assistant_uid)
                && pvc
                    .annotations()
                    .get(REPLACED_BY_ANNOTATION)
                    .map(String::as_str)
                    == Some(current)
                && pvc.metadata.deletion_timestamp.is_none()
        })
        .map(|pvc| pvc.name_any())
        .collect()
}

/// Whether the observed pod mounts `claim` (then a snapshot of it would be of a volume in
/// use: it waits for the pod to go or to mount the new claim).
pub fn pod_mounts(observed: &Observation, claim: &str) -> bool {
    observed
        .state
        .pod
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| {
            vs.iter().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
        })
}

/// The pre-restore snapshots of `claims` no pod mounts any more.
async fn pre_restore_snapshots(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    observed: &Observation,
    claims: &[String],
) {
    for claim in claims {
        if pod_mounts(observed, claim) {
            tracing::debug!(
                pvc = %claim,
                "the pre-restore snapshot waits until the pod no longer mounts the volume"
            );
            continue;
        }
        pre_restore_snapshot(a, ctx, ns, claim).await;
    }
}

/// Live claims of this Assistant (by its uid) other than `desired`, not yet retained and not
/// being deleted: what an in-place restore switches away from.
pub fn outgoing_claims<'a>(
    claims: &'a [PersistentVolumeClaim],
    assistant_uid: &str,
    desired: &str,
) -> Vec<&'a PersistentVolumeClaim> {
    claims
        .iter()
        .filter(|pvc| {
            pvc.annotations()
                .get(ASSISTANT_UID_ANNOTATION)
                .map(String::as_str)
                == Some(assistant_uid)
                && !assistant_uid.is_empty()
                && pvc.labels().get(RETAINED_LABEL).map(String::as_str) != Some("true")
                && pvc.metadata.deletion_timestamp.is_none()
                && pvc.name_any() != desired
        })
        .collect()
}

/// The merge patch that retains an outgoing claim: the retained marks of a deleted
/// Assistant's volume, no ownerReference to this Assistant (an `onDelete: Delete` claim has
/// one: the garbage collector must never see it again), and the claim that replaced it.
pub fn retain_patch(a: &Assistant, pvc: &PersistentVolumeClaim, new_claim: &str) -> Value {
    let uid = a.uid().unwrap_or_default();
    let owners: Vec<_> = pvc
        .owner_references()
        .iter()
        .filter(|o| o.uid != uid)
        .cloned()
        .collect();
    json!({
        "metadata": {
            "ownerReferences": owners,
            "labels": {RETAINED_LABEL: "true"},
            "annotations": {
                RETAINED_FROM_ANNOTATION: format!(
                    "{}/{}",
                    a.namespace().unwrap_or_default(),
                    a.name_any()
                ),
                RETAINED_OWNER_EMAIL_ANNOTATION: a.spec.owner.email,
                REPLACED_BY_ANNOTATION: new_claim,
            },
        }
    })
}

/// A snapshot of the outgoing claim, so rolling back the restore is an ordinary restore.
/// Best effort and not waited for: the volume itself is kept whatever happens here.
async fn pre_restore_snapshot(a: &Assistant, ctx: &Context, ns: &str, claim: &str) {
    let policy = match crate::backup::effective_policy(a, &ctx.config) {
        Ok(Some(p)) => p,
        Ok(None) => {
            // Said at debug: a pass retries the pre-restore snapshot for a day.
            tracing::debug!(
                pvc = claim,
                "backups are off for this client: no pre-restore snapshot"
            );
            return;
        }
        Err(e) => {
            warn!(error = %e, "no pre-restore snapshot: the backup policy is invalid");
            return;
        }
    };
    let api_state = ctx
        .snapshot_api
        .get(&ctx.client, ctx.clock.as_ref(), policy.class.as_deref())
        .await;
    if api_state != ApiState::Available {
        tracing::debug!(pvc = claim, state = ?api_state, "no pre-restore snapshot: snapshots are unavailable");
        return;
    }
    match ensure_pre_restore_snapshot(a, ctx, ns, claim, policy.class.as_deref()).await {
        Ok(Some(name)) => {
            info!(pvc = claim, snapshot = %name, "took a pre-restore snapshot");
            ctx.metrics
                .observe_snapshot(SnapshotKind::PreRestore, "created");
        }
        Ok(None) => {}
        Err(e) => {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                ctx.snapshot_api.invalidate();
            }
            warn!(pvc = claim, error = %e, "could not take a pre-restore snapshot; the volume is retained regardless");
        }
    }
}

/// Creates the pre-restore snapshot of `claim` unless one exists; its name when created.
async fn ensure_pre_restore_snapshot(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    claim: &str,
    class: Option<&str>,
) -> Result<Option<String>, kube::Error> {
    let snapshots: Api<VolumeSnapshot> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!(
        "{ASSISTANT_UID_LABEL}={},{SNAPSHOT_KIND_LABEL}={}",
        a.uid().unwrap_or_default(),
        SnapshotKind::PreRestore.as_str()
    );
    let existing = snapshots
        .list(&ListParams::default().labels(&selector))
        .await?;
    if existing
        .items
        .iter()
        .any(|s| source_claim(s).as_deref() == Some(claim))
    {
        return Ok(None);
    }
    let snapshot = match crate::backup::build_snapshot(
        a,
        SnapshotKind::PreRestore,
        claim,
        ctx.clock.now(),
        class,
        None,
        None,
        None,
    ) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot build the pre-restore snapshot");
            return Ok(None);
        }
    };
    let name = snapshot.name_any();
    create_snapshot(&ctx.client, ns, &snapshot).await?;
    Ok(Some(name))
}

/// The claim a snapshot was taken of: its annotation, else its spec.
pub fn source_claim(s: &VolumeSnapshot) -> Option<String> {
    s.annotations()
        .get(SOURCE_CLAIM_ANNOTATION)
        .cloned()
        .or_else(|| s.spec.source.persistent_volume_claim_name.clone())
}

/// Creates a VolumeSnapshot. Sent as a dynamic object, because the typed view omits
/// `apiVersion` and `kind` (the API server requires both). A 409 (already there: a retry, a
/// second replica) is success.
pub(crate) async fn create_snapshot(
    client: &kube::Client,
    ns: &str,
    snapshot: &VolumeSnapshot,
) -> Result<(), kube::Error> {
    let object: DynamicObject =
        serde_json::from_value(snapshot.to_value()).map_err(kube::Error::SerdeError)?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource::<VolumeSnapshot>());
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// An Event on the Assistant; best effort, like every Event.
pub(crate) async fn publish(
    ctx: &Context,
    a: &Assistant,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &a.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn assistant() -> Assistant {
        let mut a = crate::testing::assistant("alice");
        a.metadata.namespace = Some("clients".into());
        a.metadata.uid = Some("uid-1".into());
        a
    }

    fn claim(name: &str, uid: &str, retained: bool) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some([(ASSISTANT_UID_ANNOTATION.to_string(), uid.to_string())].into()),
                labels: retained.then(|| [(RETAINED_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn outgoing_claims_are_this_assistants_live_other_claims() {
        let claims = [
            claim("alice-data", "uid-1", false),
            claim("alice-data-1a2b3c4d", "uid-1", false),
            claim("alice-data-old", "uid-1", true),
            claim("alice-data-theirs", "uid-2", false),
        ];
        let names: Vec<String> = outgoing_claims(&claims, "uid-1", "alice-data-1a2b3c4d")
            .into_iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(names, ["alice-data"]);
        // An Assistant without a uid (offline) owns nothing.
        assert!(outgoing_claims(&claims, "", "x").is_empty());
    }

    #[test]
    fn retain_patch_unlinks_marks_and_names_the_new_claim() {
        let a = assistant();
        let mut pvc = claim("alice-data", "uid-1", false);
        pvc.metadata.owner_references = Some(vec![
            OwnerReference {
                uid: "uid-1".into(),
                name: "alice".into(),
                ..Default::default()
            },
            OwnerReference {
                uid: "other".into(),
                name: "keeper".into(),
                ..Default::default()
            },
        ]);
        let p = retain_patch(&a, &pvc, "alice-data-1a2b3c4d");
        let owners = p["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0]["uid"], "other");
        assert_eq!(p["metadata"]["labels"][RETAINED_LABEL], "true");
        let ann = &p["metadata"]["annotations"];
        assert_eq!(ann[REPLACED_BY_ANNOTATION], "alice-data-1a2b3c4d");
        assert_eq!(ann[RETAINED_FROM_ANNOTATION], "clients/alice");
        assert_eq!(ann[RETAINED_OWNER_EMAIL_ANNOTATION], a.spec.owner.email);
    }

    #[test]
    fn source_claim_prefers_the_annotation() {
        let mut s = VolumeSnapshot::default();
        s.spec.source.persistent_volume_claim_name = Some("from-spec".into());
        assert_eq!(source_claim(&s).as_deref(), Some("from-spec"));
        s.metadata.annotations = Some(
            [(
                SOURCE_CLAIM_ANNOTATION.to_string(),
                "from-annotation".to_string(),
            )]
            .into(),
        );
        assert_eq!(source_claim(&s).as_deref(), Some("from-annotation"));
    }
}
