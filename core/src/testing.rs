//! Fixtures shared by unit tests.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{Assistant, AssistantSpec, Owner, SecretKeyRef, TailscaleSpec};
use crate::config::OperatorConfig;

/// A valid Assistant as the API server would return it (namespace, uid, generation).
pub fn assistant(name: &str) -> Assistant {
    let short: String = name.chars().take(20).collect();
    Assistant {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("clients".into()),
            uid: Some("6f1e2d3c-0000-4000-8000-00000000a11c".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: AssistantSpec {
            owner: Owner {
                name: "Alice Example".into(),
                email: "alice@example.com".into(),
            },
            tailscale: Some(TailscaleSpec {
                auth_key_secret_ref: Some(SecretKeyRef {
                    name: format!("{short}-tailscale"),
                    key: "authkey".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    }
}

pub fn config() -> OperatorConfig {
    OperatorConfig::default()
}
