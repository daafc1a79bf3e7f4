//! The client's access to their device (`status.access`): one single-use Tailscale
//! device-share invite per device, and the admin's requests about it (the
//! `clawhost.dev/access-request` annotation).
//!
//! [`decide`] is pure: given the Assistant's recorded access, the request, the device and
//! the answers of the calls made so far, it names the next Tailscale call or the final
//! status. [`run`] is the thin IO loop around it. Tailscale errors never fail the
//! reconcile: they end up in `status.access.message` and the next attempt is scheduled
//! (backoff or `Retry-After`), so children and the rest of status are still written.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::backoff::Backoff;
use super::observe::Observation;
use super::{Context, assistant_key, tailnet};
use crate::api::Assistant;
use crate::api::access::{
    ACCESS_REQUEST_ANNOTATION, AccessAction, AccessState, AccessStatus, parse_access_request,
};
use crate::tailscale::invites::{DeviceInvites, Invite, InviteError, InviteUrl};

/// Shown while access is manual.
pub const MANUAL_MESSAGE: &str = "no invite credential (tailscale.invites in the operator config): share the device with the client by hand, see docs/onboarding.md";
/// Shown until the sidecar recorded its device.
pub const WAITING_MESSAGE: &str = "waiting for the client's device to join the tailnet";

/// What the decision needs to know.
#[derive(Debug, Clone)]
pub struct AccessInput<'a> {
    /// `status.access` as recorded.
    pub current: Option<&'a AccessStatus>,
    /// The `clawhost.dev/access-request` annotation.
    pub request: Option<&'a str>,
    /// The device id the sidecar recorded in the state Secret.
    pub device_id: Option<&'a str>,
    pub owner_email: &'a str,
    pub invites_configured: bool,
    /// Whether an access key is there to seal the invite URL with.
    pub can_seal: bool,
    /// Whether routine checks (a poll, a retry after a failure) are due now.
    pub due: bool,
    /// Whether a failure's backoff or Tailscale's `Retry-After` is still running: then no
    /// call is made at all, admin requests included (they wait, unhandled, until it ends).
    pub holding: bool,
    /// `tailscale.invites.pollSeconds`.
    pub poll: Duration,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// A Tailscale call the decision asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    List { device_id: String },
    Create { device_id: String, email: String },
    Get { invite_id: String },
    Delete { invite_id: String },
    Resend { invite_id: String },
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Listed(Vec<Invite>),
    Invite(Invite),
    Done,
    Failed(InviteError),
}

/// When Tailscale is next consulted for routine work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recheck {
    /// Leave the schedule as it is (nothing was due).
    Keep,
    /// Nothing to poll (manual, waiting for the device, accepted, revoked).
    Clear,
    /// Poll after this long.
    After(Duration),
    /// Tailscale asked us to wait this long (429 `Retry-After`): requests wait too.
    Hold(Duration),
    /// A failure: retry after the Assistant's growing backoff.
    Backoff,
}

/// An Event to publish about the invite (never carries the URL).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The final answer of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub access: AccessStatus,
    /// An invite URL to seal into `access.sealed_invite_url` (a new invite; the recorded
    /// sealed value is kept while the invite is the same, since sealing is randomised).
    pub seal: Option<InviteUrl>,
    pub event: Option<AccessEvent>,
    pub recheck: Recheck,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Call(Call),
    Finish(Box<Decision>),
}

/// Replays the answers already received; the first call without one is the next step.
struct Script<'h> {
    history: &'h [(Call, Outcome)],
    next: usize,
}

impl<'h> Script<'h> {
    fn call(&mut self, call: Call) -> Result<&'h Outcome, Step> {
        match self.history.get(self.next) {
            Some((_, outcome)) => {
                self.next += 1;
                Ok(outcome)
            }
            None => Err(Step::Call(call)),
        }
    }
}

/// The next step, given the answers to the calls made so far (in order).
pub fn decide(input: &AccessInput, history: &[(Call, Outcome)]) -> Step {
    let mut script = Script { history, next: 0 };
    match plan(input, &mut script) {
        Ok(decision) => Step::Finish(Box::new(decision)),
        Err(step) => step,
    }
}

/// Unwraps a call's answer, or returns the call to make (or the failure's decision).
macro_rules! answer {
    ($script:expr, $call:expr) => {
        $script.call($call)?
    };
}

fn plan(input: &AccessInput, script: &mut Script) -> Result<Decision, Step> {
    let empty = AccessStatus::default();
    let cur = input.current.unwrap_or(&empty);
    let Some(device) = input.device_id.filter(|_| input.invites_configured) else {
        // Revoked holds until `reinvite:`, also while the device is away (a restart, a
        // lost state Secret): coming back must not look like a first invite.
        if input.invites_configured && cur.state == AccessState::Revoked {
            let access = AccessStatus {
                device_id: input.device_id.map(str::to_string),
                ..cur.clone()
            };
            return Ok(finish(input, access, None, None, Recheck::Clear));
        }
        let (state, message) = if input.invites_configured {
            (AccessState::Pending, WAITING_MESSAGE)
        } else {
            (AccessState::Manual, MANUAL_MESSAGE)
        };
        let access = AccessStatus {
            state,
            device_id: input.device_id.map(str::to_string),
            handled_request: cur.handled_request.clone(),
            message: Some(message.into()),
            ..Default::default()
        };
        return Ok(finish(input, access, None, None, Recheck::Clear));
    };
    let same_device = cur.device_id.as_deref() == Some(device);
    // A re-registered device starts afresh: its invite is a new one. A revoked client
    // stays revoked for the new device: only `reinvite:` sends an invite again.
    let base = if same_device {
        cur.clone()
    } else if cur.state == AccessState::Revoked {
        AccessStatus {
            state: AccessState::Revoked,
            device_id: Some(device.to_string()),
            handled_request: cur.handled_request.clone(),
            message: cur.message.clone(),
            ..Default::default()
        }
    } else {
        AccessStatus {
            state: AccessState::Pending,
            device_id: Some(device.to_string()),
            handled_request: cur.handled_request.clone(),
            ..Default::default()
        }
    };
    let known = base.invite_id.clone();
    let request = input
        .request
        .filter(|r| cur.handled_request.as_deref() != Some(*r));
    let fail = |e: &InviteError, handled: Option<&str>| {
        let mut access = base.clone();
        if access.invite_id.is_none() {
            access.state = AccessState::Pending;
        }
        access.message = Some(e.to_string());
        if let Some(r) = handled {
            access.handled_request = Some(r.to_string());
        }
        let event = (access.message != cur.message).then(|| AccessEvent {
            warning: true,
            reason: "InviteFailed",
            note: e.to_string(),
        });
        let recheck = match e.retry_after() {
            Some(d) => Recheck::Hold(d),
            None => Recheck::Backoff,
        };
        Step::Finish(Box::new(finish(input, access, None, event, recheck)))
    };

    if request.is_some() && input.holding {
        // Asking Tailscale again during a backoff or a `Retry-After` would only prolong
        // it; the request is taken up when the wait ends.
        return Ok(finish(input, cur.clone(), None, None, Recheck::Keep));
    }
    if let Some(request) = request {
        let Some(action) = parse_access_request(request) else {
            let mut access = base.clone();
            access.handled_request = Some(request.to_string());
            access.message = Some(format!(
                "ignored {ACCESS_REQUEST_ANNOTATION}={request}: use resend:<id>, revoke:<id> or reinvite:<id>"
            ));
            return Ok(finish(input, access, None, None, Recheck::Keep));
        };
        return match action {
            AccessAction::Resend => {
                let open = known.as_deref().filter(|_| base.state == AccessState::Sent);
                let Some(id) = open else {
                    let mut access = base.clone();
                    access.handled_request = Some(request.to_string());
                    access.message = Some(format!(
                        "nothing to resend: the invite is {} (ask for a new one with reinvite:<id>)",
                        base.state
                    ));
                    return Ok(finish(input, access, None, None, Recheck::Keep));
                };
                match answer!(
                    script,
                    Call::Resend {
                        invite_id: id.to_string()
                    }
                ) {
                    Outcome::Failed(e @ InviteError::RateLimited { .. }) => {
                        // Reported and marked handled: resending again is the admin's call.
                        Err(fail(e, Some(request)))
                    }
                    Outcome::Failed(InviteError::NotFound { .. }) => {
                        // Resending again cannot help: handled, and the admin is told to
                        // ask for a new invite.
                        Ok(vanished(input, &base, id, Some(request)))
                    }
                    Outcome::Failed(e) => Err(fail(e, None)),
                    _ => {
                        let mut access = base.clone();
                        access.handled_request = Some(request.to_string());
                        access.last_sent_time = Some(input.now.to_string());
                        access.message = Some(sent_message(access.recipient.as_deref()));
                        let event = AccessEvent {
                            warning: false,
                            reason: "InviteResent",
                            note: format!("invite {id} e-mailed again"),
                        };
                        Ok(finish(
                            input,
                            access,
                            None,
                            Some(event),
                            Recheck::After(input.poll),
                        ))
                    }
                }
            }
            AccessAction::Revoke | AccessAction::Reinvite => {
                let listed = list(script, device, &fail)?;
                for open in listed.iter().filter(|i| !i.accepted) {
                    if let Outcome::Failed(e) = answer!(
                        script,
                        Call::Delete {
                            invite_id: open.id.clone()
                        }
                    ) {
                        return Err(fail(e, None));
                    }
                }
                if action == AccessAction::Revoke {
                    if let Some(accepted) = listed.iter().find(|i| i.accepted) {
                        let mut access = from_invite(&base, accepted);
                        access.handled_request = Some(request.to_string());
                        access.message = Some(
                            "the invite was accepted already: the share stays until the device is removed (or unshare it in the Tailscale admin console)".into(),
                        );
                        return Ok(finish(input, access, None, None, Recheck::Clear));
                    }
                    let mut access = base.clone();
                    access.state = AccessState::Revoked;
                    access.sealed_invite_url = None;
                    access.handled_request = Some(request.to_string());
                    access.message =
                        Some("revoked; no invite is sent until asked (reinvite:<id>)".into());
                    let event = AccessEvent {
                        warning: false,
                        reason: "InviteRevoked",
                        note: format!(
                            "invite {} revoked",
                            known.as_deref().unwrap_or("(none recorded)")
                        ),
                    };
                    return Ok(finish(input, access, None, Some(event), Recheck::Clear));
                }
                create(input, script, &base, Some(request), &fail)
            }
        };
    }

    // Routine work.
    if base.state == AccessState::Revoked || (same_device && cur.state == AccessState::Accepted) {
        return Ok(finish(input, base, None, None, Recheck::Clear));
    }
    if same_device && !input.due {
        return Ok(finish(input, cur.clone(), None, None, Recheck::Keep));
    }
    if let Some(id) = &known {
        return match answer!(
            script,
            Call::Get {
                invite_id: id.clone()
            }
        ) {
            Outcome::Invite(invite) => Ok(settled(input, &base, invite)),
            Outcome::Failed(InviteError::NotFound { .. }) => Ok(vanished(input, &base, id, None)),
            Outcome::Failed(e) => Err(fail(e, None)),
            _ => Err(fail(&unexpected("get_invite"), None)),
        };
    }
    // No invite recorded (first time, a lost status write, a restart): adopt the device's
    // invite for this client if there is one, so there is never a second.
    let listed = list(script, device, &fail)?;
    let for_owner = |i: &&Invite| {
        i.email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(input.owner_email))
    };
    let adopt = listed
        .iter()
        .filter(for_owner)
        .find(|i| i.accepted)
        .or_else(|| listed.iter().filter(for_owner).find(|i| !i.accepted));
    if let Some(invite) = adopt {
        return Ok(settled(input, &base, invite));
    }
    create(input, script, &base, None, &fail)
}

/// The recorded invite is gone at Tailscale (deleted in the admin console): `Pending`,
/// and only `reinvite:` makes a new one.
fn vanished(input: &AccessInput, base: &AccessStatus, id: &str, handled: Option<&str>) -> Decision {
    let mut access = base.clone();
    access.state = AccessState::Pending;
    access.sealed_invite_url = None;
    access.message = Some(format!(
        "the invite {id} no longer exists at Tailscale (deleted in the admin console?): ask for a new one with reinvite:<id>"
    ));
    if let Some(r) = handled {
        access.handled_request = Some(r.to_string());
    }
    finish(input, access, None, None, Recheck::After(input.poll))
}

/// The device's invites.
fn list<'h>(
    script: &mut Script<'h>,
    device: &str,
    fail: &dyn Fn(&InviteError, Option<&str>) -> Step,
) -> Result<&'h [Invite], Step> {
    match answer!(
        script,
        Call::List {
            device_id: device.to_string()
        }
    ) {
        Outcome::Listed(l) => Ok(l),
        Outcome::Failed(e) => Err(fail(e, None)),
        _ => Err(fail(&unexpected("list_invites"), None)),
    }
}

/// Creates the device's invite for the owner: `Sent`.
fn create(
    input: &AccessInput,
    script: &mut Script,
    base: &AccessStatus,
    handled: Option<&str>,
    fail: &dyn Fn(&InviteError, Option<&str>) -> Step,
) -> Result<Decision, Step> {
    let device = base.device_id.clone().unwrap_or_default();
    let invite = match answer!(
        script,
        Call::Create {
            device_id: device,
            email: input.owner_email.to_string(),
        }
    ) {
        Outcome::Invite(i) => i,
        Outcome::Failed(e) => return Err(fail(e, None)),
        _ => return Err(fail(&unexpected("create_invite"), None)),
    };
    let mut access = from_invite(base, invite);
    access.sealed_invite_url = None;
    if let Some(r) = handled {
        access.handled_request = Some(r.to_string());
    }
    let event = AccessEvent {
        warning: false,
        reason: "InviteSent",
        note: format!(
            "device invite {} e-mailed to {}",
            invite.id, input.owner_email
        ),
    };
    let seal = invite.invite_url.clone().filter(|_| input.can_seal);
    Ok(finish(
        input,
        access,
        seal,
        Some(event),
        Recheck::After(input.poll),
    ))
}

/// The status for an invite read from Tailscale (polled or adopted).
fn settled(input: &AccessInput, base: &AccessStatus, invite: &Invite) -> Decision {
    let access = from_invite(base, invite);
    let same_invite = base.invite_id.as_deref() == Some(invite.id.as_str());
    let seal = invite
        .invite_url
        .clone()
        .filter(|_| input.can_seal && !(same_invite && base.sealed_invite_url.is_some()));
    if invite.accepted {
        let event = (base.state != AccessState::Accepted).then(|| AccessEvent {
            warning: false,
            reason: "InviteAccepted",
            note: format!(
                "device invite {} accepted by {}",
                invite.id,
                access.accepted_by.as_deref().unwrap_or("the client")
            ),
        });
        finish(input, access, seal, event, Recheck::Clear)
    } else {
        finish(input, access, seal, None, Recheck::After(input.poll))
    }
}

fn from_invite(base: &AccessStatus, invite: &Invite) -> AccessStatus {
    let same_invite = base.invite_id.as_deref() == Some(invite.id.as_str());
    let accepted_by = invite
        .accepted_by
        .as_ref()
        .map(|a| a.login_name.clone())
        .filter(|l| !l.is_empty());
    AccessStatus {
        state: if invite.accepted {
            AccessState::Accepted
        } else {
            AccessState::Sent
        },
        device_id: base.device_id.clone(),
        invite_id: Some(invite.id.clone()),
        recipient: invite.email.clone(),
        message: Some(if invite.accepted {
            format!(
                "accepted by {}",
                accepted_by.as_deref().unwrap_or("the client")
            )
        } else {
            sent_message(invite.email.as_deref())
        }),
        accepted_by,
        sealed_invite_url: base.sealed_invite_url.clone().filter(|_| same_invite),
        last_transition_time: base.last_transition_time.clone(),
        last_sent_time: invite
            .last_email_sent_at
            .clone()
            .or_else(|| base.last_sent_time.clone().filter(|_| same_invite)),
        handled_request: base.handled_request.clone(),
    }
}

fn sent_message(recipient: Option<&str>) -> String {
    format!(
        "the invite was e-mailed to {}; waiting for the client to accept it",
        recipient.unwrap_or("the client")
    )
}

fn unexpected(operation: &'static str) -> InviteError {
    InviteError::BadAnswer {
        operation,
        reason: "answer of another kind".into(),
    }
}

/// `lastTransitionTime` moves only with the state.
fn finish(
    input: &AccessInput,
    mut access: AccessStatus,
    seal: Option<InviteUrl>,
    event: Option<AccessEvent>,
    recheck: Recheck,
) -> Decision {
    let cur = input.current;
    access.last_transition_time = match cur {
        Some(c) if c.state == access.state && c.last_transition_time.is_some() => {
            c.last_transition_time.clone()
        }
        _ => Some(input.now.to_string()),
    };
    Decision {
        access,
        seal,
        event,
        recheck,
    }
}

/// When each Assistant's invite is next checked with Tailscale, and its failure streak.
/// In memory: after a restart everything is due once, which is what adoption needs.
#[derive(Debug, Default)]
pub struct AccessClock {
    /// When the next check is due, and whether it ends a failure's wait (backoff or
    /// `Retry-After`) rather than a poll interval.
    next: Mutex<HashMap<String, (Instant, bool)>>,
    failures: Backoff,
}

impl AccessClock {
    pub fn due(&self, key: &str) -> bool {
        self.next
            .lock()
            .expect("lock")
            .get(key)
            .is_none_or(|(at, _)| Instant::now() >= *at)
    }

    /// Whether a failure's backoff or `Retry-After` is still running.
    pub fn holding(&self, key: &str) -> bool {
        self.next
            .lock()
            .expect("lock")
            .get(key)
            .is_some_and(|(at, hold)| *hold && Instant::now() < *at)
    }

    /// Records the decision's schedule; returns when to reconcile again for it.
    fn schedule(&self, key: &str, recheck: Recheck) -> Option<Duration> {
        let delay = match recheck {
            Recheck::Keep => {
                let next = self.next.lock().expect("lock");
                return next
                    .get(key)
                    .map(|(at, _)| at.saturating_duration_since(Instant::now()));
            }
            Recheck::Clear => {
                self.forget(key);
                return None;
            }
            Recheck::After(d) => {
                self.failures.reset(key);
                (d, false)
            }
            Recheck::Hold(d) => {
                self.failures.reset(key);
                (d, true)
            }
            Recheck::Backoff => (self.failures.next_delay(key), true),
        };
        let (delay, hold) = delay;
        self.next
            .lock()
            .expect("lock")
            .insert(key.to_string(), (Instant::now() + delay, hold));
        Some(delay)
    }

    /// A deleted Assistant leaves the table.
    pub fn forget(&self, key: &str) {
        self.next.lock().expect("lock").remove(key);
        self.failures.reset(key);
    }
}

/// The access step of a reconcile: decides, makes the Tailscale calls, seals the invite
/// URL, publishes the invite's Events. Returns the new `status.access` and, while
/// something is to be checked again, when to reconcile for it.
pub async fn run(
    a: &Assistant,
    ctx: &Context,
    observed: &Observation,
) -> (AccessStatus, Option<Duration>) {
    let key = assistant_key(a);
    let device = tailnet::device_id(observed);
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string();
    let input = AccessInput {
        current: a.status.as_ref().and_then(|s| s.access.as_ref()),
        request: a
            .annotations()
            .get(ACCESS_REQUEST_ANNOTATION)
            .map(String::as_str),
        device_id: device.as_deref(),
        owner_email: &a.spec.owner.email,
        invites_configured: ctx.invites.is_some(),
        can_seal: ctx.access_key.is_some(),
        due: ctx.access_clock.due(&key),
        holding: ctx.access_clock.holding(&key),
        poll: Duration::from_secs(
            ctx.config
                .tailscale
                .invites
                .as_ref()
                .map_or(300, |i| i.poll_seconds),
        ),
        now: &now,
    };
    let mut history: Vec<(Call, Outcome)> = Vec::new();
    let decision = loop {
        match decide(&input, &history) {
            Step::Finish(d) => break *d,
            Step::Call(call) => {
                let outcome = match ctx.invites.as_deref() {
                    Some(api) => perform(api, &call).await,
                    None => Outcome::Failed(InviteError::BadAnswer {
                        operation: "invites",
                        reason: "no invite client configured".into(),
                    }),
                };
                history.push((call, outcome));
            }
        }
    };
    let Decision {
        mut access,
        seal,
        event,
        recheck,
    } = decision;
    if let (Some(url), Some(k)) = (seal, &ctx.access_key) {
        let ns = a.namespace().unwrap_or_default();
        access.sealed_invite_url = Some(k.seal(
            &url.0,
            &crate::sealing::invite_url_context(&ns, &a.name_any()),
        ));
    }
    if let Some(event) = event {
        if event.warning {
            warn!(assistant = %key, reason = event.reason, note = %event.note, "device invite");
        } else {
            info!(assistant = %key, reason = event.reason, note = %event.note, "device invite");
        }
        publish(a, ctx, event).await;
    }
    let requeue = ctx.access_clock.schedule(&key, recheck);
    (access, requeue)
}

async fn perform(api: &dyn DeviceInvites, call: &Call) -> Outcome {
    let result = match call {
        Call::List { device_id } => api.list(device_id).await.map(Outcome::Listed),
        Call::Create { device_id, email } => {
            api.create(device_id, email).await.map(Outcome::Invite)
        }
        Call::Get { invite_id } => api.get(invite_id).await.map(Outcome::Invite),
        Call::Delete { invite_id } => api.delete(invite_id).await.map(|_| Outcome::Done),
        Call::Resend { invite_id } => api.resend(invite_id).await.map(|_| Outcome::Done),
    };
    result.unwrap_or_else(Outcome::Failed)
}

async fn publish(a: &Assistant, ctx: &Context, e: AccessEvent) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let event = Event {
        type_: if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.into(),
        note: Some(e.note),
        action: "Access".into(),
        secondary: None,
    };
    // Best effort, like every Event.
    if let Err(err) = recorder.publish(&event, &a.object_ref(&())).await {
        warn!(error = %err, "could not publish event");
    }
}

/// Deletion: deletes the device's open (unaccepted) invites, so nobody can accept a share
/// of a device that is about to go. A device unknown to Tailscale counts as done. Without
/// a device id (its state Secret is gone) the recorded invite is checked and deleted if
/// still open.
pub async fn revoke_open_invites(
    api: &dyn DeviceInvites,
    device_id: Option<&str>,
    recorded_invite: Option<&str>,
) -> Result<usize, InviteError> {
    let invites = match (device_id, recorded_invite) {
        (Some(device), _) => match api.list(device).await {
            Ok(l) => l,
            Err(InviteError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        },
        (None, Some(id)) => match api.get(id).await {
            Ok(i) => vec![i],
            Err(InviteError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        },
        (None, None) => return Ok(0),
    };
    let mut deleted = 0;
    for open in invites.iter().filter(|i| !i.accepted) {
        api.delete(&open.id).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Whether a failure to revoke invites on deletion is retried (holding the deletion) or
/// reported and passed over. An outage or a rate limit ends; a refused or unreadable
/// credential (an expired user token) may never be fixed, and must not keep the
/// Assistant, its device and its volume forever: deleting the device ends its invites too.
pub fn revoke_failure_is_retried(e: &InviteError) -> bool {
    !matches!(
        e,
        InviteError::CredentialRefused { .. } | InviteError::CredentialUnreadable { .. }
    )
}

/// The device and the invite to clean up on deletion: the state Secret's device id, else
/// (the Secret is gone) what `status.access` recorded.
pub fn cleanup_targets(
    state_device: Option<String>,
    access: Option<&AccessStatus>,
) -> (Option<String>, Option<String>) {
    let device = state_device.or_else(|| access.and_then(|a| a.device_id.clone()));
    let invite = access
        .filter(|a| a.state == AccessState::Sent)
        .and_then(|a| a.invite_id.clone());
    (device, invite)
}

#[cfg(test)]
mod tests;
