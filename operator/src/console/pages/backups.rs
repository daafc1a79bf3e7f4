//! Backups: a client's Backups card, "Back up now", the in-place restore's confirmation,
//! and Fleet → Backups (docs/console.md).

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Nav, csrf, fmt_rfc3339_ago, fmt_time, fmt_time_ago, layout, opt};
use crate::api::Assistant;
use crate::console::db::ClientRow;
use crate::console::extract::{Form, Path};
use crate::console::service::backups::{
    self as svc, ClientBackups, RestoreRequest, snapshot_state,
};
use crate::console::service::{self, ActionError};
use crate::console::{Ctx, Session};

fn health_badge(status: &str) -> Markup {
    match status {
        "True" => html! { span.badge.ok { "Healthy" } },
        "False" => html! { span.badge.bad { "Unhealthy" } },
        _ => html! { span.badge.muted { "Off" } },
    }
}

fn state_badge(state: &str) -> Markup {
    match state {
        "Ready" => html! { span.badge.ok { "Ready" } },
        "Failed" => html! { span.badge.bad { "Failed" } },
        other => html! { span.badge.warn { (other) } },
    }
}

/// The client page's Backups card. `actions`: the cluster answers and the client is live,
/// so the buttons can act.
pub fn card(r: &ClientRow, b: &ClientBackups, s: &Session, actions: bool, now: i64) -> Markup {
    let status = b.status.clone().unwrap_or_default();
    html! {
        div.panel #backups {
            h2 { "Backups" }
            @if let Some(banner) = &b.restored {
                div.notice #restored-banner {
                    "Restored from " code { (banner.snapshot) } "; the previous volume " code { (banner.previous_claim) }
                    " is kept (retained). Resume once the new claim " code { (banner.new_claim) } " exists (status.storage.claimName names it), then wait for Ready"
                    @if banner.claim_created { " (it exists now: resume; the volume binds when the gateway pod mounts it)." } @else { " (not yet: the operator is making it from the snapshot)." }
                    @if banner.billing_suspension {
                        br; span.dim { "This client is suspended by billing: it stays suspended until billing resumes it." }
                    } @else if actions {
                        form.inline method="post" action={ "/clients/" (r.id) "/resume" } { (csrf(s)) button type="submit" { "Resume" } }
                    }
                }
            }
            dl.kv {
                dt { "Health" } dd #backup-health {
                    @match &b.health {
                        Some(c) => { (health_badge(&c.status)) " " strong { (c.reason) } br; span.dim.wrap { (c.message) } },
                        None => span.dim { "not evaluated by the operator yet" },
                    }
                }
                dt { "Last snapshot" } dd {
                    (opt(status.last_snapshot.as_deref()))
                    @if let Some(t) = &status.last_snapshot_time { span.dim { " · " (fmt_rfc3339_ago(t, now)) } }
                    @if let Some(z) = &status.last_snapshot_size { span.dim { " · " (z) } }
                }
                dt { "Next run" } dd #next-run { (opt(status.next_run.as_deref().map(rfc3339).as_deref())) }
            }
            @if actions {
                form method="post" action={ "/clients/" (r.id) "/backups" } {
                    (csrf(s))
                    button type="submit" #backup-now { "Back up now" }
                }
            }
            @match &b.snapshots {
                Err(e) => p.error { "Snapshots unavailable: " (e) },
                Ok(None) => p.dim #no-snapshot-api { "The cluster has no VolumeSnapshot API (install the CSI snapshot CRDs and controller): no snapshots can be taken or listed." },
                Ok(Some(list)) => table #snapshots {
                    thead { tr { th { "Snapshot" } th { "Kind" } th { "Taken" } th { "Size" } th { "State" } th {} } }
                    tbody {
                        @for sn in list {
                            @let state = snapshot_state(sn);
                            tr {
                                td.wrap { code { (sn.name) } }
                                td { (sn.kind.as_str()) }
                                td { (fmt_time_ago(sn.taken.as_second(), now)) }
                                td { (opt(sn.restore_size.as_deref())) }
                                td.wrap { (state_badge(state)) @if let Some(e) = &sn.error { br; span.dim { (e) } } }
                                td {
                                    @if state == "Ready" && actions {
                                        div.actions {
                                            a.button href={ "/clients/" (r.id) "/backups/" (urlencoding::encode(&sn.name)) "/restore" } { "Restore here…" }
                                            a.button href={ "/clients/new?restoreFrom=" (urlencoding::encode(&sn.name)) "&from=" (r.id) } { "Restore as new client…" }
                                        }
                                    }
                                }
                            }
                        }
                        @if list.is_empty() { tr { td colspan="6" .dim { "No snapshots yet." } } }
                    }
                },
            }
            @match &b.retained {
                Err(e) => p.error { "Retained volumes unavailable: " (e) },
                Ok(list) if !list.is_empty() => {
                    h3 { "Retained volumes" }
                    p.dim { "Kept by an earlier restore or deletion; clawhost never deletes them. To go back to one: restore from its pre-restore snapshot (or a newer snapshot of it), or adopt it into a NEW Assistant with spec.storage.adoptRetainedVolume (an Assistant restored in place cannot adopt). Delete it with kubectl when no longer needed." }
                    table #retained {
                        thead { tr { th { "Claim" } th { "Size" } th { "Replaced by" } th { "Kept from" } th { "Created" } } }
                        tbody {
                            @for c in list {
                                tr {
                                    td.wrap { code { (c.name) } }
                                    td { (opt(c.capacity.as_deref())) }
                                    td { (opt(c.replaced_by.as_deref())) }
                                    td { (opt(c.retained_from.as_deref())) }
                                    td { (opt(c.created.as_deref().map(|t| fmt_rfc3339_ago(t, now)).as_deref())) }
                                }
                            }
                        }
                    }
                },
                Ok(_) => {},
            }
            @if !b.retained_other.is_empty() {
                h3 { "Retained volumes of an earlier Assistant of this name" }
                p.dim { "Not this client's data: kept from another Assistant that had the same name (another uid)." }
                table #retained-other {
                    thead { tr { th { "Claim" } th { "Size" } th { "Owner" } th { "Created" } } }
                    tbody {
                        @for c in &b.retained_other {
                            tr {
                                td.wrap { code { (c.name) } }
                                td { (opt(c.capacity.as_deref())) }
                                td { (opt(c.owner_email.as_deref())) }
                                td { (opt(c.created.as_deref().map(|t| fmt_rfc3339_ago(t, now)).as_deref())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rfc3339(t: &str) -> String {
    match t.parse::<jiff::Timestamp>() {
        Ok(t) => fmt_time(t.as_second()),
        Err(_) => t.to_string(),
    }
}

/// POST `/clients/{id}/backups`: "Back up now".
pub async fn request(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    match svc::request_backup(&ctx, &s.admin, id).await {
        Ok(_) => super::client::done(id, "backup-requested"),
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

fn restore_page(ctx: &Ctx, s: &Session, t: &svc::RestoreTarget, error: Option<&str>) -> Markup {
    let r = &t.client;
    let sn = &t.snapshot;
    let current = crate::children::ChildNames::for_assistant(&t.assistant).data_volume;
    let new_claim = crate::children::data_claim_name(
        &crate::children::ChildNames::for_assistant(&t.assistant).base,
        Some(&crate::api::RestoreFrom {
            volume_snapshot_name: sn.name.clone(),
        }),
    );
    let backups_on = svc::backups_enabled(&t.assistant, &ctx.config);
    let body = html! {
        h1.wrap { "Restore " bdi { (r.name) } " from a snapshot" }
        div.panel.danger-zone.confirm {
            @if let Some(e) = error { ul.errors { li { (e) } } }
            p { "Snapshot " code { (sn.name) } " (" (sn.kind.as_str()) ", taken " (fmt_time(sn.taken.as_second())) @if let Some(z) = &sn.restore_size { ", " (z) } ") of " code { (r.namespace) "/" (r.assistant_name) } "." }
            p { strong { "What happens:" } }
            ul.consequences {
                li { "The assistant is suspended: the gateway stops, and the client cannot use it until it is resumed." }
                li { "A new volume is made from the snapshot and becomes the client's volume. Whatever was written after the snapshot was taken is not on it." }
                li { "The current volume " code { (current) } " is kept, labelled retained: it is never deleted by the restore."
                    @if backups_on { " A pre-restore snapshot of it is taken too (crash-consistent, like every scheduled snapshot), so the restore can be undone." } }
                li { "Resume the client once the new claim " code { (new_claim) } " exists (status.storage.claimName names it; the Backups card says so), then wait for Ready: many storage classes bind the new volume only when the gateway pod mounts it." }
            }
            form method="post" action={ "/clients/" (r.id) "/backups/" (urlencoding::encode(&sn.name)) "/restore" } {
                (csrf(s))
                p { label for="confirm" { "Type " code { (r.assistant_name) } " to confirm:" } }
                p { input #confirm type="text" name="confirm" autocomplete="off" required maxlength=(crate::validation::MAX_NAME_LEN); }
                div.actions {
                    button.danger type="submit" { "Suspend and restore" }
                    a.button href={ "/clients/" (r.id) } { "Cancel" }
                }
            }
        }
    };
    layout(ctx, s, Nav::Clients, "Restore from a snapshot", body)
}

/// GET `/clients/{id}/backups/{snapshot}/restore`: what an in-place restore does.
pub async fn restore_confirm(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path((id, snapshot)): Path<(i64, String)>,
) -> Response {
    match svc::restore_target(&ctx, id, &snapshot).await {
        Ok(t) => restore_page(&ctx, &s, &t, None).into_response(),
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

/// POST `/clients/{id}/backups/{snapshot}/restore`.
pub async fn restore(
    State(ctx): State<Ctx>,
    Extension(s): Extension<Session>,
    Path((id, snapshot)): Path<(i64, String)>,
    Form(f): Form<RestoreRequest>,
) -> Response {
    match svc::restore_in_place(&ctx, &s.admin, id, &snapshot, &f).await {
        Ok(()) => super::client::done(id, "restored"),
        // A typo in the confirmation: the page again, with why.
        Err(ActionError::Invalid(errs)) if errs.iter().all(|e| e.field == "confirm") => {
            match svc::restore_target(&ctx, id, &snapshot).await {
                Ok(t) => {
                    let msg = errs
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ");
                    (
                        http::StatusCode::UNPROCESSABLE_ENTITY,
                        restore_page(&ctx, &s, &t, Some(&msg)),
                    )
                        .into_response()
                }
                Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
            }
        }
        Err(e) => super::action_error(&ctx, &s, &e, &format!("/clients/{id}")),
    }
}

/// GET `/fleet/backups`: every client's backup health, those at risk first.
pub async fn fleet(State(ctx): State<Ctx>, Extension(s): Extension<Session>) -> Response {
    let f = match svc::fleet_backups(&ctx).await {
        Ok(f) => f,
        Err(e) => return super::action_error(&ctx, &s, &e, "/fleet"),
    };
    let now = service::now();
    let body = html! {
        div.titlebar {
            h1 { "Backups" }
            div { a href="/fleet" { "← Fleet" } }
        }
        p.dim { "From each Assistant's status (the operator's view). First: clients whose backups are missing by the operator's verdict (BackupHealthy reason SnapshotMissing, or False with no ready snapshot in 48 hours; a new client awaiting its first snapshot is not missing), oldest first; then unhealthy backups; then the rest by last snapshot." }
        div.stats {
            div.stat #backups-missing { div.n { (f.missing) } div.l { "without a backup in 48 h" } }
            div.stat { div.n { (f.rows.len()) } div.l { "clients" } }
        }
        table.list #fleet-backups {
            thead { tr { th { "Client" } th { "Last snapshot" } th { "Reason" } th { "Next run" } } }
            tbody {
                @for row in &f.rows {
                    tr class=[row.missing.then_some("missing")] {
                        td.wrap {
                            a href={ "/clients/" (row.client_id) } { bdi { (row.owner_name) } }
                            br; code.dim { (row.namespace) "/" (row.assistant_name) }
                        }
                        td {
                            @match row.last_snapshot_time {
                                Some(t) => { (fmt_time_ago(t, now)) br; span.dim { (row.last_snapshot.as_deref().unwrap_or_default()) } },
                                None => span.dim { "none" },
                            }
                            @if row.missing { " " span.badge.bad { "none in 48 h" } }
                        }
                        td.wrap {
                            @match (&row.status, &row.reason) {
                                (Some(st), Some(reason)) => { (health_badge(st)) " " (reason) @if let Some(m) = &row.message { br; span.dim { (m) } } },
                                _ => span.dim { "not evaluated yet" },
                            }
                            @if !row.enabled { " " span.badge.muted { "backups off" } }
                            @if row.suspended { " " span.badge.muted { "suspended" } }
                        }
                        td { (opt(row.next_run.as_deref().map(rfc3339).as_deref())) }
                    }
                }
                @if f.rows.is_empty() { tr { td colspan="4" .dim { "No clients." } } }
            }
        }
    };
    layout(&ctx, &s, Nav::Fleet, "Backups", body).into_response()
}

/// The delete page's note for an `onDelete: Delete` client, and the way out when its
/// final snapshot blocks the deletion.
pub fn delete_note(r: &ClientRow, a: Option<&Assistant>, s: &Session) -> Markup {
    let Some(a) = a else { return html! {} };
    let delete = a.storage().on_delete == crate::api::OnDelete::Delete;
    let blocked =
        svc::condition(a, svc::BACKUP_HEALTHY).filter(|c| c.reason == svc::FINAL_SNAPSHOT_FAILED);
    html! {
        @if delete && blocked.is_none() {
            p #final-snapshot-note { "With Delete, a final snapshot of the volume is taken first: the volume is deleted once the snapshot is ready, and the snapshot is kept for a while (operator config backups.finalSnapshot.keepDays)." }
        }
        @if let Some(c) = blocked {
            div.panel #final-snapshot-failed {
                p.error { strong { "The deletion is held: the final snapshot failed." } br; (c.message) }
                p { "You can delete the volume without a final snapshot. The client's data is then gone for good unless an older snapshot is kept." }
                form method="post" action={ "/clients/" (r.id) "/delete" } {
                    (csrf(s))
                    input type="hidden" name="skip_final_snapshot" value="true";
                    p { label for="confirm-skip" { "Type " code { (r.assistant_name) } " to confirm:" } }
                    p { input #confirm-skip type="text" name="confirm" autocomplete="off" required maxlength=(crate::validation::MAX_NAME_LEN); }
                    div.actions { button.danger type="submit" { "Delete without final snapshot" } }
                }
            }
        }
    }
}

/// After a delete with `skip_final_snapshot`: back to the client (its record may be kept
/// for invoicing already).
pub fn skipped(id: i64) -> Response {
    Redirect::to(&format!("/clients/{id}?done=final-snapshot-skipped")).into_response()
}
