//! Hostile input: HTML/script, Unicode and 10 KB strings are escaped on every page and
//! rejected with a message where invalid; nothing panics.

use crate::console_support::*;
use clawhost::console::routes;
use http::{Method, StatusCode};
use serde_json::json;

const XSS: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'&";
// Bidi controls are refused in names (console_security.rs) but kept in notes.
const UNICODE: &str = "Zoë 東京 مرحبا 👩‍💻";

async fn hostile_values_are_escaped_everywhere(app: TestApp) {
    let name = format!("{XSS} {UNICODE}");
    let notes = format!("{XSS}\n\u{202e}evil\n{}", "n".repeat(10 * 1024));
    let mut fields = new_client_fields(&name, "hostile");
    fields.retain(|(k, _)| *k != "notes");
    fields.push(("notes", &notes));
    let r = app.post("/clients", &fields).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        &r.body[..r.body.len().min(2000)]
    );
    let id = app.client_id("hostile").await;
    let rec = app.ctx.db.client(id).await.unwrap().unwrap();
    assert_eq!(rec.name, name, "stored verbatim");
    assert_eq!(rec.notes, notes);
    // Audit it too (notes before/after are shown on the audit page).
    app.post(
        &format!("/clients/{id}/record"),
        &[("billing_status", "active"), ("notes", &notes)],
    )
    .await;
    let pages = [
        "/clients".to_string(),
        format!("/clients?q={}", urlencoding::encode(XSS)),
        format!("/clients/{id}"),
        format!("/clients/{id}/delete"),
        "/fleet".into(),
        "/usage".into(),
        "/audit".into(),
    ];
    for p in &pages {
        let res = app.get(p).await;
        assert_eq!(res.status, StatusCode::OK, "{p}");
        for raw in ["<script>", "<img src=x", "onerror=alert(1)>"] {
            assert!(!res.body.contains(raw), "{p} contains raw {raw}");
        }
    }
    let detail = app.get(&format!("/clients/{id}")).await.body;
    assert!(
        detail.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "escaped, still readable"
    );
    assert!(detail.contains("東京") && detail.contains("👩‍💻"));
    let search = app
        .get(&format!("/clients?q={}", urlencoding::encode(XSS)))
        .await
        .body;
    assert!(
        search.contains("value=\"&lt;script&gt;"),
        "search box value escaped"
    );
    // JSON keeps the value as data.
    let api = app
        .api(Method::GET, &format!("/api/v1/clients/{id}"), None)
        .await
        .json();
    assert_eq!(api["client"]["name"], name.as_str());
    // CSV defuses formulas.
    let csv = clawhost::console::usage::csv_field("=cmd|' /C calc'!A0");
    assert!(csv.starts_with("'="));
}

async fn invalid_hostile_input_is_rejected_with_a_message(app: TestApp) {
    let long = "x".repeat(10 * 1024);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("name", long.as_str())],
            "must be at most 200 characters",
        ),
        (
            vec![("name", "bell\u{7}")],
            "must not contain control characters",
        ),
        (vec![("email", "<script>@x")], "is not an e-mail address"),
        (
            vec![("assistant_name", "<b>bad</b>")],
            "is not a valid Kubernetes name",
        ),
        (
            vec![("assistant_name", long.as_str())],
            "is not a valid Kubernetes name",
        ),
        // Under the form's label, not the field path (issue 13).
        (vec![("version", "<script>")], "openclaw version</strong>"),
        (vec![("plan", "<i>gold</i>")], "does not exist"),
        (vec![("billing_status", "<x>")], "is not one of"),
        (
            vec![("tailscale_auth_key", long.as_str())],
            "must be at most 4096 characters",
        ),
        (
            vec![("model_provider", "evil<>")],
            "is not a supported provider",
        ),
        (vec![("on_delete", "Shred")], "is not Retain or Delete"),
    ];
    for (over, expect) in cases {
        let mut f = new_client_fields("Valid Name", "valid-name");
        for (k, v) in &over {
            f.retain(|(x, _)| x != k);
            f.push((k, v));
        }
        let r = app.post("/clients", &f).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{over:?}");
        assert!(r.body.contains(expect), "{over:?}: expected {expect:?}");
        assert!(
            !r.body.contains("<script>")
                && !r.body.contains("<b>bad")
                && !r.body.contains("<i>gold"),
            "escaped"
        );
    }
    let too_long_notes = "n".repeat(20_001);
    let id = app.client_id("acme-legal").await;
    let r = app
        .post(
            &format!("/clients/{id}/record"),
            &[("billing_status", "active"), ("notes", &too_long_notes)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("must be at most 20000 characters"));
    // Odd paths, parameters and bodies: 4xx, never a panic or 500.
    for uri in [
        "/clients/-1",
        "/clients/99999999999999999999",
        "/clients?page=0&per_page=100000",
        "/clients?page=abc",
        "/usage?month=%3Cscript%3E",
        "/audit?page=-5",
    ] {
        let s = app.get(uri).await.status;
        assert!(s.is_success() || s.is_client_error(), "{uri}: {s}");
    }
    let r = app
        .api(
            Method::POST,
            "/api/v1/clients",
            Some(json!({"name": ["array"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.api(Method::POST, "/api/v1/clients", Some(json!({"name": long, "email": "a@b.co", "assistant_name": "ok-name", "tailscale_auth_key": "k"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A body over the limit is refused.
    let huge = "a".repeat(300 * 1024);
    let r = app.post("/clients", &[("notes", &huge)]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(!routes().is_empty());
}

both_backends!(
    hostile_values_are_escaped_everywhere,
    invalid_hostile_input_is_rejected_with_a_message
);
