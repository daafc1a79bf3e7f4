//! The API server's audit log (`--audit-log-format=json`, policy level `Metadata`), parsed.

use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

/// One audit event (one JSON line of the audit log), the fields tests count by.
///
/// Only `ResponseComplete` events are returned by
/// [`ControlPlane::audit_events`](crate::ControlPlane::audit_events).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Unique id of the request (`auditID`).
    #[serde(default, rename = "auditID")]
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted`, `ResponseComplete` or `Panic`.
    pub stage: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, ...
    pub verb: String,
    /// The authenticated user.
    pub user: AuditUser,
    /// The request path and query, e.g. `/api/v1/namespaces/a/configmaps?dryRun=All`.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The client's User-Agent header.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The object the request is about (absent for non-resource URLs like `/readyz`).
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    /// The HTTP status of the response.
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    /// When the API server received the request (RFC 3339, microseconds, UTC).
    pub request_received_timestamp: String,
    /// When this stage was reached (RFC 3339, microseconds, UTC).
    #[serde(default)]
    pub stage_timestamp: String,
}

/// `user` of an [`AuditEvent`].
#[derive(Debug, Clone, Deserialize)]
pub struct AuditUser {
    /// `admin`, `clawhost-operator`, `system:serviceaccount:ns:name`, ...
    pub username: String,
    /// Groups of the user.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `objectRef` of an [`AuditEvent`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Plural resource name, e.g. `configmaps`, `assistants`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Namespace (None for cluster-scoped resources and cluster-wide lists).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name (None for lists and for creates with `generateName`).
    #[serde(default)]
    pub name: Option<String>,
    /// API group (None for the core group).
    #[serde(default)]
    pub api_group: Option<String>,
    /// API version, e.g. `v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Subresource, e.g. `status`.
    #[serde(default)]
    pub subresource: Option<String>,
}

/// `responseStatus` of an [`AuditEvent`].
#[derive(Debug, Clone, Deserialize)]
pub struct ResponseStatus {
    /// HTTP status code (0 when the API server did not record one).
    #[serde(default)]
    pub code: i32,
}

const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

impl AuditEvent {
    /// A mutating request that was not a dry run: verb `create`, `update`, `patch`, `delete`
    /// or `deletecollection` and no `dryRun=All` in the request URI. Failed writes (4xx)
    /// count too; check [`AuditEvent::code`] when that matters.
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str()) && !self.is_dry_run()
    }

    /// The request carried `dryRun=All`.
    pub fn is_dry_run(&self) -> bool {
        self.request_uri
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "dryRun=All"))
    }

    /// The HTTP response code, when recorded.
    pub fn code(&self) -> Option<i32> {
        self.response_status
            .as_ref()
            .map(|s| s.code)
            .filter(|c| *c != 0)
    }

    /// `objectRef.resource`, or "" when absent.
    pub fn resource(&self) -> &str {
        self.object_ref
            .as_ref()
            .and_then(|o| o.resource.as_deref())
            .unwrap_or("")
    }

    /// `objectRef.name`, or "" when absent.
    pub fn name(&self) -> &str {
        self.object_ref
            .as_ref()
            .and_then(|o| o.name.as_deref())
            .unwrap_or("")
    }

    /// `objectRef.namespace`, or "" when absent.
    pub fn namespace(&self) -> &str {
        self.object_ref
            .as_ref()
            .and_then(|o| o.namespace.as_deref())
            .unwrap_or("")
    }

    /// `objectRef.subresource`, or "" when absent.
    pub fn subresource(&self) -> &str {
        self.object_ref
            .as_ref()
            .and_then(|o| o.subresource.as_deref())
            .unwrap_or("")
    }

    /// `requestReceivedTimestamp` as a [`SystemTime`] (None if unparsable).
    pub fn received_at(&self) -> Option<SystemTime> {
        self.request_received_timestamp
            .parse::<jiff::Timestamp>()
            .ok()
            .map(SystemTime::from)
    }
}

/// Writes ([`AuditEvent::is_write`]) made by `user`.
pub fn writes_by<'a>(
    events: &'a [AuditEvent],
    user: &str,
) -> impl Iterator<Item = &'a AuditEvent> + use<'a> {
    let user = user.to_owned();
    events
        .iter()
        .filter(move |e| e.user.username == user && e.is_write())
}

/// Writes made by `user` whose request the API server received at or after `since`
/// (take `SystemTime::now()` before the phase to count; same host, same clock).
pub fn writes_by_since<'a>(
    events: &'a [AuditEvent],
    user: &str,
    since: SystemTime,
) -> impl Iterator<Item = &'a AuditEvent> + use<'a> {
    writes_by(events, user).filter(move |e| e.received_at().is_some_and(|t| t >= since))
}

/// Parses an audit log: one JSON event per line; unparsable lines (a partially written
/// last line) are skipped; only `ResponseComplete` events are kept.
pub(crate) fn parse_audit_log(path: &Path) -> Vec<AuditEvent> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.stage == "ResponseComplete")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"4f0c","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps?dryRun=All\u0026fieldManager=x","verb":"create","user":{"username":"admin","uid":"1","groups":["system:masters","system:authenticated"]},"sourceIPs":["127.0.0.1"],"userAgent":"kube","objectRef":{"resource":"configmaps","namespace":"default","name":"a","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-01-02T03:04:05.123456Z","stageTimestamp":"2026-01-02T03:04:05.130000Z"}"#;

    #[test]
    fn parses_and_classifies() {
        let e: AuditEvent = serde_json::from_str(LINE).unwrap();
        assert_eq!(e.verb, "create");
        assert_eq!(e.user.username, "admin");
        assert_eq!(e.code(), Some(201));
        assert_eq!(e.resource(), "configmaps");
        assert_eq!(e.name(), "a");
        assert!(e.object_ref.as_ref().unwrap().api_group.is_none());
        assert!(e.is_dry_run());
        assert!(!e.is_write());
        assert!(e.received_at().is_some());
        let events = [e.clone()];
        assert_eq!(writes_by(&events, "admin").count(), 0);
    }

    #[test]
    fn skips_partial_lines_and_other_stages() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let real = LINE.replace("dryRun=All\\u0026", "");
        let started = real.replace("ResponseComplete", "ResponseStarted");
        let partial = &real[..real.len() / 2];
        std::fs::write(&p, format!("{real}\n{started}\n{partial}")).unwrap();
        let events = parse_audit_log(&p);
        assert_eq!(events.len(), 1);
        assert!(events[0].is_write());
        assert_eq!(writes_by(&events, "admin").count(), 1);
        assert_eq!(writes_by(&events, "bob").count(), 0);
        let t = events[0].received_at().unwrap();
        assert_eq!(writes_by_since(&events, "admin", t).count(), 1);
        assert_eq!(
            writes_by_since(&events, "admin", t + std::time::Duration::from_micros(1)).count(),
            0
        );
    }
}
