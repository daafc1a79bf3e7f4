use super::*;
use crate::tailscale::invites::AcceptedBy;

const NOW: &str = "2026-12-03T10:00:00Z";
const EARLIER: &str = "2026-12-01T08:00:00Z";
const POLL: Duration = Duration::from_secs(300);

fn input<'a>(current: Option<&'a AccessStatus>, device: Option<&'a str>) -> AccessInput<'a> {
    AccessInput {
        current,
        request: None,
        device_id: device,
        owner_email: "alice@example.com",
        invites_configured: true,
        can_seal: true,
        due: true,
        holding: false,
        poll: POLL,
        now: NOW,
    }
}

fn invite(id: &str, email: &str, accepted: bool) -> Invite {
    Invite {
        id: id.into(),
        device_id: Some("dev-1".into()),
        email: Some(email.into()),
        invite_url: Some(InviteUrl(format!(
            "https://login.tailscale.com/admin/invite/{id}"
        ))),
        last_email_sent_at: Some(EARLIER.into()),
        accepted,
        accepted_by: accepted.then(|| AcceptedBy {
            id: serde_json::json!(7),
            login_name: "alice@gmail.com".into(),
        }),
        ..Default::default()
    }
}

fn sent(invite_id: &str) -> AccessStatus {
    AccessStatus {
        state: AccessState::Sent,
        device_id: Some("dev-1".into()),
        invite_id: Some(invite_id.into()),
        recipient: Some("alice@example.com".into()),
        sealed_invite_url: Some("v1.sealed-before".into()),
        last_transition_time: Some(EARLIER.into()),
        last_sent_time: Some(EARLIER.into()),
        message: Some(sent_message(Some("alice@example.com"))),
        ..Default::default()
    }
}

/// Runs the decision against scripted answers: returns the calls made and the decision.
fn drive(input: &AccessInput, mut answer: impl FnMut(&Call) -> Outcome) -> (Vec<Call>, Decision) {
    let mut history = Vec::new();
    for _ in 0..20 {
        match decide(input, &history) {
            Step::Finish(d) => return (history.into_iter().map(|(c, _)| c).collect(), *d),
            Step::Call(c) => {
                let o = answer(&c);
                history.push((c, o));
            }
        }
    }
    panic!("the decision never finished: {history:?}");
}

fn no_calls(c: &Call) -> Outcome {
    panic!("no Tailscale call expected, got {c:?}")
}

#[test]
fn without_the_credential_access_is_manual_and_nothing_is_called() {
    let mut i = input(None, Some("dev-1"));
    i.invites_configured = false;
    let (calls, d) = drive(&i, no_calls);
    assert!(calls.is_empty());
    assert_eq!(d.access.state, AccessState::Manual);
    assert!(d.access.message.unwrap().contains("docs/onboarding.md"));
    assert_eq!(d.recheck, Recheck::Clear);
}

#[test]
fn without_a_device_access_waits() {
    let (calls, d) = drive(&input(None, None), no_calls);
    assert!(calls.is_empty());
    assert_eq!(d.access.state, AccessState::Pending);
    assert_eq!(d.access.message.as_deref(), Some(WAITING_MESSAGE));
    assert_eq!(d.access.last_transition_time.as_deref(), Some(NOW));
}

#[test]
fn a_new_device_gets_exactly_one_single_use_invite() {
    let (calls, d) = drive(&input(None, Some("dev-1")), |c| match c {
        Call::List { .. } => Outcome::Listed(vec![invite("other", "bob@example.com", false)]),
        Call::Create { .. } => Outcome::Invite(invite("inv-1", "alice@example.com", false)),
        c => panic!("{c:?}"),
    });
    assert_eq!(
        calls,
        vec![
            Call::List {
                device_id: "dev-1".into()
            },
            Call::Create {
                device_id: "dev-1".into(),
                email: "alice@example.com".into()
            }
        ]
    );
    assert_eq!(d.access.state, AccessState::Sent);
    assert_eq!(d.access.invite_id.as_deref(), Some("inv-1"));
    assert_eq!(d.access.recipient.as_deref(), Some("alice@example.com"));
    assert!(d.seal.is_some(), "a new invite's URL is sealed");
    assert_eq!(d.access.sealed_invite_url, None, "the IO step seals it");
    assert_eq!(d.event.unwrap().reason, "InviteSent");
    assert_eq!(d.recheck, Recheck::After(POLL));
    assert!(!format!("{:?}", d.seal).contains("invite/inv-1"));
}

#[test]
fn an_existing_invite_for_the_owner_is_adopted_not_duplicated() {
    // A lost status write or a restart: the device already has our invite.
    for accepted in [false, true] {
        let (calls, d) = drive(&input(None, Some("dev-1")), |c| match c {
            Call::List { .. } => {
                Outcome::Listed(vec![invite("inv-1", "Alice@Example.com", accepted)])
            }
            c => panic!("{c:?}"),
        });
        assert_eq!(calls.len(), 1);
        assert_eq!(d.access.invite_id.as_deref(), Some("inv-1"));
        let want = if accepted {
            AccessState::Accepted
        } else {
            AccessState::Sent
        };
        assert_eq!(d.access.state, want);
    }
}

#[test]
fn polling_an_unaccepted_invite_changes_nothing_until_it_is_accepted() {
    let cur = sent("inv-1");
    let (calls, d) = drive(&input(Some(&cur), Some("dev-1")), |_| {
        Outcome::Invite(invite("inv-1", "alice@example.com", false))
    });
    assert_eq!(
        calls,
        vec![Call::Get {
            invite_id: "inv-1".into()
        }]
    );
    assert_eq!(
        d.access, cur,
        "an idle poll leaves status exactly as it was"
    );
    assert_eq!(d.seal, None, "the sealed URL is kept, not sealed anew");
    assert_eq!(d.event, None);
    assert_eq!(d.recheck, Recheck::After(POLL));

    let (_, d) = drive(&input(Some(&cur), Some("dev-1")), |_| {
        Outcome::Invite(invite("inv-1", "alice@example.com", true))
    });
    assert_eq!(d.access.state, AccessState::Accepted);
    assert_eq!(d.access.accepted_by.as_deref(), Some("alice@gmail.com"));
    assert_eq!(d.access.last_transition_time.as_deref(), Some(NOW));
    assert_eq!(d.event.unwrap().reason, "InviteAccepted");
    assert_eq!(d.recheck, Recheck::Clear);
}

#[test]
fn nothing_is_called_when_no_check_is_due_or_the_invite_is_settled() {
    let cur = sent("inv-1");
    let mut i = input(Some(&cur), Some("dev-1"));
    i.due = false;
    let (_, d) = drive(&i, no_calls);
    assert_eq!(d.access, cur);
    assert_eq!(d.recheck, Recheck::Keep);
    for state in [AccessState::Accepted, AccessState::Revoked] {
        let settled = AccessStatus {
            state,
            ..sent("inv-1")
        };
        let (_, d) = drive(&input(Some(&settled), Some("dev-1")), no_calls);
        assert_eq!(d.access, settled);
    }
}

#[test]
fn a_re_registered_device_gets_a_new_invite() {
    let cur = AccessStatus {
        state: AccessState::Accepted,
        ..sent("inv-1")
    };
    let (calls, d) = drive(&input(Some(&cur), Some("dev-2")), |c| match c {
        Call::List { .. } => Outcome::Listed(vec![]),
        Call::Create { device_id, .. } => {
            assert_eq!(device_id, "dev-2");
            Outcome::Invite(invite("inv-2", "alice@example.com", false))
        }
        c => panic!("{c:?}"),
    });
    assert_eq!(calls.len(), 2);
    assert_eq!(d.access.device_id.as_deref(), Some("dev-2"));
    assert_eq!(d.access.invite_id.as_deref(), Some("inv-2"));
    assert_eq!(d.access.state, AccessState::Sent);
}

#[test]
fn revoke_deletes_open_invites_and_nothing_is_sent_until_reinvite() {
    let cur = sent("inv-1");
    let mut i = input(Some(&cur), Some("dev-1"));
    i.request = Some("revoke:1");
    let (calls, d) = drive(&i, |c| match c {
        Call::List { .. } => Outcome::Listed(vec![invite("inv-1", "alice@example.com", false)]),
        Call::Delete { .. } => Outcome::Done,
        c => panic!("{c:?}"),
    });
    assert_eq!(
        calls[1],
        Call::Delete {
            invite_id: "inv-1".into()
        }
    );
    assert_eq!(d.access.state, AccessState::Revoked);
    assert_eq!(d.access.sealed_invite_url, None);
    assert_eq!(d.access.handled_request.as_deref(), Some("revoke:1"));
    assert_eq!(d.event.unwrap().reason, "InviteRevoked");

    // Handled once: the same annotation value again does nothing.
    let revoked = d.access;
    let mut again = input(Some(&revoked), Some("dev-1"));
    again.request = Some("revoke:1");
    let (_, d) = drive(&again, no_calls);
    assert_eq!(d.access, revoked);

    // reinvite: a new invite.
    again.request = Some("reinvite:2");
    let (calls, d) = drive(&again, |c| match c {
        Call::List { .. } => Outcome::Listed(vec![]),
        Call::Create { .. } => Outcome::Invite(invite("inv-2", "alice@example.com", false)),
        c => panic!("{c:?}"),
    });
    assert_eq!(calls.len(), 2);
    assert_eq!(d.access.state, AccessState::Sent);
    assert_eq!(d.access.invite_id.as_deref(), Some("inv-2"));
    assert_eq!(d.access.handled_request.as_deref(), Some("reinvite:2"));
}

#[test]
fn reinvite_replaces_an_open_invite() {
    let cur = sent("inv-1");
    let mut i = input(Some(&cur), Some("dev-1"));
    i.request = Some("reinvite:1");
    let (calls, d) = drive(&i, |c| match c {
        Call::List { .. } => Outcome::Listed(vec![invite("inv-1", "alice@example.com", false)]),
        Call::Delete { .. } => Outcome::Done,
        Call::Create { .. } => Outcome::Invite(invite("inv-2", "alice@example.com", false)),
        c => panic!("{c:?}"),
    });
    assert!(matches!(calls[1], Call::Delete { .. }));
    assert!(matches!(calls[2], Call::Create { .. }));
    assert_eq!(d.access.invite_id.as_deref(), Some("inv-2"));
    assert!(
        d.seal.is_some(),
        "the new invite's URL replaces the old sealed one"
    );
    assert_eq!(d.access.last_transition_time.as_deref(), Some(EARLIER));
}

#[test]
fn resend_is_reported_and_a_rate_limit_is_not_retried_hot() {
    let cur = sent("inv-1");
    let mut i = input(Some(&cur), Some("dev-1"));
    i.request = Some("resend:1");
    let (calls, d) = drive(&i, |_| Outcome::Done);
    assert_eq!(
        calls,
        vec![Call::Resend {
            invite_id: "inv-1".into()
        }]
    );
    assert_eq!(d.access.last_sent_time.as_deref(), Some(NOW));
    assert_eq!(d.access.handled_request.as_deref(), Some("resend:1"));

    let limited = InviteError::RateLimited {
        operation: "resend_invite",
        retry_after: Some(Duration::from_secs(90)),
    };
    let (_, d) = drive(&i, |_| Outcome::Failed(limited.clone()));
    assert_eq!(
        d.access.handled_request.as_deref(),
        Some("resend:1"),
        "handled: not retried"
    );
    assert_eq!(d.access.state, AccessState::Sent);
    assert!(d.access.message.unwrap().contains("429"));
    assert_eq!(d.recheck, Recheck::Hold(Duration::from_secs(90)));
    assert!(d.event.unwrap().warning);
}

#[test]
fn a_revoked_client_stays_revoked_when_the_device_goes_away_or_changes() {
    let revoked = AccessStatus {
        state: AccessState::Revoked,
        sealed_invite_url: None,
        handled_request: Some("revoke:1".into()),
        message: Some("revoked; no invite is sent until asked (reinvite:<id>)".into()),
        ..sent("inv-1")
    };
    // The device id goes missing (state Secret lost, sidecar restarting).
    let (calls, d) = drive(&input(Some(&revoked), None), no_calls);
    assert!(calls.is_empty());
    assert_eq!(d.access.state, AccessState::Revoked);
    assert_eq!(d.recheck, Recheck::Clear);
    // It comes back, the same or re-registered under a new id: still no invite.
    let away = d.access;
    for device in ["dev-1", "dev-2"] {
        let (calls, d) = drive(&input(Some(&away), Some(device)), no_calls);
        assert!(calls.is_empty(), "{device}");
        assert_eq!(d.access.state, AccessState::Revoked, "{device}");
        assert_eq!(d.access.device_id.as_deref(), Some(device));
        assert_eq!(d.event, None);
    }
    // Changed directly to a new device.
    let (calls, d) = drive(&input(Some(&revoked), Some("dev-2")), no_calls);
    assert!(calls.is_empty());
    assert_eq!(d.access.state, AccessState::Revoked);
    assert_eq!(d.access.device_id.as_deref(), Some("dev-2"));
    assert_eq!(
        d.access.invite_id, None,
        "the old device's invite is not carried over"
    );
    // Only reinvite creates one, for the new device.
    let moved = d.access;
    let mut i = input(Some(&moved), Some("dev-2"));
    i.request = Some("reinvite:2");
    let (calls, d) = drive(&i, |c| match c {
        Call::List { device_id } => {
            assert_eq!(device_id, "dev-2");
            Outcome::Listed(vec![])
        }
        Call::Create { device_id, .. } => {
            assert_eq!(device_id, "dev-2");
            Outcome::Invite(invite("inv-2", "alice@example.com", false))
        }
        c => panic!("{c:?}"),
    });
    assert_eq!(calls.len(), 2);
    assert_eq!(d.access.state, AccessState::Sent);
}

#[test]
fn requests_wait_for_a_running_backoff_or_retry_after() {
    let cur = sent("inv-1");
    for request in ["resend:1", "reinvite:1", "revoke:1"] {
        let mut i = input(Some(&cur), Some("dev-1"));
        i.request = Some(request);
        i.due = false;
        i.holding = true;
        let (calls, d) = drive(&i, no_calls);
        assert!(calls.is_empty(), "{request}");
        assert_eq!(d.access, cur, "{request}: unhandled, taken up later");
        assert_eq!(d.recheck, Recheck::Keep);
    }
    // A poll interval (not a failure's wait) does not delay a request.
    let mut i = input(Some(&cur), Some("dev-1"));
    i.request = Some("resend:1");
    i.due = false;
    let (calls, d) = drive(&i, |_| Outcome::Done);
    assert_eq!(calls.len(), 1);
    assert_eq!(d.access.handled_request.as_deref(), Some("resend:1"));
}

#[test]
fn resending_a_vanished_invite_is_handled_and_says_to_reinvite() {
    let cur = sent("inv-1");
    let mut i = input(Some(&cur), Some("dev-1"));
    i.request = Some("resend:1");
    let (calls, d) = drive(&i, |_| {
        Outcome::Failed(InviteError::NotFound {
            what: "invite inv-1".into(),
        })
    });
    assert_eq!(calls.len(), 1);
    assert_eq!(d.access.handled_request.as_deref(), Some("resend:1"));
    assert_eq!(d.access.state, AccessState::Pending);
    assert_eq!(d.access.sealed_invite_url, None);
    assert!(d.access.message.unwrap().contains("reinvite:<id>"));
    assert_eq!(d.recheck, Recheck::After(POLL));
}

#[test]
fn the_clock_holds_requests_only_during_a_failure_wait() {
    let clock = AccessClock::default();
    assert!(!clock.holding("ns/a"));
    clock.schedule("ns/a", Recheck::After(POLL));
    assert!(!clock.holding("ns/a"), "a poll interval is no hold");
    clock.schedule("ns/a", Recheck::Hold(Duration::from_secs(90)));
    assert!(clock.holding("ns/a"));
    clock.schedule("ns/a", Recheck::Backoff);
    assert!(clock.holding("ns/a"));
    clock.schedule("ns/a", Recheck::Hold(Duration::ZERO));
    assert!(!clock.holding("ns/a"), "over once the wait ends");
}

#[test]
fn tailscale_errors_are_reported_once_and_retried_with_backoff() {
    let refused = InviteError::CredentialRefused { status: 401 };
    let (_, d) = drive(&input(None, Some("dev-1")), |_| {
        Outcome::Failed(refused.clone())
    });
    assert_eq!(d.access.state, AccessState::Pending);
    let message = d.access.message.clone().unwrap();
    assert!(message.contains("user-owned API access token"), "{message}");
    assert_eq!(d.recheck, Recheck::Backoff);
    assert!(d.event.is_some(), "a Warning the first time");
    // The same problem again: no second Warning, status unchanged.
    let failing = d.access;
    let (_, d) = drive(&input(Some(&failing), Some("dev-1")), |_| {
        Outcome::Failed(refused.clone())
    });
    assert_eq!(d.event, None);
    assert_eq!(d.access, failing);
    // A poll failing keeps the invite's state.
    let cur = sent("inv-1");
    let (_, d) = drive(&input(Some(&cur), Some("dev-1")), |_| {
        Outcome::Failed(InviteError::Server {
            operation: "get_invite",
            status: 503,
        })
    });
    assert_eq!(d.access.state, AccessState::Sent);
    assert_eq!(d.access.sealed_invite_url, cur.sealed_invite_url);
}

#[test]
fn an_unreadable_request_is_answered_once() {
    let cur = sent("inv-1");
    let mut i = input(Some(&cur), Some("dev-1"));
    i.request = Some("delete-everything");
    let (calls, d) = drive(&i, no_calls);
    assert!(calls.is_empty());
    assert_eq!(
        d.access.handled_request.as_deref(),
        Some("delete-everything")
    );
    assert!(d.access.message.unwrap().contains("reinvite:<id>"));
}

/// Deletion's invite calls, answered from a list of invites (none of the devices known
/// unless listed).
struct Recorded {
    invites: Vec<Invite>,
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl DeviceInvites for Recorded {
    async fn list(&self, device_id: &str) -> Result<Vec<Invite>, InviteError> {
        self.calls.lock().unwrap().push(format!("list {device_id}"));
        Ok(self.invites.clone())
    }
    async fn create(&self, _: &str, _: &str) -> Result<Invite, InviteError> {
        unreachable!("no invite is created on deletion")
    }
    async fn get(&self, invite_id: &str) -> Result<Invite, InviteError> {
        self.calls.lock().unwrap().push(format!("get {invite_id}"));
        self.invites
            .iter()
            .find(|i| i.id == invite_id)
            .cloned()
            .ok_or(InviteError::NotFound {
                what: format!("invite {invite_id}"),
            })
    }
    async fn delete(&self, invite_id: &str) -> Result<(), InviteError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {invite_id}"));
        Ok(())
    }
    async fn resend(&self, _: &str) -> Result<(), InviteError> {
        unreachable!("no resend on deletion")
    }
}

#[test]
fn without_the_state_secret_deletion_finds_the_invite_in_status() {
    let cur = sent("inv-1");
    assert_eq!(
        cleanup_targets(None, Some(&cur)),
        (Some("dev-1".into()), Some("inv-1".into()))
    );
    assert_eq!(
        cleanup_targets(Some("dev-2".into()), Some(&cur))
            .0
            .as_deref(),
        Some("dev-2"),
        "the state Secret's device wins"
    );
    let accepted = AccessStatus {
        state: AccessState::Accepted,
        ..sent("inv-1")
    };
    assert_eq!(cleanup_targets(None, Some(&accepted)).1, None);
    assert_eq!(cleanup_targets(None, None), (None, None));
}

#[tokio::test]
async fn deletion_revokes_the_recorded_invite_when_no_device_is_known() {
    let api = Recorded {
        invites: vec![invite("inv-1", "alice@example.com", false)],
        calls: Mutex::default(),
    };
    assert_eq!(revoke_open_invites(&api, None, Some("inv-1")).await, Ok(1));
    assert_eq!(
        *api.calls.lock().unwrap(),
        vec!["get inv-1", "delete inv-1"]
    );
    // Accepted or gone: nothing to delete.
    let api = Recorded {
        invites: vec![invite("inv-1", "alice@example.com", true)],
        calls: Mutex::default(),
    };
    assert_eq!(revoke_open_invites(&api, None, Some("inv-1")).await, Ok(0));
    assert_eq!(revoke_open_invites(&api, None, Some("inv-9")).await, Ok(0));
    assert_eq!(revoke_open_invites(&api, None, None).await, Ok(0));
}

#[test]
fn only_transient_revoke_failures_hold_a_deletion() {
    for transient in [
        InviteError::Server {
            operation: "list_invites",
            status: 503,
        },
        InviteError::RateLimited {
            operation: "delete_invite",
            retry_after: None,
        },
        InviteError::Transport {
            operation: "list_invites",
            reason: "connection refused".into(),
        },
    ] {
        assert!(revoke_failure_is_retried(&transient), "{transient:?}");
    }
    for final_ in [
        InviteError::CredentialRefused { status: 401 },
        InviteError::CredentialRefused { status: 403 },
        InviteError::CredentialUnreadable {
            reason: "gone".into(),
        },
    ] {
        assert!(!revoke_failure_is_retried(&final_), "{final_:?}");
    }
}
