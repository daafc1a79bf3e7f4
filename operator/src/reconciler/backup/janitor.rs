//! Deletes final snapshots past their `clawhost.dev/expires-at` (their Assistants are gone,
//! so no reconcile would). Runs hourly and once at start, on the leader only.

use super::super::Context;

/// One sweep over the watched namespaces (cluster-wide when none are configured): LIST
/// `clawhost.dev/snapshot-kind=final,app.kubernetes.io/managed-by=clawhost`, DELETE (uid
/// precondition) those expired at `ctx.clock.now()`. Returns how many were deleted. Does
/// nothing when the snapshot API is absent.
pub async fn sweep_once(ctx: &Context) -> Result<usize, kube::Error> {
    let _ = ctx;
    todo!("engineer B")
}
