//! The backup runbooks' commands, run against the real API server with the real operator
//! binary (docs/runbooks/restore-a-client.md, backups-failing.md, ClawhostBackupMissing.md).
//!
//! A block is run when the line before its ```sh fence is `<!-- runbook-test: NAME -->`; in
//! these pages every ```sh block has one (a block that cannot run here, e.g. pod logs,
//! is marked `not-in-ci`). The test knows every marker: a marker it does not know fails,
//! and so does a marker it names that a page lost (drift both ways). Blocks run with
//! `bash -euo pipefail -c`, env `KUBECONFIG` (admin), `CNS`, `NAME`, `SNAPSHOT`, `NS`, and
//! wait with `kubectl wait --timeout`; between blocks the test checks what the page
//! promises.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clawhost::api::{REPLACED_BY_ANNOTATION, RESTORED_FROM_ANNOTATION};
use clawhost::children::RETAINED_LABEL;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::support::*;

/// The marker of a block that documents a command this test cannot run (it needs pods).
const NOT_IN_CI: &str = "not-in-ci";

/// Each page and the markers the test runs, in page order.
const PAGES: &[(&str, &[&str])] = &[
    (
        "docs/runbooks/ClawhostBackupMissing.md",
        &["fleet-backup-health"],
    ),
    (
        "docs/runbooks/backups-failing.md",
        &[
            "read-condition",
            "describe-snapshots",
            "check-snapshot-api",
            "check-snapshot-controller",
            "take-one-now",
        ],
    ),
    (
        "docs/runbooks/restore-a-client.md",
        &[
            "list-snapshots",
            "restore-in-place",
            "check-claims",
            "resume",
            "restore-new",
            "rollback",
            "list-retained-claims",
        ],
    ),
];

/// One runnable block of a page.
#[derive(Debug, Clone, PartialEq)]
struct Block {
    name: String,
    script: String,
    /// 1-based line of the marker (for messages).
    line: usize,
}

/// The marked blocks of a page. Errors: a marker not followed by a ```sh fence, an
/// unterminated fence, a ```sh fence without a marker, a marker used twice.
fn parse_blocks(md: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = md.lines().collect();
    let mut blocks: Vec<Block> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(name) = line
            .strip_prefix("<!-- runbook-test:")
            .and_then(|r| r.strip_suffix("-->"))
            .map(str::trim)
        {
            let fence = lines
                .get(i + 1)
                .map(|l| l.trim())
                .filter(|l| *l == "```sh" || *l == "```bash");
            if fence.is_none() {
                return Err(format!(
                    "line {}: marker {name:?} is not followed by a ```sh fence",
                    i + 1
                ));
            }
            let end = (i + 2..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .ok_or_else(|| format!("line {}: block {name:?} never ends", i + 1))?;
            if blocks.iter().any(|b| b.name == name) && name != NOT_IN_CI {
                return Err(format!("line {}: marker {name:?} used twice", i + 1));
            }
            blocks.push(Block {
                name: name.to_owned(),
                script: lines[i + 2..end].join("\n"),
                line: i + 1,
            });
            i = end + 1;
            continue;
        }
        if line.starts_with("```sh") || line.starts_with("```bash") {
            return Err(format!(
                "line {}: a shell block without a `<!-- runbook-test: NAME -->` marker \
                 (mark it, or `not-in-ci` when it cannot run against a test API server)",
                i + 1
            ));
        }
        i += 1;
    }
    Ok(blocks)
}

/// Markers of `blocks` the test does not know, and markers it names that are missing.
fn drift(blocks: &[Block], expected: &[&str]) -> Result<(), String> {
    let found: BTreeSet<&str> = blocks
        .iter()
        .map(|b| b.name.as_str())
        .filter(|n| *n != NOT_IN_CI)
        .collect();
    let known: BTreeSet<&str> = expected.iter().copied().collect();
    let unknown: Vec<_> = found.difference(&known).collect();
    let lost: Vec<_> = known.difference(&found).collect();
    if unknown.is_empty() && lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "markers the test does not run: {unknown:?}; markers the test runs that the page lost: {lost:?}"
        ))
    }
}

fn page(path: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    parse_blocks(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_parser_finds_marked_blocks_and_refuses_unmarked_ones() {
    let md = "# T\n<!-- runbook-test: one -->\n```sh\necho 1\necho 2\n```\ntext\n<!-- runbook-test: not-in-ci -->\n```sh\nkubectl logs x\n```\n";
    let blocks = parse_blocks(md).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        blocks[0],
        Block {
            name: "one".into(),
            script: "echo 1\necho 2".into(),
            line: 2
        }
    );
    assert!(drift(&blocks, &["one"]).is_ok());
    assert!(
        drift(&blocks, &["one", "two"])
            .unwrap_err()
            .contains("lost: [\"two\"]")
    );
    assert!(
        drift(&blocks, &[])
            .unwrap_err()
            .contains("does not run: [\"one\"]")
    );
    assert!(
        parse_blocks("```sh\nrm -rf /\n```\n")
            .unwrap_err()
            .contains("without a")
    );
    assert!(
        parse_blocks("<!-- runbook-test: a -->\ntext\n```sh\nx\n```\n")
            .unwrap_err()
            .contains("not followed")
    );
    assert!(
        parse_blocks("<!-- runbook-test: a -->\n```sh\nx\n")
            .unwrap_err()
            .contains("never ends")
    );
    assert!(
        parse_blocks(
            "<!-- runbook-test: a -->\n```sh\nx\n```\n<!-- runbook-test: a -->\n```sh\ny\n```\n"
        )
        .unwrap_err()
        .contains("twice")
    );
}

/// Cheap and always on (no API server): the pages and this test name the same blocks.
#[test]
fn runbook_markers_match_the_test() {
    for (path, expected) in PAGES {
        let blocks = page(path);
        drift(&blocks, expected).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

/// Runs the marked blocks of the pages in order.
struct Runner {
    kubectl_dir: PathBuf,
    kubeconfig: PathBuf,
    env: Vec<(&'static str, String)>,
    blocks: Vec<Block>,
    ran: BTreeSet<String>,
}

impl Runner {
    fn set(&mut self, key: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_owned()));
    }

    /// Runs one block, panicking with its output when it fails; returns stdout.
    async fn run(&mut self, name: &str) -> String {
        let (ok, stdout, stderr, line, script) = self.attempt(name).await;
        assert!(
            ok,
            "runbook block {name:?} (line {line}) failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        self.ran.insert(name.to_owned());
        stdout
    }

    /// Runs one block that must fail (a check that finds the problem it looks for);
    /// returns stdout and stderr.
    async fn run_failing(&mut self, name: &str) -> (String, String) {
        let (ok, stdout, stderr, line, _) = self.attempt(name).await;
        assert!(
            !ok,
            "runbook block {name:?} (line {line}) passed but should fail:\n{stdout}"
        );
        (stdout, stderr)
    }

    /// Runs one block: (success, stdout, stderr, line, script).
    async fn attempt(&mut self, name: &str) -> (bool, String, String, usize, String) {
        let block = self
            .blocks
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("no block {name:?}"))
            .clone();
        let path = format!(
            "{}:{}",
            self.kubectl_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", &block.script])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", path)
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("block {name:?} (line {}) ran over 180 s", block.line))
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!(
            "--- runbook block {name} ({}) ---\n{stdout}{stderr}",
            out.status
        );
        (
            out.status.success(),
            stdout,
            stderr,
            block.line,
            block.script,
        )
    }
}

/// Background stand-in for the PV controller of a `WaitForFirstConsumer` storage class
/// (EKS gp2/gp3, GKE standard-rwo, AKS managed-csi): binds a claim only once a StatefulSet
/// with at least one replica mounts it, so a suspended client's new claim stays Pending.
fn first_consumer_claim_binder(client: Client, ns: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        loop {
            if let (Ok(claims), Ok(sets)) = (
                claims.list(&ListParams::default()).await,
                sets.list(&ListParams::default()).await,
            ) {
                let mounted: BTreeSet<String> = sets
                    .items
                    .iter()
                    .filter_map(|s| s.spec.as_ref())
                    .filter(|s| s.replicas.unwrap_or(1) >= 1)
                    .filter_map(|s| s.template.spec.as_ref())
                    .flat_map(|p| p.volumes.iter().flatten())
                    .filter_map(|v| v.persistent_volume_claim.as_ref())
                    .map(|c| c.claim_name.clone())
                    .collect();
                for c in claims.items {
                    let bound = c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
                    if !bound
                        && c.metadata.deletion_timestamp.is_none()
                        && mounted.contains(&c.name_any())
                    {
                        mark_bound(&client, &ns, &c.name_any()).await;
                    }
                }
            }
            // A stand-in controller's poll, not a wait for timing: tests wait on conditions.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// A Deployment `kube-system/snapshot-controller` with one ready replica (what
/// `check-snapshot-controller` looks for; no controller manager runs it here).
async fn fake_snapshot_controller(client: &Client) {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "kube-system");
    let d = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "snapshot-controller", "namespace": "kube-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "snapshot-controller"}},
            "template": {
                "metadata": {"labels": {"app": "snapshot-controller"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/sig-storage/snapshot-controller:v8.2.0"}]}
            }
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    api.patch_status(
        "snapshot-controller",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"replicas": 1, "readyReplicas": 1}})),
    )
    .await
    .unwrap();
}

async fn claims(client: &Client, ns: &str, base: &str) -> Vec<PersistentVolumeClaim> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("clawhost.dev/assistant={base}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_runbooks_run_against_the_real_api_server() {
    let _one = serial().await;
    let Some(kubectl) = kubectl() else {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("no kubectl: tests/tools/install.sh puts one in $CLAWHOST_CACHE/bin");
        }
        eprintln!("skipped: the runbook test needs kubectl (tests/tools/install.sh)");
        return;
    };
    let Some(cp) = control_plane_with_snapshots(false).await else {
        return;
    };
    let (cns, name) = ("clients", "alice");
    let admin = operator_namespace(&cp, cns, true).await;
    // No controller manager: the test plays the PV and snapshot controllers; claims bind
    // only once a running StatefulSet mounts them (WaitForFirstConsumer).
    let binder = first_consumer_claim_binder(admin.clone(), cns.into());
    let snapshotter = snapshot_controller(admin.clone(), cns.into());
    create_assistant(
        &admin,
        &assistant_json(
            cns,
            name,
            json!({"storage": {"size": "1Gi", "onDelete": "Delete"}}),
        ),
    )
    .await;
    let since = jiff::Timestamp::now();
    let _op = Operator::start(&cp, Some(&backups_config(""))).await;
    wait_for(
        "alice's volume to be ready",
        Duration::from_secs(60),
        || async {
            let a = get_assistant(&admin, cns, name).await?;
            (condition(&a, "StorageReady")?.0 == "True").then_some(())
        },
    )
    .await;

    let mut blocks = Vec::new();
    for (path, expected) in PAGES {
        let b = page(path);
        drift(&b, expected).unwrap_or_else(|e| panic!("{path}: {e}"));
        blocks.extend(b.into_iter().filter(|b| b.name != NOT_IN_CI));
    }
    let mut r = Runner {
        kubectl_dir: kubectl.parent().unwrap().to_path_buf(),
        kubeconfig: cp.kubeconfig("admin"),
        env: vec![
            ("CNS", cns.into()),
            ("NAME", name.into()),
            ("NS", "clawhost-system".into()),
            ("SNAPSHOT", String::new()),
        ],
        blocks,
        ran: BTreeSet::new(),
    };

    // The alert's page and the failing-backups page: read-only checks, then one now.
    r.run("fleet-backup-health").await;
    let out = r.run("read-condition").await;
    let a = get_assistant(&admin, cns, name).await.unwrap();
    let (status, reason, message) =
        condition(&a, "BackupHealthy").expect("the operator evaluated backups");
    assert!(
        out.contains(&format!("BackupHealthy {status} {reason}: {message}")),
        "the condition's status, reason and message: {out}"
    );
    r.run("describe-snapshots").await;
    let out = r.run("check-snapshot-api").await;
    assert!(out.contains(SNAPSHOT_CLASS), "the class is listed: {out}");
    // Without a snapshot controller the check fails and says so; with a ready one it passes.
    let (out, err) = r.run_failing("check-snapshot-controller").await;
    assert!(
        out.contains("no snapshot controller deployment")
            && err.contains("no ready snapshot controller"),
        "{out}{err}"
    );
    fake_snapshot_controller(&admin).await;
    let out = r.run("check-snapshot-controller").await;
    assert!(
        out.contains("kube-system") && out.contains("snapshot-controller"),
        "{out}"
    );
    r.run("take-one-now").await;
    let a = get_assistant(&admin, cns, name).await.unwrap();
    let taken = a
        .status
        .as_ref()
        .and_then(|s| s.backup.as_ref())
        .and_then(|b| b.request_snapshot.clone())
        .expect("take-one-now recorded the snapshot in status.backup.requestSnapshot");
    let snap = snapshots_api(&admin, cns).get(&taken).await.unwrap();
    assert_eq!(
        snap.labels()["clawhost.dev/snapshot-kind"],
        "manual",
        "the annotation takes a manual snapshot"
    );
    assert_eq!(snap.status.unwrap().ready_to_use, Some(true));

    // Restore in place from it.
    r.set("SNAPSHOT", &taken);
    let out = r.run("list-snapshots").await;
    assert!(out.contains(&taken), "the list shows {taken}: {out}");
    let out = r.run("restore-in-place").await;
    r.run("check-claims").await;
    let all = claims(&admin, cns, name).await;
    let old = all
        .iter()
        .find(|c| c.name_any() == "alice-data")
        .expect("the old claim is still there");
    let new = all
        .iter()
        .find(|c| c.name_any() != "alice-data" && c.labels().get(RETAINED_LABEL).is_none())
        .expect("a new claim");
    assert_eq!(
        old.labels().get(RETAINED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        old.annotations().get(REPLACED_BY_ANNOTATION),
        Some(&new.name_any()),
        "the old claim says what replaced it"
    );
    assert!(
        old.owner_references().is_empty(),
        "the retained claim has no owner (onDelete: Delete gave it one)"
    );
    assert_eq!(
        data_source(new),
        Some((
            "snapshot.storage.k8s.io".into(),
            "VolumeSnapshot".into(),
            taken.clone()
        ))
    );
    assert_eq!(
        new.annotations().get(RESTORED_FROM_ANNOTATION),
        Some(&taken)
    );
    assert!(
        out.contains(&format!("new claim {}", new.name_any())),
        "{out}"
    );
    assert_ne!(
        new.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Bound"),
        "suspended: no pod mounts the new claim, so a WaitForFirstConsumer class leaves it Pending"
    );
    r.run("resume").await;
    let now = claims(&admin, cns, name).await;
    let resumed = now.iter().find(|c| c.name_any() == new.name_any()).unwrap();
    assert_eq!(
        resumed.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Bound"),
        "resumed: the gateway's StatefulSet mounts it and it binds"
    );
    let a = get_assistant(&admin, cns, name).await.unwrap();
    assert_eq!(
        a.status
            .as_ref()
            .and_then(|s| s.storage.as_ref())
            .and_then(|s| s.claim_name.clone()),
        Some(new.name_any()),
        "status.storage.claimName names the restored claim"
    );

    // Into a new Assistant.
    r.run("restore-new").await;
    let restored = claims(&admin, cns, "alice-restored").await;
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(data_source(&restored[0]).map(|d| d.2), Some(taken.clone()));

    // Roll back: restore from the pre-restore snapshot of the volume the restore replaced.
    r.run("rollback").await;
    let all = claims(&admin, cns, name).await;
    let live: Vec<_> = all
        .iter()
        .filter(|c| c.labels().get(RETAINED_LABEL).is_none())
        .collect();
    assert_eq!(live.len(), 1, "one live claim after the rollback: {all:?}");
    let pre = data_source(live[0]).expect("made from a snapshot").2;
    assert!(pre.ends_with("-pre-restore"), "rolled back from {pre}");
    assert_eq!(
        all.len(),
        3,
        "alice-data, the first restore, the rollback: all kept"
    );
    let out = r.run("list-retained-claims").await;
    assert!(out.contains("alice-data"), "{out}");

    // Nothing ever deleted a claim.
    let pvc_deletes: Vec<_> = cp
        .audit_events()
        .into_iter()
        .filter(|e| {
            e.verb == "delete"
                && e.object_ref.as_ref().and_then(|o| o.resource.as_deref())
                    == Some("persistentvolumeclaims")
                && e.request_received_timestamp
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|t| t >= since)
        })
        .collect();
    assert!(
        pvc_deletes.is_empty(),
        "no claim is deleted by a restore:\n{}",
        describe(&pvc_deletes.iter().collect::<Vec<_>>())
    );

    let all: BTreeSet<String> = PAGES
        .iter()
        .flat_map(|(_, names)| names.iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(r.ran, all, "every marked block ran");
    binder.abort();
    snapshotter.abort();
}
