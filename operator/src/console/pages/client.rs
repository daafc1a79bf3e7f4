//! One client: its record, its Assistant, events, log, usage and the actions.

use crate::console::extract::{Form, Path, Query};
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    Nav, csrf, fmt_rfc3339_ago, fmt_time, fmt_time_ago, layout, no_store, opt, phase_badge,
    ready_badge,
};
use crate::children::GatewayToken;
use crate::console::service::{self, BILLING_STATUSES, DeleteRequest, RecordUpdate};
use crate::console::{Ctx, Session};

#[derive(Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    done: Option<String>,
}

/// Fixed texts only: a notice never reflects request content.
fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "suspended" => "The assistant is being suspended.",
        "resumed" => "The assistant is being resumed.",
        "restarted" => "A restart of the gateway was requested.",
        "version" => "The openclaw version was changed; the gateway rolls to it.",
        "plan" => {
            "A plan change was requested. The Plan line below shows whether the operator has applied it; usage is billed on the plan observed running."
        }
        "record" => "The client record was saved.",
        "access-resend" => {
            "Resending the invite was requested; the operator asks Tailscale to e-mail it again."
        }
        "access-revoke" => "Revoking the invite was requested; the operator deletes it.",
        "access-reinvite" => "A new invite was requested; the operator sends it.",
        "backup-requested" => {
            "A snapshot was requested; the operator takes it at once and it appears in the Backups card."
        }
        "restored" => {
            "The restore was started: the assistant is suspended while a new volume is made from the snapshot. The previous volume is kept (retained). Resume the client once the new claim exists (status.storage.claimName names it), then wait for Ready."
        }
        "final-snapshot-skipped" => {
            "Deleting without a final snapshot was requested: the operator deletes the volume now."
        }
        "adopted" => {
            "The Assistant was adopted: this client record is now linked to it, and its running minutes are billed from now on."
        }
        // The subscription panel's notices.
        other => return super::billing::subscription::notice_text(other),
    })
}

pub async fn show(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Query(n): Query<Notice>,
) -> Response {
    let d = match service::client_detail(&ctx, id).await {
        Ok(d) => d,
        Err(e) => return super::action_error(&ctx, &s, &e, "/clients"),
    };
    let v = &d.view;
    let r = &v.record;
    let ok = d.cluster_error.is_none();
    let a = v.assistant.as_deref();
    let deleted = r.deleted_at.is_some();
    let suspended = a.is_some_and(|a| a.spec.suspended);
    let g = a.map(|a| a.gateway()).unwrap_or_default();
    let st = a.map(|a| a.storage()).unwrap_or_default();
    let ts = a.map(|a| a.tailscale()).unwrap_or_default();
    let status = a.and_then(|a| a.status.clone()).unwrap_or_default();
    let plan = a.map(|a| service::plan_of(a, &ctx.config.default_plan));
    let rollout = a.map(|a| service::plan_rollout(a, &ctx.config.default_plan));
    let now = service::now();
    let phase = v.phase(ok);
    let links = super::access::links_of(&ctx, id).await;
    let subscription = super::billing::subscription::panel(&ctx, &s, r, now).await;
    // A subscription sets the billing status: shown read-only then.
    let subscribed = matches!(ctx.db.subscription(r.id).await, Ok(Some(_)));
    let backups = match a {
        Some(a) if ok => Some(service::backups::client_backups(&ctx, a).await),
        _ => None,
    };
    let body = html! {
        @if let Some(t) = n.done.as_deref().and_then(notice_text) { div.notice { (t) } }
        div.titlebar {
            div {
                h1.wrap { bdi { (r.name) } }
                div.dim.wrap { code { (r.namespace) "/" (r.assistant_name) } " · " (r.email) }
            }
            div {
                (phase_badge(phase)) " " (ready_badge(v.ready()))
                @if let Some(p) = v.last_known_phase(ok) { " " span.dim.stale { "last known: " (p) } }
            }
        }
        @if deleted { ul.errors { li { "This client was deleted on " (fmt_time(r.deleted_at.unwrap_or_default())) "; the record is kept for invoicing." } } }
        @if !deleted && !ok {
            div.panel {
                h2 { "Actions" }
                // Offered on last-known state they would act on a guess (and answer 503).
                p.dim { "Actions are unavailable while the cluster is unreachable; the state above is the last known." }
            }
        }
        @if !deleted && a.is_some() && ok {
            div.panel {
                h2 { "Actions" }
                div.actions {
                    @if suspended {
                        form method="post" action={ "/clients/" (r.id) "/resume" } { (csrf(&s)) button type="submit" { "Resume" } }
                    } @else {
                        // Suspend, restart and rotate lead to a confirmation page (GET) holding the real form.
                        a.button href={ "/clients/" (r.id) "/suspend" } { "Suspend…" }
                    }
                    a.button href={ "/clients/" (r.id) "/restart" } { "Restart…" }
                    form method="post" action={ "/clients/" (r.id) "/version" } {
                        (csrf(&s))
                        input type="text" name="version" size="12" value=[g.version.as_deref()] placeholder=(ctx.config.gateway.default_version) aria-label="openclaw version";
                        button type="submit" { "Change version" }
                    }
                    form method="post" action={ "/clients/" (r.id) "/plan" } {
                        (csrf(&s))
                        select name="plan" aria-label="Plan" {
                            // The live plan: preselecting anything else would revert a kubectl change.
                            @for p in ctx.config.plans.keys() { option value=(p) selected[plan.as_deref() == Some(p.as_str())] { (p) } }
                        }
                        button type="submit" { "Change plan" }
                    }
                    a.button href={ "/clients/" (r.id) "/rotate-token" } { "Rotate gateway token…" }
                    a.button.danger href={ "/clients/" (r.id) "/delete" } { "Delete…" }
                }
            }
        }
        @if !deleted {
            (super::access::panel(r, a, &links, a.is_some() && ok, now))
        }
        @if let Some(b) = &backups {
            @if !deleted { (super::backups::card(r, b, &s, ok, now)) }
        }
        // A deleted client whose Assistant still waits on a failed final snapshot.
        @if deleted && ok { (super::backups::delete_note(r, a, &s)) }
        (subscription)
        div.grid {
            div.panel {
                h2 { "Assistant" }
                @if let Some(e) = &d.cluster_error {
                    p.error { "Instance state unavailable: " (e) }
                    @if a.is_some() { p.dim { "Below: the Assistant as last seen, which may no longer be current." } }
                }
                @if let Some(a) = a {
                    dl.kv {
                        dt { "Plan" } dd {
                            (plan.as_deref().unwrap_or_default())
                            @if let Some(r) = rollout.as_ref().filter(|_| ok) {
                                @match r.state {
                                    "applied" => { " " span.badge.ok #plan-rollout { "applied" } },
                                    "pending" => { " " span.badge.warn #plan-rollout { "not applied yet" } },
                                    _ => { " " span.badge.bad #plan-rollout { "refused by the operator" } },
                                }
                                @if let Some(m) = &r.message { br; span.dim.wrap { (m) } }
                            }
                        }
                        dt { "Version" } dd { (opt(v.version().as_deref())) @if g.version.is_none() { span.dim { " (fleet default)" } } }
                        dt { "Image" } dd { (opt(status.image.as_deref().or(g.image.as_deref()))) }
                        dt { "Suspended" } dd { (if a.spec.suspended { "yes" } else { "no" }) }
                        dt { "Storage" } dd { (st.size.as_deref().unwrap_or("plan default")) " · class " (st.storage_class_name.as_deref().unwrap_or("default")) " · on delete " strong { (format!("{:?}", st.on_delete)) } }
                        dt { "Tailnet" } dd { (opt(v.tailnet().as_deref())) }
                        dt { "Tailscale" } dd {
                            "hostname " (ts.hostname.as_deref().unwrap_or("derived"))
                            @if !ts.tags.is_empty() { " · tags " (ts.tags.join(", ")) }
                            @if ts.funnel { " · Funnel on" }
                        }
                        dt { "Environment" } dd {
                            // Names only: values may be credentials.
                            @if g.env.is_empty() { span.dim { "—" } }
                            @for e in &g.env { code { (e.name) } " " }
                        }
                        dt { "Gateway token" } dd { code { (opt(status.gateway_token_secret.as_deref())) } span.dim { " (Secret; value never shown)" } }
                        dt { "Created" } dd { (fmt_time(v.created())) }
                    }
                } @else if d.cluster_error.is_none() {
                    p.dim { "The cluster has no Assistant " code { (r.assistant_name) } "." }
                }
            }
            div.panel {
                h2 { "Client record" }
                form method="post" action={ "/clients/" (r.id) "/record" } {
                    (csrf(&s))
                    dl.kv {
                        dt { "Billing status" }
                        @if subscribed {
                            dd { input type="hidden" name="billing_status" value=(r.billing_status); (r.billing_status) span.dim { " (set by the subscription)" } }
                        } @else {
                            dd { select name="billing_status" disabled[deleted] {
                                @for b in BILLING_STATUSES { option value=(b) selected[r.billing_status == b] { (b) } }
                            } }
                        }
                        dt { "Usage " (d.month) } dd { strong { (format!("{:.1}", d.usage_minutes as f64 / 60.0)) " h" } span.dim { " (" (d.usage_minutes) " running minutes)" } }
                        dt { "Client since" } dd { (fmt_time(r.created_at)) }
                    }
                    p { label for="notes" { "Notes" } }
                    textarea #notes name="notes" disabled[deleted] maxlength=(service::MAX_NOTES) { (r.notes) }
                    @if !deleted { p { button type="submit" { "Save record" } } }
                }
            }
        }
        div.panel {
            h2 { "Conditions" }
            table {
                thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } th { "Since" } } }
                tbody {
                    @for c in &status.conditions {
                        tr {
                            td { (c.type_) }
                            td { @if c.status == "True" { span.badge.ok { "True" } } @else { span.badge.warn { (c.status) } } }
                            td { (c.reason) }
                            td.wrap { (c.message) }
                            td { (fmt_time_ago(c.last_transition_time.0.as_second(), now)) }
                        }
                    }
                    @if status.conditions.is_empty() { tr { td colspan="5" .dim { "No conditions reported." } } }
                }
            }
        }
        div.panel {
            h2 { "Recent events" }
            @match &d.events {
                Err(e) => p.error { (e) },
                Ok(evs) => table {
                    thead { tr { th { "Type" } th { "Reason" } th { "Object" } th { "Message" } th.num { "Count" } th { "Last seen" } } }
                    tbody {
                        @for e in evs {
                            tr {
                                td { @if e.type_ == "Warning" { span.badge.warn { (e.type_) } } @else { (e.type_) } }
                                td { (e.reason) } td { (e.object) } td.wrap { (e.message) }
                                td.num { (e.count) }
                                td { (opt(e.last_seen.as_deref().map(|t| fmt_rfc3339_ago(t, now)).as_deref())) }
                            }
                        }
                        @if evs.is_empty() { tr { td colspan="6" .dim { "No recent events." } } }
                    }
                },
            }
        }
        div.panel {
            h2 { "Gateway log " span.dim { "(last " (service::LOG_LINES) " lines)" } }
            @match &d.log {
                Err(e) => p.error { (e) },
                Ok(Some(l)) if !l.trim().is_empty() => pre.log { (l) },
                // An empty box says nothing: say why there is no log.
                Ok(l) => p.dim.no-log { (no_log_text(suspended, phase, l.is_some())) },
            }
        }
        div.panel {
            h2 { "Audit trail" }
            (super::audit::audit_table(&d.audit, false))
        }
    };
    layout(&ctx, &s, Nav::Clients, &r.name, body).into_response()
}

/// Why the gateway log is empty, for the log panel.
fn no_log_text(suspended: bool, phase: &str, pod_exists: bool) -> String {
    if suspended {
        "No log lines: the assistant is suspended, so no gateway pod runs.".into()
    } else if pod_exists {
        "No log lines yet: the gateway has not written any output since it started.".into()
    } else {
        format!(
            "No log lines yet: the gateway pod has not started (phase {phase}); the conditions and events above say why."
        )
    }
}

/// The page that shows a new gateway token, once.
pub fn token_page(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    title: &str,
    token: &GatewayToken,
    warnings: &[String],
) -> Markup {
    let body = html! {
        h1 { (title) }
        @if !warnings.is_empty() { ul.errors { @for w in warnings { li { (w) } } } }
        div.secret {
            strong { "Gateway token" }
            p { "Give this token to the client for their devices. It is shown only now: it is not stored by the console and cannot be displayed again (rotate it to issue a new one)." }
            code #gateway-token { (token.expose()) }
        }
        p { a.button.primary href={ "/clients/" (id) } { "Continue to the client" } }
    };
    layout(ctx, s, Nav::Clients, title, body)
}

pub(super) fn done(id: i64, what: &str) -> Response {
    Redirect::to(&format!("/clients/{id}?done={what}")).into_response()
}

fn outcome(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    r: Result<(), service::ActionError>,
    what: &str,
) -> Response {
    match r {
        Ok(()) => done(id, what),
        Err(e) => super::action_error(ctx, s, &e, &format!("/clients/{id}")),
    }
}

pub async fn suspend(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    let r = service::set_suspended(&ctx, &s.admin, id, true).await;
    outcome(&ctx, &s, id, r, "suspended")
}

pub async fn resume(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    let r = service::set_suspended(&ctx, &s.admin, id, false).await;
    outcome(&ctx, &s, id, r, "resumed")
}

pub async fn restart(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    let r = service::restart(&ctx, &s.admin, id).await;
    outcome(&ctx, &s, id, r, "restarted")
}

#[derive(Deserialize)]
pub struct VersionForm {
    #[serde(default)]
    version: String,
    /// Set by the second step of a downgrade ("yes").
    #[serde(default)]
    confirm_downgrade: String,
}

/// The second step of a downgrade: says what happens and asks again (no JavaScript).
fn downgrade_page(ctx: &Ctx, s: &Session, id: i64, from: &str, to: &str, version: &str) -> Markup {
    let body = html! {
        h1 { "Confirm the downgrade" }
        div.panel.danger-zone {
            p { strong { "Downgrade from " (from) " to " (to) "." } }
            p { "The gateway restarts with the older openclaw release. It may not read the configuration and state files the newer release wrote; keep a backup of the client's volume before going back." }
            form method="post" action={ "/clients/" (id) "/version" } {
                (csrf(s))
                input type="hidden" name="version" value=(version);
                input type="hidden" name="confirm_downgrade" value="yes";
                div.actions {
                    button.danger type="submit" { "Downgrade to " (to) }
                    a.button href={ "/clients/" (id) } { "Cancel" }
                }
            }
        }
    };
    layout(ctx, s, Nav::Clients, "Confirm the downgrade", body)
}

pub async fn version(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(f): Form<VersionForm>,
) -> Response {
    let confirmed = f.confirm_downgrade == "yes";
    match service::change_version(&ctx, &s.admin, id, &f.version, confirmed).await {
        Ok(()) => done(id, "version"),
        Err(service::ActionError::Downgrade { from, to }) => (
            http::StatusCode::CONFLICT,
            downgrade_page(&ctx, &s, id, &from, &to, f.version.trim()),
        )
            .into_response(),
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

#[derive(Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    plan: String,
}

pub async fn plan(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(f): Form<PlanForm>,
) -> Response {
    match service::change_plan(&ctx, &s.admin, id, &f.plan).await {
        Ok(()) => done(id, "plan"),
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

pub async fn rotate_token(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    // Rotating also issues a new handoff link (the old ones would reveal a dead token).
    match service::handoff::create_handoff(&ctx, &s.admin, id).await {
        Ok(h) => match (&h.link, ctx.db.client(id).await) {
            (Some(link), Ok(Some(c))) => no_store(super::access::link_page(
                &ctx,
                &s,
                &c,
                "Gateway token rotated",
                link,
                Some(&h.token),
                &h.warnings,
            )),
            _ => no_store(token_page(
                &ctx,
                &s,
                id,
                "Gateway token rotated",
                &h.token,
                &h.warnings,
            )),
        },
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

pub async fn record(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(f): Form<RecordUpdate>,
) -> Response {
    match service::update_record(&ctx, &s.admin, id, &f).await {
        Ok(()) => done(id, "record"),
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

/// The delete page's forms: the deletion, or (when a failed final snapshot holds it)
/// deleting the volume without one.
#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    retention: Option<String>,
    /// `"true"`: set `clawhost.dev/skip-final-snapshot` instead of deleting.
    #[serde(default)]
    skip_final_snapshot: Option<String>,
}

/// `chosen`: the volume choice of a refused submit, kept so a typo in the confirmation does
/// not silently switch the choice back to the Assistant's current one.
fn delete_page(
    ctx: &Ctx,
    s: &Session,
    d: &service::ClientDetail,
    error: Option<&str>,
    chosen: Option<&str>,
) -> Markup {
    let r = &d.view.record;
    let current = d.view.assistant.as_ref().map(|a| a.storage().on_delete);
    let retain = match chosen {
        Some("Delete") => false,
        Some("Retain") => true,
        _ => current != Some(crate::api::OnDelete::Delete),
    };
    let body = html! {
        h1.wrap { "Delete " bdi { (r.name) } }
        div.panel.danger-zone {
            @if let Some(e) = error { ul.errors { li { (e) } } }
            @if r.deleted_at.is_none() {
            p { "This deletes the Assistant " code { (r.namespace) "/" (r.assistant_name) } ", its gateway and its Secrets. The client record and usage stay for invoicing." }
            form method="post" action={ "/clients/" (r.id) "/delete" } {
                (csrf(s))
                p { strong { "The client's volume:" } }
                p { label { input type="radio" name="retention" value="Retain" checked[retain]; " Retain — keep the data volume (it is unlinked and labelled retained)" } }
                p { label { input type="radio" name="retention" value="Delete" checked[!retain]; " Delete — destroy the client's data with the assistant" } }
                p { label for="confirm" { "Type " code { (r.assistant_name) } " to confirm:" } }
                p { input #confirm type="text" name="confirm" autocomplete="off" required maxlength=(crate::validation::MAX_NAME_LEN); }
                div.actions {
                    button.danger type="submit" { "Delete client" }
                    a.button href={ "/clients/" (r.id) } { "Cancel" }
                }
            }
            }
            (super::backups::delete_note(r, d.view.assistant.as_deref(), s))
        }
    };
    layout(ctx, s, Nav::Clients, "Delete client", body)
}

pub async fn delete_form(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    match service::client_detail(&ctx, id).await {
        Ok(d) if d.view.record.deleted_at.is_none() => {
            delete_page(&ctx, &s, &d, None, None).into_response()
        }
        // Deleted, but its Assistant waits on a failed final snapshot: the way out.
        Ok(d)
            if d.view.assistant.as_deref().is_some_and(|a| {
                service::backups::condition(a, service::backups::BACKUP_HEALTHY)
                    .is_some_and(|c| c.reason == service::backups::FINAL_SNAPSHOT_FAILED)
            }) =>
        {
            delete_page(&ctx, &s, &d, None, None).into_response()
        }
        Ok(_) => Redirect::to(&format!("/clients/{id}")).into_response(),
        Err(e) => super::action_error(&ctx, &s, &e, "/clients"),
    }
}

pub async fn delete(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let f = DeleteRequest {
        confirm: form.confirm,
        retention: form.retention,
    };
    if form.skip_final_snapshot.as_deref() == Some("true") {
        return match service::backups::skip_final_snapshot(&ctx, &s.admin, id, &f.confirm).await {
            Ok(()) => super::backups::skipped(id),
            Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}/delete")),
        };
    }
    match service::delete_client(&ctx, &s.admin, id, &f).await {
        // The list says what happened (see `clients::deleted_notice`).
        Ok(()) => Redirect::to(&format!("/clients?deleted={id}")).into_response(),
        Err(service::ActionError::Invalid(errs)) => match service::client_detail(&ctx, id).await {
            Ok(d) => {
                let msg = errs
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    delete_page(&ctx, &s, &d, Some(&msg), f.retention.as_deref()),
                )
                    .into_response()
            }
            Err(e) => super::action_error(&ctx, &s, &e, "/clients"),
        },
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}
