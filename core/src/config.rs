//! Operator configuration: one YAML file, every field defaulted, unknown keys refused so a
//! typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

use crate::api::assistant::{DNS_SUBDOMAIN_PATTERN, TAILSCALE_TAG_PATTERN, VERSION_PATTERN};

/// The gateway listens here, on loopback only; the sidecar proxies to it.
pub const GATEWAY_PORT: i32 = 18789;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read operator config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("operator config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("operator config {path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OperatorConfig {
    pub gateway: GatewayDefaults,
    pub tailscale: TailscaleDefaults,
    /// Sizing plans by name.
    pub plans: BTreeMap<String, Plan>,
    /// Plan used when an Assistant names none.
    pub default_plan: String,
    pub storage: StorageDefaults,
    pub network_policy: NetworkPolicyConfig,
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    pub reconcile: ReconcileConfig,
    pub leader_election: LeaderElectionConfig,
    /// Scheduled CSI VolumeSnapshots of every client's volume (docs/backups.md).
    pub backups: BackupConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewayDefaults {
    /// Image repository; the openclaw version is the tag.
    pub image: String,
    /// openclaw version for Assistants that name none.
    pub default_version: String,
    /// openclaw drains for up to ~330 s on SIGTERM; the kubelet must wait at least that long.
    pub termination_grace_period_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TailscaleDefaults {
    /// Sidecar image, pinned.
    pub image: String,
    /// Tags added to every device (each `tag:...`).
    pub default_tags: Vec<String>,
    /// OAuth client for the Tailscale API: mints per-client auth keys and removes devices on
    /// deletion. Absent means every Assistant must name an auth-key Secret.
    pub oauth: Option<TailscaleOAuth>,
    /// Device-share invites that hand each client their device (docs/onboarding.md).
    /// Absent: access is manual, and status and the console say so.
    pub invites: Option<TailscaleInvites>,
    pub resources: ResourceRequirements,
}

/// Creating a device invite acts as a person (the invite records who shared the device),
/// so Tailscale refuses it with an OAuth client: it needs a user-owned API access token,
/// a credential separate from [`TailscaleOAuth`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TailscaleInvites {
    /// File (mounted from a Secret) holding a user-owned Tailscale API access token.
    pub api_token_file: PathBuf,
    /// File (mounted from a Secret the console mounts too) holding the access key: 32
    /// random bytes, base64. With it the invite URL is kept sealed in `status.access`, so
    /// the console's handoff page can show it; without it the client uses the e-mail
    /// Tailscale sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_file: Option<PathBuf>,
    /// How often an unaccepted invite is checked for acceptance.
    #[serde(default = "default_invite_poll_seconds")]
    pub poll_seconds: u64,
    #[serde(default = "default_tailscale_api")]
    pub api_url: String,
}

fn default_invite_poll_seconds() -> u64 {
    300
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TailscaleOAuth {
    /// Files (mounted from a Secret) holding the OAuth client id and secret.
    pub client_id_file: PathBuf,
    pub client_secret_file: PathBuf,
    /// Tailnet name; `-` is the OAuth client's own tailnet.
    #[serde(default = "default_tailnet")]
    pub tailnet: String,
    #[serde(default = "default_tailscale_api")]
    pub api_url: String,
}

fn default_tailnet() -> String {
    "-".into()
}
fn default_tailscale_api() -> String {
    "https://api.tailscale.com".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Gateway container resources.
    pub resources: ResourceRequirements,
    /// Default volume size.
    pub storage_size: Quantity,
    /// openclaw `agents.defaults.maxConcurrent`; openclaw's own default scales with the
    /// node's CPUs, which is wrong inside a sized pod.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// This plan's snapshot policy; each field overrides `backups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<PlanBackup>,
}

/// A plan's override of the fleet's snapshot policy (an Assistant's `spec.backup` wins).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanBackup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<crate::api::BackupKeep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Kill switch for the whole fleet (wins over plans and Assistants).
    pub enabled: bool,
    /// VolumeSnapshotClass of every snapshot; absent: the cluster's default class for the
    /// volume's driver.
    pub volume_snapshot_class_name: Option<String>,
    /// Cron (5 fields or a nickname), at most hourly.
    pub schedule: String,
    /// IANA zone the schedule and the daily/weekly buckets are read in.
    pub time_zone: String,
    pub keep: KeepConfig,
    /// Each client's run is offset by a stable amount in [0, spreadSeconds) from its uid, so
    /// a fleet does not snapshot all at once.
    pub spread_seconds: u64,
    /// A snapshot not readyToUse this long after creation is reported (SnapshotNotReady).
    pub ready_deadline_seconds: u64,
    /// Manual, pre-upgrade and pre-restore snapshots are kept this long (the newest ready
    /// snapshot is kept regardless).
    pub keep_on_demand_days: u32,
    /// Fleet-wide rate of scheduled snapshot creations (token bucket, burst the same).
    pub creations_per_minute: u32,
    pub final_snapshot: FinalSnapshotConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KeepConfig {
    /// The newest snapshot of each of the newest `daily` days that have one.
    pub daily: u32,
    /// The newest snapshot of each of the newest `weekly` ISO weeks that have one.
    pub weekly: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FinalSnapshotConfig {
    /// Before deleting a volume under `onDelete: Delete`, snapshot it and wait until ready.
    pub enabled: bool,
    /// How long the final snapshot is kept; then the operator's janitor deletes it.
    pub keep_days: u32,
    /// A final snapshot that fails or is not ready within `readyDeadlineSeconds`.
    pub on_failure: FinalSnapshotFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FinalSnapshotFailure {
    /// Hold the deletion (BackupHealthy FinalSnapshotFailed, an Event) until it succeeds or
    /// the Assistant carries `clawhost.dev/skip-final-snapshot: "true"`.
    #[default]
    Block,
    /// Delete anyway, with a Warning Event.
    Proceed,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            volume_snapshot_class_name: None,
            schedule: "0 3 * * *".into(),
            time_zone: "UTC".into(),
            keep: KeepConfig::default(),
            spread_seconds: 3600,
            // First snapshots of big cloud volumes can take an hour or more.
            ready_deadline_seconds: 7200,
            keep_on_demand_days: 30,
            creations_per_minute: 20,
            final_snapshot: FinalSnapshotConfig::default(),
        }
    }
}

impl Default for KeepConfig {
    fn default() -> Self {
        Self {
            daily: 7,
            weekly: 4,
        }
    }
}

impl Default for FinalSnapshotConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_days: 30,
            on_failure: FinalSnapshotFailure::Block,
        }
    }
}

/// Why a backup schedule is refused; each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// e.g. `"0 3 * *" is not a cron expression (5 fields: minute hour day-of-month month
    /// day-of-week, or @daily/@weekly/...): <croner's reason>`.
    #[error(
        "{expr:?} is not a cron expression (5 fields: minute hour day-of-month month day-of-week, or @daily, @weekly, ...): {reason}"
    )]
    Cron { expr: String, reason: String },
    #[error("{name:?} is not an IANA time zone (e.g. Europe/Stockholm, UTC)")]
    TimeZone { name: String },
    /// Two slots less than an hour apart within the next 200 slots.
    #[error(
        "{expr:?} runs more often than hourly (every {minutes} minutes); snapshots are at most hourly"
    )]
    TooFrequent { expr: String, minutes: i64 },
}

/// Parses a backup schedule in its zone: croner with seconds and years refused, vixie-cron
/// OR semantics for day-of-month/day-of-week, the zone from jiff's (bundled) tz database,
/// and no two slots less than 1 h apart over the next 200 slots. The one parser behind
/// `OperatorConfig::check`, validation and `backup::Schedule::parse` (it lives here because
/// `config` sits above `backup` in the layers).
pub fn parse_schedule(
    expr: &str,
    time_zone: &str,
) -> Result<(croner::Cron, jiff::tz::TimeZone), ScheduleError> {
    use croner::parser::{CronParser, Seconds, Year};

    let tz = jiff::tz::TimeZone::get(time_zone).map_err(|_| ScheduleError::TimeZone {
        name: time_zone.to_string(),
    })?;
    let cron_error = |reason: String| ScheduleError::Cron {
        expr: expr.to_string(),
        reason,
    };
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(false)
        .build()
        .parse(expr)
        .map_err(|e| cron_error(e.to_string()))?;

    // A fixed start, so the same expression is judged the same on every run and every
    // machine; any pattern that runs more often than hourly does so within 200 slots.
    let mut at = SCHEDULE_CHECK_FROM.to_zoned(tz.clone());
    let mut previous: Option<jiff::Timestamp> = None;
    let mut first_slot: Option<jiff::Timestamp> = None;
    let mut shortest: Option<jiff::SignedDuration> = None;
    for _ in 0..SCHEDULE_CHECK_SLOTS {
        let next = cron.find_next_occurrence(&at, false).map_err(|_| {
            cron_error("it never runs (no matching date within a year)".to_string())
        })?;
        let ts = next.timestamp();
        let first = *first_slot.get_or_insert(ts);
        if ts.duration_since(first) > SCHEDULE_CHECK_HORIZON {
            // A rare schedule (@yearly, Feb 29): its gaps are plain by then.
            break;
        }
        if let Some(prev) = previous {
            let gap = ts.duration_since(prev);
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
        }
        previous = Some(ts);
        at = next;
    }
    if let Some(gap) = shortest
        && gap < jiff::SignedDuration::from_hours(1)
    {
        return Err(ScheduleError::TooFrequent {
            expr: expr.to_string(),
            minutes: gap.as_secs() / 60,
        });
    }
    Ok((cron, tz))
}

/// Where the at-most-hourly check of [`parse_schedule`] starts (2026-01-01T00:00:00Z).
const SCHEDULE_CHECK_FROM: jiff::Timestamp = jiff::Timestamp::constant(1_767_225_600, 0);
/// How many upcoming slots the at-most-hourly check looks at, within two years of the first.
const SCHEDULE_CHECK_SLOTS: usize = 200;
const SCHEDULE_CHECK_HORIZON: jiff::SignedDuration = jiff::SignedDuration::from_hours(2 * 366 * 24);

fn default_max_concurrent() -> u32 {
    4
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StorageDefaults {
    /// StorageClass for new volumes; the cluster default when absent.
    pub storage_class_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkPolicyConfig {
    /// Render a NetworkPolicy per Assistant.
    pub enabled: bool,
    /// CIDRs of the Kubernetes API server endpoints (the sidecar stores its state in a
    /// Secret). The operator discovers them from the `kubernetes` EndpointSlice when empty.
    pub api_server_cidrs: Vec<String>,
    /// Ports the API server listens on.
    pub api_server_ports: Vec<i32>,
    /// Never reachable from a gateway pod (cloud metadata, private networks).
    pub blocked_cidrs: Vec<String>,
    /// Namespace and pod labels of the cluster DNS.
    pub dns_namespace: String,
    pub dns_pod_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// Assistants reconciled at the same time.
    pub concurrency: u16,
    /// Periodic re-check of a healthy Assistant.
    pub resync_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LeaderElectionConfig {
    pub enabled: bool,
    pub lease_name: String,
    /// Defaults to the operator's own namespace (`POD_NAMESPACE`).
    pub lease_namespace: Option<String>,
    pub lease_duration_seconds: u64,
}

fn resources(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), q(req_cpu)),
            ("memory".to_string(), q(req_mem)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), q(lim_cpu)),
            ("memory".to_string(), q(lim_mem)),
        ])),
        ..Default::default()
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        // Sizes from docs/performance.md: an idle openclaw 2026.9.6 gateway container holds
        // ~1.1 GiB RSS and peaks ~1.2 GiB at start-up, so no request is below 1280Mi (lower
        // would make these pods the first evicted) and no limit below 2Gi.
        let plans = BTreeMap::from([
            (
                "small".to_string(),
                Plan {
                    resources: resources("250m", "1280Mi", "1", "2Gi"),
                    storage_size: Quantity("5Gi".into()),
                    max_concurrent: 2,
                    backup: None,
                },
            ),
            (
                "standard".to_string(),
                Plan {
                    resources: resources("500m", "1536Mi", "2", "3Gi"),
                    storage_size: Quantity("10Gi".into()),
                    max_concurrent: 4,
                    backup: None,
                },
            ),
            (
                "large".to_string(),
                Plan {
                    resources: resources("1", "3Gi", "4", "4Gi"),
                    storage_size: Quantity("50Gi".into()),
                    max_concurrent: 8,
                    backup: None,
                },
            ),
        ]);
        Self {
            gateway: GatewayDefaults::default(),
            tailscale: TailscaleDefaults::default(),
            plans,
            default_plan: "standard".into(),
            storage: StorageDefaults::default(),
            network_policy: NetworkPolicyConfig::default(),
            namespaces: Vec::new(),
            reconcile: ReconcileConfig::default(),
            leader_election: LeaderElectionConfig::default(),
            backups: BackupConfig::default(),
        }
    }
}

impl Default for GatewayDefaults {
    fn default() -> Self {
        Self {
            image: "ghcr.io/clawhost/gateway".into(),
            default_version: "2026.9.6".into(),
            termination_grace_period_seconds: 360,
        }
    }
}

impl Default for TailscaleDefaults {
    fn default() -> Self {
        Self {
            image: "tailscale/tailscale:v1.90.6".into(),
            default_tags: Vec::new(),
            oauth: None,
            invites: None,
            resources: resources("20m", "64Mi", "500m", "256Mi"),
        }
    }
}

impl Default for NetworkPolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            api_server_cidrs: Vec::new(),
            api_server_ports: vec![443, 6443],
            blocked_cidrs: [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "100.64.0.0/10",
                "127.0.0.0/8",
            ]
            .map(String::from)
            .to_vec(),
            dns_namespace: "kube-system".into(),
            dns_pod_labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
        }
    }
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            resync_seconds: 300,
        }
    }
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lease_name: "clawhost-operator".into(),
            lease_namespace: None,
            lease_duration_seconds: 15,
        }
    }
}

impl OperatorConfig {
    /// Load and check a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: OperatorConfig = if text.trim().is_empty() {
            OperatorConfig::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("{}: {}", e.path(), e.inner()),
            })?
        };
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            message,
        };
        if !self.plans.contains_key(&self.default_plan) {
            return Err(invalid(
                "defaultPlan",
                format!(
                    "plan {:?} is not defined in plans (defined: {})",
                    self.default_plan,
                    self.plans.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let version = regex_lite::Regex::new(VERSION_PATTERN).expect("static pattern");
        if !version.is_match(&self.gateway.default_version) {
            return Err(invalid(
                "gateway.defaultVersion",
                format!(
                    "{:?} is not a pinned openclaw release like 2026.9.6",
                    self.gateway.default_version
                ),
            ));
        }
        let tag = regex_lite::Regex::new(TAILSCALE_TAG_PATTERN).expect("static pattern");
        for t in &self.tailscale.default_tags {
            if !tag.is_match(t) {
                return Err(invalid(
                    "tailscale.defaultTags",
                    format!("{t:?} is not a Tailscale tag (tag:name)"),
                ));
            }
        }
        if self.tailscale.image.ends_with(":latest") || !self.tailscale.image.contains(':') {
            return Err(invalid(
                "tailscale.image",
                format!(
                    "{:?} must be pinned to a version tag or digest",
                    self.tailscale.image
                ),
            ));
        }
        if self.gateway.termination_grace_period_seconds < 30 {
            return Err(invalid(
                "gateway.terminationGracePeriodSeconds",
                "must be at least 30 (openclaw drains sessions on SIGTERM)".into(),
            ));
        }
        if let Some(invites) = &self.tailscale.invites
            && invites.poll_seconds < 10
        {
            return Err(invalid(
                "tailscale.invites.pollSeconds",
                "must be at least 10 (Tailscale rate-limits its API)".into(),
            ));
        }
        if self.reconcile.concurrency == 0 {
            return Err(invalid(
                "reconcile.concurrency",
                "must be at least 1".into(),
            ));
        }
        for (name, plan) in &self.plans {
            if crate::api::quantity::parse(&plan.storage_size.0).is_none() {
                return Err(invalid(
                    &format!("plans.{name}.storageSize"),
                    format!("{:?} is not a Kubernetes quantity", plan.storage_size.0),
                ));
            }
        }
        self.check_backups(&invalid)?;
        for cidr in self
            .network_policy
            .api_server_cidrs
            .iter()
            .chain(&self.network_policy.blocked_cidrs)
        {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                return Err(invalid("networkPolicy", format!("{cidr:?} is not a CIDR")));
            }
        }
        Ok(())
    }

    /// The `backups` section and each plan's `backup` override.
    fn check_backups(
        &self,
        invalid: &impl Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let b = &self.backups;
        let schedule = |expr: &str, zone: &str, prefix: &str| {
            parse_schedule(expr, zone).map(drop).map_err(|e| {
                let field = match e {
                    ScheduleError::TimeZone { .. } => "timeZone",
                    _ => "schedule",
                };
                invalid(&format!("{prefix}.{field}"), e.to_string())
            })
        };
        schedule(&b.schedule, &b.time_zone, "backups")?;
        for (name, plan) in &self.plans {
            let Some(pb) = &plan.backup else { continue };
            if pb.schedule.is_some() || pb.time_zone.is_some() {
                schedule(
                    pb.schedule.as_deref().unwrap_or(&b.schedule),
                    pb.time_zone.as_deref().unwrap_or(&b.time_zone),
                    &format!("plans.{name}.backup"),
                )?;
            }
            if let Some(keep) = &pb.keep {
                for (field, value, max) in
                    [("daily", keep.daily, 366), ("weekly", keep.weekly, 520)]
                {
                    if value.is_some_and(|v| v > max) {
                        return Err(invalid(
                            &format!("plans.{name}.backup.keep.{field}"),
                            format!("must be at most {max}"),
                        ));
                    }
                }
            }
        }
        if let Some(class) = &b.volume_snapshot_class_name {
            let subdomain = regex_lite::Regex::new(DNS_SUBDOMAIN_PATTERN).expect("static pattern");
            if class.len() > 253 || !subdomain.is_match(class) {
                return Err(invalid(
                    "backups.volumeSnapshotClassName",
                    format!(
                        "{class:?} is not a VolumeSnapshotClass name (lowercase letters, digits, '-', '.'); leave it out to use the cluster's default class"
                    ),
                ));
            }
        }
        if b.ready_deadline_seconds < 60 {
            return Err(invalid(
                "backups.readyDeadlineSeconds",
                "must be at least 60 (snapshots of real volumes take minutes)".into(),
            ));
        }
        if b.ready_deadline_seconds > 30 * 86_400 {
            return Err(invalid(
                "backups.readyDeadlineSeconds",
                "must be at most 2592000 (30 days)".into(),
            ));
        }
        if b.keep_on_demand_days == 0 || b.keep_on_demand_days > 3650 {
            return Err(invalid(
                "backups.keepOnDemandDays",
                "must be between 1 and 3650 (0 would delete a rollback snapshot as soon as it is cut)".into(),
            ));
        }
        if b.creations_per_minute == 0 {
            return Err(invalid(
                "backups.creationsPerMinute",
                "must be at least 1 (to turn backups off set backups.enabled: false)".into(),
            ));
        }
        if b.spread_seconds >= 86_400 {
            return Err(invalid(
                "backups.spreadSeconds",
                "must be below 86400 (a day): a client's run must stay within its day".into(),
            ));
        }
        if b.final_snapshot.keep_days == 0 {
            return Err(invalid(
                "backups.finalSnapshot.keepDays",
                "must be at least 1 (to skip final snapshots set backups.finalSnapshot.enabled: false)".into(),
            ));
        }
        if b.final_snapshot.keep_days > 3650 {
            return Err(invalid(
                "backups.finalSnapshot.keepDays",
                "must be at most 3650 (ten years)".into(),
            ));
        }
        if b.keep.daily > 366 || b.keep.weekly > 520 {
            return Err(invalid(
                "backups.keep",
                "daily must be at most 366 and weekly at most 520".into(),
            ));
        }
        Ok(())
    }

    pub fn plan(&self, name: Option<&str>) -> Option<(&str, &Plan)> {
        let name = name.unwrap_or(&self.default_plan);
        self.plans.get_key_value(name).map(|(k, v)| (k.as_str(), v))
    }

    pub fn has_tailscale_oauth(&self) -> bool {
        self.tailscale.oauth.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<OperatorConfig, String> {
        OperatorConfig::parse(yaml, Path::new("op.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn backups_default_on_and_are_printed_with_their_defaults() {
        let c = parse("").unwrap();
        assert!(c.backups.enabled);
        assert_eq!(c.backups.schedule, "0 3 * * *");
        assert_eq!(c.backups.time_zone, "UTC");
        assert_eq!((c.backups.keep.daily, c.backups.keep.weekly), (7, 4));
        assert_eq!(
            c.backups.final_snapshot.on_failure,
            FinalSnapshotFailure::Block
        );
        // `clawhost config check` prints the effective config: the section is there, and
        // what it prints parses back to the same config.
        let printed = serde_yaml::to_string(&c).unwrap();
        for key in [
            "backups:",
            "volumeSnapshotClassName:",
            "schedule: 0 3 * * *",
            "timeZone: UTC",
            "spreadSeconds: 3600",
            "readyDeadlineSeconds: 7200",
            "keepOnDemandDays: 30",
            "creationsPerMinute: 20",
            "finalSnapshot:",
            "onFailure: Block",
        ] {
            assert!(printed.contains(key), "{key} missing from:\n{printed}");
        }
        assert_eq!(parse(&printed).unwrap(), c);
    }

    #[test]
    fn backups_and_plan_overrides_parse() {
        let c = parse(
            "backups:\n  volumeSnapshotClassName: csi-snap\n  timeZone: Europe/Stockholm\n  keep: {daily: 14}\n  finalSnapshot: {onFailure: Proceed, keepDays: 7}\nplans:\n  standard:\n    resources: {}\n    storageSize: 10Gi\n    backup: {enabled: false, schedule: '30 1 * * *', keep: {weekly: 8}}\n",
        )
        .unwrap();
        assert_eq!(
            c.backups.volume_snapshot_class_name.as_deref(),
            Some("csi-snap")
        );
        assert_eq!((c.backups.keep.daily, c.backups.keep.weekly), (14, 4));
        assert_eq!(
            c.backups.final_snapshot.on_failure,
            FinalSnapshotFailure::Proceed
        );
        let plan = c.plans["standard"].backup.clone().unwrap();
        assert_eq!(plan.enabled, Some(false));
        assert_eq!(plan.keep.unwrap().weekly, Some(8));
        assert!(
            parse("backups: {retention: 3}")
                .unwrap_err()
                .contains("retention")
        );
    }

    #[test]
    fn bad_backup_settings_name_their_yaml_path() {
        let plan = |backup: &str| {
            format!(
                "plans:\n  standard:\n    resources: {{}}\n    storageSize: 10Gi\n    backup: {backup}\n"
            )
        };
        for (yaml, expected) in [
            (
                "backups: {schedule: '*/15 * * * *'}".to_string(),
                "operator config op.yaml: backups.schedule: \"*/15 * * * *\" runs more often than hourly (every 15 minutes); snapshots are at most hourly",
            ),
            (
                "backups: {schedule: 'nightly'}".to_string(),
                "operator config op.yaml: backups.schedule: \"nightly\" is not a cron expression",
            ),
            (
                "backups: {timeZone: Mars/Olympus}".to_string(),
                "operator config op.yaml: backups.timeZone: \"Mars/Olympus\" is not an IANA time zone",
            ),
            (
                plan("{schedule: '0 3 * * * *'}"),
                "operator config op.yaml: plans.standard.backup.schedule: \"0 3 * * * *\" is not a cron expression",
            ),
            (
                plan("{timeZone: Europe/Gotham}"),
                "operator config op.yaml: plans.standard.backup.timeZone: \"Europe/Gotham\"",
            ),
            (
                plan("{keep: {daily: 1000}}"),
                "operator config op.yaml: plans.standard.backup.keep.daily: must be at most 366",
            ),
            (
                "backups: {readyDeadlineSeconds: 10}".to_string(),
                "operator config op.yaml: backups.readyDeadlineSeconds: must be at least 60",
            ),
            (
                "backups: {readyDeadlineSeconds: 300000000000}".to_string(),
                "operator config op.yaml: backups.readyDeadlineSeconds: must be at most 2592000",
            ),
            (
                "backups: {keepOnDemandDays: 0}".to_string(),
                "operator config op.yaml: backups.keepOnDemandDays: must be between 1 and 3650",
            ),
            (
                "backups: {finalSnapshot: {keepDays: 100000}}".to_string(),
                "operator config op.yaml: backups.finalSnapshot.keepDays: must be at most 3650",
            ),
            (
                "backups: {creationsPerMinute: 0}".to_string(),
                "operator config op.yaml: backups.creationsPerMinute: must be at least 1",
            ),
            (
                "backups: {spreadSeconds: 86400}".to_string(),
                "operator config op.yaml: backups.spreadSeconds: must be below 86400",
            ),
            (
                "backups: {finalSnapshot: {keepDays: 0}}".to_string(),
                "operator config op.yaml: backups.finalSnapshot.keepDays: must be at least 1",
            ),
            (
                "backups: {volumeSnapshotClassName: CSI_Snap}".to_string(),
                "operator config op.yaml: backups.volumeSnapshotClassName: \"CSI_Snap\" is not a VolumeSnapshotClass name",
            ),
            (
                "backups: {finalSnapshot: {onFailure: Maybe}}".to_string(),
                "onFailure",
            ),
        ] {
            let e = parse(&yaml).unwrap_err();
            assert!(
                e.starts_with(expected) || e.contains(expected),
                "{yaml}: {e}"
            );
        }
        // A plan's own zone is checked with the operator's schedule, and vice versa.
        assert!(parse(&plan("{timeZone: Europe/Stockholm}")).is_ok());
        assert!(parse(&plan("{schedule: '@weekly'}")).is_ok());
    }
}
