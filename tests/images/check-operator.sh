#!/usr/bin/env bash
# Checks the clawhost image built from operator.Dockerfile (tests/images/build.sh operator):
# its config, that it carries no shell or package manager, and that its binary runs from the
# image's own root filesystem (read-only, as the image's USER, no network) and renders
# exactly what the binary under test renders.
#
#   tests/images/check-operator.sh          (after tests/images/build.sh operator)
# Env: CLAWHOST_BIN (the binary to compare the render with), CLAWHOST_CACHE.
# Last line: `operator-image: N passed, M failed`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CLAWHOST_CACHE=${CLAWHOST_CACHE:-$HOME/.cache/clawhost}
image=$(cat "$CLAWHOST_CACHE/images/operator.tag")

passed=0 failed=0 n=0
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1${2:+ — $2}"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1${2:+ — $2}"; }

work=$(mktemp -d)
container=$(buildah from --pull-never "$image")
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  buildah umount "$container" >/dev/null 2>&1 || true
  buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$(buildah mount "$container")
buildah inspect --type image "$image" >"$work/inspect.json"
echo "# image $image, root filesystem $rootfs"

# 1. The image config the chart relies on.
cfg() { python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["Docker"]["config"]; print(json.dumps(eval(sys.argv[2], {}, {"c": c})))' "$work/inspect.json" "$1"; }
user=$(cfg 'c.get("User")')
entrypoint=$(cfg 'c.get("Entrypoint")')
if [ "$user" = '"65532:65532"' ] && [ "$entrypoint" = '["/usr/local/bin/clawhost"]' ]; then
  ok "image config: USER 65532:65532 (the chart's runAsUser), ENTRYPOINT /usr/local/bin/clawhost"
else
  not_ok "image config" "USER $user, ENTRYPOINT $entrypoint"
fi
labels=$(cfg 'sorted(k for k in (c.get("Labels") or {}) if k.startswith("org.opencontainers.image."))')
version=$(cfg '(c.get("Labels") or {}).get("org.opencontainers.image.version")')
want_version=$(sed -n 's/^version = "\(.*\)"/\1/p' operator/Cargo.toml | head -n 1)
if [ "$version" = "\"$want_version\"" ] && grep -q revision <<<"$labels"; then
  ok "image labels: OCI annotations with version $want_version and the git revision"
else
  not_ok "image labels" "version $version, labels $labels"
fi

# 2. Nothing to run but clawhost: no shell, no package manager, no interpreter.
found=$(find "$rootfs" -xdev \( -type f -o -type l \) \
  \( -name sh -o -name bash -o -name dash -o -name ash -o -name zsh -o -name busybox \
  -o -name dpkg -o -name 'apt' -o -name 'apt-get' -o -name rpm -o -name apk -o -name perl \
  -o -name 'python3*' -o -name node \) -printf '/%P\n' | sort)
executables=$(find "$rootfs" -xdev -type f -perm -u+x \( -path "$rootfs/usr/bin/*" -o -path "$rootfs/bin/*" -o -path "$rootfs/usr/sbin/*" -o -path "$rootfs/sbin/*" -o -path "$rootfs/usr/local/bin/*" \) -printf '/%P\n' | sort)
if [ -z "$found" ] && [ "$executables" = /usr/local/bin/clawhost ]; then
  ok "no shell, package manager or interpreter; the only program is /usr/local/bin/clawhost"
else
  not_ok "no shell or package manager" "found: $(echo "$found" "$executables" | tr '\n' ' ')"
fi

# 3. The binary, run from the image: read-only root, the image's USER, only loopback.
# in_image UID:GID CMD...: examples/ is bound at /examples (an overlay holds the mount point).
in_image() {
  local ids=$1
  shift
  mkdir -p "$work/upper" "$work/ovlwork" "$work/root"
  # shellcheck disable=SC2016 # the inner script gets its values as arguments
  unshare --mount --pid --net --fork --propagation private -- /bin/sh -eu -c '
    root=$1 rootfs=$2 work=$3 ids=$4 examples=$5; shift 5
    mount -t overlay img -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/ovlwork" "$root"
    mkdir -p "$root/examples" "$root/proc" "$root/dev"
    mount --bind "$examples" "$root/examples"
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o size=64k dev "$root/dev"
    for d in null zero urandom; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
    mount -o remount,bind,ro "$root"
    exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+sys_chroot,+setuid,+setgid -- \
      chroot --userspec="$ids" "$root" "$@"
  ' sh "$work/root" "$rootfs" "$work" "$ids" "$root/examples" "$@"
}
uid_gid=${user//\"/}
if out=$(in_image "$uid_gid" /usr/local/bin/clawhost --version 2>&1) && grep -q "$want_version" <<<"$out"; then
  ok "clawhost --version runs in the image as $uid_gid" "$out"
else
  not_ok "clawhost --version in the image" "$out"
fi
if in_image "$uid_gid" /usr/local/bin/clawhost render -f /examples/assistant-full.yaml >"$work/in-image.yaml" 2>"$work/in-image.err"; then
  host_bin=${CLAWHOST_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/clawhost-target}/debug/clawhost}
  sed 's|^|# |' "$work/in-image.err"
  if [ -x "$host_bin" ] && "$host_bin" render -f examples/assistant-full.yaml >"$work/host.yaml" 2>/dev/null &&
    cmp -s "$work/host.yaml" "$work/in-image.yaml"; then
    ok "clawhost render -f examples/assistant-full.yaml in the image: $(grep -c '^kind:' "$work/in-image.yaml") objects, byte-identical to $host_bin"
  else
    not_ok "render in the image equals the tested binary's render" "$(diff "$work/host.yaml" "$work/in-image.yaml" 2>&1 | head -n 20)"
  fi
else
  not_ok "clawhost render in the image" "$(tail -n 20 "$work/in-image.err")"
fi

size=$(buildah images --format '{{.Size}}' "$image" | head -n 1)
echo "# image size $size"
echo "operator-image: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
