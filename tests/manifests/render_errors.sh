#!/usr/bin/env bash
# `clawhost render` on bad input: exit 1, one clear message per problem naming the file,
# document and field, never a panic. Prints "render-errors: N passed, M failed".
set -uo pipefail
bin=${CLAWHOST_BIN:?set CLAWHOST_BIN}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
check() { # name, file content, expected substring
  printf '%s' "$2" > "$tmp/$1.yaml"
  out=$("$bin" render -f "$tmp/$1.yaml" 2>&1 >/dev/null); code=$?
  if [ "$code" -eq 1 ] && grep -qF -- "$3" <<<"$out" && ! grep -qi "panicked" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "FAIL $1 (exit $code): expected '$3' in:"; echo "$out"
  fi
}
ok='apiVersion: clawhost.dev/v1alpha1
kind: Assistant
metadata: {name: a, namespace: n}
spec:
  owner: {name: A, email: a@example.com}
  tailscale: {authKeySecretRef: {name: t, key: k}}
'
check empty "" "no Assistant found (the file is empty)"
check wrong-kind 'apiVersion: v1
kind: ConfigMap
metadata: {name: x}
' 'apiVersion "v1" kind "ConfigMap" is not an Assistant'
check malformed 'apiVersion: clawhost.dev/v1alpha1
kind: [oops
' "malformed YAML"
check unknown-field "${ok}  sizee: 10Gi
" "spec.sizee: unknown field"
check bad-email "${ok//a@example.com/not-an-email}" 'spec.owner.email: "not-an-email" is not an e-mail address'
check latest "${ok}  gateway: {version: latest}
" "spec.gateway.version"
check owned-key "${ok}  gateway: {config: {gateway: {auth: {mode: none}}}}
" "spec.gateway.config.gateway.auth: is managed by the operator"
check openclaw-schema "${ok}  gateway: {config: {agents: {defaults: {bogus: 1}}}}
" 'spec.gateway.config.agents.defaults: unknown key "bogus"'
out=$("$bin" render -f "$tmp/does-not-exist.yaml" 2>&1); [ $? -eq 1 ] && grep -q "cannot read" <<<"$out" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL nonexistent: $out"; }
echo "render-errors: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
