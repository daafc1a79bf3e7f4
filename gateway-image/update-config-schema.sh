#!/usr/bin/env bash
# Regenerates gateway-image/openclaw-config.schema.json: openclaw's own JSON Schema for
# openclaw.json (`openclaw config schema --json`, draft-07) of the version pinned in
# gateway-image/Dockerfile. The operator validates a client's config fragment against it at
# render time; tests/gateway-contract/run.sh fails when the snapshot is stale.
#
#   gateway-image/update-config-schema.sh           # rewrite the snapshot
#   gateway-image/update-config-schema.sh --check   # exit 1 if it is stale
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=toolchain.sh
. "$here/toolchain.sh"
toolchain_install

out=$here/openclaw-config.schema.json
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home"
# A throwaway HOME/state: the export reads no config and writes nothing, but be sure.
HOME=$scratch/home OPENCLAW_STATE_DIR=$scratch/home/.openclaw OPENCLAW_NO_AUTO_UPDATE=1 \
	TMPDIR=$scratch OPENCLAW_CONFIG_PATH=$scratch/none.json PATH="$(dirname "$NODE_BIN"):$PATH" \
	"$NODE_BIN" "$OPENCLAW_MJS" config schema --json >"$scratch/schema.json"
"$NODE_BIN" -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$scratch/schema.json"

if [ "${1:-}" = --check ]; then
	if cmp -s "$scratch/schema.json" "$out"; then
		echo "openclaw-config.schema.json is current (openclaw $OPENCLAW_VERSION)"
		exit 0
	fi
	echo "openclaw-config.schema.json is stale for openclaw $OPENCLAW_VERSION; run $0" >&2
	exit 1
fi
mv "$scratch/schema.json" "$out"
chmod 644 "$out"
echo "wrote $out (openclaw $OPENCLAW_VERSION, $(wc -c <"$out") bytes)"
