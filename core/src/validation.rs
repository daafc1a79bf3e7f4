//! Every rule an Assistant must satisfy, checked in Rust so `clawhost render`, the operator
//! and the console report the same messages. The CRD carries the rules the API server can
//! enforce on its own; these repeat them and add the ones that need the operator config.

use std::collections::BTreeSet;

use crate::api::assistant::*;
use crate::api::quantity;
use crate::config::{OperatorConfig, ScheduleError, parse_schedule};
pub use crate::openclaw::config::lookup;
use crate::openclaw::{config::openclaw_config, schema};
pub use crate::problems::{Problem, Problems};

/// Config keys the operator owns: the pod's security and reachability depend on them.
pub const OPERATOR_OWNED_CONFIG_KEYS: [&str; 6] = [
    "gateway.mode",
    "gateway.bind",
    "gateway.port",
    "gateway.auth",
    "gateway.tailscale",
    "gateway.trustedProxies",
];

/// Environment the operator sets on the gateway container (or that would move state off
/// the volume / bypass token auth). A client value would silently win or break the pod.
pub const OPERATOR_OWNED_ENV: [&str; 12] = [
    "HOME",
    "TMPDIR",
    "OPENCLAW_HOME",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_CONFIG_READONLY",
    "OPENCLAW_NO_AUTO_UPDATE",
    "OPENCLAW_GATEWAY_TOKEN",
    "OPENCLAW_GATEWAY_PASSWORD",
    "OPENCLAW_GATEWAY_PORT",
    "OPENCLAW_WORKSPACE_DIR",
    "NODE_OPTIONS",
];

/// Length limits of the fields people type; the console's forms use them as `maxlength`.
pub const MAX_NAME_LEN: usize = 253;
pub const MAX_OWNER_NAME_CHARS: usize = 200;
pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_DNS_LABEL_LEN: usize = 63;

/// Env names that hold credentials: they must come from a Secret, never a literal in the
/// Assistant (which anyone who can read Assistants could see).
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|w| upper.ends_with(w) || upper.contains(&format!("{w}_")))
}

/// Bidirectional formatting controls (embeddings, overrides, isolates, marks): invisible,
/// and a U+202E in a name visually reverses the text around it wherever it is shown.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether `s` contains a bidirectional formatting control ([`is_bidi_control`]).
pub fn has_bidi_control(s: &str) -> bool {
    s.chars().any(is_bidi_control)
}

/// Whether `s` is an e-mail address an Assistant may name: [`EMAIL_PATTERN`] (which admits
/// non-ASCII for internationalised addresses), at most [`MAX_EMAIL_LEN`] bytes, and none of
/// the non-ASCII characters the pattern cannot exclude (whitespace, controls, bidi controls).
pub fn is_email(s: &str) -> bool {
    s.len() <= MAX_EMAIL_LEN
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c))
        && re(EMAIL_PATTERN).is_match(s)
}

fn re(pattern: &str) -> regex_lite::Regex {
    regex_lite::Regex::new(pattern).expect("static pattern")
}

/// Checks an Assistant against the operator config. `previous` is what the cluster has now
/// (for immutability and never-shrink); `None` for a new Assistant or an offline render.
/// Without a date, a release dated in the future passes: see [`validate_at`].
pub fn validate(
    assistant: &Assistant,
    config: &OperatorConfig,
    previous: Option<&PreviousState>,
) -> Result<(), Problems> {
    validate_at(assistant, config, previous, None)
}

/// [`validate`], and with `today` (the caller's clock: the core reads none) also refuses an
/// openclaw release dated after today plus [`RELEASE_DATE_MARGIN_DAYS`].
pub fn validate_at(
    assistant: &Assistant,
    config: &OperatorConfig,
    previous: Option<&PreviousState>,
    today: Option<CivilDate>,
) -> Result<(), Problems> {
    let mut p = Vec::new();
    let mut add = |field: &str, message: String| {
        p.push(Problem {
            field: field.to_string(),
            message,
        })
    };
    let spec = &assistant.spec;

    match assistant.metadata.name.as_deref() {
        None | Some("") => add("metadata.name", "is required".into()),
        Some(name)
            if !re(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$").is_match(name)
                || name.len() > MAX_NAME_LEN =>
        {
            add(
                "metadata.name",
                format!(
                    "{name:?} is not a valid Kubernetes name (lowercase letters, digits, '-', '.', at most 253)"
                ),
            )
        }
        _ => {}
    }

    // Owner.
    let owner_name = spec.owner.name.trim();
    if owner_name.is_empty() {
        add("spec.owner.name", "is required".into());
    } else if spec.owner.name.chars().count() > MAX_OWNER_NAME_CHARS {
        add("spec.owner.name", "must be at most 200 characters".into());
    } else if spec.owner.name.chars().any(char::is_control) {
        add(
            "spec.owner.name",
            "must not contain control characters".into(),
        );
    } else if has_bidi_control(&spec.owner.name) {
        add(
            "spec.owner.name",
            "must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C)".into(),
        );
    }
    if !is_email(&spec.owner.email) {
        add(
            "spec.owner.email",
            format!("{:?} is not an e-mail address", spec.owner.email),
        );
    }

    // Plan.
    if config.plan(spec.plan.as_deref()).is_none() {
        add(
            "spec.plan",
            format!(
                "plan {:?} does not exist (plans: {})",
                spec.plan.as_deref().unwrap_or(&config.default_plan),
                config.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }

    if let Some(res) = &spec.resources {
        check_resources(res, &mut add);
    }

    // Gateway.
    let gw = assistant.gateway();
    if let Some(v) = &gw.version
        && !re(VERSION_PATTERN).is_match(v)
    {
        add(
            "spec.gateway.version",
            format!(
                "{v:?} is not a pinned openclaw release like 2026.9.6 (floating tags such as latest are not allowed)"
            ),
        );
    } else if let Some(v) = &gw.version
        && let Err(e) = ReleaseVersion::parse(v, today)
    {
        add("spec.gateway.version", e.to_string());
    }
    if let Some(image) = &gw.image {
        if !re(IMAGE_PATTERN).is_match(image) {
            add(
                "spec.gateway.image",
                format!("{image:?} is not an image reference"),
            );
        } else if image_tag(image) == Some("latest") {
            add(
                "spec.gateway.image",
                format!("{image:?} uses the floating tag latest; pin a version or digest"),
            );
        }
    }
    if let Some(cfg) = &gw.config {
        for key in OPERATOR_OWNED_CONFIG_KEYS {
            if lookup(cfg, key).is_some() {
                add(
                    &format!("spec.gateway.config.{key}"),
                    "is managed by the operator and cannot be set by the client".into(),
                );
            }
        }
    }
    if gw.config.is_some() {
        let version = gw
            .version
            .clone()
            .unwrap_or_else(|| config.gateway.default_version.clone());
        if schema::applies_to(&version) {
            let merged = openclaw_config(assistant, config);
            for problem in schema::check(&merged) {
                add(&problem.field, problem.message);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let env_name = re(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$");
    for (i, env) in gw.env.iter().enumerate() {
        let field = format!("spec.gateway.env[{i}]");
        if !env_name.is_match(&env.name) {
            add(
                &field,
                format!("{:?} is not a valid environment variable name", env.name),
            );
            continue;
        }
        if OPERATOR_OWNED_ENV.contains(&env.name.as_str()) {
            add(
                &format!("{field}.name"),
                format!(
                    "{} is set by the operator and cannot be overridden",
                    env.name
                ),
            );
        }
        if !seen.insert(env.name.clone()) {
            add(
                &format!("{field}.name"),
                format!("{} is listed twice", env.name),
            );
        }
        if env.value.as_deref().is_some_and(|v| !v.is_empty()) && looks_secret(&env.name) {
            add(
                &format!("{field}.value"),
                format!(
                    "{} looks like a credential: reference it with valueFrom.secretKeyRef instead of a literal value",
                    env.name
                ),
            );
        }
        if env.value.is_some() && env.value_from.is_some() {
            add(&field, "set either value or valueFrom, not both".into());
        }
    }
    for (i, src) in gw.env_from.iter().enumerate() {
        if src.config_map_ref.is_none() && src.secret_ref.is_none() {
            add(
                &format!("spec.gateway.envFrom[{i}]"),
                "needs configMapRef or secretRef".into(),
            );
        }
    }

    // Storage.
    let storage = assistant.storage();
    if let Some(size) = &storage.size {
        match quantity::parse(size) {
            None => add(
                "spec.storage.size",
                format!("{size:?} is not a Kubernetes quantity like 10Gi"),
            ),
            Some(v) if v < 1024.0 * 1024.0 * 1024.0 => add(
                "spec.storage.size",
                format!("{size} is below the 1Gi minimum"),
            ),
            Some(v) => {
                if let Some(prev) = previous.and_then(|p| p.requested_storage.as_deref())
                    && quantity::parse(prev).is_some_and(|old| v < old)
                {
                    add(
                        "spec.storage.size",
                        format!("may grow but never shrink: the volume already requests {prev}"),
                    );
                }
            }
        }
    }
    if let Some(prev) = previous
        && prev.storage_class_name.is_some()
        && storage.storage_class_name.is_some()
        && prev.storage_class_name != storage.storage_class_name
    {
        add(
            "spec.storage.storageClassName",
            format!(
                "is immutable: the volume was created with {:?}",
                prev.storage_class_name.as_deref().unwrap_or_default()
            ),
        );
    }

    // Restore from a snapshot.
    if let Some(restore) = &storage.restore_from {
        check_restore(assistant, config, restore, previous, &mut add);
    }

    // Backups. The operator config's `backups.enabled: false` winning over `enabled: true`
    // here is not an error: BackupHealthy says so.
    check_backup(assistant, config, &mut add);

    // Tailscale.
    match &spec.tailscale {
        None if !config.has_tailscale_oauth() => add(
            "spec.tailscale",
            "is required: set tailscale.authKeySecretRef (the operator has no Tailscale OAuth credentials)".into(),
        ),
        Some(ts) => {
            if ts.auth_key_secret_ref.is_none() && !config.has_tailscale_oauth() {
                add(
                    "spec.tailscale.authKeySecretRef",
                    "is required (the operator has no Tailscale OAuth credentials to mint a key)".into(),
                );
            }
            if let Some(r) = &ts.auth_key_secret_ref {
                if r.name.is_empty() {
                    add("spec.tailscale.authKeySecretRef.name", "is required".into());
                }
                if r.key.is_empty() {
                    add("spec.tailscale.authKeySecretRef.key", "is required".into());
                }
            }
            if let Some(h) = &ts.hostname
                && (h.len() > MAX_DNS_LABEL_LEN || !re(DNS_LABEL_PATTERN).is_match(h))
            {
                add(
                    "spec.tailscale.hostname",
                    format!("{h:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"),
                );
            }
            let tag = re(TAILSCALE_TAG_PATTERN);
            for (i, t) in ts.tags.iter().enumerate() {
                if !tag.is_match(t) {
                    add(
                        &format!("spec.tailscale.tags[{i}]"),
                        format!("{t:?} is not a Tailscale tag (tag:name)"),
                    );
                }
            }
        }
        None => {}
    }

    if p.is_empty() {
        Ok(())
    } else {
        Err(Problems(p))
    }
}

/// What the cluster already has for an Assistant, for rules about change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviousState {
    pub requested_storage: Option<String>,
    pub storage_class_name: Option<String>,
    /// The snapshot `spec.storage.restoreFrom` names, read while the volume to be made from
    /// it does not exist yet; `None` when not looked up (the volume exists: the snapshot is
    /// history and may be pruned).
    pub restore_source: Option<RestoreSource>,
}

/// What the cluster says about the snapshot a volume is to be restored from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSource {
    /// The VolumeSnapshot API is not installed.
    ApiUnavailable,
    NotFound,
    /// It exists: `ready` from status.readyToUse, `error` from status.error.message,
    /// `restore_size` from status.restoreSize.
    Found {
        ready: bool,
        error: Option<String>,
        restore_size: Option<String>,
    },
}

/// Field of every problem about the restore source that waiting may fix (missing, not ready,
/// failed, no API): the operator reports them as `RestoreSourceNotReady`, not `InvalidSpec`.
pub const RESTORE_SOURCE_FIELD: &str = "spec.storage.restoreFrom";

/// `spec.storage.restoreFrom`: a snapshot name, not together with adopting a retained
/// volume, and (with what the cluster says about it) a snapshot that exists, is ready, did
/// not fail and fits the requested size.
fn check_restore(
    assistant: &Assistant,
    config: &OperatorConfig,
    restore: &RestoreFrom,
    previous: Option<&PreviousState>,
    add: &mut impl FnMut(&str, String),
) {
    let name = &restore.volume_snapshot_name;
    if name.len() > MAX_NAME_LEN || !re(DNS_SUBDOMAIN_PATTERN).is_match(name) {
        add(
            "spec.storage.restoreFrom.volumeSnapshotName",
            format!(
                "{name:?} is not a VolumeSnapshot name (lowercase letters, digits, '-', '.', at most 253)"
            ),
        );
        return;
    }
    let storage = assistant.storage();
    if storage.adopt_retained_volume.is_some() {
        add(
            "spec.storage",
            "choose one: adopt a retained volume (adoptRetainedVolume) or restore from a snapshot (restoreFrom)".into(),
        );
    }
    let snapshot = match assistant.metadata.namespace.as_deref() {
        Some(ns) => format!("VolumeSnapshot {ns}/{name}"),
        None => format!("VolumeSnapshot {name}"),
    };
    // Problems waiting may fix go on RESTORE_SOURCE_FIELD (reported as RestoreSourceNotReady).
    match previous.and_then(|p| p.restore_source.as_ref()) {
        None => {}
        Some(RestoreSource::ApiUnavailable) => add(
            RESTORE_SOURCE_FIELD,
            "the cluster has no VolumeSnapshot API (install the CSI snapshot CRDs and controller)"
                .into(),
        ),
        Some(RestoreSource::NotFound) => {
            add(RESTORE_SOURCE_FIELD, format!("{snapshot} does not exist"))
        }
        Some(RestoreSource::Found {
            ready,
            error,
            restore_size,
        }) => {
            if let Some(error) = error.as_deref().filter(|_| !ready) {
                add(RESTORE_SOURCE_FIELD, format!("{snapshot} failed: {error}"));
            } else if !ready {
                add(
                    RESTORE_SOURCE_FIELD,
                    format!("{snapshot} is not ready to use yet"),
                );
            }
            let requested = storage.size.clone().or_else(|| {
                config
                    .plan(assistant.spec.plan.as_deref())
                    .map(|(_, p)| p.storage_size.0.clone())
            });
            if let (Some(requested), Some(restore_size)) = (requested, restore_size.as_deref())
                && let (Some(want), Some(need)) =
                    (quantity::parse(&requested), quantity::parse(restore_size))
                && want < need
            {
                // Without spec.storage.size the plan's size would be requested: the claim
                // cannot be sized from the snapshot here (the source is read only until the
                // claim exists, so the size would change under it), so say what to set.
                let message = if storage.size.is_some() {
                    format!("{requested} is smaller than the snapshot's restoreSize {restore_size}")
                } else {
                    format!(
                        "not set, and the plan's size {requested} is smaller than the snapshot's restoreSize {restore_size}; set spec.storage.size to at least {restore_size}"
                    )
                };
                add("spec.storage.size", message);
            }
        }
    }
}

/// `spec.backup`: the schedule and zone parse (the same parser as the operator config's),
/// and the keep counts are in the schema's range.
fn check_backup(
    assistant: &Assistant,
    config: &OperatorConfig,
    add: &mut impl FnMut(&str, String),
) {
    let backup = assistant.backup();
    let plan = config
        .plan(assistant.spec.plan.as_deref())
        .and_then(|(_, p)| p.backup.as_ref());
    let zone_ok = |z: &str| jiff::tz::TimeZone::get(z).is_ok();
    if let Some(zone) = &backup.time_zone
        && !zone_ok(zone)
    {
        add(
            "spec.backup.timeZone",
            ScheduleError::TimeZone { name: zone.clone() }.to_string(),
        );
    }
    if let Some(expr) = &backup.schedule {
        // The zone the schedule runs in decides the at-most-hourly check across DST.
        let zone = [
            backup.time_zone.as_deref(),
            plan.and_then(|p| p.time_zone.as_deref()),
            Some(config.backups.time_zone.as_str()),
        ]
        .into_iter()
        .flatten()
        .find(|z| zone_ok(z))
        .unwrap_or("UTC");
        if let Err(e) = parse_schedule(expr, zone) {
            add("spec.backup.schedule", e.to_string());
        }
    }
    if let Some(keep) = &backup.keep {
        for (field, value, max) in [("daily", keep.daily, 366), ("weekly", keep.weekly, 520)] {
            if value.is_some_and(|v| v > max) {
                add(
                    &format!("spec.backup.keep.{field}"),
                    format!("must be at most {max}"),
                );
            }
        }
    }
}

fn check_resources(
    res: &k8s_openapi::api::core::v1::ResourceRequirements,
    add: &mut impl FnMut(&str, String),
) {
    for (kind, map) in [("requests", &res.requests), ("limits", &res.limits)] {
        for (name, q) in map.iter().flatten() {
            if quantity::parse(&q.0).is_none() {
                add(
                    &format!("spec.resources.{kind}.{name}"),
                    format!("{:?} is not a Kubernetes quantity", q.0),
                );
            }
        }
    }
    if let (Some(req), Some(lim)) = (&res.requests, &res.limits) {
        for (name, r) in req {
            if let (Some(rv), Some(lv)) = (
                quantity::parse(&r.0),
                lim.get(name).and_then(|l| quantity::parse(&l.0)),
            ) && rv > lv
            {
                add(
                    &format!("spec.resources.requests.{name}"),
                    format!("{} is above its limit {}", r.0, lim[name].0),
                );
            }
        }
    }
}

/// The tag of an image reference, if it has one (a digest is not a tag).
/// A calendar day, as the caller's clock sees it (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl CivilDate {
    /// Days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's `days_from_civil`).
    fn days(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

impl std::fmt::Display for CivilDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// How far past today a release may be dated: time zones, clock skew, a tag cut early.
pub const RELEASE_DATE_MARGIN_DAYS: i64 = 7;

/// An openclaw release: calendar-versioned `YYYY.M.D`, optionally `-N` (a second release
/// that day) or `-beta.N` (a pre-release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseVersion {
    pub date: CivilDate,
    pub suffix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseVersionError {
    #[error("{0:?} is not a pinned openclaw release like 2026.9.6 (YYYY.M.D, optionally -N)")]
    Malformed(String),
    #[error("{0:?} has month {1}; openclaw releases are dated YYYY.M.D with a month from 1 to 12")]
    Month(String, u32),
    #[error("{0:?} has day {1}; openclaw releases are dated YYYY.M.D with a day from 1 to 31")]
    Day(String, u32),
    #[error(
        "{0:?} would be released on {1}, after today ({2}); openclaw releases are dated by their release day, so check the version"
    )]
    Future(String, CivilDate, CivilDate),
}

impl ReleaseVersion {
    /// Parses and checks plausibility; with `today`, refuses a date after today plus
    /// [`RELEASE_DATE_MARGIN_DAYS`].
    pub fn parse(v: &str, today: Option<CivilDate>) -> Result<Self, ReleaseVersionError> {
        let malformed = || ReleaseVersionError::Malformed(v.to_string());
        let (core, suffix) = match v.split_once('-') {
            Some((c, s)) if !s.is_empty() => (c, Some(s.to_string())),
            Some(_) => return Err(malformed()),
            None => (v, None),
        };
        let mut parts = core.split('.');
        let mut num = || -> Result<u32, ReleaseVersionError> {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .ok_or_else(malformed)
        };
        let (year, month, day) = (num()?, num()?, num()?);
        if parts.next().is_some() {
            return Err(malformed());
        }
        if !(1..=12).contains(&month) {
            return Err(ReleaseVersionError::Month(v.to_string(), month));
        }
        if !(1..=31).contains(&day) {
            return Err(ReleaseVersionError::Day(v.to_string(), day));
        }
        let date = CivilDate {
            year: year as i32,
            month,
            day,
        };
        if let Some(today) = today
            && date.days() > today.days() + RELEASE_DATE_MARGIN_DAYS
        {
            return Err(ReleaseVersionError::Future(v.to_string(), date, today));
        }
        Ok(Self { date, suffix })
    }

    /// Release order: by date; on one day a pre-release (`-beta.1`) comes before the plain
    /// release, and numbered re-releases (`-2`) after it.
    pub fn cmp_release(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn rank(s: &Option<String>) -> (i8, u64, &str) {
            match s.as_deref() {
                None => (0, 0, ""),
                Some(s) => match s.parse::<u64>() {
                    Ok(n) => (1, n, ""),
                    Err(_) => (-1, 0, s),
                },
            }
        }
        match self.date.cmp(&other.date) {
            Ordering::Equal => rank(&self.suffix).cmp(&rank(&other.suffix)),
            o => o,
        }
    }
}

pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    const TODAY: CivilDate = CivilDate {
        year: 2026,
        month: 12,
        day: 3,
    };

    #[test]
    fn release_versions_must_be_plausible_dates() {
        let ok = |v: &str| ReleaseVersion::parse(v, Some(TODAY));
        assert!(ok("2026.9.6").is_ok());
        assert!(ok("2026.1.24-2").is_ok());
        assert!(ok("2026.12.10").is_ok(), "within the margin");
        assert!(matches!(
            ok("2026.13.1"),
            Err(ReleaseVersionError::Month(..))
        ));
        assert!(matches!(
            ok("2026.0.1"),
            Err(ReleaseVersionError::Month(..))
        ));
        assert!(matches!(ok("2026.1.32"), Err(ReleaseVersionError::Day(..))));
        assert!(matches!(
            ok("9999.1.1"),
            Err(ReleaseVersionError::Future(..))
        ));
        assert!(matches!(
            ok("2026.12.11"),
            Err(ReleaseVersionError::Future(..))
        ));
        assert!(matches!(
            ok("2026.1"),
            Err(ReleaseVersionError::Malformed(..))
        ));
        assert!(matches!(
            ok("2026.1.1-"),
            Err(ReleaseVersionError::Malformed(..))
        ));
        // Without a clock only the calendar is checked.
        assert!(ReleaseVersion::parse("9999.1.1", None).is_ok());
        let msg = ok("9999.1.1").unwrap_err().to_string();
        assert!(
            msg.contains("9999-01-01") && msg.contains("2026-12-03"),
            "{msg}"
        );
    }

    #[test]
    fn release_order_by_date_then_suffix() {
        let v = |s: &str| ReleaseVersion::parse(s, None).unwrap();
        assert_eq!(v("2026.9.6").cmp_release(&v("2026.10.1")), Ordering::Less);
        assert_eq!(v("2026.9.6").cmp_release(&v("2026.9.6-2")), Ordering::Less);
        assert_eq!(
            v("2026.9.6-beta.1").cmp_release(&v("2026.9.6")),
            Ordering::Less
        );
        assert_eq!(
            v("2026.9.10").cmp_release(&v("2026.9.9")),
            Ordering::Greater
        );
        assert_eq!(v("2026.09.06").cmp_release(&v("2026.9.6")), Ordering::Equal);
    }

    #[test]
    fn validate_at_refuses_future_versions() {
        let mut a = assistant("alice");
        a.spec.gateway = Some(GatewaySpec {
            version: Some("9999.1.1".into()),
            ..Default::default()
        });
        assert!(
            validate(&a, &config(), None).is_ok(),
            "no clock, no date check"
        );
        let p = validate_at(&a, &config(), None, Some(TODAY)).unwrap_err();
        assert_eq!(p.0.len(), 1, "{p:?}");
        assert_eq!(p.0[0].field, "spec.gateway.version");
    }
    use super::*;
    use crate::testing::{assistant, config};

    fn problems(a: &Assistant) -> Vec<String> {
        match validate(a, &config(), None) {
            Ok(()) => vec![],
            Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn valid_minimal_assistant_passes() {
        assert_eq!(problems(&assistant("alice")), Vec::<String>::new());
    }

    #[test]
    fn email_rule_admits_international_addresses_and_refuses_markup() {
        for ok in [
            "ops@nordlicht.example",
            "zoë@exämple.org",
            "a.b+c@sub.example.co",
            "山田@例え.jp",
        ] {
            assert!(is_email(ok), "{ok} refused");
        }
        for bad in [
            "\"><svg/onload=alert(1)>@x.com",
            "a b@x.com",
            "a\u{00A0}b@x.com",
            "a\u{202E}b@x.com",
            "a@localhost",
            "a..b@x.com",
            "<a@x.com>",
        ] {
            assert!(!is_email(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_markup_in_email_and_bidi_in_owner_name() {
        for bad in [
            "\"><svg/onload=alert(1)>@x.com",
            "a<b@x.com",
            "a b@x.com",
            "a@x",
            "a@-x.com",
            "a@x..com",
            ".a@x.com",
            "a..b@x.com",
            "a@x.com>",
            "a@x_y.com",
        ] {
            let mut a = assistant("alice");
            a.spec.owner.email = bad.into();
            let p = problems(&a);
            assert!(
                p.iter().any(|m| m.starts_with("spec.owner.email")),
                "{bad}: {p:?}"
            );
        }
        for good in [
            "alice@example.com",
            "o'brien+tag@mail.example.co.uk",
            "a.b-c@x-y.io",
            "A_B@X.COM",
        ] {
            let mut a = assistant("alice");
            a.spec.owner.email = good.into();
            let p = problems(&a);
            assert!(
                !p.iter().any(|m| m.starts_with("spec.owner.email")),
                "{good}: {p:?}"
            );
        }
        let mut a = assistant("alice");
        a.spec.owner.name = "Acme \u{202E}lagel".into();
        let p = problems(&a);
        assert!(p.iter().any(|m| m.starts_with("spec.owner.name")), "{p:?}");
    }

    #[test]
    fn rejects_bad_email_and_empty_owner() {
        let mut a = assistant("alice");
        a.spec.owner.email = "not-an-email".into();
        a.spec.owner.name = "  ".into();
        let p = problems(&a);
        assert!(p.iter().any(|m| m.starts_with("spec.owner.email")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.starts_with("spec.owner.name: is required")),
            "{p:?}"
        );
    }

    #[test]
    fn accepts_unicode_owner_names() {
        let mut a = assistant("alice");
        a.spec.owner.name = "Zoë Łukasiewicz 山田 🦀".into();
        assert!(problems(&a).is_empty());
    }

    #[test]
    fn rejects_unknown_plan() {
        let mut a = assistant("alice");
        a.spec.plan = Some("platinum".into());
        let p = problems(&a);
        assert!(p[0].contains("plan \"platinum\" does not exist"), "{p:?}");
    }

    #[test]
    fn rejects_floating_versions_and_latest_images() {
        for v in ["latest", "stable", "2026", "v2026.9.6", "2026.9"] {
            let mut a = assistant("alice");
            a.spec.gateway = Some(GatewaySpec {
                version: Some(v.into()),
                ..Default::default()
            });
            assert!(
                problems(&a)
                    .iter()
                    .any(|m| m.starts_with("spec.gateway.version")),
                "{v} accepted"
            );
        }
        let mut a = assistant("alice");
        a.spec.gateway = Some(GatewaySpec {
            version: Some("2026.9.6".into()),
            image: Some("registry.example.com/gw:latest".into()),
            ..Default::default()
        });
        let p = problems(&a);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("floating tag latest"));
        // A registry port is not a tag.
        assert_eq!(image_tag("registry.example.com:5000/gw"), None);
        assert_eq!(image_tag("gw:1.2@sha256:abc"), Some("1.2"));
    }

    #[test]
    fn rejects_every_operator_owned_config_key_by_name() {
        for key in OPERATOR_OWNED_CONFIG_KEYS {
            let (head, leaf) = key.split_once('.').unwrap();
            let cfg = serde_json::json!({ head: { leaf: "x" } });
            let mut a = assistant("alice");
            a.spec.gateway = Some(GatewaySpec {
                config: cfg.as_object().cloned(),
                ..Default::default()
            });
            let p = problems(&a);
            assert_eq!(
                p,
                vec![format!(
                    "spec.gateway.config.{key}: is managed by the operator and cannot be set by the client"
                )]
            );
        }
    }

    #[test]
    fn rejects_operator_env_literal_secrets_and_duplicates() {
        use k8s_openapi::api::core::v1::EnvVar;
        let env = |n: &str, v: &str| EnvVar {
            name: n.into(),
            value: Some(v.into()),
            ..Default::default()
        };
        let mut a = assistant("alice");
        a.spec.gateway = Some(GatewaySpec {
            env: vec![
                env("OPENCLAW_GATEWAY_TOKEN", "x"),
                env("ANTHROPIC_API_KEY", "sk-ant-123"),
                env("LOG_FORMAT", "json"),
                env("LOG_FORMAT", "text"),
            ],
            ..Default::default()
        });
        let p = problems(&a);
        assert!(
            p.iter()
                .any(|m| m.contains("OPENCLAW_GATEWAY_TOKEN is set by the operator")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("ANTHROPIC_API_KEY looks like a credential")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("LOG_FORMAT is listed twice")),
            "{p:?}"
        );
        // The secret value itself never appears in a message.
        assert!(!p.iter().any(|m| m.contains("sk-ant-123")));
    }

    #[test]
    fn storage_rules() {
        let mut a = assistant("alice");
        a.spec.storage = Some(StorageSpec {
            size: Some("ten gigs".into()),
            ..Default::default()
        });
        assert!(problems(&a)[0].contains("is not a Kubernetes quantity"));

        a.spec.storage = Some(StorageSpec {
            size: Some("5Gi".into()),
            storage_class_name: Some("fast".into()),
            ..Default::default()
        });
        let prev = PreviousState {
            requested_storage: Some("10Gi".into()),
            storage_class_name: Some("slow".into()),
            ..Default::default()
        };
        let p = validate(&a, &config(), Some(&prev))
            .unwrap_err()
            .to_string();
        assert!(
            p.contains("never shrink: the volume already requests 10Gi"),
            "{p}"
        );
        assert!(p.contains("storageClassName: is immutable"), "{p}");

        a.spec.storage = Some(StorageSpec {
            size: Some("20Gi".into()),
            storage_class_name: Some("slow".into()),
            ..Default::default()
        });
        assert!(validate(&a, &config(), Some(&prev)).is_ok());
    }

    #[test]
    fn tailscale_required_without_oauth_and_checked() {
        let mut a = assistant("alice");
        a.spec.tailscale = None;
        assert!(problems(&a)[0].starts_with("spec.tailscale: is required"));

        let mut cfg = config();
        cfg.tailscale.oauth = Some(crate::config::TailscaleOAuth {
            client_id_file: "/x".into(),
            client_secret_file: "/y".into(),
            tailnet: "-".into(),
            api_url: "https://api.tailscale.com".into(),
        });
        assert!(validate(&a, &cfg, None).is_ok());

        let mut a = assistant("alice");
        let ts = a.spec.tailscale.as_mut().unwrap();
        ts.hostname = Some("Not_A_Label".into());
        ts.tags = vec!["tag:ok".into(), "prod".into()];
        let p = problems(&a);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("spec.tailscale.hostname"));
        assert!(p[1].starts_with("spec.tailscale.tags[1]"));
    }

    #[test]
    fn resource_requests_above_limits_are_refused() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mut a = assistant("alice");
        a.spec.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some([("memory".to_string(), Quantity("4Gi".into()))].into()),
            limits: Some([("memory".to_string(), Quantity("2Gi".into()))].into()),
            ..Default::default()
        });
        assert_eq!(
            problems(&a),
            vec!["spec.resources.requests.memory: 4Gi is above its limit 2Gi".to_string()]
        );
    }

    fn with_restore(snapshot: &str) -> Assistant {
        let mut a = assistant("alice");
        a.spec.storage = Some(StorageSpec {
            restore_from: Some(RestoreFrom {
                volume_snapshot_name: snapshot.into(),
            }),
            ..Default::default()
        });
        a
    }

    fn with_source(source: RestoreSource) -> PreviousState {
        PreviousState {
            restore_source: Some(source),
            ..Default::default()
        }
    }

    fn problems_with(a: &Assistant, prev: &PreviousState) -> Vec<String> {
        match validate(a, &config(), Some(prev)) {
            Ok(()) => vec![],
            Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn restore_source_problems_name_the_snapshot_on_the_restore_field() {
        let a = with_restore("alice-20261203-030000-scheduled");
        let snap = "VolumeSnapshot clients/alice-20261203-030000-scheduled";
        assert_eq!(problems(&a), Vec::<String>::new(), "offline: not looked up");
        assert_eq!(
            problems_with(&a, &with_source(RestoreSource::NotFound)),
            [format!("spec.storage.restoreFrom: {snap} does not exist")]
        );
        let pending = RestoreSource::Found {
            ready: false,
            error: None,
            restore_size: None,
        };
        assert_eq!(
            problems_with(&a, &with_source(pending)),
            [format!(
                "spec.storage.restoreFrom: {snap} is not ready to use yet"
            )]
        );
        let failed = RestoreSource::Found {
            ready: false,
            error: Some("snapshot content deleted".into()),
            restore_size: None,
        };
        assert_eq!(
            problems_with(&a, &with_source(failed)),
            [format!(
                "spec.storage.restoreFrom: {snap} failed: snapshot content deleted"
            )]
        );
        assert_eq!(
            problems_with(&a, &with_source(RestoreSource::ApiUnavailable)),
            [
                "spec.storage.restoreFrom: the cluster has no VolumeSnapshot API (install the CSI snapshot CRDs and controller)"
            ]
        );
        let ready = RestoreSource::Found {
            ready: true,
            error: None,
            restore_size: Some("8Gi".into()),
        };
        assert_eq!(
            problems_with(&a, &with_source(ready.clone())),
            Vec::<String>::new()
        );
        // Every problem waiting may fix is on the one field the operator maps to
        // RestoreSourceNotReady.
        let p = validate(&a, &config(), Some(&with_source(RestoreSource::NotFound))).unwrap_err();
        assert!(p.0.iter().all(|p| p.field == RESTORE_SOURCE_FIELD));
    }

    #[test]
    fn a_volume_smaller_than_the_snapshot_is_refused() {
        let mut a = with_restore("alice-20261203-030000-scheduled");
        let big = with_source(RestoreSource::Found {
            ready: true,
            error: None,
            restore_size: Some("8Gi".into()),
        });
        a.spec.plan = Some("small".into());
        assert_eq!(
            problems_with(&a, &big),
            [
                "spec.storage.size: not set, and the plan's size 5Gi is smaller than the snapshot's restoreSize 8Gi; set spec.storage.size to at least 8Gi"
            ],
            "the plan's size"
        );
        a.spec.storage.as_mut().unwrap().size = Some("8Gi".into());
        assert_eq!(problems_with(&a, &big), Vec::<String>::new());
        a.spec.storage.as_mut().unwrap().size = Some("7.5Gi".into());
        assert_eq!(
            problems_with(&a, &big),
            ["spec.storage.size: 7.5Gi is smaller than the snapshot's restoreSize 8Gi"]
        );
    }

    #[test]
    fn restore_and_adopt_together_are_refused() {
        let mut a = with_restore("alice-20261203-030000-scheduled");
        a.spec.storage.as_mut().unwrap().adopt_retained_volume = Some("some-uid".into());
        assert_eq!(
            problems(&a),
            [
                "spec.storage: choose one: adopt a retained volume (adoptRetainedVolume) or restore from a snapshot (restoreFrom)"
            ]
        );
        let bad = with_restore("Alice_Snapshot");
        assert!(
            problems(&bad)[0].starts_with(
                "spec.storage.restoreFrom.volumeSnapshotName: \"Alice_Snapshot\" is not a VolumeSnapshot name"
            ),
            "{:?}",
            problems(&bad)
        );
    }

    #[test]
    fn backup_schedule_zone_and_keep_are_checked() {
        let mut a = assistant("alice");
        a.spec.backup = Some(BackupSpec {
            schedule: Some("*/5 * * * *".into()),
            time_zone: Some("Mars/Olympus".into()),
            keep: Some(BackupKeep {
                daily: Some(400),
                weekly: Some(8),
            }),
            ..Default::default()
        });
        assert_eq!(
            problems(&a),
            [
                "spec.backup.timeZone: \"Mars/Olympus\" is not an IANA time zone (e.g. Europe/Stockholm, UTC)",
                "spec.backup.schedule: \"*/5 * * * *\" runs more often than hourly (every 5 minutes); snapshots are at most hourly",
                "spec.backup.keep.daily: must be at most 366",
            ]
        );
        a.spec.backup = Some(BackupSpec {
            schedule: Some("0 3 * *".into()),
            ..Default::default()
        });
        let p = problems(&a);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "spec.backup.schedule: \"0 3 * *\" is not a cron expression (5 fields"
            ),
            "{p:?}"
        );
        a.spec.backup = Some(BackupSpec {
            enabled: Some(true),
            schedule: Some("30 2 * * 1-5".into()),
            time_zone: Some("Europe/Stockholm".into()),
            keep: Some(BackupKeep {
                daily: Some(0),
                weekly: Some(0),
            }),
        });
        assert_eq!(problems(&a), Vec::<String>::new());
        // The operator's kill switch does not make `enabled: true` an error.
        let mut cfg = config();
        cfg.backups.enabled = false;
        assert!(validate(&a, &cfg, None).is_ok());
    }

    /// The CRD's CEL rules, evaluated by kube's client-side CEL engine.
    #[test]
    fn crd_cel_rules_enforce_immutability_and_growth() {
        let old =
            serde_json::json!({"size": "10Gi", "storageClassName": "fast", "onDelete": "Retain"});
        let grow =
            serde_json::json!({"size": "20Gi", "storageClassName": "fast", "onDelete": "Retain"});
        let shrink =
            serde_json::json!({"size": "5Gi", "storageClassName": "fast", "onDelete": "Retain"});
        let reclass =
            serde_json::json!({"size": "10Gi", "storageClassName": "slow", "onDelete": "Retain"});
        assert!(StorageSpec::validate_cel(&grow, Some(&old)).is_ok());
        let e = format!(
            "{:?}",
            StorageSpec::validate_cel(&shrink, Some(&old)).unwrap_err()
        );
        assert!(e.contains("never shrink"), "{e}");
        let e = format!(
            "{:?}",
            StorageSpec::validate_cel(&reclass, Some(&old)).unwrap_err()
        );
        assert!(e.contains("immutable"), "{e}");
        // Creation: transition rules do not apply.
        assert!(StorageSpec::validate_cel(&shrink, None).is_ok());
    }

    /// The spec-root CEL rules of restoreFrom (they span storage and suspended), evaluated
    /// by kube's client-side CEL engine.
    #[test]
    fn crd_cel_rules_guard_restore_from() {
        let spec = |restore: Option<&str>, suspended: Option<bool>| {
            let mut v = serde_json::json!({"owner": {"name": "Alice", "email": "a@example.com"}});
            if let Some(r) = restore {
                v["storage"] = serde_json::json!({"restoreFrom": {"volumeSnapshotName": r}});
            }
            if let Some(s) = suspended {
                v["suspended"] = s.into();
            }
            v
        };
        let cel = |new: &serde_json::Value, old: Option<&serde_json::Value>| {
            AssistantSpec::validate_cel(new, old).map_err(|e| format!("{e:?}"))
        };
        let running = spec(None, None);
        let restored = spec(Some("snap-a"), None);
        // Creating an Assistant from a snapshot, running: no transition rules on create.
        assert!(cel(&restored, None).is_ok());
        // Unchanged: fine, suspended or not.
        assert!(cel(&restored, Some(&restored)).is_ok());
        assert!(cel(&running, Some(&running)).is_ok());
        // Set (or changed) together with suspended: true is the in-place restore.
        assert!(cel(&spec(Some("snap-a"), Some(true)), Some(&running)).is_ok());
        assert!(cel(&spec(Some("snap-b"), Some(true)), Some(&restored)).is_ok());
        // Set or changed without suspending: refused.
        for (new, old) in [
            (spec(Some("snap-a"), None), &running),
            (spec(Some("snap-a"), Some(false)), &running),
            (spec(Some("snap-b"), None), &restored),
        ] {
            let e = cel(&new, Some(old)).unwrap_err();
            assert!(
                e.contains("only together with suspended: true (in-place restore)"),
                "{e}"
            );
        }
        // Removal: refused, even while suspended.
        let e = cel(&spec(None, Some(true)), Some(&restored)).unwrap_err();
        assert!(
            e.contains("storage.restoreFrom cannot be removed once set"),
            "{e}"
        );
        let mut other_storage = spec(None, None);
        other_storage["storage"] = serde_json::json!({"size": "20Gi"});
        let e = cel(&other_storage, Some(&restored)).unwrap_err();
        assert!(e.contains("cannot be removed once set"), "{e}");
    }
}
