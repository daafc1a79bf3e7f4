#!/usr/bin/env node
// The gateway contract test: the operator's rendered pod spec, run the way the pod runs it,
// against the real pinned openclaw. Started by run.sh (which installs Node and openclaw,
// renders examples/assistant-full.yaml and puts this process in a loopback-only network
// namespace). Prints one line per check and, last, `gateway-contract: N passed, M failed`.
//
// Environment:
//   CLAWHOST_CONTRACT_IDLE_SECONDS     idle wait before the second memory sample (default 60)
//   CLAWHOST_CONTRACT_STARTUP_TIMEOUT  seconds to wait for /startupz "started" (default 240)
//   CLAWHOST_CONTRACT_KEEP=1           keep the work directory (volumes, logs) for a post-mortem
//   CLAWHOST_CONTRACT_OPTIONAL_SECRETS=1  give optional secretKeyRefs made-up values too (default:
//                                      unset, as when the Secret is absent; a made-up
//                                      TELEGRAM_BOT_TOKEN enables Telegram, and offline its stop
//                                      then takes openclaw's whole 325 s budget and exits non-zero)

import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { spawn, spawnSync, execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  CONTRACT,
  podPlanFromRender,
  contractProblems,
  resolveEnv,
  overridePort,
  missingLeaves,
  durationMs,
  getPath,
  setPath,
  kubeletWrite,
  parseDockerfile,
  imageConfigFromInspect,
  childrenOf,
  processTree,
  procInfo,
  memoryOfTree,
  freePort,
  sleep,
  pollUntil,
  httpJson,
  wsSession,
  wsSessionReady,
  rpc,
} from "./lib.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const IMAGE_DIR = path.join(ROOT, "gateway-image");

// ---------------------------------------------------------------------------------------
// Arguments (from run.sh)
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
// The built image: its root filesystem (mounted by run.sh) and its config (buildah inspect).
const ROOTFS = opt("rootfs");
const IMAGE_INSPECT = opt("image-inspect");
const IMAGE_TAG = opt("image", "");
const NODE_VERSION = opt("node-version");
const OPENCLAW_VERSION = opt("openclaw-version");
const RENDER_FILE = opt("render");
const RENDER_NOTE = opt("render-note", "");
if (!ROOTFS || !IMAGE_INSPECT || !NODE_VERSION || !OPENCLAW_VERSION) {
  console.error("contract.mjs: run me through tests/gateway-contract/run.sh");
  process.exit(2);
}
/** A path inside the image, as a host path under ROOTFS (symlinks resolved inside the image). */
function inImage(p) {
  let host = path.join(ROOTFS, p);
  for (let hops = 0; hops < 10; hops++) {
    let st;
    try {
      st = fs.lstatSync(host);
    } catch {
      return host;
    }
    if (!st.isSymbolicLink()) return host;
    const t = fs.readlinkSync(host);
    host = t.startsWith("/") ? path.join(ROOTFS, t) : path.resolve(path.dirname(host), t);
  }
  return host;
}
// The image's own node and openclaw, run from its root filesystem for the CLI-only checks.
const NODE = inImage("/usr/local/bin/node");
const OPENCLAW = inImage("/usr/local/bin/openclaw");
const IMAGE = imageConfigFromInspect(JSON.parse(fs.readFileSync(IMAGE_INSPECT, "utf8")));
const IDLE_SECONDS = Number(process.env.CLAWHOST_CONTRACT_IDLE_SECONDS ?? 60);
const STARTUP_TIMEOUT_MS = Number(process.env.CLAWHOST_CONTRACT_STARTUP_TIMEOUT ?? 240) * 1000;
const READY_TIMEOUT_MS = Number(process.env.CLAWHOST_CONTRACT_READY_TIMEOUT ?? 60) * 1000;
const KEEP = process.env.CLAWHOST_CONTRACT_KEEP === "1";
const BOGUS_KEY = "clawhostContractBogusKey";

// ---------------------------------------------------------------------------------------
// Tally
let passed = 0;
let failed = 0;
let n = 0;
const failures = [];
function report(ok, name, detail) {
  n += 1;
  if (ok) passed += 1;
  else {
    failed += 1;
    failures.push(name);
  }
  const d = detail ? ` — ${String(detail).replace(/\n/g, "\n    ")}` : "";
  console.log(`${ok ? "ok" : "not ok"} ${n} - ${name}${d}`);
}
/** Runs one check; `fn` returns an optional note or throws. */
async function check(name, fn) {
  try {
    const note = await fn();
    report(true, name, note);
    return true;
  } catch (e) {
    report(false, name, e?.message ?? String(e));
    return false;
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function info(line) {
  console.log(`# ${line}`);
}

// ---------------------------------------------------------------------------------------
// Work dir and the pod simulator
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), "gateway-contract."));
fs.chmodSync(WORK, 0o755);
const livePods = new Set();

function cleanup() {
  for (const pod of livePods) pod.destroy();
  if (!KEEP) {
    try {
      fs.rmSync(WORK, { recursive: true, force: true });
    } catch {}
  }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    console.log(`# interrupted by ${sig}`);
    process.exit(130);
  });
}

let pvcCount = 0;
/** A fresh PVC directory: root:1000 2775, as the kubelet leaves a volume with fsGroup 1000. */
function newPvc(label, { owner = [0, CONTRACT.gid], mode = 0o2775 } = {}) {
  const dir = path.join(WORK, `pvc-${label}-${++pvcCount}`);
  fs.mkdirSync(dir);
  fs.chownSync(dir, owner[0], owner[1]);
  fs.chmodSync(dir, mode);
  return dir;
}
/** Mode and group of the projected config file, as the rendered Secret volume asks. */
let secretFileOpts = { fileMode: 0o644, gid: null };
function newSecretDir(label, text) {
  const dir = path.join(WORK, `secret-${label}`);
  kubeletWrite(dir, { [CONTRACT.configKey]: text }, secretFileOpts);
  return dir;
}
const writeConfig = (dir, text) => kubeletWrite(dir, { [CONTRACT.configKey]: text }, secretFileOpts);

let podCount = 0;
class Pod {
  constructor({ label, pvc, secret, env, cmd, uid = CONTRACT.uid, gid = CONTRACT.gid }) {
    this.label = label;
    this.runDir = path.join(WORK, `pod-${label}-${++podCount}`);
    fs.mkdirSync(path.join(this.runDir, "emptydir"), { recursive: true });
    fs.chmodSync(this.runDir, 0o755);
    fs.chmodSync(path.join(this.runDir, "emptydir"), 0o1777);
    this.pvc = pvc;
    this.secret = secret;
    this.env = env;
    this.cmd = cmd;
    this.uid = uid;
    this.gid = gid;
    this.stdoutFile = path.join(this.runDir, "stdout.log");
    this.stderrFile = path.join(this.runDir, "stderr.log");
  }
  start() {
    const out = fs.openSync(this.stdoutFile, "w");
    const err = fs.openSync(this.stderrFile, "w");
    const podsim = [
      path.join(HERE, "podsim.sh"),
      this.runDir,
      ROOTFS,
      this.pvc,
      this.secret,
      String(this.uid),
      String(this.gid),
      IMAGE.workdir,
      "--",
      ...this.env.map(([k, v]) => `${k}=${v}`),
      ...this.cmd,
    ];
    this.startedAt = Date.now();
    this.proc = spawn("unshare", ["--mount", "--pid", "--fork", "--propagation", "private", "--", "/bin/sh", ...podsim], {
      stdio: ["ignore", out, err],
    });
    fs.closeSync(out);
    fs.closeSync(err);
    this.exitInfo = null;
    this.exited = new Promise((resolve) => {
      this.proc.on("exit", (code, signal) => {
        this.exitInfo = { code, signal, at: Date.now() };
        livePods.delete(this);
        resolve(this.exitInfo);
      });
    });
    livePods.add(this);
    return this;
  }
  /** Host PID of tini (PID 1 of the pod's PID namespace). */
  async tiniPid() {
    return pollUntil("tini in the pod", () => {
      if (this.exitInfo) throw new Error(`pod exited ${JSON.stringify(this.exitInfo)}`);
      const kids = childrenOf(this.proc.pid);
      return kids.length ? kids[0] : null;
    }, { timeoutMs: 15000, intervalMs: 50 });
  }
  /** The openclaw-gateway process (the entrypoint exec'd into it). */
  gatewayPid() {
    if (!this.tini) return null;
    const p = processTree(this.tini).map(procInfo).find((x) => x && x.name.startsWith("openclaw-gatewa"));
    return p?.pid ?? null;
  }
  stdout() {
    return readText(this.stdoutFile);
  }
  stderr() {
    return readText(this.stderrFile);
  }
  /** stdout + stderr + openclaw's own rolling log in the emptyDir. */
  allLogs() {
    let s = this.stdout() + this.stderr();
    const d = path.join(this.runDir, "emptydir", "openclaw");
    try {
      for (const f of fs.readdirSync(d)) s += readText(path.join(d, f));
    } catch {}
    return s;
  }
  destroy() {
    if (this.exitInfo) return;
    try {
      if (this.tini) process.kill(this.tini, "SIGKILL"); // kills the whole PID namespace
    } catch {}
    try {
      this.proc.kill("SIGKILL");
    } catch {}
  }
}
function readText(f) {
  try {
    return fs.readFileSync(f, "utf8");
  } catch {
    return "";
  }
}
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, "");
const tail = (s, lines = 15) => stripAnsi(s).trim().split("\n").slice(-lines).join("\n");

/** Waits until /startupz says started (or the pod exits / the deadline passes). */
async function waitStarted(pod, port, timeoutMs = STARTUP_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (pod.exitInfo) throw new Error(`gateway exited (${JSON.stringify(pod.exitInfo)}) before starting:\n${tail(pod.stdout() + pod.stderr())}`);
    try {
      const r = await httpJson(`http://127.0.0.1:${port}/startupz`, { timeoutMs: 3000 });
      if (r.json?.status === "started") return { ms: Date.now() - pod.startedAt, body: r.json };
    } catch {}
    if (Date.now() > deadline) throw new Error(`/startupz not "started" after ${timeoutMs / 1000} s:\n${tail(pod.stdout() + pod.stderr())}`);
    await sleep(500);
  }
}

/** SIGTERM to PID 1 (what the kubelet does) and wait for the exit. */
async function terminate(pod, graceSeconds) {
  const t0 = Date.now();
  process.kill(pod.tini, "SIGTERM");
  const timeout = sleep((graceSeconds + 5) * 1000).then(() => null);
  const ex = await Promise.race([pod.exited, timeout]);
  if (!ex) {
    pod.destroy();
    throw new Error(`still running ${graceSeconds + 5} s after SIGTERM (grace period ${graceSeconds} s); killed`);
  }
  return { ...ex, ms: ex.at - t0 };
}

function run(cmd, args, { env, timeoutMs = 120000, cwd } = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, cwd }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr, error });
    });
  });
}

/** openclaw CLI on the host (not in the pod), with a throwaway HOME. */
let cliCount = 0;
async function openclawCli(args, { configText, extraEnv = {} } = {}) {
  const dir = path.join(WORK, `cli-${++cliCount}`);
  fs.mkdirSync(path.join(dir, "home"), { recursive: true });
  const env = {
    PATH: `${path.dirname(NODE)}:${process.env.PATH}`,
    HOME: path.join(dir, "home"),
    TMPDIR: dir,
    OPENCLAW_STATE_DIR: path.join(dir, "home", ".openclaw"),
    OPENCLAW_NO_AUTO_UPDATE: "1",
    OPENCLAW_CONFIG_READONLY: "1",
    ...extraEnv,
  };
  if (configText !== undefined) {
    fs.writeFileSync(path.join(dir, "openclaw.json"), configText);
    env.OPENCLAW_CONFIG_PATH = path.join(dir, "openclaw.json");
  }
  return run(NODE, [OPENCLAW, ...args], { env, timeoutMs: 180000, cwd: dir });
}
function parseJsonOut(s) {
  const i = s.indexOf("{");
  return JSON.parse(s.slice(i));
}

// A fake server for the probe's negative cases.
function fakeServer(handler) {
  return new Promise((resolve) => {
    const srv = http.createServer(handler);
    srv.listen(0, "127.0.0.1", () => resolve({ srv, port: srv.address().port }));
  });
}
function runProbe(kind, port) {
  const t0 = Date.now();
  return run(NODE, [inImage("/usr/local/bin/clawhost-probe"), kind], {
    env: { PATH: process.env.PATH, OPENCLAW_GATEWAY_PORT: String(port) },
    timeoutMs: 20000,
  }).then((r) => ({ ...r, ms: Date.now() - t0 }));
}

const MiB = (kib) => `${(kib / 1024).toFixed(0)} MiB`;
function describeMemory(m) {
  const parts = m.procs.map((p) => `${p.name === "node" || p.name === "MainThread" ? path.basename(p.cmd[1] ?? p.name) : p.name} ${MiB(p.rssKiB)}`);
  return `RSS ${MiB(m.rssKiB)} (${parts.join(", ")}); PSS ${MiB(m.pssKiB)}; anonymous ${MiB(m.anonKiB)}; peak RSS (sum of VmHWM) ${MiB(m.hwmKiB)}; CPU ${m.cpuSec.toFixed(1)} s`;
}

// =======================================================================================
const T0 = Date.now();
async function main() {
  info(`work dir ${WORK}${KEEP ? " (kept)" : ""}; node ${NODE_VERSION}, openclaw ${OPENCLAW_VERSION}`);

  // --- 1. harness self-checks (fixture, no gateway) -------------------------------------
  const fixture = JSON.parse(fs.readFileSync(path.join(HERE, "fixtures", "render-fixture.json"), "utf8"));
  await check("harness: the fixture pod spec satisfies the contract checks", () => {
    const plan = podPlanFromRender(fixture);
    const p = contractProblems(plan);
    assert(p.length === 0, p.join("; "));
    // and the checks do bite: a subPath config mount and a command are refused
    const bad = structuredClone(fixture);
    const c = bad.items.find((o) => o.kind === "StatefulSet").spec.template.spec.containers[0];
    c.command = ["sh"];
    c.volumeMounts.find((m) => m.mountPath === "/etc/openclaw").subPath = "openclaw.json";
    c.env = c.env.filter((e) => e.name !== "TMPDIR");
    const pb = contractProblems(podPlanFromRender(bad));
    assert(pb.some((x) => x.includes("command")) && pb.some((x) => x.includes("subPath")) && pb.some((x) => x.includes("TMPDIR")), `mutated spec not refused: ${pb.join("; ")}`);
  });
  await check("harness: env resolution (secretKeyRef, $(VAR)) and port override stay consistent", () => {
    const plan = podPlanFromRender(fixture);
    const { env } = resolveEnv(plan, { token: "T0K" });
    const m = new Map(env);
    assert(m.get("OPENCLAW_GATEWAY_TOKEN") === "T0K", "token not substituted");
    assert(m.get("ANTHROPIC_API_KEY")?.startsWith("contract-test-"), "other secret not made up");
    const o = overridePort(env, plan.container.args, 41234);
    assert(new Map(o.env).get("OPENCLAW_GATEWAY_PORT") === "41234", "env port");
    assert(o.args.join(" ") === "openclaw gateway run --bind loopback --port 41234 --auth token", o.args.join(" "));
    const p2 = structuredClone(plan);
    const opt = { name: "C", valueFrom: { secretKeyRef: { name: "s", key: "k", optional: true } } };
    p2.container = { ...plan.container, env: [{ name: "A", value: "x" }, { name: "B", value: "$(A)/y$$(A)" }, opt] };
    const r2 = new Map(resolveEnv(p2, { token: "t" }).env);
    assert(r2.get("B") === "x/y$(A)", `$(VAR) expansion gave ${r2.get("B")}`);
    assert(!r2.has("C"), "optional secret ref not left unset");
    assert(new Map(resolveEnv(p2, { token: "t", optionalSecrets: true }).env).get("C")?.startsWith("contract-test-"), "optionalSecrets ignored");
    assert(durationMs("45m") === 2700000 && durationMs("1h30m") === 5400000 && durationMs("x") === null, "durationMs");
  });
  await check("harness: kubelet-style Secret volume writes (..data swap, stable key symlink, old dir removed)", () => {
    const d = path.join(WORK, "kubelet-selfcheck");
    const t1 = kubeletWrite(d, { "openclaw.json": "one" });
    assert(fs.readlinkSync(path.join(d, "openclaw.json")) === "..data/openclaw.json", "key symlink");
    assert(fs.readFileSync(path.join(d, "openclaw.json"), "utf8") === "one", "content 1");
    const t2 = kubeletWrite(d, { "openclaw.json": "two" });
    assert(t1 !== t2 && fs.readlinkSync(path.join(d, "..data")) === t2, "..data not swapped");
    assert(!fs.existsSync(path.join(d, t1)), "old timestamped dir left behind");
    assert(fs.readFileSync(path.join(d, "openclaw.json"), "utf8") === "two", "content 2");
    assert(!fs.existsSync(path.join(d, "..data_tmp")), "..data_tmp left behind");
  });

  // --- 2. the image recipe --------------------------------------------------------------
  const dockerfileText = readText(path.join(IMAGE_DIR, "Dockerfile"));
  const df = parseDockerfile(dockerfileText);
  await check("Dockerfile: base is node:<tested version>-bookworm-slim pinned by digest", () => {
    const from = df.from.at(-1) ?? "";
    const re = new RegExp(`^node:${NODE_VERSION.replace(/\./g, "\\.")}-bookworm-slim@sha256:[0-9a-f]{64}$`);
    assert(re.test(from), `FROM ${JSON.stringify(from)} (want node:${NODE_VERSION}-bookworm-slim@sha256:<64 hex>)`);
    return from;
  });
  await check("Dockerfile: ARG OPENCLAW_VERSION is the tested openclaw version", () => {
    assert(df.args.OPENCLAW_VERSION === OPENCLAW_VERSION, `ARG OPENCLAW_VERSION=${df.args.OPENCLAW_VERSION}, test pins ${OPENCLAW_VERSION}`);
    assert(/npm install[^\n]*--global[^\n]*"openclaw@\$\{OPENCLAW_VERSION\}"/.test(dockerfileText.replace(/\\\n/g, " ")), "no `npm install --global ... \"openclaw@${OPENCLAW_VERSION}\"`");
  });
  await check(`image config: ENTRYPOINT, CMD, USER, WORKDIR, ENV, HEALTHCHECK match the pod contract (${IMAGE_TAG})`, () => {
    const p = [];
    const ep = ["/usr/bin/tini", "--", "/usr/local/bin/clawhost-entrypoint"];
    if (JSON.stringify(IMAGE.entrypoint) !== JSON.stringify(ep)) p.push(`ENTRYPOINT ${JSON.stringify(IMAGE.entrypoint)}`);
    if (JSON.stringify(IMAGE.cmd) !== JSON.stringify(CONTRACT.args)) p.push(`CMD ${JSON.stringify(IMAGE.cmd)}`);
    if (!/^1000(:1000)?$/.test(IMAGE.user ?? "")) p.push(`USER ${IMAGE.user} (want numeric 1000:1000 so runAsNonRoot can verify it)`);
    if (IMAGE.workdir !== CONTRACT.homeMount) p.push(`WORKDIR ${IMAGE.workdir} (openclaw needs an existing cwd; want ${CONTRACT.homeMount})`);
    for (const k of ["HOME", "OPENCLAW_STATE_DIR", "OPENCLAW_NO_AUTO_UPDATE", "TMPDIR"]) {
      if (IMAGE.env[k] !== CONTRACT.env[k]) p.push(`ENV ${k}=${IMAGE.env[k]} (want ${CONTRACT.env[k]})`);
    }
    if (!(IMAGE.env.PATH ?? "").split(":").includes("/usr/local/bin")) p.push(`ENV PATH=${IMAGE.env.PATH} lacks /usr/local/bin`);
    for (const l of ["org.opencontainers.image.version", "org.opencontainers.image.source", "org.opencontainers.image.title"]) {
      if (!IMAGE.labels[l]) p.push(`LABEL ${l} missing`);
    }
    if (IMAGE.labels["org.opencontainers.image.version"] !== OPENCLAW_VERSION) p.push(`LABEL version ${IMAGE.labels["org.opencontainers.image.version"]}`);
    const hc = IMAGE.healthcheck;
    if (JSON.stringify(hc?.test) !== JSON.stringify(["CMD", "/usr/local/bin/clawhost-probe", "ready"])) p.push(`HEALTHCHECK ${JSON.stringify(hc?.test)}`);
    if (!(hc?.timeoutS >= 3)) p.push(`HEALTHCHECK timeout ${hc?.timeoutS} s (the probe's own budget is 3 s)`);
    if (IMAGE.stopsignal && IMAGE.stopsignal !== "SIGTERM") p.push(`STOPSIGNAL ${IMAGE.stopsignal}`);
    if (!IMAGE.exposedPorts.includes("18789/tcp")) p.push(`EXPOSE ${IMAGE.exposedPorts.join(",")}`);
    assert(p.length === 0, p.join("; "));
    return `user ${IMAGE.user}, workdir ${IMAGE.workdir}, healthcheck every ${hc.intervalS} s`;
  });
  await check("image files: node and openclaw at the pinned versions; entrypoint and probe are the committed scripts, executable", async () => {
    const p = [];
    for (const [inImg, src] of [["/usr/local/bin/clawhost-entrypoint", "entrypoint.sh"], ["/usr/local/bin/clawhost-probe", "clawhost-probe"]]) {
      const f = inImage(inImg);
      if (!fs.existsSync(f)) {
        p.push(`${inImg} missing`);
        continue;
      }
      if (!fs.readFileSync(f).equals(fs.readFileSync(path.join(IMAGE_DIR, src)))) p.push(`${inImg} differs from gateway-image/${src}`);
      if ((fs.statSync(f).mode & 0o005) !== 0o005) p.push(`${inImg} mode ${(fs.statSync(f).mode & 0o777).toString(8)} (uid 1000 must read and run it)`);
    }
    if (!fs.existsSync(inImage("/usr/bin/tini"))) p.push("/usr/bin/tini missing");
    const nv = await run(NODE, ["--version"]);
    if (nv.stdout.trim() !== `v${NODE_VERSION}`) p.push(`node ${nv.stdout.trim()} (want v${NODE_VERSION})`);
    const ov = await run(NODE, [OPENCLAW, "--version"], { env: { PATH: path.dirname(NODE), HOME: WORK } });
    if (!ov.stdout.includes(`OpenClaw ${OPENCLAW_VERSION}`)) p.push(`openclaw --version: ${ov.stdout.trim() || ov.stderr.trim()}`);
    assert(p.length === 0, p.join("; "));
    return `node ${nv.stdout.trim()}, ${ov.stdout.trim().split("\n")[0]}`;
  });
  await check("shellcheck: entrypoint.sh, toolchain.sh, update-config-schema.sh, run.sh, podsim.sh", async () => {
    const files = [
      path.join(IMAGE_DIR, "entrypoint.sh"),
      path.join(IMAGE_DIR, "toolchain.sh"),
      path.join(IMAGE_DIR, "update-config-schema.sh"),
      path.join(HERE, "run.sh"),
      path.join(HERE, "podsim.sh"),
    ];
    const r = await run("shellcheck", ["-x", ...files], { cwd: ROOT });
    assert(r.code === 0, `shellcheck exit ${r.code}:\n${(r.stdout + r.stderr).slice(0, 3000)}`);
  });
  await check("clawhost-probe: plain Node script, standard library only", async () => {
    const src = readText(path.join(IMAGE_DIR, "clawhost-probe"));
    assert(src.startsWith("#!/usr/bin/env node\n"), "no node shebang");
    const reqs = [...src.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]);
    assert(reqs.every((r) => r.startsWith("node:")), `non-builtin requires: ${reqs.join(", ")}`);
    const r = await run(NODE, ["--check", path.join(IMAGE_DIR, "clawhost-probe")]);
    assert(r.code === 0, r.stderr);
    assert((fs.statSync(path.join(IMAGE_DIR, "clawhost-probe")).mode & 0o111) !== 0, "not executable");
  });

  // --- 3. the rendered pod spec -----------------------------------------------------------
  let plan = null;
  await check(`render: examples/assistant-full.yaml -> one gateway pod${RENDER_NOTE ? ` (${RENDER_NOTE})` : ""}`, () => {
    assert(RENDER_FILE && fs.existsSync(RENDER_FILE), "no render output (see run.sh output above)");
    const list = JSON.parse(fs.readFileSync(RENDER_FILE, "utf8"));
    plan = podPlanFromRender(list);
    return `StatefulSet ${plan.namespace}/${plan.name}, image ${plan.container.image}, ${list.items.length} objects`;
  });
  if (!plan) return;
  await check("render: pod spec matches the image contract (args, env, mounts, UID, probes, grace period, hosting keys)", () => {
    const p = contractProblems(plan);
    assert(p.length === 0, p.join("\n"));
  });
  let renderedCfg = null;
  try {
    renderedCfg = JSON.parse(plan.configText);
  } catch {}
  if (!renderedCfg) {
    report(false, "render: config Secret carries a JSON openclaw.json", "nothing to run");
    return;
  }
  const grace = plan.podSpec.terminationGracePeriodSeconds ?? 30;
  {
    const sec = plan.volumes.config?.secret ?? {};
    const item = (sec.items ?? []).find((i) => i.key === CONTRACT.configKey);
    secretFileOpts = { fileMode: item?.mode ?? sec.defaultMode ?? 0o644, gid: plan.podSpec.securityContext?.fsGroup ?? null };
    info(`config Secret volume: ${CONTRACT.configKey} mode ${secretFileOpts.fileMode.toString(8)}, group ${secretFileOpts.gid ?? "root"} (fsGroup)`);
  }
  const TOKEN = crypto.randomBytes(24).toString("base64url");
  const resolved = resolveEnv(plan, {
    token: TOKEN,
    madeUp: (w) => `contract-test-${w}-${crypto.randomBytes(4).toString("hex")}`,
    optionalSecrets: process.env.CLAWHOST_CONTRACT_OPTIONAL_SECRETS === "1",
  });
  for (const note of resolved.notes) info(note);
  const imageEnv = { ...IMAGE.env };
  /** The container's environment: image ENV, then the pod's env (with a free port). */
  const containerEnv = (port, overrides = {}) => {
    const o = overridePort(resolved.env, plan.container.args ?? [], port);
    const m = new Map(Object.entries(imageEnv));
    for (const [k, v] of o.env) m.set(k, v);
    for (const [k, v] of Object.entries(overrides)) m.set(k, v);
    return { env: [...m.entries()], args: o.args };
  };
  const podCmd = (args) => [...IMAGE.entrypoint, ...(args.length ? args : IMAGE.cmd)];
  const envMap = new Map(containerEnv(18789).env);
  const runtimeEnvForCli = Object.fromEntries([...envMap].filter(([k]) => !["HOME", "TMPDIR", "PATH", "OPENCLAW_STATE_DIR", "OPENCLAW_CONFIG_PATH"].includes(k)));

  // --- 4. probe negatives (fake servers) --------------------------------------------------
  await check("clawhost-probe: refuses a 200 HTML catch-all, a 503 body, a refused port and a hung server (≤ 3 s)", async () => {
    const html = await fakeServer((q, s) => {
      s.writeHead(200, { "content-type": "text/html" });
      s.end("<!doctype html><title>control ui</title>");
    });
    const starting = await fakeServer((q, s) => {
      s.writeHead(503, { "content-type": "application/json" });
      s.end('{"ok":false,"status":"starting"}');
    });
    const hung = await fakeServer(() => {});
    const gone = await freePort();
    try {
      const bad = [];
      for (const kind of ["startup", "ready", "live"]) {
        for (const [what, port] of [["html", html.port], ["503", starting.port], ["refused", gone]]) {
          const r = await runProbe(kind, port);
          if (r.code !== 1) bad.push(`${kind}/${what} exit ${r.code}`);
        }
      }
      const r = await runProbe("ready", hung.port);
      if (r.code !== 1) bad.push(`hung exit ${r.code}`);
      if (r.ms > 3000) bad.push(`hung took ${r.ms} ms`);
      assert(bad.length === 0, bad.join("; "));
      return `hung server: exit 1 after ${r.ms} ms`;
    } finally {
      for (const s of [html, starting, hung]) {
        s.srv.closeAllConnections?.();
        s.srv.close();
      }
    }
  });

  // --- 5. the real gateway, first boot ----------------------------------------------------
  const secretDir = newSecretDir("main", plan.configText);
  const pvc = newPvc("main");
  const port1 = await freePort();
  const c1 = containerEnv(port1);
  info(`pod command: ${podCmd(c1.args).join(" ")}`);
  info(`pod env: ${c1.env.map(([k, v]) => (/TOKEN|KEY|SECRET|PASSWORD/.test(k) ? `${k}=<test value>` : `${k}=${v}`)).join(" ")}`);
  const pod1 = new Pod({ label: "boot1", pvc, secret: secretDir, env: c1.env, cmd: podCmd(c1.args) }).start();
  let started1 = null;
  await check("gateway: starts from the rendered spec (uid 1000, read-only root, read-only config dir, emptyDir /tmp)", async () => {
    pod1.tini = await pod1.tiniPid();
    started1 = await waitStarted(pod1, port1);
    const gw = procInfo(pod1.gatewayPid());
    assert(gw, "no openclaw-gateway process in the pod");
    assert(gw.uid === CONTRACT.uid && gw.gid === CONTRACT.gid, `gateway runs as ${gw.uid}:${gw.gid}`);
    assert(started1.body.version === OPENCLAW_VERSION, `version ${started1.body.version}`);
    return `"started" ${(started1.ms / 1000).toFixed(1)} s after exec`;
  });
  if (!started1) {
    info(`gateway output:\n${tail(pod1.stdout() + pod1.stderr(), 40)}`);
    pod1.destroy();
    return;
  }
  const base = `http://127.0.0.1:${port1}`;
  const mem = {};
  // Readiness after "started": a timeout is a failed check (with the last /readyz body and
  // the gateway's output), not something to swallow; the memory sample below depends on it.
  let ready1 = false;
  await check(`gateway: /readyz reports ready within ${READY_TIMEOUT_MS / 1000} s of "started"`, async () => {
    const t = Date.now();
    let last = null;
    try {
      await pollUntil(
        "/readyz ready",
        async () => {
          last = await httpJson(`${base}/readyz`);
          return last.json?.ready === true;
        },
        { timeoutMs: READY_TIMEOUT_MS },
      );
    } catch (e) {
      throw new Error(
        `readiness timeout: ${e?.message ?? e}; last /readyz: ${last ? `${last.status} ${last.text.slice(0, 300)}` : "no answer"}\n` +
          `gateway output:\n${tail(pod1.stdout() + pod1.stderr())}`,
      );
    }
    ready1 = true;
    return `ready ${((Date.now() - t) / 1000).toFixed(1)} s after "started"`;
  });
  mem.startup = memoryOfTree(pod1.tini);
  info(`memory after start-up${ready1 ? "" : " (NOT ready: readiness timed out)"}: ${describeMemory(mem.startup)}`);

  // While the gateway idles (memory sample 2), run the checks that do not touch it.
  const offline = (async () => {
    const results = [];
    const rec = (ok, name, detail) => results.push([ok, name, detail]);
    const sub = async (name, fn) => {
      try {
        rec(true, name, await fn());
      } catch (e) {
        rec(false, name, e?.message ?? String(e));
      }
    };
    await sub("schema: gateway-image/openclaw-config.schema.json equals `openclaw config schema --json` of the pinned version", async () => {
      const snap = readText(path.join(IMAGE_DIR, "openclaw-config.schema.json"));
      assert(snap, "snapshot missing (run gateway-image/update-config-schema.sh)");
      const r = await openclawCli(["config", "schema", "--json"]);
      assert(r.code === 0, `exit ${r.code}: ${r.stderr.slice(0, 500)}`);
      const fresh = r.stdout.trimEnd() + "\n";
      assert(fresh === snap, `snapshot differs from a fresh export (${snap.length} vs ${fresh.length} bytes); run gateway-image/update-config-schema.sh`);
      return `${(snap.length / 1e6).toFixed(1)} MB, draft-07`;
    });
    await sub("validate: the rendered openclaw.json is valid for `openclaw config validate`", async () => {
      const r = await openclawCli(["config", "validate", "--json"], { configText: plan.configText, extraEnv: runtimeEnvForCli });
      const j = parseJsonOut(r.stdout);
      assert(r.code === 0 && j.valid === true, `exit ${r.code}: ${JSON.stringify(j).slice(0, 800)}`);
      return j.warnings?.length ? `warnings: ${JSON.stringify(j.warnings)}` : "no warnings";
    });
    const bogus = structuredClone(renderedCfg);
    setPath(bogus, `gateway.${BOGUS_KEY}`, true);
    const bogusText = JSON.stringify(bogus, null, 2) + "\n";
    await sub(`validate: an unknown key (gateway.${BOGUS_KEY}) is refused by \`openclaw config validate\``, async () => {
      const r = await openclawCli(["config", "validate", "--json"], { configText: bogusText, extraEnv: runtimeEnvForCli });
      const j = parseJsonOut(r.stdout);
      assert(r.code === 1 && j.valid === false, `exit ${r.code}: ${JSON.stringify(j).slice(0, 500)}`);
      const want = { path: "gateway", message: `Unrecognized key: "${BOGUS_KEY}"` };
      assert(j.issues?.some((i) => i.path === want.path && i.message === want.message), `issues ${JSON.stringify(j.issues)}`);
      return `exit 1, issues ${JSON.stringify(j.issues)}`;
    });
    const hasJsonschema = spawnSync("python3", ["-c", "import jsonschema"], { stdio: "ignore" }).status === 0;
    if (hasJsonschema) {
      await sub("schema: a plain draft-07 validator (python jsonschema) with the snapshot gives the corpus' rawSchemaValid verdicts", async () => {
        const py = [
          "import json, sys, jsonschema",
          "s = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))",
          "v = jsonschema.Draft7Validator(s)",
          "print(json.dumps([{'name': k['name'], 'valid': not any(True for _ in v.iter_errors(k['config']))} for k in c['cases']]))",
        ].join("\n");
        const r = await run("python3", ["-c", py, path.join(IMAGE_DIR, "openclaw-config.schema.json"), path.join(HERE, "fixtures", "config-corpus.json")], { timeoutMs: 120000 });
        assert(r.code === 0, r.stderr.slice(0, 500));
        const got = JSON.parse(r.stdout);
        const corpus = JSON.parse(readText(path.join(HERE, "fixtures", "config-corpus.json")));
        const wrong = corpus.cases.filter((c, i) => got[i].valid !== c.rawSchemaValid).map((c) => c.name);
        assert(wrong.length === 0, `raw schema verdict differs from the corpus for: ${wrong.join("; ")}`);
        const differ = corpus.cases.filter((c) => c.rawSchemaValid !== c.valid).length;
        return `${corpus.cases.length} cases; ${differ} where the raw schema and openclaw disagree`;
      });
    } else {
      info("skipped the raw-schema corpus check: python3 with jsonschema not available");
    }
    await sub("validate: the config corpus (fixtures/config-corpus.json) gets openclaw's recorded verdicts", async () => {
      const corpus = JSON.parse(readText(path.join(HERE, "fixtures", "config-corpus.json")));
      const wrong = [];
      const queue = [...corpus.cases];
      const worker = async () => {
        for (let c = queue.shift(); c; c = queue.shift()) {
          const r = await openclawCli(["config", "validate", "--json"], { configText: JSON.stringify(c.config), extraEnv: c.env ?? {} });
          let j;
          try {
            j = parseJsonOut(r.stdout);
          } catch {
            wrong.push(`${c.name}: no JSON (exit ${r.code})`);
            continue;
          }
          if (j.valid !== c.valid) wrong.push(`${c.name}: valid=${j.valid}, corpus says ${c.valid} ${JSON.stringify(j.issues ?? j.warnings)}`);
          else if (c.issue && !j.issues?.some((i) => i.path === c.issue.path && i.message.includes(c.issue.messageIncludes))) {
            wrong.push(`${c.name}: issues ${JSON.stringify(j.issues)}`);
          } else if (c.warning && !j.warnings?.some((w) => w.path === c.warning.path)) {
            wrong.push(`${c.name}: warnings ${JSON.stringify(j.warnings)}`);
          }
        }
      };
      await Promise.all([worker(), worker()]);
      assert(wrong.length === 0, wrong.join("\n"));
      return `${corpus.cases.length} cases`;
    });
    const invalidStart = async (label, text) => {
      const port = await freePort();
      const c = containerEnv(port);
      const pod = new Pod({ label, pvc: newPvc(label), secret: newSecretDir(label, text), env: c.env, cmd: podCmd(c.args) }).start();
      const ex = await Promise.race([pod.exited, sleep(150000).then(() => null)]);
      if (!ex) {
        pod.destroy();
        throw new Error("still running after 150 s");
      }
      const out = stripAnsi(pod.stdout() + pod.stderr());
      const lines = out.split("\n");
      const i = lines.findIndex((l) => l.includes(`Gateway failed to start: Invalid config at ${CONTRACT.env.OPENCLAW_CONFIG_PATH}:`));
      assert(ex.code === 78, `exit ${ex.code}:\n${tail(out)}`);
      assert(i >= 0, `no "Gateway failed to start: Invalid config at ${CONTRACT.env.OPENCLAW_CONFIG_PATH}:" line:\n${tail(out)}`);
      return { secs: ((ex.at - pod.startedAt) / 1000).toFixed(1), detail: (lines[i + 1] ?? "").trim(), out };
    };
    await sub(`gateway: refuses to start on the hosting config + gateway.${BOGUS_KEY} (exit 78, names the key)`, async () => {
      const cfg = { gateway: structuredClone(renderedCfg.gateway), agents: { defaults: { maxConcurrent: getPath(renderedCfg, "agents.defaults.maxConcurrent") } } };
      cfg.gateway[BOGUS_KEY] = true;
      const r = await invalidStart("invalid-min", JSON.stringify(cfg, null, 2) + "\n");
      assert(new RegExp(`^openclaw\\.json:\\d+ — gateway: Unrecognized key: "${BOGUS_KEY}"$`).test(r.detail), `second line ${JSON.stringify(r.detail)}`);
      return `exit 78 after ${r.secs} s: Gateway failed to start: Invalid config at ${CONTRACT.env.OPENCLAW_CONFIG_PATH}: / ${r.detail}`;
    });
    await sub(`gateway: refuses to start on the rendered config + gateway.${BOGUS_KEY} (exit 78)`, async () => {
      const r = await invalidStart("invalid-full", bogusText);
      // With OPENCLAW_CONFIG_READONLY=1 openclaw may report "Legacy config entries detected in
      // read-only config" instead of the key when it also finds entries its doctor would migrate.
      const named = r.detail.includes(`Unrecognized key: "${BOGUS_KEY}"`);
      const legacy = r.detail.startsWith("Legacy config entries detected in read-only config");
      assert(named || legacy, `unexpected detail ${JSON.stringify(r.detail)}:\n${tail(r.out)}`);
      return `exit 78 after ${r.secs} s: ${r.detail}`;
    });
    await sub("entrypoint: refuses a HOME volume it cannot write, with one clear line", async () => {
      const port = await freePort();
      const c = containerEnv(port);
      const pod = new Pod({ label: "rootowned", pvc: newPvc("rootowned", { owner: [0, 0], mode: 0o755 }), secret: secretDir, env: c.env, cmd: podCmd(c.args) }).start();
      const ex = await Promise.race([pod.exited, sleep(60000).then(() => null)]);
      if (!ex) {
        pod.destroy();
        throw new Error("still running after 60 s");
      }
      const want = "clawhost-entrypoint: /home/node is not writable by uid 1000 (owner 0:0, mode 755); set fsGroup 1000 on the pod\n";
      assert(ex.code !== 0, `exit ${ex.code}`);
      assert(pod.stderr() === want, `stderr ${JSON.stringify(pod.stderr())}`);
      assert(pod.stdout() === "", `stdout ${JSON.stringify(pod.stdout())}`);
      return `exit ${ex.code}: ${want.trim()}`;
    });
    await sub("entrypoint: refuses `--auth token` without OPENCLAW_GATEWAY_TOKEN, with one clear line", async () => {
      const port = await freePort();
      const c = containerEnv(port, { OPENCLAW_GATEWAY_TOKEN: "" });
      const pod = new Pod({ label: "notoken", pvc: newPvc("notoken"), secret: secretDir, env: c.env, cmd: podCmd(c.args) }).start();
      const ex = await Promise.race([pod.exited, sleep(60000).then(() => null)]);
      if (!ex) {
        pod.destroy();
        throw new Error("still running after 60 s");
      }
      const lines = pod.stderr().split("\n").filter(Boolean);
      assert(ex.code !== 0 && lines.length === 1 && lines[0].startsWith("clawhost-entrypoint: --auth token but OPENCLAW_GATEWAY_TOKEN is empty"), `exit ${ex.code}, stderr ${JSON.stringify(pod.stderr())}`);
      return lines[0];
    });
    return results;
  })();
  const [offlineResults] = await Promise.all([offline, sleep(IDLE_SECONDS * 1000)]);
  mem.idle = memoryOfTree(pod1.tini);
  for (const [ok, name, detail] of offlineResults) report(ok, name, detail);
  info(`memory after ${IDLE_SECONDS} s idle: ${describeMemory(mem.idle)}`);
  await check(`gateway: still healthy after ${IDLE_SECONDS} s idle (no crash, no restart)`, async () => {
    assert(!pod1.exitInfo, `exited ${JSON.stringify(pod1.exitInfo)}`);
    const r = await httpJson(`${base}/startupz`);
    assert(r.json?.status === "started", JSON.stringify(r.json));
    assert(r.json.uptimeMs >= IDLE_SECONDS * 1000, `uptimeMs ${r.json.uptimeMs}: restarted?`);
  });

  // Probes: exactly the rendered exec commands, inside the pod (its mounts, uid, env).
  const probeEnv = c1.env.map(([k, v]) => `${k}=${v}`);
  const execInPod = (cmd) =>
    run(
      "nsenter",
      ["--target", String(pod1.tini), "--mount", "--pid", "--", "setpriv", "--no-new-privs", "--inh-caps=-all", "--",
        "chroot", `--userspec=${CONTRACT.uid}:${CONTRACT.gid}`, `--groups=${CONTRACT.gid}`, path.join(pod1.runDir, "root"),
        "/usr/bin/env", "-i", `--chdir=${IMAGE.workdir}`, ...probeEnv, ...cmd],
      { timeoutMs: 30000 },
    );
  await check(`image HEALTHCHECK ${JSON.stringify(IMAGE.healthcheck?.test?.slice(1))} exits 0 in the pod`, async () => {
    const r = await execInPod(IMAGE.healthcheck.test.slice(1));
    assert(r.code === 0, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    return r.stdout.trim().slice(0, 120);
  });
  for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    await check(`probe: rendered ${kind} ${JSON.stringify(plan.container[kind]?.exec?.command)} exits 0 in the pod`, async () => {
      const cmd = plan.container[kind]?.exec?.command;
      assert(Array.isArray(cmd), "no exec command");
      const r = await execInPod(cmd);
      assert(r.code === 0, `exit ${r.code}: ${r.stdout}${r.stderr}`);
      return r.stdout.trim().slice(0, 120);
    });
  }
  await check("probe endpoints: exact bodies of /healthz, /startupz, /readyz; unknown paths answer 200 HTML", async () => {
    const h = await httpJson(`${base}/healthz`);
    assert(h.status === 200 && JSON.stringify(h.json) === '{"ok":true,"status":"live"}', `/healthz ${h.status} ${h.text.slice(0, 200)}`);
    const s = await httpJson(`${base}/startupz`);
    assert(s.status === 200 && s.json?.ok === true && s.json.status === "started" && s.json.version === OPENCLAW_VERSION && Number.isInteger(s.json.uptimeMs), `/startupz ${s.text}`);
    const r = await httpJson(`${base}/readyz`);
    assert(r.status === 200 && r.json?.ready === true && Array.isArray(r.json.failing) && r.json.failing.length === 0, `/readyz ${r.status} ${r.text.slice(0, 300)}`);
    const u = await httpJson(`${base}/clawhost-contract/no-such-path`);
    assert(u.status === 200 && u.json === null, `unknown path ${u.status} ${u.text.slice(0, 100)}`);
    return `healthz ${h.text}; startupz keys ${Object.keys(s.json).join(",")}; readyz keys ${Object.keys(r.json).join(",")}`;
  });

  // Auth
  await check("auth (HTTP): POST /tools/invoke refuses no token and a wrong token (401), accepts the right one (200)", async () => {
    const body = { tool: "sessions_list", action: "json", args: {} };
    const h = { "content-type": "application/json" };
    const none = await httpJson(`${base}/tools/invoke`, { method: "POST", headers: h, body });
    const wrong = await httpJson(`${base}/tools/invoke`, { method: "POST", headers: { ...h, authorization: `Bearer ${TOKEN}x` }, body });
    const right = await httpJson(`${base}/tools/invoke`, { method: "POST", headers: { ...h, authorization: `Bearer ${TOKEN}` }, body });
    assert(none.status === 401, `no token: ${none.status} ${none.text.slice(0, 200)}`);
    assert(wrong.status === 401, `wrong token: ${wrong.status} ${wrong.text.slice(0, 200)}`);
    assert(right.status === 200 && right.json?.ok === true, `right token: ${right.status} ${right.text.slice(0, 200)}`);
    return `401 ${none.text.trim()}`;
  });
  let hello = null;
  await check("auth (WebSocket): connect with the right token gets hello-ok; wrong token AUTH_TOKEN_MISMATCH + close 1008; no token refused", async () => {
    const good = await wsSessionReady(port1, TOKEN);
    assert(good.ok && good.hello?.type === "hello-ok", `right token: ${JSON.stringify(good.error)}`);
    hello = good.hello;
    good.close();
    const bad = await wsSession(port1, `${TOKEN}x`);
    assert(!bad.ok && bad.error?.details?.code === "AUTH_TOKEN_MISMATCH", `wrong token: ${JSON.stringify(bad.error)}`);
    const badClose = await Promise.race([bad.closed, sleep(10000).then(() => null)]);
    assert(badClose?.code === 1008, `wrong token close ${JSON.stringify(badClose)}`);
    const none = await wsSession(port1, undefined);
    assert(!none.ok, `no token accepted: ${JSON.stringify(none.hello?.auth)}`);
    none.close();
    return `wrong: ${bad.error.code}/${bad.error.details.code}; none: ${none.error?.code}/${none.error?.details?.code}`;
  });

  const withSession = async (fn) => {
    const s = await wsSessionReady(port1, TOKEN);
    assert(s.ok, `cannot open an operator session: ${JSON.stringify(s.error)}`);
    try {
      return await fn(s);
    } finally {
      s.close();
    }
  };
  const defaultAgent = hello?.snapshot?.sessionDefaults?.defaultAgentId ?? "main";
  let applied0 = null;
  await check("config: the gateway runs the client's rendered openclaw.json (config.get runtimeConfig ⊇ rendered leaves; applied = on-disk revision)", async () =>
    withSession(async (s) => {
      const g = await rpc(s, "config.get", {});
      assert(g.path === CONTRACT.env.OPENCLAW_CONFIG_PATH, `config path ${g.path}`);
      assert(g.valid === true, `valid=${g.valid} ${JSON.stringify(g.issues)}`);
      assert(g.appliedConfigHash && g.appliedConfigHash === g.configRevisionHash, `applied ${g.appliedConfigHash} != revision ${g.configRevisionHash}`);
      const miss = missingLeaves(renderedCfg, g.runtimeConfig, envMap);
      assert(miss.length === 0, miss.slice(0, 10).join("\n"));
      const snap = hello?.snapshot ?? {};
      assert(snap.stateDir === CONTRACT.env.OPENCLAW_STATE_DIR && snap.authMode === "token", `hello snapshot stateDir ${snap.stateDir} authMode ${snap.authMode}`);
      applied0 = g.appliedConfigHash;
      const count = JSON.stringify(renderedCfg).match(/:/g)?.length ?? 0;
      return `${count} keys checked; appliedConfigHash ${g.appliedConfigHash.slice(0, 24)}…`;
    }),
  );
  const hbPath = "agents.defaults.heartbeat.every";
  const renderedEvery = getPath(renderedCfg, hbPath);
  if (durationMs(renderedEvery)) {
    await check(`config: the runtime heartbeat scheduler uses the rendered ${hbPath}=${renderedEvery}`, async () =>
      withSession(async (s) => {
        const h = await rpc(s, "health", { probe: true });
        const a = (h.agents ?? []).find((x) => x.agentId === defaultAgent) ?? h.agents?.[0];
        assert(a?.heartbeat?.everyMs === durationMs(renderedEvery), `health agents[${defaultAgent}].heartbeat ${JSON.stringify(a?.heartbeat)}`);
        return `everyMs ${a.heartbeat.everyMs}`;
      }),
    );
  }

  // Hot reload through a kubelet-style ..data swap.
  const newEvery = renderedEvery === "47m" ? "53m" : "47m";
  const cfg2 = structuredClone(renderedCfg);
  setPath(cfg2, hbPath, newEvery);
  const cfg2Text = JSON.stringify(cfg2, null, 2) + "\n";
  await check(`hot reload: a kubelet ..data swap of openclaw.json (${hbPath} -> ${newEvery}) applies without a restart`, async () => {
    const pidBefore = pod1.gatewayPid();
    const up0 = (await httpJson(`${base}/startupz`)).json.uptimeMs;
    const t0 = Date.now();
    writeConfig(secretDir, cfg2Text);
    const g = await pollUntil(`runtime ${hbPath}=${newEvery}`, () =>
      withSession(async (s) => {
        const x = await rpc(s, "config.get", {});
        return getPath(x.runtimeConfig, hbPath) === newEvery && x.appliedConfigHash !== applied0 ? x : null;
      }), { timeoutMs: 90000, intervalMs: 500 });
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    const h = await withSession((s) => rpc(s, "health", { probe: true }));
    const a = (h.agents ?? []).find((x) => x.agentId === defaultAgent) ?? h.agents?.[0];
    assert(a?.heartbeat?.everyMs === durationMs(newEvery), `heartbeat scheduler still ${JSON.stringify(a?.heartbeat)}`);
    assert(pod1.gatewayPid() === pidBefore, `gateway pid changed ${pidBefore} -> ${pod1.gatewayPid()}`);
    const up1 = (await httpJson(`${base}/startupz`)).json.uptimeMs;
    assert(up1 > up0, `uptime went back (${up0} -> ${up1}): restarted`);
    assert(/config hot reload applied/.test(stripAnsi(pod1.allLogs())), "no 'config hot reload applied' in the logs");
    applied0 = g.appliedConfigHash;
    return `applied ${secs} s after the swap, same pid ${pidBefore}, heartbeat everyMs ${a.heartbeat.everyMs}`;
  });
  await check("hot reload: an invalid edit is skipped; the gateway keeps its last good config and stays ready", async () => {
    const bad = structuredClone(cfg2);
    setPath(bad, `gateway.${BOGUS_KEY}`, true);
    const skipped = () => (stripAnsi(pod1.allLogs()).match(/config reload skipped \(invalid config\)/g) ?? []).length;
    const before = skipped();
    try {
      writeConfig(secretDir, JSON.stringify(bad, null, 2) + "\n");
      await pollUntil("'config reload skipped (invalid config)' in the logs", () => skipped() > before, { timeoutMs: 60000 });
      const g = await withSession((s) => rpc(s, "config.get", {}));
      assert(g.appliedConfigHash === applied0, `applied hash changed to ${g.appliedConfigHash}`);
      assert(g.valid === false, `config.get says the on-disk file is valid: ${JSON.stringify(g.issues)}`);
      const h = await withSession((s) => rpc(s, "health", { probe: true }));
      const a = (h.agents ?? []).find((x) => x.agentId === defaultAgent) ?? h.agents?.[0];
      assert(a?.heartbeat?.everyMs === durationMs(newEvery), `heartbeat scheduler now ${JSON.stringify(a?.heartbeat)}`);
      const r = await httpJson(`${base}/readyz`);
      assert(r.json?.ready === true, `readyz ${r.text.slice(0, 200)}`);
      const line = stripAnsi(pod1.allLogs()).split("\n").find((l) => l.includes("config reload skipped (invalid config)")) ?? "";
      return line.replace(/^.*?\[reload\]\s*/, "").slice(0, 160);
    } finally {
      writeConfig(secretDir, cfg2Text); // restore for the restart below
    }
  });

  // State on the volume.
  const marker = `clawhost-contract ${crypto.randomUUID()}\n`;
  await check(`state: write ${defaultAgent}'s MEMORY.md through the gateway (agents.files.set)`, async () =>
    withSession(async (s) => {
      const r = await rpc(s, "agents.files.set", { agentId: defaultAgent, name: "MEMORY.md", content: marker });
      assert(r.file?.content === marker, JSON.stringify(r).slice(0, 300));
      assert(String(r.file.path).startsWith(`${CONTRACT.homeMount}/`), `written outside the volume: ${r.file.path}`);
      return r.file.path;
    }),
  );
  await check("entrypoint: first boot created the state layout on the volume, owned by uid 1000", () => {
    const want = [".openclaw", ".openclaw/workspace", ".config/openclaw", ".local/share/signal-cli", ".openclaw/state/openclaw.sqlite"];
    const bad = want.filter((p) => {
      try {
        return fs.statSync(path.join(pvc, p)).uid !== CONTRACT.uid;
      } catch {
        return true;
      }
    });
    assert(bad.length === 0, `missing or not owned by ${CONTRACT.uid}: ${bad.join(", ")}`);
    return want.join(", ");
  });

  // SIGTERM
  await check(`SIGTERM: with a client connected, the gateway drains, closes it and exits 0 within the grace period (${grace} s)`, async () => {
    const s = await wsSessionReady(port1, TOKEN);
    assert(s.ok, `cannot connect: ${JSON.stringify(s.error)}`);
    const ex = await terminate(pod1, grace);
    const closed = await Promise.race([s.closed, sleep(5000).then(() => null)]);
    assert(ex.code === 0, `exit code ${ex.code} signal ${ex.signal}:\n${tail(pod1.stdout() + pod1.stderr())}`);
    assert(closed, "client socket not closed");
    const logs = stripAnsi(pod1.allLogs());
    assert(/received SIGTERM; shutting down/.test(logs), "no 'received SIGTERM; shutting down' in the logs");
    const done = logs.split("\n").find((l) => l.includes("[shutdown]")) ?? "";
    return `exit 0 after ${(ex.ms / 1000).toFixed(1)} s; client close ${closed.code}; ${done.replace(/^.*?\[shutdown\]\s*/, "")}`;
  });
  await check("filesystem: nothing failed on the read-only root (no EROFS/EACCES in the logs); writes only under /home/node and /tmp", () => {
    const logs = stripAnsi(pod1.allLogs());
    const hits = logs.split("\n").filter((l) => /EROFS|read-only file system|EACCES|permission denied/i.test(l));
    assert(hits.length === 0, hits.slice(0, 5).join("\n"));
    // The overlay's upper dir holds whatever reached the image's root: only the mount
    // points the runtime made may be there.
    const mountPoints = new Set(["home", "home/node", "etc", "etc/openclaw", "etc/hosts", "etc/hostname", "etc/resolv.conf", "tmp", "proc", "dev", "sys"]);
    const walk = (d, rel = "") =>
      fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
        const r = rel ? `${rel}/${e.name}` : e.name;
        return e.isDirectory() && !mountPoints.has(r) ? [r, ...walk(path.join(d, e.name), r)] : [r];
      });
    const stray = walk(path.join(pod1.runDir, "upper")).filter((r) => !mountPoints.has(r));
    assert(stray.length === 0, `written to the image's root: ${stray.slice(0, 10).join(", ")}`);
    const top = (d) => fs.readdirSync(d).sort().join(" ");
    return `PVC: ${top(pvc)} | .openclaw: ${top(path.join(pvc, ".openclaw"))} | /tmp: ${top(path.join(pod1.runDir, "emptydir"))}`;
  });

  // --- 6. restart on the same volume ------------------------------------------------------
  const port2 = await freePort();
  const c2 = containerEnv(port2);
  const pod2 = new Pod({ label: "boot2", pvc, secret: secretDir, env: c2.env, cmd: podCmd(c2.args) }).start();
  let started2 = null;
  await check("restart: a new container on the same volume (fresh /tmp) starts", async () => {
    pod2.tini = await pod2.tiniPid();
    started2 = await waitStarted(pod2, port2);
    return `"started" ${(started2.ms / 1000).toFixed(1)} s after exec`;
  });
  if (started2) {
    await check("restart: state written before the restart is still there (MEMORY.md, config from the updated Secret)", async () => {
      const s = await wsSessionReady(port2, TOKEN);
      assert(s.ok, `cannot connect: ${JSON.stringify(s.error)}`);
      try {
        const f = await rpc(s, "agents.files.get", { agentId: defaultAgent, name: "MEMORY.md" });
        assert(f.file?.content === marker, `MEMORY.md ${JSON.stringify(f.file?.content)}`);
        const g = await rpc(s, "config.get", {});
        assert(getPath(g.runtimeConfig, hbPath) === newEvery, `runtime ${hbPath}=${getPath(g.runtimeConfig, hbPath)}`);
        return `MEMORY.md intact; ${hbPath}=${newEvery}`;
      } finally {
        s.close();
      }
    });
    await check("restart: SIGTERM exits 0 again", async () => {
      const ex = await terminate(pod2, grace);
      assert(ex.code === 0, `exit ${ex.code} signal ${ex.signal}`);
      return `${(ex.ms / 1000).toFixed(1)} s`;
    });
  } else {
    pod2.destroy();
  }

  info(`memory summary: after start-up ${describeMemory(mem.startup)}`);
  info(`memory summary: after ${IDLE_SECONDS} s idle ${describeMemory(mem.idle)}`);
  info(`startup: first boot ${(started1.ms / 1000).toFixed(1)} s, restart ${started2 ? (started2.ms / 1000).toFixed(1) + " s" : "n/a"}`);
}

try {
  await main();
} catch (e) {
  report(false, "harness", e?.stack ?? String(e));
}
info(`contract test took ${((Date.now() - T0) / 1000).toFixed(0)} s (idle wait ${IDLE_SECONDS} s)`);
if (failures.length) console.log(`# failed: ${failures.join(" | ")}`);
console.log(`gateway-contract: ${passed} passed, ${failed} failed`);
cleanup();
process.exit(failed === 0 && passed > 0 ? 0 : 1); // pending watchdog timers must not hold us
