//! The console's view of Kubernetes, behind a trait: the kube implementation for real
//! clusters ([`kube`]) and an unavailable one for when no cluster can be configured
//! ([`unavailable`]; the console still serves its database features). The in-memory one
//! of tests, demos and benchmarks lives in the `clawhost-testing` crate.
//!
//! Only calls allowed by `rbac::console_rules()` are made: Assistants get/list/watch/create/
//! patch/delete, Secrets create/patch, Pods get/list, pods/log get, Events list,
//! VolumeSnapshots get/list, PersistentVolumeClaims list.

pub mod kube;
pub mod unavailable;

pub use self::kube::KubeCluster;
pub use self::unavailable::UnavailableCluster;

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::api::Assistant;
use crate::backup::SnapshotInfo;
use crate::children::ChildNames;

/// Field manager of the console's writes.
pub const FIELD_MANAGER: &str = "clawhost-console";

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ClusterError {
    #[error("the Kubernetes cluster is unreachable: {0}")]
    Unreachable(String),
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The API server refused the request (validation, conflict, permission).
    #[error("Kubernetes refused the request: {0}")]
    Rejected(String),
}

/// A Kubernetes event about an Assistant, its gateway pod or its data volume.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventInfo {
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub object: String,
    pub count: i32,
    /// RFC 3339, when known.
    pub last_seen: Option<String>,
}

/// A data volume of an Assistant kept (labelled retained) by an earlier in-place restore
/// or a deletion with `Retain`: never deleted by clawhost, listed so an admin can adopt it
/// or delete it by hand.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RetainedClaim {
    pub name: String,
    pub uid: String,
    /// `status.capacity.storage`, else the requested size.
    pub capacity: Option<String>,
    /// `clawhost.dev/retained-from`: `<namespace>/<assistant>` it was kept from.
    pub retained_from: Option<String>,
    /// `clawhost.dev/replaced-by`: the claim an in-place restore switched to.
    pub replaced_by: Option<String>,
    /// `clawhost.dev/restored-from`: the snapshot this claim was itself made from.
    pub restored_from: Option<String>,
    /// RFC 3339 creation time.
    pub created: Option<String>,
    /// `clawhost.dev/assistant-uid`: the Assistant whose volume it was (a later Assistant
    /// of the same name has another uid: not its data).
    pub assistant_uid: Option<String>,
    /// `clawhost.dev/retained-owner-email`: the owner when it was kept.
    pub owner_email: Option<String>,
}

pub trait Cluster: Send + Sync + 'static {
    /// `Some(reason)` while the cluster is unreachable; drives the banner.
    fn health(&self) -> Option<String>;
    /// Every Assistant the console can see, as the cluster has them now: an error while
    /// the cluster is unreachable or the watch cache is stale, never old state as current.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>>;
    /// The Assistants as last seen (a watch cache), for showing marked stale while
    /// [`Cluster::list`] fails; empty when nothing was ever seen.
    fn last_known(&self) -> Vec<Arc<Assistant>> {
        Vec::new()
    }
    fn get<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assistant>, ClusterError>>;
    fn create<'a>(&'a self, a: &'a Assistant) -> BoxFuture<'a, Result<Assistant, ClusterError>>;
    /// JSON merge patch of an Assistant (spec fields and annotations).
    fn patch<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        patch: Value,
    ) -> BoxFuture<'a, Result<Assistant, ClusterError>>;
    fn delete<'a>(&'a self, ns: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;
    fn create_secret<'a>(&'a self, s: &'a Secret) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// Replaces one key of an existing Secret (never reads it: the console may not).
    fn patch_secret_key<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// Recent events of the Assistant, its gateway pod and its data volume (PVC), newest
    /// first.
    fn events<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<EventInfo>, ClusterError>>;
    /// The last `lines` lines of the gateway container's log; `None` without a pod.
    fn gateway_log<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        lines: i64,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>>;
    /// The Assistant's VolumeSnapshots (selected by its uid label), newest first;
    /// `Ok(None)` when the cluster has no VolumeSnapshot API (404 on the resource type).
    fn snapshots<'a>(
        &'a self,
        ns: &'a str,
        assistant_uid: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SnapshotInfo>>, ClusterError>>;
    /// Claims labelled retained for the Assistant of this base name (`clawhost.dev/assistant`),
    /// oldest first.
    fn retained_claims<'a>(
        &'a self,
        ns: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RetainedClaim>, ClusterError>>;
}

/// Newest first, by when the storage system cut them; the name breaks ties (stable pages).
pub fn sort_newest_first(snapshots: &mut [SnapshotInfo]) {
    snapshots.sort_by(|a, b| b.taken.cmp(&a.taken).then_with(|| b.name.cmp(&a.name)));
}

/// Name of the gateway pod of an Assistant (StatefulSet ordinal 0).
pub fn gateway_pod_name(assistant_name: &str) -> String {
    format!("{}-0", ChildNames::new(assistant_name).statefulset)
}
