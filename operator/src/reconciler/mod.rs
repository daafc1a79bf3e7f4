//! The reconciler: reads state, applies the builders' desired objects with server-side
//! apply, writes status. The recipe is [`reconcile`]; deletion is [`cleanup`].

pub mod access;
pub mod apply;
pub mod backoff;
pub mod backup;
pub mod cleanup;
pub mod events;
pub mod observe;
pub mod restore;
pub mod status;
pub mod tailnet;

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::api::Assistant;
use crate::children::kinds::{CHILD_KINDS, ChildId, ChildKind, Lifecycle};
use crate::children::{self, ChildNames, FIELD_MANAGER, GatewayToken};
use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use status::ConfigProblem;

/// Finalizer that holds an Assistant until its cleanup ran.
pub const FINALIZER: &str = "clawhost.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Tailscale API: {0}")]
    Tailnet(String),
    #[error("Assistant has no namespace")]
    NoNamespace,
    #[error("reconcile took longer than {0:?} (a hanging API call); retrying")]
    Timeout(Duration),
    #[error("the API server refused {0} (see the Applied condition); retrying with backoff")]
    Refused(String),
}

impl Error {
    /// Short label for metrics.
    pub fn reason(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => format!("api_{}", s.code),
            Error::Kube(_) => "api_transport".into(),
            Error::Tailnet(_) => "tailnet_api".into(),
            Error::NoNamespace => "no_namespace".into(),
            Error::Timeout(_) => "timeout".into(),
            Error::Refused(_) => "apply_refused".into(),
        }
    }
}

/// Everything a reconcile needs besides the Assistant.
pub struct Context {
    pub client: kube::Client,
    pub config: Arc<OperatorConfig>,
    pub metrics: Arc<Metrics>,
    /// Retry delays of failing Assistants.
    pub backoff: backoff::Backoff,
    pub recorder: Option<events::EventPublisher>,
    pub tailnet: Option<Arc<dyn crate::tailscale::TailnetApi>>,
    /// Device-share invites (`tailscale.invites`); `None`: access is manual.
    pub invites: Option<Arc<dyn crate::tailscale::invites::DeviceInvites>>,
    /// Seals invite URLs in `status.access` (`tailscale.invites.accessKeyFile`).
    pub access_key: Option<crate::sealing::SealingKey>,
    /// When each Assistant's invite may next be checked with Tailscale (poll, retry).
    pub access_clock: access::AccessClock,
    /// Upper bound of one reconcile, so a hanging API call cannot stall an Assistant.
    pub reconcile_timeout: Duration,
    /// Calendar time for backup schedules, retention and expiry (tests set it).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Whether the cluster has the VolumeSnapshot API (discovered, cached).
    pub snapshot_api: Arc<backup::discovery::SnapshotApi>,
    /// The fleet-wide pace of scheduled snapshots.
    pub snapshot_bucket: Arc<backup::throttle::CreationBucket>,
    /// Refused snapshot creates per Assistant (backoff, and what BackupHealthy says).
    pub backup_clock: backup::BackupClock,
}

impl Context {
    pub fn new(client: kube::Client, config: OperatorConfig) -> Self {
        Self {
            client,
            metrics: Arc::new(Metrics::default()),
            backoff: backoff::Backoff::default(),
            recorder: None,
            tailnet: None,
            invites: None,
            access_key: None,
            access_clock: Default::default(),
            reconcile_timeout: RECONCILE_TIMEOUT,
            clock: Arc::new(crate::clock::SystemClock),
            snapshot_api: Default::default(),
            snapshot_bucket: Arc::new(backup::throttle::CreationBucket::new(
                config.backups.creations_per_minute,
            )),
            backup_clock: Default::default(),
            config: Arc::new(config),
        }
    }
}

/// Default upper bound of one reconcile.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(120);

/// Requeue intervals: quick while something is converging, slow when all is well.
const CONVERGING: Duration = Duration::from_secs(15);
const BLOCKED: Duration = Duration::from_secs(60);

pub(crate) fn api_resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The recipe: read → validate → create the once-only Secrets → apply what is desired,
/// prune what is not → write status.
pub async fn reconcile(assistant: Arc<Assistant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(
        ctx.reconcile_timeout,
        reconcile_inner(&assistant, &ctx),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(ctx.reconcile_timeout)),
    };
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.as_ref().err().map(Error::reason));
    result
}

async fn reconcile_inner(a: &Assistant, ctx: &Context) -> Result<Action, Error> {
    let ns = a.namespace().ok_or(Error::NoNamespace)?;
    if a.metadata.deletion_timestamp.is_some() {
        return cleanup::run(a, ctx).await;
    }
    ensure_finalizer(a, ctx, &ns).await?;

    let mut observed = observe::observe(a, ctx, &ns).await?;
    if observed.state.config_problem.is_none() {
        if let Some(claim) = &observed.adopt_volume {
            adopt_retained_volume(a, ctx, &ns, claim).await?;
        }
        // In-place restore: the outgoing claim is retained before the new one is applied.
        restore::run(a, ctx, &ns, &observed).await?;
        let a = &keep_volume_size(a, &ctx.config, observed.state.volume.as_ref());
        ensure_created(a, ctx, &ns, &observed).await?;
        observed.state.refused = apply_children(a, ctx, &ns, &observed.live).await?;
    }
    let mut access_recheck = None;
    if observed.state.config_problem.is_none() {
        let (access, recheck) = access::run(a, ctx, &observed).await;
        observed.state.access = Some(access);
        access_recheck = recheck;
    }
    // Backups run whether or not the spec is valid (a typo must not stop them), but only
    // for a volume that is this Assistant's.
    let mut backup_requeue = None;
    if backs_up_its_volume(a, &observed) {
        let backup = backup::run(a, ctx, &observed).await;
        observed.state.backup = Some(backup.observation);
        backup_requeue = Some(backup.requeue);
    }
    let status = status::compute(a, &ctx.config, &observed.state);
    let phase = status.phase.unwrap_or_default();
    write_status(a, ctx, &ns, status).await?;
    ctx.metrics.set_phase(&assistant_key(a), phase);
    if !observed.state.refused.is_empty() {
        // Status and the Event say why; the error makes the retry back off.
        let what = observed
            .state
            .refused
            .iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::Refused(what));
    }
    ctx.backoff.reset(&assistant_key(a));
    let mut delay = next_check_delay(phase, &ctx.config);
    if observed.restore_source_pending {
        // The snapshot to restore from is being cut: no watch tells when it is ready.
        delay = delay.min(CONVERGING);
    }
    if let Some(recheck) = access_recheck {
        // An invite to poll, or a Tailscale retry, may be due before the usual check.
        delay = delay.min(recheck.max(Duration::from_secs(1)));
    }
    if let Some(requeue) = backup_requeue {
        // The next scheduled slot, or a snapshot being cut.
        delay = delay.min(requeue.max(Duration::from_secs(1)));
    }
    Ok(Action::requeue(delay))
}

/// Whether the backup step runs: the live data claim is this Assistant's, or there is none
/// yet (then it only reports). Another Assistant's volume is never snapshotted for it.
fn backs_up_its_volume(a: &Assistant, observed: &observe::Observation) -> bool {
    let live: Option<PersistentVolumeClaim> = observed
        .live
        .get(ChildId::DataVolume)
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    observe::volume_ownership(a, live.as_ref()) == observe::VolumeOwnership::Ours
}

/// A plan change never shrinks the volume (the API server refuses it, and the data would
/// not fit): without an explicit `storage.size`, the volume keeps what it already requests
/// when that is more than the plan's size. CPU and memory follow the new plan.
pub fn keep_volume_size(
    a: &Assistant,
    config: &OperatorConfig,
    live: Option<&PersistentVolumeClaim>,
) -> Assistant {
    use crate::api::quantity;
    let mut kept = a.clone();
    let current = live
        .and_then(|pvc| pvc.spec.as_ref())
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    let from_plan = a.storage().size.is_none();
    if let (true, Some(current), Some(planned)) = (
        from_plan,
        current,
        children::data_volume::requested_size(a, config),
    ) && quantity::parse(&current) > quantity::parse(&planned)
    {
        kept.spec.storage.get_or_insert_with(Default::default).size = Some(current);
    }
    kept
}

/// Hands a retained volume to this Assistant, as its spec explicitly asked: records the new
/// owner and drops the retained marks, so the claim is this Assistant's from now on.
async fn adopt_retained_volume(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    claim: &str,
) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "metadata": {
            "labels": {children::RETAINED_LABEL: null},
            "annotations": {
                children::ASSISTANT_UID_ANNOTATION: a.uid(),
                cleanup::RETAINED_FROM_ANNOTATION: null,
                cleanup::RETAINED_OWNER_EMAIL_ANNOTATION: null,
                crate::api::backup::REPLACED_BY_ANNOTATION: null,
            },
        }
    });
    api.patch(claim, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    info!(
        pvc = claim,
        "adopted a retained volume, as spec.storage.adoptRetainedVolume asks"
    );
    if let Some(recorder) = &ctx.recorder {
        let event = Event {
            type_: EventType::Normal,
            reason: "AdoptedRetainedVolume".into(),
            note: Some(format!("took over the retained volume {claim}")),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &a.object_ref(&())).await {
            warn!(error = %e, "could not publish event");
        }
    }
    Ok(())
}

pub(crate) fn assistant_key(a: &Assistant) -> String {
    format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any())
}

fn next_check_delay(phase: crate::api::Phase, config: &OperatorConfig) -> Duration {
    use crate::api::Phase;
    match phase {
        Phase::Running | Phase::Suspended => Duration::from_secs(config.reconcile.resync_seconds),
        Phase::Failed => BLOCKED,
        _ => CONVERGING,
    }
}

async fn ensure_finalizer(a: &Assistant, ctx: &Context, ns: &str) -> Result<(), Error> {
    if a.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let api: Api<Assistant> = Api::namespaced(ctx.client.clone(), ns);
    // A JSON patch with a test: never clobbers finalizers someone else added meanwhile.
    let patch = if a.metadata.finalizers.is_none() {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": a.resource_version()},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": a.resource_version()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}
        ])
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("valid JSON patch");
    api.patch(
        &a.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(())
}

/// The token and Tailscale state Secrets are created once and never overwritten: the token
/// must survive every re-render and the state Secret belongs to the sidecar.
async fn ensure_created(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    observed: &observe::Observation,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for kind in CHILD_KINDS {
        let Lifecycle::CreatedOnce(build) = kind.lifecycle else {
            continue;
        };
        if observed.live.get(kind.id).is_some() {
            continue;
        }
        let token = GatewayToken::generate();
        let secret: Secret =
            serde_json::from_value(build(a, &ctx.config, &token).map_err(invalid)?)
                .expect("once-only children are Secrets");
        create_once(&secrets, &secret).await?;
        info!(
            secret = secret.metadata.name.as_deref(),
            "created once-only secret"
        );
    }
    if let Some(tailnet) = &ctx.tailnet {
        tailnet::ensure_auth_key(a, ctx, tailnet.as_ref(), ns, observed).await?;
    }
    Ok(())
}

fn invalid(e: children::BuildError) -> Error {
    // Validation already passed in observe(); a build error here is a bug, reported as such.
    Error::Tailnet(format!("internal: {e}"))
}

/// Creates an object; one that already exists (a retry after a lost response, a second
/// replica) is left alone.
pub(crate) async fn create_once(api: &Api<Secret>, secret: &Secret) -> Result<(), Error> {
    match api.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Live copies of the children, as read by `observe`, by child.
#[derive(Debug, Default, Clone)]
pub struct LiveChildren(pub BTreeMap<ChildId, Value>);

impl LiveChildren {
    pub fn get(&self, id: ChildId) -> Option<&Value> {
        self.0.get(&id)
    }
}

/// Applies every desired child that differs from its live copy and prunes the children no
/// longer desired. Children the API server refuses (4xx: admission, validation, quota,
/// RBAC) are returned so status can say so, and the others are still applied; transport
/// and server errors abort for a retry.
async fn apply_children(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    live: &LiveChildren,
) -> Result<Vec<status::ApplyRefusal>, Error> {
    let mut refused = Vec::new();
    for kind in CHILD_KINDS {
        let Lifecycle::Applied(build) = kind.lifecycle else {
            continue;
        };
        let resource = (kind.resource)();
        let current = live.get(kind.id);
        let Some(object) = build(a, &ctx.config).map_err(invalid)? else {
            if let Some(current) = current {
                prune(a, ctx, ns, kind, current).await?;
            }
            continue;
        };
        let object = apply::with_hash(object);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match apply::ensure(&ctx.client, &resource, ns, &object, current).await {
            Ok(outcome) => {
                ctx.metrics.observe_apply(&resource.kind, outcome);
                if let apply::Outcome::Applied(why) = outcome {
                    info!(kind = %resource.kind, name, ?why, "applied");
                }
            }
            Err(kube::Error::Api(e)) if is_refusal(e.code) => {
                ctx.metrics.observe_refusal(&resource.kind);
                let r = refusal(&resource.kind, name, &e);
                warn!(kind = %resource.kind, name, code = e.code, message = %r.message, "the API server refused a child object");
                refused.push(r);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// Deletes a child that is no longer desired (e.g. NetworkPolicies switched off in the
/// operator config), when the kind allows it and the object is this Assistant's: it carries
/// our managed-by label and this Assistant's name. The uid precondition makes sure the
/// object deleted is the one read. Never the data volume.
async fn prune(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    kind: &ChildKind,
    current: &Value,
) -> Result<(), Error> {
    if !children::kinds::prunable(kind) || !is_ours(a, current) {
        return Ok(());
    }
    let name = current["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &(kind.resource)());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: current["metadata"]["uid"].as_str().map(str::to_string),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        // Gone already, or replaced by another object of that name: nothing of ours to prune.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    ctx.metrics.observe_prune(kind.kind);
    info!(
        kind = kind.kind,
        name, "pruned a child that is no longer desired"
    );
    if let Some(recorder) = &ctx.recorder {
        let event = Event {
            type_: EventType::Normal,
            reason: "Pruned".into(),
            note: Some(format!("deleted {} {name}: no longer desired", kind.kind)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &a.object_ref(&())).await {
            warn!(error = %e, "could not publish event");
        }
    }
    Ok(())
}

/// Whether a live child is this Assistant's (and not a same-named object someone else made).
fn is_ours(a: &Assistant, object: &Value) -> bool {
    let meta = &object["metadata"];
    meta["labels"]["app.kubernetes.io/managed-by"] == "clawhost"
        && meta["annotations"][children::ASSISTANT_NAME_ANNOTATION].as_str()
            == a.metadata.name.as_deref()
}

/// Answers that retrying alone will not change: the request itself is refused.
fn is_refusal(code: u16) -> bool {
    matches!(code, 400 | 403 | 404 | 422)
}

/// The refusal as status shows it. A Secret's refusal keeps only the reason: the server's
/// message may quote a value.
fn refusal(kind: &str, name: &str, e: &kube::core::Status) -> status::ApplyRefusal {
    let message = if kind == "Secret" {
        format!("{} ({})", e.reason, e.code)
    } else {
        e.message.clone()
    };
    status::ApplyRefusal {
        kind: kind.to_string(),
        name: name.to_string(),
        message,
    }
}

async fn write_status(
    a: &Assistant,
    ctx: &Context,
    ns: &str,
    new: crate::api::AssistantStatus,
) -> Result<(), Error> {
    if !status::changed(a.status.as_ref(), &new) {
        return Ok(());
    }
    let api: Api<Assistant> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Assistant",
        "status": new,
    });
    api.patch_status(
        &a.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    publish_transitions(a, ctx, &new).await;
    Ok(())
}

async fn publish_transitions(a: &Assistant, ctx: &Context, new: &crate::api::AssistantStatus) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let reference = a.object_ref(&());
    for c in status::transitions(a.status.as_ref(), new) {
        let event = Event {
            type_: if c.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: c.reason.clone(),
            note: Some(format!("{} is {}: {}", c.type_, c.status, c.message)),
            action: "Reconcile".into(),
            secondary: None,
        };
        // Events are best effort: a failed event must not fail the reconcile.
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, "could not publish event");
        }
    }
}

/// Requeue after an error with per-object exponential backoff (bounded), so a broken
/// Assistant never hot-loops and a transient API error retries soon.
pub fn error_policy(a: Arc<Assistant>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next_delay(&assistant_key(&a));
    warn!(error = %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// Problems that stop the apply, as a status condition.
pub(crate) fn problem(reason: &'static str, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        reason,
        message: message.into(),
    }
}

pub(crate) fn names(a: &Assistant) -> ChildNames {
    ChildNames::for_assistant(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assistant, config};
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pvc(size: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity(size.into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn plan_changes_never_shrink_the_volume() {
        let cfg = config();
        let mut a = assistant("alice");
        a.spec.plan = Some("small".into()); // 5Gi
        let size = |a: &Assistant| children::data_volume::requested_size(a, &cfg).unwrap();
        // Downgrade from a 50Gi volume: the volume keeps 50Gi.
        assert_eq!(
            size(&keep_volume_size(&a, &cfg, Some(&pvc("50Gi")))),
            "50Gi"
        );
        // Upgrade: the plan's larger size applies.
        a.spec.plan = Some("large".into());
        assert_eq!(size(&keep_volume_size(&a, &cfg, Some(&pvc("5Gi")))), "50Gi");
        // No volume yet, or an explicit size: untouched.
        assert_eq!(keep_volume_size(&a, &cfg, None).spec, a.spec);
        a.spec.storage = Some(crate::api::StorageSpec {
            size: Some("20Gi".into()),
            ..Default::default()
        });
        assert_eq!(keep_volume_size(&a, &cfg, Some(&pvc("50Gi"))).spec, a.spec);
    }
}
