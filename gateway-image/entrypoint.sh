#!/bin/sh
# clawhost-entrypoint: pre-flight checks for one client's openclaw gateway, then exec.
#
# Installed in the image as /usr/local/bin/clawhost-entrypoint and run by tini (PID 1):
#   ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/clawhost-entrypoint"]
#   CMD        ["openclaw", "gateway", "run", "--bind", "loopback", "--port", "18789", "--auth", "token"]
#
# It refuses to start, with ONE line on stderr (also written to /dev/termination-log so it
# shows in the pod status), when the pod does not give the gateway what it needs:
#   - HOME (the assistant's PVC) must be a directory writable by the running UID,
#   - the state layout under HOME must be writable (no root-owned leftovers),
#   - TMPDIR and /tmp must be writable (the root filesystem is read-only: emptyDir at /tmp),
#   - with `--auth token`, OPENCLAW_GATEWAY_TOKEN must be set,
#   - OPENCLAW_CONFIG_PATH, when set, must be a readable file.
# On first boot it creates the state layout, then `exec "$@"` so that SIGTERM from tini
# reaches the gateway itself. It never writes outside HOME and TMPDIR.
set -eu

PROG=clawhost-entrypoint

die() {
	msg="$PROG: $*"
	if [ -w /dev/termination-log ]; then
		printf '%s\n' "$msg" >/dev/termination-log 2>/dev/null || :
	fi
	printf '%s\n' "$msg" >&2
	exit 1
}

warn() {
	printf '%s: warning: %s\n' "$PROG" "$*" >&2
}

uid=$(id -u)
gid=$(id -g)

describe() {
	# "owner U:G, mode M" of an existing path
	stat -c 'owner %u:%g, mode %a' "$1" 2>/dev/null || printf 'unknown owner and mode'
}

# can_write DIR: really create and remove a file (access(2) lies for root and on some mounts).
can_write() {
	probe_file="$1/.clawhost-write-test.$$"
	if (: >"$probe_file") 2>/dev/null; then
		rm -f "$probe_file"
		return 0
	fi
	return 1
}

require_writable_dir() {
	# require_writable_dir DIR HINT
	if [ ! -d "$1" ]; then
		die "$1 does not exist or is not a directory; $2"
	fi
	if ! can_write "$1"; then
		die "$1 is not writable by uid $uid ($(describe "$1")); $2"
	fi
}

# --- HOME: the assistant's persistent volume --------------------------------------------
if [ -z "${HOME:-}" ] || [ "$HOME" = "/" ]; then
	die "HOME is not set; set HOME=/home/node and mount the assistant's volume there"
fi
require_writable_dir "$HOME" "set fsGroup $gid on the pod"

state_dir=${OPENCLAW_STATE_DIR:-$HOME/.openclaw}
workspace_dir=${OPENCLAW_WORKSPACE_DIR:-$state_dir/workspace}

# --- first-boot layout (idempotent) -------------------------------------------------------
# Everything openclaw must keep across restarts lives on the volume:
#   ~/.openclaw (config journal, state/*.sqlite, agents/, credentials/, media/, workspace/)
#   ~/.config/openclaw, ~/.local/share/signal-cli
for dir in "$state_dir" "$HOME/.config/openclaw" "$HOME/.local/share/signal-cli"; do
	if [ ! -d "$dir" ]; then
		mkdir -p "$dir" 2>/dev/null || die "cannot create $dir as uid $uid ($(describe "$(dirname "$dir")")); set fsGroup $gid on the pod"
		chmod 0700 "$dir" 2>/dev/null || :
	fi
	require_writable_dir "$dir" "chown -R $uid:$gid the volume (it holds files from another uid)"
done
if [ ! -d "$workspace_dir" ]; then
	mkdir -p "$workspace_dir" 2>/dev/null || die "cannot create $workspace_dir as uid $uid ($(describe "$(dirname "$workspace_dir")")); chown -R $uid:$gid the volume"
fi
require_writable_dir "$workspace_dir" "chown -R $uid:$gid the volume (it holds files from another uid)"

# --- scratch space: the root filesystem is read-only ------------------------------------
require_writable_dir "${TMPDIR:-/tmp}" "mount an emptyDir there (the root filesystem is read-only)"
if [ "${TMPDIR:-/tmp}" != /tmp ]; then
	# openclaw also writes /tmp/openclaw (logs) and /tmp/openclaw-state-locks-<uid> itself.
	require_writable_dir /tmp "mount an emptyDir at /tmp (openclaw writes logs and locks there)"
fi

# --- default command ----------------------------------------------------------------------
if [ "$#" -eq 0 ]; then
	set -- openclaw gateway run --bind loopback --port "${OPENCLAW_GATEWAY_PORT:-18789}" --auth token
fi

# --- config and token sanity (only for the gateway itself) -------------------------------
is_gateway=false
auth_token=false
prev=
for arg in "$@"; do
	case "$arg" in
	gateway) is_gateway=true ;;
	--auth=token) auth_token=true ;;
	token) [ "$prev" = --auth ] && auth_token=true ;;
	esac
	prev=$arg
done

if $is_gateway; then
	if [ -n "${OPENCLAW_CONFIG_PATH:-}" ]; then
		if [ ! -e "$OPENCLAW_CONFIG_PATH" ]; then
			die "config $OPENCLAW_CONFIG_PATH not found; mount the Secret with key openclaw.json as a directory at $(dirname "$OPENCLAW_CONFIG_PATH")"
		fi
		if [ ! -r "$OPENCLAW_CONFIG_PATH" ]; then
			die "config $OPENCLAW_CONFIG_PATH is not readable by uid $uid ($(describe "$OPENCLAW_CONFIG_PATH")); check the Secret volume defaultMode"
		fi
		if [ ! -L "$OPENCLAW_CONFIG_PATH" ]; then
			# kubelet projects Secret keys as symlinks into ..data; a plain file means subPath
			# (or a hand-made mount), and subPath mounts never see Secret updates.
			warn "$OPENCLAW_CONFIG_PATH is not a projected Secret key (subPath mount?); config updates will not reach the gateway"
		fi
	fi
	if $auth_token && [ -z "${OPENCLAW_GATEWAY_TOKEN:-}" ]; then
		die "--auth token but OPENCLAW_GATEWAY_TOKEN is empty; set it from the assistant's gateway-token Secret"
	fi
fi

exec "$@"
