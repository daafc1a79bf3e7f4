#!/usr/bin/env bash
# Browser tests of the console in real headless Chromium (playwright-core, no bundled
# browser). For each suite tests/browser/*.test.mjs (or the ones named as arguments): starts
# the demo console (`console-demo` of the clawhost-testing crate: the console over a seeded
# in-memory cluster) on a free loopback port against a fresh SQLite database, creates an
# admin with `clawhost admin create`, runs the suite; prints "browser: N passed, M failed".
# Suites share lib.mjs and never depend on each other. A suite's first line may set up its
# console: "// run.sh env: NO_ADMIN=1 KEY=value ..." (NO_ADMIN=1: no admin is created, for
# the first-run flow; the other pairs go to the console's environment).
# Env: CLAWHOST_BIN, CONSOLE_DEMO_BIN (default: cargo build), CHROMIUM (default /usr/bin/chromium),
#      BROWSER_DEPS (npm cache dir, default ~/.cache/clawhost/browser-deps),
#      SCREENSHOTS (default: a build directory; refresh the README's pictures with
#      `SCREENSHOTS=docs/images tests/browser/run.sh`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PLAYWRIGHT_VERSION=1.65.1

if [ -z "${CLAWHOST_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p clawhost)
  CLAWHOST_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/clawhost"
fi
if [ -z "${CONSOLE_DEMO_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p clawhost-testing --bin console-demo)
  CONSOLE_DEMO_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/console-demo"
fi
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "browser: installing chromium" >&2
  apt-get install -y chromium >/dev/null
fi
deps=${BROWSER_DEPS:-$HOME/.cache/clawhost/browser-deps}
if [ ! -f "$deps/node_modules/playwright-core/package.json" ] || \
   ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$deps/node_modules/playwright-core/package.json"; then
  mkdir -p "$deps"
  [ -f "$deps/package.json" ] || echo '{"private":true}' > "$deps/package.json"
  (cd "$deps" && npm install --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION")
fi
export NODE_PATH="$deps/node_modules"


# One suite against its own console and database.
run_suite() { # suite file
  local suite=$1 tmp pid="" up="" port attempt rc
  tmp=$(mktemp -d /tmp/clawhost-browser.XXXXXX)
  # A free port can be taken between picking it and the console binding it: the console
  # exits at once then, and the next attempt picks another port.
  local db="sqlite://$tmp/console.sqlite"
  export ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD='browser-test-password-1'
  local suite_env=()
  read -r -a suite_env <<<"$(head -1 "$suite" | sed -n 's#^// run.sh env: ##p')"
  if ! printf '%s\n' "${suite_env[@]}" | grep -qx 'NO_ADMIN=1'; then
    printf '%s\n' "$ADMIN_PASSWORD" | "$CLAWHOST_BIN" admin create --email "$ADMIN_EMAIL" --password-stdin --database-url "$db" >/dev/null
  fi
  for attempt in 1 2 3; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env "${suite_env[@]}" CLAWHOST_CONSOLE_USAGE_INTERVAL_SECONDS=1 RUST_LOG="${CONSOLE_LOG_LEVEL:-warn}" \
      "$CONSOLE_DEMO_BIN" --listen "127.0.0.1:$port" --database-url "$db" >"$tmp/console.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
      if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$up" ] && break
    echo "browser: console did not come up on port $port (attempt $attempt)" >&2
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""
  done
  if [ -z "$up" ]; then
    echo "--- console log ---"; tail -50 "$tmp/console.log"
    echo "browser: 0 passed, 1 failed (the console never answered /healthz)"
    rm -rf "$tmp"
    return 1
  fi
  echo "--- $(basename "$suite")"
  set +e
  BASE_URL="http://127.0.0.1:$port" USER_DATA_DIR="$tmp/profile" CONSOLE_LOG="$tmp/console.log" \
    DATABASE_URL="$db" node "$suite"
  rc=$?
  set -e
  [ $rc -eq 0 ] || { echo "--- console log ---"; tail -50 "$tmp/console.log"; }
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
  return $rc
}

export SCREENSHOTS=${SCREENSHOTS:-${CARGO_TARGET_DIR:-$root/target}/browser-screenshots}
mkdir -p "$SCREENSHOTS"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("$here"/*.test.mjs)
status=0
for suite in "${suites[@]}"; do
  run_suite "$suite" || status=1
done
exit $status
