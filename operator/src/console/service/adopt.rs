//! Adopting an Assistant created outside the console (kubectl, GitOps): a client record is
//! linked to it; the Assistant itself is not touched.

use serde::Deserialize;
use serde_json::json;

use super::new_client::check_record_fields;
use super::{ActionError, now};
use crate::console::Console;
use crate::console::cluster::ClusterError;
use crate::console::db::{Admin, NewClientRecord};
use crate::validation::{is_bidi_control, is_email};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdoptRequest {
    pub namespace: String,
    pub name: String,
    /// `active` when absent.
    #[serde(default)]
    pub billing_status: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Creates the client record of an existing unmanaged Assistant (owner name and e-mail from
/// its `spec.owner`); from then on the sampler bills it like any client.
pub async fn adopt(ctx: &Console, actor: &Admin, r: &AdoptRequest) -> Result<i64, ActionError> {
    let (ns, name) = (r.namespace.trim(), r.name.trim());
    let billing = r
        .billing_status
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or("active");
    let notes = r.notes.clone().unwrap_or_default();
    let mut errs = Vec::new();
    check_record_fields(billing, &notes, &mut errs);
    if !errs.is_empty() {
        return Err(ActionError::Invalid(errs));
    }
    let a = match ctx.cluster.get(ns, name).await? {
        Some(a) => a,
        None => {
            return Err(ActionError::invalid(
                "name",
                format!("there is no Assistant {name:?} in namespace {ns:?} to adopt"),
            ));
        }
    };
    // kubectl bypasses the console's checks (the CRD schema cannot refuse everything):
    // the record must meet the same rules as a client created here.
    let owner = &a.spec.owner;
    if owner.name.trim().is_empty()
        || owner
            .name
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c))
    {
        return Err(ActionError::invalid(
            "name",
            format!(
                "the Assistant {ns}/{name} has an owner name that is empty or holds control or bidirectional characters: correct spec.owner.name (kubectl edit) and adopt it then"
            ),
        ));
    }
    if !is_email(&owner.email) {
        return Err(ActionError::invalid(
            "name",
            format!(
                "the Assistant {ns}/{name} has an owner e-mail that is not an address: correct spec.owner.email (kubectl edit) and adopt it then"
            ),
        ));
    }
    if ctx.db.client_by_assistant(ns, name).await?.is_some() {
        return Err(ActionError::invalid(
            "name",
            format!("the Assistant {ns}/{name} already belongs to a client"),
        ));
    }
    let record = NewClientRecord {
        name: a.spec.owner.name.clone(),
        email: a.spec.owner.email.clone(),
        billing_status: billing.to_string(),
        notes,
        namespace: ns.to_string(),
        assistant_name: name.to_string(),
    };
    let t = now();
    let id = match ctx.db.insert_client(&record, t).await {
        Ok(id) => id,
        // Two admins adopting at once: the unique index keeps one record per Assistant.
        Err(e) if ctx.db.client_by_assistant(ns, name).await?.is_some() => {
            tracing::debug!(error = %e, "concurrent adoption");
            return Err(ActionError::Cluster(ClusterError::AlreadyExists(format!(
                "the Assistant {ns}/{name} was adopted meanwhile"
            ))));
        }
        Err(e) => return Err(e.into()),
    };
    let after = json!({
        "record": {"name": record.name, "email": record.email,
                   "billing_status": record.billing_status,
                   "notes_chars": record.notes.chars().count()},
        "assistant": {"namespace": ns, "name": name, "uid": a.metadata.uid},
    });
    ctx.db
        .audit(
            t,
            &actor.email,
            "client.adopt",
            Some(id),
            &format!("{ns}/{name}"),
            None,
            Some(&after.to_string()),
        )
        .await?;
    Ok(id)
}
