//! The kube implementation of [`Cluster`]: direct API calls, and a watch cache of the
//! Assistants for listing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde_json::Value;

use super::{Cluster, ClusterError, EventInfo, FIELD_MANAGER, gateway_pod_name};
use crate::api::Assistant;
use crate::children::ChildNames;
use crate::children::gateway_statefulset::GATEWAY_CONTAINER;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

pub struct KubeCluster {
    client: Client,
    /// Last connection failure; cleared by any successful call.
    last_error: Arc<Mutex<Option<String>>>,
    store: Option<reflector::Store<Assistant>>,
    store_ready: Arc<AtomicBool>,
}

impl KubeCluster {
    /// Direct API calls only (tests with a mocked client).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            last_error: Arc::new(Mutex::new(None)),
            store: None,
            store_ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Also watches Assistants into a local cache, so listing 10,000 clients costs no API
    /// call per page view. Must be called inside a Tokio runtime.
    pub fn with_watch(client: Client) -> Self {
        let mut me = Self::new(client.clone());
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
                    Ok(watcher::Event::InitDone) => {
                        ready.store(true, Ordering::Relaxed);
                        *last_error.lock().expect("lock") = None;
                    }
                    Ok(_) => *last_error.lock().expect("lock") = None,
                    Err(e) => {
                        tracing::warn!(error = %e, "Assistant watch failed");
                        *last_error.lock().expect("lock") = Some(e.to_string());
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
        self.last_error.lock().expect("lock").clone()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>> {
        async move {
            if let Some(store) = &self.store
                && self.store_ready.load(Ordering::Relaxed)
            {
                return Ok(store.state());
            }
            let api: Api<Assistant> = Api::all(self.client.clone());
            match api.list(&ListParams::default()).await {
                Ok(l) => Ok(self.ok(l.items.into_iter().map(Arc::new).collect())),
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
            // The data volume's events say why a pod waits (no storage class, quota).
            let volume = ChildNames::new(name).data_volume;
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
}
