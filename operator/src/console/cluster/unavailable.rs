//! [`Cluster`] when no kubeconfig or in-cluster config could be loaded: every call fails
//! with the reason, and the console still serves its database features.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::{Cluster, ClusterError, EventInfo, RetainedClaim};
use crate::api::Assistant;
use crate::backup::SnapshotInfo;

pub struct UnavailableCluster {
    pub reason: String,
}

impl UnavailableCluster {
    fn err(&self) -> ClusterError {
        ClusterError::Unreachable(self.reason.clone())
    }
}

impl Cluster for UnavailableCluster {
    fn health(&self) -> Option<String> {
        Some(self.reason.clone())
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn get<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assistant>, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn create<'a>(&'a self, _: &'a Assistant) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn patch<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Value,
    ) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn delete<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn create_secret<'a>(&'a self, _: &'a Secret) -> BoxFuture<'a, Result<(), ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn patch_secret_key<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn events<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<EventInfo>, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn gateway_log<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: i64,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn snapshots<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SnapshotInfo>>, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
    fn retained_claims<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RetainedClaim>, ClusterError>> {
        futures::future::ready(Err(self.err())).boxed()
    }
}
