# shellcheck shell=bash
# Source me:  . tests/tools/env.sh
# Puts the tools installed by tests/tools/install.sh first on PATH:
#   $CLAWHOST_CACHE/bin (helm, kubectl) and $CLAWHOST_CACHE/venv/bin
#   (kubernetes-validate, checkov, python).
# Also defines clawhost_ensure_tools, which runs install.sh only when a tool is
# missing (set CLAWHOST_NO_INSTALL=1 to make it fail instead).
export CLAWHOST_CACHE="${CLAWHOST_CACHE:-$HOME/.cache/clawhost}"
case ":$PATH:" in
  *":$CLAWHOST_CACHE/bin:"*) ;;
  *) export PATH="$CLAWHOST_CACHE/bin:$CLAWHOST_CACHE/venv/bin:$PATH" ;;
esac
CLAWHOST_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

clawhost_ensure_tools() {
  local t missing=0
  for t in "$CLAWHOST_CACHE/bin/helm" "$CLAWHOST_CACHE/bin/kubectl" \
           "$CLAWHOST_CACHE/venv/bin/kubernetes-validate" "$CLAWHOST_CACHE/venv/bin/checkov"; do
    [ -x "$t" ] || missing=1
  done
  # promtool comes from Debian's archive: expected wherever apt-get exists
  if command -v apt-get >/dev/null 2>&1 && [ ! -x "$CLAWHOST_CACHE/bin/promtool" ]; then
    missing=1
  fi
  # a changed requirements.txt also needs a (fast, incremental) install run
  if [ "$missing" = 0 ] && [ "$(cat "$CLAWHOST_CACHE/venv/.clawhost-requirements.sha256" 2>/dev/null)" \
       != "$(sha256sum "$CLAWHOST_TOOLS_DIR/requirements.txt" | cut -d' ' -f1)" ]; then
    missing=1
  fi
  [ "$missing" = 0 ] && return 0
  if [ "${CLAWHOST_NO_INSTALL:-0}" = 1 ]; then
    echo "tools missing under $CLAWHOST_CACHE: run tests/tools/install.sh" >&2
    return 1
  fi
  "$CLAWHOST_TOOLS_DIR/install.sh"
}
