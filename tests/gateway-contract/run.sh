#!/usr/bin/env bash
# The gateway contract test: the operator's rendered pod spec against the real, pinned
# openclaw gateway, run the way the pod runs it (tini + clawhost-entrypoint, uid 1000,
# read-only root, read-only kubelet-style config dir, emptyDir /tmp, PVC at /home/node).
#
#   tests/gateway-contract/run.sh
#
# Needs root (mount/PID/network namespaces stand in for the container runtime) and the
# package registries (npm, Debian) on the first run; after that everything is cached.
# Env:
#   CLAWHOST_CACHE                     cache dir (default ~/.cache/clawhost)
#   CLAWHOST_BIN                       clawhost binary (default: cargo run -q -p clawhost --)
#   CLAWHOST_RENDER_JSON               use this render output instead of running clawhost
#                                      (debugging only; the contract is the real render)
#   CLAWHOST_CONTRACT_IDLE_SECONDS     idle time before the second memory sample (default 60)
#   CLAWHOST_CONTRACT_STARTUP_TIMEOUT  seconds to wait for the gateway to start (default 240)
#   CLAWHOST_CONTRACT_KEEP=1           keep the work dir (volumes, logs) after the run
#   CLAWHOST_CONTRACT_OPTIONAL_SECRETS=1  also fake optional secretKeyRefs (see contract.mjs)
# Last line: `gateway-contract: N passed, M failed`; exit status 0 only when M is 0.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

say() { printf '# %s\n' "$*"; }
fail_early() {
	printf 'not ok 1 - %s\n' "$*"
	echo "gateway-contract: 0 passed, 1 failed"
	exit 1
}

# --- 1. tools: Node + openclaw (pinned by gateway-image/Dockerfile) and a few Debian ones ---
if [ "$(id -u)" != 0 ]; then
	fail_early "setup: needs root (namespaces stand in for the container runtime)"
fi
missing=()
command -v tini >/dev/null 2>&1 || [ -x /usr/bin/tini ] || missing+=(tini)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
	say "apt-get install ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			fail_early "setup: apt-get install ${missing[*]} failed"
	fi
fi
[ -x /usr/bin/tini ] || fail_early "setup: /usr/bin/tini missing (the image's ENTRYPOINT uses that path)"

# shellcheck source-path=SCRIPTDIR source=../../gateway-image/toolchain.sh
. "$root/gateway-image/toolchain.sh"
toolchain_install || fail_early "setup: installing node $NODE_VERSION / openclaw $OPENCLAW_VERSION into $CLAWHOST_CACHE failed"
say "node $NODE_VERSION and openclaw $OPENCLAW_VERSION from $CLAWHOST_CACHE"

# --- 2. the rendered objects ----------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
render_json=$work/render.json
render_note=""
if [ -n "${CLAWHOST_RENDER_JSON:-}" ]; then
	cp "$CLAWHOST_RENDER_JSON" "$render_json"
	render_note="NOT the real render: CLAWHOST_RENDER_JSON=$CLAWHOST_RENDER_JSON"
	say "WARNING: $render_note"
else
	if [ -n "${CLAWHOST_BIN:-}" ]; then
		render=("$CLAWHOST_BIN")
	else
		render=(cargo run -q -p clawhost --)
	fi
	say "rendering examples/assistant-full.yaml with: ${render[*]}"
	if ! "${render[@]}" render -f examples/assistant-full.yaml -o json >"$render_json" 2>"$work/render.err"; then
		sed 's/^/#   /' "$work/render.err" | tail -n 40
		fail_early "render: ${render[*]} render -f examples/assistant-full.yaml -o json failed"
	fi
fi

# --- 3. the test, in a network namespace with only loopback --------------------------------
# The gateway (and whatever channels the client's config enables) then cannot reach
# anything but 127.0.0.1/::1; the test talks to it there.
status=0
unshare --net -- /bin/sh -c 'ip link set lo up && exec "$@"' sh \
	"$NODE_BIN" "$here/contract.mjs" \
	--cache "$CLAWHOST_CACHE" --node-rel "$NODE_REL" --openclaw-rel "$OPENCLAW_REL" \
	--node-version "$NODE_VERSION" --openclaw-version "$OPENCLAW_VERSION" \
	--render "$render_json" --render-note "$render_note" || status=$?
exit "$status"
