//! Reads what exists for an Assistant: its children, its pod, the Secrets it references.
//! Reads go to the API server (no child caches), which keeps operator memory flat however
//! many clients there are; the controller's watches only trigger reconciles.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use serde_json::Value;

use super::status::Observed;
use super::{Context, Error, LiveChildren, names, problem};
use crate::api::Assistant;
use crate::children::kinds::{CHILD_KINDS, ChildId, Lifecycle};
use crate::validation::{self, PreviousState};

/// Everything read for one reconcile.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    pub live: LiveChildren,
    pub state: Observed,
    /// A retained volume this Assistant takes over, as its spec asks (the claim's name).
    pub adopt_volume: Option<String>,
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
    Foreign(super::status::ConfigProblem),
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
    let ours = match recorded {
        Some(owner) => owner == uid,
        None => !retained,
    };
    if ours {
        return VolumeOwnership::Ours;
    }
    let claim_uid = pvc.uid().unwrap_or_default();
    if a.storage().adopt_retained_volume.as_deref() == Some(claim_uid.as_str()) {
        return VolumeOwnership::Adopt;
    }
    let name = pvc.name_any();
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
    let ownership = volume_ownership(a, volume.as_ref());
    // Another Assistant's volume says nothing about this one's storage.
    let volume = volume.filter(|_| !matches!(ownership, VolumeOwnership::Foreign(_)));

    let previous = volume.as_ref().map(|pvc| PreviousState {
        requested_storage: pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone()),
        storage_class_name: pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
        restore_source: None,
    });
    let validated = match &ownership {
        VolumeOwnership::Foreign(p) => Err(p.clone()),
        _ => validation::validate_at(
            a,
            &ctx.config,
            previous.as_ref(),
            Some(crate::runtime::today_utc()),
        )
        .map_err(|problems| {
            let shrink = problems
                .0
                .iter()
                .any(|p| p.message.contains("never shrink"));
            problem(
                if shrink {
                    "StorageShrinkRefused"
                } else {
                    "InvalidSpec"
                },
                problems.to_string(),
            )
        }),
    };
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
    })
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
