#!/usr/bin/env python3
"""Schema-validate rendered Kubernetes manifests with kubernetes-validate.

Equivalent to `kubernetes-validate --strict -k VERSION FILE...` for every
VERSION, with three differences that make it usable as a gate:

* The kubernetes-validate CLI only *warns* (and exits 0) when it has no schema
  for a kind, so a custom resource or a typo'd apiVersion/kind silently
  passes. Here, kinds listed in SKIP_KINDS (custom resources whose CRD schema
  kubernetes-validate cannot know) are skipped explicitly with a SKIP line,
  and any other kind without a schema is an error.
* Every failure line names the file, the document index, and
  kind/namespace/name of the object.
* Objects rendered twice (same apiVersion group, kind, namespace, name) are an
  error: `kubectl apply` would silently keep only one of them.

Usage: validate.py [-k VERSION]... [--skip-kind GROUP/KIND]... FILE...
       (no -k: 1.29 and the newest version this kubernetes-validate ships)
Exit status: 0 all objects valid, 1 any failure, 2 usage/IO error.
"""

from __future__ import annotations

import argparse
import sys

import yaml

import kubernetes_validate.utils as kv

# Custom resources: kubernetes-validate ships only the built-in API schemas.
# Key: (API group, kind); value: why it is skipped.
SKIP_KINDS: dict[tuple[str, str], str] = {
    ("clawhost.dev", "Assistant"):
        "custom resource; its schema is the clawhost CRD (crds/assistants.clawhost.dev.yaml)",
    ("monitoring.coreos.com", "ServiceMonitor"):
        "prometheus-operator custom resource, not a Kubernetes built-in",
    ("monitoring.coreos.com", "PrometheusRule"):
        "prometheus-operator custom resource, not a Kubernetes built-in",
}

MIN_VERSION = "1.29"


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name") or meta.get("generateName") or "<no name>"
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{name}"


def load(filename: str) -> list[tuple[int, dict]]:
    """(document index, object) pairs; `kind: List` documents are expanded."""
    yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", kv.construct_value)
    with (sys.stdin if filename == "-" else open(filename)) as f:
        docs = list(yaml.load_all(f.read(), Loader=yaml.SafeLoader))
    out = []
    for i, doc in enumerate(docs):
        if not doc:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"document {i} is a {type(doc).__name__}, not a mapping")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend((i, item) for item in doc["items"])
        else:
            out.append((i, doc))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", "--kubernetes-version", action="append", dest="versions")
    ap.add_argument("--skip-kind", action="append", default=[],
                    help="extra GROUP/KIND to skip (core group: /KIND)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    newest = kv.major_minor(kv.latest_version())
    versions = args.versions or [MIN_VERSION, newest]
    versions = list(dict.fromkeys(kv.major_minor(v.lstrip("v")) for v in versions))
    skip = dict(SKIP_KINDS)
    for gk in args.skip_kind:
        g, _, k = gk.rpartition("/")
        skip[(g, k)] = "skipped on the command line (--skip-kind)"

    print(f"kubernetes-validate {kv.__version__ if hasattr(kv, '__version__') else ''}".strip()
          + f": strict schemas for Kubernetes {', '.join(versions)} (newest shipped: {newest})")

    failures = passed = skipped = 0
    seen: dict[tuple, str] = {}
    for filename in args.files:
        try:
            objects = load(filename)
        except (OSError, yaml.YAMLError, ValueError) as e:
            print(f"FAIL {filename}: cannot parse YAML: {e}")
            failures += 1
            continue
        if not objects:
            print(f"WARN {filename}: no Kubernetes objects")
        for idx, obj in objects:
            where = f"{filename} doc#{idx} {describe(obj)}"
            api_version, kind = obj.get("apiVersion"), obj.get("kind")
            if not isinstance(api_version, str) or not isinstance(kind, str):
                print(f"FAIL {where}: missing apiVersion or kind")
                failures += 1
                continue
            meta = obj.get("metadata") or {}
            key = (group_of(api_version), kind, meta.get("namespace"), meta.get("name"))
            if meta.get("name") and key in seen:
                print(f"FAIL {where}: duplicate object (also {seen[key]})")
                failures += 1
            seen.setdefault(key, where)
            reason = skip.get((group_of(api_version), kind))
            if reason:
                print(f"SKIP {where} ({api_version}): {reason}")
                skipped += 1
                continue
            ok = True
            for version in versions:
                try:
                    kv.validate(obj, version, strict=True)
                except kv.ValidationError as e:
                    path = ".".join(str(p) for p in e.path) or "<root>"
                    print(f"FAIL {where} [k8s {version}]: {path}: {e.message}")
                    ok = False
                except kv.SchemaNotFoundError:
                    print(f"FAIL {where} [k8s {version}]: no schema for {kind} {api_version}: "
                          "not a built-in kind of this Kubernetes version (typo? removed API? "
                          "if it is a custom resource, add it to SKIP_KINDS in "
                          "tests/manifests/validate.py)")
                    ok = False
                except kv.VersionNotSupportedError:
                    print(f"FATAL kubernetes-validate does not support Kubernetes {version}")
                    return 2
            if ok:
                passed += 1
            else:
                failures += 1
    print(f"kubernetes-validate: {passed} objects valid, {failures} failed, {skipped} skipped")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
