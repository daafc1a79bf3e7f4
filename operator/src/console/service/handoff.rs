//! Day one for the client: one-time handoff links (`/welcome/{token}`), the Access panel's
//! invite requests (the `clawhost.dev/access-request` annotation the operator acts on) and
//! the "never connected" filter.
//!
//! A link token is 32 random bytes (base64url); only its SHA-256 is stored. The gateway
//! token the link reveals is kept sealed with a key derived from the link token, so the
//! database alone never reveals it, and the sealed value is removed when the link is
//! spent, replaced or expired.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{ActionError, now};
use crate::api::{ACCESS_REQUEST_ANNOTATION, AccessAction, AccessState, AccessStatus, Assistant};
use crate::children::GatewayToken;
use crate::console::Console;
use crate::console::auth;
use crate::console::db::{Admin, ClientRow, HandoffLinkRow};
use crate::sealing::SealingKey;

/// Purpose the link token's derived key is bound to.
const SEAL_PURPOSE: &str = "handoff";

pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(72 * 3600);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{0:?} is not a lifetime: use a number with a unit, e.g. 72h, 3d, 90m or 1d12h (units s, m, h, d)"
)]
pub struct LifetimeError(String);

/// `72h`, `3d`, `90m`, `1d12h`, `45s` (also `3 days`, `72 hours`): jiff's friendly duration
/// format, days counted as 24 hours.
pub fn parse_lifetime(s: &str) -> Result<Duration, LifetimeError> {
    let err = || LifetimeError(s.to_string());
    let span: jiff::Span = s.trim().parse().map_err(|_| err())?;
    let seconds = span
        .total((
            jiff::Unit::Second,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .map_err(|_| err())?;
    if !(seconds >= 1.0 && seconds.fract() == 0.0 && seconds <= MAX_LIFETIME.as_secs_f64()) {
        return Err(err());
    }
    Ok(Duration::from_secs(seconds as u64))
}

/// A link open longer than a year is a mistake in the flag, not a policy.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 86_400);

/// "72 hours", "3 days": the lifetime as people say it.
pub fn describe_lifetime(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if s.is_multiple_of(86_400) && s >= 86_400 * 2 {
        plural(s / 86_400, "day")
    } else if s.is_multiple_of(3600) {
        plural(s / 3600, "hour")
    } else if s.is_multiple_of(60) {
        plural(s / 60, "minute")
    } else {
        plural(s, "second")
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Open,
    Spent,
    Replaced,
    Expired,
}

impl LinkState {
    pub fn of(l: &HandoffLinkRow, now: i64) -> Self {
        if l.spent_at.is_some() {
            LinkState::Spent
        } else if l.replaced_at.is_some() {
            LinkState::Replaced
        } else if l.expires_at <= now {
            LinkState::Expired
        } else {
            LinkState::Open
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Open => "open",
            LinkState::Spent => "spent",
            LinkState::Replaced => "replaced",
            LinkState::Expired => "expired",
        }
    }
}

/// A link just issued: the only moment its token exists outside the client's hands.
pub struct IssuedLink {
    pub id: i64,
    /// `/welcome/{token}`.
    pub path: String,
    /// The full URL, when `--public-url` is set (never built from the Host header).
    pub url: Option<String>,
    pub expires_at: i64,
    pub lifetime: Duration,
}

impl IssuedLink {
    /// The full URL, or the path when the console does not know its public address.
    pub fn best(&self) -> &str {
        self.url.as_deref().unwrap_or(&self.path)
    }
}

pub fn welcome_path(token: &str) -> String {
    format!("/welcome/{token}")
}

fn target(c: &ClientRow) -> String {
    format!("{}/{}", c.namespace, c.assistant_name)
}

async fn live_client(ctx: &Console, id: i64) -> Result<ClientRow, ActionError> {
    match ctx.db.client(id).await? {
        Some(c) if c.deleted_at.is_none() => Ok(c),
        _ => Err(ActionError::NotFound),
    }
}

/// Issues a link revealing `gateway_token` (the one just written to the client's Secret);
/// the client's open links are replaced. Audited with link ids, never tokens.
pub async fn issue_link(
    ctx: &Console,
    actor: &Admin,
    c: &ClientRow,
    gateway_token: &GatewayToken,
) -> Result<IssuedLink, ActionError> {
    let token = auth::random_token();
    let t = now();
    let lifetime = ctx.opts.handoff_lifetime;
    let expires_at = t + lifetime.as_secs() as i64;
    let key = SealingKey::derive(&token, SEAL_PURPOSE);
    let (id, replaced) = ctx
        .db
        .issue_handoff_link(
            c.id,
            &auth::token_hash(&token),
            &actor.email,
            t,
            expires_at,
            |id| key.seal(gateway_token.expose(), &id.to_string()),
        )
        .await?;
    for old in &replaced {
        ctx.db
            .audit(
                t,
                &actor.email,
                "handoff.replaced",
                Some(c.id),
                &target(c),
                Some(&json!({"link_id": old}).to_string()),
                Some(&json!({"link_id": old, "replaced_by": id}).to_string()),
            )
            .await?;
    }
    ctx.db
        .audit(
            t,
            &actor.email,
            "handoff.issued",
            Some(c.id),
            &target(c),
            None,
            Some(
                &json!({"link_id": id, "expires_at": expires_at, "replaced": replaced}).to_string(),
            ),
        )
        .await?;
    let path = welcome_path(&token);
    let url = ctx
        .opts
        .public_url
        .as_deref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')));
    Ok(IssuedLink {
        id,
        path,
        url,
        expires_at,
        lifetime,
    })
}

/// What [`create_handoff`] did: the token is always rotated by then, so it is returned even
/// when the link could not be issued (`link` is `None` and `warnings` says why).
pub struct Handoff {
    pub token: GatewayToken,
    pub link: Option<IssuedLink>,
    pub warnings: Vec<String>,
}

/// A new gateway token (the rotate-token action: the console cannot read the current one)
/// and a handoff link that reveals it once.
pub async fn create_handoff(ctx: &Console, actor: &Admin, id: i64) -> Result<Handoff, ActionError> {
    let token = super::rotate_token(ctx, actor, id).await?;
    // The old token is dead now: a failed link must not hide the new one from the admin.
    let link = match live_client(ctx, id).await {
        Ok(c) => issue_link(ctx, actor, &c, &token).await,
        Err(e) => Err(e),
    };
    Ok(match link {
        Ok(link) => Handoff {
            token,
            link: Some(link),
            warnings: Vec::new(),
        },
        Err(e) => {
            tracing::error!(client_id = id, error = %e, "gateway token rotated but no handoff link issued");
            Handoff {
                token,
                link: None,
                warnings: vec![format!(
                    "The gateway token was rotated, but the handoff link could not be created ({e}). Give the client the token below yourself, or create a link again from the client page (that rotates the token once more)."
                )],
            }
        }
    })
}

/// A link looked up by its token: the row, its state, and its client.
pub struct FoundLink {
    pub link: HandoffLinkRow,
    pub state: LinkState,
    pub client: ClientRow,
}

/// The link a token names, compared in constant time after the lookup by hash; `None` for
/// unknown tokens (and links of deleted clients).
pub async fn find_link(ctx: &Console, token: &str) -> Result<Option<FoundLink>, ActionError> {
    let t = now();
    ctx.db.purge_expired_handoff_tokens(t).await?;
    let hash = auth::token_hash(token);
    let Some(link) = ctx.db.handoff_link_by_hash(&hash).await? else {
        return Ok(None);
    };
    if !auth::constant_time_eq(&link.token_hash, &hash) {
        return Ok(None);
    }
    let Some(client) = ctx.db.client(link.client_id).await? else {
        return Ok(None);
    };
    if client.deleted_at.is_some() {
        return Ok(None);
    }
    Ok(Some(FoundLink {
        state: LinkState::of(&link, t),
        link,
        client,
    }))
}

pub enum Reveal {
    /// The gateway token, shown now and never again.
    Token(String),
    /// The link is no longer open (this state); nothing revealed.
    Gone(LinkState),
}

/// Spends the link and reveals its gateway token. Exactly one of two racing requests wins;
/// the other gets `Gone(Spent)`.
pub async fn reveal(ctx: &Console, token: &str, found: &FoundLink) -> Result<Reveal, ActionError> {
    if found.state != LinkState::Open {
        return Ok(Reveal::Gone(found.state));
    }
    let Some(sealed) = found.link.sealed_gateway_token.clone() else {
        return Ok(Reveal::Gone(LinkState::Spent));
    };
    let t = now();
    if !ctx.db.spend_handoff_link(found.link.id, t).await? {
        let state = match ctx.db.handoff_link_by_hash(&found.link.token_hash).await? {
            Some(l) => LinkState::of(&l, t),
            None => LinkState::Spent,
        };
        return Ok(Reveal::Gone(state));
    }
    // The link is spent: failing now would lose the token for good while telling the client
    // the link still works. A missing audit row is logged instead (the link's spent_at
    // still records it).
    if let Err(e) = ctx
        .db
        .audit(
            t,
            "handoff link",
            "handoff.spent",
            Some(found.client.id),
            &target(&found.client),
            None,
            Some(&json!({"link_id": found.link.id}).to_string()),
        )
        .await
    {
        tracing::error!(link_id = found.link.id, client_id = found.client.id, error = %e, "handoff link spent but its audit event could not be written");
    }
    let opened = SealingKey::derive(token, SEAL_PURPOSE).open(&sealed, &found.link.id.to_string());
    match opened {
        Ok(v) => Ok(Reveal::Token(v)),
        Err(e) => {
            // Spent anyway: a record that does not open cannot be retried into opening.
            tracing::error!(link_id = found.link.id, error = %e, "handoff link's sealed token does not open");
            Ok(Reveal::Gone(LinkState::Spent))
        }
    }
}

/// Whom a client with a dead link should ask: `--support-contact`, else the issuing admin.
pub fn contact_for(ctx: &Console, link: &HandoffLinkRow) -> String {
    ctx.opts
        .support_contact
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| link.created_by.clone())
}

/// What the welcome page says about the device-share invite.
#[derive(Debug, Clone, PartialEq)]
pub enum InviteView {
    /// The invite URL, opened with the console's access key.
    Link(String),
    /// The invite exists but the console cannot show its URL (no key, or none sealed).
    Emailed {
        recipient: Option<String>,
    },
    Accepted,
    /// No automation: the manual steps.
    Manual,
    /// Waiting for the device or the Tailscale API; or revoked.
    NotYet {
        state: AccessState,
    },
}

pub fn invite_view(ctx: &Console, a: Option<&Assistant>) -> InviteView {
    let access = a.and_then(|a| a.status.as_ref()?.access.clone());
    let Some(access) = access else {
        return InviteView::Manual;
    };
    match access.state {
        AccessState::Manual => InviteView::Manual,
        AccessState::Accepted => InviteView::Accepted,
        AccessState::Sent => {
            let (ns, name) = a
                .map(|a| {
                    (
                        a.metadata.namespace.clone().unwrap_or_default(),
                        a.metadata.name.clone().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            let opened = ctx
                .opts
                .access_key
                .as_ref()
                .zip(access.sealed_invite_url.as_deref())
                .and_then(|(k, sealed)| {
                    k.open(sealed, &crate::sealing::invite_url_context(&ns, &name))
                        .ok()
                })
                .filter(|u| u.starts_with("https://"));
            match opened {
                Some(u) => InviteView::Link(u),
                None => InviteView::Emailed {
                    recipient: access.recipient,
                },
            }
        }
        state => InviteView::NotYet { state },
    }
}

/// Asks the operator to act on the client's invite by setting the access-request
/// annotation (the console never calls Tailscale).
pub async fn request_access(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    action: AccessAction,
) -> Result<String, ActionError> {
    let c = live_client(ctx, id).await?;
    let a = ctx
        .cluster
        .get(&c.namespace, &c.assistant_name)
        .await?
        .ok_or(ActionError::Cluster(
            crate::console::cluster::ClusterError::NotFound,
        ))?;
    let value = action.request(&jiff::Timestamp::now().to_string());
    let before = a
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(ACCESS_REQUEST_ANNOTATION).cloned());
    ctx.cluster
        .patch(
            &c.namespace,
            &c.assistant_name,
            json!({"metadata": {"annotations": {ACCESS_REQUEST_ANNOTATION: value}}}),
        )
        .await?;
    ctx.db
        .audit(
            now(),
            &actor.email,
            &format!("access.{}", action.as_str()),
            Some(c.id),
            &target(&c),
            Some(&json!({"access_request": before}).to_string()),
            Some(&json!({"access_request": value}).to_string()),
        )
        .await?;
    Ok(value)
}

pub fn parse_action(s: &str) -> Option<AccessAction> {
    match s {
        "resend" => Some(AccessAction::Resend),
        "revoke" => Some(AccessAction::Revoke),
        "reinvite" => Some(AccessAction::Reinvite),
        _ => None,
    }
}

/// The client's access as the operator reports it.
pub fn access_of(a: &Assistant) -> Option<&AccessStatus> {
    a.status.as_ref()?.access.as_ref()
}

/// Not connected yet: an invite is expected but not accepted (Sent or Pending). Manual
/// clients are shared by hand (the console cannot tell whether they connected), Revoked ones
/// were stopped on purpose, and an unknown Assistant (cluster unreadable) proves nothing:
/// none of them count.
pub fn not_connected(a: Option<&Assistant>) -> bool {
    a.and_then(access_of)
        .is_some_and(|s| matches!(s.state, AccessState::Sent | AccessState::Pending))
}

/// Start of the "never connected" window: clients created before it count.
pub fn never_connected_cutoff(ctx: &Console) -> i64 {
    now() - ctx.opts.never_connected_days.max(0) * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_humanely_and_refuse_garbage() {
        assert_eq!(parse_lifetime("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_lifetime("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(
            parse_lifetime("3 days"),
            Ok(Duration::from_secs(3 * 86_400))
        );
        assert_eq!(parse_lifetime("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_lifetime("90m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "72",
            "h",
            "0h",
            "3x",
            "-1h",
            "400d",
            "99999999999999999999d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
        assert_eq!(describe_lifetime(DEFAULT_LIFETIME), "3 days");
        assert_eq!(describe_lifetime(Duration::from_secs(3600)), "1 hour");
    }
}
