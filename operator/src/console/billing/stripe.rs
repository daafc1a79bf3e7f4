//! The Stripe webhook, pure: the `Stripe-Signature` header (HMAC-SHA256 over
//! `{timestamp}.{payload}`, a tolerance window) and the events that move subscriptions.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::model::{Input, ProviderStatus};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("no v1 signature matches")]
    Mismatch,
    #[error("timestamp outside the tolerance window ({0} s)")]
    Stale(i64),
}

/// The parts of a `Stripe-Signature` header the console uses: the signed timestamp and
/// every `v1` signature (a secret being rolled gives two). `v0` and unknown schemes are
/// ignored, as Stripe's libraries do.
fn parse_header(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match key.trim() {
            "t" => {
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed)?;
                timestamp = Some(t);
            }
            // A v1 that is not hex cannot match: skip it rather than fail the others.
            "v1" => {
                if let Ok(sig) = hex::decode(value.trim()) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    match timestamp {
        Some(t) if !v1.is_empty() => Ok((t, v1)),
        _ => Err(SignatureError::Malformed),
    }
}

fn mac(payload: &[u8], secret: &[u8], timestamp: i64) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Checks `header` (`t=...,v1=...[,v1=...]`) against `payload` and `secret` at `now`.
pub fn verify_signature(
    header: Option<&str>,
    payload: &[u8],
    secret: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let (timestamp, signatures) = parse_header(header)?;
    let expected = mac(payload, secret, timestamp);
    // verify_slice compares in constant time; every candidate is tried.
    let matched = signatures.iter().fold(false, |ok, sig| {
        expected.clone().verify_slice(sig).is_ok() | ok
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    // Checked after the signature, so only the secret's holder learns the clock matters.
    if now.abs_diff(timestamp) > tolerance_secs.max(0).unsigned_abs() {
        return Err(SignatureError::Stale(tolerance_secs));
    }
    Ok(())
}

/// The header a sender with `secret` would send at `timestamp` (tests, the demo).
pub fn sign(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
    let sig = hex::encode(mac(payload, secret, timestamp).finalize().into_bytes());
    format!("t={timestamp},v1={sig}")
}

/// The fields of an event the console uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub type_: String,
    pub created: i64,
    /// `data.object.customer`.
    pub customer: Option<String>,
    /// What it means for the customer's subscription; `None`: acknowledged and ignored.
    pub input: Option<Input>,
    /// `data.object.metadata.clawhost_invoice` of an `invoice.paid`: the console invoice
    /// number the provider collected (the business sets it when it bills our invoice).
    pub console_invoice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not a Stripe event: {0}")]
    Malformed(String),
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `customer` is an id, or the customer object when the sender expanded it.
fn customer_of(object: &Value) -> Option<String> {
    match object.get("customer")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(_) => str_field(&object["customer"], "id").map(str::to_string),
        _ => None,
    }
}

fn provider_status(status: &str) -> Option<ProviderStatus> {
    match status {
        "trialing" => Some(ProviderStatus::Trialing),
        "active" => Some(ProviderStatus::Active),
        "past_due" | "unpaid" | "incomplete" => Some(ProviderStatus::PastDue),
        "canceled" | "incomplete_expired" => Some(ProviderStatus::Canceled),
        // `paused` and statuses newer than this code: acknowledged, not acted on.
        _ => None,
    }
}

/// When a subscription that is still running will end: the period's end when it cancels
/// then (`current_period_end` moved to the items in newer API versions), else `cancel_at`.
fn cancel_at_of(object: &Value) -> Option<i64> {
    let at_period_end = object
        .get("cancel_at_period_end")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let period_end = object
        .get("current_period_end")
        .and_then(Value::as_i64)
        .or_else(|| {
            object
                .pointer("/items/data/0/current_period_end")
                .and_then(Value::as_i64)
        });
    let cancel_at = object.get("cancel_at").and_then(Value::as_i64);
    if at_period_end {
        period_end.or(cancel_at)
    } else {
        cancel_at
    }
}

/// The event types the console acts on.
const MAPPED: [&str; 4] = [
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
];

/// Whether a `customer.subscription.updated` changed the scheduled cancellation: Stripe
/// lists the fields it changed, with their old values, in `data.previous_attributes`.
fn cancel_at_changed(event: &Value) -> bool {
    event
        .pointer("/data/previous_attributes")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("cancel_at") || p.contains_key("cancel_at_period_end"))
}

/// `created` for comparisons with what was applied: one in the future beyond the
/// signature's tolerance (a wrong clock, a forged date) counts as `now`, so it cannot make
/// every later event look stale.
pub fn effective_created(created: i64, now: i64, tolerance: i64) -> i64 {
    if created > now.saturating_add(tolerance) {
        now
    } else {
        created
    }
}

/// Parses an event and maps `invoice.paid`, `invoice.payment_failed`,
/// `customer.subscription.updated` and `customer.subscription.deleted`.
pub fn parse_event(payload: &[u8]) -> Result<Event, EventError> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| EventError::Malformed(format!("invalid JSON ({e})")))?;
    let id = str_field(&v, "id")
        .ok_or_else(|| EventError::Malformed("no \"id\"".into()))?
        .to_string();
    let type_ = str_field(&v, "type")
        .ok_or_else(|| EventError::Malformed("no \"type\"".into()))?
        .to_string();
    // Required of the four mapped types only: any other (a thin event, a newer shape) is
    // acknowledged and ignored, whatever its fields.
    let created = match (
        v.get("created").and_then(Value::as_i64),
        MAPPED.contains(&type_.as_str()),
    ) {
        (Some(created), _) => created,
        (None, false) => 0,
        (None, true) => {
            return Err(EventError::Malformed("no \"created\" timestamp".into()));
        }
    };
    let object = v.pointer("/data/object").unwrap_or(&Value::Null);
    let customer = customer_of(object);
    let reference = || {
        str_field(object, "number")
            .or_else(|| str_field(object, "id"))
            .unwrap_or_default()
            .to_string()
    };
    let input = match type_.as_str() {
        "invoice.paid" => Some(Input::PaymentSucceeded {
            at: created,
            reference: reference(),
        }),
        "invoice.payment_failed" => Some(Input::PaymentFailed {
            at: created,
            reference: reference(),
        }),
        "customer.subscription.updated" => str_field(object, "status")
            .and_then(provider_status)
            .map(|status| Input::ProviderStatus {
                status,
                cancel_at: (status != ProviderStatus::Canceled)
                    .then(|| cancel_at_of(object))
                    .flatten(),
                cancel_at_changed: cancel_at_changed(&v),
            }),
        "customer.subscription.deleted" => Some(Input::ProviderStatus {
            status: ProviderStatus::Canceled,
            cancel_at: None,
            cancel_at_changed: false,
        }),
        _ => None,
    };
    let console_invoice = (type_ == "invoice.paid")
        .then(|| {
            object
                .get("metadata")
                .and_then(|m| str_field(m, "clawhost_invoice"))
        })
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Ok(Event {
        id,
        type_,
        created,
        customer,
        input,
        console_invoice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const PAYLOAD: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    /// HMAC-SHA256(SECRET, "1492774577." + PAYLOAD), computed independently (Python's hmac).
    const KNOWN_V1: &str = "654b43d3508ecadb3f8cefc4bc7d3d2bdc5ba9e03bf2c89b2d0657a8e24e4543";
    const T: i64 = 1_492_774_577;

    fn verify(header: &str, now: i64) -> Result<(), SignatureError> {
        verify_signature(Some(header), PAYLOAD, SECRET, now, 300)
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        assert_eq!(sign(PAYLOAD, SECRET, T), format!("t={T},v1={KNOWN_V1}"));
    }

    #[test]
    fn stripe_documented_header_format_verifies() {
        // Stripe's documented shape: t, then v1, with a v0 (test-mode scheme) ignored.
        let header = format!(
            "t={T},v1={KNOWN_V1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
        );
        assert_eq!(verify(&header, T), Ok(()));
        // Order and spaces do not matter.
        assert_eq!(verify(&format!(" v1={KNOWN_V1} , t={T}"), T + 10), Ok(()));
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let header = sign(PAYLOAD, b"whsec_other", T);
        assert_eq!(verify(&header, T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn tampered_payload_or_timestamp_is_a_mismatch() {
        let header = sign(PAYLOAD, SECRET, T);
        let tampered = br#"{"id":"evt_2","object":"event"}"#;
        assert_eq!(
            verify_signature(Some(&header), tampered, SECRET, T, 300),
            Err(SignatureError::Mismatch)
        );
        // The signature binds the timestamp: moving it forward breaks it.
        let moved = format!("t={},v1={KNOWN_V1}", T + 1);
        assert_eq!(verify(&moved, T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_either_way_beyond_the_tolerance() {
        let header = sign(PAYLOAD, SECRET, T);
        assert_eq!(verify(&header, T + 300), Ok(()));
        assert_eq!(verify(&header, T - 300), Ok(()));
        assert_eq!(verify(&header, T + 301), Err(SignatureError::Stale(300)));
        assert_eq!(verify(&header, T - 301), Err(SignatureError::Stale(300)));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let other = sign(PAYLOAD, b"whsec_old", T);
        let old_sig = other.split("v1=").nth(1).unwrap();
        let header = format!("t={T},v1={old_sig},v1=zz-not-hex,v1={KNOWN_V1}");
        assert_eq!(verify(&header, T), Ok(()));
        let none = format!("t={T},v1={old_sig},v1={old_sig}");
        assert_eq!(verify(&none, T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn garbage_headers_are_refused() {
        assert_eq!(
            verify_signature(None, PAYLOAD, SECRET, T, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(verify("  ", T), Err(SignatureError::Missing));
        for bad in [
            "garbage",
            "t=abc,v1=00",
            &format!("v1={KNOWN_V1}"),
            &format!("t={T}"),
            &format!("t={T},v0={KNOWN_V1}"),
            &format!("t={T},v1=not-hex"),
            "t=,v1=",
        ] {
            assert_eq!(verify(bad, T), Err(SignatureError::Malformed), "{bad}");
        }
    }

    fn event(type_: &str, object: serde_json::Value) -> Event {
        let body = serde_json::json!({
            "id": "evt_123", "object": "event", "type": type_, "created": 1_700_000_000,
            "data": {"object": object},
        });
        parse_event(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn invoice_events_map_to_payments_with_the_number_as_reference() {
        let e = event(
            "invoice.payment_failed",
            serde_json::json!({"id": "in_1", "object": "invoice", "customer": "cus_A", "number": "ABC-0001"}),
        );
        assert_eq!(e.id, "evt_123");
        assert_eq!(e.type_, "invoice.payment_failed");
        assert_eq!(e.created, 1_700_000_000);
        assert_eq!(e.customer.as_deref(), Some("cus_A"));
        assert_eq!(
            e.input,
            Some(Input::PaymentFailed {
                at: 1_700_000_000,
                reference: "ABC-0001".into()
            })
        );
        // Without a number (a draft), the invoice id; an expanded customer object.
        let e = event(
            "invoice.paid",
            serde_json::json!({"id": "in_2", "customer": {"id": "cus_B", "object": "customer"}}),
        );
        assert_eq!(e.customer.as_deref(), Some("cus_B"));
        assert_eq!(
            e.input,
            Some(Input::PaymentSucceeded {
                at: 1_700_000_000,
                reference: "in_2".into()
            })
        );
    }

    #[test]
    fn subscription_statuses_map_to_provider_statuses() {
        let cases = [
            ("trialing", Some(ProviderStatus::Trialing)),
            ("active", Some(ProviderStatus::Active)),
            ("past_due", Some(ProviderStatus::PastDue)),
            ("unpaid", Some(ProviderStatus::PastDue)),
            ("incomplete", Some(ProviderStatus::PastDue)),
            ("canceled", Some(ProviderStatus::Canceled)),
            ("incomplete_expired", Some(ProviderStatus::Canceled)),
            ("paused", None),
        ];
        for (status, want) in cases {
            let e = event(
                "customer.subscription.updated",
                serde_json::json!({"id": "sub_1", "customer": "cus_A", "status": status}),
            );
            let got = match e.input {
                Some(Input::ProviderStatus {
                    status,
                    cancel_at,
                    cancel_at_changed,
                }) => {
                    assert_eq!(cancel_at, None);
                    assert!(!cancel_at_changed);
                    Some(status)
                }
                None => None,
                other => panic!("{other:?}"),
            };
            assert_eq!(got, want, "{status}");
        }
        let e = event(
            "customer.subscription.deleted",
            serde_json::json!({"id": "sub_1", "customer": "cus_A", "status": "active"}),
        );
        assert_eq!(
            e.input,
            Some(Input::ProviderStatus {
                status: ProviderStatus::Canceled,
                cancel_at: None,
                cancel_at_changed: false
            })
        );
    }

    #[test]
    fn a_scheduled_cancellation_carries_its_date() {
        let at_period_end = event(
            "customer.subscription.updated",
            serde_json::json!({"customer": "cus_A", "status": "active",
                "cancel_at_period_end": true, "current_period_end": 1_701_000_000}),
        );
        assert_eq!(
            at_period_end.input,
            Some(Input::ProviderStatus {
                status: ProviderStatus::Active,
                cancel_at: Some(1_701_000_000),
                cancel_at_changed: false
            })
        );
        let newer_api = event(
            "customer.subscription.updated",
            serde_json::json!({"customer": "cus_A", "status": "active", "cancel_at_period_end": true,
                "items": {"data": [{"current_period_end": 1_702_000_000}]}}),
        );
        assert!(matches!(
            newer_api.input,
            Some(Input::ProviderStatus {
                cancel_at: Some(1_702_000_000),
                ..
            })
        ));
        let cancel_at = event(
            "customer.subscription.updated",
            serde_json::json!({"customer": "cus_A", "status": "trialing",
                "cancel_at_period_end": false, "current_period_end": 1, "cancel_at": 1_703_000_000}),
        );
        assert!(matches!(
            cancel_at.input,
            Some(Input::ProviderStatus {
                status: ProviderStatus::Trialing,
                cancel_at: Some(1_703_000_000),
                ..
            })
        ));
    }

    #[test]
    fn only_a_change_listed_in_previous_attributes_moves_the_schedule() {
        let updated = |previous: serde_json::Value| {
            let body = serde_json::json!({
                "id": "evt_9", "type": "customer.subscription.updated", "created": 1_700_000_000,
                "data": {"object": {"customer": "cus_A", "status": "active", "cancel_at": null},
                         "previous_attributes": previous},
            });
            match parse_event(body.to_string().as_bytes()).unwrap().input {
                Some(Input::ProviderStatus {
                    cancel_at_changed, ..
                }) => cancel_at_changed,
                other => panic!("{other:?}"),
            }
        };
        assert!(!updated(serde_json::json!({"status": "past_due"})));
        assert!(!updated(serde_json::Value::Null));
        assert!(updated(serde_json::json!({"cancel_at": 1_701_000_000})));
        assert!(updated(serde_json::json!({"cancel_at_period_end": true})));
    }

    #[test]
    fn other_types_need_no_created_and_a_future_one_is_clamped() {
        for thin in [
            &br#"{"id":"evt_t","type":"v1.billing.meter.error_report_triggered","created":"2024-09-26T18:21:33.000Z"}"#[..],
            br#"{"id":"evt_t","type":"charge.succeeded"}"#,
        ] {
            let e = parse_event(thin).unwrap();
            assert_eq!(e.input, None);
        }
        assert!(
            parse_event(br#"{"id":"evt_t","type":"invoice.paid","created":"2024-09-26"}"#).is_err()
        );
        assert_eq!(effective_created(1_000 + 301, 1_000, 300), 1_000);
        assert_eq!(effective_created(1_000 + 300, 1_000, 300), 1_300);
        assert_eq!(effective_created(10, 1_000, 300), 10);
    }

    #[test]
    fn unknown_types_are_acknowledged_without_input() {
        let e = event(
            "charge.succeeded",
            serde_json::json!({"id": "ch_1", "customer": "cus_A"}),
        );
        assert_eq!(e.customer.as_deref(), Some("cus_A"));
        assert_eq!(e.input, None);
    }

    #[test]
    fn malformed_events_are_refused() {
        for bad in [
            &b"not json"[..],
            br#"[1,2]"#,
            br#"{"type":"invoice.paid","created":1}"#,
            br#"{"id":"evt_1","created":1}"#,
            br#"{"id":"evt_1","type":"invoice.paid"}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":"yesterday"}"#,
        ] {
            assert!(
                parse_event(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
