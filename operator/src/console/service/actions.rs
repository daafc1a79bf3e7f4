//! Actions on one client: suspend, restart, version, plan, token rotation, deletion and
//! record updates; each writes an audit event.

use serde::Deserialize;
use serde_json::json;

use super::new_client::{check_record_fields, parse_on_delete, write_gateway_token};
use super::{ActionError, FieldError, now};
use crate::api::{Assistant, SUSPENDED_REASON_ANNOTATION, SuspensionReason};
use crate::children::{self, ChildNames, GatewayToken, RESTART_REQUESTED_ANNOTATION};
use crate::console::Console;
use crate::console::billing::model::ClusterIntent;
use crate::console::billing::state as billing_state;
use crate::console::cluster::ClusterError;
use crate::console::db::{Admin, ClientRow};
use crate::validation::{ReleaseVersion, validate_at};

/// A client that has not been deleted.
pub(super) async fn live_client(ctx: &Console, id: i64) -> Result<ClientRow, ActionError> {
    match ctx.db.client(id).await? {
        Some(c) if c.deleted_at.is_none() => Ok(c),
        _ => Err(ActionError::NotFound),
    }
}

/// The client's Assistant; `Cluster(NotFound)` when it is gone.
pub(super) async fn assistant_of(ctx: &Console, c: &ClientRow) -> Result<Assistant, ActionError> {
    ctx.cluster
        .get(&c.namespace, &c.assistant_name)
        .await?
        .ok_or(ActionError::Cluster(ClusterError::NotFound))
}

fn target(c: &ClientRow) -> String {
    format!("{}/{}", c.namespace, c.assistant_name)
}

/// One audit entry of a client action: who, what, before and after (also backups').
pub(super) async fn audit(
    ctx: &Console,
    actor: &Admin,
    action: &str,
    c: &ClientRow,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), ActionError> {
    ctx.db
        .audit(
            now(),
            &actor.email,
            action,
            Some(c.id),
            &target(c),
            Some(&before.to_string()),
            Some(&after.to_string()),
        )
        .await?;
    Ok(())
}

/// Suspend (`true`) or resume (`false`).
pub async fn set_suspended(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    suspended: bool,
) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    let a = assistant_of(ctx, &c).await?;
    // Billing keeps a client whose subscription is suspended (non-payment, canceled)
    // suspended: resuming it here would be undone by the engine's next pass, so it is
    // refused with what to do instead.
    if !suspended
        && let Some(sub) = ctx.db.subscription(c.id).await?
        && let ClusterIntent::Suspend(reason) = billing_state::desired_cluster_at(&sub, now())
    {
        let what = match reason {
            SuspensionReason::NonPayment => {
                "mark the overdue invoice paid (or wait for the provider's payment) to resume it"
            }
            SuspensionReason::Canceled => "reactivate the subscription to resume it",
        };
        return Err(ActionError::Conflict(format!(
            "{} (billing): {what}",
            reason.describe()
        )));
    }
    // The reason annotation goes with either action: after an admin's suspend or resume
    // the suspension is the admin's, so a payment never lifts it.
    let patch = json!({
        "metadata": {"annotations": {SUSPENDED_REASON_ANNOTATION: null}},
        "spec": {"suspended": if suspended { json!(true) } else { json!(null) }},
    });
    ctx.cluster
        .patch(&c.namespace, &c.assistant_name, patch)
        .await?;
    let action = if suspended {
        "client.suspend"
    } else {
        "client.resume"
    };
    audit(
        ctx,
        actor,
        action,
        &c,
        json!({"suspended": a.spec.suspended}),
        json!({"suspended": suspended}),
    )
    .await
}

pub async fn restart(ctx: &Console, actor: &Admin, id: i64) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    let a = assistant_of(ctx, &c).await?;
    let at = jiff::Timestamp::now().to_string();
    let before = a
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(RESTART_REQUESTED_ANNOTATION).cloned());
    let patch = json!({"metadata": {"annotations": {RESTART_REQUESTED_ANNOTATION: at}}});
    ctx.cluster
        .patch(&c.namespace, &c.assistant_name, patch)
        .await?;
    audit(
        ctx,
        actor,
        "client.restart",
        &c,
        json!({"restart_requested_at": before}),
        json!({"restart_requested_at": at}),
    )
    .await
}

/// Re-validates the Assistant with one change and keeps only the problems of that field.
fn validate_change(ctx: &Console, a: &Assistant, field: &str) -> Result<(), ActionError> {
    match validate_at(a, &ctx.config, None, Some(super::today())) {
        Ok(()) => Ok(()),
        Err(p) => {
            let mine: Vec<FieldError> =
                p.0.into_iter()
                    .filter(|p| p.field.starts_with(field))
                    .map(|p| FieldError {
                        field: p.field,
                        message: p.message,
                    })
                    .collect();
            if mine.is_empty() {
                Ok(())
            } else {
                Err(ActionError::Invalid(mine))
            }
        }
    }
}

/// The running version and the requested one when the change goes back to an older
/// release (an empty request means the fleet default).
fn downgrade(ctx: &Console, a: &Assistant, requested: Option<&str>) -> Option<(String, String)> {
    let running = a.status.as_ref()?.gateway_version.clone()?;
    let to = requested.unwrap_or(ctx.config.gateway.default_version.as_str());
    let older = ReleaseVersion::parse(to, None)
        .ok()?
        .cmp_release(&ReleaseVersion::parse(&running, None).ok()?)
        .is_lt();
    older.then(|| (running, to.to_string()))
}

/// Sets the openclaw version (empty: the fleet default). Going back to an older release
/// than the running one needs `allow_downgrade`, else [`ActionError::Downgrade`].
pub async fn change_version(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    version: &str,
    allow_downgrade: bool,
) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    let mut a = assistant_of(ctx, &c).await?;
    let version = version.trim();
    let before = a.spec.gateway.as_ref().and_then(|g| g.version.clone());
    let new = (!version.is_empty()).then(|| version.to_string());
    let downgrade = downgrade(ctx, &a, new.as_deref());
    a.spec.gateway.get_or_insert_with(Default::default).version = new.clone();
    validate_change(ctx, &a, "spec.gateway.version")?;
    if let Some((from, to)) = &downgrade
        && !allow_downgrade
    {
        return Err(ActionError::Downgrade {
            from: from.clone(),
            to: to.clone(),
        });
    }
    let patch = json!({"spec": {"gateway": {"version": new}}});
    ctx.cluster
        .patch(&c.namespace, &c.assistant_name, patch)
        .await?;
    audit(
        ctx,
        actor,
        "client.change_version",
        &c,
        json!({"version": before}),
        json!({"version": new, "downgrade": downgrade.is_some()}),
    )
    .await
}

pub async fn change_plan(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    plan: &str,
) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    let mut a = assistant_of(ctx, &c).await?;
    let plan = plan.trim().to_string();
    let before = super::clients::plan_of(&a, &ctx.config.default_plan);
    a.spec.plan = Some(plan.clone());
    validate_change(ctx, &a, "spec.plan")?;
    // Only the Assistant changes: it is the plan's one source of truth, and what is billed
    // is the plan the sampler then observes running (the operator may still refuse it).
    ctx.cluster
        .patch(
            &c.namespace,
            &c.assistant_name,
            json!({"spec": {"plan": plan}}),
        )
        .await?;
    audit(
        ctx,
        actor,
        "client.change_plan",
        &c,
        json!({"plan": before}),
        json!({"plan_requested": plan}),
    )
    .await
}

/// New gateway token; returned once for display. The gateway restarts to pick it up.
pub async fn rotate_token(
    ctx: &Console,
    actor: &Admin,
    id: i64,
) -> Result<GatewayToken, ActionError> {
    let c = live_client(ctx, id).await?;
    let a = assistant_of(ctx, &c).await?;
    let token = GatewayToken::generate();
    let names = ChildNames::for_assistant(&a);
    match ctx
        .cluster
        .patch_secret_key(
            &c.namespace,
            &names.gateway_token_secret,
            children::gateway_token_secret::TOKEN_KEY,
            token.expose(),
        )
        .await
    {
        Err(ClusterError::NotFound) => write_gateway_token(ctx, &a, &token).await?,
        other => other?,
    }
    let at = jiff::Timestamp::now().to_string();
    ctx.cluster
        .patch(
            &c.namespace,
            &c.assistant_name,
            json!({"metadata": {"annotations": {RESTART_REQUESTED_ANNOTATION: at}}}),
        )
        .await?;
    audit(
        ctx,
        actor,
        "client.rotate_token",
        &c,
        json!({"secret": names.gateway_token_secret}),
        json!({"secret": names.gateway_token_secret, "rotated": true}),
    )
    .await?;
    Ok(token)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeleteRequest {
    /// Must equal the Assistant name.
    #[serde(default)]
    pub confirm: String,
    /// `Retain` or `Delete`; the Assistant's current choice when absent.
    #[serde(default)]
    pub retention: Option<String>,
}

pub async fn delete_client(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    req: &DeleteRequest,
) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    if req.confirm.trim() != c.assistant_name {
        return Err(ActionError::invalid(
            "confirm",
            format!(
                "type the Assistant name {:?} to confirm deletion",
                c.assistant_name
            ),
        ));
    }
    let retention = match req.retention.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(parse_on_delete(Some(r)).map_err(|e| ActionError::Invalid(vec![e]))?),
        None => None,
    };
    let mut plan = None;
    let current = match ctx.cluster.get(&c.namespace, &c.assistant_name).await? {
        Some(a) => {
            plan = Some(super::clients::plan_of(&a, &ctx.config.default_plan));
            let was = a.storage().on_delete;
            if let Some(r) = retention
                && r != was
            {
                ctx.cluster
                    .patch(
                        &c.namespace,
                        &c.assistant_name,
                        json!({"spec": {"storage": {"onDelete": format!("{r:?}")}}}),
                    )
                    .await?;
            }
            match ctx.cluster.delete(&c.namespace, &c.assistant_name).await {
                Ok(()) | Err(ClusterError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            Some(retention.unwrap_or(was))
        }
        None => None,
    };
    let at = now();
    // The subscription ends first: if that fails the client stays live (its Assistant may
    // be gone already) and deleting it again finishes the job.
    end_subscription(ctx, &actor.email, id, at).await?;
    ctx.db.mark_client_deleted(id, at).await?;
    audit(
        ctx,
        actor,
        "client.delete",
        &c,
        json!({"name": c.name, "plan": plan, "billing_status": c.billing_status}),
        json!({"deleted": true, "volume": current.map(|r| format!("{r:?}"))}),
    )
    .await
}

/// A deleted client's subscription ends with it: canceled now (already canceled is fine),
/// then deleted, so the timeline ends and no later invoice bills days after the deletion.
async fn end_subscription(ctx: &Console, actor: &str, id: i64, at: i64) -> Result<(), ActionError> {
    use crate::console::billing::model::Input;
    use crate::console::service::billing::apply;
    let cancel = Input::Cancel {
        at_period_end: false,
    };
    match apply(ctx, actor, id, &cancel, at).await {
        Ok(_) | Err(ActionError::Conflict(_)) => {}
        Err(ActionError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    }
    match apply(ctx, actor, id, &Input::Deleted, at).await {
        Ok(_) | Err(ActionError::Conflict(_)) | Err(ActionError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RecordUpdate {
    pub billing_status: String,
    #[serde(default)]
    pub notes: String,
}

pub async fn update_record(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    u: &RecordUpdate,
) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    let mut errs = Vec::new();
    check_record_fields(u.billing_status.trim(), &u.notes, &mut errs);
    // A subscribed client's billing status is the subscription's state: only the
    // subscription's transitions change it.
    if u.billing_status.trim() != c.billing_status && ctx.db.subscription(id).await?.is_some() {
        errs.push(FieldError {
            field: "billing_status".into(),
            message: "the subscription sets the billing status: use the Subscription panel".into(),
        });
    }
    if !errs.is_empty() {
        return Err(ActionError::Invalid(errs));
    }
    ctx.db
        .update_client_record(id, u.billing_status.trim(), &u.notes, now())
        .await?;
    audit(
        ctx,
        actor,
        "client.update_record",
        &c,
        json!({"billing_status": c.billing_status, "notes": c.notes}),
        json!({"billing_status": u.billing_status.trim(), "notes": u.notes}),
    )
    .await
}
