#!/usr/bin/env bash
# Check rendered Kubernetes manifests (multi-document YAML).
#
# Usage: tests/manifests/check.sh PATH...
#   PATH: a YAML file, a directory (all *.yaml / *.yml below it), or - (stdin)
#   e.g.  clawhost render -f examples/*.yaml | tests/manifests/check.sh -
#         tests/manifests/check.sh tests/manifests/fixtures/sample-render.yaml
#
# 1. kubernetes-validate, strict (unknown fields are errors), against
#    Kubernetes 1.29 (our minimum) and the newest version kubernetes-validate
#    ships. Custom resources it has no schema for (Assistant, ServiceMonitor,
#    PrometheusRule) are skipped by name with a SKIP line; any other kind
#    without a schema fails (see tests/manifests/validate.py).
# 2. checkov --framework kubernetes with the repo's .checkov.yaml: zero failed
#    checks allowed. Per-object exceptions use checkov.io/skipN annotations and
#    are listed as SKIP lines.
# Exits non-zero on any failure; FAIL lines name file, object and check.
#
# Env: CLAWHOST_CACHE (tool location, see tests/tools/install.sh),
#      CHECKOV_CONFIG (default: <repo>/.checkov.yaml),
#      K8S_VERSIONS (default: "1.29 newest"; space-separated).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../tools/env.sh
. "$ROOT/tests/tools/env.sh"
clawhost_ensure_tools >/dev/null

[ $# -gt 0 ] || { sed -n '2,8p' "$0" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

files=()
for arg in "$@"; do
  if [ "$arg" = - ]; then
    cat > "$work/stdin.yaml"
    files+=("$work/stdin.yaml")
  elif [ -d "$arg" ]; then
    while IFS= read -r -d '' f; do files+=("$f"); done \
      < <(find "$arg" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z)
  elif [ -f "$arg" ]; then
    files+=("$arg")
  else
    echo "check.sh: no such file or directory: $arg" >&2
    exit 2
  fi
done
[ ${#files[@]} -gt 0 ] || { echo "check.sh: no YAML files in: $*" >&2; exit 2; }

rc=0
echo "== kubernetes-validate (${#files[@]} file(s))"
kargs=()
if [ -n "${K8S_VERSIONS:-}" ]; then
  for v in $K8S_VERSIONS; do kargs+=(-k "$v"); done
fi
python "$HERE/validate.py" "${kargs[@]}" "${files[@]}" | tee "$work/validate.log" || rc=1
# objects checkov should see: everything kubernetes-validate looked at
objects="$(sed -n 's/^kubernetes-validate: \([0-9]*\) objects valid, \([0-9]*\) failed.*/\1 \2/p' "$work/validate.log" \
           | awk '{print $1+$2}')"

echo "== checkov --framework kubernetes (config: ${CHECKOV_CONFIG:-$ROOT/.checkov.yaml})"
# checkov writes JSON to stdout; its exit code is 1 on failed checks, which
# checkov_report.py re-derives (and also catches "scanned nothing").
checkov --config-file "${CHECKOV_CONFIG:-$ROOT/.checkov.yaml}" \
  --framework kubernetes --skip-download -o json \
  -f "${files[@]}" > "$work/checkov.json" 2> "$work/checkov.err" || true
if ! python -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/checkov.json" 2>/dev/null; then
  echo "FAIL checkov did not produce a report:"; cat "$work/checkov.err" "$work/checkov.json"; rc=1
else
  min=0; [ "${objects:-0}" -gt 0 ] && min=1
  python "$HERE/checkov_report.py" --min-resources "$min" "$work/checkov.json" || rc=1
fi

if [ "$rc" = 0 ]; then echo "manifests: OK"; else echo "manifests: FAILED"; fi
exit "$rc"
