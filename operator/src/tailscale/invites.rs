//! Tailscale device-share invites ([`DeviceInvites`]) and their HTTP client, authenticated
//! with a user-owned API access token: creating an invite acts as a person, so Tailscale
//! refuses an OAuth client's token. The token and the invite URLs (anyone holding one can
//! accept it) are never logged nor put in an error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{
    Answer, ApiCalls, CredentialFileError, Transport, json_request, read_secret_file,
};
use crate::config::{OperatorConfig, TailscaleInvites};

/// An invite URL: a credential. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InviteUrl(pub String);

impl std::fmt::Debug for InviteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteUrl(..)")
    }
}

/// Who accepted an invite.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedBy {
    #[serde(default)]
    pub id: Value,
    #[serde(default)]
    pub login_name: String,
}

/// A device invite as the Tailscale API (v2) returns it.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub id: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub multi_use: bool,
    #[serde(default)]
    pub allow_exit_node: bool,
    #[serde(default)]
    pub invite_url: Option<InviteUrl>,
    #[serde(default)]
    pub last_email_sent_at: Option<String>,
    #[serde(default)]
    pub accepted: bool,
    #[serde(default)]
    pub accepted_by: Option<AcceptedBy>,
}

/// Why an invite call failed, with what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InviteError {
    #[error(
        "the Tailscale API refused the invite credential (HTTP {status}): device invites act as a person, so tailscale.invites.apiTokenFile must hold a user-owned API access token (Tailscale admin console, Settings → Keys → Generate access token); an OAuth client's token is refused"
    )]
    CredentialRefused { status: u16 },
    #[error("the Tailscale API does not know {what} (HTTP 404)")]
    NotFound { what: String },
    #[error("the Tailscale API is rate-limiting {operation} (HTTP 429){}", retry_hint(*.retry_after))]
    RateLimited {
        operation: &'static str,
        retry_after: Option<Duration>,
    },
    #[error("the Tailscale API failed {operation} (HTTP {status}); retrying with backoff")]
    Server {
        operation: &'static str,
        status: u16,
    },
    #[error("the Tailscale API refused {operation} (HTTP {status}): {message}")]
    Refused {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("cannot reach the Tailscale API for {operation}: {reason}; retrying with backoff")]
    Transport {
        operation: &'static str,
        reason: String,
    },
    #[error(
        "cannot read the invite credential: {reason}; fix the mounted Secret (the operator reads it again on every call)"
    )]
    CredentialUnreadable { reason: String },
    #[error("unexpected answer from the Tailscale API to {operation}: {reason}")]
    BadAnswer {
        operation: &'static str,
        reason: String,
    },
}

fn retry_hint(after: Option<Duration>) -> String {
    match after {
        Some(d) => format!("; trying again in {} s", d.as_secs()),
        None => "; trying again later".into(),
    }
}

impl InviteError {
    /// How long Tailscale asked us to wait (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            InviteError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The device-invite calls the reconciler makes. The real client is [`InvitesApi`]; tests
/// point it at a stand-in server.
#[async_trait]
pub trait DeviceInvites: Send + Sync {
    /// Every invite of a device (open and accepted).
    async fn list(&self, device_id: &str) -> Result<Vec<Invite>, InviteError>;
    /// One single-use invite for `email`, without exit-node use.
    async fn create(&self, device_id: &str, email: &str) -> Result<Invite, InviteError>;
    async fn get(&self, invite_id: &str) -> Result<Invite, InviteError>;
    /// Deletes an invite; one that is gone already counts as deleted.
    async fn delete(&self, invite_id: &str) -> Result<(), InviteError>;
    /// Has Tailscale e-mail the invite again (rate-limited by Tailscale).
    async fn resend(&self, invite_id: &str) -> Result<(), InviteError>;
}

/// The invites client when the config has `tailscale.invites`; its calls are counted in
/// `calls`.
pub fn from_config(
    config: &OperatorConfig,
    calls: ApiCalls,
) -> Result<Option<Arc<dyn DeviceInvites>>, CredentialFileError> {
    config
        .tailscale
        .invites
        .as_ref()
        .map(|invites| {
            InvitesApi::new(invites, calls).map(|api| Arc::new(api) as Arc<dyn DeviceInvites>)
        })
        .transpose()
}

pub struct InvitesApi {
    base: String,
    /// Read on every call, not kept: a user-owned token expires, and a renewed Secret is
    /// updated in place in the mounted file, so the next call uses it without a restart.
    token_file: PathBuf,
    transport: Transport,
}

const TOKEN_SETTING: &str = "tailscale.invites.apiTokenFile";

impl InvitesApi {
    pub fn new(config: &TailscaleInvites, calls: ApiCalls) -> Result<Self, CredentialFileError> {
        // Read once at startup anyway, so a missing file stops the operator early.
        read_secret_file(&config.api_token_file, TOKEN_SETTING)?;
        Ok(Self {
            base: config.api_url.trim_end_matches('/').to_string(),
            token_file: config.api_token_file.clone(),
            transport: Transport::new(calls),
        })
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, InviteError> {
        let token = read_secret_file(&self.token_file, TOKEN_SETTING).map_err(|e| {
            InviteError::CredentialUnreadable {
                reason: e.to_string(),
            }
        })?;
        let req =
            json_request(method, &format!("{}{path}", self.base), &token, body).map_err(|e| {
                InviteError::BadAnswer {
                    operation,
                    reason: format!("building the request: {e}"),
                }
            })?;
        let answer = self
            .transport
            .send(operation, req)
            .await
            .map_err(|reason| InviteError::Transport { operation, reason })?;
        Ok(answer)
    }

    /// The answer's body on success, else the error it means. `what` names the object for
    /// a 404.
    fn check(operation: &'static str, what: String, a: Answer) -> Result<Value, InviteError> {
        let status = a.status;
        match status {
            s if s.is_success() => Ok(a.body),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(InviteError::CredentialRefused {
                    status: status.as_u16(),
                })
            }
            StatusCode::NOT_FOUND => Err(InviteError::NotFound { what }),
            StatusCode::TOO_MANY_REQUESTS => Err(InviteError::RateLimited {
                operation,
                retry_after: a.retry_after,
            }),
            s if s.is_server_error() => Err(InviteError::Server {
                operation,
                status: s.as_u16(),
            }),
            s => Err(InviteError::Refused {
                operation,
                status: s.as_u16(),
                // Tailscale's messages explain the refusal (e.g. a bad e-mail); they never
                // carry an invite URL, and are cut short anyway.
                message: a.body["message"]
                    .as_str()
                    .unwrap_or("no message")
                    .chars()
                    .take(200)
                    .collect(),
            }),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        operation: &'static str,
        body: Value,
    ) -> Result<T, InviteError> {
        // serde's messages quote the offending value, which can be an invite URL (a
        // credential) and would reach status and Events: name only where it went wrong.
        serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let reason = match inner.strip_prefix("missing field ") {
                // Only names the field.
                Some(field) => format!("missing field {field} at `{path}`"),
                None => format!("unexpected type or value at `{path}`"),
            };
            InviteError::BadAnswer { operation, reason }
        })
    }
}

fn device_path(device_id: &str) -> String {
    format!(
        "/api/v2/device/{}/device-invites",
        urlencoding::encode(device_id)
    )
}

fn invite_path(invite_id: &str) -> String {
    format!("/api/v2/device-invites/{}", urlencoding::encode(invite_id))
}

#[async_trait]
impl DeviceInvites for InvitesApi {
    async fn list(&self, device_id: &str) -> Result<Vec<Invite>, InviteError> {
        const OP: &str = "list_invites";
        let a = self
            .call(OP, Method::GET, &device_path(device_id), None)
            .await?;
        let body = Self::check(OP, format!("device {device_id}"), a)?;
        Self::parse(OP, body)
    }

    async fn create(&self, device_id: &str, email: &str) -> Result<Invite, InviteError> {
        const OP: &str = "create_invite";
        let body = json!([{"email": email, "multiUse": false, "allowExitNode": false}]);
        let a = self
            .call(OP, Method::POST, &device_path(device_id), Some(body))
            .await?;
        let body = Self::check(OP, format!("device {device_id}"), a)?;
        let invites: Vec<Invite> = Self::parse(OP, body)?;
        invites
            .into_iter()
            .next()
            .ok_or_else(|| InviteError::BadAnswer {
                operation: OP,
                reason: "no invite in the answer".into(),
            })
    }

    async fn get(&self, invite_id: &str) -> Result<Invite, InviteError> {
        const OP: &str = "get_invite";
        let a = self
            .call(OP, Method::GET, &invite_path(invite_id), None)
            .await?;
        let body = Self::check(OP, format!("invite {invite_id}"), a)?;
        Self::parse(OP, body)
    }

    async fn delete(&self, invite_id: &str) -> Result<(), InviteError> {
        const OP: &str = "delete_invite";
        let a = self
            .call(OP, Method::DELETE, &invite_path(invite_id), None)
            .await?;
        match Self::check(OP, format!("invite {invite_id}"), a) {
            Ok(_) | Err(InviteError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn resend(&self, invite_id: &str) -> Result<(), InviteError> {
        const OP: &str = "resend_invite";
        let a = self
            .call(
                OP,
                Method::POST,
                &format!("{}/resend", invite_path(invite_id)),
                None,
            )
            .await?;
        Self::check(OP, format!("invite {invite_id}"), a).map(|_| ())
    }
}
