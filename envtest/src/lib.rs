//! A real Kubernetes control plane for tests (envtest-style): `etcd`, `kube-apiserver` and,
//! optionally, `kube-controller-manager`, started from `$KUBEBUILDER_ASSETS` on loopback ports
//! in a temporary directory, with token users, RBAC and a JSON audit log.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let Some(_) = clawhost_envtest::require_assets() else { return Ok(()) };
//! let cp = clawhost_envtest::ControlPlane::start().await?;
//! let admin = cp.client("admin").await;
//! # let _ = admin;
//! let writes = clawhost_envtest::writes_by(&cp.audit_events(), "clawhost-operator").count();
//! # let _ = writes;
//! # Ok(()) }
//! ```

mod audit;
pub mod process;

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Read as _};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub use audit::{AuditEvent, AuditUser, ObjectRef, ResponseStatus, writes_by, writes_by_since};

/// The `system:masters` user (bypasses RBAC).
pub const ADMIN: &str = "admin";

/// Unprivileged users (no groups besides `system:authenticated`); tests bind RBAC themselves.
pub const USERS: &[&str] = &["clawhost-operator", "clawhost-console", "alice", "bob"];

/// The controller manager's user (bound by the API server's bootstrap RBAC).
const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";

const ENABLE_HINT: &str = "export KUBEBUILDER_ASSETS=$(../shared/envtest/install.sh)";

/// Where the binaries are: `$KUBEBUILDER_ASSETS` (envtest convention: a directory holding
/// `etcd`, `kube-apiserver` and `kube-controller-manager`). None when unset or empty.
pub fn assets_dir() -> Option<PathBuf> {
    std::env::var_os("KUBEBUILDER_ASSETS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// For tests: `Some(dir)` when `KUBEBUILDER_ASSETS` is set. When it is not: panics if `CI` is
/// set (non-empty), because the real-API-server tier must run in CI; otherwise prints one
/// "skipped: ..." line to stderr and returns None (the test should return early).
pub fn require_assets() -> Option<PathBuf> {
    if let Some(dir) = assets_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "KUBEBUILDER_ASSETS is not set, but CI is: the real API server test tier must run \
             in CI. Set it before running the tests: {ENABLE_HINT}"
        );
    }
    eprintln!("skipped: real API server tests need KUBEBUILDER_ASSETS ({ENABLE_HINT})");
    None
}

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Also run `kube-controller-manager` (StatefulSet -> Pods, garbage collection, namespace
    /// deletion, default ServiceAccounts). Default true.
    pub controller_manager: bool,
    /// Appended to the API server's command line, e.g. `--feature-gates=...`. A scalar flag
    /// given again overrides ours; a list flag (`--authorization-mode`) would be appended to.
    pub extra_apiserver_flags: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_manager: true,
            extra_apiserver_flags: Vec::new(),
        }
    }
}

/// A running etcd + kube-apiserver (+ kube-controller-manager) on loopback.
///
/// Owns a temporary directory ([`ControlPlane::dir`]) with the certificates, kubeconfigs,
/// audit log and one log file per process. Dropping it stops the processes (SIGTERM, then
/// SIGKILL after 5 s) and removes the directory, unless `CLAWHOST_ENVTEST_KEEP=1`.
/// The processes also die with SIGKILL when the test process dies (`PR_SET_PDEATHSIG`), so a
/// control plane kept in a `static` for a whole test binary does not leak processes (its
/// directory is left behind then, since statics are not dropped).
pub struct ControlPlane {
    tempdir: Option<tempfile::TempDir>,
    dir: PathBuf,
    assets: PathBuf,
    opts: Options,
    etcd_port: u16,
    etcd_peer_port: u16,
    apiserver_port: u16,
    /// (user, token), including [`ADMIN`] and the controller manager's user.
    tokens: Vec<(String, String)>,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    controller_manager: Option<Child>,
}

/// A process could not bind its port (another process took it between our probe and its
/// start); the whole start is retried with new ports.
#[derive(Debug)]
struct PortConflict(String);

impl std::fmt::Display for PortConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port conflict: {}", self.0)
    }
}

impl std::error::Error for PortConflict {}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proc {
    Etcd,
    ApiServer,
    ControllerManager,
}

impl Proc {
    fn name(self) -> &'static str {
        match self {
            Proc::Etcd => "etcd",
            Proc::ApiServer => "kube-apiserver",
            Proc::ControllerManager => "kube-controller-manager",
        }
    }
}

const ALL_PROCS: [Proc; 3] = [Proc::Etcd, Proc::ApiServer, Proc::ControllerManager];

impl ControlPlane {
    /// Starts a control plane with [`Options::default`] (with the controller manager).
    pub async fn start() -> Result<ControlPlane> {
        Self::start_with(Options::default()).await
    }

    /// Starts a control plane from `$KUBEBUILDER_ASSETS` and waits until it is ready:
    /// `/readyz` answers `ok` and, with the controller manager, ServiceAccount `default`
    /// exists in namespace `default`. Retried up to 3 times with new ports on a port conflict.
    pub async fn start_with(opts: Options) -> Result<ControlPlane> {
        let assets = assets_dir().with_context(|| {
            format!("KUBEBUILDER_ASSETS is not set (enable with: {ENABLE_HINT})")
        })?;
        let mut attempt = 1;
        loop {
            match Self::try_start(&assets, &opts).await {
                Ok(cp) => return Ok(cp),
                Err(e) if attempt < 3 && e.downcast_ref::<PortConflict>().is_some() => {
                    eprintln!("clawhost-envtest: {e}; retrying with new ports");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_start(assets: &Path, opts: &Options) -> Result<ControlPlane> {
        let mut bins = vec!["etcd", "kube-apiserver"];
        if opts.controller_manager {
            bins.push("kube-controller-manager");
        }
        for b in bins {
            let p = assets.join(b);
            if !p.is_file() {
                bail!(
                    "{} not found (KUBEBUILDER_ASSETS={}; install with: {ENABLE_HINT})",
                    p.display(),
                    assets.display()
                );
            }
        }
        let tempdir = tempfile::Builder::new()
            .prefix("clawhost-envtest-")
            .tempdir_in(base_tmp())
            .context("creating the control plane's temporary directory")?;
        let ports = free_ports(3).context("finding free loopback ports")?;
        let mut tokens = Vec::new();
        for user in std::iter::once(ADMIN)
            .chain(USERS.iter().copied())
            .chain(std::iter::once(CONTROLLER_MANAGER_USER))
        {
            tokens.push((user.to_owned(), random_token()?));
        }
        let mut cp = ControlPlane {
            dir: tempdir.path().to_owned(),
            tempdir: Some(tempdir),
            assets: assets.to_owned(),
            opts: opts.clone(),
            etcd_port: ports[0],
            etcd_peer_port: ports[1],
            apiserver_port: ports[2],
            tokens,
            etcd: None,
            apiserver: None,
            controller_manager: None,
        };
        cp.write_files().await?;
        cp.start_etcd().await?;
        cp.start_apiserver().await?;
        if opts.controller_manager {
            cp.start_controller_manager().await?;
        }
        Ok(cp)
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// A client authenticated as `user` ([`ADMIN`], one of [`USERS`]), built from
    /// [`ControlPlane::kubeconfig`] (so it verifies the API server's certificate against the
    /// control plane's CA). Panics on an unknown user.
    pub async fn client(&self, user: &str) -> kube::Client {
        self.try_client(user)
            .await
            .unwrap_or_else(|e| panic!("clawhost-envtest: client for {user}: {e:#}"))
    }

    async fn try_client(&self, user: &str) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig(user))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A kubeconfig file for `user` (namespace `default`), e.g. for a child process's
    /// `KUBECONFIG`. Panics on an unknown user.
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.token(user); // panics on an unknown user
        self.dir.join(kubeconfig_file_name(user))
    }

    /// The bearer token of `user`. Panics on an unknown user.
    pub fn token(&self, user: &str) -> &str {
        self.tokens
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| {
                panic!("clawhost-envtest: unknown user {user:?} (known: {ADMIN}, {USERS:?})")
            })
    }

    /// The PEM CA certificate that signed the API server's serving certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The API server's audit log (JSON lines, level Metadata).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The audit log's `ResponseComplete` events, in the order written (completion order).
    /// An unparsable (partially written) line is skipped. With `--audit-log-mode=blocking`
    /// the API server writes the event before it ends the response, so a request the test
    /// has seen complete is already in the log; no polling needed.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        audit::parse_audit_log(&self.audit_log())
    }

    /// The temporary directory: certificates, kubeconfigs, `audit.log`, and the logs
    /// `etcd.log`, `kube-apiserver.log`, `kube-controller-manager.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the API server (SIGTERM, SIGKILL after 30 s) and waits for it to exit; etcd and
    /// the controller manager keep running. No-op when it is not running.
    pub async fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            terminate(&mut child, Duration::from_secs(30)).await;
        }
    }

    /// (Re)starts the API server with the same port, etcd, certificates and users, and waits
    /// until `/readyz` answers `ok` (60 s). Its log is appended to `kube-apiserver.log`.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        if self.apiserver.is_some() {
            bail!("kube-apiserver is already running");
        }
        let args = self.apiserver_args();
        let child = self.spawn(Proc::ApiServer, &args)?;
        self.apiserver = Some(child);
        self.wait_readyz(Duration::from_secs(60)).await
    }

    /// Applies (server-side, field manager `clawhost-envtest`, forced) every
    /// CustomResourceDefinition in `paths` as admin, then waits until each is `Established`
    /// (30 s). Each path is a YAML file (may hold several documents) or a directory of
    /// `*.yaml`/`*.yml` files.
    pub async fn install_crds(&self, paths: &[&Path]) -> Result<()> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut in_dir = Vec::new();
                for entry in
                    std::fs::read_dir(p).with_context(|| format!("reading {}", p.display()))?
                {
                    let path = entry?.path();
                    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                    if yaml && path.is_file() {
                        in_dir.push(path);
                    }
                }
                in_dir.sort();
                files.extend(in_dir);
            } else {
                files.push(p.to_path_buf());
            }
        }
        let mut crds = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = serde_json::Value::deserialize(doc)
                    .with_context(|| format!("parsing {}", file.display()))?;
                if value.is_null() {
                    continue;
                }
                let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
                if kind != "CustomResourceDefinition" {
                    bail!(
                        "{}: a document of kind {kind:?}, not CustomResourceDefinition",
                        file.display()
                    );
                }
                let crd: CustomResourceDefinition = serde_json::from_value(value)
                    .with_context(|| format!("parsing {}", file.display()))?;
                crds.push(crd);
            }
        }
        if crds.is_empty() {
            bail!("no CustomResourceDefinition found in {paths:?}");
        }
        let api: Api<CustomResourceDefinition> = Api::all(self.try_client(ADMIN).await?);
        let pp = PatchParams::apply("clawhost-envtest").force();
        for crd in &crds {
            let name = crd
                .metadata
                .name
                .as_deref()
                .context("a CRD without a name")?;
            api.patch(name, &pp, &Patch::Apply(crd))
                .await
                .with_context(|| format!("applying CRD {name}"))?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for crd in &crds {
            let name = crd.metadata.name.as_deref().unwrap_or_default();
            loop {
                let current = api.get(name).await?;
                let established = current
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "CRD {name} not Established after 30 s: {:?}",
                        current.status
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    // ---- start-up ------------------------------------------------------------------------

    async fn write_files(&self) -> Result<()> {
        let d = &self.dir;
        // CA and serving certificate (P-256: fast to generate), service-account key (RSA).
        openssl(
            d,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout ca.key -out ca.crt -days 3650 -subj /CN=clawhost-envtest-ca \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign",
        )
        .await?;
        openssl(
            d,
            "req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout serving.key -out serving.csr -subj /CN=kube-apiserver",
        )
        .await?;
        std::fs::write(
            d.join("serving.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            d,
            "x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
             -out serving.crt -days 3650 -extfile serving.ext",
        )
        .await?;
        openssl(d, "genrsa -out sa.key 2048").await?;

        let mut csv = String::new();
        for (i, (user, token)) in self.tokens.iter().enumerate() {
            if user == ADMIN {
                writeln!(csv, "{token},{user},uid-{i},\"system:masters\"")?;
            } else {
                writeln!(csv, "{token},{user},uid-{i}")?;
            }
        }
        std::fs::write(d.join("tokens.csv"), csv)?;
        std::fs::write(
            d.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\n\
             kind: Policy\n\
             omitStages: [RequestReceived, ResponseStarted]\n\
             rules:\n\
             - level: Metadata\n",
        )?;

        let ca = std::fs::read(d.join("ca.crt"))?;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        for (user, token) in &self.tokens {
            let kubeconfig = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "envtest", "cluster": {
                    "server": self.server_url(),
                    "certificate-authority-data": ca,
                }}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "envtest", "context": {
                    "cluster": "envtest", "user": user, "namespace": "default",
                }}],
                "current-context": "envtest",
            });
            std::fs::write(
                d.join(kubeconfig_file_name(user)),
                serde_yaml::to_string(&kubeconfig)?,
            )?;
        }
        Ok(())
    }

    fn spawn(&self, which: Proc, args: &[String]) -> Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(which))?;
        let bin = self.assets.join(which.name());
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        spawn_with_pdeathsig(cmd).with_context(|| format!("starting {}", bin.display()))
    }

    fn log_path(&self, which: Proc) -> PathBuf {
        self.dir.join(format!("{}.log", which.name()))
    }

    fn child_mut(&mut self, which: Proc) -> &mut Option<Child> {
        match which {
            Proc::Etcd => &mut self.etcd,
            Proc::ApiServer => &mut self.apiserver,
            Proc::ControllerManager => &mut self.controller_manager,
        }
    }

    /// Fails when `which` has exited (a port conflict when its log says so).
    fn check_running(&mut self, which: Proc) -> Result<()> {
        let status = match self.child_mut(which) {
            Some(child) => child.try_wait()?,
            None => bail!("{} is not running", which.name()),
        };
        let Some(status) = status else { return Ok(()) };
        *self.child_mut(which) = None;
        let log = std::fs::read_to_string(self.log_path(which)).unwrap_or_default();
        if log.contains("address already in use") {
            return Err(
                PortConflict(format!("{} exited: address already in use", which.name())).into(),
            );
        }
        bail!(
            "{} exited during start-up ({status})\n{}",
            which.name(),
            self.log_tails()
        )
    }

    /// The last 30 lines of each process's log.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for which in ALL_PROCS {
            let Ok(text) = std::fs::read_to_string(self.log_path(which)) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            let _ = writeln!(
                out,
                "--- last {} lines of {} ---\n{}",
                tail.len(),
                self.log_path(which).display(),
                tail.join("\n")
            );
        }
        out
    }

    async fn start_etcd(&mut self) -> Result<()> {
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{}", self.etcd_peer_port);
        let args = vec![
            format!("--data-dir={}", self.dir.join("etcd").display()),
            "--name=default".into(),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
            "--initial-cluster-state=new".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        self.etcd = Some(self.spawn(Proc::Etcd, &args)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.check_running(Proc::Etcd)?;
            let last = match http_get_plain(self.etcd_port, "/health").await {
                Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "etcd not healthy after 30 s (last: {last})\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn apiserver_args(&self) -> Vec<String> {
        let d = |f: &str| self.dir.join(f).display().to_string();
        let mut args = vec![
            format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port),
            format!("--secure-port={}", self.apiserver_port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--cert-dir={}", d("apiserver-certs")),
            format!("--tls-cert-file={}", d("serving.crt")),
            format!("--tls-private-key-file={}", d("serving.key")),
            format!("--client-ca-file={}", d("ca.crt")),
            format!("--service-account-key-file={}", d("sa.key")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--authorization-mode=Node,RBAC".into(),
            format!("--token-auth-file={}", d("tokens.csv")),
            format!("--audit-policy-file={}", d("audit-policy.yaml")),
            format!("--audit-log-path={}", d("audit.log")),
            "--audit-log-format=json".into(),
            // No rotation within a test's life: 0 means the default (100 MB, then the log
            // moves aside and audit_events() would miss what it held).
            "--audit-log-maxsize=100000".into(),
            "--audit-log-mode=blocking".into(),
            "--allow-privileged=true".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
            // Without this, a graceful stop waits up to 60 s for open watches (the controller
            // manager's, an operator's) to end; with it, watches are closed within 2 s.
            "--shutdown-watch-termination-grace-period=2s".into(),
        ];
        args.extend(self.opts.extra_apiserver_flags.iter().cloned());
        args
    }

    async fn wait_readyz(&mut self, timeout: Duration) -> Result<()> {
        let client = self.try_client(ADMIN).await?;
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running(Proc::ApiServer)?;
            let req = http::Request::get("/readyz").body(Vec::new())?;
            let last = match tokio::time::timeout(Duration::from_secs(5), client.request_text(req))
                .await
            {
                Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
                Ok(Ok(body)) => body,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "request timed out".into(),
            };
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after {timeout:?} (last /readyz: {last})\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start_controller_manager(&mut self) -> Result<()> {
        let d = |f: &str| self.dir.join(f).display().to_string();
        let args = vec![
            format!(
                "--kubeconfig={}",
                d(&kubeconfig_file_name(CONTROLLER_MANAGER_USER))
            ),
            format!("--service-account-private-key-file={}", d("sa.key")),
            "--use-service-account-credentials=true".into(),
            "--leader-elect=false".into(),
            "--controllers=*,-service-ca-certificate-publisher-controller".into(),
            format!("--root-ca-file={}", d("ca.crt")),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
            "--kube-api-qps=1000".into(),
            "--kube-api-burst=2000".into(),
        ];
        self.controller_manager = Some(self.spawn(Proc::ControllerManager, &args)?);
        let api: Api<ServiceAccount> = Api::namespaced(self.try_client(ADMIN).await?, "default");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check_running(Proc::ControllerManager)?;
            let last = match api.get_opt("default").await {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => "not found".to_owned(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "ServiceAccount default/default not created by kube-controller-manager \
                     after 60 s (last: {last})\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The API server's graceful shutdown talks to etcd (it removes its endpoint lease),
        // so stop etcd last.
        let first: Vec<Child> = [self.controller_manager.take(), self.apiserver.take()]
            .into_iter()
            .flatten()
            .collect();
        terminate_all_blocking(first, Duration::from_secs(5));
        terminate_all_blocking(
            self.etcd.take().into_iter().collect(),
            Duration::from_secs(5),
        );
        if let Some(dir) = self.tempdir.take() {
            if std::env::var_os("CLAWHOST_ENVTEST_KEEP").is_some_and(|v| v == "1") {
                let kept = dir.keep();
                eprintln!("clawhost-envtest: kept {}", kept.display());
            } else {
                drop(dir);
            }
        }
    }
}

// ---- helpers ---------------------------------------------------------------------------

fn kubeconfig_file_name(user: &str) -> String {
    format!("kubeconfig-{}.yaml", user.replace(':', "_"))
}

/// Where the temporary directory goes: `$CLAWHOST_ENVTEST_TMPDIR`, else `/dev/shm` when it is
/// a tmpfs with at least 1 GiB free (etcd fsyncs every write; on tmpfs that costs nothing),
/// else the system temporary directory.
fn base_tmp() -> PathBuf {
    if let Some(d) = std::env::var_os("CLAWHOST_ENVTEST_TMPDIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && writable_free_bytes(shm).is_some_and(|b| b >= 1 << 30) {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// Free bytes of the file system of `path`, None when `path` is not writable.
fn writable_free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // SAFETY: access(2) only reads the path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)] // u32 on 32-bit targets
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    // Hold all listeners at once so the ports differ.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Runs `openssl` in `dir` with whitespace-separated `args`.
async fn openssl(dir: &Path, args: &str) -> Result<()> {
    let out = tokio::process::Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running openssl (is the openssl CLI installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed ({}): {}",
            args.split_whitespace().collect::<Vec<_>>().join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A plain HTTP/1.0 GET on loopback (etcd's `/health`); returns the body.
async fn http_get_plain(port: u16, path: &str) -> io::Result<String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or(text))
    };
    tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
}

fn sigterm(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// SIGTERM to all, wait up to `grace` for them to exit, then SIGKILL; always reaps.
fn terminate_all_blocking(mut children: Vec<Child>, grace: Duration) {
    for child in &mut children {
        if matches!(child.try_wait(), Ok(None)) {
            sigterm(child);
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        if children.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for child in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
async fn terminate(child: &mut Child, grace: Duration) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    sigterm(child);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that it gets SIGKILL when this process dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process;
/// test harnesses run each test on its own thread, so a control plane shared between tests
/// would be killed when the first test's thread ends. Every child is therefore forked by one
/// dedicated thread that lives as long as the process.
fn spawn_with_pdeathsig(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The parent already died before prctl took effect.
                return Err(io::Error::other("parent process exited"));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("clawhost-envtest-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("clawhost-envtest: starting the spawner thread");
        tx
    });
    let (reply, result) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}
