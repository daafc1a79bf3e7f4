//! The kube implementation of [`Cluster`]: direct API calls, and a watch cache of the
//! Assistants for listing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde_json::Value;

use super::{
    Cluster, ClusterError, EventInfo, FIELD_MANAGER, RetainedClaim, gateway_pod_name,
    sort_newest_first,
};
use crate::api::snapshot::VolumeSnapshot;
use crate::api::{
    ASSISTANT_UID_LABEL, Assistant, REPLACED_BY_ANNOTATION, RESTORED_FROM_ANNOTATION,
};
use crate::backup::SnapshotInfo;
use crate::children::gateway_statefulset::GATEWAY_CONTAINER;
use crate::children::{
    ASSISTANT_LABEL, ASSISTANT_UID_ANNOTATION, ChildNames, RETAINED_FROM_ANNOTATION,
    RETAINED_LABEL, RETAINED_OWNER_EMAIL_ANNOTATION,
};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

pub struct KubeCluster {
    client: Client,
    /// Last connection failure; cleared by any successful call.
    last_error: Arc<Mutex<Option<String>>>,
    store: Option<reflector::Store<Assistant>>,
    store_ready: Arc<AtomicBool>,
    watch_health: Arc<Mutex<WatchHealth>>,
    /// How long the watch may fail before its cache counts as stale: kube's watcher
    /// retries and re-lists on its own, and that must not flip the console to "unreachable".
    watch_grace: Duration,
}

/// Default of [`KubeCluster::with_watch`]'s grace: a few watcher back-off retries.
pub const WATCH_GRACE: Duration = Duration::from_secs(10);

/// Longer than kube's default watcher back-off (30 s at most): once the API server answers
/// again, the watcher has resumed within this (replaying what changed since its last
/// resource version) unless it reported a new error.
const WATCH_RESUME: Duration = Duration::from_secs(35);

/// A resumed watch yields nothing until an Assistant changes, so recovery is also judged by
/// the API server answering direct lists.
#[derive(Debug, Default)]
struct WatchHealth {
    /// Since when the watch has been failing, and the last error; `None` while healthy.
    failing_since: Option<Instant>,
    error: String,
    /// While failing: since when direct lists succeed again.
    reachable_since: Option<Instant>,
}

/// Whether the watch cache can be served as the cluster's current state.
enum Cache {
    Current,
    /// The watch has failed for longer than the grace: list directly (or fail).
    Stale(String),
}

/// Watch errors that are part of normal operation: a 410 "too old resource version" makes
/// kube's watcher re-list, which is not an outage.
fn is_routine_watch_error(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(s) => s.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 410,
        _ => false,
    }
}

impl KubeCluster {
    /// Direct API calls only (tests with a mocked client).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            last_error: Arc::new(Mutex::new(None)),
            store: None,
            store_ready: Arc::new(AtomicBool::new(false)),
            watch_health: Arc::new(Mutex::new(WatchHealth::default())),
            watch_grace: WATCH_GRACE,
        }
    }

    /// Also watches Assistants into a local cache, so listing 10,000 clients costs no API
    /// call per page view. Must be called inside a Tokio runtime.
    pub fn with_watch(client: Client) -> Self {
        Self::with_watch_grace(client, WATCH_GRACE)
    }

    /// [`KubeCluster::with_watch`] with how long the watch may fail before the cache counts
    /// as stale (tests use a short one).
    pub fn with_watch_grace(client: Client, grace: Duration) -> Self {
        let mut me = Self::new(client.clone());
        me.watch_grace = grace;
        let health = me.watch_health.clone();
        let (reader, writer) = reflector::store::<Assistant>();
        let api: Api<Assistant> = Api::all(client);
        let last_error = me.last_error.clone();
        let ready = me.store_ready.clone();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        if matches!(ev, watcher::Event::InitDone) {
                            ready.store(true, Ordering::Relaxed);
                        }
                        *health.lock().expect("lock") = WatchHealth::default();
                        *last_error.lock().expect("lock") = None;
                    }
                    Err(e) if is_routine_watch_error(&e) => {
                        tracing::debug!(error = %e, "Assistant watch re-lists");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Assistant watch failed");
                        let mut h = health.lock().expect("lock");
                        h.failing_since.get_or_insert_with(Instant::now);
                        h.error = e.to_string();
                        h.reachable_since = None;
                    }
                }
            }
        });
        me.store = Some(reader);
        me
    }

    fn map_err(&self, e: kube::Error) -> ClusterError {
        match e {
            kube::Error::Api(s) => {
                *self.last_error.lock().expect("lock") = None;
                match s.code {
                    404 => ClusterError::NotFound,
                    409 if s.reason == "AlreadyExists" => ClusterError::AlreadyExists(s.message),
                    _ => ClusterError::Rejected(if s.message.is_empty() {
                        format!("HTTP {}", s.code)
                    } else {
                        s.message
                    }),
                }
            }
            other => {
                let msg = other.to_string();
                *self.last_error.lock().expect("lock") = Some(msg.clone());
                ClusterError::Unreachable(msg)
            }
        }
    }

    fn cache(&self) -> Cache {
        let mut h = self.watch_health.lock().expect("lock");
        let Some(since) = h.failing_since else {
            return Cache::Current;
        };
        if since.elapsed() < self.watch_grace {
            return Cache::Current;
        }
        if h.reachable_since
            .is_some_and(|r| r.elapsed() >= WATCH_RESUME)
        {
            *h = WatchHealth::default();
            return Cache::Current;
        }
        Cache::Stale(format!(
            "the Assistant watch has been failing for {} s: {}",
            since.elapsed().as_secs(),
            h.error
        ))
    }

    /// Why the cluster's state is unknown: the watch is stale and the API server has not
    /// answered since.
    fn watch_stale(&self) -> Option<String> {
        match self.cache() {
            Cache::Stale(why)
                if self
                    .watch_health
                    .lock()
                    .expect("lock")
                    .reachable_since
                    .is_none() =>
            {
                Some(why)
            }
            _ => None,
        }
    }

    fn ok<T>(&self, v: T) -> T {
        *self.last_error.lock().expect("lock") = None;
        v
    }

    /// Records the outcome for the reachability banner and maps the error.
    fn settle<T>(&self, r: Result<T, kube::Error>) -> Result<(), ClusterError> {
        r.map(|_| self.ok(())).map_err(|e| self.map_err(e))
    }
}

fn event_info(e: Event) -> EventInfo {
    let last = e
        .last_timestamp
        .map(|t| t.0)
        .or(e.event_time.map(|t| t.0))
        .or(e.first_timestamp.map(|t| t.0));
    EventInfo {
        type_: e.type_.unwrap_or_default(),
        reason: e.reason.unwrap_or_default(),
        message: e.message.unwrap_or_default(),
        object: format!(
            "{}/{}",
            e.involved_object.kind.unwrap_or_default(),
            e.involved_object.name.unwrap_or_default()
        ),
        count: e.count.unwrap_or(1),
        last_seen: last.map(|t| t.to_string()),
    }
}

impl Cluster for KubeCluster {
    fn health(&self) -> Option<String> {
        self.last_error
            .lock()
            .expect("lock")
            .clone()
            .or_else(|| self.watch_stale())
    }

    fn last_known(&self) -> Vec<Arc<Assistant>> {
        self.store.as_ref().map(|s| s.state()).unwrap_or_default()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>> {
        async move {
            let cached = match &self.store {
                Some(store) if self.store_ready.load(Ordering::Relaxed) => Some(store),
                _ => None,
            };
            // A cache the watch no longer updates is not the cluster's state: then only a
            // direct list is.
            let stale = match (cached, self.cache()) {
                (Some(store), Cache::Current) => return Ok(store.state()),
                (Some(_), Cache::Stale(_)) => true,
                (None, _) => false,
            };
            let api: Api<Assistant> = Api::all(self.client.clone());
            match api.list(&ListParams::default()).await {
                Ok(l) => {
                    if stale {
                        self.watch_health
                            .lock()
                            .expect("lock")
                            .reachable_since
                            .get_or_insert_with(Instant::now);
                    }
                    Ok(self.ok(l.items.into_iter().map(Arc::new).collect()))
                }
                Err(e) => Err(self.map_err(e)),
            }
        }
        .boxed()
    }

    fn get<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assistant>, ClusterError>> {
        async move {
            let api: Api<Assistant> = Api::namespaced(self.client.clone(), ns);
            match api.get_opt(name).await {
                Ok(a) => Ok(self.ok(a)),
                Err(e) => Err(self.map_err(e)),
            }
        }
        .boxed()
    }

    fn create<'a>(&'a self, a: &'a Assistant) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        async move {
            let ns = a.metadata.namespace.as_deref().unwrap_or("default");
            let api: Api<Assistant> = Api::namespaced(self.client.clone(), ns);
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&pp, a).await {
                Ok(a) => Ok(self.ok(a)),
                Err(e) => Err(self.map_err(e)),
            }
        }
        .boxed()
    }

    fn patch<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        patch: Value,
    ) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        async move {
            let api: Api<Assistant> = Api::namespaced(self.client.clone(), ns);
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.patch(name, &pp, &Patch::Merge(&patch)).await {
                Ok(a) => Ok(self.ok(a)),
                Err(e) => Err(self.map_err(e)),
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, ns: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            let api: Api<Assistant> = Api::namespaced(self.client.clone(), ns);
            self.settle(api.delete(name, &DeleteParams::default()).await)
        }
        .boxed()
    }

    fn create_secret<'a>(&'a self, s: &'a Secret) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            self.settle(api.create(&pp, s).await)
        }
        .boxed()
    }

    fn patch_secret_key<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            let patch = serde_json::json!({ "data": { key: b64(value) } });
            self.settle(api.patch(name, &pp, &Patch::Merge(&patch)).await)
        }
        .boxed()
    }

    fn events<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<EventInfo>, ClusterError>> {
        async move {
            let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
            let mut out = Vec::new();
            // The data volume's events say why a pod waits (no storage class, quota); after
            // an in-place restore the volume is the claim made from the snapshot.
            let volume = self
                .store
                .as_ref()
                .and_then(|st| st.get(&reflector::ObjectRef::new(name).within(ns)))
                .map(|a| ChildNames::for_assistant(&a).data_volume)
                .unwrap_or_else(|| ChildNames::new(name).data_volume);
            for object in [name.to_string(), gateway_pod_name(name), volume] {
                let lp = ListParams::default().fields(&format!("involvedObject.name={object}"));
                match api.list(&lp).await {
                    Ok(l) => out.extend(l.items.into_iter().map(event_info)),
                    Err(e) => return Err(self.map_err(e)),
                }
            }
            out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
            out.truncate(25);
            Ok(self.ok(out))
        }
        .boxed()
    }

    fn gateway_log<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        lines: i64,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>> {
        async move {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let lp = LogParams {
                container: Some(GATEWAY_CONTAINER.into()),
                tail_lines: Some(lines),
                // A runaway line must not make the page huge.
                limit_bytes: Some(64 * 1024),
                ..Default::default()
            };
            match api.logs(&gateway_pod_name(name), &lp).await {
                Ok(s) => Ok(self.ok(Some(s))),
                Err(e) => match self.map_err(e) {
                    ClusterError::NotFound => Ok(None),
                    // A pod still starting has no log yet.
                    ClusterError::Rejected(m) if m.contains("waiting to start") => Ok(None),
                    e => Err(e),
                },
            }
        }
        .boxed()
    }

    fn snapshots<'a>(
        &'a self,
        ns: &'a str,
        assistant_uid: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SnapshotInfo>>, ClusterError>> {
        async move {
            let api: Api<VolumeSnapshot> = Api::namespaced(self.client.clone(), ns);
            let lp =
                ListParams::default().labels(&format!("{ASSISTANT_UID_LABEL}={assistant_uid}"));
            match api.list(&lp).await {
                Ok(l) => {
                    let mut out: Vec<SnapshotInfo> = l
                        .items
                        .iter()
                        .filter_map(SnapshotInfo::from_snapshot)
                        .collect();
                    sort_newest_first(&mut out);
                    Ok(self.ok(Some(out)))
                }
                // A 404 on a list is the resource type itself: no VolumeSnapshot API.
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(self.ok(None)),
                Err(e) => Err(self.map_err(e)),
            }
        }
        .boxed()
    }

    fn retained_claims<'a>(
        &'a self,
        ns: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RetainedClaim>, ClusterError>> {
        async move {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
            let lp = ListParams::default()
                .labels(&format!("{ASSISTANT_LABEL}={base},{RETAINED_LABEL}=true"));
            match api.list(&lp).await {
                Ok(l) => {
                    let mut out: Vec<RetainedClaim> =
                        l.items.into_iter().map(retained_claim).collect();
                    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
                    Ok(self.ok(out))
                }
                Err(e) => Err(self.map_err(e)),
            }
        }
        .boxed()
    }
}

fn retained_claim(pvc: PersistentVolumeClaim) -> RetainedClaim {
    let ann = pvc.metadata.annotations.clone().unwrap_or_default();
    let capacity = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .or_else(|| {
            pvc.spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
        })
        .map(|q| q.0.clone());
    RetainedClaim {
        name: pvc.metadata.name.clone().unwrap_or_default(),
        uid: pvc.metadata.uid.clone().unwrap_or_default(),
        capacity,
        retained_from: ann.get(RETAINED_FROM_ANNOTATION).cloned(),
        replaced_by: ann.get(REPLACED_BY_ANNOTATION).cloned(),
        restored_from: ann.get(RESTORED_FROM_ANNOTATION).cloned(),
        created: pvc.metadata.creation_timestamp.map(|t| t.0.to_string()),
        assistant_uid: ann.get(ASSISTANT_UID_ANNOTATION).cloned(),
        owner_email: ann.get(RETAINED_OWNER_EMAIL_ANNOTATION).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Box<kube::core::Status> {
        Box::new(kube::core::Status {
            code,
            ..Default::default()
        })
    }

    #[test]
    fn a_watch_relist_is_not_an_outage() {
        assert!(is_routine_watch_error(&watcher::Error::WatchError(status(
            410
        ))));
        assert!(!is_routine_watch_error(&watcher::Error::WatchError(
            status(500)
        )));
        assert!(!is_routine_watch_error(&watcher::Error::NoResourceVersion));
    }
}
