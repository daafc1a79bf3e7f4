//! An in-memory Kubernetes API server for tests and benchmarks: enough REST semantics for
//! the operator (get/list/create/server-side apply/merge and JSON patch/delete, status
//! subresources, finalizers, 409 on conflicts) plus request recording and fault injection.
//! It is a kube `Client` transport, so the operator's real code runs against it unchanged.
//!
//! Watches are served too (`?watch=true`: a stream of `{"type","object"}` lines replaying
//! changes after the given resourceVersion, then live ones until `timeoutSeconds`), as are
//! metadata-only requests (`Accept: ...;as=PartialObjectMetadata...`), so a kube
//! `Controller` runs against it; [`FakeApiServer::router`] serves it over real HTTP.
//!
//! What it does not model, and the `#[ignore]`d cluster tests cover: server-side defaulting,
//! field ownership conflicts, admission.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// Response body of the fake: whole JSON documents, or a watch stream.
pub type FakeBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How many past changes are kept for watches that resume from a resourceVersion; a watch
/// from further back gets `410 Gone` and relists, as with a real API server.
const WATCH_HISTORY: usize = 50_000;

/// One request as the operator sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
}

impl Recorded {
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
    /// `VERB plural[/sub]` without namespace and name, for readable assertions.
    pub fn summary(&self) -> String {
        let p = parse_path(&self.path);
        let verb = match (self.method.as_str(), &p) {
            ("PATCH", _)
                if self.content_type.as_deref() == Some("application/apply-patch+yaml") =>
            {
                "APPLY"
            }
            ("GET", Some(p)) if p.name.is_none() => "LIST",
            (m, _) => m,
        };
        match p {
            Some(p) => match p.subresource {
                Some(s) => format!("{verb} {}/{s}", p.plural),
                None => format!("{verb} {}", p.plural),
            },
            None => format!("{verb} {}", self.path),
        }
    }
}

/// A fault to inject: the next `times` requests matching `method` and a path containing
/// `path_contains` fail this way.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    pub path_contains: String,
    pub times: usize,
    pub kind: FaultKind,
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    /// An API status response (409, 429, 500, ...).
    Status(u16),
    /// The transport fails (connection reset / timeout).
    TransportError,
    /// The request hangs for this long before being answered normally.
    Delay(Duration),
}

/// One change, as a watch reports it.
struct WatchEvent {
    rv: u64,
    /// `prefix/plural`, e.g. `api/v1/secrets`.
    collection: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
    next_rv: u64,
    next_uid: u64,
    recording: bool,
    history: VecDeque<Arc<WatchEvent>>,
    /// Highest resourceVersion dropped from `history`.
    history_dropped: u64,
    watchers: Option<broadcast::Sender<Arc<WatchEvent>>>,
    /// The cluster lacks the `snapshot.storage.k8s.io` CRDs: discovery and every call under
    /// that group answer 404 (see [`FakeApiServer::set_snapshot_api`]).
    no_snapshot_api: bool,
    /// metadata.creationTimestamp of new objects (default 2026-11-25T00:00:00Z).
    creation_timestamp: Option<String>,
}

impl State {
    fn emit(&mut self, kind: &'static str, collection: String, object: &Value) {
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.next_rv);
        let ev = Arc::new(WatchEvent {
            rv,
            collection,
            kind,
            object: object.clone(),
        });
        if self.history.len() >= WATCH_HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.history_dropped = old.rv;
        }
        self.history.push_back(ev.clone());
        if let Some(tx) = &self.watchers {
            // No receiver is fine: nobody watches.
            let _ = tx.send(ev);
        }
    }
}

/// `prefix/plural` of a storage key `prefix/plural/ns/name`.
fn collection_of(key: &str) -> String {
    let mut parts: Vec<&str> = key.rsplitn(3, '/').collect();
    parts.pop().unwrap_or_default().to_string()
}

/// Shared handle: clone it, hand `client()` to the code under test, inspect afterwards.
#[derive(Clone)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                recording: true,
                ..Default::default()
            })),
        }
    }
}

#[derive(Debug)]
struct ParsedPath {
    /// `api/v1` or `apis/group/version`.
    prefix: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<ParsedPath> {
    let path = path.split('?').next()?;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match *parts.first()? {
        "api" => (format!("api/{}", parts.get(1)?), &parts[2..]),
        "apis" => (
            format!("apis/{}/{}", parts.get(1)?, parts.get(2)?),
            &parts[3..],
        ),
        _ => return None,
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    Some(ParsedPath {
        prefix,
        namespace,
        plural: rest.first()?.to_string(),
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

fn key(prefix: &str, plural: &str, ns: Option<&str>, name: &str) -> String {
    format!("{prefix}/{plural}/{}/{name}", ns.unwrap_or(""))
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// What the API server does to Secrets on write: stringData folds into base64 data.
fn normalize_secret(obj: &mut Value) {
    if obj["kind"] != "Secret" {
        return;
    }
    if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
        let data = obj
            .as_object_mut()
            .expect("object")
            .entry("data")
            .or_insert(json!({}));
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            data[k] = Value::String(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}

impl FakeApiServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A kube client whose every request is served by this fake.
    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                me.handle(parts, body).await
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Installs (`true`, the default) or removes (`false`) the VolumeSnapshot API
    /// (`snapshot.storage.k8s.io/v1`): discovery answers its resources, or 404 for every
    /// path under the group, as a cluster without the CRDs does.
    pub fn set_snapshot_api(&self, installed: bool) {
        self.state.lock().expect("lock").no_snapshot_api = !installed;
    }

    /// The creationTimestamp new objects get from now on (tests that drive a clock keep
    /// the server's time in step with it).
    pub fn set_creation_timestamp(&self, at: &str) {
        self.state.lock().expect("lock").creation_timestamp = Some(at.to_string());
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().expect("lock").faults.push_back(fault);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().expect("lock").requests.clear();
    }

    /// (requests, writes) recorded so far, without copying the log.
    pub fn request_counts(&self) -> (usize, usize) {
        let st = self.state.lock().expect("lock");
        let writes = st.requests.iter().filter(|r| r.is_write()).count();
        (st.requests.len(), writes)
    }

    /// Forgets the request log entirely (benchmarks with many requests).
    pub fn set_recording(&self, on: bool) {
        let mut st = self.state.lock().expect("lock");
        st.recording = on;
    }

    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_write)
            .collect()
    }

    /// Stores an object as if created by someone else (a client's Secret, a pod).
    pub fn put(&self, obj: Value) -> Value {
        let mut st = self.state.lock().expect("lock");
        Self::insert(&mut st, obj)
    }

    fn insert(st: &mut State, mut obj: Value) -> Value {
        normalize_secret(&mut obj);
        let (prefix, plural) = api_of(&obj);
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        st.next_rv += 1;
        st.next_uid += 1;
        let created = st
            .creation_timestamp
            .clone()
            .unwrap_or_else(|| "2026-11-25T00:00:00Z".to_string());
        let meta = &mut obj["metadata"];
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", st.next_uid));
        }
        meta["resourceVersion"] = json!(st.next_rv.to_string());
        if meta.get("generation").is_none() {
            meta["generation"] = json!(1);
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!(created);
        }
        let k = key(&prefix, &plural, ns.as_deref(), &name);
        let existed = st.objects.insert(k, obj.clone()).is_some();
        st.emit(
            if existed { "MODIFIED" } else { "ADDED" },
            format!("{prefix}/{plural}"),
            &obj,
        );
        obj
    }

    pub fn get(&self, prefix: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let st = self.state.lock().expect("lock");
        st.objects
            .get(&key(prefix, plural, Some(ns), name))
            .cloned()
    }

    /// Mutates a stored object in place (e.g. a pod becoming ready), bumping its version.
    pub fn update(
        &self,
        prefix: &str,
        plural: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut st = self.state.lock().expect("lock");
        st.next_rv += 1;
        let rv = st.next_rv;
        let changed = st
            .objects
            .get_mut(&key(prefix, plural, Some(ns), name))
            .map(|o| {
                f(o);
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                o.clone()
            });
        if let Some(o) = changed {
            st.emit("MODIFIED", format!("{prefix}/{plural}"), &o);
        }
    }

    pub fn remove(&self, prefix: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let mut st = self.state.lock().expect("lock");
        let mut o = st.objects.remove(&key(prefix, plural, Some(ns), name))?;
        st.next_rv += 1;
        o["metadata"]["resourceVersion"] = json!(st.next_rv.to_string());
        st.emit("DELETED", format!("{prefix}/{plural}"), &o);
        Some(o)
    }

    pub fn list(&self, prefix: &str, plural: &str) -> Vec<Value> {
        let st = self.state.lock().expect("lock");
        let start = format!("{prefix}/{plural}/");
        scan(&st.objects, &start).map(|(_, v)| v.clone()).collect()
    }

    /// Highest resourceVersion among the objects of one collection.
    pub fn max_resource_version(&self, prefix: &str, plural: &str) -> u64 {
        let st = self.state.lock().expect("lock");
        let start = format!("{prefix}/{plural}/");
        scan(&st.objects, &start)
            .filter_map(|(_, v)| v["metadata"]["resourceVersion"].as_str()?.parse().ok())
            .max()
            .unwrap_or(0)
    }

    pub fn object_count(&self) -> usize {
        self.state.lock().expect("lock").objects.len()
    }

    /// Serves one request (in-process transport and HTTP alike).
    pub async fn handle(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Response<FakeBody>, std::io::Error> {
        let method = parts.method.clone();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        let header = |h: http::header::HeaderName| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(http::header::CONTENT_TYPE);
        let meta_only = header(http::header::ACCEPT)
            .is_some_and(|a| a.starts_with("application/json;as=PartialObjectMetadata"));

        let fault = {
            let mut st = self.state.lock().expect("lock");
            if st.recording {
                st.requests.push(Recorded {
                    method: method.to_string(),
                    path: path.clone(),
                    content_type: content_type.clone(),
                });
            }
            let pos = st.faults.iter().position(|f| {
                f.method.as_ref().is_none_or(|m| *m == method) && path.contains(&f.path_contains)
            });
            pos.map(|i| {
                let f = &mut st.faults[i];
                f.times -= 1;
                let kind = f.kind.clone();
                if f.times == 0 {
                    st.faults.remove(i);
                }
                kind
            })
        };
        match fault {
            Some(FaultKind::Status(code)) => {
                let reason = match code {
                    404 => "NotFound",
                    409 => "Conflict",
                    429 => "TooManyRequests",
                    500 => "InternalError",
                    503 => "ServiceUnavailable",
                    _ => "Unknown",
                };
                return Ok(boxed(respond(
                    code,
                    status_body(code, reason, "injected fault"),
                )));
            }
            Some(FaultKind::TransportError) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected transport fault",
                ));
            }
            Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
            None => {}
        }

        if path.starts_with(SNAPSHOT_PREFIX) {
            let absent = self.state.lock().expect("lock").no_snapshot_api;
            if absent {
                return Ok(boxed(respond(
                    404,
                    status_body(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                )));
            }
            if path.trim_end_matches('/') == SNAPSHOT_PREFIX {
                return Ok(boxed(respond(200, snapshot_discovery())));
            }
        }
        if path == "/version" {
            return Ok(boxed(respond(
                200,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
            )));
        }
        let Some(p) = parse_path(&path) else {
            return Ok(boxed(respond(
                404,
                status_body(404, "NotFound", "unknown path"),
            )));
        };
        let is_watch = method == Method::GET
            && p.name.is_none()
            && query
                .split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1");
        if is_watch {
            return Ok(self.watch(&p, &query, meta_only));
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .or_else(|_| serde_yaml::from_slice(&body))
                .unwrap_or(Value::Null)
        };
        let mut st = self.state.lock().expect("lock");
        Ok(boxed(Self::answer(
            &mut st,
            &method,
            &p,
            &query,
            content_type.as_deref(),
            meta_only,
            body,
        )))
    }

    /// A watch: changes after `resourceVersion` (or every current object as ADDED when
    /// none is given), then live changes until `timeoutSeconds`.
    fn watch(&self, p: &ParsedPath, query: &str, meta_only: bool) -> Response<FakeBody> {
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                kv.strip_prefix(name)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| {
                        urlencoding::decode(v)
                            .map(|c| c.into_owned())
                            .unwrap_or_default()
                    })
            })
        };
        let since: u64 = param("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = param("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800u64);
        let selector = param("labelSelector");
        let collection = format!("{}/{}", p.prefix, p.plural);
        let namespace = p.namespace.clone();
        let wanted = move |collection_of_event: &str, obj: &Value| {
            collection_of_event == collection
                && namespace
                    .as_deref()
                    .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
                && selector.as_deref().is_none_or(|s| matches_selector(obj, s))
        };
        let line = move |kind: &str, obj: &Value| {
            let obj = if meta_only && kind != "ERROR" {
                partial_metadata(obj)
            } else {
                obj.clone()
            };
            let mut bytes = json!({"type": kind, "object": obj})
                .to_string()
                .into_bytes();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };

        let (initial, mut live) = {
            let mut st = self.state.lock().expect("lock");
            let mut initial = Vec::new();
            if since == 0 {
                let start = format!("{}/{}/", p.prefix, p.plural);
                for (k, o) in scan(&st.objects, &start) {
                    if wanted(&collection_of(k), o) {
                        initial.push(line("ADDED", o));
                    }
                }
            } else if since < st.history_dropped {
                let gone = status_body(410, "Expired", "too old resource version");
                initial.push(line("ERROR", &gone));
                let body = futures::stream::iter(
                    initial
                        .into_iter()
                        .map(|b| Ok::<_, std::io::Error>(http_body::Frame::data(b))),
                );
                return stream_response(StreamBody::new(body));
            } else {
                for ev in st.history.iter().filter(|e| e.rv > since) {
                    if wanted(&ev.collection, &ev.object) {
                        initial.push(line(ev.kind, &ev.object));
                    }
                }
            }
            let rx = st
                .watchers
                .get_or_insert_with(|| broadcast::channel(16_384).0)
                .subscribe();
            (initial, rx)
        };

        let (tx, rx) = mpsc::channel::<Bytes>(1024);
        tokio::spawn(async move {
            let deadline = tokio::time::sleep(Duration::from_secs(timeout));
            tokio::pin!(deadline);
            for b in initial {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = tx.closed() => return,
                    ev = live.recv() => match ev {
                        Ok(ev) => {
                            if wanted(&ev.collection, &ev.object)
                                && tx.send(line(ev.kind, &ev.object)).await.is_err()
                            {
                                return;
                            }
                        }
                        // Lagged or closed: end the watch; the client resumes from the
                        // last version it saw, replayed from the history.
                        Err(_) => return,
                    },
                }
            }
        });
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::io::Error>(http_body::Frame::data(b)), rx))
        });
        stream_response(StreamBody::new(body))
    }

    /// An axum router serving this fake over HTTP (point a kubeconfig at it).
    pub fn router(&self) -> axum::Router {
        let me = self.clone();
        axum::Router::new().fallback(move |req: axum::extract::Request| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = match axum::body::to_bytes(body, 64 << 20).await {
                    Ok(b) => b,
                    Err(_) => Bytes::new(),
                };
                match me.handle(parts, body).await {
                    Ok(resp) => resp.map(axum::body::Body::new),
                    // An injected transport fault: the closest HTTP can do is a bad gateway.
                    Err(e) => Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .body(axum::body::Body::from(e.to_string()))
                        .expect("valid response"),
                }
            }
        })
    }

    /// Serves this fake over HTTP on `listener` until the returned task is dropped/aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        st: &mut State,
        method: &Method,
        p: &ParsedPath,
        query: &str,
        content_type: Option<&str>,
        meta_only: bool,
        body: Value,
    ) -> Response<Full<Bytes>> {
        let not_found = |name: &str| {
            respond(
                404,
                status_body(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", p.plural),
                ),
            )
        };
        match (method.as_str(), &p.name) {
            ("GET", None) => {
                let start = match &p.namespace {
                    Some(ns) => format!("{}/{}/{ns}/", p.prefix, p.plural),
                    None => format!("{}/{}/", p.prefix, p.plural),
                };
                let selector = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("labelSelector="))
                    .map(|s| {
                        urlencoding::decode(s)
                            .map(|c| c.into_owned())
                            .unwrap_or_default()
                    });
                let items: Vec<Value> = scan(&st.objects, &start)
                    .filter(|(_, v)| selector.as_deref().is_none_or(|s| matches_selector(v, s)))
                    .map(|(_, v)| {
                        if meta_only {
                            partial_metadata(v)
                        } else {
                            v.clone()
                        }
                    })
                    .collect();
                let (api_version, kind) = if meta_only {
                    ("meta.k8s.io/v1", "PartialObjectMetadataList")
                } else {
                    ("v1", "List")
                };
                respond(
                    200,
                    json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": st.next_rv.to_string()}, "items": items}),
                )
            }
            ("GET", Some(name)) => {
                match st
                    .objects
                    .get(&key(&p.prefix, &p.plural, p.namespace.as_deref(), name))
                {
                    Some(o) => respond(200, o.clone()),
                    None => not_found(name),
                }
            }
            ("POST", None) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let k = key(&p.prefix, &p.plural, p.namespace.as_deref(), &name);
                if st.objects.contains_key(&k) {
                    return respond(
                        409,
                        status_body(
                            409,
                            "AlreadyExists",
                            &format!("{} \"{name}\" already exists", p.plural),
                        ),
                    );
                }
                let mut obj = body;
                if let Some(ns) = &p.namespace {
                    obj["metadata"]["namespace"] = json!(ns);
                }
                respond(201, Self::insert(st, obj))
            }
            ("PATCH" | "PUT", Some(name)) => {
                let k = key(&p.prefix, &p.plural, p.namespace.as_deref(), name);
                let existing = st.objects.get(&k).cloned();
                let is_apply = content_type == Some("application/apply-patch+yaml");
                let mut obj = match (&existing, is_apply) {
                    (Some(o), _) => o.clone(),
                    (None, true) if p.subresource.is_none() => {
                        let mut o = json!({"metadata": {"name": name}});
                        if let Some(ns) = &p.namespace {
                            o["metadata"]["namespace"] = json!(ns);
                        }
                        o
                    }
                    _ => return not_found(name),
                };
                let before = obj.clone();
                let patch = if p.subresource.as_deref() == Some("status") {
                    json!({"status": body.get("status").cloned().unwrap_or(Value::Null)})
                } else {
                    body
                };
                match (method.as_str(), content_type) {
                    ("PUT", _) => obj = patch,
                    (_, Some("application/json-patch+json")) => {
                        let ops: json_patch::Patch = match serde_json::from_value(patch) {
                            Ok(ops) => ops,
                            Err(e) => {
                                return respond(
                                    400,
                                    status_body(400, "BadRequest", &e.to_string()),
                                );
                            }
                        };
                        if let Err(e) = json_patch::patch(&mut obj, &ops) {
                            return respond(422, status_body(422, "Invalid", &e.to_string()));
                        }
                    }
                    _ => {
                        let mut patch = patch;
                        if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("resourceVersion");
                            m.remove("managedFields");
                        }
                        merge_patch(&mut obj, &patch);
                    }
                }
                normalize_secret(&mut obj);
                if obj == before && existing.is_some() {
                    return respond(200, obj);
                }
                // A dry run answers what would be stored and stores nothing.
                if query.split('&').any(|kv| kv == "dryRun=All") {
                    return respond(200, obj);
                }
                if existing.is_none() {
                    return respond(201, Self::insert(st, obj));
                }
                // Spec changes bump the generation, as the API server does.
                if obj.get("spec") != before.get("spec") {
                    let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
                    obj["metadata"]["generation"] = json!(g + 1);
                }
                st.next_rv += 1;
                obj["metadata"]["resourceVersion"] = json!(st.next_rv.to_string());
                // Last finalizer removed from an object being deleted: it goes.
                let finalizers_empty = obj["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
                let collection = collection_of(&k);
                if obj["metadata"].get("deletionTimestamp").is_some() && finalizers_empty {
                    st.objects.remove(&k);
                    st.emit("DELETED", collection, &obj);
                } else {
                    st.objects.insert(k, obj.clone());
                    st.emit("MODIFIED", collection, &obj);
                }
                respond(200, obj)
            }
            ("DELETE", Some(name)) => {
                let k = key(&p.prefix, &p.plural, p.namespace.as_deref(), name);
                let Some(mut obj) = st.objects.get(&k).cloned() else {
                    return not_found(name);
                };
                // DeleteOptions.preconditions: the object deleted must be the one read.
                if let Some(uid) = body["preconditions"]["uid"].as_str()
                    && obj["metadata"]["uid"].as_str() != Some(uid)
                {
                    return respond(
                        409,
                        status_body(
                            409,
                            "Conflict",
                            &format!(
                                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                                obj["metadata"]["uid"].as_str().unwrap_or_default()
                            ),
                        ),
                    );
                }
                let has_finalizers = obj["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                st.next_rv += 1;
                obj["metadata"]["resourceVersion"] = json!(st.next_rv.to_string());
                let collection = collection_of(&k);
                if has_finalizers {
                    obj["metadata"]["deletionTimestamp"] = json!("2026-11-25T01:00:00Z");
                    st.objects.insert(k, obj.clone());
                    st.emit("MODIFIED", collection, &obj);
                } else {
                    st.objects.remove(&k);
                    st.emit("DELETED", collection, &obj);
                }
                respond(200, obj)
            }
            _ => respond(
                405,
                status_body(405, "MethodNotAllowed", "not supported by the fake"),
            ),
        }
    }
}

/// The VolumeSnapshot group's path; its objects are stored like any other resource.
const SNAPSHOT_PREFIX: &str = "/apis/snapshot.storage.k8s.io/v1";

/// What `GET /apis/snapshot.storage.k8s.io/v1` answers with the CRDs installed.
fn snapshot_discovery() -> Value {
    let resource = |name: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
               "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]})
    };
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": "snapshot.storage.k8s.io/v1",
        "resources": [
            resource("volumesnapshots", "VolumeSnapshot", true),
            resource("volumesnapshots/status", "VolumeSnapshot", true),
            resource("volumesnapshotclasses", "VolumeSnapshotClass", false),
            resource("volumesnapshotcontents", "VolumeSnapshotContent", false),
        ]
    })
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &obj["metadata"]["labels"];
        match term.split_once('=') {
            Some((k, v)) => labels[k.trim_end_matches('=')].as_str() == Some(v),
            None => labels.get(term).is_some(),
        }
    })
}

/// `api/v1` + plural for an object, from its apiVersion and kind.
fn api_of(obj: &Value) -> (String, String) {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    let prefix = if api_version.contains('/') {
        format!("apis/{api_version}")
    } else {
        format!("api/{api_version}")
    };
    let kind = obj["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "NetworkPolicy" => "networkpolicies".to_string(),
        "VolumeSnapshotClass" => "volumesnapshotclasses".to_string(),
        "Endpoints" => "endpoints".to_string(),
        k => format!("{}s", k.to_ascii_lowercase()),
    };
    (prefix, plural)
}

/// Objects whose storage key starts with `start`, in O(log n + matches).
fn scan<'a>(
    objects: &'a BTreeMap<String, Value>,
    start: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
    objects
        .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(start))
}

/// What the API server answers for `as=PartialObjectMetadata`: type and metadata only.
fn partial_metadata(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

fn boxed(resp: Response<Full<Bytes>>) -> Response<FakeBody> {
    resp.map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

fn stream_response<B>(body: B) -> Response<FakeBody>
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.boxed_unsync())
        .expect("valid response")
}

fn respond(code: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, Patch, PatchParams, PostParams};

    #[tokio::test]
    async fn create_get_apply_delete_roundtrip() {
        let fake = FakeApiServer::new();
        let api: Api<Secret> = Api::namespaced(fake.client(), "ns");
        let mut s = Secret::default();
        s.metadata.name = Some("a".into());
        s.string_data = Some([("k".to_string(), "v".to_string())].into());
        api.create(&PostParams::default(), &s).await.unwrap();
        let got = api.get("a").await.unwrap();
        assert_eq!(got.data.unwrap()["k"].0, b"v");
        let err = api.create(&PostParams::default(), &s).await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref e) if e.code == 409),
            "{err}"
        );
        let patch = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "labels": {"x": "y"}}});
        api.patch("a", &PatchParams::apply("t").force(), &Patch::Apply(&patch))
            .await
            .unwrap();
        assert_eq!(
            api.get("a").await.unwrap().metadata.labels.unwrap()["x"],
            "y"
        );
        api.delete("a", &Default::default()).await.unwrap();
        assert!(api.get_opt("a").await.unwrap().is_none());
        assert_eq!(fake.writes().len(), 4);
    }

    #[tokio::test]
    async fn snapshot_group_discovery_switch_and_delete_preconditions() {
        let fake = FakeApiServer::new();
        let client = fake.client();
        let list = client
            .list_api_group_resources("snapshot.storage.k8s.io/v1")
            .await
            .unwrap();
        assert!(list.resources.iter().any(|r| r.name == "volumesnapshots"));
        fake.set_snapshot_api(false);
        let err = client
            .list_api_group_resources("snapshot.storage.k8s.io/v1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref e) if e.code == 404),
            "{err}"
        );
        fake.set_snapshot_api(true);
        // A delete whose uid precondition names another object is refused (409).
        let stored = fake.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "ns"}}));
        let api: Api<Secret> = Api::namespaced(client, "ns");
        let other = kube::api::DeleteParams::default().preconditions(kube::api::Preconditions {
            uid: Some("someone-else".into()),
            resource_version: None,
        });
        let err = api.delete("a", &other).await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref e) if e.code == 409),
            "{err}"
        );
        let ours = kube::api::DeleteParams::default().preconditions(kube::api::Preconditions {
            uid: stored["metadata"]["uid"].as_str().map(str::to_string),
            resource_version: None,
        });
        api.delete("a", &ours).await.unwrap();
        assert!(api.get_opt("a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn faults_fire_then_clear() {
        let fake = FakeApiServer::new();
        fake.inject(Fault {
            method: Some(Method::GET),
            path_contains: "/secrets/a".into(),
            times: 1,
            kind: FaultKind::Status(500),
        });
        let api: Api<Secret> = Api::namespaced(fake.client(), "ns");
        assert!(api.get_opt("a").await.is_err());
        assert!(api.get_opt("a").await.unwrap().is_none());
    }
}

/// Manifests of a minimal client, shared by the reconcile scenarios, the process tests and
/// the benchmark.
pub mod fixtures {
    use serde_json::{Value, json};

    /// A valid Assistant referencing the auth-key Secret `<name>-ts` (key `authkey`).
    pub fn assistant(ns: &str, name: &str) -> Value {
        json!({
            "apiVersion": "clawhost.dev/v1alpha1",
            "kind": "Assistant",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "owner": {"name": "Alice", "email": "alice@example.com"},
                "tailscale": {"authKeySecretRef": {"name": format!("{name}-ts"), "key": "authkey"}}
            }
        })
    }

    /// The client's Tailscale auth-key Secret that [`assistant`] references.
    pub fn auth_key_secret(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-ts"), "namespace": ns}, "stringData": {"authkey": "tskey-auth-test"}})
    }
}

impl FakeApiServer {
    /// Stores a client: its auth-key Secret and its Assistant.
    pub fn seed_client(&self, ns: &str, name: &str) {
        self.put(fixtures::auth_key_secret(ns, name));
        self.put(fixtures::assistant(ns, name));
    }
}
