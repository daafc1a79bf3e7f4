//! How the client reaches their assistant: the Tailscale device-share invite the operator
//! sends them (`status.access`) and the requests an admin makes about it (resend, revoke,
//! a new invite) through one annotation, so `kubectl annotate` and the console act alike.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation an admin (or the console) sets to act on the client's invite:
/// `resend:<id>`, `revoke:<id>` or `reinvite:<id>`, where `<id>` is anything new (a time).
/// The operator acts once per value and records it in `status.access.handledRequest`.
pub const ACCESS_REQUEST_ANNOTATION: &str = "clawhost.dev/access-request";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum AccessState {
    /// The operator has no invite credential: the device is shared by hand
    /// (docs/onboarding.md); nothing is automated.
    #[default]
    Manual,
    /// Waiting: for the device to join the tailnet, or for the Tailscale API (see message).
    Pending,
    /// The invite exists and was e-mailed to the client; not accepted yet.
    Sent,
    /// The client accepted the invite: the device is shared into their tailnet.
    Accepted,
    /// An admin revoked the invite; no new one is sent until asked (`reinvite:`).
    Revoked,
}

impl AccessState {
    pub const ALL: [AccessState; 5] = [
        AccessState::Manual,
        AccessState::Pending,
        AccessState::Sent,
        AccessState::Accepted,
        AccessState::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessState::Manual => "Manual",
            AccessState::Pending => "Pending",
            AccessState::Sent => "Sent",
            AccessState::Accepted => "Accepted",
            AccessState::Revoked => "Revoked",
        }
    }
}

impl std::fmt::Display for AccessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client's access to their device. Never holds a credential: the invite URL (anyone
/// holding it can accept) is only present sealed with the access key the operator and the
/// console share.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessStatus {
    pub state: AccessState,
    /// Tailscale node id of the device the invite is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Tailscale id of the current invite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_id: Option<String>,
    /// E-mail address the invite was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Login of whoever accepted the invite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
    /// The invite URL, sealed (`v1.…`) with the shared access key; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_invite_url: Option<String>,
    /// When `state` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// When Tailscale last e-mailed the invite (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_time: Option<String>,
    /// The last `clawhost.dev/access-request` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_request: Option<String>,
    /// What is happening or what to do (e.g. why the Tailscale API refused the invite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessAction {
    /// Have Tailscale e-mail the open invite again.
    Resend,
    /// Delete the open invite (an accepted share stays until the device is removed).
    Revoke,
    /// Send a new invite (after a revoke, or to another address after an owner change).
    Reinvite,
}

impl AccessAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessAction::Resend => "resend",
            AccessAction::Revoke => "revoke",
            AccessAction::Reinvite => "reinvite",
        }
    }

    /// The annotation value asking for this action once (`id` must be new, e.g. a time).
    pub fn request(self, id: &str) -> String {
        format!("{}:{id}", self.as_str())
    }
}

/// The action an `clawhost.dev/access-request` value asks for; `None` when unreadable.
pub fn parse_access_request(value: &str) -> Option<AccessAction> {
    let (action, id) = value.split_once(':')?;
    if id.is_empty() {
        return None;
    }
    match action {
        "resend" => Some(AccessAction::Resend),
        "revoke" => Some(AccessAction::Revoke),
        "reinvite" => Some(AccessAction::Reinvite),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_requests_round_trip_and_refuse_garbage() {
        for a in [
            AccessAction::Resend,
            AccessAction::Revoke,
            AccessAction::Reinvite,
        ] {
            assert_eq!(
                parse_access_request(&a.request("2026-12-03T10:00:00Z")),
                Some(a)
            );
        }
        for bad in ["resend", "resend:", "delete:1", "", ":1"] {
            assert_eq!(parse_access_request(bad), None, "{bad}");
        }
    }
}
