//! Issue 13, item 13: the details that make the console trustworthy — confirmation steps,
//! the notice after delete and listing deleted clients, the delete page keeping the volume
//! choice, maxlength matching the server, errors under form labels, cleared secrets said
//! so, console error pages for unreadable paths and queries, a readable and filterable
//! audit log, and a clients list whose first column is its order.

use crate::console_support::*;
use clawhost::api::Assistant;
use clawhost::console::cluster::Cluster;
use clawhost::console::service::{self, NewClient};
use clawhost::console::{Access, routes};
use http::{Method, StatusCode};
use serde_json::json;

async fn assistant(app: &TestApp, name: &str) -> Option<Assistant> {
    app.cluster.get(NS, name).await.unwrap()
}

/// `value` of the attribute `attr` on the `<input>`/`<textarea>` named `name`.
fn attr_of(html: &str, name: &str, attr: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let a = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
    Some(tag[a..a + tag[a..].find('"')?].to_string())
}

/// Text of the first cell of every body row of the first table.
fn first_column(html: &str) -> Vec<String> {
    let body = &html[html.find("<tbody>").unwrap()..html.find("</tbody>").unwrap()];
    body.split("<tr")
        .skip(1)
        .filter_map(|row| {
            let td = &row[row.find("<td")?..];
            let inner = &td[td.find('>')? + 1..td.find("</td>")?];
            // Strip tags: the visible text.
            let mut out = String::new();
            let mut in_tag = false;
            for c in inner.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            Some(out)
        })
        .collect()
}

async fn confirmation_steps(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let page = app.get(&format!("/clients/{id}")).await.body;
    // The client page no longer posts these actions directly: it links to a confirmation.
    for action in ["suspend", "restart", "rotate-token"] {
        let path = format!("/clients/{id}/{action}");
        assert!(
            !page.contains(&format!("action=\"{path}\"")),
            "{action} posts without confirmation"
        );
        assert!(page.contains(&format!("href=\"{path}\"")), "{action} link");
    }
    let audit_before = app.audit_count().await;
    let before = assistant(&app, "acme-legal").await.unwrap();
    for (action, says) in [
        ("rotate-token", "The old token stops working"),
        ("rotate-token", "The new token is shown once"),
        ("rotate-token", "the gateway restarts"),
        ("restart", "unavailable for about a minute"),
        ("suspend", "does not answer until it is resumed"),
    ] {
        let path = format!("/clients/{id}/{action}");
        let r = app.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.body.contains(says), "{path} should say {says:?}");
        assert!(
            r.body
                .contains(&format!("<form method=\"post\" action=\"{path}\">")),
            "{path} holds the real form"
        );
        assert!(r.body.contains(&app.csrf), "{path} form has the CSRF token");
    }
    // Showing a confirmation changes nothing.
    assert_eq!(app.audit_count().await, audit_before);
    let after = assistant(&app, "acme-legal").await.unwrap();
    assert_eq!(before.spec, after.spec);
    assert_eq!(before.metadata.annotations, after.metadata.annotations);
    // The confirmed POST does it (unchanged), and the API needs no confirmation.
    let r = app.post(&format!("/clients/{id}/rotate-token"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("gateway-token"));
    let r = app
        .api(Method::POST, &format!("/api/v1/clients/{id}/restart"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // API tokens: revoke goes through a confirmation too.
    let tokens = app.get("/tokens").await.body;
    let tid = app.ctx.db.list_api_tokens().await.unwrap()[0].id;
    let path = format!("/tokens/{tid}/revoke");
    assert!(!tokens.contains(&format!("action=\"{path}\"")));
    assert!(tokens.contains(&format!("href=\"{path}\"")));
    let r = app.get(&path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("refused (401)"));
    assert!(
        r.body
            .contains(&format!("<form method=\"post\" action=\"{path}\">"))
    );
    // Still working until the form is posted.
    let ok = app.api(Method::GET, "/api/v1/fleet", None).await;
    assert_eq!(ok.status, StatusCode::OK);
    let r = app.post(&path, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Revoked: no confirmation page for it any more.
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    // A deleted client has nothing to confirm: back to its page.
    let cid = app.client_id("bakery-lund").await;
    app.post(
        &format!("/clients/{cid}/delete"),
        &[("confirm", "bakery-lund")],
    )
    .await;
    let r = app.get(&format!("/clients/{cid}/restart")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some(format!("/clients/{cid}").as_str()));
}

async fn delete_notice_and_deleted_list(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let live = app.client_id("bakery-lund").await;
    let r = app
        .post(
            &format!("/clients/{id}/delete"),
            &[("confirm", "acme-legal"), ("retention", "Retain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to = r.location().unwrap().to_string();
    assert_eq!(to, format!("/clients?deleted={id}"));
    let list = app.get(&to).await.body;
    assert!(
        list.contains("Client Acme Legal LLP (acme-legal) was deleted; its volume was retained"),
        "{list}"
    );
    // Not deleted with the volume: a live client id shows no notice (nothing is claimed
    // that did not happen).
    let forged = app.get(&format!("/clients?deleted={live}")).await.body;
    assert!(!forged.contains("was deleted"));
    // Deleted clients are hidden by default and listed on request, marked and linked.
    assert!(!list.contains(&format!("href=\"/clients/{id}\"")));
    let all = app.get("/clients?include_deleted=true").await.body;
    assert!(all.contains(&format!("href=\"/clients/{id}\"")));
    assert!(all.contains("Deleted</span>"));
    assert!(all.contains("name=\"include_deleted\" value=\"true\" checked"));
    let kept = app.get(&format!("/clients/{id}")).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert!(kept.body.contains("was deleted"));
    // The volume-deleted variant.
    let did = app.client_id("chen-studio").await;
    let r = app
        .post(
            &format!("/clients/{did}/delete"),
            &[("confirm", "chen-studio"), ("retention", "Delete")],
        )
        .await;
    let list = app.get(r.location().unwrap()).await.body;
    assert!(list.contains("its volume was deleted with the assistant"));
    // The API: `include_deleted=true`, with `deleted` marked.
    let ids = |v: serde_json::Value| -> Vec<(i64, bool)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["id"].as_i64().unwrap(), i["deleted"].as_bool().unwrap()))
            .collect()
    };
    let default = ids(app.api(Method::GET, "/api/v1/clients", None).await.json());
    assert!(!default.iter().any(|(i, _)| *i == id));
    let with = ids(app
        .api(Method::GET, "/api/v1/clients?include_deleted=true", None)
        .await
        .json());
    assert!(with.contains(&(id, true)) && with.contains(&(live, false)));
}

async fn delete_page_keeps_volume_choice(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    // The Assistant's current choice is Retain; the admin picked Delete but mistyped.
    let form = app.get(&format!("/clients/{id}/delete")).await.body;
    assert!(form.contains("value=\"Retain\" checked"));
    let r = app
        .post(
            &format!("/clients/{id}/delete"),
            &[("confirm", "acme-legal-typo"), ("retention", "Delete")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("value=\"Delete\" checked"), "{}", r.body);
    assert!(!r.body.contains("value=\"Retain\" checked"));
    assert!(assistant(&app, "acme-legal").await.is_some());
}

async fn maxlength_matches_server(app: TestApp) {
    use clawhost::validation::{
        MAX_DNS_LABEL_LEN, MAX_EMAIL_LEN, MAX_NAME_LEN, MAX_OWNER_NAME_CHARS,
    };
    let form = app.get("/clients/new").await.body;
    for (field, limit) in [
        ("name", MAX_OWNER_NAME_CHARS),
        ("email", MAX_EMAIL_LEN),
        ("assistant_name", MAX_NAME_LEN),
        ("notes", service::MAX_NOTES),
        ("tailscale_auth_key", service::MAX_SECRET_INPUT),
        ("tailscale_hostname", MAX_DNS_LABEL_LEN),
        ("model_api_key", service::MAX_SECRET_INPUT),
    ] {
        assert_eq!(
            attr_of(&form, field, "maxlength"),
            Some(limit.to_string()),
            "maxlength of {field}"
        );
    }
    let id = app.client_id("acme-legal").await;
    let page = app.get(&format!("/clients/{id}")).await.body;
    assert_eq!(
        attr_of(&page, "notes", "maxlength"),
        Some(service::MAX_NOTES.to_string())
    );
    // The server agrees at the limit (characters, not bytes) and one past it.
    let at = "É".repeat(MAX_OWNER_NAME_CHARS);
    let over = "É".repeat(MAX_OWNER_NAME_CHARS + 1);
    let ok = new_client_fields(&at, "long-name-ok");
    assert_eq!(
        app.post("/clients", &ok).await.status,
        StatusCode::OK,
        "{MAX_OWNER_NAME_CHARS} characters are accepted"
    );
    let bad = new_client_fields(&over, "long-name-bad");
    let r = app.post("/clients", &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains(&format!(
        "must be at most {MAX_OWNER_NAME_CHARS} characters"
    )));
}

async fn errors_use_form_labels(app: TestApp) {
    let mut f = new_client_fields("Dora", "dora");
    f.retain(|(k, _)| *k != "email");
    f.push(("email", "not-an-email"));
    let r = app.post("/clients", &f).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("<strong>E-mail</strong>: "), "{}", r.body);
    assert!(!r.body.contains("spec.owner.email"), "no Kubernetes path");
    // The API keeps the path as `field` and adds the label.
    let api = app
        .api(
            Method::POST,
            "/api/v1/clients",
            Some(json!({"name": "Dora", "email": "not-an-email", "assistant_name": "dora"})),
        )
        .await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    let p = &api.json()["problems"][0];
    assert_eq!(p["field"], "spec.owner.email");
    assert_eq!(p["label"], "E-mail");
    // Action errors on pages too: the delete confirmation names its field.
    assert_eq!(service::field_label("confirm"), "Confirmation");
    assert_eq!(service::field_label("metadata.name"), "Assistant name");
    assert_eq!(
        service::field_label("spec.gateway.env[0].name"),
        "Model API key"
    );
    assert_eq!(
        service::field_label("spec.tailscale.hostname"),
        "Tailnet machine name"
    );
}

async fn cleared_secrets_are_announced(app: TestApp) {
    let mut f = new_client_fields("Eve", "Bad_Name");
    f.retain(|(k, _)| *k != "model_api_key");
    f.push(("model_api_key", "sk-ant-SECRETMODELKEY"));
    let r = app.post("/clients", &f).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body
            .matches("the key was not kept; enter it again")
            .count(),
        2,
        "both keys were filled in and cleared"
    );
    assert!(!r.body.contains("SECRETMODELKEY") && !r.body.contains("SECRETVALUE123"));
    // Only the key that was filled in is announced.
    let mut f = new_client_fields("Eve", "Bad_Name");
    f.retain(|(k, _)| *k != "model_api_key" && *k != "model_provider");
    let r = app.post("/clients", &f).await;
    assert_eq!(
        r.body
            .matches("the key was not kept; enter it again")
            .count(),
        1
    );
    // A fresh form says nothing about it.
    assert!(!app.get("/clients/new").await.body.contains("not kept"));
    let _ = NewClient::default();
}

async fn unreadable_paths_and_queries(app: TestApp) {
    let r = app.get("/clients/abc").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("<!DOCTYPE html>") && r.body.contains("Not found"));
    assert!(!r.body.contains("Cannot parse"));
    // Every route with an id: a non-numeric one is the console's 404, HTML or JSON.
    let mut checked = 0;
    for route in routes().iter().filter(|r| r.path.contains("{id}")) {
        let uri = route.path.replace("{id}", "abc");
        let r = match route.access {
            Access::Page => app.get(&uri).await,
            Access::Form => app.post(&uri, &[("confirm", "x")]).await,
            Access::Api(_) => app.api(route.method.clone(), &uri, Some(json!({}))).await,
            Access::Public | Access::LoginForm | Access::Handoff | Access::Webhook => continue,
        };
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{} {uri}", route.method);
        let ct = r.headers.get("content-type").unwrap().to_str().unwrap();
        if uri.starts_with("/api/") {
            assert!(ct.starts_with("application/json"), "{uri}: {ct}");
            assert!(r.json()["error"].is_string());
        } else {
            assert!(ct.starts_with("text/html"), "{uri}: {ct}");
        }
        checked += 1;
    }
    assert!(checked >= 20, "checked {checked}");
    // Queries that do not parse: 400, the console's page or a JSON error.
    for uri in [
        "/clients?page=abc",
        "/clients?include_deleted=maybe",
        "/audit?page=x",
    ] {
        let r = app.get(uri).await;
        if r.status == StatusCode::OK {
            continue; // a page that has no such parameter ignores it
        }
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.body.contains("<!DOCTYPE html>"), "{uri}: {}", r.body);
        assert!(!r.body.contains("Failed to deserialize"));
    }
    // A form body that cannot be read (a required field missing): the console's page.
    let id = app.client_id("acme-legal").await;
    let r = app.post(&format!("/clients/{id}/record"), &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("<!DOCTYPE html>") && r.body.contains("The form could not be read"));
    assert!(!r.body.contains("Failed to deserialize"));
    for uri in ["/api/v1/clients?page=abc", "/api/v1/audit?client_id=x"] {
        let r = app.api(Method::GET, uri, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.json()["error"].as_str().unwrap().contains("query"));
    }
}

async fn audit_readable_filtered_paged(app: TestApp) {
    let id = app.client_id("acme-legal").await;
    let r = app
        .post(
            &format!("/clients/{id}/record"),
            &[("billing_status", "past_due"), ("notes", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // The API: before/after are JSON objects, not strings holding JSON.
    let api = app
        .api(
            Method::GET,
            "/api/v1/audit?action=client.update_record",
            None,
        )
        .await
        .json();
    let e = &api["events"][0];
    assert_eq!(e["before"]["billing_status"], "active");
    assert_eq!(e["after"]["billing_status"], "past_due");
    assert_eq!(api["total"], 1);
    // The page: what changed, readably.
    let page = app.get("/audit").await.body;
    assert!(
        page.contains(
            "<bdi class=\"field\">billing_status</bdi>: <bdi class=\"before\">active</bdi> → <bdi class=\"after\">past_due</bdi>"
        ),
        "{page}"
    );
    assert!(!page.contains("{&quot;"), "no raw JSON");
    // Filters: actor, action, client, date range (page and API agree).
    let other = app.client_id("bakery-lund").await;
    app.post(
        &format!("/clients/{other}/record"),
        &[("billing_status", "trial"), ("notes", "")],
    )
    .await;
    app.ctx
        .db
        .audit(
            service::now(),
            "someone-else@example.com",
            "client.restart",
            Some(other),
            "clients/bakery-lund",
            None,
            None,
        )
        .await
        .unwrap();
    let total = |uri: &str| {
        let uri = uri.to_string();
        let app = &app;
        async move {
            let r = app.api(Method::GET, &uri, None).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
            r.json()["total"].as_i64().unwrap()
        }
    };
    assert_eq!(total("/api/v1/audit?action=client.update_record").await, 2);
    assert_eq!(
        total("/api/v1/audit?action=client.update_record&client=acme").await,
        1
    );
    assert_eq!(total("/api/v1/audit?actor=SOMEONE-else").await, 1);
    assert_eq!(total(&format!("/api/v1/audit?client_id={other}")).await, 2);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let tomorrow = today.tomorrow().unwrap();
    let yesterday = today.yesterday().unwrap();
    let all = total("/api/v1/audit").await;
    assert_eq!(
        total(&format!("/api/v1/audit?from={today}&to={today}")).await,
        all
    );
    assert_eq!(total(&format!("/api/v1/audit?from={tomorrow}")).await, 0);
    assert_eq!(total(&format!("/api/v1/audit?to={yesterday}")).await, 0);
    let bad = app
        .api(Method::GET, "/api/v1/audit?from=31.12.2026", None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = app
        .get("/audit?actor=someone-else&action=client.restart")
        .await
        .body;
    assert!(page.contains("1 event<"));
    assert!(page.contains("<option value=\"client.restart\" selected>"));
    // Paged, with the filters kept in the links.
    for i in 0..150 {
        app.ctx
            .db
            .audit(
                service::now(),
                "bulk@example.com",
                "client.restart",
                Some(id),
                &format!("clients/bulk-{i}"),
                None,
                None,
            )
            .await
            .unwrap();
    }
    let p1 = app
        .get("/audit?actor=bulk&action=client.restart")
        .await
        .body;
    assert!(p1.contains("150 events"));
    assert!(p1.contains("Page 1 of 2"));
    assert!(p1.contains("href=\"/audit?page=2&amp;actor=bulk&amp;action=client.restart\""));
    let api2 = app
        .api(Method::GET, "/api/v1/audit?actor=bulk&page=2", None)
        .await
        .json();
    assert_eq!(api2["events"].as_array().unwrap().len(), 50);
    assert_eq!(api2["total"], 150);
}

async fn list_order_matches_first_column(app: TestApp) {
    // A client whose assistant name sorts first but whose client name sorts last.
    let f = new_client_fields("Zeta Zoo", "aaa-first");
    assert_eq!(app.post("/clients", &f).await.status, StatusCode::OK);
    let page = app.get("/clients").await.body;
    let thead = &page[page.find("<thead>").unwrap()..page.find("</thead>").unwrap()];
    let first_th = &thead[thead.find("<th>").unwrap()..thead.find("</th>").unwrap()];
    assert!(
        first_th.contains(">Client ▾<"),
        "first header is the client name, the current order: {first_th}"
    );
    let names = first_column(&page);
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted, "first column is in the list's order");
    assert!(names.last().unwrap().starts_with("Zeta Zoo"), "{names:?}");
    // The other orders: assistant name, newest first, phase.
    let by_assistant = first_column(&app.get("/clients?sort=assistant").await.body);
    assert!(by_assistant[0].starts_with("Zeta Zoo"), "{by_assistant:?}");
    let newest = first_column(&app.get("/clients?sort=created").await.body);
    assert!(newest[0].starts_with("Zeta Zoo"), "{newest:?}");
    let api = app
        .api(Method::GET, "/api/v1/clients?sort=phase", None)
        .await
        .json();
    let phases: Vec<String> = api["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["phase"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = phases.clone();
    sorted.sort();
    assert_eq!(phases, sorted);
    // Paging keeps the order.
    let p = app.get("/clients?sort=assistant&per_page=1").await.body;
    assert!(p.contains("sort=assistant"), "pager links keep the sort");
}

both_backends!(
    confirmation_steps,
    delete_notice_and_deleted_list,
    delete_page_keeps_volume_choice,
    maxlength_matches_server,
    errors_use_form_labels,
    cleared_secrets_are_announced,
    unreadable_paths_and_queries,
    audit_readable_filtered_paged,
    list_order_matches_first_column,
);
