//! End to end of the real `clawhost operator` process: the in-memory API server served over
//! HTTP on 127.0.0.1 (LIST + WATCH included), a kubeconfig pointing at it, the built binary
//! as a child process; then what an administrator would see: children and status appear,
//! health and metrics answer, drift is undone, SIGTERM stops it cleanly, logs are JSON.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clawhost::fake_apiserver::FakeApiServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "clients";
const CRD: &str = "apis/clawhost.dev/v1alpha1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    fn start(dir: &Path, kubeconfig: &Path) -> Self {
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = dir.join("operator.log");
        let child = Command::new(env!("CARGO_BIN_EXE_clawhost"))
            .args([
                "operator",
                "--metrics-addr",
                &metrics,
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
        Self {
            child,
            metrics,
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit code.
    fn terminate(&mut self, within: Duration) -> Option<i32> {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
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

/// A plain HTTP/1.1 GET: (status code, body).
async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
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
    let mut op = Operator::start(dir.path(), &kubeconfig);

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

    let (code, body) = http_get(&metrics, "/metrics")
        .await
        .expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(body.contains("clawhost_reconciles_total"), "{body}");

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
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{closed}"));
    let mut op = Operator::start(dir.path(), &kubeconfig);
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
    // Several retries happen in this time (1 s, 2 s, 4 s backoff).
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(op.child.try_wait().unwrap().is_none(), "the process exited");
    assert_eq!(http_get(&metrics, "/readyz").await.map(|r| r.0), Some(503));
    let logs = op.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("cannot reach the Kubernetes API"))
        .collect();
    assert_eq!(warnings.len(), 1, "want one warning line:\n{logs}");
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
}

/// The API fails the operator's LISTs and WATCHes for a while (500, 429, dropped): the
/// watches back off and resume, and the Assistant still converges, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_lists_and_watches_are_retried_until_convergence() {
    use clawhost::fake_apiserver::{Fault, FaultKind};
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
    let mut op = Operator::start(dir.path(), &kubeconfig);
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
