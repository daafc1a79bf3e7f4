//! The client's `gateway.config` checked against openclaw's own config schema (a snapshot of
//! `openclaw config schema --json` from the pinned release, refreshed by
//! `gateway-image/update-config-schema.sh`), so a key openclaw would refuse is reported by
//! `clawhost render` and the operator, never first by a crash-looping pod.
//!
//! Messages never quote the offending value: a client may have pasted a credential there.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use crate::problems::Problem;

const SCHEMA: &str = include_str!("../../../gateway-image/openclaw-config.schema.json");
/// The openclaw release the snapshot was taken from.
pub const SCHEMA_VERSION: &str = "2026.9.6";

fn validator() -> Option<&'static jsonschema::Validator> {
    static V: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let mut schema: Value = serde_json::from_str(SCHEMA).ok()?;
        drop_lookaround_patterns(&mut schema);
        rebase_embedded_refs(&mut schema, "", None);
        jsonschema::draft7::options()
            .with_pattern_options(jsonschema::PatternOptions::fancy_regex())
            .build(&schema)
            .ok()
    })
    .as_ref()
}

/// jsonschema checks the schema's own `pattern`s with a regex engine without lookarounds,
/// which a few of openclaw's use; those few patterns are dropped (openclaw still enforces
/// them at start-up).
fn drop_lookaround_patterns(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("pattern")
                .and_then(Value::as_str)
                .is_some_and(|p| regex_lite::Regex::new(p).is_err())
            {
                m.remove("pattern");
            }
            m.values_mut().for_each(drop_lookaround_patterns);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_lookaround_patterns),
        _ => {}
    }
}

/// Plugin schemas are embedded with `$ref: "#/$defs/x"` relative to their own root, which
/// dangles in the combined document; point those refs at the embedding schema's `$defs`.
fn rebase_embedded_refs(v: &mut Value, path: &str, base: Option<&str>) {
    match v {
        Value::Object(m) => {
            let own_base = (m.contains_key("$defs") && !path.is_empty()).then(|| path.to_string());
            let base = own_base.as_deref().or(base);
            if let (Some(b), Some(Value::String(r))) = (base, m.get_mut("$ref"))
                && let Some(rest) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#{b}/$defs/{rest}");
            }
            for (k, child) in m.iter_mut() {
                let seg = k.replace('~', "~0").replace('/', "~1");
                rebase_embedded_refs(child, &format!("{path}/{seg}"), base);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                rebase_embedded_refs(child, &format!("{path}/{i}"), base);
            }
        }
        _ => {}
    }
}

/// Channel ids the schema knows; openclaw refuses others although the schema allows them.
fn known_channels() -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap_or_default();
    schema["properties"]["channels"]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether the snapshot applies to a gateway version (same year.month release line).
pub fn applies_to(version: &str) -> bool {
    let line = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    line(version) == line(SCHEMA_VERSION)
}

fn describe(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => format!(
            "unknown key{} {} (openclaw refuses to start with unknown keys)",
            if unexpected.len() > 1 { "s" } else { "" },
            unexpected
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ValidationErrorKind::Type { kind } => match kind {
            TypeKind::Single(t) => format!("must be of type {t}"),
            TypeKind::Multiple(ts) => format!("must be one of the types {ts:?}"),
        },
        ValidationErrorKind::Enum { options } => format!("must be one of {options}"),
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        _ => "is not valid for openclaw's config schema".into(),
    }
}

/// Problems of a complete `openclaw.json` (the merged config), as spec field paths.
pub fn check(openclaw_json: &Value) -> Vec<Problem> {
    let Some(v) = validator() else {
        return vec![];
    };
    let mut out: Vec<Problem> = v
        .iter_errors(openclaw_json)
        // openclaw fills defaulted fields the schema lists as required.
        .filter(|e| !matches!(e.kind(), ValidationErrorKind::Required { .. }))
        .map(|e| {
            let path = e.instance_path().to_string();
            let dotted = path.trim_start_matches('/').replace('/', ".");
            Problem {
                field: if dotted.is_empty() {
                    "spec.gateway.config".into()
                } else {
                    format!("spec.gateway.config.{dotted}")
                },
                message: describe(e.kind()),
            }
        })
        .collect();
    if let Some(channels) = openclaw_json.get("channels").and_then(Value::as_object) {
        let known = known_channels();
        for id in channels.keys() {
            if !known.contains(id) {
                out.push(Problem {
                    field: format!("spec.gateway.config.channels.{id}"),
                    message: format!("unknown channel id {id:?} (openclaw refuses to start)"),
                });
            }
        }
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn managed() -> Value {
        json!({"gateway": {"mode": "local", "bind": "loopback", "port": 18789, "auth": {"mode": "token"},
               "trustedProxies": ["127.0.0.1"], "tailscale": {"mode": "off"}},
               "agents": {"defaults": {"maxConcurrent": 4}}})
    }

    #[test]
    fn snapshot_loads_and_accepts_the_managed_config() {
        let mut schema: Value = serde_json::from_str(SCHEMA).unwrap();
        drop_lookaround_patterns(&mut schema);
        rebase_embedded_refs(&mut schema, "", None);
        if let Err(e) = jsonschema::draft7::options()
            .with_pattern_options(jsonschema::PatternOptions::fancy_regex())
            .build(&schema)
        {
            panic!("snapshot does not compile: {e}");
        }
        assert!(validator().is_some());
        assert_eq!(check(&managed()), vec![]);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_reported_by_path_without_values() {
        let mut c = managed();
        c["gateway"]["bogusKey"] = json!(1);
        c["agents"]["defaults"]["maxConcurrent"] = json!("sk-secret-looking-value");
        let p = check(&c);
        let all: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert!(
            all.iter()
                .any(|m| m.starts_with("spec.gateway.config.gateway: unknown key \"bogusKey\"")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|m| m
                .starts_with("spec.gateway.config.agents.defaults.maxConcurrent: must be of type")),
            "{all:?}"
        );
        assert!(
            !all.iter().any(|m| m.contains("sk-secret")),
            "values never quoted"
        );
    }

    #[test]
    fn channels_with_defaulted_fields_pass_and_unknown_channels_fail() {
        let mut c = managed();
        c["channels"] = json!({"telegram": {"enabled": true, "botToken": "${TELEGRAM_BOT_TOKEN}"}});
        assert_eq!(check(&c), vec![]);
        c["channels"]["nochannel"] = json!({});
        assert_eq!(check(&c)[0].field, "spec.gateway.config.channels.nochannel");
    }

    #[test]
    fn applies_to_the_same_release_line() {
        assert!(applies_to("2026.9.6"));
        assert!(applies_to("2026.9.12"));
        assert!(!applies_to("2026.10.1"));
    }
}
