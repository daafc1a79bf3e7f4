//! `clawhost-bench`: drives the reconciler for N Assistants against the in-memory API
//! server and prints API requests per new Assistant, writes per no-op reconcile, CPU time
//! per reconcile and the operator's resident memory.
//!
//! Two processes per N, so the memory figure is the operator's own: the API server
//! (`clawhost-bench fake-apiserver`, hidden) holds every object; the operator side
//! (`clawhost-bench operator`, hidden) holds what the running operator holds — a reflector
//! store of the Assistants fed by a real LIST + WATCH over HTTP, and the reconcile
//! `Context` — and runs the real `reconcile` over HTTP. Its VmRSS/VmHWM and getrusage are
//! the figures.
//!
//! ```text
//! cargo run --release --bin clawhost-bench -- --sizes 100,1000,10000
//! ```

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use clawhost::api::Assistant;
use clawhost::config::OperatorConfig;
use clawhost::reconciler::{self, Context};
use clawhost_testing::fake_apiserver::FakeApiServer;

const NS: &str = "clients";
const CRD: &str = "apis/clawhost.dev/v1alpha1";

#[derive(Parser)]
#[command(
    name = "clawhost-bench",
    about = "Operator benchmark: requests, writes, CPU and memory per N Assistants"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Numbers of Assistants, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1_000, 10_000])]
    sizes: Vec<usize>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a seeded in-memory API server on 127.0.0.1 (prints `listening ADDR`).
    #[command(hide = true)]
    FakeApiserver {
        #[arg(long)]
        seed: usize,
    },
    /// The operator side: reflector + reconcile passes against `--api`; prints JSON figures.
    #[command(hide = true)]
    Operator {
        #[arg(long)]
        api: String,
        #[arg(long)]
        n: usize,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Figures {
    n: usize,
    new_requests_per_assistant: f64,
    new_writes_per_assistant: f64,
    new_cpu_ms_per_reconcile: f64,
    noop_requests_per_reconcile: f64,
    noop_writes_per_reconcile: f64,
    noop_cpu_ms_per_reconcile: f64,
    noop_pass_seconds: f64,
    new_pass_seconds: f64,
    errors: usize,
    rss_baseline_mib: f64,
    rss_store_mib: f64,
    rss_after_mib: f64,
    hwm_mib: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::FakeApiserver { seed }) => fake_apiserver(seed),
        Some(Cmd::Operator { api, n }) => {
            let figures = tokio::runtime::Runtime::new()?.block_on(operator_side(&api, n))?;
            println!("{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        None => orchestrate(&cli.sizes),
    }
}

fn orchestrate(sizes: &[usize]) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for &n in sizes {
        eprintln!("== N = {n}");
        let mut fake = Command::new(&exe)
            .args(["fake-apiserver", "--seed", &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        {
            use std::io::BufRead;
            let out = fake.stdout.as_mut().expect("piped");
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| anyhow::anyhow!("fake API server said {line:?}"))?
            .to_string();
        let out = Command::new(&exe)
            .args(["operator", "--api", &format!("http://{addr}"), "--n"])
            .arg(n.to_string())
            .stderr(Stdio::inherit())
            .output()?;
        let _ = fake.kill();
        let _ = fake.wait();
        if !out.status.success() {
            anyhow::bail!("operator side failed for N = {n}: {}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let figures: Figures = serde_json::from_str(text.lines().last().unwrap_or_default())?;
        rows.push(figures);
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Figures]) {
    println!();
    println!(
        "clawhost operator benchmark ({} cores; API server in a separate process over HTTP on 127.0.0.1)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7} | {:>12} {:>10} {:>10} | {:>10} {:>10} {:>10} {:>8} | {:>9} {:>9} {:>9} {:>9} | {:>6}",
        "N",
        "req/new",
        "wr/new",
        "cpu/new",
        "req/noop",
        "wr/noop",
        "cpu/noop",
        "noop s",
        "RSS base",
        "RSS store",
        "RSS end",
        "peak",
        "errors"
    );
    for f in rows {
        println!(
            "{:>7} | {:>12.1} {:>10.1} {:>8.2}ms | {:>10.1} {:>10.2} {:>8.2}ms {:>8.1} | {:>6.1}MiB {:>6.1}MiB {:>6.1}MiB {:>6.1}MiB | {:>6}",
            f.n,
            f.new_requests_per_assistant,
            f.new_writes_per_assistant,
            f.new_cpu_ms_per_reconcile,
            f.noop_requests_per_reconcile,
            f.noop_writes_per_reconcile,
            f.noop_cpu_ms_per_reconcile,
            f.noop_pass_seconds,
            f.rss_baseline_mib,
            f.rss_store_mib,
            f.rss_after_mib,
            f.hwm_mib,
            f.errors
        );
    }
    println!();
    println!(
        "req/new, wr/new: API requests / writes of the first reconcile of a new Assistant (incl. Events)"
    );
    println!(
        "req/noop, wr/noop: per reconcile of an Assistant whose children are all up to date (target: 0 writes)"
    );
    println!("cpu: user+sys CPU of the operator process per reconcile (getrusage)");
    println!(
        "RSS: operator process VmRSS before the Assistant store, after it synced, after all passes; peak = VmHWM (target at 10,000: <= 150 MiB)"
    );
}

// ---------------------------------------------------------------- the API server process

/// Every StatefulSet gets a ready pod, every claim is bound: what the cluster would do.
fn cluster_runs(fake: &FakeApiServer) {
    for sts in fake.list("apis/apps/v1", "statefulsets") {
        let name = sts["metadata"]["name"].as_str().unwrap_or_default();
        let ns = sts["metadata"]["namespace"].as_str().unwrap_or_default();
        fake.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-0"), "namespace": ns},
            "status": {"phase": "Running", "containerStatuses": [{"name": "gateway", "ready": true, "restartCount": 0, "image": "x", "imageID": "y"}]}
        }));
    }
    for pvc in fake.list("api/v1", "persistentvolumeclaims") {
        let name = pvc["metadata"]["name"].as_str().unwrap_or_default();
        let ns = pvc["metadata"]["namespace"].as_str().unwrap_or_default();
        let size = pvc["spec"]["resources"]["requests"]["storage"].clone();
        fake.update("api/v1", "persistentvolumeclaims", ns, name, |o| {
            o["status"] = json!({"phase": "Bound", "capacity": {"storage": size}});
        });
    }
}

fn fake_apiserver(seed: usize) -> anyhow::Result<()> {
    let fake = FakeApiServer::new();
    for i in 0..seed {
        let name = format!("client-{i:05}");
        fake.seed_client(NS, &name);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        let f1 = fake.clone();
        let f2 = fake.clone();
        let f3 = fake.clone();
        let app = fake
            .router()
            .route(
                "/_fake/stats",
                get(move || {
                    let f = f1.clone();
                    async move {
                        let (requests, writes) = f.request_counts();
                        axum::Json(json!({
                            "requests": requests,
                            "writes": writes,
                            "objects": f.object_count(),
                            "assistants_rv": f.max_resource_version(CRD, "assistants"),
                        }))
                    }
                }),
            )
            .route(
                "/_fake/clear",
                post(move || {
                    let f = f2.clone();
                    async move {
                        f.clear_requests();
                        "ok"
                    }
                }),
            )
            .route(
                "/_fake/cluster-runs",
                post(move || {
                    let f = f3.clone();
                    async move {
                        cluster_runs(&f);
                        "ok"
                    }
                }),
            );
        axum::serve(listener, app).await?;
        Ok(())
    })
}

// ---------------------------------------------------------------- the operator process

fn proc_status_mib(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Control {
    client: kube::Client,
}

impl Control {
    async fn call(&self, method: http::Method, path: &str) -> anyhow::Result<Value> {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Vec::new())?;
        let text = self.client.request_text(req).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
    async fn stats(&self) -> anyhow::Result<(u64, u64, u64)> {
        let v = self.call(http::Method::GET, "/_fake/stats").await?;
        Ok((
            v["requests"].as_u64().unwrap_or(0),
            v["writes"].as_u64().unwrap_or(0),
            v["assistants_rv"].as_u64().unwrap_or(0),
        ))
    }
}

struct Pass {
    requests: u64,
    writes: u64,
    cpu: Duration,
    wall: Duration,
    errors: usize,
}

async fn pass(
    store: &kube::runtime::reflector::Store<Assistant>,
    ctx: &Arc<Context>,
    control: &Control,
) -> anyhow::Result<Pass> {
    control.call(http::Method::POST, "/_fake/clear").await?;
    let concurrency = usize::from(ctx.config.reconcile.concurrency);
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let results: Vec<_> = futures::stream::iter(store.state())
        .map(|a| reconciler::reconcile(a, ctx.clone()))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let errors = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first reconcile error: {e}");
    }
    let (requests, writes, _) = control.stats().await?;
    Ok(Pass {
        requests,
        writes,
        cpu,
        wall,
        errors,
    })
}

/// Waits until the store has seen the newest Assistant version the API server holds.
async fn store_caught_up(
    store: &kube::runtime::reflector::Store<Assistant>,
    control: &Control,
) -> anyhow::Result<()> {
    let (_, _, want) = control.stats().await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let have = store
            .state()
            .iter()
            .filter_map(|a| a.metadata.resource_version.as_deref()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        if have >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the Assistant store did not catch up (have {have}, want {want})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn operator_side(api: &str, n: usize) -> anyhow::Result<Figures> {
    use clawhost::reconciler::events::EventPublisher;
    use kube::runtime::events::Reporter;
    use kube::runtime::{WatchStreamExt, reflector, watcher};

    let client = kube::Client::try_from(kube::Config::new(api.parse()?))?;
    let control = Control {
        client: client.clone(),
    };
    let config = OperatorConfig::default();
    // As the real operator builds it (runtime::run).
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: Arc::new(config),
        metrics: Default::default(),
        backoff: Default::default(),
        recorder: Some(EventPublisher::new(
            client.clone(),
            Reporter {
                controller: "clawhost".into(),
                instance: None,
            },
        )),
        tailnet: None,
        invites: None,
        access_key: None,
        access_clock: Default::default(),
        reconcile_timeout: clawhost::reconciler::RECONCILE_TIMEOUT,
        clock: Arc::new(clawhost::clock::SystemClock),
        snapshot_api: Default::default(),
        snapshot_bucket: Arc::new(clawhost::reconciler::backup::throttle::CreationBucket::new(
            20,
        )),
        backup_clock: Default::default(),
    });
    let rss_baseline = proc_status_mib("VmRSS:");

    // The controller's Assistant store: LIST + WATCH, as `Controller::new` sets it up.
    let (store, writer) = reflector::store::<Assistant>();
    let api_all: kube::Api<Assistant> = kube::Api::all(client.clone());
    let watch = reflector(
        writer,
        watcher(api_all, watcher::Config::default().any_semantic()),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(watch.for_each(|_| async {}));
    store.wait_until_ready().await?;
    anyhow::ensure!(
        store.len() == n,
        "store has {} Assistants, want {n}",
        store.len()
    );
    let rss_store = proc_status_mib("VmRSS:");
    eprintln!("store synced: {n} Assistants, VmRSS {rss_store:.1} MiB");

    let new = pass(&store, &ctx, &control).await?;
    eprintln!(
        "new pass: {:.1}s, {} requests, {} writes, {} errors",
        new.wall.as_secs_f64(),
        new.requests,
        new.writes,
        new.errors
    );
    control
        .call(http::Method::POST, "/_fake/cluster-runs")
        .await?;
    store_caught_up(&store, &control).await?;
    let settle = pass(&store, &ctx, &control).await?;
    eprintln!(
        "settle pass: {:.1}s, {} writes",
        settle.wall.as_secs_f64(),
        settle.writes
    );
    store_caught_up(&store, &control).await?;
    let noop = pass(&store, &ctx, &control).await?;
    eprintln!(
        "no-op pass: {:.1}s, {} requests, {} writes",
        noop.wall.as_secs_f64(),
        noop.requests,
        noop.writes
    );
    let per = |x: u64| x as f64 / n as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    Ok(Figures {
        n,
        new_requests_per_assistant: per(new.requests),
        new_writes_per_assistant: per(new.writes),
        new_cpu_ms_per_reconcile: ms(new.cpu),
        noop_requests_per_reconcile: per(noop.requests),
        noop_writes_per_reconcile: per(noop.writes),
        noop_cpu_ms_per_reconcile: ms(noop.cpu),
        noop_pass_seconds: noop.wall.as_secs_f64(),
        new_pass_seconds: new.wall.as_secs_f64(),
        errors: new.errors + settle.errors + noop.errors,
        rss_baseline_mib: rss_baseline,
        rss_store_mib: rss_store,
        rss_after_mib: proc_status_mib("VmRSS:"),
        hwm_mib: proc_status_mib("VmHWM:"),
    })
}
