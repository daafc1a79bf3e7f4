#!/bin/sh
# podsim.sh: run a command the way the gateway container runs in its pod, on this machine.
#
# Called by the contract harness as root inside a fresh mount+PID namespace:
#   unshare --mount --pid --fork --mount-proc --propagation private -- \
#     sh podsim.sh RUN_DIR PVC_DIR SECRET_DIR CACHE_DIR IMAGE_DIR NODE_BIN OPENCLAW_MJS UID GID -- K=V... CMD...
# (`env -i` takes the leading K=V words as the environment; CMD must not contain "=").
# It builds the pod's filesystem view with the exact in-pod paths, then drops to UID:GID
# (capabilities dropped) with exactly the given environment and execs CMD (tini first):
#   /home/node       <- PVC_DIR                 (the PVC; rw; ownership as the harness set it)
#   /etc/openclaw    <- SECRET_DIR              (the config Secret volume, read-only mount)
#   /tmp             <- RUN_DIR/emptydir        (emptyDir)
#   /usr/local/bin/{node,openclaw,clawhost-entrypoint,clawhost-probe}  (what the image ships)
#   everything else  read-only (readOnlyRootFilesystem: true)
# All mounts live in the private namespace only; nothing on the host changes. Never use
# `mount -o remount,ro` without `bind` here: that would flip the host's superblock.
set -eu

RUN_DIR=$1 PVC_DIR=$2 SECRET_DIR=$3 CACHE_DIR=$4 IMAGE_DIR=$5 NODE_BIN=$6 OPENCLAW_MJS=$7 RUN_UID=$8 RUN_GID=$9
shift 9
[ "$1" = -- ] || { echo "podsim: usage error" >&2; exit 97; }
shift

fail() { echo "podsim: $*" >&2; exit 97; }

[ "$(id -u)" = 0 ] || fail "must run as root in a private mount namespace"
[ "$$" = 1 ] || fail "must run as PID 1 of a new PID namespace (unshare --pid --fork)"

# The PVC at /home/node (tmpfs over /home hides the host's /home in this namespace only).
mount -t tmpfs -o mode=0755,size=1m podsim-home /home
mkdir /home/node
mount --bind "$PVC_DIR" /home/node

# The config Secret volume at /etc/openclaw, read-only (overlay so /etc/openclaw can exist).
mkdir -p "$RUN_DIR/ovl/etc/upper" "$RUN_DIR/ovl/etc/work" "$RUN_DIR/ovl/usr/upper" "$RUN_DIR/ovl/usr/work"
mount -t overlay podsim-etc -o "lowerdir=/etc,upperdir=$RUN_DIR/ovl/etc/upper,workdir=$RUN_DIR/ovl/etc/work" /etc
mkdir /etc/openclaw
mount --bind "$SECRET_DIR" /etc/openclaw
mount -o remount,bind,ro /etc/openclaw

# The image's /usr/local: node, openclaw and our two scripts.
mount -t overlay podsim-usr -o "lowerdir=/usr/local,upperdir=$RUN_DIR/ovl/usr/upper,workdir=$RUN_DIR/ovl/usr/work" /usr/local
mkdir -p /usr/local/lib/clawhost-cache /usr/local/bin
mount --bind "$CACHE_DIR" /usr/local/lib/clawhost-cache
mount -o remount,bind,ro /usr/local/lib/clawhost-cache
ln -sf "/usr/local/lib/clawhost-cache/$NODE_BIN" /usr/local/bin/node
ln -sf "/usr/local/lib/clawhost-cache/$OPENCLAW_MJS" /usr/local/bin/openclaw
install -m 0755 "$IMAGE_DIR/entrypoint.sh" /usr/local/bin/clawhost-entrypoint
install -m 0755 "$IMAGE_DIR/clawhost-probe" /usr/local/bin/clawhost-probe

# The emptyDir at /tmp (this hides RUN_DIR, which lives under the host's /tmp: all the
# mounts above already hold their sources).
mount --bind "$RUN_DIR/emptydir" /tmp

# readOnlyRootFilesystem: every remaining writable place becomes read-only, except the
# volumes and kernel filesystems a container also gets (/proc, /sys, /dev).
mount -o remount,bind,ro /
mount -o remount,bind,ro /etc
mount -o remount,bind,ro /usr/local
mount -o remount,bind,ro /home

# The image's WORKDIR (a relative cwd from the host would dangle under the new /tmp).
cd /home/node

# Drop to the pod's user: no capabilities, no privilege gain, exact environment.
exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --groups="$RUN_GID" --inh-caps=-all \
	--bounding-set=-all --no-new-privs env -i "$@"
