//! JSON API `/api/v1`: the same actions as the pages, for scripts. Bearer tokens only.

pub mod backups;
pub mod billing;

use super::extract::{Path, Query};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::Ctx;
use super::db::Admin;
use super::service::{self, ActionError, DeleteRequest, ListQuery, NewClient, RecordUpdate};
use super::usage;

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

pub(crate) fn action_error(e: ActionError) -> Response {
    action_error_labelled(e, service::field_label)
}

/// The API's answer to a failed action (422 with the problems, 404, 409, 503), the
/// problems labelled by `label` (the form field a person would look at).
pub fn action_error_labelled(e: ActionError, label: fn(&str) -> &str) -> Response {
    let status = e.status();
    match e {
        ActionError::Invalid(list) => (
            status,
            Json(
                json!({ "error": "invalid input", "problems": list.iter().map(|p| json!({
                "field": p.field,
                "label": label(&p.field),
                "message": p.message,
            })).collect::<Vec<_>>() }),
            ),
        )
            .into_response(),
        ActionError::Db(d) => {
            tracing::error!(error = %d, "database error");
            error(status, "database error")
        }
        other => error(status, &other.to_string()),
    }
}

/// JSON bodies that do not parse are a 400 with serde's message, never a panic.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Response;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, &e.body_text())),
        }
    }
}

pub async fn list_clients(State(ctx): State<Ctx>, Query(q): Query<ListQuery>) -> Response {
    match service::list_clients(&ctx, &q).await {
        Ok(p) => {
            let ok = p.cluster_error.is_none();
            Json(json!({
                "items": p.items.iter().map(|v| v.summary(ok, &ctx.config.default_plan)).collect::<Vec<_>>(),
                "total": p.total,
                "page": p.page,
                "per_page": p.per_page,
                "cluster_error": p.cluster_error,
            }))
            .into_response()
        }
        Err(e) => action_error(e),
    }
}

pub async fn get_client(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Response {
    match service::client_detail(&ctx, id).await {
        Ok(d) => {
            let ok = d.cluster_error.is_none();
            let a = d.view.assistant.as_deref();
            Json(json!({
                "client": d.view.summary(ok, &ctx.config.default_plan),
                "plan_rollout": a.filter(|_| ok).map(|a| service::plan_rollout(a, &ctx.config.default_plan)),
                "notes": d.view.record.notes,
                "spec": a.map(|a| json!({
                    "plan": a.spec.plan,
                    "suspended": a.spec.suspended,
                    "version": a.spec.gateway.as_ref().and_then(|g| g.version.clone()),
                    "storage": a.spec.storage,
                    "tailscale": a.spec.tailscale.as_ref().map(|t| json!({"hostname": t.hostname, "tags": t.tags, "funnel": t.funnel})),
                    // Names only: values may be credentials.
                    "env": a.spec.gateway.as_ref().map(|g| g.env.iter().map(|e| e.name.clone()).collect::<Vec<_>>()).unwrap_or_default(),
                })),
                "conditions": a.and_then(|a| a.status.as_ref()).map(|s| s.conditions.clone()).unwrap_or_default(),
                "events": d.events.as_ref().ok(),
                "log": d.log.as_ref().ok().cloned().flatten(),
                "usage": {"month": d.month, "running_minutes": d.usage_minutes},
                "cluster_error": d.cluster_error,
            }))
            .into_response()
        }
        Err(e) => action_error(e),
    }
}

pub async fn create_client(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    JsonBody(n): JsonBody<NewClient>,
) -> Response {
    match service::create_client(&ctx, &a, &n).await {
        Ok(c) => (
            StatusCode::CREATED,
            Json(json!({
                "id": c.client_id,
                // Returned once; the console keeps no copy.
                "gateway_token": c.gateway_token.expose(),
                "handoff": c.handoff.as_ref().map(link_json),
                "warnings": c.warnings,
            })),
        )
            .into_response(),
        Err(e) => action_error(e),
    }
}

fn done(r: Result<(), ActionError>) -> Response {
    match r {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => action_error(e),
    }
}

pub async fn suspend(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
) -> Response {
    done(service::set_suspended(&ctx, &a, id, true).await)
}

pub async fn resume(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
) -> Response {
    done(service::set_suspended(&ctx, &a, id, false).await)
}

pub async fn restart(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
) -> Response {
    done(service::restart(&ctx, &a, id).await)
}

#[derive(Deserialize)]
pub struct VersionBody {
    #[serde(default)]
    version: String,
    /// Required to go back to an older release than the running one (else 409).
    #[serde(default)]
    allow_downgrade: bool,
}

pub async fn version(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<VersionBody>,
) -> Response {
    done(service::change_version(&ctx, &a, id, &b.version, b.allow_downgrade).await)
}

#[derive(Deserialize)]
pub struct PlanBody {
    plan: String,
}

pub async fn plan(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<PlanBody>,
) -> Response {
    done(service::change_plan(&ctx, &a, id, &b.plan).await)
}

pub async fn rotate_token(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
) -> Response {
    // Rotating also issues a new handoff link (older ones would reveal a dead token).
    match service::handoff::create_handoff(&ctx, &a, id).await {
        // Without a link (`handoff` null) the warning says why; the new token is still here.
        Ok(h) => Json(json!({
            "gateway_token": h.token.expose(),
            "handoff": h.link.as_ref().map(link_json),
            "warnings": h.warnings,
        }))
        .into_response(),
        Err(e) => action_error(e),
    }
}

pub async fn record(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<RecordUpdate>,
) -> Response {
    done(service::update_record(&ctx, &a, id, &b).await)
}

pub async fn delete_client(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
    Query(q): Query<DeleteRequest>,
) -> Response {
    done(service::delete_client(&ctx, &a, id, &q).await)
}

pub async fn fleet(State(ctx): State<Ctx>) -> Response {
    match service::fleet(&ctx).await {
        Ok(f) => Json(f).into_response(),
        Err(e) => action_error(e),
    }
}

#[derive(Deserialize)]
pub struct MonthQuery {
    #[serde(default)]
    month: Option<String>,
}

pub async fn usage(State(ctx): State<Ctx>, Query(q): Query<MonthQuery>) -> Response {
    let month = q.month.unwrap_or_else(|| service::month_of(service::now()));
    match usage::usage_report(&ctx, &month).await {
        Ok(r) => Json(json!({
            "month": month,
            "clients": r.lines,
            "unsampled_minutes": r.unsampled_minutes,
            "notice": r.gap_notice(),
        }))
        .into_response(),
        Err(e) => action_error(e),
    }
}

/// `POST /api/v1/clients/adopt`: a client record for an Assistant created outside the console.
pub async fn adopt(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    JsonBody(b): JsonBody<service::AdoptRequest>,
) -> Response {
    match service::adopt(&ctx, &a, &b).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => action_error(e),
    }
}

/// Audit events with `before`/`after` as JSON objects (stored as text), filtered like the
/// page: `actor`, `action`, `client`, `client_id`, `from`/`to` (YYYY-MM-DD), `page`.
pub async fn audit(State(ctx): State<Ctx>, Query(q): Query<service::AuditQuery>) -> Response {
    match service::audit_page(&ctx, &q).await {
        Ok(p) => Json(json!({
            "events": p.events.iter().map(|e| json!({
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "client_id": e.client_id,
                "target": e.target,
                "before": service::audit_json(e.before.as_deref()),
                "after": service::audit_json(e.after.as_deref()),
            })).collect::<Vec<_>>(),
            "page": p.page,
            "per_page": p.per_page,
            "total": p.total,
        }))
        .into_response(),
        Err(e) => action_error(e),
    }
}

/// A handoff link for the JSON API: the URL (or path without `--public-url`) once.
fn link_json(link: &service::handoff::IssuedLink) -> serde_json::Value {
    json!({
        "id": link.id,
        "url": link.url,
        "path": link.path,
        "expires_at": link.expires_at,
        "public_url_missing": link.url.is_none(),
    })
}

/// The client's access as the operator reports it (never the sealed invite URL) and its
/// handoff links.
pub async fn access(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Response {
    let c = match ctx.db.client(id).await {
        Ok(Some(c)) => c,
        Ok(None) => return action_error(ActionError::NotFound),
        Err(e) => return action_error(e.into()),
    };
    let (assistant, cluster_error) = match ctx.cluster.get(&c.namespace, &c.assistant_name).await {
        Ok(a) => (a, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let access = assistant
        .as_ref()
        .and_then(service::handoff::access_of)
        .map(|a| {
            let mut a = a.clone();
            // Sealed, but still nothing a script needs.
            a.sealed_invite_url = None;
            a
        });
    let now = service::now();
    let links = super::pages::access::links_of(&ctx, id).await;
    Json(json!({
        "access": access,
        "state": access.as_ref().map(|a| a.state.as_str()).unwrap_or("Manual"),
        "never_connected": service::handoff::not_connected(assistant.as_ref())
            && c.created_at < service::handoff::never_connected_cutoff(&ctx),
        "handoff_links": links.iter().map(|l| json!({
            "id": l.id,
            "created_at": l.created_at,
            "created_by": l.created_by,
            "expires_at": l.expires_at,
            "state": service::handoff::LinkState::of(l, now).as_str(),
        })).collect::<Vec<_>>(),
        "cluster_error": cluster_error,
    }))
    .into_response()
}

pub async fn access_action(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let Some(act) = service::handoff::parse_action(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown access action: use resend, revoke or reinvite",
        );
    };
    match service::handoff::request_access(&ctx, &a, id, act).await {
        Ok(v) => (
            StatusCode::ACCEPTED,
            Json(json!({"requested": act.as_str(), "annotation": v})),
        )
            .into_response(),
        Err(e) => action_error(e),
    }
}

/// Sets a new gateway token and returns a handoff link revealing it, once.
pub async fn handoff(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
) -> Response {
    match service::handoff::create_handoff(&ctx, &a, id).await {
        Ok(service::handoff::Handoff {
            link: Some(link), ..
        }) => (StatusCode::CREATED, Json(link_json(&link))).into_response(),
        // The token was rotated but no link exists: the caller must get the new token, or
        // nobody ever will.
        Ok(h) => Json(json!({
            "gateway_token": h.token.expose(),
            "handoff": null,
            "warnings": h.warnings,
        }))
        .into_response(),
        Err(e) => action_error(e),
    }
}
