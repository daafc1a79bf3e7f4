//! The client's data volume: a standalone PVC (not a volumeClaimTemplate, so it can be
//! resized and outlive the StatefulSet), mounted at /home/node so every openclaw state path
//! survives restarts.
//!
//! Under `onDelete: Retain` the PVC carries no ownerReference at all: then no garbage
//! collection, finalizer bug or forced deletion of the Assistant can ever remove it. Only
//! `onDelete: Delete` makes the Assistant its controller.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, TypedLocalObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{ASSISTANT_UID_ANNOTATION, BuildError, ChildNames, child_meta};
use crate::api::snapshot::SNAPSHOT_GROUP;
use crate::api::{Assistant, OnDelete, RESTORED_FROM_ANNOTATION};
use crate::config::OperatorConfig;

/// Requested size: the Assistant's, else its plan's.
pub fn requested_size(assistant: &Assistant, config: &OperatorConfig) -> Option<String> {
    assistant.storage().size.or_else(|| {
        config
            .plan(assistant.spec.plan.as_deref())
            .map(|(_, p)| p.storage_size.0.clone())
    })
}

pub fn storage_class(assistant: &Assistant, config: &OperatorConfig) -> Option<String> {
    assistant
        .storage()
        .storage_class_name
        .or_else(|| config.storage.storage_class_name.clone())
}

pub fn build(
    assistant: &Assistant,
    config: &OperatorConfig,
) -> Result<PersistentVolumeClaim, BuildError> {
    let names = ChildNames::for_assistant(assistant);
    let mut metadata = child_meta(assistant, &names.data_volume, "data");
    if assistant.storage().on_delete == OnDelete::Retain {
        metadata.owner_references = None;
    }
    // Which Assistant the volume belongs to, even after it is retained and unlinked.
    if let Some(uid) = &assistant.metadata.uid {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ASSISTANT_UID_ANNOTATION.to_string(), uid.clone());
    }
    // Made from a snapshot: the claim's name is a function of the snapshot's
    // (`data_claim_name`), so the immutable dataSource never changes under a given name.
    let data_source = assistant.storage().restore_from.map(|r| {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                RESTORED_FROM_ANNOTATION.to_string(),
                r.volume_snapshot_name.clone(),
            );
        TypedLocalObjectReference {
            api_group: Some(SNAPSHOT_GROUP.into()),
            kind: "VolumeSnapshot".into(),
            name: r.volume_snapshot_name,
        }
    });
    let size = requested_size(assistant, config).ok_or(BuildError::MissingMetadata("plan"))?;
    Ok(PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class(assistant, config),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..Default::default()
            }),
            volume_mode: Some("Filesystem".into()),
            data_source,
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StorageSpec;
    use crate::testing::{assistant, config};

    #[test]
    fn plan_size_and_default_class() {
        let mut cfg = config();
        cfg.storage.storage_class_name = Some("standard-rwo".into());
        let pvc = build(&assistant("alice"), &cfg).unwrap();
        let spec = pvc.spec.unwrap();
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "10Gi"
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard-rwo"));
        assert_eq!(pvc.metadata.name.as_deref(), Some("alice-data"));
    }

    #[test]
    fn retained_volume_has_no_owner_and_deleted_volume_does() {
        let mut a = assistant("alice");
        assert!(
            build(&a, &config())
                .unwrap()
                .metadata
                .owner_references
                .is_none()
        );
        a.spec.storage = Some(StorageSpec {
            size: Some("20Gi".into()),
            storage_class_name: Some("fast".into()),
            on_delete: OnDelete::Delete,
            ..Default::default()
        });
        let pvc = build(&a, &config()).unwrap();
        assert_eq!(pvc.metadata.owner_references.unwrap()[0].kind, "Assistant");
        let spec = pvc.spec.unwrap();
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "20Gi"
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    }

    #[test]
    fn a_restored_volume_is_a_new_claim_made_from_the_snapshot() {
        let mut a = assistant("alice");
        a.spec.storage = Some(StorageSpec {
            restore_from: Some(crate::api::RestoreFrom {
                volume_snapshot_name: "alice-20261203-030000-scheduled".into(),
            }),
            ..Default::default()
        });
        let pvc = build(&a, &config()).unwrap();
        let name = pvc.metadata.name.clone().unwrap();
        assert!(
            name.starts_with("alice-data-") && name.len() == "alice-data-".len() + 8,
            "{name}"
        );
        assert_eq!(name, ChildNames::for_assistant(&a).data_volume);
        assert_eq!(
            pvc.metadata.annotations.as_ref().unwrap()[RESTORED_FROM_ANNOTATION],
            "alice-20261203-030000-scheduled"
        );
        assert_eq!(
            pvc.spec.unwrap().data_source,
            Some(TypedLocalObjectReference {
                api_group: Some("snapshot.storage.k8s.io".into()),
                kind: "VolumeSnapshot".into(),
                name: "alice-20261203-030000-scheduled".into(),
            })
        );
        // Without restoreFrom: the plain claim, no dataSource.
        let plain = build(&assistant("alice"), &config()).unwrap();
        assert_eq!(plain.metadata.name.as_deref(), Some("alice-data"));
        assert_eq!(plain.spec.unwrap().data_source, None);
        assert!(
            !plain
                .metadata
                .annotations
                .unwrap()
                .contains_key(RESTORED_FROM_ANNOTATION)
        );
    }
}
