//! DEMOTE (master → backup, graceful or forced): drop the VIP first (clients
//! and the next master must stop seeing this node as the NFS server before
//! anything else changes), stop local environments, stop the NFS services the master runs (lockd, statd, nfsd,
//! mountd; rpcbind and nfsuserd stay for the client side), empty the
//! exports block, unbind the shared dirs and release the storage. The
//! agent then runs FOLLOW for the new master.
//!
//! No undo: a demote that fails half way must never re-add the VIP without
//! a full promote. A failed demote is retried by the agent with backoff.

use super::promote::{clear_exports, drop_vip};
use super::step::{OnFailure, Step};
use super::{cbsd, nfs, stable_restart, storage, Env};
use crate::config::Config;

/// The demote steps: the VIP only on a plain VRRP node (no `[cbsd]`);
/// otherwise also stopping `running` (the environments on this node), the
/// NFS server and releasing the storage.
pub fn build(config: &Config, running: &[Env]) -> Vec<Step> {
    let Some(cbsd_config) = &config.cbsd else {
        return vec![drop_vip(config)];
    };
    // The VIP goes first: clients and the next master must stop seeing this
    // node as the NFS server before anything else changes (the shared
    // storage is released only after; the environments stop meanwhile).
    let mut steps: Vec<Step> = vec![drop_vip(config)];
    steps.extend(running.iter().flat_map(|env| cbsd::stop(config, env)));
    if let Some(storage_config) = &config.storage {
        for service in nfs::services_stopped_on_demote(config.nfs.v4_only) {
            steps.push(nfs::stop_service(config, service));
        }
        // nfsd has closed its files: the node gets its local ones back, as
        // nfsd expects at its next start if this node is not master then.
        if let Some(links) = stable_restart::configured(config) {
            steps.push(stable_restart::restore_step(config, links));
        }
        steps.push(clear_exports(config).on_failure(OnFailure::Continue));
        for dir in &cbsd_config.shared_dirs {
            steps.push(storage::unbind(config, cbsd_config, dir));
        }
        steps.extend(storage::release(config, storage_config));
    }
    steps
}
