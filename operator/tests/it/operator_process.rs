//! End to end of the real `clawhost operator` process: the in-memory API server served over
//! HTTP on 127.0.0.1 (LIST + WATCH included), a kubeconfig pointing at it, the built binary
//! as a child process; then what an administrator would see: children and status appear,
//! health and metrics answer, drift is undone, SIGTERM stops it cleanly, logs are JSON.

use clawhost_envtest::process::http_get;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use clawhost_testing::fake_apiserver::FakeApiServer;
use serde_json::{Value, json};

const NS: &str = "clients";
const CRD: &str = "apis/clawhost.dev/v1alpha1";

/// The message of the JSON log line that names the bound metrics address.
const SERVING: &str = "serving /healthz, /readyz, /metrics";

/// Sum of the samples of a Prometheus metric (all label sets) in a text exposition.
fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let v: f64 = rest.split_whitespace().last()?.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + v);
    }
    found
}

fn write_kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    path
}

struct Operator {
    child: Child,
    metrics: String,
    log: std::path::PathBuf,
}

impl Operator {
    /// Starts the operator on an OS-chosen metrics port and waits for the log line that
    /// names it (no port is picked, released and hoped to be still free).
    async fn start(dir: &Path, kubeconfig: &Path) -> Self {
        let log = dir.join("operator.log");
        let child = Command::new(env!("CARGO_BIN_EXE_clawhost"))
            .args([
                "operator",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("CLAWHOST_CONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start clawhost operator");
        let mut op = Self {
            child,
            metrics: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        op.metrics = loop {
            let bound = op.logs().lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == SERVING).then(|| v["addr"].as_str().map(str::to_string))?
            });
            if let Some(addr) = bound {
                break addr;
            }
            assert!(
                op.child.try_wait().unwrap().is_none(),
                "the operator exited; log:\n{}",
                op.logs()
            );
            assert!(
                Instant::now() < deadline,
                "no {SERVING:?} log line with the bound address; log:\n{}",
                op.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            op.metrics.starts_with("127.0.0.1:") && !op.metrics.ends_with(":0"),
            "bound address {:?}",
            op.metrics
        );
        op
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit code.
    fn terminate(&mut self, within: Duration) -> Option<i32> {
        clawhost_envtest::process::terminate(&mut self.child, within)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    op: &Operator,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; operator log:\n{}", op.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn seed(fake: &FakeApiServer, name: &str) {
    fake.seed_client(NS, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_process_reconciles_restores_drift_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let server = fake.serve(listener);
    let kubeconfig = write_kubeconfig(dir.path(), &api);
    let mut op = Operator::start(dir.path(), &kubeconfig).await;

    // Ready once connected.
    let metrics = op.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = http_get(&metrics, "/readyz").await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never 200; log:\n{}",
            op.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Created after the operator started: only the watch can bring it in.
    seed(&fake, "alice");
    let sts = wait_for("the StatefulSet", Duration::from_secs(60), &op, || {
        fake.get("apis/apps/v1", "statefulsets", NS, "alice")
    })
    .await;
    assert_eq!(sts["spec"]["replicas"], 1);
    wait_for("the Assistant status", Duration::from_secs(60), &op, || {
        fake.get(CRD, "assistants", NS, "alice")
            .filter(|a| a["status"]["conditions"].is_array())
    })
    .await;

    // The counter exists from the start; what matters is that it counted the reconcile
    // (it is bumped when the reconcile ends, so poll briefly).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get(&metrics, "/metrics")
            .await
            .expect("/metrics answers");
        assert_eq!(code, 200);
        let total = metric_value(&body, "clawhost_reconciles_total")
            .unwrap_or_else(|| panic!("no clawhost_reconciles_total sample:\n{body}"));
        if total > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "clawhost_reconciles_total still {total} after the StatefulSet appeared:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Drift: someone scales the gateway by hand; the operator puts it back.
    fake.update("apis/apps/v1", "statefulsets", NS, "alice", |o| {
        o["spec"]["replicas"] = json!(3);
    });
    wait_for(
        "the drift to be undone",
        Duration::from_secs(60),
        &op,
        || {
            fake.get("apis/apps/v1", "statefulsets", NS, "alice")
                .filter(|s| s["spec"]["replicas"] == 1)
        },
    )
    .await;

    let started = Instant::now();
    let code = op.terminate(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(0),
        "exit after SIGTERM (waited {:?}); log:\n{}",
        started.elapsed(),
        op.logs()
    );

    let logs = op.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["assistant"] == "clients/alice"),
        "no log line carries the assistant span field:\n{logs}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_keeps_process_up_not_ready_and_quiet() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    // An "API server" that reads each request and hangs up without answering: never
    // reachable, and it counts the operator's connection attempts (one per request).
    let hangup = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", hangup.local_addr().unwrap());
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = hangup.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if !buf.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let kubeconfig = write_kubeconfig(dir.path(), &api);
    let mut op = Operator::start(dir.path(), &kubeconfig).await;
    let metrics = op.metrics.clone();

    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some((code, _)) = http_get(&metrics, "/readyz").await {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered; log:\n{}",
            op.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, 503);
    assert_eq!(http_get(&metrics, "/healthz").await.map(|r| r.0), Some(200));
    // Wait (not sleep) until the first warning is logged and the operator has retried
    // twice more (backoff 1 s, 2 s): the same failure must not be logged per attempt.
    let warned = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("cannot reach the Kubernetes API"))
            .count()
    };
    let tries = wait_for(
        "the first warning and two retries",
        Duration::from_secs(60),
        &op,
        || {
            let n = attempts.load(Ordering::SeqCst);
            (n >= 3 && warned(&op.logs()) >= 1).then_some(n)
        },
    )
    .await;
    assert!(op.child.try_wait().unwrap().is_none(), "the process exited");
    assert_eq!(http_get(&metrics, "/readyz").await.map(|r| r.0), Some(503));
    let logs = op.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("cannot reach the Kubernetes API"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "want one warning line for {tries} attempts:\n{logs}"
    );
    let w: Value = serde_json::from_str(warnings[0]).expect("JSON log line");
    assert_eq!(w["level"], "WARN");
    assert!(
        w["source"]
            .as_str()
            .unwrap_or_default()
            .contains("KUBECONFIG"),
        "{w}"
    );

    assert_eq!(
        op.terminate(Duration::from_secs(10)),
        Some(0),
        "{}",
        op.logs()
    );
    server.abort();
}

/// The API fails the operator's LISTs and WATCHes for a while (500, 429, dropped): the
/// watches back off and resume, and the Assistant still converges, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_lists_and_watches_are_retried_until_convergence() {
    use clawhost_testing::fake_apiserver::{Fault, FaultKind};
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::new();
    for (path, kind, times) in [
        (
            "/apis/clawhost.dev/v1alpha1/assistants",
            FaultKind::Status(500),
            3,
        ),
        (
            "/apis/clawhost.dev/v1alpha1/assistants",
            FaultKind::Status(429),
            2,
        ),
        ("/apis/apps/v1/statefulsets", FaultKind::Status(503), 2),
        ("/api/v1/secrets", FaultKind::TransportError, 2),
    ] {
        fake.inject(Fault {
            method: Some(http::Method::GET),
            path_contains: path.into(),
            times,
            kind,
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let server = fake.serve(listener);
    seed(&fake, "alice");
    let kubeconfig = write_kubeconfig(dir.path(), &api);
    let mut op = Operator::start(dir.path(), &kubeconfig).await;
    wait_for(
        "the StatefulSet despite API faults",
        Duration::from_secs(90),
        &op,
        || fake.get("apis/apps/v1", "statefulsets", NS, "alice"),
    )
    .await;
    wait_for("the Assistant status", Duration::from_secs(60), &op, || {
        fake.get(CRD, "assistants", NS, "alice")
            .filter(|a| a["status"]["conditions"].is_array())
    })
    .await;
    let token_creates = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/secrets"))
        .count();
    assert_eq!(
        token_creates, 2,
        "token and state Secrets created exactly once each"
    );
    assert_eq!(
        op.terminate(Duration::from_secs(10)),
        Some(0),
        "log:\n{}",
        op.logs()
    );
    server.abort();
}
