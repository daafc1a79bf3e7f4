//! The `openclaw.json` an Assistant's gateway runs: the client's config under the keys the
//! operator manages. Validation checks it and the config Secret carries it.

use serde_json::{Map, Value, json};

use crate::api::Assistant;
use crate::config::{GATEWAY_PORT, OperatorConfig};

/// The keys the operator sets in `openclaw.json`, over whatever the client supplies.
fn managed_config(max_concurrent: u32) -> Value {
    json!({
        "gateway": {
            "mode": "local",
            "bind": "loopback",
            "port": GATEWAY_PORT,
            // The token itself comes from OPENCLAW_GATEWAY_TOKEN (a Secret), never the file.
            "auth": { "mode": "token" },
            // The Tailscale sidecar proxies from loopback.
            "trustedProxies": ["127.0.0.1"],
            // The sidecar serves; openclaw must not drive a tailscale CLI itself.
            "tailscale": { "mode": "off" },
        },
        "agents": { "defaults": { "maxConcurrent": max_concurrent } },
    })
}

/// Deep merge: objects merge key by key, anything else in `over` replaces `base`.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                deep_merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The complete `openclaw.json` for an Assistant.
pub fn openclaw_config(assistant: &Assistant, config: &OperatorConfig) -> Value {
    let plan_max = config
        .plan(assistant.spec.plan.as_deref())
        .map(|(_, p)| p.max_concurrent)
        .unwrap_or(4);
    let client: Map<String, Value> = assistant.gateway().config.unwrap_or_default();
    // A client may lower agent concurrency but not raise it past the plan's bound.
    let max_concurrent = lookup(&client, "agents.defaults.maxConcurrent")
        .and_then(Value::as_u64)
        .map(|n| n.clamp(1, u64::from(plan_max)) as u32)
        .unwrap_or(plan_max);
    let mut merged = Value::Object(client);
    deep_merge(&mut merged, &managed_config(max_concurrent));
    merged
}

/// Looks up a dotted path in a JSON object.
pub fn lookup<'a>(obj: &'a Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut cur = obj.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}
