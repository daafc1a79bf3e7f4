//! Status from observations: pure, so every condition and phase rule is unit-tested.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    Assistant, AssistantStatus, Phase, SUSPENDED_REASON_ANNOTATION, StorageStatus,
    SuspensionReason, TailnetStatus,
};
use crate::children::ChildNames;
use crate::children::gateway_statefulset::{
    GATEWAY_CONTAINER, gateway_image, gateway_version, tailscale_hostname,
};
use crate::children::tailscale_state_secret::{DEVICE_FQDN_KEY, DEVICE_IPS_KEY};
use crate::config::OperatorConfig;

pub const READY: &str = "Ready";
pub const CONFIG_VALID: &str = "ConfigValid";
pub const STORAGE_READY: &str = "StorageReady";
pub const GATEWAY_READY: &str = "GatewayReady";
pub const TAILNET_READY: &str = "TailnetReady";
pub const APPLIED: &str = "Applied";
/// Whether the volume's snapshots are fine: reported, never an input of Ready or phase.
pub const BACKUP_HEALTHY: &str = "BackupHealthy";

/// Container waiting reasons that need a human, not patience.
const FAILING_REASONS: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "RunContainerError",
];

/// Why the spec could not be applied (nothing was changed in the cluster).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub reason: &'static str,
    pub message: String,
}

/// A child object the API server refused to take (admission, validation, quota, RBAC):
/// retrying alone will not fix it, so it is shown in status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyRefusal {
    pub kind: String,
    pub name: String,
    /// The server's message (never a Secret's content: see `reconciler::refusal`).
    pub message: String,
}

impl std::fmt::Display for ApplyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.name, self.message)
    }
}

/// What the reconciler saw in the cluster.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub config_problem: Option<ConfigProblem>,
    /// Children the API server refused in this reconcile.
    pub refused: Vec<ApplyRefusal>,
    pub volume: Option<PersistentVolumeClaim>,
    pub pod: Option<Pod>,
    pub tailscale_state: Option<Secret>,
    pub deleting: bool,
    /// `status.access` as the access step decided it; `None` keeps the recorded one
    /// (cleanup, and callers without the access step).
    pub access: Option<crate::api::access::AccessStatus>,
    /// `BackupHealthy` and `status.backup` as the backup step decided them; `None` keeps
    /// the recorded ones (cleanup, an Assistant whose volume is not its own).
    pub backup: Option<super::backup::BackupObservation>,
    /// Calendar time of this reconcile (transition times); `None`: the system's.
    pub now: Option<jiff::Timestamp>,
}

fn cond(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
    }
}

fn secret_str(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| !s.is_empty())
}

fn storage_condition(
    obs: &Observed,
    generation: Option<i64>,
) -> (Condition, Option<StorageStatus>) {
    let Some(pvc) = &obs.volume else {
        return (
            cond(
                STORAGE_READY,
                false,
                "NotCreated",
                "the data volume does not exist yet",
                generation,
            ),
            None,
        );
    };
    let requested = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    let status = pvc.status.as_ref();
    let capacity = status
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone());
    let storage = Some(StorageStatus {
        claim_name: pvc.metadata.name.clone(),
        capacity: capacity.clone(),
    });
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let c = match phase {
        "Bound" => {
            let growing = match (&requested, &capacity) {
                (Some(r), Some(c)) => {
                    crate::api::quantity::parse(r) > crate::api::quantity::parse(c)
                }
                _ => false,
            };
            if growing {
                cond(
                    STORAGE_READY,
                    true,
                    "Resizing",
                    format!(
                        "volume is bound; expanding from {} to {}",
                        capacity.unwrap_or_default(),
                        requested.unwrap_or_default()
                    ),
                    generation,
                )
            } else {
                cond(STORAGE_READY, true, "Bound", "volume is bound", generation)
            }
        }
        "Lost" => cond(
            STORAGE_READY,
            false,
            "Lost",
            "the volume's PersistentVolume is gone; restore from a backup",
            generation,
        ),
        _ => cond(
            STORAGE_READY,
            false,
            "Pending",
            "the volume is waiting to be provisioned or bound (check the StorageClass and `kubectl describe pvc`)",
            generation,
        ),
    };
    (c, storage)
}

/// Why billing suspended the Assistant (its reason annotation), when it did.
fn suspension_reason(a: &Assistant) -> Option<SuspensionReason> {
    a.metadata
        .annotations
        .as_ref()?
        .get(SUSPENDED_REASON_ANNOTATION)
        .and_then(|v| SuspensionReason::parse(v))
}

fn gateway_condition(a: &Assistant, obs: &Observed, generation: Option<i64>) -> Condition {
    if a.spec.suspended {
        // The Ready condition repeats this message: `kubectl get` shows why.
        let message = match suspension_reason(a) {
            Some(r) => format!("{}: the gateway is scaled to zero", r.describe()),
            None => "the gateway is scaled to zero".to_string(),
        };
        return cond(GATEWAY_READY, false, "Suspended", message, generation);
    }
    let Some(pod) = &obs.pod else {
        return cond(
            GATEWAY_READY,
            false,
            "Starting",
            "waiting for the gateway pod to be scheduled",
            generation,
        );
    };
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let gw = statuses.and_then(|cs| cs.iter().find(|c| c.name == GATEWAY_CONTAINER));
    if let Some(w) = gw
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        && let Some(reason) = w.reason.as_deref()
        && FAILING_REASONS.contains(&reason)
    {
        let oom_killed = gw
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.as_deref())
            == Some("OOMKilled");
        let message = if oom_killed {
            format!(
                "the gateway ran out of memory (OOMKilled) and is in {reason}: give it a larger plan or a higher resources.limits.memory"
            )
        } else {
            w.message
                .clone()
                .unwrap_or_else(|| format!("gateway container is in {reason}"))
        };
        return cond(GATEWAY_READY, false, reason, message, generation);
    }
    if gw.is_some_and(|c| c.ready) {
        return cond(
            GATEWAY_READY,
            true,
            "Ready",
            "the gateway answers its readiness probe",
            generation,
        );
    }
    let pending = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
    if pending {
        cond(
            GATEWAY_READY,
            false,
            "Starting",
            "the gateway pod is pending",
            generation,
        )
    } else {
        cond(
            GATEWAY_READY,
            false,
            "NotReady",
            "the gateway has not passed its readiness probe yet",
            generation,
        )
    }
}

fn tailnet_condition(
    a: &Assistant,
    obs: &Observed,
    generation: Option<i64>,
) -> (Condition, TailnetStatus) {
    let mut tailnet = TailnetStatus {
        hostname: Some(tailscale_hostname(a)),
        ..Default::default()
    };
    let fqdn = obs
        .tailscale_state
        .as_ref()
        .and_then(|s| secret_str(s, DEVICE_FQDN_KEY));
    let ips: Vec<String> = obs
        .tailscale_state
        .as_ref()
        .and_then(|s| secret_str(s, DEVICE_IPS_KEY))
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or_default();
    match fqdn {
        Some(fqdn) => {
            let fqdn = fqdn.trim_end_matches('.').to_string();
            tailnet.url = Some(format!("https://{fqdn}"));
            tailnet.fqdn = Some(fqdn.clone());
            tailnet.ips = ips;
            (
                cond(
                    TAILNET_READY,
                    true,
                    "Connected",
                    format!("reachable at https://{fqdn}"),
                    generation,
                ),
                tailnet,
            )
        }
        None if a.spec.suspended => (
            cond(
                TAILNET_READY,
                false,
                "Suspended",
                "the Tailscale sidecar is scaled to zero",
                generation,
            ),
            tailnet,
        ),
        None => (
            cond(
                TAILNET_READY,
                false,
                "NotConnected",
                "waiting for the Tailscale sidecar to join the tailnet (check the auth key and `kubectl logs -c tailscale`)",
                generation,
            ),
            tailnet,
        ),
    }
}

/// The status an Assistant should have, given what was observed.
pub fn compute(a: &Assistant, config: &OperatorConfig, obs: &Observed) -> AssistantStatus {
    let generation = a.metadata.generation;
    let names = ChildNames::for_assistant(a);
    let config_valid = match &obs.config_problem {
        Some(p) => cond(CONFIG_VALID, false, p.reason, p.message.clone(), generation),
        None => cond(CONFIG_VALID, true, "Valid", "the spec is valid", generation),
    };
    let applied = match (&obs.config_problem, obs.refused.as_slice()) {
        (Some(_), _) => cond(
            APPLIED,
            false,
            "NotApplied",
            "nothing is applied while ConfigValid is False",
            generation,
        ),
        (None, []) => cond(
            APPLIED,
            true,
            "Applied",
            "every child object matches the spec",
            generation,
        ),
        (None, refused) => cond(
            APPLIED,
            false,
            "ApplyRefused",
            format!(
                "the API server refused {}",
                refused
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            generation,
        ),
    };
    let (storage_c, storage) = storage_condition(obs, generation);
    let gateway_c = gateway_condition(a, obs, generation);
    let (tailnet_c, tailnet) = tailnet_condition(a, obs, generation);
    let parts = [&config_valid, &applied, &storage_c, &gateway_c, &tailnet_c];
    let not_ready: Vec<&Condition> = parts
        .iter()
        .copied()
        .filter(|c| c.status != "True")
        .collect();
    let ready = match not_ready.first() {
        None => cond(
            READY,
            true,
            "Ready",
            "the assistant is reachable on its tailnet",
            generation,
        ),
        Some(first) => cond(
            READY,
            false,
            &first.reason,
            format!("{}: {}", first.type_, first.message),
            generation,
        ),
    };
    let previous = a.status.as_ref().and_then(|s| s.phase);
    let failing =
        FAILING_REASONS.contains(&gateway_c.reason.as_str()) || storage_c.reason == "Lost";
    let phase = if obs.deleting {
        Phase::Terminating
    } else if obs.config_problem.is_some() || !obs.refused.is_empty() {
        Phase::Failed
    } else if a.spec.suspended {
        Phase::Suspended
    } else if ready.status == "True" {
        Phase::Running
    } else if failing || matches!(previous, Some(Phase::Running | Phase::Degraded)) {
        Phase::Degraded
    } else if obs.pod.is_none() && storage_c.status != "True" {
        // Waiting for the volume to be provisioned before anything can run.
        Phase::Pending
    } else {
        Phase::Provisioning
    };
    let mut conditions = vec![
        ready,
        config_valid,
        applied,
        storage_c,
        gateway_c,
        tailnet_c,
    ];
    let old_conditions = a
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    // After the parts of Ready, and not one of them: a backup problem never takes a
    // client's assistant down.
    let backup_c = match &obs.backup {
        Some(b) => Some(Condition {
            type_: BACKUP_HEALTHY.into(),
            status: b.health.status.into(),
            reason: b.health.reason.into(),
            message: b.health.message.clone(),
            observed_generation: generation,
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }),
        None => old_conditions
            .iter()
            .find(|c| c.type_ == BACKUP_HEALTHY)
            .cloned(),
    };
    conditions.extend(backup_c);
    keep_transition_times(
        &mut conditions,
        old_conditions,
        obs.now.unwrap_or_else(jiff::Timestamp::now),
    );
    AssistantStatus {
        phase: Some(phase),
        observed_generation: generation,
        conditions,
        gateway_version: Some(gateway_version(a, config)),
        image: Some(gateway_image(a, config)),
        tailnet: Some(tailnet),
        storage,
        gateway_token_secret: Some(names.gateway_token_secret),
        access: obs
            .access
            .clone()
            .or_else(|| a.status.as_ref().and_then(|s| s.access.clone())),
        backup: match &obs.backup {
            Some(b) => Some(b.status.clone()),
            None => a.status.as_ref().and_then(|s| s.backup.clone()),
        },
    }
}

/// A condition keeps its lastTransitionTime while its status is unchanged; a changed one
/// gets now.
fn keep_transition_times(conditions: &mut [Condition], old: &[Condition], now: jiff::Timestamp) {
    let now = Time(now);
    for c in conditions.iter_mut() {
        c.last_transition_time = match old.iter().find(|o| o.type_ == c.type_) {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => now.clone(),
        };
    }
}

/// Whether a status write is needed (ignores nothing: transition times are carried over).
pub fn changed(old: Option<&AssistantStatus>, new: &AssistantStatus) -> bool {
    old != Some(new)
}

/// Conditions whose status or reason changed: each becomes one Kubernetes event.
pub fn transitions<'a>(
    old: Option<&AssistantStatus>,
    new: &'a AssistantStatus,
) -> Vec<&'a Condition> {
    let old = old.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    new.conditions
        .iter()
        .filter(|c| {
            !old.iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PersistentVolumeClaimStatus,
        PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn bound_pvc(cap: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: Default::default(),
            spec: Some(Default::default()),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                capacity: Some([("storage".to_string(), Quantity(cap.into()))].into()),
                ..Default::default()
            }),
        }
    }

    fn pod(ready: bool, waiting: Option<&str>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "gateway".into(),
                    ready,
                    state: waiting.map(|r| ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(r.into()),
                            message: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ts_state(fqdn: &str) -> Secret {
        Secret {
            data: Some(
                [
                    (
                        DEVICE_FQDN_KEY.to_string(),
                        ByteString(fqdn.as_bytes().to_vec()),
                    ),
                    (
                        DEVICE_IPS_KEY.to_string(),
                        ByteString(br#"["100.64.0.7","fd7a:115c:a1e0::7"]"#.to_vec()),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        }
    }

    fn get<'a>(s: &'a AssistantStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn everything_up_is_running_with_tailnet_status() {
        let a = assistant("alice");
        let obs = Observed {
            volume: Some(bound_pvc("10Gi")),
            pod: Some(pod(true, None)),
            tailscale_state: Some(ts_state("clients-alice.tail1234.ts.net.")),
            ..Default::default()
        };
        let s = compute(&a, &config(), &obs);
        assert_eq!(s.phase, Some(Phase::Running));
        assert_eq!(get(&s, READY).status, "True");
        let t = s.tailnet.unwrap();
        assert_eq!(t.fqdn.as_deref(), Some("clients-alice.tail1234.ts.net"));
        assert_eq!(
            t.url.as_deref(),
            Some("https://clients-alice.tail1234.ts.net")
        );
        assert_eq!(t.ips.len(), 2);
        assert_eq!(
            s.gateway_token_secret.as_deref(),
            Some("alice-gateway-token")
        );
        assert_eq!(s.storage.unwrap().capacity.as_deref(), Some("10Gi"));
    }

    #[test]
    fn missing_secret_fails_with_actionable_reason() {
        let a = assistant("alice");
        let obs = Observed {
            config_problem: Some(ConfigProblem {
                reason: "SecretNotFound",
                message: "secret clients/alice-tailscale has no key authkey".into(),
            }),
            ..Default::default()
        };
        let s = compute(&a, &config(), &obs);
        assert_eq!(s.phase, Some(Phase::Failed));
        let c = get(&s, CONFIG_VALID);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert!(get(&s, READY).message.contains("has no key authkey"));
    }

    #[test]
    fn pending_volume_and_crashloop_and_degraded() {
        let a = assistant("alice");
        let mut pending = bound_pvc("1Gi");
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        let s = compute(
            &a,
            &config(),
            &Observed {
                volume: Some(pending),
                ..Default::default()
            },
        );
        assert_eq!(get(&s, STORAGE_READY).reason, "Pending");
        assert_eq!(s.phase, Some(Phase::Pending));

        let obs = Observed {
            volume: Some(bound_pvc("10Gi")),
            pod: Some(pod(false, Some("CrashLoopBackOff"))),
            ..Default::default()
        };
        let s = compute(&a, &config(), &obs);
        assert_eq!(get(&s, GATEWAY_READY).reason, "CrashLoopBackOff");
        assert_eq!(s.phase, Some(Phase::Degraded));

        let mut was_running = a.clone();
        was_running.status = Some(AssistantStatus {
            phase: Some(Phase::Running),
            ..Default::default()
        });
        let obs = Observed {
            volume: Some(bound_pvc("10Gi")),
            pod: Some(pod(false, None)),
            ..Default::default()
        };
        assert_eq!(
            compute(&was_running, &config(), &obs).phase,
            Some(Phase::Degraded)
        );
    }

    #[test]
    fn suspended_and_resizing() {
        let mut a = assistant("alice");
        a.spec.suspended = true;
        let mut pvc = bound_pvc("10Gi");
        pvc.spec.as_mut().unwrap().resources =
            Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity("20Gi".into()))].into()),
                ..Default::default()
            });
        let s = compute(
            &a,
            &config(),
            &Observed {
                volume: Some(pvc),
                ..Default::default()
            },
        );
        assert_eq!(s.phase, Some(Phase::Suspended));
        assert_eq!(get(&s, GATEWAY_READY).reason, "Suspended");
        assert_eq!(get(&s, STORAGE_READY).reason, "Resizing");
    }

    #[test]
    fn a_billing_suspension_says_why() {
        let mut a = assistant("alice");
        a.spec.suspended = true;
        let obs = Observed {
            volume: Some(bound_pvc("10Gi")),
            ..Default::default()
        };
        let by_admin = compute(&a, &config(), &obs);
        assert_eq!(
            get(&by_admin, GATEWAY_READY).message,
            "the gateway is scaled to zero"
        );
        for (value, why) in [
            ("non-payment", "suspended for non-payment"),
            ("canceled", "suspended: subscription canceled"),
        ] {
            a.metadata.annotations =
                Some([(SUSPENDED_REASON_ANNOTATION.to_string(), value.to_string())].into());
            let s = compute(&a, &config(), &obs);
            assert_eq!(s.phase, Some(Phase::Suspended));
            assert_eq!(get(&s, GATEWAY_READY).reason, "Suspended");
            assert_eq!(
                get(&s, GATEWAY_READY).message,
                format!("{why}: the gateway is scaled to zero")
            );
            assert!(get(&s, READY).message.contains(why), "{value}");
        }
        // An unknown value is not shown (it is free text anyone with patch rights wrote).
        a.metadata.annotations = Some(
            [(
                SUSPENDED_REASON_ANNOTATION.to_string(),
                "<b>x</b>".to_string(),
            )]
            .into(),
        );
        let s = compute(&a, &config(), &obs);
        assert_eq!(
            get(&s, GATEWAY_READY).message,
            "the gateway is scaled to zero"
        );
        // Without spec.suspended the annotation says nothing.
        a.spec.suspended = false;
        a.metadata.annotations = Some(
            [(
                SUSPENDED_REASON_ANNOTATION.to_string(),
                "non-payment".to_string(),
            )]
            .into(),
        );
        let s = compute(&a, &config(), &obs);
        assert!(!get(&s, GATEWAY_READY).message.contains("non-payment"));
    }

    #[test]
    fn the_suspension_reason_never_rolls_the_pod() {
        // Only the restart hash and the name are copied to the pod template: the reason
        // annotation changing (or going) must not change any child object.
        let mut a = assistant("alice");
        a.spec.suspended = true;
        let plain = crate::children::gateway_statefulset::build(&a, &config()).unwrap();
        a.metadata.annotations = Some(
            [(
                SUSPENDED_REASON_ANNOTATION.to_string(),
                "non-payment".to_string(),
            )]
            .into(),
        );
        let annotated = crate::children::gateway_statefulset::build(&a, &config()).unwrap();
        assert_eq!(plain, annotated);
        let pvc = |a: &Assistant| crate::children::data_volume::build(a, &config()).unwrap();
        let mut b = a.clone();
        b.metadata.annotations = None;
        assert_eq!(pvc(&a), pvc(&b));
    }

    #[test]
    fn unchanged_status_is_not_rewritten_and_keeps_transition_times() {
        let mut a = assistant("alice");
        let obs = Observed {
            volume: Some(bound_pvc("10Gi")),
            pod: Some(pod(true, None)),
            ..Default::default()
        };
        let first = compute(&a, &config(), &obs);
        a.status = Some(first.clone());
        let second = compute(&a, &config(), &obs);
        assert!(!changed(a.status.as_ref(), &second));
        assert!(transitions(a.status.as_ref(), &second).is_empty());
        let obs2 = Observed {
            tailscale_state: Some(ts_state("x.ts.net")),
            ..obs
        };
        let third = compute(&a, &config(), &obs2);
        assert!(changed(a.status.as_ref(), &third));
        let t: Vec<&str> = transitions(a.status.as_ref(), &third)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(t, vec![READY, TAILNET_READY]);
    }
}
