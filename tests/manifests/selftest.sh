#!/usr/bin/env bash
# Self-test of tests/manifests/check.sh against fixtures/sample-render.yaml.
#
#   tests/manifests/selftest.sh
#
# 1. The sample client pod (UID 1000, secrets in env vars via secretKeyRef)
#    passes with the repo's .checkov.yaml, which skips CKV_K8S_35 and
#    CKV_K8S_40 globally with their reasons; kubernetes-validate passes and
#    the Assistant is skipped by name.
# 1b. With a checkov config that drops exactly those two global skips
#    (ACCEPTED_SKIPS), the same sample fails with exactly those two findings
#    and nothing else: the skips hide no other finding, and a checkov failure
#    turns check.sh red.
# 2. The same sample with the alternative fixes (high UID, Tailscale auth key
#    and gateway token read from files) passes even under that stricter config.
# 3. Broken manifests fail: an unknown field, an unknown apiVersion, a
#    duplicate object, YAML that does not parse.
# Last line: "manifests-selftest: N passed, M failed".
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=tests/tools/env.sh
. "$ROOT/tests/tools/env.sh"
clawhost_ensure_tools >/dev/null || exit 1
SAMPLE="$HERE/fixtures/sample-render.yaml"
# Global skips in .checkov.yaml that the sample pod relies on (UID 1000, secrets in env).
ACCEPTED_SKIPS="CKV_K8S_35 CKV_K8S_40"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "--- PASS $1"; }
ko() { failed=$((failed + 1)); echo "--- FAIL $1"; sed 's/^/  /' "$work/out"; }

# The repo's checkov config without ACCEPTED_SKIPS.
STRICT_CONFIG="$work/checkov-strict.yaml"
python - "$ROOT/.checkov.yaml" "$STRICT_CONFIG" "$ACCEPTED_SKIPS" <<'EOF' || { echo "manifests-selftest: 0 passed, 1 failed"; exit 1; }
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
drop = set(sys.argv[3].split())
have = set(cfg.get("skip-check") or [])
if not drop <= have:
    sys.exit(f"{sys.argv[1]}: skip-check lacks {sorted(drop - have)}: update ACCEPTED_SKIPS in selftest.sh")
cfg["skip-check"] = [c for c in cfg["skip-check"] if c not in drop]
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
EOF

# 1. the sample passes with the repo's config
if "$HERE/check.sh" "$SAMPLE" > "$work/out" 2>&1 \
   && grep -q '^SKIP .*Assistant/clients/acme' "$work/out" \
   && grep -q '^kubernetes-validate: 11 objects valid, 0 failed, 1 skipped' "$work/out" \
   && grep -q '^manifests: OK' "$work/out"; then
  ok "sample: passes with .checkov.yaml, schemas valid, Assistant skipped"
else
  ko "sample: passes with .checkov.yaml"
fi

# 1b. without the accepted global skips: exactly those findings, and check.sh fails
CHECKOV_CONFIG="$STRICT_CONFIG" "$HERE/check.sh" "$SAMPLE" > "$work/out" 2>&1; rc=$?
got="$(sed -n 's/^FAIL .* \(CKV[0-9]*_K8S_[0-9]*\) .*/\1/p' "$work/out" | sort -u | xargs)"
if [ "$rc" != 0 ] && [ "$got" = "$ACCEPTED_SKIPS" ] && grep -q '^manifests: FAILED' "$work/out"; then
  ok "sample without the global skips: exactly $ACCEPTED_SKIPS, check.sh fails"
else
  echo "  want findings '$ACCEPTED_SKIPS' and a failure, got '$got' (exit $rc)"
  ko "sample without the global skips: exactly $ACCEPTED_SKIPS"
fi

# 2. the alternative fixes make it pass even without the global skips
python - "$SAMPLE" "$work/fixed.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] != "StatefulSet":
        continue
    pod = d["spec"]["template"]["spec"]
    pod["securityContext"].update(runAsUser=10001, runAsGroup=10001, fsGroup=10001)
    ts = pod["initContainers"][0]
    gw = pod["containers"][0]
    # containerboot reads TS_AUTHKEY=file:<path>
    ts["env"] = [e for e in ts["env"] if e["name"] != "TS_AUTHKEY"] + [
        {"name": "TS_AUTHKEY", "value": "file:/etc/tailscale-auth/TS_AUTHKEY"}]
    ts["volumeMounts"].append({"name": "tailscale-auth", "mountPath": "/etc/tailscale-auth", "readOnly": True})
    # gateway token as a file (needs *_FILE support in the gateway image)
    gw["env"] = [e for e in gw["env"] if e["name"] != "OPENCLAW_GATEWAY_TOKEN"] + [
        {"name": "OPENCLAW_GATEWAY_TOKEN_FILE", "value": "/etc/openclaw-secrets/gateway-token"}]
    gw["volumeMounts"].append({"name": "gateway-secrets", "mountPath": "/etc/openclaw-secrets", "readOnly": True})
    pod["volumes"] += [
        {"name": "tailscale-auth", "secret": {"secretName": "acme-tailscale-auth", "defaultMode": 0o440}},
        {"name": "gateway-secrets", "secret": {"secretName": "acme-gateway", "defaultMode": 0o440}},
    ]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"), sort_keys=False)
EOF
if CHECKOV_CONFIG="$STRICT_CONFIG" "$HERE/check.sh" "$work/fixed.yaml" > "$work/out" 2>&1; then
  ok "sample with high UID and secrets as files passes without the global skips"
else
  ko "sample with high UID and secrets as files passes without the global skips"
fi

# 3. broken inputs must fail, each for the right reason
expect_fail() { # NAME FILE PATTERN
  if "$HERE/check.sh" "$2" > "$work/out" 2>&1; then
    ko "$1 (was accepted)"
  elif grep -q -- "$3" "$work/out"; then
    ok "$1"
  else
    echo "  expected output matching: $3"; ko "$1"
  fi
}
sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesytem: true/' "$SAMPLE" > "$work/typo.yaml"
expect_fail "unknown field is rejected (strict)" "$work/typo.yaml" \
  "FAIL .*StatefulSet/clients/acme \[k8s 1.29\].*'readOnlyRootFilesytem' was unexpected"
sed 's#^apiVersion: networking.k8s.io/v1#apiVersion: networking.k8s.io/v1beta1#' "$SAMPLE" > "$work/api.yaml"
expect_fail "unknown apiVersion is an error, not a warning" "$work/api.yaml" \
  "FAIL .*NetworkPolicy/clients/acme .*no schema for NetworkPolicy networking.k8s.io/v1beta1"
{ cat "$SAMPLE"; printf -- '---\n'; sed -n '/^kind: ServiceAccount/,/^---/p' "$SAMPLE" | sed '$d' | sed '1i apiVersion: v1'; } > "$work/dup.yaml"
expect_fail "duplicate object is rejected" "$work/dup.yaml" "FAIL .*ServiceAccount/clients/acme: duplicate object"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n' > "$work/broken.yaml"
expect_fail "unparsable YAML is rejected" "$work/broken.yaml" "cannot parse YAML"
# stdin input works too
if "$HERE/check.sh" - < "$work/fixed.yaml" > "$work/out" 2>&1; then
  ok "reads stdin (-)"
else
  ko "reads stdin (-)"
fi

echo "manifests-selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
