// Helpers of the gateway contract test: pure functions (render parsing, env resolution,
// kubelet volume writes, Dockerfile parsing) and small clients (HTTP, WebSocket, /proc).
// No dependencies beyond Node 24's standard library.

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import crypto from "node:crypto";

// ---------------------------------------------------------------------------------------
// The contract with the operator's pod spec (keep in sync with gateway-image/README.md).
export const CONTRACT = {
  containerName: "gateway",
  imageRepo: "ghcr.io/clawhost/gateway",
  args: ["openclaw", "gateway", "run", "--bind", "loopback", "--port", "18789", "--auth", "token"],
  env: {
    HOME: "/home/node",
    OPENCLAW_STATE_DIR: "/home/node/.openclaw",
    OPENCLAW_CONFIG_PATH: "/etc/openclaw/openclaw.json",
    OPENCLAW_CONFIG_READONLY: "1",
    OPENCLAW_NO_AUTO_UPDATE: "1",
    OPENCLAW_GATEWAY_PORT: "18789",
    TMPDIR: "/tmp",
  },
  tokenEnv: "OPENCLAW_GATEWAY_TOKEN",
  tokenKey: "token",
  homeMount: "/home/node",
  configMount: "/etc/openclaw",
  configKey: "openclaw.json",
  tmpMount: "/tmp",
  uid: 1000,
  gid: 1000,
  probes: {
    startupProbe: ["/usr/local/bin/clawhost-probe", "startup"],
    readinessProbe: ["/usr/local/bin/clawhost-probe", "ready"],
    livenessProbe: ["/usr/local/bin/clawhost-probe", "live"],
  },
  minGraceSeconds: 330, // openclaw's own stop budget
  defaultGraceSeconds: 360,
};

// ---------------------------------------------------------------------------------------
// Render output -> what the pod runs.

/** Finds the objects the gateway container depends on in a `clawhost render -o json` List. */
export function podPlanFromRender(list) {
  if (!list || list.kind !== "List" || !Array.isArray(list.items)) {
    throw new Error(`render output is not a v1 List (kind ${JSON.stringify(list?.kind)})`);
  }
  const items = list.items;
  const sets = items.filter((o) => o?.kind === "StatefulSet");
  const withGateway = sets.filter((s) =>
    (s.spec?.template?.spec?.containers ?? []).some((c) => c.name === CONTRACT.containerName),
  );
  if (withGateway.length !== 1) {
    throw new Error(
      `expected exactly one StatefulSet with a container named ${CONTRACT.containerName}, found ${withGateway.length} (of ${sets.length} StatefulSets)`,
    );
  }
  const sts = withGateway[0];
  const podSpec = sts.spec.template.spec;
  const container = podSpec.containers.find((c) => c.name === CONTRACT.containerName);
  const byName = (kind, name) =>
    items.find((o) => o?.kind === kind && o.metadata?.name === name) ?? null;

  const mounts = container.volumeMounts ?? [];
  const volumes = podSpec.volumes ?? [];
  const claimTemplates = sts.spec.volumeClaimTemplates ?? [];
  const mountAt = (p) => mounts.find((m) => m.mountPath === p) ?? null;
  const volumeFor = (m) => (m ? volumes.find((v) => v.name === m.name) ?? null : null);

  const configMount = mountAt(CONTRACT.configMount);
  const configVolume = volumeFor(configMount);
  const configSecretName = configVolume?.secret?.secretName ?? null;
  const configSecret = configSecretName ? byName("Secret", configSecretName) : null;

  const tokenEnv = (container.env ?? []).find((e) => e.name === CONTRACT.tokenEnv) ?? null;
  const tokenRef = tokenEnv?.valueFrom?.secretKeyRef ?? null;
  const tokenSecret = tokenRef ? byName("Secret", tokenRef.name) : null;

  return {
    list,
    statefulSet: sts,
    name: sts.metadata?.name,
    namespace: sts.metadata?.namespace ?? "default",
    podSpec,
    container,
    mounts: {
      home: mountAt(CONTRACT.homeMount),
      config: configMount,
      tmp: mountAt(CONTRACT.tmpMount),
    },
    volumes: {
      home: volumeFor(mountAt(CONTRACT.homeMount)),
      homeClaimTemplate:
        claimTemplates.find((t) => t.metadata?.name === mountAt(CONTRACT.homeMount)?.name) ?? null,
      config: configVolume,
      tmp: volumeFor(mountAt(CONTRACT.tmpMount)),
    },
    configSecret,
    configText: secretValue(configSecret, CONTRACT.configKey),
    tokenRef,
    tokenSecret,
    tokenPlaceholder: tokenRef ? secretValue(tokenSecret, tokenRef.key) : null,
  };
}

/** stringData wins over data, as the API server merges them. */
export function secretValue(secret, key) {
  if (!secret) return null;
  if (secret.stringData && typeof secret.stringData[key] === "string") return secret.stringData[key];
  if (secret.data && typeof secret.data[key] === "string") {
    return Buffer.from(secret.data[key], "base64").toString("utf8");
  }
  return null;
}

/** Contract problems of the rendered pod spec (empty when it matches the image). */
export function contractProblems(plan) {
  const p = [];
  const c = plan.container;
  if (!String(c.image ?? "").startsWith(`${CONTRACT.imageRepo}:`) && !String(c.image ?? "").startsWith(`${CONTRACT.imageRepo}@`)) {
    p.push(`image ${JSON.stringify(c.image)} is not ${CONTRACT.imageRepo}:<version>`);
  }
  if (c.command !== undefined) p.push(`container sets command ${JSON.stringify(c.command)}; the image ENTRYPOINT (tini + clawhost-entrypoint) must stay`);
  if (JSON.stringify(c.args) !== JSON.stringify(CONTRACT.args)) {
    p.push(`args ${JSON.stringify(c.args)} != ${JSON.stringify(CONTRACT.args)}`);
  }
  const env = c.env ?? [];
  const names = env.map((e) => e.name);
  const dup = names.filter((n, i) => names.indexOf(n) !== i);
  if (dup.length) p.push(`duplicate env names ${dup.join(", ")}`);
  for (const [k, v] of Object.entries(CONTRACT.env)) {
    const e = env.find((x) => x.name === k);
    if (!e) p.push(`env ${k} missing (want ${JSON.stringify(v)})`);
    else if (e.value !== v) p.push(`env ${k}=${JSON.stringify(e.value ?? e.valueFrom)} (want ${JSON.stringify(v)})`);
  }
  const ref = plan.tokenRef;
  if (!ref) p.push(`env ${CONTRACT.tokenEnv} is not from a secretKeyRef`);
  else {
    if (!String(ref.name).endsWith("-gateway-token")) p.push(`token secretKeyRef name ${ref.name} does not end in -gateway-token`);
    if (ref.key !== CONTRACT.tokenKey) p.push(`token secretKeyRef key ${ref.key} != ${CONTRACT.tokenKey}`);
    if (!plan.tokenSecret) p.push(`token Secret ${ref.name} is not in the rendered List`);
    else if (!plan.tokenPlaceholder) p.push(`token Secret ${ref.name} has no stringData.${ref.key} placeholder`);
  }
  // Mounts
  const { home, config, tmp } = plan.mounts;
  if (!home) p.push(`nothing mounted at ${CONTRACT.homeMount}`);
  else {
    if (home.subPath || home.subPathExpr) p.push(`${CONTRACT.homeMount} uses subPath`);
    if (home.readOnly) p.push(`${CONTRACT.homeMount} is mounted read-only`);
    if (!plan.volumes.homeClaimTemplate && !plan.volumes.home?.persistentVolumeClaim) {
      p.push(`${CONTRACT.homeMount} is not a PVC (volumeClaimTemplate or persistentVolumeClaim)`);
    }
  }
  if (!config) p.push(`nothing mounted at ${CONTRACT.configMount}`);
  else {
    if (config.subPath || config.subPathExpr) p.push(`${CONTRACT.configMount} uses subPath (Secret updates never reach subPath mounts)`);
    if (config.readOnly !== true) p.push(`${CONTRACT.configMount} is not readOnly`);
    const sec = plan.volumes.config?.secret;
    if (!sec) p.push(`${CONTRACT.configMount} is not a Secret volume`);
    else {
      if (!String(sec.secretName).endsWith("-gateway-config")) p.push(`config Secret ${sec.secretName} does not end in -gateway-config`);
      if (sec.items && !sec.items.some((i) => i.key === CONTRACT.configKey && i.path === CONTRACT.configKey)) {
        p.push(`config Secret items do not project ${CONTRACT.configKey} as ${CONTRACT.configKey}`);
      }
      if (!plan.configSecret) p.push(`config Secret ${sec.secretName} is not in the rendered List`);
      else if (plan.configText == null) p.push(`config Secret ${sec.secretName} has no ${CONTRACT.configKey}`);
    }
  }
  if (!tmp) p.push(`nothing mounted at ${CONTRACT.tmpMount}`);
  else if (!plan.volumes.tmp?.emptyDir) p.push(`${CONTRACT.tmpMount} is not an emptyDir`);
  // Security
  const psc = plan.podSpec.securityContext ?? {};
  const csc = c.securityContext ?? {};
  const eff = (k) => (csc[k] !== undefined ? csc[k] : psc[k]);
  if (eff("runAsUser") !== CONTRACT.uid) p.push(`runAsUser ${eff("runAsUser")} != ${CONTRACT.uid}`);
  if (eff("runAsGroup") !== CONTRACT.gid) p.push(`runAsGroup ${eff("runAsGroup")} != ${CONTRACT.gid}`);
  if (psc.fsGroup !== CONTRACT.gid) p.push(`pod fsGroup ${psc.fsGroup} != ${CONTRACT.gid}`);
  if (eff("runAsNonRoot") !== true) p.push("runAsNonRoot is not true");
  if (csc.readOnlyRootFilesystem !== true) p.push("container readOnlyRootFilesystem is not true");
  // Probes
  for (const [kind, cmd] of Object.entries(CONTRACT.probes)) {
    const got = c[kind]?.exec?.command;
    if (JSON.stringify(got) !== JSON.stringify(cmd)) p.push(`${kind} exec ${JSON.stringify(got)} != ${JSON.stringify(cmd)}`);
    const t = c[kind]?.timeoutSeconds ?? 1;
    if (got && t < 3) p.push(`${kind}.timeoutSeconds ${t} < 3 (the probe itself waits up to 2 s, node needs ~0.1 s to start)`);
  }
  const grace = plan.podSpec.terminationGracePeriodSeconds ?? 30;
  if (grace < CONTRACT.minGraceSeconds) p.push(`terminationGracePeriodSeconds ${grace} < ${CONTRACT.minGraceSeconds} (openclaw's stop budget)`);
  // Config
  if (plan.configText != null) {
    let cfg;
    try {
      cfg = JSON.parse(plan.configText);
    } catch (e) {
      p.push(`${CONTRACT.configKey} is not JSON: ${e.message}`);
    }
    if (cfg) {
      const want = [
        ["gateway.mode", "local"],
        ["gateway.auth.mode", "token"],
        ["gateway.tailscale.mode", "off"],
      ];
      for (const [k, v] of want) if (getPath(cfg, k) !== v) p.push(`${CONTRACT.configKey} ${k}=${JSON.stringify(getPath(cfg, k))} (want ${JSON.stringify(v)})`);
      if (JSON.stringify(getPath(cfg, "gateway.trustedProxies")) !== JSON.stringify(["127.0.0.1"])) {
        p.push(`${CONTRACT.configKey} gateway.trustedProxies=${JSON.stringify(getPath(cfg, "gateway.trustedProxies"))} (want ["127.0.0.1"])`);
      }
      const mc = getPath(cfg, "agents.defaults.maxConcurrent");
      if (!Number.isInteger(mc) || mc < 1) p.push(`${CONTRACT.configKey} agents.defaults.maxConcurrent=${JSON.stringify(mc)} (want an explicit positive integer)`);
      if (getPath(cfg, "gateway.auth.token") !== undefined) p.push(`${CONTRACT.configKey} carries gateway.auth.token; the token comes from env ${CONTRACT.tokenEnv}`);
    }
  }
  return p;
}

export function getPath(obj, dotted) {
  let cur = obj;
  for (const k of dotted.split(".")) {
    if (cur == null || typeof cur !== "object") return undefined;
    cur = cur[k];
  }
  return cur;
}

export function setPath(obj, dotted, value) {
  const keys = dotted.split(".");
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (cur[k] == null || typeof cur[k] !== "object") cur[k] = {};
    cur = cur[k];
  }
  cur[keys.at(-1)] = value;
}

/**
 * Resolves the container env as the kubelet would, with made-up values for every secret
 * (the gateway token gets `token`). Optional secret refs are left unset unless
 * `optionalSecrets` (a made-up channel token such as TELEGRAM_BOT_TOKEN switches that
 * channel on, and offline it then stalls the gateway's shutdown for its whole budget).
 * Returns { env: [[name, value], ...] in order, notes }.
 */
export function resolveEnv(plan, { token, madeUp = (what) => `contract-test-${what}`, optionalSecrets = false } = {}) {
  const out = new Map();
  const notes = [];
  const items = plan.list.items;
  const cm = (name) => items.find((o) => o?.kind === "ConfigMap" && o.metadata?.name === name);
  for (const src of plan.container.envFrom ?? []) {
    const prefix = src.prefix ?? "";
    if (src.configMapRef) {
      const m = cm(src.configMapRef.name);
      if (m) for (const [k, v] of Object.entries(m.data ?? {})) out.set(prefix + k, v);
      else notes.push(`envFrom ConfigMap ${src.configMapRef.name} not rendered; skipped`);
    } else if (src.secretRef) {
      const s = items.find((o) => o?.kind === "Secret" && o.metadata?.name === src.secretRef.name);
      const keys = s ? Object.keys({ ...(s.data ?? {}), ...(s.stringData ?? {}) }) : [];
      if (keys.length) for (const k of keys) out.set(prefix + k, madeUp(`${src.secretRef.name}-${k}`));
      else notes.push(`envFrom Secret ${src.secretRef.name} keys unknown; skipped`);
    }
  }
  for (const e of plan.container.env ?? []) {
    let v;
    if (e.value !== undefined) {
      // Kubernetes expands $(VAR) from earlier entries; $$(VAR) escapes.
      v = String(e.value).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name) =>
        m === "$$" ? "$" : out.has(name) ? out.get(name) : m,
      );
    } else if (e.valueFrom?.secretKeyRef) {
      const r = e.valueFrom.secretKeyRef;
      const isToken = plan.tokenRef && r.name === plan.tokenRef.name && r.key === plan.tokenRef.key;
      if (!isToken && r.optional === true && !optionalSecrets) {
        // What the kubelet does when an optional Secret (or key) does not exist: no variable.
        notes.push(`optional secretKeyRef ${e.name} (${r.name}/${r.key}) left unset, as when that Secret is absent`);
        continue;
      }
      v = isToken ? token : madeUp(`${r.name}-${r.key}`);
    } else if (e.valueFrom?.configMapKeyRef) {
      const r = e.valueFrom.configMapKeyRef;
      v = cm(r.name)?.data?.[r.key] ?? madeUp(`${r.name}-${r.key}`);
    } else if (e.valueFrom?.fieldRef) {
      const f = e.valueFrom.fieldRef.fieldPath;
      v = {
        "metadata.name": `${plan.name}-0`,
        "metadata.namespace": plan.namespace,
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
        "spec.nodeName": "contract-node",
        "spec.serviceAccountName": "default",
      }[f] ?? madeUp(f);
    } else if (e.valueFrom?.resourceFieldRef) {
      v = "1";
    } else {
      v = "";
    }
    out.set(e.name, v);
  }
  return { env: [...out.entries()], notes };
}

/** Replaces the gateway port consistently in env and args. */
export function overridePort(env, args, port) {
  const e = env.map(([k, v]) => [k, k === "OPENCLAW_GATEWAY_PORT" ? String(port) : v]);
  if (!e.some(([k]) => k === "OPENCLAW_GATEWAY_PORT")) e.push(["OPENCLAW_GATEWAY_PORT", String(port)]);
  const a = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--port" && i + 1 < args.length) {
      a.push("--port", String(port));
      i++;
    } else if (args[i].startsWith("--port=")) a.push(`--port=${port}`);
    else a.push(args[i]);
  }
  return { env: e, args: a };
}

/** Expands ${VAR} like openclaw does for the leaves we compare. */
export function substituteEnv(s, envMap) {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, k) => (envMap.has(k) ? envMap.get(k) : m));
}

/**
 * Leaves of `want` that `got` does not reproduce. Strings with ${VAR} may come back
 * substituted or redacted; arrays compare whole.
 */
export function missingLeaves(want, got, envMap, prefix = "") {
  const out = [];
  if (Array.isArray(want) || want === null || typeof want !== "object") {
    const same = JSON.stringify(want) === JSON.stringify(got);
    if (same) return out;
    if (typeof want === "string" && want.includes("${")) {
      if (got === substituteEnv(want, envMap) || got === "__OPENCLAW_REDACTED__") return out;
    }
    out.push(`${prefix || "<root>"}: want ${JSON.stringify(want)}, runtime has ${JSON.stringify(got)}`);
    return out;
  }
  for (const [k, v] of Object.entries(want)) {
    const g = got && typeof got === "object" ? got[k] : undefined;
    out.push(...missingLeaves(v, g, envMap, prefix ? `${prefix}.${k}` : k));
  }
  return out;
}

/** "45m" / "1h30m" / "90s" / "2h" -> ms (openclaw duration strings used by heartbeat.every). */
export function durationMs(s) {
  if (typeof s !== "string") return null;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let seen = "";
  let m;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * { ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2]];
    seen += m[0];
  }
  return seen === s.replace(/\s+/g, "") && seen ? total : null;
}

// ---------------------------------------------------------------------------------------
// Kubelet Secret volume emulation (pkg/volume/util/atomic_writer.go).

/**
 * Writes `files` ({key: content}) into `dir` the way the kubelet updates a Secret volume:
 * a new timestamped dir, `..data_tmp -> ts`, rename over `..data`, `key -> ..data/key`
 * symlinks (created once), old timestamped dir removed. Returns the new `..data` target.
 * `fileMode`/`gid`: the volume's item mode (or defaultMode) and the pod's fsGroup.
 */
export function kubeletWrite(dir, files, { fileMode = 0o644, gid = null } = {}) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  let old = null;
  try {
    old = fs.readlinkSync(path.join(dir, "..data"));
  } catch {}
  const now = new Date();
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const ts = `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.${crypto.randomInt(1e9)}`;
  const tsDir = path.join(dir, ts);
  fs.mkdirSync(tsDir, { mode: 0o755 });
  for (const [key, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(tsDir, key), content, { mode: fileMode });
    fs.chmodSync(path.join(tsDir, key), fileMode);
    // With a pod fsGroup the kubelet hands the projected files to that group.
    if (gid !== null) fs.chownSync(path.join(tsDir, key), 0, gid);
  }
  if (gid !== null) fs.chownSync(tsDir, 0, gid);
  const tmpLink = path.join(dir, "..data_tmp");
  fs.rmSync(tmpLink, { force: true });
  fs.symlinkSync(ts, tmpLink);
  fs.renameSync(tmpLink, path.join(dir, "..data"));
  for (const key of Object.keys(files)) {
    const link = path.join(dir, key);
    let isLink = false;
    try {
      isLink = fs.lstatSync(link).isSymbolicLink();
    } catch {}
    if (!isLink) fs.symlinkSync(path.join("..data", key), link);
  }
  if (old && old !== ts) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
  return ts;
}

// ---------------------------------------------------------------------------------------
// Dockerfile (just enough to read our own: JSON-form ENTRYPOINT/CMD, ENV k=v, ARG, USER).

/**
 * The runtime config of a built image, from `buildah inspect --type image` (Docker format, so
 * HEALTHCHECK is kept): what a container runtime starts, independent of the Dockerfile text.
 */
export function imageConfigFromInspect(inspect) {
  const c = inspect?.Docker?.config ?? inspect?.OCIv1?.config;
  if (!c) throw new Error("image inspect output has no Docker.config / OCIv1.config");
  const env = {};
  for (const kv of c.Env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const hc = c.Healthcheck ?? null;
  const sec = (ns) => (typeof ns === "number" ? ns / 1e9 : null);
  return {
    entrypoint: c.Entrypoint ?? null,
    cmd: c.Cmd ?? null,
    user: c.User ?? null,
    workdir: c.WorkingDir ?? null,
    env,
    labels: c.Labels ?? {},
    stopsignal: c.StopSignal ?? null,
    exposedPorts: Object.keys(c.ExposedPorts ?? {}),
    healthcheck: hc ? { test: hc.Test ?? null, intervalS: sec(hc.Interval), timeoutS: sec(hc.Timeout), startPeriodS: sec(hc.StartPeriod) } : null,
  };
}

export function parseDockerfile(text) {
  const lines = [];
  let cur = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw) && !cur) continue;
    const l = raw.replace(/\s+$/, "");
    if (l.endsWith("\\")) {
      cur += l.slice(0, -1) + " ";
      continue;
    }
    cur += l;
    if (cur.trim()) lines.push(cur.trim());
    cur = "";
  }
  const out = { from: [], args: {}, env: {}, user: null, workdir: null, entrypoint: null, cmd: null, labels: {}, stopsignal: null };
  const words = (s) => s.match(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g) ?? [];
  const unq = (s) => (s.startsWith('"') ? JSON.parse(s) : s);
  const kv = (rest, into) => {
    for (const w of words(rest)) {
      const i = w.indexOf("=");
      if (i > 0) into[w.slice(0, i)] = unq(w.slice(i + 1));
    }
  };
  for (const l of lines) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(l);
    if (!m) continue;
    const [, ins, rest] = m;
    switch (ins.toUpperCase()) {
      case "FROM":
        out.from.push(rest);
        break;
      case "ARG": {
        const i = rest.indexOf("=");
        if (i > 0) out.args[rest.slice(0, i).trim()] = unq(rest.slice(i + 1).trim());
        else out.args[rest.trim()] = null;
        break;
      }
      case "ENV":
        kv(rest, out.env);
        break;
      case "LABEL":
        kv(rest, out.labels);
        break;
      case "USER":
        out.user = rest.trim();
        break;
      case "WORKDIR":
        out.workdir = rest.trim();
        break;
      case "ENTRYPOINT":
        out.entrypoint = JSON.parse(rest);
        break;
      case "CMD":
        out.cmd = JSON.parse(rest);
        break;
      case "STOPSIGNAL":
        out.stopsignal = rest.trim();
        break;
    }
  }
  // Resolve ${ARG} in FROM/labels with ARG defaults.
  const sub = (s) => s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, k) => out.args[k] ?? m);
  out.from = out.from.map(sub);
  for (const k of Object.keys(out.labels)) out.labels[k] = sub(out.labels[k]);
  return out;
}

// ---------------------------------------------------------------------------------------
// Processes (/proc), ports.

export function childrenOf(pid) {
  const kids = [];
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return kids;
  }
  for (const t of tids) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/)) {
        if (c) kids.push(Number(c));
      }
    } catch {}
  }
  return kids;
}

export function processTree(pid) {
  const out = [];
  const walk = (p) => {
    out.push(p);
    for (const c of childrenOf(p)) walk(c);
  };
  walk(pid);
  return out;
}

export function procInfo(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (n) => (new RegExp(`^${n}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "").trim();
    let pssKiB = null;
    try {
      pssKiB = Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? NaN);
    } catch {}
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    return {
      pid,
      name: field("Name"),
      uid: Number(field("Uid").split(/\s+/)[0]),
      gid: Number(field("Gid").split(/\s+/)[0]),
      rssKiB: Number(field("VmRSS").split(/\s+/)[0] || 0),
      anonKiB: Number(field("RssAnon").split(/\s+/)[0] || 0),
      hwmKiB: Number(field("VmHWM").split(/\s+/)[0] || 0),
      cpuSec: cpuSeconds(pid),
      pssKiB,
      cmd,
    };
  } catch {
    return null;
  }
}

/** utime + stime of a process, in seconds (USER_HZ is 100 on Linux). */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15 of proc(5)
  } catch {
    return 0;
  }
}

export function memoryOfTree(rootPid) {
  const procs = processTree(rootPid).map(procInfo).filter(Boolean);
  const sum = (k) => procs.reduce((a, p) => a + (p[k] ?? 0), 0);
  return { procs, rssKiB: sum("rssKiB"), pssKiB: sum("pssKiB"), anonKiB: sum("anonKiB"), hwmKiB: sum("hwmKiB"), cpuSec: sum("cpuSec") };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or the deadline passes (then throws). */
export async function pollUntil(what, fn, { timeoutMs = 60000, intervalMs = 500 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ""}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------
// Gateway clients.

export async function httpJson(url, { method = "GET", headers = {}, body, timeoutMs = 15000 } = {}) {
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Opens an operator WebSocket session: waits for `connect.challenge`, sends `connect` as
 * the direct-loopback backend client (`gateway-client`/`backend`, no device identity) and
 * resolves with the handshake outcome. `call()` sends RPCs on the open socket.
 */
export function wsSession(port, token, { scopes = ["operator.admin", "operator.read"], timeoutMs = 30000 } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    const pending = new Map();
    let seq = 0;
    let settled = false;
    let closeInfo = null;
    let onClose;
    const closed = new Promise((r) => (onClose = r));
    const done = (v) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(v);
      }
    };
    const timer = setTimeout(() => {
      done({ ok: false, error: { code: "TIMEOUT", message: `no handshake answer in ${timeoutMs} ms` }, ws, closed });
      try {
        ws.close();
      } catch {}
    }, timeoutMs);
    const session = {
      ws,
      closed,
      call(method, params = {}, { callTimeoutMs = 30000 } = {}) {
        const id = `r${++seq}`;
        return new Promise((res, rej) => {
          const t = setTimeout(() => {
            pending.delete(id);
            rej(new Error(`${method}: no answer in ${callTimeoutMs} ms`));
          }, callTimeoutMs);
          pending.set(id, (m) => {
            clearTimeout(t);
            res(m);
          });
          ws.send(JSON.stringify({ type: "req", id, method, params }));
        });
      },
      close() {
        try {
          ws.close();
        } catch {}
      },
    };
    ws.onmessage = (ev) => {
      let m;
      try {
        m = JSON.parse(typeof ev.data === "string" ? ev.data : Buffer.from(ev.data).toString("utf8"));
      } catch {
        return;
      }
      if (m.type === "event" && m.event === "connect.challenge") {
        const params = {
          minProtocol: 4,
          maxProtocol: 4,
          client: { id: "gateway-client", version: "contract", platform: "linux", mode: "backend" },
          role: "operator",
          scopes,
          caps: [],
          commands: [],
          permissions: {},
        };
        if (token !== undefined) params.auth = { token };
        ws.send(JSON.stringify({ type: "req", id: "connect", method: "connect", params }));
      } else if (m.type === "res" && m.id === "connect") {
        if (m.ok) done({ ok: true, hello: m.payload, ...session });
        else done({ ok: false, error: m.error, ...session });
      } else if (m.type === "res" && pending.has(m.id)) {
        const cb = pending.get(m.id);
        pending.delete(m.id);
        cb(m);
      }
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      closeInfo = { code: ev.code, reason: ev.reason };
      onClose(closeInfo);
      for (const cb of pending.values()) cb({ ok: false, error: { code: "CLOSED", message: `socket closed ${ev.code}` } });
      pending.clear();
      done({ ok: false, error: { code: "CLOSED", message: `closed ${ev.code} ${ev.reason}` }, close: closeInfo, ...session });
    };
  });
}

/** Opens a session, retrying while the gateway says its startup sidecars are not ready. */
export async function wsSessionReady(port, token, opts = {}) {
  const deadline = Date.now() + (opts.totalTimeoutMs ?? 90000);
  for (;;) {
    const s = await wsSession(port, token, opts);
    if (s.ok) return s;
    const retry = s.error?.code === "UNAVAILABLE" || s.error?.details?.reason === "startup-sidecars";
    s.close();
    if (!retry || Date.now() > deadline) return s;
    await sleep(Math.min(Number(s.error?.details?.retryAfterMs) || 1000, 5000));
  }
}

export async function rpc(session, method, params) {
  const m = await session.call(method, params);
  if (!m.ok) throw new Error(`${method} failed: ${JSON.stringify(m.error).slice(0, 300)}`);
  return m.payload;
}
