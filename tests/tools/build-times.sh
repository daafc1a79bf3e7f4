#!/usr/bin/env bash
# Prints how long the clawhost binary takes to build from clean, and to rebuild after an
# edit of one console file and of one child builder (a new item appended, as a real edit
# invalidates more than a bare `touch`, which incremental compilation sees through), for a
# git revision (default HEAD):
#
#   tests/tools/build-times.sh [REV...]
#
# Each revision is checked out into a temporary worktree and built with its own empty
# target dir (`cargo build --timings`; the HTML reports are kept under $OUT), so figures of
# several revisions measured in one run compare. A benchmark: it prints, never asserts.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
revs=("$@")
[ ${#revs[@]} -gt 0 ] || revs=(HEAD)
OUT=${OUT:-${TMPDIR:-/tmp}/clawhost-build-times}
mkdir -p "$OUT"

secs() { local t0=$1; echo $(($(date +%s) - t0)); }
edit() { printf '\n#[doc(hidden)]\npub const BUILD_TIMES_PROBE_%s: u32 = %s;\n' "$RANDOM" "$RANDOM" >>"$1"; }
build() { # dir target label
  local t0
  t0=$(date +%s)
  (cd "$1" && CARGO_TARGET_DIR=$2 cargo build --locked -q -p clawhost --bin clawhost --timings >/dev/null 2>&1)
  cp "$2"/cargo-timings/cargo-timing.html "$OUT/$3.html" 2>/dev/null || true
  secs "$t0"
}

printf '%-12s %10s %18s %18s\n' revision clean "edit console" "edit builder"
for rev in "${revs[@]}"; do
  sha=$(git -C "$root" rev-parse --short "$rev")
  dir=$(mktemp -d "${TMPDIR:-/tmp}/clawhost-build-$sha.XXXXXX")
  git -C "$root" worktree add -q --detach "$dir/src" "$sha"
  target=$dir/target
  console=$(cd "$dir/src" && git ls-files '*/console/auth.rs' | head -n 1)
  builder=$(cd "$dir/src" && git ls-files '*/children/headless_service.rs' | head -n 1)
  clean=$(build "$dir/src" "$target" "$sha-clean")
  edit "$dir/src/$console"
  after_console=$(build "$dir/src" "$target" "$sha-console")
  edit "$dir/src/$builder"
  after_builder=$(build "$dir/src" "$target" "$sha-builder")
  printf '%-12s %9ss %17ss %17ss   (%s, %s)\n' "$sha" "$clean" "$after_console" "$after_builder" "$console" "$builder"
  git -C "$root" worktree remove --force "$dir/src"
  rm -rf "$dir"
done
echo "cargo --timings reports: $OUT"
