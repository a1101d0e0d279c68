//! PROMOTE (backup → master), after the election fenced: force-dismount
//! the shared dirs whose old server no longer answers, stop what runs on
//! the old mounts, unmount them, take the storage, bind it into the
//! workdir, check `dir.id`, write the exports, start the NFS server, add
//! the VIP *last* (clients cannot reach nfsd before the exports exist) and
//! announce it, then start this node's environments.
//!
//! Every step that changes something carries its undo: a failed promote
//! reverses its done steps before it reports failure, so the next
//! candidate finds the storage released and no VIP.

use super::step::{Action, Builtin, OnFailure, Step};
use super::{cbsd, exports, nfs, stable_restart, storage, Env};
use crate::config::Config;
use crate::wire::heartbeat::Resource;

/// The steps up to and including the VIP and ARP burst; `running` are the
/// environments that may run on the old mounts.
pub fn build(config: &Config, running: &[Env]) -> Vec<Step> {
    let mut steps = Vec::new();
    if let (Some(cbsd_config), Some(storage_config)) = (&config.cbsd, &config.storage) {
        // A dead server's mounts go first: what the stops run would hang
        // on them. Nobody holds the VIP now (the old master dropped it
        // first, this node adds it last): a mount of it is dead.
        steps.push(nfs::dismount_dead(config, cbsd_config, false));
        steps.extend(running.iter().flat_map(|env| cbsd::stop(config, env)));
        for dir in &cbsd_config.shared_dirs {
            steps.extend(nfs::unmount_nfs(config, cbsd_config, dir));
        }
        // From here on every step takes a part of the master resources.
        let acquiring_from = steps.len();
        steps.extend(storage::take(config, cbsd_config, storage_config));
        for dir in &cbsd_config.shared_dirs {
            steps.push(storage::bind(config, cbsd_config, storage_config, dir));
        }
        steps.push(storage::verify_dir_id(config, cbsd_config));
        // A VM can only be stopped with its jails-system/ there.
        steps.extend(
            running
                .iter()
                .flat_map(|env| cbsd::stop_vm_again(config, env)),
        );
        let exports_file = config.nfs.exports_file.clone();
        steps.push(
            Step::new(
                "write exports",
                Action::Builtin(Builtin::WriteExports {
                    file: exports_file.clone(),
                    dirs: cbsd_config
                        .shared_dirs
                        .iter()
                        .map(|d| storage_config.dir_path(d))
                        .collect(),
                    clients: exports::Clients {
                        network: config.nfs.export_network,
                        network6: config.nfs.export_network6,
                        hosts: config.nfs.export_hosts.clone(),
                        hosts6: config.nfs.export_hosts6.clone(),
                    },
                }),
                config.runbook.command_timeout,
            )
            .undo(clear_exports(config)),
        );
        // nfsd reads its stable restart records once, at start
        // (usr.sbin/nfsd/nfsd.c open_stable): the links must be there
        // before it starts, and the storage they point into mounted.
        if let Some(links) = stable_restart::configured(config) {
            steps.push(stable_restart::link_step(config, links));
        }
        for service in nfs::server_services(config.nfs.v4_only) {
            steps.push(nfs::start_service(config, service));
        }
        steps.extend(nfs::verify_listening(config));
        for step in steps.iter_mut().skip(acquiring_from) {
            step.acquires = Some(Resource::Master);
        }
    }
    // Both families in one step, IPv4 then IPv6 (runbook/vip.rs), so its
    // undo drops both; then each family's announcement.
    steps.push(add_vip(config).acquiring(Resource::Master));
    if !config.virtual_ips4().is_empty() {
        steps.push(arp_burst(config));
    }
    if config.virtual_ips6().is_some() {
        steps.push(na_burst(config));
    }
    steps
}

/// PROMOTE step 9: the environments assigned to this node.
pub fn start_environments(config: &Config, envs: &[Env]) -> Vec<Step> {
    start_environments_taking_over(config, envs, &[])
}

/// The same, where a CBSD lock naming one of `takeover` (nodes whose lease
/// has expired) does not stop the start: the adoption of an environment
/// whose node is gone.
pub fn start_environments_taking_over(
    config: &Config,
    envs: &[Env],
    takeover: &[String],
) -> Vec<Step> {
    match &config.cbsd {
        Some(cbsd_config) => envs
            .iter()
            .flat_map(|env| cbsd::start(config, cbsd_config, env, &config.node.name, takeover))
            .collect(),
        None => Vec::new(),
    }
}

pub(super) fn clear_exports(config: &Config) -> Step {
    Step::new(
        "clear exports",
        Action::Builtin(Builtin::ClearExports {
            file: config.nfs.exports_file.clone(),
        }),
        config.runbook.command_timeout,
    )
}

pub(super) fn drop_vip(config: &Config) -> Step {
    Step::new(
        "drop vip",
        Action::Builtin(Builtin::DropVip),
        config.runbook.command_timeout,
    )
}

fn add_vip(config: &Config) -> Step {
    Step::new(
        "add vip",
        Action::Builtin(Builtin::AddVip),
        config.runbook.command_timeout,
    )
    .undo(drop_vip(config))
}

/// As [`arp_burst`], for the IPv6 VIPs: a lost burst is not worth a failed
/// promote (the agent re-announces after `garp_master_delay`, and
/// neighbours re-resolve a stale entry by solicitation, RFC 4861 §7.3.3).
fn na_burst(config: &Config) -> Step {
    Step::new(
        "na burst",
        Action::Builtin(Builtin::NaBurst),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
}

/// A lost ARP burst is not worth a failed promote: the kernel sends one
/// gratuitous ARP by itself and the agent re-announces later.
fn arp_burst(config: &Config) -> Step {
    Step::new(
        "arp burst",
        Action::Builtin(Builtin::ArpBurst),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
}
