//! What the console does, independent of HTTP: pages and the JSON API both call these, so
//! both offer the same actions with the same checks, and every action writes an audit event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Console;
use super::cluster::{ClusterError, EventInfo};
use super::db::{Admin, AuditEvent, ClientFilter, ClientRow, DbError, NewClientRecord};
use crate::api::{
    Assistant, AssistantSpec, GatewaySpec, OnDelete, Owner, Phase, SecretKeyRef, StorageSpec,
    TailscaleSpec,
};
use crate::children::{self, ChildNames, GatewayToken, RESTART_REQUESTED_ANNOTATION};
use crate::validation::validate;

pub const BILLING_STATUSES: [&str; 4] = ["active", "trial", "past_due", "cancelled"];
/// Model providers the new-client form offers, with the environment variable openclaw reads.
pub const MODEL_PROVIDERS: [(&str, &str, &str); 4] = [
    ("anthropic", "Anthropic", "ANTHROPIC_API_KEY"),
    ("openai", "OpenAI", "OPENAI_API_KEY"),
    ("openrouter", "OpenRouter", "OPENROUTER_API_KEY"),
    ("gemini", "Google Gemini", "GEMINI_API_KEY"),
];
pub const MAX_NOTES: usize = 20_000;
pub const MAX_SECRET_INPUT: usize = 4096;
pub const PER_PAGE_DEFAULT: u32 = 50;
pub const PER_PAGE_MAX: u32 = 500;

/// One problem with one input field; `field` uses the Assistant's field paths where the
/// rule comes from `validation.rs`, so messages match `clawhost render`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("not found")]
    NotFound,
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl ActionError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ActionError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ActionError::NotFound => S::NOT_FOUND,
            ActionError::Invalid(_) => S::UNPROCESSABLE_ENTITY,
            ActionError::Cluster(ClusterError::Unreachable(_)) => S::SERVICE_UNAVAILABLE,
            ActionError::Cluster(ClusterError::NotFound) => S::NOT_FOUND,
            ActionError::Cluster(_) => S::CONFLICT,
            ActionError::Db(_) => S::INTERNAL_SERVER_ERROR,
        }
    }
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// `YYYY-MM` (UTC) of a Unix time.
pub fn month_of(unix: i64) -> String {
    let ts = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string()
}

pub fn valid_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(m[5..].parse::<u8>(), Ok(1..=12))
}

// ----- views -----

/// A client record joined with its Assistant (when the cluster answered and it exists).
#[derive(Debug, Clone)]
pub struct ClientView {
    pub record: ClientRow,
    pub assistant: Option<Arc<Assistant>>,
}

impl ClientView {
    /// Phase name, `Missing` when the cluster has no such Assistant, `Unknown` when the
    /// cluster did not answer.
    pub fn phase(&self, cluster_ok: bool) -> &'static str {
        match &self.assistant {
            Some(a) => a
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(Phase::Pending)
                .as_str(),
            None if cluster_ok => "Missing",
            None => "Unknown",
        }
    }

    pub fn ready(&self) -> Option<bool> {
        let s = self.assistant.as_ref()?.status.as_ref()?;
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status == "True")
    }

    pub fn version(&self) -> Option<String> {
        let a = self.assistant.as_ref()?;
        a.status
            .as_ref()
            .and_then(|s| s.gateway_version.clone())
            .or_else(|| a.spec.gateway.as_ref().and_then(|g| g.version.clone()))
    }

    pub fn tailnet(&self) -> Option<String> {
        self.assistant
            .as_ref()?
            .status
            .as_ref()?
            .tailnet
            .as_ref()?
            .fqdn
            .clone()
    }

    /// Creation time of the Assistant, else of the record (Unix seconds).
    pub fn created(&self) -> i64 {
        self.assistant
            .as_ref()
            .and_then(|a| a.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
            .unwrap_or(self.record.created_at)
    }

    pub fn summary(&self, cluster_ok: bool) -> ClientSummary {
        ClientSummary {
            id: self.record.id,
            name: self.record.name.clone(),
            email: self.record.email.clone(),
            plan: self.record.plan.clone(),
            billing_status: self.record.billing_status.clone(),
            namespace: self.record.namespace.clone(),
            assistant: self.record.assistant_name.clone(),
            phase: self.phase(cluster_ok).to_string(),
            ready: self.ready(),
            version: self.version(),
            tailnet: self.tailnet(),
            created_at: self.created(),
            deleted: self.record.deleted_at.is_some(),
        }
    }
}

/// The JSON shape of a client in lists.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSummary {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub plan: String,
    pub billing_status: String,
    pub namespace: String,
    pub assistant: String,
    pub phase: String,
    pub ready: Option<bool>,
    pub version: Option<String>,
    pub tailnet: Option<String>,
    pub created_at: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub billing: Option<String>,
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub per_page: Option<u32>,
}

pub struct ClientPage {
    pub items: Vec<ClientView>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
    pub cluster_error: Option<String>,
}

type AssistantIndex = HashMap<(String, String), Arc<Assistant>>;

async fn assistant_index(ctx: &Console) -> (AssistantIndex, Option<String>) {
    match ctx.cluster.list().await {
        Ok(list) => (
            list.into_iter()
                .map(|a| {
                    (
                        (
                            a.metadata.namespace.clone().unwrap_or_default(),
                            a.metadata.name.clone().unwrap_or_default(),
                        ),
                        a,
                    )
                })
                .collect(),
            None,
        ),
        Err(e) => (HashMap::new(), Some(e.to_string())),
    }
}

fn join(rows: Vec<ClientRow>, idx: &AssistantIndex) -> Vec<ClientView> {
    rows.into_iter()
        .map(|r| {
            let a = idx
                .get(&(r.namespace.clone(), r.assistant_name.clone()))
                .cloned();
            ClientView {
                record: r,
                assistant: a,
            }
        })
        .collect()
}

/// Clients page: database filters and pagination in SQL; a phase filter (cluster data)
/// filters the joined rows in memory, which stays fast at 10,000 clients.
pub async fn list_clients(ctx: &Console, q: &ListQuery) -> Result<ClientPage, ActionError> {
    let per_page = q
        .per_page
        .unwrap_or(PER_PAGE_DEFAULT)
        .clamp(1, PER_PAGE_MAX);
    let page = q.page.unwrap_or(1).max(1);
    let filter = ClientFilter {
        q: q.q.as_ref().map(|s| s.trim().to_string()),
        plan: q.plan.clone(),
        billing_status: q.billing.clone(),
        include_deleted: false,
    };
    let offset = (page as i64 - 1) * per_page as i64;
    let (idx, cluster_error) = assistant_index(ctx).await;
    let phase = q.phase.as_deref().filter(|p| !p.is_empty());
    let ok = cluster_error.is_none();
    if let Some(phase) = phase {
        let (rows, _) = ctx.db.list_clients(&filter, None).await?;
        let all: Vec<ClientView> = join(rows, &idx)
            .into_iter()
            .filter(|v| v.phase(ok) == phase)
            .collect();
        let total = all.len() as i64;
        let items = all
            .into_iter()
            .skip(offset as usize)
            .take(per_page as usize)
            .collect();
        return Ok(ClientPage {
            items,
            total,
            page,
            per_page,
            cluster_error,
        });
    }
    let (rows, total) = ctx
        .db
        .list_clients(&filter, Some((per_page as i64, offset)))
        .await?;
    Ok(ClientPage {
        items: join(rows, &idx),
        total,
        page,
        per_page,
        cluster_error,
    })
}

pub struct ClientDetail {
    pub view: ClientView,
    pub cluster_error: Option<String>,
    pub events: Result<Vec<EventInfo>, String>,
    pub log: Result<Option<String>, String>,
    pub month: String,
    pub usage_minutes: i64,
    pub audit: Vec<AuditEvent>,
}

pub const LOG_LINES: i64 = 50;

pub async fn client_detail(ctx: &Console, id: i64) -> Result<ClientDetail, ActionError> {
    let record = ctx.db.client(id).await?.ok_or(ActionError::NotFound)?;
    let (ns, name) = (record.namespace.clone(), record.assistant_name.clone());
    let (assistant, cluster_error) = match ctx.cluster.get(&ns, &name).await {
        Ok(a) => (a.map(Arc::new), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (events, log) = if cluster_error.is_some() || record.deleted_at.is_some() {
        (Ok(Vec::new()), Ok(None))
    } else {
        let (e, l) = futures::join!(
            ctx.cluster.events(&ns, &name),
            ctx.cluster.gateway_log(&ns, &name, LOG_LINES)
        );
        (e.map_err(|e| e.to_string()), l.map_err(|e| e.to_string()))
    };
    let month = month_of(now());
    let usage_minutes = ctx.db.usage_minutes(id, &month).await?;
    let audit = ctx.db.audit_events(Some(id), 20, 0).await?;
    Ok(ClientDetail {
        view: ClientView { record, assistant },
        cluster_error,
        events,
        log,
        month,
        usage_minutes,
        audit,
    })
}

// ----- new client -----

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewClient {
    pub name: String,
    pub email: String,
    /// Kubernetes name of the Assistant.
    pub assistant_name: String,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub billing_status: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub tailscale_auth_key: Option<String>,
    #[serde(default)]
    pub tailscale_hostname: Option<String>,
    #[serde(default)]
    pub model_provider: Option<String>,
    #[serde(default)]
    pub model_api_key: Option<String>,
    /// `Retain` or `Delete`.
    #[serde(default)]
    pub on_delete: Option<String>,
}

impl NewClient {
    fn clean(v: &Option<String>) -> Option<String> {
        v.as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

pub struct Created {
    pub client_id: i64,
    /// Shown once, then never again.
    pub gateway_token: GatewayToken,
    pub warnings: Vec<String>,
}

fn parse_on_delete(v: Option<&str>) -> Result<OnDelete, FieldError> {
    match v.map(str::trim).unwrap_or("") {
        "" | "Retain" => Ok(OnDelete::Retain),
        "Delete" => Ok(OnDelete::Delete),
        other => Err(FieldError {
            field: "spec.storage.onDelete".into(),
            message: format!("{other:?} is not Retain or Delete"),
        }),
    }
}

fn secret_input(field: &str, v: &Option<String>, errs: &mut Vec<FieldError>) -> Option<String> {
    let v = NewClient::clean(v)?;
    if v.len() > MAX_SECRET_INPUT || v.chars().any(char::is_control) {
        errs.push(FieldError {
            field: field.into(),
            message: format!(
                "must be at most {MAX_SECRET_INPUT} characters without control characters"
            ),
        });
        return None;
    }
    Some(v)
}

fn check_record_fields(billing: &str, notes: &str, errs: &mut Vec<FieldError>) {
    if !BILLING_STATUSES.contains(&billing) {
        errs.push(FieldError {
            field: "billing_status".into(),
            message: format!("{billing:?} is not one of {}", BILLING_STATUSES.join(", ")),
        });
    }
    if notes.chars().count() > MAX_NOTES {
        errs.push(FieldError {
            field: "notes".into(),
            message: format!("must be at most {MAX_NOTES} characters"),
        });
    }
}

/// Names of the Secrets the console creates for a new client.
pub fn tailscale_secret_name(assistant: &str) -> String {
    format!("{}-tailscale-auth", ChildNames::new(assistant).base)
}
pub fn model_secret_name(assistant: &str) -> String {
    format!("{}-model-provider", ChildNames::new(assistant).base)
}

/// The Assistant a new-client request describes (before validation).
pub fn assistant_for(
    ctx: &Console,
    n: &NewClient,
    errs: &mut Vec<FieldError>,
) -> (Assistant, Option<String>, Option<(String, String)>) {
    let name = n.assistant_name.trim().to_string();
    let ts_key = secret_input("tailscale_auth_key", &n.tailscale_auth_key, errs);
    let model_key = secret_input("model_api_key", &n.model_api_key, errs);
    let provider = NewClient::clean(&n.model_provider);
    let model = match (provider, model_key) {
        (None, None) => None,
        (Some(_), None) => None,
        (None, Some(_)) => {
            errs.push(FieldError {
                field: "model_provider".into(),
                message: "choose the provider of the API key".into(),
            });
            None
        }
        (Some(p), Some(k)) => match MODEL_PROVIDERS.iter().find(|(id, _, _)| *id == p) {
            Some((_, _, env)) => Some((env.to_string(), k)),
            None => {
                errs.push(FieldError {
                    field: "model_provider".into(),
                    message: format!("{p:?} is not a supported provider"),
                });
                None
            }
        },
    };
    let on_delete = parse_on_delete(n.on_delete.as_deref()).unwrap_or_else(|e| {
        errs.push(e);
        OnDelete::Retain
    });
    let version = NewClient::clean(&n.version);
    let hostname = NewClient::clean(&n.tailscale_hostname);
    let gateway = if version.is_some() || model.is_some() {
        Some(GatewaySpec {
            version,
            env: model
                .iter()
                .map(|(env, _)| EnvVar {
                    name: env.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: model_secret_name(&name),
                            key: env.clone(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                })
                .collect(),
            ..Default::default()
        })
    } else {
        None
    };
    let tailscale = if ts_key.is_some() || hostname.is_some() {
        Some(TailscaleSpec {
            auth_key_secret_ref: ts_key.as_ref().map(|_| SecretKeyRef {
                name: tailscale_secret_name(&name),
                key: "authkey".into(),
            }),
            hostname,
            ..Default::default()
        })
    } else {
        None
    };
    let a = Assistant {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: Some(ctx.opts.namespace.clone()),
            ..Default::default()
        },
        spec: AssistantSpec {
            owner: Owner {
                name: n.name.trim().to_string(),
                email: n.email.trim().to_string(),
            },
            plan: NewClient::clean(&n.plan),
            gateway,
            storage: (on_delete != OnDelete::Retain).then(|| StorageSpec {
                on_delete,
                ..Default::default()
            }),
            tailscale,
            ..Default::default()
        },
        status: None,
    };
    (a, ts_key, model)
}

fn secret_for(owner: &Assistant, name: &str, key: &str, value: &str, component: &str) -> Secret {
    Secret {
        metadata: children::child_meta(owner, name, component),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        ..Default::default()
    }
}

/// Creates the client record, the Assistant and its Secrets.
pub async fn create_client(
    ctx: &Console,
    actor: &Admin,
    n: &NewClient,
) -> Result<Created, ActionError> {
    let mut errs = Vec::new();
    let billing = NewClient::clean(&n.billing_status).unwrap_or_else(|| "active".into());
    let notes = n.notes.clone().unwrap_or_default();
    check_record_fields(&billing, &notes, &mut errs);
    let (assistant, ts_key, model) = assistant_for(ctx, n, &mut errs);
    if let Err(p) = validate(&assistant, &ctx.config, None) {
        errs.extend(p.0.into_iter().map(|p| FieldError {
            field: p.field,
            message: p.message,
        }));
    }
    if !errs.is_empty() {
        return Err(ActionError::Invalid(errs));
    }
    let ns = ctx.opts.namespace.clone();
    let name = assistant.metadata.name.clone().unwrap_or_default();
    if ctx.db.client_by_assistant(&ns, &name).await?.is_some() {
        return Err(ActionError::invalid(
            "metadata.name",
            format!("{name:?} already belongs to a client"),
        ));
    }
    let created = match ctx.cluster.create(&assistant).await {
        Ok(a) => a,
        Err(ClusterError::AlreadyExists(_)) => {
            return Err(ActionError::invalid(
                "metadata.name",
                format!("an Assistant named {name:?} already exists in namespace {ns}"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let plan = ctx
        .config
        .plan(assistant.spec.plan.as_deref())
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let record = NewClientRecord {
        name: assistant.spec.owner.name.clone(),
        email: assistant.spec.owner.email.clone(),
        plan,
        billing_status: billing,
        notes,
        namespace: ns.clone(),
        assistant_name: name.clone(),
    };
    let t = now();
    let client_id = ctx.db.insert_client(&record, t).await?;

    // Secrets are owned by the Assistant so deleting it removes them.
    let mut warnings = Vec::new();
    let mut secret_names = Vec::new();
    if let Some(k) = &ts_key {
        let s = secret_for(
            &created,
            &tailscale_secret_name(&name),
            "authkey",
            k,
            "tailscale-auth",
        );
        match ctx.cluster.create_secret(&s).await {
            Ok(()) => secret_names.push(tailscale_secret_name(&name)),
            Err(e) => warnings.push(format!("Tailscale auth-key Secret: {e}")),
        }
    }
    if let Some((env, k)) = &model {
        let s = secret_for(
            &created,
            &model_secret_name(&name),
            env,
            k,
            "model-provider",
        );
        match ctx.cluster.create_secret(&s).await {
            Ok(()) => secret_names.push(model_secret_name(&name)),
            Err(e) => warnings.push(format!("model-provider Secret: {e}")),
        }
    }
    let token = GatewayToken::generate();
    if let Err(e) = write_gateway_token(ctx, &created, &token).await {
        warnings.push(format!("gateway token Secret: {e}"));
    }
    let after = json!({
        "record": {"name": record.name, "email": record.email, "plan": record.plan,
                   "billing_status": record.billing_status, "notes_chars": record.notes.chars().count()},
        "assistant": {"namespace": ns, "name": name,
                      "version": assistant.spec.gateway.as_ref().and_then(|g| g.version.clone()),
                      "on_delete": format!("{:?}", assistant.storage().on_delete)},
        // Names only: secret values never reach the audit log.
        "secrets": secret_names,
    });
    ctx.db
        .audit(
            t,
            &actor.email,
            "client.create",
            Some(client_id),
            &format!("{ns}/{name}"),
            None,
            Some(&after.to_string()),
        )
        .await?;
    Ok(Created {
        client_id,
        gateway_token: token,
        warnings,
    })
}

/// Writes the gateway token: creates the Secret, or replaces the key if the operator
/// already created one.
async fn write_gateway_token(
    ctx: &Console,
    a: &Assistant,
    token: &GatewayToken,
) -> Result<(), ClusterError> {
    let names = ChildNames::for_assistant(a);
    let ns = a.metadata.namespace.clone().unwrap_or_default();
    let secret = children::gateway_token_secret::build(a, &ctx.config, token)
        .map_err(|e| ClusterError::Rejected(e.to_string()))?;
    match ctx.cluster.create_secret(&secret).await {
        Err(ClusterError::AlreadyExists(_)) => {
            ctx.cluster
                .patch_secret_key(
                    &ns,
                    &names.gateway_token_secret,
                    children::gateway_token_secret::TOKEN_KEY,
                    token.expose(),
                )
                .await
        }
        other => other,
    }
}

// ----- actions on a client -----

async fn live_client(ctx: &Console, id: i64) -> Result<ClientRow, ActionError> {
    match ctx.db.client(id).await? {
        Some(c) if c.deleted_at.is_none() => Ok(c),
        _ => Err(ActionError::NotFound),
    }
}

async fn assistant_of(ctx: &Console, c: &ClientRow) -> Result<Assistant, ActionError> {
    ctx.cluster
        .get(&c.namespace, &c.assistant_name)
        .await?
        .ok_or(ActionError::Cluster(ClusterError::NotFound))
}

fn target(c: &ClientRow) -> String {
    format!("{}/{}", c.namespace, c.assistant_name)
}

async fn audit(
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
    let patch = json!({"spec": {"suspended": if suspended { json!(true) } else { json!(null) }}});
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
    match validate(a, &ctx.config, None) {
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

pub async fn change_version(
    ctx: &Console,
    actor: &Admin,
    id: i64,
    version: &str,
) -> Result<(), ActionError> {
    let c = live_client(ctx, id).await?;
    let mut a = assistant_of(ctx, &c).await?;
    let version = version.trim();
    let before = a.spec.gateway.as_ref().and_then(|g| g.version.clone());
    let new = (!version.is_empty()).then(|| version.to_string());
    a.spec.gateway.get_or_insert_with(Default::default).version = new.clone();
    validate_change(ctx, &a, "spec.gateway.version")?;
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
        json!({"version": new}),
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
    a.spec.plan = Some(plan.clone());
    validate_change(ctx, &a, "spec.plan")?;
    ctx.cluster
        .patch(
            &c.namespace,
            &c.assistant_name,
            json!({"spec": {"plan": plan}}),
        )
        .await?;
    ctx.db.update_client_plan(id, &plan, now()).await?;
    audit(
        ctx,
        actor,
        "client.change_plan",
        &c,
        json!({"plan": c.plan}),
        json!({"plan": plan}),
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
    let current = match ctx.cluster.get(&c.namespace, &c.assistant_name).await? {
        Some(a) => {
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
    ctx.db.mark_client_deleted(id, now()).await?;
    audit(
        ctx,
        actor,
        "client.delete",
        &c,
        json!({"name": c.name, "plan": c.plan, "billing_status": c.billing_status}),
        json!({"deleted": true, "volume": current.map(|r| format!("{r:?}"))}),
    )
    .await
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

// ----- fleet -----

#[derive(Debug, Clone, Serialize, Default)]
pub struct Fleet {
    pub clients: i64,
    pub by_phase: BTreeMap<String, i64>,
    pub by_version: BTreeMap<String, i64>,
    pub by_plan: BTreeMap<String, i64>,
    /// Assistants in the cluster with no client record.
    pub unmanaged: Vec<String>,
    pub cluster_error: Option<String>,
}

pub async fn fleet(ctx: &Console) -> Result<Fleet, ActionError> {
    let (rows, total) = ctx.db.list_clients(&ClientFilter::default(), None).await?;
    let (idx, cluster_error) = assistant_index(ctx).await;
    let ok = cluster_error.is_none();
    let mut f = Fleet {
        clients: total,
        cluster_error,
        ..Default::default()
    };
    let mut known = std::collections::HashSet::new();
    for v in join(rows, &idx) {
        known.insert((v.record.namespace.clone(), v.record.assistant_name.clone()));
        *f.by_phase.entry(v.phase(ok).to_string()).or_default() += 1;
        *f.by_plan.entry(v.record.plan.clone()).or_default() += 1;
        if let Some(ver) = v.version() {
            *f.by_version.entry(ver).or_default() += 1;
        }
    }
    f.unmanaged = idx
        .keys()
        .filter(|k| !known.contains(*k))
        .map(|(ns, n)| format!("{ns}/{n}"))
        .collect();
    f.unmanaged.sort();
    Ok(f)
}

// ----- API tokens -----

/// Creates an API token for `actor`; the value is returned once.
pub async fn create_api_token(
    ctx: &Console,
    actor: &Admin,
    name: &str,
) -> Result<String, ActionError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ActionError::invalid(
            "name",
            "must be 1 to 100 characters without control characters",
        ));
    }
    let token = format!(
        "{}{}",
        super::auth::API_TOKEN_PREFIX,
        super::auth::random_token()
    );
    let prefix: String = token.chars().take(10).collect();
    let t = now();
    let id = ctx
        .db
        .create_api_token(actor.id, name, &super::auth::token_hash(&token), &prefix, t)
        .await?;
    ctx.db
        .audit(
            t,
            &actor.email,
            "api_token.create",
            None,
            &format!("api-token/{id}"),
            None,
            Some(&json!({"name": name, "prefix": prefix}).to_string()),
        )
        .await?;
    Ok(token)
}

pub async fn revoke_api_token(ctx: &Console, actor: &Admin, id: i64) -> Result<(), ActionError> {
    if !ctx.db.revoke_api_token(id, now()).await? {
        return Err(ActionError::NotFound);
    }
    ctx.db
        .audit(
            now(),
            &actor.email,
            "api_token.revoke",
            None,
            &format!("api-token/{id}"),
            None,
            None,
        )
        .await?;
    Ok(())
}
