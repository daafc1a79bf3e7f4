//! Deletes final snapshots past their `clawhost.dev/expires-at` (their Assistants are gone,
//! so no reconcile would). Runs hourly and once at start, on the leader only.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use tracing::{info, warn};

use super::super::Context;
use crate::api::SnapshotKind;
use crate::api::backup::{EXPIRES_AT_ANNOTATION, SNAPSHOT_KIND_LABEL};
use crate::api::snapshot::VolumeSnapshot;
use crate::backup::ApiState;

/// How often the janitor sweeps (and once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The janitor's selector: clawhost's final snapshots, whatever Assistant they were of.
pub fn final_selector() -> String {
    format!(
        "{SNAPSHOT_KIND_LABEL}={},app.kubernetes.io/managed-by=clawhost",
        SnapshotKind::Final.as_str()
    )
}

/// Whether a final snapshot is past its expiry at `now`. A missing or unreadable expiry
/// never expires: deleting a backup on a guess is worse than keeping one.
pub fn expired(s: &VolumeSnapshot, now: Timestamp) -> bool {
    s.metadata.deletion_timestamp.is_none()
        && s.annotations()
            .get(EXPIRES_AT_ANNOTATION)
            .and_then(|v| v.parse::<Timestamp>().ok())
            .is_some_and(|at| at < now)
}

/// One sweep over the watched namespaces (cluster-wide when none are configured): LIST
/// `clawhost.dev/snapshot-kind=final,app.kubernetes.io/managed-by=clawhost`, DELETE (uid
/// precondition) those expired at `ctx.clock.now()`. Returns how many were deleted. Does
/// nothing when the snapshot API is absent.
pub async fn sweep_once(ctx: &Context) -> Result<usize, kube::Error> {
    let class = ctx.config.backups.volume_snapshot_class_name.as_deref();
    if ctx
        .snapshot_api
        .get(&ctx.client, ctx.clock.as_ref(), class)
        .await
        == ApiState::Unavailable
    {
        return Ok(0);
    }
    let now = ctx.clock.now();
    let apis: Vec<Api<VolumeSnapshot>> = if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let params = ListParams::default().labels(&final_selector());
    let mut deleted = 0;
    for api in apis {
        let listed = match api.list(&params).await {
            Ok(l) => l,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                ctx.snapshot_api.invalidate();
                return Ok(deleted);
            }
            Err(e) => return Err(e),
        };
        for s in listed.items.iter().filter(|s| expired(s, now)) {
            let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
            let namespaced: Api<VolumeSnapshot> = Api::namespaced(ctx.client.clone(), &ns);
            let params = DeleteParams::default().preconditions(Preconditions {
                uid: s.uid(),
                resource_version: None,
            });
            match namespaced.delete(&name, &params).await {
                Ok(_) => {
                    deleted += 1;
                    ctx.metrics.observe_snapshot(SnapshotKind::Final, "expired");
                    info!(namespace = %ns, snapshot = %name,
                        expires_at = s.annotations().get(EXPIRES_AT_ANNOTATION).map(String::as_str).unwrap_or_default(),
                        "deleted an expired final snapshot");
                }
                // Gone already, or replaced by another object of that name.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

/// The janitor's loop: a sweep at once, then every [`SWEEP_EVERY`]; never returns (the
/// runtime drops it with the controllers). Runs only where the controller runs (after the
/// leader lease is acquired). A sweep cut short is simply done again.
pub async fn run(ctx: std::sync::Arc<Context>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = sweep_once(&ctx).await {
            warn!(error = %e, "could not sweep expired final snapshots; trying again in an hour");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn final_snapshot(expires_at: Option<&str>) -> VolumeSnapshot {
        let mut s = VolumeSnapshot::default();
        s.metadata.annotations =
            expires_at.map(|at| [(EXPIRES_AT_ANNOTATION.to_string(), at.to_string())].into());
        s
    }

    #[test]
    fn only_a_readable_past_expiry_expires() {
        let now: Timestamp = "2027-01-02T00:00:00Z".parse().unwrap();
        assert!(expired(&final_snapshot(Some("2027-01-01T00:00:00Z")), now));
        assert!(!expired(&final_snapshot(Some("2027-01-03T00:00:00Z")), now));
        assert!(!expired(&final_snapshot(Some("2027-01-02T00:00:00Z")), now));
        assert!(!expired(&final_snapshot(Some("next month")), now));
        assert!(!expired(&final_snapshot(None), now));
        let mut deleting = final_snapshot(Some("2027-01-01T00:00:00Z"));
        deleting.metadata.deletion_timestamp = Some(Time(now));
        assert!(!expired(&deleting, now));
    }

    #[test]
    fn the_selector_names_final_snapshots_of_clawhost() {
        assert_eq!(
            final_selector(),
            "clawhost.dev/snapshot-kind=final,app.kubernetes.io/managed-by=clawhost"
        );
    }
}
