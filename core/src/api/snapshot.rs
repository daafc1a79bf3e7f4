//! The fields clawhost reads and writes of `snapshot.storage.k8s.io/v1` `VolumeSnapshot`
//! (CSI external-snapshotter v8). Hand-written and minimal: unknown fields are ignored on
//! read and never sent, and the type is never part of `clawhost crd` (the upstream CRD is
//! the cluster's, installed with its snapshot controller).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
pub const SNAPSHOT_VERSION: &str = "v1";
pub const SNAPSHOT_API_VERSION: &str = "snapshot.storage.k8s.io/v1";

/// A request for a point-in-time copy of a PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct VolumeSnapshot {
    pub metadata: ObjectMeta,
    pub spec: VolumeSnapshotSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VolumeSnapshotStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    pub source: VolumeSnapshotSource,
    /// Absent: the cluster's default class for the volume's CSI driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
}

/// Exactly one is set (upstream CEL); clawhost only ever sets the claim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
}

/// Written by the snapshot controller (tests play it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
    /// When the storage system cut the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    /// The smallest volume it can be restored into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<VolumeSnapshotError>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

impl kube::Resource for VolumeSnapshot {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "VolumeSnapshot".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        SNAPSHOT_GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        SNAPSHOT_VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "volumesnapshots".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl VolumeSnapshot {
    /// The object as the API server takes it (`apiVersion` and `kind` included).
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("apiVersion".into(), SNAPSHOT_API_VERSION.into());
            o.insert("kind".into(), "VolumeSnapshot".into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_upstream_object_and_ignores_unknown_fields() {
        let v = serde_json::json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "alice-20261203-030000-scheduled", "namespace": "clients"},
            "spec": {"source": {"persistentVolumeClaimName": "alice-data"},
                     "volumeSnapshotClassName": "csi"},
            "status": {"readyToUse": true, "restoreSize": "8Gi",
                       "creationTime": "2026-12-03T03:00:05Z", "somethingNew": 1}
        });
        let s: VolumeSnapshot = serde_json::from_value(v).unwrap();
        assert_eq!(
            s.spec.source.persistent_volume_claim_name.as_deref(),
            Some("alice-data")
        );
        let st = s.status.as_ref().unwrap();
        assert_eq!(st.ready_to_use, Some(true));
        assert_eq!(st.restore_size.as_ref().unwrap().0, "8Gi");
        let back = s.to_value();
        assert_eq!(back["apiVersion"], SNAPSHOT_API_VERSION);
        assert_eq!(back["kind"], "VolumeSnapshot");
        let r = kube::core::ApiResource::erase::<VolumeSnapshot>(&());
        assert_eq!(
            (r.group.as_str(), r.plural.as_str()),
            ("snapshot.storage.k8s.io", "volumesnapshots")
        );
    }
}
