//! The console's view of Kubernetes, behind a trait: the kube implementation for real
//! clusters, an in-memory one for tests, demos and benchmarks, and an unavailable one for
//! when no cluster can be configured (the console still serves its database features).
//!
//! Only calls allowed by `rbac::console_rules()` are made: Assistants get/list/watch/create/
//! patch/delete, Secrets create/patch, Pods get/list, pods/log get, Events list.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde_json::Value;

use crate::api::{Assistant, AssistantStatus, Phase, TailnetStatus};
use crate::children::ChildNames;
use crate::children::gateway_statefulset::GATEWAY_CONTAINER;

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

/// A Kubernetes event about an Assistant or its pod.
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

pub trait Cluster: Send + Sync + 'static {
    /// `Some(reason)` while the cluster is unreachable; drives the banner.
    fn health(&self) -> Option<String>;
    /// Every Assistant the console can see.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>>;
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
    /// Recent events of the Assistant and its gateway pod, newest first.
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
}

/// Name of the gateway pod of an Assistant (StatefulSet ordinal 0).
pub fn gateway_pod_name(assistant_name: &str) -> String {
    format!("{}-0", ChildNames::new(assistant_name).statefulset)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

// ---------------------------------------------------------------------------------------
// kube implementation

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
            for object in [name.to_string(), gateway_pod_name(name)] {
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

// ---------------------------------------------------------------------------------------
// Unavailable: no kubeconfig / in-cluster config could be loaded.

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
}

// ---------------------------------------------------------------------------------------
// In-memory implementation: behaves like a cluster with an instantly converging operator.

#[derive(Default)]
struct MemState {
    assistants: BTreeMap<(String, String), Arc<Assistant>>,
    secrets: BTreeMap<(String, String), Secret>,
    events: BTreeMap<(String, String), Vec<EventInfo>>,
    logs: BTreeMap<(String, String), String>,
    unreachable: Option<String>,
    next_uid: u64,
}

#[derive(Default)]
pub struct MemoryCluster {
    state: Mutex<MemState>,
    /// Version a new Assistant runs when it names none.
    default_version: String,
}

fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

fn cond(type_: &str, ok: bool, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now_time(),
        observed_generation: None,
    }
}

impl MemoryCluster {
    pub fn new(default_version: &str) -> Self {
        Self {
            state: Mutex::new(MemState::default()),
            default_version: default_version.into(),
        }
    }

    /// A few Assistants in different phases, for demos and browser tests.
    pub fn seeded(namespace: &str, default_version: &str) -> Self {
        let me = Self::new(default_version);
        for (name, owner, email, plan, phase) in demo_assistants() {
            let mut a = demo_assistant(namespace, name, owner, email, plan);
            a.spec.suspended = phase == Phase::Suspended;
            me.insert(a);
            if phase == Phase::Degraded {
                me.force_phase(namespace, name, Phase::Degraded);
            }
        }
        me
    }

    /// Makes every call fail as if the API server were down (tests of the banner).
    pub fn set_unreachable(&self, reason: Option<&str>) {
        self.state.lock().expect("lock").unreachable = reason.map(str::to_string);
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, MemState>, ClusterError> {
        let st = self.state.lock().expect("lock");
        match &st.unreachable {
            Some(r) => Err(ClusterError::Unreachable(r.clone())),
            None => Ok(st),
        }
    }

    /// Adds an Assistant as if an operator had reconciled it.
    pub fn insert(&self, mut a: Assistant) -> Assistant {
        let mut st = self.state.lock().expect("lock");
        st.next_uid += 1;
        a.metadata.uid = Some(format!("00000000-0000-4000-8000-{:012}", st.next_uid));
        a.metadata.generation = Some(1);
        a.metadata.creation_timestamp.get_or_insert_with(now_time);
        self.reconcile(&mut a);
        let key = key_of(&a);
        st.events.insert(
            key.clone(),
            vec![EventInfo {
                type_: "Normal".into(),
                reason: "Reconciled".into(),
                message: "All children applied".into(),
                object: format!("Assistant/{}", key.1),
                count: 1,
                last_seen: Some(jiff::Timestamp::now().to_string()),
            }],
        );
        st.logs.insert(
            key.clone(),
            format!(
                "[gateway] openclaw {} listening on 127.0.0.1:18789\n[gateway] tailscale serve ready\n",
                a.status.as_ref().and_then(|s| s.gateway_version.clone()).unwrap_or_default()
            ),
        );
        st.assistants.insert(key, Arc::new(a.clone()));
        a
    }

    /// Overrides the simulated phase (tests of degraded/failed states).
    pub fn force_phase(&self, ns: &str, name: &str, phase: Phase) {
        let mut st = self.state.lock().expect("lock");
        if let Some(a) = st.assistants.get_mut(&(ns.to_string(), name.to_string())) {
            let a = Arc::make_mut(a);
            let status = a.status.get_or_insert_with(Default::default);
            status.phase = Some(phase);
            if phase == Phase::Degraded {
                status.conditions = vec![
                    cond(
                        "Ready",
                        false,
                        "GatewayNotReady",
                        "The gateway container is restarting (CrashLoopBackOff)",
                    ),
                    cond("ConfigValid", true, "Valid", "The spec is valid"),
                    cond(
                        "GatewayReady",
                        false,
                        "CrashLoopBackOff",
                        "Back-off restarting failed container gateway",
                    ),
                ];
            }
        }
    }

    /// A Secret's decoded value (tests only; the console never reads Secrets).
    pub fn secret_value(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        let st = self.state.lock().expect("lock");
        let s = st.secrets.get(&(ns.to_string(), name.to_string()))?;
        if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone());
        }
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    }

    pub fn secret_names(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .expect("lock")
            .secrets
            .keys()
            .cloned()
            .collect()
    }

    /// The simulated operator: status follows the spec at once.
    fn reconcile(&self, a: &mut Assistant) {
        let name = a.metadata.name.clone().unwrap_or_default();
        let ns = a.metadata.namespace.clone().unwrap_or_default();
        let version = a
            .spec
            .gateway
            .as_ref()
            .and_then(|g| g.version.clone())
            .unwrap_or_else(|| self.default_version.clone());
        let suspended = a.spec.suspended;
        let names = ChildNames::new(&name);
        a.status = Some(AssistantStatus {
            phase: Some(if suspended {
                Phase::Suspended
            } else {
                Phase::Running
            }),
            observed_generation: a.metadata.generation,
            conditions: vec![
                if suspended {
                    cond("Ready", false, "Suspended", "The gateway is scaled to zero")
                } else {
                    cond("Ready", true, "Running", "The gateway is serving")
                },
                cond("ConfigValid", true, "Valid", "The spec is valid"),
                cond("StorageReady", true, "Bound", "The volume is bound"),
            ],
            gateway_version: Some(version),
            image: None,
            tailnet: Some(TailnetStatus {
                hostname: Some(format!("{ns}-{name}")),
                fqdn: Some(format!("{ns}-{name}.tail4a2c.ts.net")),
                ips: vec!["100.101.102.103".into()],
                url: Some(format!("https://{ns}-{name}.tail4a2c.ts.net")),
            }),
            storage: None,
            gateway_token_secret: Some(names.gateway_token_secret),
        });
    }
}

fn key_of(a: &Assistant) -> (String, String) {
    (
        a.metadata.namespace.clone().unwrap_or_default(),
        a.metadata.name.clone().unwrap_or_default(),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Default::default());
        }
        let t = target.as_object_mut().expect("object");
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

impl Cluster for MemoryCluster {
    fn health(&self) -> Option<String> {
        self.state.lock().expect("lock").unreachable.clone()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Assistant>>, ClusterError>> {
        let r = self
            .check()
            .map(|st| st.assistants.values().cloned().collect());
        futures::future::ready(r).boxed()
    }

    fn get<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assistant>, ClusterError>> {
        let r = self.check().map(|st| {
            st.assistants
                .get(&(ns.to_string(), name.to_string()))
                .map(|a| (**a).clone())
        });
        futures::future::ready(r).boxed()
    }

    fn create<'a>(&'a self, a: &'a Assistant) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        let r = (|| {
            let st = self.check()?;
            if st.assistants.contains_key(&key_of(a)) {
                return Err(ClusterError::AlreadyExists(format!(
                    "assistants.clawhost.dev {:?} already exists",
                    a.metadata.name.as_deref().unwrap_or_default()
                )));
            }
            drop(st);
            Ok(self.insert(a.clone()))
        })();
        futures::future::ready(r).boxed()
    }

    fn patch<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        patch: Value,
    ) -> BoxFuture<'a, Result<Assistant, ClusterError>> {
        let r = (|| {
            let mut st = self.check()?;
            let key = (ns.to_string(), name.to_string());
            let current = st.assistants.get(&key).ok_or(ClusterError::NotFound)?;
            let mut v = serde_json::to_value(&**current)
                .map_err(|e| ClusterError::Rejected(e.to_string()))?;
            merge_patch(&mut v, &patch);
            let mut a: Assistant =
                serde_json::from_value(v).map_err(|e| ClusterError::Rejected(e.to_string()))?;
            if a.spec != current.spec {
                a.metadata.generation = Some(a.metadata.generation.unwrap_or(1) + 1);
            }
            self.reconcile(&mut a);
            st.assistants.insert(key, Arc::new(a.clone()));
            Ok(a)
        })();
        futures::future::ready(r).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        let r = (|| {
            let mut st = self.check()?;
            let key = (ns.to_string(), name.to_string());
            st.assistants.remove(&key).ok_or(ClusterError::NotFound)?;
            // Owned Secrets go with their Assistant (garbage collection).
            let uid_owned: Vec<_> = st
                .secrets
                .iter()
                .filter(|(k, s)| {
                    k.0 == ns
                        && s.metadata
                            .owner_references
                            .as_ref()
                            .is_some_and(|o| o.iter().any(|o| o.name == name))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in uid_owned {
                st.secrets.remove(&k);
            }
            Ok(())
        })();
        futures::future::ready(r).boxed()
    }

    fn create_secret<'a>(&'a self, s: &'a Secret) -> BoxFuture<'a, Result<(), ClusterError>> {
        let r = (|| {
            let mut st = self.check()?;
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            if st.secrets.contains_key(&key) {
                return Err(ClusterError::AlreadyExists(format!(
                    "secrets {:?} already exists",
                    key.1
                )));
            }
            st.secrets.insert(key, s.clone());
            Ok(())
        })();
        futures::future::ready(r).boxed()
    }

    fn patch_secret_key<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        let r = (|| {
            let mut st = self.check()?;
            let s = st
                .secrets
                .get_mut(&(ns.to_string(), name.to_string()))
                .ok_or(ClusterError::NotFound)?;
            if let Some(sd) = s.string_data.as_mut() {
                sd.remove(key);
            }
            s.data.get_or_insert_with(Default::default).insert(
                key.to_string(),
                k8s_openapi::ByteString(value.as_bytes().to_vec()),
            );
            Ok(())
        })();
        futures::future::ready(r).boxed()
    }

    fn events<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<EventInfo>, ClusterError>> {
        let r = self.check().map(|st| {
            st.events
                .get(&(ns.to_string(), name.to_string()))
                .cloned()
                .unwrap_or_default()
        });
        futures::future::ready(r).boxed()
    }

    fn gateway_log<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        lines: i64,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>> {
        let r = self.check().map(|st| {
            let key = (ns.to_string(), name.to_string());
            let suspended = st.assistants.get(&key).is_some_and(|a| a.spec.suspended);
            if suspended {
                return None;
            }
            st.logs.get(&key).map(|l| {
                let all: Vec<&str> = l.lines().collect();
                let start = all.len().saturating_sub(lines.max(0) as usize);
                all[start..].join("\n")
            })
        });
        futures::future::ready(r).boxed()
    }
}

type Demo = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Phase,
);

/// The demo fleet of `--fake-cluster`.
pub fn demo_assistants() -> Vec<Demo> {
    vec![
        (
            "acme-legal",
            "Acme Legal LLP",
            "it@acme-legal.example",
            "standard",
            Phase::Running,
        ),
        (
            "bakery-lund",
            "Bageri Lund AB",
            "hej@bageri-lund.example",
            "small",
            Phase::Running,
        ),
        (
            "chen-studio",
            "Chen Design Studio",
            "mei@chen.example",
            "large",
            Phase::Degraded,
        ),
        (
            "dr-okafor",
            "Dr. Okafor Clinic",
            "admin@okafor.example",
            "standard",
            Phase::Suspended,
        ),
    ]
}

pub fn demo_assistant(ns: &str, name: &str, owner: &str, email: &str, plan: &str) -> Assistant {
    use crate::api::{AssistantSpec, Owner, SecretKeyRef, TailscaleSpec};
    Assistant {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: AssistantSpec {
            owner: Owner {
                name: owner.into(),
                email: email.into(),
            },
            plan: Some(plan.into()),
            tailscale: Some(TailscaleSpec {
                auth_key_secret_ref: Some(SecretKeyRef {
                    name: format!("{name}-tailscale-auth"),
                    key: "authkey".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    }
}
