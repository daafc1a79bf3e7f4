//! The `Assistant` custom resource: one client's private openclaw gateway.
//!
//! Field names are the public contract (`docs/assistant-reference.md`). Rules the API server
//! can enforce live in the schema (patterns, enums, CEL); `validation.rs` re-checks them plus
//! the semantic rules that need the operator config.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// openclaw release numbers are calendar versions (`2026.9.6`), optionally with a pre-release
/// suffix. Anything else (`latest`, `stable`, `2026`) is a floating tag and is refused.
pub const VERSION_PATTERN: &str = r"^[0-9]{4}\.[0-9]{1,2}\.[0-9]{1,3}(-[0-9A-Za-z.]+)?$";
/// RFC 5322 dot-atom local part (atext and single dots) and a domain of labels with at least
/// one dot, both also allowing non-ASCII characters (RFC 6531 internationalised addresses:
/// `zoë@exämple.org`): no quotes, angle brackets, spaces or control characters, so an address
/// is inert as markup. Bidi controls are refused by validation (`has_bidi_control`).
pub const EMAIL_PATTERN: &str = r"^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7F])+(?:\.(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7F])+)*@(?:[A-Za-z0-9]|[^\x00-\x7F])(?:[A-Za-z0-9-]|[^\x00-\x7F])*(?:\.(?:[A-Za-z0-9]|[^\x00-\x7F])(?:[A-Za-z0-9-]|[^\x00-\x7F])*)+$";
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
pub const TAILSCALE_TAG_PATTERN: &str = r"^tag:[a-zA-Z][a-zA-Z0-9-]*$";
/// Kubernetes resource.Quantity, restricted to its string form so CEL can compare it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";
/// Container image reference; a tag of `latest` is refused by `validation.rs`.
pub const IMAGE_PATTERN: &str = r"^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$";
/// Cron expression: 5 fields (minute hour day-of-month month day-of-week) or a nickname.
/// Seconds and years are refused; the real parse is `crate::backup::Schedule::parse`.
pub const CRON_PATTERN: &str =
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$";
/// IANA time zone name (`Europe/Stockholm`, `UTC`); checked against jiff's tz database.
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$";
/// DNS-1123 subdomain (a VolumeSnapshot name).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// One client's private openclaw gateway: an isolated pod with its own volume and a
/// Tailscale sidecar.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "clawhost.dev",
    version = "v1alpha1",
    kind = "Assistant",
    namespaced,
    status = "AssistantStatus",
    shortname = "asst",
    category = "clawhost",
    doc = "One client's private openclaw gateway: an isolated pod with its own volume and a Tailscale sidecar.",
    cel,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.gatewayVersion"}"#,
    printcolumn = r#"{"name":"Tailnet","type":"string","jsonPath":".status.tailnet.fqdn"}"#,
    printcolumn = r#"{"name":"Access","type":"string","priority":1,"jsonPath":".status.access.state"}"#,
    printcolumn = r#"{"name":"Backup","type":"date","priority":1,"jsonPath":".status.backup.lastSnapshotTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
// On the spec root: a rule on `StorageSpec` never runs when `storage` itself is added, and
// these span `storage` and `suspended`. Transition rules run only on update, so a new
// Assistant may start from a snapshot while running.
#[x_kube(
    cel,
    validation = Rule::new("!has(oldSelf.storage) || !has(oldSelf.storage.restoreFrom) || (has(self.storage) && has(self.storage.restoreFrom))").message("storage.restoreFrom cannot be removed once set (the volume was made from it)").reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("(has(self.storage) && has(self.storage.restoreFrom) ? self.storage.restoreFrom.volumeSnapshotName : '') == (has(oldSelf.storage) && has(oldSelf.storage.restoreFrom) ? oldSelf.storage.restoreFrom.volumeSnapshotName : '') || (has(self.suspended) && self.suspended)").message("storage.restoreFrom may be set or changed on an existing Assistant only together with suspended: true (in-place restore)").reason(kube::core::Reason::FieldValueForbidden)
)]
pub struct AssistantSpec {
    /// The client this assistant belongs to.
    pub owner: Owner,

    /// Name of a sizing plan from the operator config; the default plan when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub plan: Option<String>,

    /// Gateway container resources; overrides the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The openclaw gateway: version, image, configuration and environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// The client's persistent volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Scheduled volume snapshots; the plan's and operator's policy when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// How the client's devices reach the gateway over their tailnet. Required unless the
    /// operator has Tailscale OAuth credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailscale: Option<TailscaleSpec>,

    /// Scale the gateway to zero, keeping every object and the volume.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspended: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// Display name of the client (any Unicode).
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The client's e-mail address.
    #[schemars(length(min = 3, max = 254), regex(pattern = EMAIL_PATTERN))]
    pub email: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// openclaw release (e.g. `2026.9.6`); the fleet default when absent. Floating tags such
    /// as `latest` are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub version: Option<String>,

    /// Gateway image (repository, optionally with tag or digest); the operator default when
    /// absent. Without a tag or digest the version is used as the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = IMAGE_PATTERN))]
    pub image: Option<String>,

    /// openclaw configuration (`openclaw.json`), deep-merged under the operator-managed keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<Map<String, Value>>,

    /// Extra environment for the gateway (model-provider keys and channel tokens from
    /// `secretKeyRef`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Extra environment sources for the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum OnDelete {
    /// Keep the volume when the Assistant is deleted (it is unlinked and labelled retained).
    #[default]
    Retain,
    /// Delete the volume with the Assistant.
    Delete,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName is immutable").reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("!has(oldSelf.size) || (has(self.size) && quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0)").message("storage.size may grow but never shrink (nor be removed once set)").reason(kube::core::Reason::FieldValueForbidden)
)]
pub struct StorageSpec {
    /// Volume size (the plan's when absent). May grow, never shrink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN), length(max = 32))]
    pub size: Option<String>,

    /// StorageClass of the volume (the operator default when absent). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,

    /// What happens to the volume when the Assistant is deleted.
    #[serde(default)]
    pub on_delete: OnDelete,

    /// Take over a volume kept from a deleted Assistant of the same name: the `metadata.uid`
    /// of that PersistentVolumeClaim (the `VolumeBelongsToAnotherAssistant` condition names
    /// it). Without it, such a volume is never mounted, so one client's data never reaches
    /// another by a reused name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub adopt_retained_volume: Option<String>,

    /// Create the data volume from this VolumeSnapshot (same namespace). On a new Assistant
    /// its volume starts as the snapshot. On an existing one (in-place restore, only together
    /// with `suspended: true`) a new volume is made from the snapshot and the current one is
    /// kept, retained, never deleted. Once set it cannot be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,
}

/// A snapshot to make the data volume from. An object, so a later `namespace` fits without
/// a breaking change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFrom {
    /// Name of a `snapshot.storage.k8s.io/v1` VolumeSnapshot in the Assistant's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub volume_snapshot_name: String,
}

/// This client's snapshot policy; each field overrides the plan's and the operator's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// `false` turns this client's snapshots off; absent follows the plan and operator.
    /// The operator config's `backups.enabled: false` wins over `true` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// When to snapshot (cron, at most hourly); the plan's or operator's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), regex(pattern = CRON_PATTERN))]
    pub schedule: Option<String>,
    /// Time zone the schedule and the daily/weekly buckets are read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = TIME_ZONE_PATTERN))]
    pub time_zone: Option<String>,
    /// How many scheduled snapshots to keep; each count overrides on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<BackupKeep>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupKeep {
    /// The newest snapshot of each of the newest `daily` days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 366))]
    pub daily: Option<u32>,
    /// The newest snapshot of each of the newest `weekly` ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 520))]
    pub weekly: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TailscaleSpec {
    /// Secret (in the Assistant's namespace) holding a Tailscale auth key. Required unless
    /// the operator has Tailscale OAuth credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key_secret_ref: Option<SecretKeyRef>,

    /// Machine name on the tailnet (a DNS label); derived from namespace and name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub hostname: Option<String>,

    /// ACL tags advertised by the device (each `tag:...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = TAILSCALE_TAG_PATTERN)), length(max = 16))]
    pub tags: Vec<String>,

    /// Also publish the gateway to the public internet with Tailscale Funnel.
    #[serde(default, skip_serializing_if = "is_false")]
    pub funnel: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name, in the Assistant's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Provisioning,
    Running,
    Degraded,
    Suspended,
    Failed,
    Terminating,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Provisioning,
        Phase::Running,
        Phase::Degraded,
        Phase::Suspended,
        Phase::Failed,
        Phase::Terminating,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Running => "Running",
            Phase::Degraded => "Degraded",
            Phase::Suspended => "Suspended",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssistantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ConfigValid, Applied, StorageReady, GatewayReady, TailnetReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// openclaw version the gateway is set to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_version: Option<String>,
    /// Image the gateway is set to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailnet: Option<TailnetStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// Name of the Secret holding the gateway token (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_token_secret: Option<String>,
    /// The client's access: the Tailscale device-share invite and its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<super::AccessStatus>,
    /// Snapshots of the data volume (absent until the operator has evaluated backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
}

/// Every field changes only when something happened (a snapshot became ready, a slot or a
/// request was handled, a prune changed the count): an idle Assistant's status is stable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Name of the newest ready VolumeSnapshot of this Assistant (any kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<String>,
    /// When it was taken (status.creationTime, else its creationTimestamp), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_time: Option<String>,
    /// Its status.restoreSize (the minimum volume size to restore it), when the driver says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_size: Option<String>,
    /// When the next scheduled snapshot is due (slot + this client's offset), RFC 3339;
    /// absent when backups are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// The latest schedule slot handled (taken, or skipped while suspended), RFC 3339 of the
    /// slot. Catch-up reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_run: Option<String>,
    /// The last `clawhost.dev/backup-request` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_request: Option<String>,
    /// The snapshot made for `handledRequest` (the rollout waits for its readyToUse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_snapshot: Option<String>,
    /// Ready snapshots of this Assistant, all kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_snapshots: Option<u32>,
    /// What is happening or what to do; never relative times, so it is stable when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TailnetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    /// Capacity the volume reports (may lag a requested expansion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl Assistant {
    pub fn gateway(&self) -> GatewaySpec {
        self.spec.gateway.clone().unwrap_or_default()
    }
    pub fn storage(&self) -> StorageSpec {
        self.spec.storage.clone().unwrap_or_default()
    }
    pub fn tailscale(&self) -> TailscaleSpec {
        self.spec.tailscale.clone().unwrap_or_default()
    }
    pub fn backup(&self) -> BackupSpec {
        self.spec.backup.clone().unwrap_or_default()
    }
}
