#!/usr/bin/env python3
"""Writes a table of edge-case Assistants (one file each) for `clawhost render` + the
manifest checks: long and odd names, Unicode owners, every plan, suspended, funnel, tags,
resource overrides, both retention policies."""
import json
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def assistant(name, ns="clients", **spec):
    base = {
        "owner": {"name": "Test Client", "email": "client@example.com"},
        "tailscale": {"authKeySecretRef": {"name": "ts-auth", "key": "authkey"}},
    }
    for k, v in spec.items():
        base[k] = v
    return {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Assistant",
        "metadata": {"name": name, "namespace": ns},
        "spec": base,
    }


cases = {
    "name-63": assistant("a" * 63),
    "name-253-dotted": assistant(".".join(["segment-" + str(i).zfill(2) for i in range(25)])[:253].rstrip(".-")),
    "name-leading-digit": assistant("7-eleven"),
    "namespace-long": assistant("bob", ns="n" * 63),
    "owner-unicode": assistant("zoe", owner={"name": "Zoë 山田 Łukasiewicz 🦀 <script>alert(1)</script>", "email": "zoë@exämple.org"}),
    "plan-small": assistant("p-small", plan="small"),
    "plan-standard": assistant("p-standard", plan="standard"),
    "plan-large": assistant("p-large", plan="large"),
    "suspended": assistant("sleepy", suspended=True),
    "funnel-tags": assistant("public", tailscale={"authKeySecretRef": {"name": "ts", "key": "k"}, "funnel": True, "tags": ["tag:a", "tag:b-2"], "hostname": "public-gw"}),
    "resources-override": assistant("custom", resources={"requests": {"cpu": "100m", "memory": "1.5Gi"}, "limits": {"cpu": "1500m", "memory": "3Gi"}}),
    "storage-delete": assistant("ephemeral", storage={"size": "1Gi", "storageClassName": "fast", "onDelete": "Delete"}),
    "env-and-config": assistant("configured", gateway={
        "version": "2026.9.6",
        "config": {"agents": {"defaults": {"maxConcurrent": 1}}, "channels": {"telegram": {"enabled": True, "botToken": "${TELEGRAM_BOT_TOKEN}"}}},
        "env": [{"name": "TELEGRAM_BOT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tg", "key": "token"}}}],
        "envFrom": [{"configMapRef": {"name": "extra"}}],
    }),
}
for name, obj in cases.items():
    with open(os.path.join(out, f"{name}.yaml"), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
print(f"edge cases: wrote {len(cases)} Assistants to {out}")
