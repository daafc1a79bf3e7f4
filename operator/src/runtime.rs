//! The operator process: connect to the cluster (retrying with backoff), optionally win a
//! leader Lease, run the Assistant controller, serve /healthz, /readyz and /metrics, and
//! stop cleanly on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, predicates};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use crate::api::Assistant;
use crate::children::ASSISTANT_NAME_ANNOTATION;
use crate::children::kinds::CHILD_KINDS;
use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use crate::reconciler::{self, Context, observe::references_secret};

/// Shared health state for the HTTP endpoints: ready while connected and no watch is
/// failing, so an operator that cannot see changes says so instead of looking healthy.
#[derive(Clone, Default)]
pub struct Health {
    connected: Arc<AtomicBool>,
    watches: Arc<std::sync::Mutex<Vec<Arc<WatchState>>>>,
}

/// One watch's health. A watch that resumes after an error yields nothing until something
/// changes, so recovery is not an event: a watch counts as failing while its last error is
/// more recent than [`WATCH_RETRY_MAX`] plus a margin (a still-failing watch errs at least
/// that often) and no event arrived since.
#[derive(Default)]
struct WatchState {
    /// Milliseconds since [`health_epoch`] of the last error; 0 when none or cleared.
    last_error_ms: AtomicU64,
}

/// Longest wait between two attempts of a failing watch.
pub const WATCH_RETRY_MAX: Duration = Duration::from_secs(5);
const WATCH_FAILING_FOR: Duration = Duration::from_secs(10);

fn health_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_ms() -> u64 {
    // Never 0, which means "no error".
    health_epoch().elapsed().as_millis() as u64 + 1
}

impl Health {
    pub fn set_connected(&self, v: bool) {
        self.connected.store(v, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        let now = now_ms();
        let failing_for = WATCH_FAILING_FOR.as_millis() as u64;
        self.connected.load(Ordering::Relaxed)
            && self.watches.lock().expect("lock").iter().all(|w| {
                let last = w.last_error_ms.load(Ordering::Relaxed);
                last == 0 || now.saturating_sub(last) > failing_for
            })
    }

    /// Passes a watch stream through, tracking its health for `/readyz` and logging the
    /// first error of each outage.
    pub fn track<S, T, E>(
        &self,
        what: &'static str,
        stream: S,
    ) -> impl futures::Stream<Item = S::Item> + use<S, T, E>
    where
        S: futures::Stream<Item = Result<T, E>>,
        E: std::fmt::Display,
    {
        let state = Arc::new(WatchState::default());
        self.watches.lock().expect("lock").push(state.clone());
        stream.inspect(move |item| {
            let last = state.last_error_ms.load(Ordering::Relaxed);
            match item {
                Err(e) => {
                    let now = now_ms();
                    if last == 0 || now.saturating_sub(last) > WATCH_FAILING_FOR.as_millis() as u64 {
                        warn!(watch = what, error = %e, "watch failed; retrying (readyz reports 503 until it recovers)");
                    }
                    state.last_error_ms.store(now, Ordering::Relaxed);
                }
                Ok(_) if last != 0 => {
                    state.last_error_ms.store(0, Ordering::Relaxed);
                    info!(watch = what, "watch recovered");
                }
                Ok(_) => {}
            }
        })
    }
}

/// Retry delays of a failing watch: 0.5 s doubling to [`WATCH_RETRY_MAX`]. Shorter than
/// kube's default (30 s) so the operator is back within seconds of an API server restart;
/// a dozen watches retrying every 5 s is no load on a recovering server.
#[derive(Debug, Clone, Default)]
pub struct WatchRetry {
    attempt: u32,
}

impl Iterator for WatchRetry {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let delay = Duration::from_millis(500).saturating_mul(1 << self.attempt.min(4));
        self.attempt = self.attempt.saturating_add(1);
        Some(delay.min(WATCH_RETRY_MAX))
    }
}

impl kube::runtime::utils::Backoff for WatchRetry {
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[derive(Clone)]
struct HttpState {
    health: Health,
    registry: Arc<Registry>,
}

/// Routes of the operator's own HTTP endpoint.
pub fn health_router(health: Health, metrics: &Metrics) -> Router {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                if s.health.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not connected to the Kubernetes API",
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
                    Ok(()) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .with_state(HttpState {
            health,
            registry: Arc::new(registry),
        })
}

/// Where the client configuration comes from, for the one line logged when it fails.
fn config_source() -> String {
    match std::env::var("KUBECONFIG") {
        Ok(p) if !p.is_empty() => format!("KUBECONFIG={p}"),
        _ if std::env::var("KUBERNETES_SERVICE_HOST").is_ok() => {
            "in-cluster service account".into()
        }
        _ => "~/.kube/config (KUBECONFIG unset, not in a cluster)".into(),
    }
}

/// The operator's API client: kube's configuration inference, without kube's built-in
/// retry of 429/503/504. That retry waits inside the request (up to 15 times, with delays
/// growing toward minutes), so after an API server restart a watch answered 429 while the
/// server warms up just hangs: no error reaches the watcher, nothing is logged, `/readyz`
/// stays green and new Assistants are never seen. Failures must surface instead: watches
/// retry with their own short backoff, reconciles with per-Assistant backoff.
pub async fn operator_client(
    fence: Arc<crate::write_fence::WriteFence>,
) -> Result<Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.default_retry = false;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::write_fence::FenceLayer(fence))
        .build())
}

/// Connects to the cluster, retrying with capped backoff. Logs the first failure, then only
/// when the error changes or every tenth attempt, so an unreachable cluster does not spam.
pub async fn connect(
    mut shutdown: watch::Receiver<bool>,
    fence: Arc<crate::write_fence::WriteFence>,
) -> Option<Client> {
    let mut delay = Duration::from_secs(1);
    let mut last_error = String::new();
    for attempt in 1u64.. {
        let result = async {
            let client = operator_client(fence.clone())
                .await
                .map_err(|e| e.to_string())?;
            client
                .apiserver_version()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(client)
        }
        .await;
        match result {
            Ok(client) => {
                info!(source = %config_source(), "connected to the Kubernetes API");
                return Some(client);
            }
            Err(e) => {
                if e != last_error || attempt % 10 == 0 {
                    warn!(
                        source = %config_source(),
                        error = %e,
                        attempt,
                        retry_in_s = delay.as_secs(),
                        "cannot reach the Kubernetes API; retrying with backoff"
                    );
                    last_error = e;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
    None
}

/// Fills in the API server addresses for the gateway NetworkPolicy when the config names
/// none (the sidecar must reach the API to store its state).
pub async fn discover_api_server(client: &Client, config: &mut OperatorConfig) {
    if !config.network_policy.enabled || !config.network_policy.api_server_cidrs.is_empty() {
        return;
    }
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels("kubernetes.io/service-name=kubernetes");
    match api.list(&lp).await {
        Ok(list) => {
            let mut cidrs = Vec::new();
            let mut ports = Vec::new();
            for slice in list.items {
                for ep in slice.endpoints {
                    for a in ep.addresses {
                        cidrs.push(if a.contains(':') {
                            format!("{a}/128")
                        } else {
                            format!("{a}/32")
                        });
                    }
                }
                for p in slice.ports.into_iter().flatten() {
                    ports.extend(p.port);
                }
            }
            if !ports.is_empty() {
                config.network_policy.api_server_ports = ports;
            }
            info!(
                ?cidrs,
                "discovered API server endpoints for gateway NetworkPolicies"
            );
            config.network_policy.api_server_cidrs = cidrs;
        }
        Err(e) => {
            warn!(error = %e, "cannot discover API server endpoints; gateway NetworkPolicies will not allow the API (set networkPolicy.apiServerCidrs)")
        }
    }
}

/// Maps a child (by the annotation every child carries) to its Assistant.
fn owner_of<K: Resource>(obj: &K) -> Option<ObjectRef<Assistant>> {
    let name = obj.annotations().get(ASSISTANT_NAME_ANNOTATION)?;
    Some(ObjectRef::new(name).within(&obj.namespace()?))
}

/// Builds and runs one controller (for one namespace, or all).
async fn run_controller(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    health: Health,
    shutdown: watch::Receiver<bool>,
) {
    let api = |c: &Client| -> Api<Assistant> {
        match &namespace {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    };
    /// Metadata-only watches: a fraction of the memory and bandwidth of full objects.
    fn meta_api<K>(c: &Client, ns: &Option<String>) -> Api<PartialObjectMeta<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        PartialObjectMeta<K>:
            Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    }
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=clawhost");
    let concurrency = ctx.config.reconcile.concurrency;
    // Our own status writes change neither generation, annotations, finalizers nor the
    // deletion mark, so they do not re-trigger a reconcile.
    let (store, writer) = reflector::store::<Assistant>();
    let assistants = health
        .track(
            "assistants",
            watcher(api(&client), watcher::Config::default().any_semantic())
                .backoff(WatchRetry::default()),
        )
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers)
                .combine(|a: &Assistant| Some(u64::from(a.metadata.deletion_timestamp.is_some()))),
            Default::default(),
        )
        .filter_map(|a| futures::future::ready(a.ok()));
    let (assistant_tx, assistant_rx) = futures::channel::mpsc::unbounded();
    spawn_watch(assistants, assistant_tx, shutdown.clone());
    let controller =
        Controller::for_stream(assistant_rx.map(Ok::<_, watcher::Error>), store.clone());
    let secret_refs = store.clone();

    // Children are watched by metadata only: a change triggers a reconcile, which reads the
    // object itself. Retained volumes and pods have no Assistant owner, so every child is
    // mapped by its annotation instead of ownerReferences.
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Assistant>>();
    for kind in CHILD_KINDS.iter().filter(|k| k.watch) {
        let resource = (kind.resource)();
        // Metadata only: a fraction of the memory and bandwidth of full objects.
        let api: Api<PartialObjectMeta<DynamicObject>> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        spawn_watch(
            health
                .track(
                    kind.kind,
                    watcher(api, managed.clone()).backoff(WatchRetry::default()),
                )
                .touched_objects()
                .filter_map(|o| futures::future::ready(o.ok().and_then(|o| owner_of(&o)))),
            trigger_tx.clone(),
            shutdown.clone(),
        );
    }
    // Secrets the client owns (auth key, model keys): a fix is picked up at once.
    let client_secrets = health
        .track(
            "client secrets",
            watcher(
                meta_api::<Secret>(&client, &namespace),
                watcher::Config::default(),
            )
            .backoff(WatchRetry::default()),
        )
        .touched_objects()
        .filter_map(|s| futures::future::ready(s.ok()))
        .flat_map(move |s| {
            // The operator's own Secrets come through the managed stream above; only
            // client Secrets need the scan over every Assistant.
            let own = s
                .labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some("clawhost");
            let ns = s.metadata.namespace.as_deref();
            let name = s.metadata.name.as_deref().unwrap_or_default();
            let refs: Vec<ObjectRef<Assistant>> = if own {
                Vec::new()
            } else {
                secret_refs
                    .state()
                    .into_iter()
                    .filter(|a| a.metadata.namespace.as_deref() == ns && references_secret(a, name))
                    .map(|a| ObjectRef::from_obj(&*a))
                    .collect()
            };
            futures::stream::iter(refs)
        });
    spawn_watch(client_secrets, trigger_tx, shutdown.clone());
    let controller = controller
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(trigger_rx);
    let mut stop = shutdown.clone();
    controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(
            |a, ctx| {
                let span = info_span!("reconcile", assistant = %reconciler::assistant_key(&a));
                reconciler::reconcile(a, ctx).instrument(span)
            },
            reconciler::error_policy,
            ctx,
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                // Object-level errors are already logged by error_policy; this is the
                // controller's own view (e.g. a watch error), kept at debug noise level.
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// Drives a watch on a task of its own and forwards what it yields to the controller.
///
/// The controller polls its inputs only as fast as its scheduler takes work; a watch that
/// is not polled neither notices an API server outage nor reconnects after it. Measured on
/// a real API server: with the watches inside the controller, watch retries after a restart
/// came seconds to minutes apart and new Assistants went unseen. On their own tasks they
/// retry on their backoff and `/readyz` reflects them.
fn spawn_watch<S, T>(
    stream: S,
    to_controller: futures::channel::mpsc::UnboundedSender<T>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: futures::Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(item) => {
                        if to_controller.unbounded_send(item).is_err() {
                            return; // the controller stopped
                        }
                    }
                    None => return,
                },
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
}

/// Options of `clawhost operator`.
pub struct OperatorOptions {
    pub metrics_addr: SocketAddr,
}

/// The access key that seals invite URLs in `status.access`, when the config names one.
fn access_key(
    config: &OperatorConfig,
) -> Result<Option<crate::sealing::SealingKey>, crate::sealing::SealingError> {
    config
        .tailscale
        .invites
        .as_ref()
        .and_then(|i| i.access_key_file.as_deref())
        .map(crate::sealing::SealingKey::from_file)
        .transpose()
}

/// Runs the operator until `shutdown` turns true.
pub async fn run(
    mut config: OperatorConfig,
    opts: OperatorOptions,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let health = Health::default();
    let metrics = Arc::new(Metrics::default());
    // Credentials first: a file that cannot be read stops the start with its path named.
    let tailnet = crate::tailscale::from_config(&config, metrics.tailscale_calls.clone())?;
    let invites = crate::tailscale::invites::from_config(&config, metrics.tailscale_calls.clone())?;
    let access_key = access_key(&config)?;
    let router = health_router(health.clone(), &metrics);
    let listener = tokio::net::TcpListener::bind(opts.metrics_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.metrics_addr))?;
    // The bound address, so port 0 (tests) tells where it landed.
    let bound = listener.local_addr().unwrap_or(opts.metrics_addr);
    info!(addr = %bound, "serving /healthz, /readyz, /metrics");
    let mut http_stop = shutdown.clone();
    let http = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );

    let fence = Arc::new(crate::write_fence::WriteFence::default());
    let Some(client) = connect(shutdown.clone(), fence.clone()).await else {
        let _ = http.await;
        return Ok(());
    };
    health.set_connected(true);
    discover_api_server(&client, &mut config).await;

    let leader = if config.leader_election.enabled {
        match leader::acquire(&client, &config, shutdown.clone()).await? {
            Some(l) => Some(l),
            None => {
                let _ = http.await;
                return Ok(());
            }
        }
    } else {
        None
    };
    if leader.is_some() {
        // From now on a pause past the lease stops this replica before it can write.
        fence.arm();
    }

    let reporter = Reporter {
        controller: "clawhost".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: Arc::new(config.clone()),
        metrics: metrics.clone(),
        backoff: Default::default(),
        recorder: Some(reconciler::events::EventPublisher::new(
            client.clone(),
            reporter,
        )),
        tailnet,
        invites,
        access_key,
        access_clock: Default::default(),
        reconcile_timeout: reconciler::RECONCILE_TIMEOUT,
        clock: Arc::new(crate::clock::SystemClock),
        snapshot_api: Default::default(),
        snapshot_bucket: Arc::new(reconciler::backup::throttle::CreationBucket::new(
            config.backups.creations_per_minute,
        )),
        backup_clock: Default::default(),
    });
    let namespaces: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    info!(namespaces = ?config.namespaces, concurrency = config.reconcile.concurrency, "starting the Assistant controller");
    let controllers = futures::future::join_all(namespaces.into_iter().map(|ns| {
        run_controller(
            client.clone(),
            ns,
            ctx.clone(),
            health.clone(),
            shutdown.clone(),
        )
    }));
    // Expired final snapshots belong to deleted Assistants, so no reconcile sees them: the
    // janitor runs beside the controllers, within the same leadership and shutdown.
    // It never ends by itself; it stops when the controllers do.
    let janitor = reconciler::backup::janitor::run(ctx.clone());
    let controllers = async move {
        tokio::select! {
            _ = controllers => {}
            _ = janitor => {}
        }
    };
    match leader {
        Some(mut lost) => {
            tokio::select! {
                _ = controllers => {}
                _ = lost.changed().fuse() => {
                    error!("lost the leader lease; stopping so another replica takes over");
                    anyhow::bail!("leader lease lost");
                }
            }
        }
        None => {
            controllers.await;
        }
    }
    info!("controller stopped");
    let _ = http.await;
    Ok(())
}

/// Leader election with a Lease (kube-lease-manager).
mod leader {
    use super::*;
    use kube_lease_manager::LeaseManagerBuilder;

    /// Waits until this replica holds the lease; returns a receiver that changes when the
    /// lease is lost, or `None` on shutdown.
    pub async fn acquire(
        client: &Client,
        config: &OperatorConfig,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<watch::Receiver<bool>>> {
        let le = &config.leader_election;
        let ns = le
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("clawhost-{}", std::process::id()));
        let manager = LeaseManagerBuilder::new(client.clone(), &le.lease_name)
            .with_namespace(&ns)
            .with_identity(&identity)
            .with_duration(le.lease_duration_seconds)
            // One field manager per replica: mutual exclusion rests on server-side-apply
            // conflicts between managers, and a shared manager never conflicts (two
            // replicas both "acquired" the lease on a real API server).
            .with_field_manager(format!("clawhost-leader-{identity}"))
            .build()
            .await?;
        let (mut channel, _task) = manager.watch().await;
        info!(lease = %le.lease_name, namespace = %ns, %identity, "waiting for the leader lease");
        loop {
            if *channel.borrow_and_update() {
                info!("acquired the leader lease");
                let (tx, rx) = watch::channel(true);
                tokio::spawn(async move {
                    while channel.changed().await.is_ok() {
                        if !*channel.borrow() {
                            let _ = tx.send(false);
                            return;
                        }
                    }
                    let _ = tx.send(false);
                });
                return Ok(Some(rx));
            }
            tokio::select! {
                r = channel.changed() => if r.is_err() { anyhow::bail!("lease manager stopped") },
                _ = shutdown.wait_for(|s| *s) => return Ok(None),
            }
        }
    }
}

/// A shutdown signal that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("shutdown requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    rx
}

/// Today (UTC) by this process's clock, for checks the pure core cannot make without one
/// (an openclaw release dated in the future).
pub fn today_utc() -> crate::validation::CivilDate {
    let d = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    crate::validation::CivilDate {
        year: i32::from(d.year()),
        month: d.month().unsigned_abs().into(),
        day: d.day().unsigned_abs().into(),
    }
}
