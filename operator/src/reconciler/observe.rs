//! Reads what exists for an Assistant: its children, its pod, the Secrets it references.
//! Reads go to the API server (no child caches), which keeps operator memory flat however
//! many clients there are; the controller's watches only trigger reconciles.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use serde_json::Value;

use super::status::ConfigProblem;
use super::status::Observed;
use super::{Context, Error, LiveChildren, names, problem};
use crate::api::Assistant;
use crate::api::backup::REPLACED_BY_ANNOTATION;
use crate::api::snapshot::VolumeSnapshot;
use crate::children::kinds::{CHILD_KINDS, ChildId, Lifecycle};
use crate::problems::Problems;
use crate::validation::{self, PreviousState, RESTORE_SOURCE_FIELD, RestoreSource};

/// ConfigValid reason while `spec.storage.restoreFrom` names a snapshot that cannot be
/// restored yet (missing, not ready, failed, no snapshot API): waiting may fix it.
pub const RESTORE_SOURCE_NOT_READY: &str = "RestoreSourceNotReady";

/// Everything read for one reconcile.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    pub live: LiveChildren,
    pub state: Observed,
    /// A retained volume this Assistant takes over, as its spec asks (the claim's name).
    pub adopt_volume: Option<String>,
    /// The snapshot `spec.storage.restoreFrom` names exists and is still being cut: look
    /// again soon rather than at the slow pace of a spec problem.
    pub restore_source_pending: bool,
}

/// Whose the data volume is, as far as this Assistant is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeOwnership {
    /// No volume, or this Assistant's (also a claim from before uids were recorded that
    /// was never retained).
    Ours,
    /// Another Assistant's volume that the spec explicitly adopts.
    Adopt,
    /// Another Assistant's volume (typically retained after deletion): never mounted.
    Foreign(ConfigProblem),
    /// This Assistant's own claim, kept (retained) when an earlier in-place restore switched
    /// to another claim: never mounted again silently, since it is no longer what its name
    /// promises (a fresh copy of the snapshot) but the since-written old volume.
    ReplacedByRestore(ConfigProblem),
}

/// Decides [`VolumeOwnership`] from the live claim's recorded owner uid and retained mark.
pub fn volume_ownership(a: &Assistant, pvc: Option<&PersistentVolumeClaim>) -> VolumeOwnership {
    use crate::children::{ASSISTANT_UID_ANNOTATION, RETAINED_LABEL};
    use kube::ResourceExt;
    let (Some(pvc), Some(uid)) = (pvc, a.metadata.uid.as_deref()) else {
        return VolumeOwnership::Ours;
    };
    let recorded = pvc.annotations().get(ASSISTANT_UID_ANNOTATION);
    let retained = pvc.labels().get(RETAINED_LABEL).map(String::as_str) == Some("true");
    let replaced_by = pvc.annotations().get(REPLACED_BY_ANNOTATION);
    let ours = match recorded {
        Some(owner) => owner == uid,
        None => !retained,
    };
    if ours && replaced_by.is_none() {
        return VolumeOwnership::Ours;
    }
    let claim_uid = pvc.uid().unwrap_or_default();
    if a.storage().adopt_retained_volume.as_deref() == Some(claim_uid.as_str()) {
        return VolumeOwnership::Adopt;
    }
    let name = pvc.name_any();
    if let (true, Some(now)) = (ours, replaced_by) {
        let snapshot = a
            .storage()
            .restore_from
            .map(|r| r.volume_snapshot_name)
            .unwrap_or_default();
        return VolumeOwnership::ReplacedByRestore(problem(
            "VolumeBelongsToAnotherAssistant",
            format!(
                "claim {name} was replaced by an earlier restore (now {now}) and is kept; \
                 restore from a new snapshot of it, adopt it with adoptRetainedVolume: \
                 {claim_uid}, or delete it by hand to restore {snapshot} afresh"
            ),
        ));
    }
    let from = pvc
        .annotations()
        .get(super::cleanup::RETAINED_FROM_ANNOTATION)
        .map(|f| format!(", kept from the deleted Assistant {f}"))
        .unwrap_or_default();
    VolumeOwnership::Foreign(problem(
        "VolumeBelongsToAnotherAssistant",
        format!(
            "the volume {name} belongs to another Assistant{from}; it is not mounted. \
             For a fresh volume, back up and delete (or rename) that claim; to give its data \
             to this Assistant on purpose, set spec.storage.adoptRetainedVolume: {claim_uid}"
        ),
    ))
}

async fn get(
    client: &kube::Client,
    resource: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    Ok(api
        .get_opt(name)
        .await?
        .map(|o| serde_json::to_value(o).expect("objects serialize")))
}

fn typed<K: serde::de::DeserializeOwned>(v: Option<&Value>) -> Option<K> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

pub async fn observe(a: &Assistant, ctx: &Context, ns: &str) -> Result<Observation, Error> {
    let n = names(a);
    // Every kind in the table, desired or not: prune needs to see what is no longer wanted.
    let mut live = LiveChildren::default();
    // Listed kinds (snapshots) are not read by name: the backup step lists them.
    for kind in CHILD_KINDS
        .iter()
        .filter(|k| !matches!(k.lifecycle, Lifecycle::Listed))
    {
        if let Some(object) = get(&ctx.client, &(kind.resource)(), ns, &(kind.name)(&n)).await? {
            live.0.insert(kind.id, object);
        }
    }
    let tailscale_state: Option<Secret> = typed(live.get(ChildId::TailscaleStateSecret));
    let pod: Option<Pod> = typed(live.get(ChildId::Pod));
    let volume: Option<PersistentVolumeClaim> = typed(live.get(ChildId::DataVolume));
    // The snapshot is read only until the claim made from it exists: from then on it is
    // history (retention may prune it) and costs no request.
    let restore_source = match (a.storage().restore_from, &volume) {
        (Some(from), None) => Some(read_restore_source(ctx, ns, &from.volume_snapshot_name).await?),
        _ => None,
    };
    let ownership = volume_ownership(a, volume.as_ref());
    // Another Assistant's volume (or one a restore replaced) says nothing about this one's
    // storage.
    let volume = volume.filter(|_| {
        !matches!(
            ownership,
            VolumeOwnership::Foreign(_) | VolumeOwnership::ReplacedByRestore(_)
        )
    });

    let previous = match &volume {
        Some(pvc) => Some(PreviousState {
            requested_storage: pvc
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone()),
            storage_class_name: pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
            restore_source: None,
        }),
        // No claim yet: validation still needs what the restore source says.
        None => restore_source.clone().map(|source| PreviousState {
            requested_storage: None,
            storage_class_name: None,
            restore_source: Some(source),
        }),
    };
    let validated = match &ownership {
        VolumeOwnership::Foreign(p) | VolumeOwnership::ReplacedByRestore(p) => Err(p.clone()),
        _ => validation::validate_at(
            a,
            &ctx.config,
            previous.as_ref(),
            Some(crate::runtime::today_utc()),
        )
        .map_err(|problems| spec_problem(&problems)),
    };
    let restore_source_pending = matches!(&validated, Err(p) if p.reason == RESTORE_SOURCE_NOT_READY)
        && matches!(
            restore_source,
            Some(RestoreSource::Found {
                ready: false,
                error: None,
                ..
            })
        );
    let config_problem = match validated {
        Err(p) => Some(p),
        Ok(()) => missing_references(a, ctx, ns).await?,
    };
    let adopt_volume = (ownership == VolumeOwnership::Adopt)
        .then(|| volume.as_ref().and_then(|v| v.metadata.name.clone()))
        .flatten();
    Ok(Observation {
        live,
        state: Observed {
            config_problem,
            volume,
            pod,
            tailscale_state,
            deleting: false,
            refused: Vec::new(),
            access: None,
            backup: None,
            now: Some(ctx.clock.now()),
        },
        adopt_volume,
        restore_source_pending,
    })
}

/// The ConfigValid reason for validation's problems: a shrink is refused as such; problems
/// only about the restore source (missing, not ready, failed, no API) are worth waiting for;
/// anything else is the spec's to fix.
pub fn spec_problem(problems: &Problems) -> ConfigProblem {
    let shrink = problems
        .0
        .iter()
        .any(|p| p.message.contains("never shrink"));
    let only_restore_source =
        !problems.0.is_empty() && problems.0.iter().all(|p| p.field == RESTORE_SOURCE_FIELD);
    let reason = if shrink {
        "StorageShrinkRefused"
    } else if only_restore_source {
        RESTORE_SOURCE_NOT_READY
    } else {
        "InvalidSpec"
    };
    problem(reason, problems.to_string())
}

/// One GET of the snapshot a volume is to be restored from. A 404 naming the snapshot is
/// `NotFound`; a 404 without it is the resource type itself missing (no snapshot CRDs).
async fn read_restore_source(ctx: &Context, ns: &str, name: &str) -> Result<RestoreSource, Error> {
    let api: Api<VolumeSnapshot> = Api::namespaced(ctx.client.clone(), ns);
    match api.get(name).await {
        Ok(s) => Ok(restore_source_of(&s)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(restore_source_of_404(&e, name)),
        Err(e) => Err(e.into()),
    }
}

/// What validation needs of a live snapshot.
pub fn restore_source_of(s: &VolumeSnapshot) -> RestoreSource {
    let status = s.status.as_ref();
    RestoreSource::Found {
        ready: status.and_then(|st| st.ready_to_use) == Some(true),
        error: status
            .and_then(|st| st.error.as_ref())
            .map(|e| e.message.clone().unwrap_or_else(|| "no message".into())),
        restore_size: status
            .and_then(|st| st.restore_size.as_ref())
            .map(|q| q.0.clone()),
    }
}

/// A 404's body names the object when the object is missing; for a resource type the
/// server does not serve it carries no name (or is not a Status at all).
pub fn restore_source_of_404(e: &kube::core::Status, name: &str) -> RestoreSource {
    let names_it = e.details.as_ref().is_some_and(|d| d.name == name);
    if names_it {
        RestoreSource::NotFound
    } else {
        RestoreSource::ApiUnavailable
    }
}

/// Secrets the pod cannot start without. Optional references are skipped.
pub fn required_secret_refs(a: &Assistant) -> Vec<(String, Option<String>)> {
    let mut refs = Vec::new();
    if let Some(r) = a.tailscale().auth_key_secret_ref {
        refs.push((r.name, Some(r.key)));
    }
    let gw = a.gateway();
    for e in &gw.env {
        if let Some(s) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            && s.optional != Some(true)
        {
            refs.push((s.name.clone(), Some(s.key.clone())));
        }
    }
    for src in &gw.env_from {
        if let Some(s) = &src.secret_ref
            && s.optional != Some(true)
        {
            refs.push((s.name.clone(), None));
        }
    }
    refs
}

/// Whether `a` requires the Secret `name` (in its namespace): [`required_secret_refs`]
/// without allocating, for the Secret watch's mapper, which runs once per Assistant for
/// every Secret change.
pub fn references_secret(a: &Assistant, name: &str) -> bool {
    let ts = a
        .spec
        .tailscale
        .as_ref()
        .and_then(|t| t.auth_key_secret_ref.as_ref())
        .is_some_and(|r| r.name == name);
    ts || a.spec.gateway.as_ref().is_some_and(|gw| {
        gw.env.iter().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_some_and(|s| s.optional != Some(true) && s.name == name)
        }) || gw.env_from.iter().any(|src| {
            src.secret_ref
                .as_ref()
                .is_some_and(|s| s.optional != Some(true) && s.name == name)
        })
    })
}

async fn missing_references(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
) -> Result<Option<super::status::ConfigProblem>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut missing = Vec::new();
    for (name, key) in required_secret_refs(a) {
        match (api.get_opt(&name).await?, key) {
            (None, _) => missing.push(format!("secret {ns}/{name} not found")),
            (Some(s), Some(key)) => {
                let has = s.data.as_ref().is_some_and(|d| d.contains_key(&key))
                    || s.string_data.as_ref().is_some_and(|d| d.contains_key(&key));
                if !has {
                    missing.push(format!("secret {ns}/{name} has no key {key}"));
                }
            }
            (Some(_), None) => {}
        }
    }
    Ok((!missing.is_empty()).then(|| problem("SecretNotFound", missing.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EnvFromSource, EnvVar, EnvVarSource, SecretEnvSource, SecretKeySelector,
    };
    use serde_json::json;

    fn claim(uid: &str, retained: bool, replaced_by: Option<&str>) -> PersistentVolumeClaim {
        use crate::children::{ASSISTANT_UID_ANNOTATION, RETAINED_LABEL};
        let mut annotations =
            std::collections::BTreeMap::from([(ASSISTANT_UID_ANNOTATION.to_string(), uid.into())]);
        if let Some(new) = replaced_by {
            annotations.insert(REPLACED_BY_ANNOTATION.to_string(), new.into());
        }
        PersistentVolumeClaim {
            metadata: kube::api::ObjectMeta {
                name: Some("alice-data-1a2b3c4d".into()),
                uid: Some("claim-uid".into()),
                annotations: Some(annotations),
                labels: retained.then(|| [(RETAINED_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_claim_replaced_by_a_restore_is_never_ours_again() {
        let mut a = crate::testing::assistant("alice");
        a.metadata.uid = Some("uid-1".into());
        a.spec.storage = Some(crate::api::StorageSpec {
            restore_from: Some(crate::api::RestoreFrom {
                volume_snapshot_name: "alice-20261203-030000-scheduled".into(),
            }),
            ..Default::default()
        });
        // Its own live claim: ours. Retained by its own deletion-less restore: not.
        assert_eq!(
            volume_ownership(&a, Some(&claim("uid-1", false, None))),
            VolumeOwnership::Ours
        );
        let replaced = claim("uid-1", true, Some("alice-data-9f8e7d6c"));
        let VolumeOwnership::ReplacedByRestore(p) = volume_ownership(&a, Some(&replaced)) else {
            panic!("a replaced claim is not mounted again");
        };
        assert_eq!(p.reason, "VolumeBelongsToAnotherAssistant");
        assert_eq!(
            p.message,
            "claim alice-data-1a2b3c4d was replaced by an earlier restore (now \
             alice-data-9f8e7d6c) and is kept; restore from a new snapshot of it, adopt it \
             with adoptRetainedVolume: claim-uid, or delete it by hand to restore \
             alice-20261203-030000-scheduled afresh"
        );
        // The replaced-by mark alone (retained label lost) still keeps it out.
        assert!(matches!(
            volume_ownership(&a, Some(&claim("uid-1", false, Some("x")))),
            VolumeOwnership::ReplacedByRestore(_)
        ));
        // Another Assistant's replaced claim is foreign, as before.
        assert!(matches!(
            volume_ownership(&a, Some(&replaced_of("uid-2"))),
            VolumeOwnership::Foreign(_)
        ));
        // Adopting it on purpose still works.
        a.spec.storage.as_mut().unwrap().adopt_retained_volume = Some("claim-uid".into());
        assert_eq!(
            volume_ownership(&a, Some(&replaced)),
            VolumeOwnership::Adopt
        );
    }

    fn replaced_of(uid: &str) -> PersistentVolumeClaim {
        claim(uid, true, Some("elsewhere"))
    }

    #[test]
    fn restore_source_problems_wait_and_the_rest_are_the_specs() {
        use crate::problems::Problem;
        let p = |field: &str, message: &str| Problem {
            field: field.into(),
            message: message.into(),
        };
        let source = p(
            RESTORE_SOURCE_FIELD,
            "VolumeSnapshot clients/x is not ready to use yet",
        );
        assert_eq!(
            spec_problem(&Problems(vec![source.clone()])).reason,
            RESTORE_SOURCE_NOT_READY
        );
        let size = p(
            "spec.storage.size",
            "5Gi is smaller than the snapshot's restoreSize 8Gi",
        );
        assert_eq!(
            spec_problem(&Problems(vec![size.clone()])).reason,
            "InvalidSpec"
        );
        // Mixed: the spec must be fixed anyway.
        let mixed = spec_problem(&Problems(vec![source, size]));
        assert_eq!(mixed.reason, "InvalidSpec");
        assert!(mixed.message.contains("not ready") && mixed.message.contains("restoreSize"));
        let shrink = p("spec.storage.size", "volumes never shrink");
        assert_eq!(
            spec_problem(&Problems(vec![shrink])).reason,
            "StorageShrinkRefused"
        );
    }

    #[test]
    fn a_404_naming_the_snapshot_is_not_found_otherwise_the_api_is_missing() {
        // The bodies the API server sends for a missing object and for a missing resource.
        let status = |details: Option<&str>| -> kube::core::Status {
            let mut body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "details": {}});
            if let Some(name) = details {
                body["details"] = json!({"name": name, "group": "snapshot.storage.k8s.io",
                    "kind": "volumesnapshots"});
            }
            serde_json::from_value(body).unwrap()
        };
        assert_eq!(
            restore_source_of_404(&status(Some("snap")), "snap"),
            RestoreSource::NotFound
        );
        // "the server could not find the requested resource": no CRD.
        assert_eq!(
            restore_source_of_404(&status(None), "snap"),
            RestoreSource::ApiUnavailable
        );
    }

    #[test]
    fn a_live_snapshot_reads_as_ready_failed_or_pending() {
        use crate::api::snapshot::{VolumeSnapshotError, VolumeSnapshotStatus};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mut s = VolumeSnapshot::default();
        assert_eq!(
            restore_source_of(&s),
            RestoreSource::Found {
                ready: false,
                error: None,
                restore_size: None
            }
        );
        s.status = Some(VolumeSnapshotStatus {
            ready_to_use: Some(true),
            restore_size: Some(Quantity("8Gi".into())),
            ..Default::default()
        });
        assert_eq!(
            restore_source_of(&s),
            RestoreSource::Found {
                ready: true,
                error: None,
                restore_size: Some("8Gi".into())
            }
        );
        s.status = Some(VolumeSnapshotStatus {
            error: Some(VolumeSnapshotError {
                message: Some("driver says no".into()),
                time: None,
            }),
            ..Default::default()
        });
        assert!(matches!(
            restore_source_of(&s),
            RestoreSource::Found { ready: false, error: Some(e), .. } if e == "driver says no"
        ));
    }

    #[test]
    fn references_secret_agrees_with_required_secret_refs() {
        let mut a = crate::testing::assistant("alice");
        let mut gw = a.gateway();
        gw.env = vec![
            EnvVar {
                name: "A".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "model-key".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            EnvVar {
                name: "B".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "optional-key".into(),
                        key: "k".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        gw.env_from = vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "bulk".into(),
                optional: None,
            }),
            ..Default::default()
        }];
        a.spec.gateway = Some(gw);
        let required: Vec<String> = required_secret_refs(&a).into_iter().map(|r| r.0).collect();
        for name in [
            "alice-tailscale",
            "model-key",
            "optional-key",
            "bulk",
            "other",
        ] {
            assert_eq!(
                references_secret(&a, name),
                required.iter().any(|r| r == name),
                "{name}"
            );
        }
    }
}
