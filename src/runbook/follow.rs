//! FOLLOW (a master appeared or changed): force-dismount the shared dirs
//! whose server no longer answers (anything touching them would hang), stop
//! local environments on the old mounts and unmount them (a new NFS server cannot honour the old
//! one's NFSv4 open and lock state), mount every shared dir from the VIP
//! under a timeout with retries and backoff while the new master is still
//! promoting (with nfsuserd running first, and nfscbd when the server
//! issues delegations), verify (listed by `mount -p -t nfs`, `dir.id`, a write
//! probe), then start this node's environments one at a time.
//!
//! On boot or rejoin ([`Context::rejoin`]) stale registrations of jails
//! this node no longer owns are cleared between the unmounts and the
//! mounts: junregister's cleanup (`jails-system/J/locked`, `jails-fstab`,
//! the rc.conf, `jail.limits` and `media.sql` dumps) then touches only the
//! empty local dirs, never the new owner's files on the shared ones. Stale
//! VMs are cleared after the mounts are verified: CBSD cannot load a VM
//! without its `jails-system/J/local.sqlite` (see [`super::cbsd`]).
//!
//! Environments are started only after every mount is verified: a failed
//! mount fails the runbook before any environment step.

use super::step::{Action, Builtin, Step};
use super::{cbsd, nfs, promote, storage, Context, Env};
use crate::config::Config;

/// Everything up to the verified mounts.
pub fn build(config: &Config, ctx: &Context, running: &[Env]) -> Vec<Step> {
    let Some(cbsd_config) = &config.cbsd else {
        return Vec::new();
    };
    let mut steps = quiesce(config, running);
    if ctx.rejoin {
        steps.push(cbsd::clear_stale_registrations(config));
    }
    if let Some(storage_config) = &config.storage {
        steps.extend(storage::stand_by(config, storage_config));
    }
    // Owner names mapped before anything is read through the mounts.
    for service in nfs::client_services(config.nfs.delegations) {
        // Left running: a follow has no undo, and the master runs it too.
        let mut start = nfs::start_service(config, service);
        start.undo = None;
        steps.push(start);
    }
    for dir in &cbsd_config.shared_dirs {
        steps.push(nfs::mount(config, cbsd_config, ctx.vip, dir));
    }
    steps.push(storage::verify_dir_id(config, cbsd_config));
    // CBSD writes under jails-system whenever it starts an environment.
    let probe_dir = cbsd_config
        .shared_dirs
        .iter()
        .find(|d| *d == "jails-system")
        .or(cbsd_config.shared_dirs.first())
        .map_or_else(|| "jails-system".to_owned(), Clone::clone);
    let probe = cbsd_config
        .workdir_path(&probe_dir)
        .join(format!(".probe.{}", config.node.name));
    steps.push(Step::new(
        "write probe",
        Action::Builtin(Builtin::WriteProbe { path: probe }),
        config.runbook.command_timeout,
    ));
    // A VM can only be stopped, and unregistered, with its jails-system/
    // mounted.
    steps.extend(
        running
            .iter()
            .flat_map(|env| cbsd::stop_vm_again(config, env)),
    );
    if ctx.rejoin {
        steps.push(cbsd::clear_stale_vm_registrations(config));
    }
    steps
}

/// QUIESCE (a planned hand-over; also the first steps of every follow):
/// force-dismount the shared dirs whose server no longer answers, stop the
/// environments on the mounts (each verified), unmount the shared dirs.
/// During a hand-over the old master still serves, so the stops and
/// unmounts end cleanly instead of meeting a dead server.
pub fn quiesce(config: &Config, running: &[Env]) -> Vec<Step> {
    let Some(cbsd_config) = &config.cbsd else {
        return Vec::new();
    };
    // A dead server's mounts go first: what the stops run would hang on
    // them.
    let mut steps = vec![nfs::dismount_dead(config, cbsd_config, true)];
    steps.extend(running.iter().flat_map(|env| cbsd::stop(config, env)));
    for dir in &cbsd_config.shared_dirs {
        steps.extend(nfs::unmount_nfs(config, cbsd_config, dir));
    }
    steps
}

/// FOLLOW step 5, the same as PROMOTE step 9.
pub fn start_environments(config: &Config, envs: &[Env]) -> Vec<Step> {
    promote::start_environments(config, envs)
}
