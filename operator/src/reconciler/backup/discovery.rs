//! Whether the cluster has the VolumeSnapshot API (and the configured class): asked once,
//! re-asked at most every 10 minutes while missing, one log line per change.

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::api::snapshot::{SNAPSHOT_API_VERSION, SNAPSHOT_GROUP, SNAPSHOT_VERSION};
use crate::backup::ApiState;
use crate::clock::Clock;

/// How long a missing API (or class) is believed before asking again.
pub const RECHECK: SignedDuration = SignedDuration::from_mins(10);

/// A tokio mutex: the answer is held across the discovery call, so reconciles running at
/// once wait for one question instead of each asking.
#[derive(Default)]
pub struct SnapshotApi {
    state: Mutex<Option<Checked>>,
}

struct Checked {
    at: Timestamp,
    api: ApiState,
    /// The class asked about, so a changed config (tests) asks again.
    class: Option<String>,
}

impl SnapshotApi {
    /// The cached answer. The first call (and, while Unavailable or ClassNotFound, at most
    /// every 10 min) asks the server for the `snapshot.storage.k8s.io/v1` group's resources
    /// (404 or no `volumesnapshots` → Unavailable), then, when `class` is set, GETs that
    /// VolumeSnapshotClass (404 → ClassNotFound). Logs one line per change of state.
    pub async fn get(
        &self,
        client: &kube::Client,
        clock: &dyn Clock,
        class: Option<&str>,
    ) -> ApiState {
        let mut state = self.state.lock().await;
        let now = clock.now();
        if let Some(c) = state.as_ref() {
            let fresh = c.api == ApiState::Available || now < c.at + RECHECK;
            if fresh && c.class.as_deref() == class {
                return c.api.clone();
            }
            // Only the API is asked about, and the answer about a class found it: that
            // answer stays (asking again would replace it, and flip the state back and
            // forth with the callers that name the class).
            if class.is_none() && c.class.is_some() && c.api != ApiState::Unavailable {
                return ApiState::Available;
            }
        }
        let previous = state.as_ref().map(|c| c.api.clone());
        let api = match ask(client, class).await {
            Ok(api) => api,
            // The server could not answer (transport, 5xx): keep what was known, and do not
            // cache a guess; a reconcile later asks again.
            Err(e) => {
                // Not a change of state: the reconcile's own calls report an unreachable server.
                tracing::debug!(error = %e, "could not ask the API server whether it has the VolumeSnapshot API; retrying later");
                return previous.unwrap_or(ApiState::Unavailable);
            }
        };
        if previous.as_ref() != Some(&api) {
            log_change(previous.as_ref(), &api);
        }
        *state = Some(Checked {
            at: now,
            api: api.clone(),
            class: class.map(str::to_string),
        });
        api
    }

    /// A 404 from a volumesnapshots call (the CRD was removed): ask again on the next call.
    pub fn invalidate(&self) {
        // Never blocks for long: holders only keep the lock for one discovery call. If it is
        // held right now, the holder is asking anyway.
        if let Ok(mut state) = self.state.try_lock() {
            *state = None;
        }
    }
}

fn log_change(previous: Option<&ApiState>, now: &ApiState) {
    match now {
        ApiState::Unavailable => warn!(
            "no VolumeSnapshot API in the cluster: backups are off until it is installed (checked again every 10 min); everything else works"
        ),
        ApiState::ClassNotFound(class) => warn!(
            class = %class,
            "VolumeSnapshotClass {class:?} not found (operator config backups.volumeSnapshotClassName): no snapshots are taken until it exists (checked again every 10 min)"
        ),
        ApiState::Available if previous.is_some() => {
            info!("the VolumeSnapshot API is available: backups are on")
        }
        ApiState::Available => info!("the cluster has the VolumeSnapshot API"),
    }
}

async fn ask(client: &kube::Client, class: Option<&str>) -> Result<ApiState, kube::Error> {
    let resources = match client.list_api_group_resources(SNAPSHOT_API_VERSION).await {
        Ok(list) => list,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(ApiState::Unavailable),
        Err(e) => return Err(e),
    };
    if !resources
        .resources
        .iter()
        .any(|r| r.name == "volumesnapshots")
    {
        return Ok(ApiState::Unavailable);
    }
    let Some(class) = class else {
        return Ok(ApiState::Available);
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &class_resource());
    match api.get_opt(class).await? {
        Some(_) => Ok(ApiState::Available),
        None => Ok(ApiState::ClassNotFound(class.to_string())),
    }
}

/// `snapshot.storage.k8s.io/v1` VolumeSnapshotClass (cluster-scoped).
fn class_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(SNAPSHOT_GROUP, SNAPSHOT_VERSION, "VolumeSnapshotClass"),
        "volumesnapshotclasses",
    )
}
