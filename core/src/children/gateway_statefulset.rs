//! The gateway StatefulSet: one pod (none when suspended) running the openclaw gateway on
//! loopback and Tailscale as a native sidecar that serves it to the client's tailnet.
//!
//! The container contract (entrypoint, probe script, paths, port) is shared with
//! `gateway-image/`; `tests/gateway-contract` boots the real gateway with what this renders.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, KeyToPath,
    ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::gateway_config_secret::{OPENCLAW_CONFIG_KEY, SERVE_CONFIG_KEY};
use super::gateway_token_secret::TOKEN_KEY;
use super::{
    BuildError, ChildNames, RESTART_HASH_ANNOTATION, RESTART_REQUESTED_ANNOTATION, child_meta,
    labels, selector_labels,
};
use crate::api::Assistant;
use crate::config::{GATEWAY_PORT, OperatorConfig};
use crate::validation::image_tag;

pub const GATEWAY_CONTAINER: &str = "gateway";
pub const TAILSCALE_CONTAINER: &str = "tailscale";
/// UID/GID of the `node` user in the gateway image; owns the volume through fsGroup.
pub const GATEWAY_UID: i64 = 1000;
pub const HOME_DIR: &str = "/home/node";
pub const STATE_DIR: &str = "/home/node/.openclaw";
pub const CONFIG_DIR: &str = "/etc/openclaw";
pub const SERVE_CONFIG_DIR: &str = "/etc/tailscale";
/// Installed by `gateway-image/Dockerfile`.
pub const PROBE_COMMAND: &str = "/usr/local/bin/clawhost-probe";
/// Port of containerboot's health endpoint.
pub const TAILSCALE_HEALTH_PORT: i32 = 9002;

/// The command the image's entrypoint `exec`s (also the image's default CMD).
pub fn gateway_args() -> Vec<String> {
    [
        "openclaw",
        "gateway",
        "run",
        "--bind",
        "loopback",
        "--port",
        &GATEWAY_PORT.to_string(),
        "--auth",
        "token",
    ]
    .map(String::from)
    .to_vec()
}

/// Resolved gateway image: the Assistant's, else the operator default, tagged with the
/// version unless the reference already carries a tag or digest.
pub fn gateway_image(assistant: &Assistant, config: &OperatorConfig) -> String {
    let version = gateway_version(assistant, config);
    let image = assistant
        .gateway()
        .image
        .unwrap_or_else(|| config.gateway.image.clone());
    if image.contains('@') || image_tag(&image).is_some() {
        image
    } else {
        format!("{image}:{version}")
    }
}

pub fn gateway_version(assistant: &Assistant, config: &OperatorConfig) -> String {
    assistant
        .gateway()
        .version
        .unwrap_or_else(|| config.gateway.default_version.clone())
}

pub fn tailscale_hostname(assistant: &Assistant) -> String {
    assistant.tailscale().hostname.unwrap_or_else(|| {
        let ns = assistant.metadata.namespace.as_deref().unwrap_or("default");
        let name = assistant.metadata.name.as_deref().unwrap_or_default();
        let joined = format!("{ns}-{name}");
        let label_ok = joined.len() <= 63
            && joined
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if label_ok {
            joined
        } else {
            super::bounded_label(&joined, 63)
        }
    })
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        // Only `true` is sent: the API server drops the default `false`.
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// Locked-down container security: non-root, read-only root, no capabilities.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(GATEWAY_UID),
        run_as_group: Some(GATEWAY_UID),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn exec_probe(kind: &str, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![PROBE_COMMAND.into(), kind.into()]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// Operator-managed environment of the gateway container.
pub fn gateway_env(assistant: &Assistant) -> Vec<EnvVar> {
    let names = ChildNames::for_assistant(assistant);
    let mut out = vec![
        env("HOME", HOME_DIR),
        env("TMPDIR", "/tmp"),
        env("OPENCLAW_STATE_DIR", STATE_DIR),
        env(
            "OPENCLAW_CONFIG_PATH",
            format!("{CONFIG_DIR}/{OPENCLAW_CONFIG_KEY}"),
        ),
        env("OPENCLAW_CONFIG_READONLY", "1"),
        env("OPENCLAW_NO_AUTO_UPDATE", "1"),
        env("OPENCLAW_GATEWAY_PORT", GATEWAY_PORT.to_string()),
        env_from_secret(
            "OPENCLAW_GATEWAY_TOKEN",
            &names.gateway_token_secret,
            TOKEN_KEY,
        ),
    ];
    out.extend(assistant.gateway().env);
    out
}

fn gateway_resources(assistant: &Assistant, config: &OperatorConfig) -> ResourceRequirements {
    assistant.spec.resources.clone().unwrap_or_else(|| {
        config
            .plan(assistant.spec.plan.as_deref())
            .map(|(_, p)| p.resources.clone())
            .unwrap_or_default()
    })
}

fn gateway_container(assistant: &Assistant, config: &OperatorConfig) -> Container {
    let gw = assistant.gateway();
    Container {
        name: GATEWAY_CONTAINER.into(),
        image: Some(gateway_image(assistant, config)),
        image_pull_policy: Some("IfNotPresent".into()),
        // The image's ENTRYPOINT (tini + clawhost-entrypoint) checks the volume, then execs
        // these args.
        args: Some(gateway_args()),
        env: Some(gateway_env(assistant)),
        env_from: (!gw.env_from.is_empty()).then_some(gw.env_from),
        resources: Some(gateway_resources(assistant, config)),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![
            mount("data", HOME_DIR, false),
            mount("gateway-config", CONFIG_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        // openclaw needs ~15 s on a busy node to load; allow 5 minutes before giving up.
        startup_probe: Some(exec_probe("startup", 5, 60)),
        readiness_probe: Some(exec_probe("ready", 10, 3)),
        liveness_probe: Some(exec_probe("live", 20, 3)),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

fn tailscale_container(assistant: &Assistant, config: &OperatorConfig) -> Container {
    let names = ChildNames::for_assistant(assistant);
    let ts = assistant.tailscale();
    let mut env = vec![
        env("TS_USERSPACE", "true"),
        env("TS_KUBE_SECRET", names.tailscale_state_secret.clone()),
        // With persisted state, never re-use a (single-use) auth key after the first login.
        env("TS_AUTH_ONCE", "true"),
        env("TS_HOSTNAME", tailscale_hostname(assistant)),
        env("TS_ACCEPT_DNS", "false"),
        env(
            "TS_SERVE_CONFIG",
            format!("{SERVE_CONFIG_DIR}/{SERVE_CONFIG_KEY}"),
        ),
        env("TS_ENABLE_HEALTH_CHECK", "true"),
        env(
            "TS_LOCAL_ADDR_PORT",
            format!("[::]:{TAILSCALE_HEALTH_PORT}"),
        ),
        env("TS_SOCKET", "/tmp/tailscaled.sock"),
        env("TS_STATE_DIR", "/tmp/tailscale"),
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("POD_UID", "metadata.uid"),
    ];
    let tags: Vec<String> = config
        .tailscale
        .default_tags
        .iter()
        .chain(ts.tags.iter())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !tags.is_empty() {
        env.push(self::env(
            "TS_EXTRA_ARGS",
            format!("--advertise-tags={}", tags.join(",")),
        ));
    }
    if let Some(r) = &ts.auth_key_secret_ref {
        env.push(env_from_secret("TS_AUTHKEY", &r.name, &r.key));
    } else {
        // Minted by the operator through the Tailscale API (OAuth configured).
        env.push(env_from_secret(
            "TS_AUTHKEY",
            &format!("{}-tailscale-authkey", names.base),
            "authkey",
        ));
    }
    let health = |failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(TAILSCALE_HEALTH_PORT),
            ..Default::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    Container {
        name: TAILSCALE_CONTAINER.into(),
        image: Some(config.tailscale.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        // Native sidecar: starts before the gateway, stops after it, restarts on its own.
        restart_policy: Some("Always".into()),
        env: Some(env),
        resources: Some(config.tailscale.resources.clone()),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![
            mount("tailscale-serve", SERVE_CONFIG_DIR, true),
            mount("tailscale-tmp", "/tmp", false),
            mount(
                "kube-api-access",
                "/var/run/secrets/kubernetes.io/serviceaccount",
                true,
            ),
        ]),
        // Readiness only: a tailnet outage must not restart-loop the sidecar, and the
        // gateway starts whether or not the tailnet is up.
        readiness_probe: Some(health(3)),
        liveness_probe: Some(Probe {
            // Generous: containerboot answers 503 until it has a tailnet IP.
            initial_delay_seconds: Some(300),
            ..health(6)
        }),
        ..Default::default()
    }
}

fn volumes(assistant: &Assistant) -> Vec<Volume> {
    let names = ChildNames::for_assistant(assistant);
    let secret_file = |key: &str| SecretVolumeSource {
        secret_name: Some(names.gateway_config_secret.clone()),
        items: Some(vec![KeyToPath {
            key: key.into(),
            path: key.into(),
            mode: Some(0o440),
        }]),
        default_mode: Some(0o440),
        optional: Some(false),
    };
    let empty = |limit: &str| EmptyDirVolumeSource {
        size_limit: Some(Quantity(limit.into())),
        ..Default::default()
    };
    vec![
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names.data_volume.clone(),
                // false is the default, which the API server drops: leave it unset.
                read_only: None,
            }),
            ..Default::default()
        },
        Volume {
            name: "gateway-config".into(),
            secret: Some(secret_file(OPENCLAW_CONFIG_KEY)),
            ..Default::default()
        },
        Volume {
            name: "tailscale-serve".into(),
            secret: Some(secret_file(SERVE_CONFIG_KEY)),
            ..Default::default()
        },
        // openclaw writes rolling logs and locks under /tmp regardless of TMPDIR.
        Volume {
            name: "tmp".into(),
            empty_dir: Some(empty("2Gi")),
            ..Default::default()
        },
        Volume {
            name: "tailscale-tmp".into(),
            empty_dir: Some(empty("256Mi")),
            ..Default::default()
        },
        // The sidecar's API credentials, projected into that container only.
        Volume {
            name: "kube-api-access".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o444),
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3607),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".into(),
                                path: "ca.crt".into(),
                                mode: None,
                            }]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        },
    ]
}

/// Hash of what only takes effect on a restart. Config files are not in it: openclaw and
/// containerboot both watch their files and reload them (verified against the real gateway
/// by tests/gateway-contract), and env changes already change the pod template. What is
/// left is an explicit restart request (console "restart", token rotation).
pub fn restart_hash(assistant: &Assistant, _config: &OperatorConfig) -> String {
    let mut h = Sha256::new();
    if let Some(r) = assistant
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESTART_REQUESTED_ANNOTATION))
    {
        h.update(r);
    }
    hex::encode(h.finalize())[..16].to_string()
}

pub fn build(assistant: &Assistant, config: &OperatorConfig) -> Result<StatefulSet, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    let mut pod_labels = labels(assistant, "gateway");
    pod_labels.extend(selector_labels(assistant));
    let pod = PodSpec {
        service_account_name: Some(names.service_account.clone()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(GATEWAY_UID),
            run_as_group: Some(GATEWAY_UID),
            fs_group: Some(GATEWAY_UID),
            // Only walk the volume when its root is not ours yet: large volumes mount fast.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        init_containers: Some(vec![tailscale_container(assistant, config)]),
        containers: vec![gateway_container(assistant, config)],
        volumes: Some(volumes(assistant)),
        termination_grace_period_seconds: Some(config.gateway.termination_grace_period_seconds),
        ..Default::default()
    };
    Ok(StatefulSet {
        metadata: child_meta(assistant, &names.statefulset, "gateway"),
        spec: Some(StatefulSetSpec {
            replicas: Some(if assistant.spec.suspended { 0 } else { 1 }),
            service_name: Some(names.service.clone()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(assistant)),
                ..Default::default()
            },
            pod_management_policy: Some("OrderedReady".into()),
            revision_history_limit: Some(5),
            // The volume is a standalone PVC; nothing here may delete it.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([
                        (
                            RESTART_HASH_ANNOTATION.to_string(),
                            restart_hash(assistant, config),
                        ),
                        (
                            super::ASSISTANT_NAME_ANNOTATION.to_string(),
                            assistant.metadata.name.clone().unwrap_or_default(),
                        ),
                        (
                            "kubectl.kubernetes.io/default-container".to_string(),
                            GATEWAY_CONTAINER.to_string(),
                        ),
                    ])),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GatewaySpec, TailscaleSpec};
    use crate::testing::{assistant, config};

    fn sts(a: &Assistant) -> StatefulSet {
        build(a, &config()).unwrap()
    }
    fn pod(s: &StatefulSet) -> PodSpec {
        s.spec.clone().unwrap().template.spec.unwrap()
    }
    fn env_of(c: &Container, name: &str) -> Option<EnvVar> {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .cloned()
    }

    #[test]
    fn one_replica_zero_when_suspended() {
        let mut a = assistant("alice");
        assert_eq!(sts(&a).spec.unwrap().replicas, Some(1));
        a.spec.suspended = true;
        assert_eq!(sts(&a).spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn gateway_container_contract() {
        let p = pod(&sts(&assistant("alice")));
        let gw = &p.containers[0];
        assert_eq!(gw.name, "gateway");
        assert_eq!(
            gw.image.as_deref(),
            Some("ghcr.io/clawhost/gateway:2026.9.6")
        );
        assert_eq!(gw.command, None, "the image's entrypoint must run");
        assert_eq!(
            gw.args.as_ref().unwrap().join(" "),
            "openclaw gateway run --bind loopback --port 18789 --auth token"
        );
        assert_eq!(
            env_of(gw, "HOME").unwrap().value.as_deref(),
            Some("/home/node")
        );
        assert_eq!(
            env_of(gw, "OPENCLAW_CONFIG_PATH").unwrap().value.as_deref(),
            Some("/etc/openclaw/openclaw.json")
        );
        assert_eq!(
            env_of(gw, "OPENCLAW_CONFIG_READONLY")
                .unwrap()
                .value
                .as_deref(),
            Some("1")
        );
        let token = env_of(gw, "OPENCLAW_GATEWAY_TOKEN").unwrap();
        assert_eq!(
            token.value_from.unwrap().secret_key_ref.unwrap().name,
            "alice-gateway-token"
        );
        let mounts = gw.volume_mounts.as_ref().unwrap();
        assert!(mounts.iter().all(|m| m.sub_path.is_none()), "never subPath");
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/home/node" && m.name == "data")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/etc/openclaw" && m.read_only == Some(true))
        );
        let sc = gw.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap()[0],
            "ALL"
        );
        for (probe, kind) in [
            (&gw.startup_probe, "startup"),
            (&gw.readiness_probe, "ready"),
            (&gw.liveness_probe, "live"),
        ] {
            assert_eq!(
                probe
                    .as_ref()
                    .unwrap()
                    .exec
                    .as_ref()
                    .unwrap()
                    .command
                    .as_ref()
                    .unwrap(),
                &vec![PROBE_COMMAND.to_string(), kind.to_string()]
            );
        }
        assert_eq!(p.termination_grace_period_seconds, Some(360));
    }

    #[test]
    fn pod_security_and_token_only_in_sidecar() {
        let p = pod(&sts(&assistant("alice")));
        assert_eq!(p.automount_service_account_token, Some(false));
        let psc = p.security_context.unwrap();
        assert_eq!(psc.fs_group, Some(1000));
        assert_eq!(
            psc.fs_group_change_policy.as_deref(),
            Some("OnRootMismatch")
        );
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let gw = &p.containers[0];
        assert!(
            !gw.volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.name == "kube-api-access")
        );
        let ts = &p.init_containers.unwrap()[0];
        assert!(
            ts.volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.name == "kube-api-access")
        );
    }

    #[test]
    fn tailscale_native_sidecar() {
        let mut a = assistant("alice");
        a.spec.tailscale = Some(TailscaleSpec {
            tags: vec!["tag:clients".into()],
            ..a.spec.tailscale.clone().unwrap()
        });
        let p = pod(&sts(&a));
        let ts = &p.init_containers.unwrap()[0];
        assert_eq!(ts.restart_policy.as_deref(), Some("Always"));
        assert_eq!(ts.image.as_deref(), Some("tailscale/tailscale:v1.90.6"));
        assert_eq!(
            env_of(ts, "TS_USERSPACE").unwrap().value.as_deref(),
            Some("true")
        );
        assert_eq!(
            env_of(ts, "TS_KUBE_SECRET").unwrap().value.as_deref(),
            Some("alice-tailscale-state")
        );
        assert_eq!(
            env_of(ts, "TS_HOSTNAME").unwrap().value.as_deref(),
            Some("clients-alice")
        );
        assert_eq!(
            env_of(ts, "TS_EXTRA_ARGS").unwrap().value.as_deref(),
            Some("--advertise-tags=tag:clients")
        );
        let key = env_of(ts, "TS_AUTHKEY")
            .unwrap()
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (key.name.as_str(), key.key.as_str()),
            ("alice-tailscale", "authkey")
        );
        assert_eq!(
            env_of(ts, "POD_UID")
                .unwrap()
                .value_from
                .unwrap()
                .field_ref
                .unwrap()
                .field_path,
            "metadata.uid"
        );
    }

    #[test]
    fn image_resolution() {
        let cfg = config();
        let mut a = assistant("alice");
        a.spec.gateway = Some(GatewaySpec {
            version: Some("2026.10.1".into()),
            ..Default::default()
        });
        assert_eq!(
            gateway_image(&a, &cfg),
            "ghcr.io/clawhost/gateway:2026.10.1"
        );
        a.spec.gateway.as_mut().unwrap().image = Some("registry.example.com:5000/gw".into());
        assert_eq!(
            gateway_image(&a, &cfg),
            "registry.example.com:5000/gw:2026.10.1"
        );
        a.spec.gateway.as_mut().unwrap().image = Some("gw@sha256:abcd".into());
        assert_eq!(gateway_image(&a, &cfg), "gw@sha256:abcd");
    }

    #[test]
    fn restart_hash_follows_restart_requests_not_hot_reloaded_config() {
        let cfg = config();
        let a = assistant("alice");
        let h0 = restart_hash(&a, &cfg);
        let mut suspended = a.clone();
        suspended.spec.suspended = true;
        assert_eq!(h0, restart_hash(&suspended, &cfg));
        let mut changed = a.clone();
        changed.spec.gateway = Some(GatewaySpec {
            config: serde_json::json!({"agents": {"defaults": {"model": "x"}}})
                .as_object()
                .cloned(),
            ..Default::default()
        });
        assert_eq!(h0, restart_hash(&changed, &cfg), "config hot-reloads");
        let mut restarted = a.clone();
        restarted.metadata.annotations = Some(
            [(
                RESTART_REQUESTED_ANNOTATION.to_string(),
                "2026-11-25T10:00:00Z".to_string(),
            )]
            .into(),
        );
        assert_ne!(h0, restart_hash(&restarted, &cfg));
    }

    #[test]
    fn long_names_fit_kubernetes_limits() {
        let long = format!("{}.example", "client-with-a-very-long-name".repeat(3));
        let s = sts(&assistant(&long));
        assert!(s.metadata.name.as_ref().unwrap().len() <= 52);
        let hn = tailscale_hostname(&assistant(&long));
        assert!(hn.len() <= 63, "{hn}");
        for v in s.metadata.labels.unwrap().values() {
            assert!(v.len() <= 63, "{v}");
        }
    }
}
