//! `/api/v1/clients/{id}/backups...` and `/api/v1/fleet/backups`: the Backups card's
//! actions for scripts (scopes `clients:read` / `clients:write`, like the other client
//! actions).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde_json::json;

use super::{JsonBody, action_error};
use crate::console::Ctx;
use crate::console::db::Admin;
use crate::console::extract::Path;
use crate::console::service::ActionError;
use crate::console::service::backups::{self as svc, RestoreRequest, snapshot_json};

/// The client's snapshots (newest first; `snapshot_api: false` without the API), backup
/// status and health, and retained volumes.
pub async fn list(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Response {
    let c = match ctx.db.client(id).await {
        Ok(Some(c)) => c,
        Ok(None) => return action_error(ActionError::NotFound),
        Err(e) => return action_error(e.into()),
    };
    let a = match ctx.cluster.get(&c.namespace, &c.assistant_name).await {
        Ok(Some(a)) => a,
        Ok(None) => return action_error(ActionError::NotFound),
        Err(e) => return action_error(e.into()),
    };
    let b = svc::client_backups(&ctx, &a).await;
    let snapshots = match &b.snapshots {
        Ok(s) => s,
        Err(e) => {
            return super::error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    Json(json!({
        "snapshot_api": snapshots.is_some(),
        "snapshots": snapshots.iter().flatten().map(snapshot_json).collect::<Vec<_>>(),
        "backup": b.status,
        "health": b.health.as_ref().map(|c| json!({"status": c.status, "reason": c.reason, "message": c.message})),
        "retained_claims": b.retained.as_ref().ok(),
        "retained_other": b.retained_other,
        "restored": b.restored.as_ref().map(|r| json!({"snapshot": r.snapshot, "previous_claim": r.previous_claim, "claim": r.new_claim, "claim_created": r.claim_created})),
    }))
    .into_response()
}

/// "Back up now": 202 with the request value the operator acts on.
pub async fn request(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path(id): Path<i64>,
) -> Response {
    match svc::request_backup(&ctx, &a, id).await {
        Ok(v) => (StatusCode::ACCEPTED, Json(json!({"request": v}))).into_response(),
        Err(e) => action_error(e),
    }
}

/// In-place restore; the body is `{"confirm": "<assistant name>"}` like a deletion's.
pub async fn restore(
    State(ctx): State<Ctx>,
    Extension(a): Extension<Admin>,
    Path((id, snapshot)): Path<(i64, String)>,
    JsonBody(b): JsonBody<RestoreRequest>,
) -> Response {
    match svc::restore_in_place(&ctx, &a, id, &snapshot, &b).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({"restoring_from": snapshot, "suspended": true})),
        )
            .into_response(),
        Err(e) => action_error(e),
    }
}

pub async fn fleet(State(ctx): State<Ctx>) -> Response {
    match svc::fleet_backups(&ctx).await {
        Ok(f) => Json(f).into_response(),
        Err(e) => action_error(e),
    }
}
