#!/usr/bin/env python3
"""Helpers for tests/chart/check.sh that look inside `helm template` output.

  chartcheck.py rbac RENDERED CLUSTERROLE_NAME EXPECTED_JSON [--without-leases]
      Compare the rules of a rendered ClusterRole with a PolicyRule list (the
      JSON of `clawhost rbac ... -o json`), order- and grouping-insensitive:
      both sides are expanded into (apiGroup, resource, verb, resourceName)
      atoms. --without-leases drops coordination.k8s.io/leases atoms from the
      expected side (leader election off: the chart grants no Lease access).
  chartcheck.py digests RENDERED
      Every container/initContainer image of every pod template is pinned by
      digest (contains "@sha256:").
  chartcheck.py rules RENDERED OUT
      Write the PrometheusRule's spec.groups as a Prometheus rule file.
  chartcheck.py config RENDERED OUT
      Write the ConfigMap's config.yaml.
"""

from __future__ import annotations

import json
import sys

import yaml


def docs(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(path: str, kind: str, name: str | None = None) -> dict:
    found = [d for d in docs(path) if d.get("kind") == kind
             and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        sys.exit(f"expected exactly one {kind} {name or ''} in {path}, found {len(found)}")
    return found[0]


def atoms(rules: list[dict]) -> set[tuple]:
    out = set()
    for r in rules or []:
        if r.get("nonResourceURLs"):
            for url in r["nonResourceURLs"]:
                for v in r.get("verbs", []):
                    out.add(("<nonResourceURL>", url, v, "*"))
            continue
        for g in r.get("apiGroups") or [""]:
            for res in r.get("resources") or []:
                for v in r.get("verbs") or []:
                    for n in r.get("resourceNames") or ["*"]:
                        out.add((g, res, v, n))
    return out


def fmt(a: tuple) -> str:
    g, res, v, n = a
    return f"{v:7} {(g or 'core')}/{res}" + ("" if n == "*" else f" name={n}")


def cmd_rbac(rendered: str, name: str, expected_json: str, without_leases: bool) -> int:
    got = atoms(one(rendered, "ClusterRole", name).get("rules"))
    with open(expected_json) as f:
        want = atoms(json.load(f))
    if without_leases:
        want = {a for a in want if not (a[0] == "coordination.k8s.io" and a[1] == "leases")}
    missing, extra = sorted(want - got), sorted(got - want)
    for a in missing:
        print(f"  missing in chart (code needs it): {fmt(a)}")
    for a in extra:
        print(f"  extra in chart (code does not use it): {fmt(a)}")
    print(f"  ClusterRole {name}: {len(got)} permission atoms, "
          f"{len(missing)} missing, {len(extra)} extra")
    return 1 if missing or extra else 0


def pod_specs(d: dict):
    spec = d.get("spec") or {}
    if d.get("kind") == "Pod":
        yield spec
    elif d.get("kind") == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif isinstance(spec.get("template"), dict):
        yield spec["template"].get("spec") or {}


def cmd_digests(rendered: str) -> int:
    bad = n = 0
    for d in docs(rendered):
        for ps in pod_specs(d):
            for c in (ps.get("initContainers") or []) + (ps.get("containers") or []):
                n += 1
                if "@sha256:" not in c.get("image", ""):
                    print(f"  {d['kind']}/{d['metadata']['name']} container {c['name']}: "
                          f"image {c.get('image')!r} is not pinned by digest")
                    bad += 1
    print(f"  {n} container images, {bad} without digest")
    return 1 if bad or n == 0 else 0


def cmd_rules(rendered: str, out: str) -> int:
    rule = one(rendered, "PrometheusRule")
    with open(out, "w") as f:
        yaml.safe_dump({"groups": rule["spec"]["groups"]}, f, sort_keys=False)
    return 0


def cmd_config(rendered: str, out: str) -> int:
    cms = [d for d in docs(rendered) if d.get("kind") == "ConfigMap"
           and "config.yaml" in (d.get("data") or {})]
    if len(cms) != 1:
        sys.exit(f"expected one ConfigMap with config.yaml, found {len(cms)}")
    with open(out, "w") as f:
        f.write(cms[0]["data"]["config.yaml"])
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "rbac":
        return cmd_rbac(argv[1], argv[2], argv[3], "--without-leases" in argv[4:])
    if len(argv) == 2 and argv[0] == "digests":
        return cmd_digests(argv[1])
    if len(argv) == 3 and argv[0] == "rules":
        return cmd_rules(argv[1], argv[2])
    if len(argv) == 3 and argv[0] == "config":
        return cmd_config(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
