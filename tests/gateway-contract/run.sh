#!/usr/bin/env bash
# The gateway contract test: the operator's rendered pod spec against the gateway image built
# from gateway-image/Dockerfile (tests/images/build.sh), run the way the pod runs it: the
# image's root filesystem, read-only, its ENTRYPOINT/CMD/USER/WORKDIR/ENV from the image
# config, uid 1000, the kubelet-style config dir, emptyDir /tmp, the PVC at /home/node.
#
#   tests/gateway-contract/run.sh
#
# Needs root (buildah; mount/PID/network namespaces stand in for the container runtime) and
# the package registries (npm, Debian) on the first run; after that everything is cached.
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

# --- 1. the gateway image, built from gateway-image/Dockerfile (cached), and its rootfs -------
if [ "$(id -u)" != 0 ]; then
	fail_early "setup: needs root (buildah; namespaces stand in for the container runtime)"
fi
missing=()
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
# shellcheck source-path=SCRIPTDIR source=../../gateway-image/toolchain.sh
. "$root/gateway-image/toolchain.sh"
toolchain_pins || fail_early "setup: cannot read the pinned versions from gateway-image/Dockerfile"
bash "$root/tests/images/build.sh" gateway >&2 || fail_early "image: building gateway-image/Dockerfile failed (output above)"
image=$(cat "${CLAWHOST_CACHE:-$HOME/.cache/clawhost}/images/gateway.tag")

work=$(mktemp -d)
container=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$container" ]; then
		buildah umount "$container" >/dev/null 2>&1 || true
		buildah rm "$container" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
buildah inspect --type image "$image" >"$work/image-inspect.json" || fail_early "image: buildah inspect $image failed"
container=$(buildah from --pull-never "$image") || fail_early "image: buildah from $image failed"
rootfs=$(buildah mount "$container") || fail_early "image: buildah mount failed"
say "image $image, root filesystem $rootfs"

# --- 2. the rendered objects ----------------------------------------------------------------
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
	"$rootfs/usr/local/bin/node" "$here/contract.mjs" \
	--rootfs "$rootfs" --image-inspect "$work/image-inspect.json" --image "$image" \
	--node-version "$NODE_VERSION" --openclaw-version "$OPENCLAW_VERSION" \
	--render "$render_json" --render-note "$render_note" || status=$?
exit "$status"
