//! Creating a client: its record, its Assistant and the Secrets it references.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use serde::Deserialize;
use serde_json::json;

use super::{
    ActionError, BILLING_STATUSES, FieldError, MAX_NOTES, MAX_SECRET_INPUT, MODEL_PROVIDERS, now,
};
use crate::api::{
    Assistant, AssistantSpec, GatewaySpec, OnDelete, Owner, RestoreFrom, SecretKeyRef, StorageSpec,
    TailscaleSpec,
};
use crate::children::{self, ChildNames, GatewayToken};
use crate::console::Console;
use crate::console::cluster::ClusterError;
use crate::console::db::{Admin, NewClientRecord};
use crate::validation::validate_at;

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
    /// A VolumeSnapshot (in the console's namespace) the new client's volume starts as:
    /// `spec.storage.restoreFrom` ("Restore as new client…").
    #[serde(default)]
    pub restore_from: Option<String>,
    /// The client whose snapshot `restore_from` is (its id): required with it; the snapshot
    /// must be that client's Assistant's (uid label), ready, and in the console's namespace.
    #[serde(default)]
    pub from: Option<i64>,
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
    /// The client's first handoff link (revealing `gateway_token`), when the token was
    /// written.
    pub handoff: Option<super::handoff::IssuedLink>,
    pub warnings: Vec<String>,
}

pub(super) fn parse_on_delete(v: Option<&str>) -> Result<OnDelete, FieldError> {
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

pub(super) fn check_record_fields(billing: &str, notes: &str, errs: &mut Vec<FieldError>) {
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
    let restore_from = NewClient::clean(&n.restore_from);
    if let Some(r) = &restore_from
        && !super::backups::valid_snapshot_name(r)
    {
        errs.push(FieldError {
            field: "spec.storage.restoreFrom.volumeSnapshotName".into(),
            message: format!("{r:?} is not a VolumeSnapshot name (a DNS subdomain)"),
        });
    }
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
            storage: (on_delete != OnDelete::Retain || restore_from.is_some()).then(|| {
                StorageSpec {
                    on_delete,
                    restore_from: restore_from.map(|name| RestoreFrom {
                        volume_snapshot_name: name,
                    }),
                    ..Default::default()
                }
            }),
            tailscale,
            ..Default::default()
        },
        status: None,
    };
    (a, ts_key, model)
}

/// The snapshot a new client is restored from, checked like an in-place restore's: client
/// `from`'s Assistant's (uid label), ready, not being deleted, and in the console's namespace
/// (new clients are created there; a volume is restored only within its namespace).
/// `Ok(Ok(restoreSize))`, `Ok(Err(why))` for the form, `Err` when the cluster cannot say.
async fn restore_source(
    ctx: &Console,
    from: Option<i64>,
    snapshot: &str,
) -> Result<Result<Option<String>, String>, ActionError> {
    let Some(from) = from else {
        return Ok(Err(format!(
            "say which client {snapshot:?} is a snapshot of (from: its client id); \
             use \"Restore as new client\" on that client's Backups card"
        )));
    };
    let t = match super::backups::restore_target(ctx, from, snapshot).await {
        Ok(t) => t,
        Err(ActionError::NotFound) | Err(ActionError::Cluster(ClusterError::NotFound)) => {
            return Ok(Err(format!(
                "client {from} (from) does not exist or has no Assistant: its snapshots cannot be restored here"
            )));
        }
        Err(ActionError::Conflict(why)) => return Ok(Err(why)),
        Err(ActionError::Invalid(errs)) => {
            return Ok(Err(errs
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")));
        }
        Err(e) => return Err(e),
    };
    if t.client.namespace != ctx.opts.namespace {
        return Ok(Err(format!(
            "the snapshot is in namespace {}, new clients are created in {}: a volume is restored only within its namespace",
            t.client.namespace, ctx.opts.namespace
        )));
    }
    Ok(Ok(t.snapshot.restore_size))
}

/// A volume restored from a snapshot is at least the snapshot's `restoreSize`: when the
/// size the new client would get (its plan's) is smaller (the old volume grew), the new
/// client asks for the snapshot's size (`spec.storage.size`).
fn fit_restore_size(ctx: &Console, a: &mut Assistant, restore_size: Option<&str>) {
    use crate::api::quantity::parse;
    let Some(need) = restore_size else { return };
    let requested = a.storage().size.or_else(|| {
        ctx.config
            .plan(a.spec.plan.as_deref())
            .map(|(_, p)| p.storage_size.0.clone())
    });
    let smaller = match (requested.as_deref().and_then(parse), parse(need)) {
        (Some(want), Some(need)) => want < need,
        (None, Some(_)) => true,
        _ => false,
    };
    if smaller {
        a.spec.storage.get_or_insert_with(Default::default).size = Some(need.to_string());
    }
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
    let (mut assistant, ts_key, model) = assistant_for(ctx, n, &mut errs);
    if let Some(snapshot) = assistant
        .storage()
        .restore_from
        .map(|r| r.volume_snapshot_name)
        .filter(|r| super::backups::valid_snapshot_name(r))
    {
        match restore_source(ctx, n.from, &snapshot).await? {
            Ok(restore_size) => fit_restore_size(ctx, &mut assistant, restore_size.as_deref()),
            Err(message) => errs.push(FieldError {
                field: "restore_from".into(),
                message,
            }),
        }
    }
    if let Err(p) = validate_at(&assistant, &ctx.config, None, Some(super::today())) {
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
            // No client record has it (checked above): it was created outside the console.
            return Err(ActionError::invalid(
                "metadata.name",
                format!(
                    "an Assistant named {name:?} already exists in namespace {ns} without a client record: \
                     adopt it from the Fleet page (or POST /api/v1/clients/adopt) instead of creating it again"
                ),
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
    let token_written = match write_gateway_token(ctx, &created, &token).await {
        Ok(()) => true,
        Err(e) => {
            warnings.push(format!("gateway token Secret: {e}"));
            false
        }
    };
    let after = json!({
        "record": {"name": record.name, "email": record.email, "plan": plan,
                   "billing_status": record.billing_status, "notes_chars": record.notes.chars().count()},
        "assistant": {"namespace": ns, "name": name,
                      "version": assistant.spec.gateway.as_ref().and_then(|g| g.version.clone()),
                      "on_delete": format!("{:?}", assistant.storage().on_delete),
                      "restore_from": assistant.storage().restore_from.map(|r| r.volume_snapshot_name)},
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
    // The first handoff link reveals the token just written (no second rotation).
    // The client exists by now: a failed link is a warning (create one on the client page).
    let handoff = match ctx.db.client(client_id).await {
        Ok(Some(row)) if token_written => {
            match super::handoff::issue_link(ctx, actor, &row, &token).await {
                Ok(link) => Some(link),
                Err(e) => {
                    warnings.push(format!("handoff link: {e}"));
                    None
                }
            }
        }
        _ => None,
    };
    Ok(Created {
        client_id,
        gateway_token: token,
        handoff,
        warnings,
    })
}

/// Writes the gateway token: creates the Secret, or replaces the key if the operator
/// already created one.
pub(super) async fn write_gateway_token(
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
