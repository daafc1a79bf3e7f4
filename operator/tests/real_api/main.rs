//! The real-API tier: the operator against a real kube-apiserver, etcd and
//! kube-controller-manager (`clawhost-envtest`, enabled by `KUBEBUILDER_ASSETS`). Claims
//! about the operator's behaviour count once they hold here; the in-memory API server
//! stays for fault injection. Tests run one at a time (two cores).

mod access_invites;
mod backup_step;
mod backups;
mod billing;
mod builders;
mod console;
mod console_backups;
mod console_outage;
mod fleet;
mod in_process;
mod leader;
mod onboarding;
mod prune;
mod restart;
mod restore_step;
mod runbooks;
mod support;
mod tailnet;
