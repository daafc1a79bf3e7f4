//! Ordered cleanup when an Assistant is deleted: stop the gateway, remove the tailnet
//! device, honour `storage.onDelete`, then release the finalizer. Every step is idempotent;
//! a failed step is retried and nothing after it runs (except a refused invite credential,
//! which may never be fixed: reported, and the device's removal ends its invites). Under `Retain` the volume is never
//! deleted, whatever fails (it has no ownerReference to begin with).

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use serde_json::json;
use tracing::{info, warn};

use super::status::Observed;
use super::{Context, Error, FINALIZER, api_resource, apply, names, tailnet, write_status};
use crate::api::{Assistant, OnDelete};
use crate::children::{self, RETAINED_LABEL, typed_value};
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

    // 2. Delete the device's open invites, so nobody can accept a share of a device that is
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

    // 3. The volume: keep it (unlinked, labelled) or delete it, as the client chose.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let ours = |pvc: &PersistentVolumeClaim| {
        super::observe::volume_ownership(a, Some(pvc)) == super::observe::VolumeOwnership::Ours
    };
    // Another Assistant's volume (retained under this name) is never touched here.
    if let Some(pvc) = pvcs.get_opt(&n.data_volume).await?.filter(ours) {
        match a.storage().on_delete {
            OnDelete::Retain => {
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
                    pvcs.patch(
                        &n.data_volume,
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
                    info!(pvc = %n.data_volume, "volume retained");
                }
            }
            OnDelete::Delete => match pvcs.delete(&n.data_volume, &DeleteParams::default()).await {
                Ok(_) => info!(pvc = %n.data_volume, "volume deleted (onDelete: Delete)"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
        }
    }

    // 4. Release the Assistant. The test op refuses the patch if the finalizers changed
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
