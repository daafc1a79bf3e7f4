#!/bin/sh
# podsim.sh: run a command in the gateway image's root filesystem the way its container
# runs in the pod, on a machine without a container runtime.
#
# Called by the contract harness as root inside a fresh mount+PID namespace:
#   unshare --mount --pid --fork --propagation private -- \
#     sh podsim.sh RUN_DIR IMAGE_ROOTFS PVC_DIR SECRET_DIR UID GID WORKDIR -- K=V... CMD...
# (`env -i` takes the leading K=V words as the environment; CMD must not contain "=").
# It assembles the container's root at RUN_DIR/root and execs CMD there (tini first) as
# UID:GID with exactly the given environment:
#   /                <- IMAGE_ROOTFS under an overlay (mount points go to RUN_DIR/upper),
#                       then read-only (readOnlyRootFilesystem: true)
#   /home/node       <- PVC_DIR     (the PVC; rw; ownership as the harness set it)
#   /etc/openclaw    <- SECRET_DIR  (the config Secret volume, read-only)
#   /tmp             <- RUN_DIR/emptydir (emptyDir)
#   /proc (this PID namespace), /dev (the runtime's minimal set), /sys (read-only),
#   /etc/hosts, /etc/hostname, /etc/resolv.conf (as the kubelet writes them)
# All mounts live in the private namespace only; nothing on the host changes.
set -eu

RUN_DIR=$1 ROOTFS=$2 PVC_DIR=$3 SECRET_DIR=$4 RUN_UID=$5 RUN_GID=$6 WORKDIR=$7
shift 7
[ "$1" = -- ] || { echo "podsim: usage error" >&2; exit 97; }
shift

fail() { echo "podsim: $*" >&2; exit 97; }

[ "$(id -u)" = 0 ] || fail "must run as root in a private mount namespace"
[ "$$" = 1 ] || fail "must run as PID 1 of a new PID namespace (unshare --pid --fork)"
[ -x "$ROOTFS/usr/bin/env" ] || fail "$ROOTFS is not an image root filesystem (no /usr/bin/env)"

root=$RUN_DIR/root
mkdir -p "$root" "$RUN_DIR/upper" "$RUN_DIR/work"
mount -t overlay podsim-root -o "lowerdir=$ROOTFS,upperdir=$RUN_DIR/upper,workdir=$RUN_DIR/work" "$root"

# Volumes (the runtime creates missing mount points, as here in the overlay's upper dir).
mkdir -p "$root/home/node" "$root/etc/openclaw" "$root/tmp"
mount --bind "$PVC_DIR" "$root/home/node"
mount --bind "$SECRET_DIR" "$root/etc/openclaw"
mount -o remount,bind,ro "$root/etc/openclaw"
mount --bind "$RUN_DIR/emptydir" "$root/tmp"

# Kernel filesystems and the device nodes a container runtime provides.
mount -t proc proc "$root/proc"
mount -t tmpfs -o nosuid,mode=0755,size=64k podsim-dev "$root/dev"
for d in null zero full random urandom tty; do
	touch "$root/dev/$d"
	mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir "$root/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m podsim-shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"

# The files the kubelet mounts into every container.
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$RUN_DIR/hosts"
printf 'gateway-0\n' >"$RUN_DIR/hostname"
: >"$RUN_DIR/resolv.conf"
for f in hosts hostname resolv.conf; do
	[ -e "$root/etc/$f" ] || touch "$root/etc/$f"
	mount --bind "$RUN_DIR/$f" "$root/etc/$f"
done

# readOnlyRootFilesystem.
mount -o remount,bind,ro "$root"

# Drop to the pod's user in the image's root: chroot sets the ids (dropping every
# capability; the bounding set keeps only what chroot needs), no_new_privs forbids regaining
# any; the image's env sets the rest.
exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+sys_chroot,+setuid,+setgid -- \
	chroot --userspec="$RUN_UID:$RUN_GID" --groups="$RUN_GID" "$root" \
	/usr/bin/env -i --chdir="$WORKDIR" "$@"
