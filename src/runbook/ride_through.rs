//! RIDE-THROUGH (`follow.on_master_change = "ride-through"`, issue 14): a
//! follower whose master changed keeps its mounts and its environments.
//! The node core has waited until the new master's heartbeat says its
//! promote finished and it serves (`node::converge`); this runbook then
//! only looks:
//!
//! 1. each shared dir's mount answers: an `fs-probe list` child under the
//!    time left until the deadline (a read on a hard mount whose server
//!    does not answer blocks; the child is killed, never the agent, see
//!    [`super::fs_probe`]). The NFSv4 client meets the new server as a
//!    rebooted one (`NFSERR_STALECLIENTID` / `NFSERR_BADSESSION`), sets up
//!    a new client ID and reclaims its opens and locks in the server's
//!    grace period (RFC 8881 §8.4.2.1); a mount of another filesystem (a
//!    different fsid in the handles) answers `ESTALE`.
//! 2. the storage's identity: `dir.id` as the follow checks it (the same
//!    step, [`super::storage::verify_dir_id`]), also under the time left.
//!
//! Nothing is stopped, unmounted or started. Any failure (`ESTALE`, a probe
//! still hung at the deadline, another `dir.id`) fails the runbook, and the
//! worker falls back to the full follow (force-dismount first, as always).

use std::time::Duration;

use super::step::{Action, Builtin, Step, Verify};
use super::storage;
use crate::config::Config;

/// The probes, each bounded by `within` (what is left of
/// `follow.ride_through_timeout` since the master changed; `plan` shows
/// the whole of it).
pub fn build(config: &Config, within: Duration) -> Vec<Step> {
    let Some(cbsd) = &config.cbsd else {
        return Vec::new();
    };
    // A probe needs a moment even when the deadline is near: at least a
    // second, so that an answering mount is not failed for want of time.
    let within = within.max(Duration::from_secs(1));
    let mut steps: Vec<Step> = cbsd
        .shared_dirs
        .iter()
        .map(|dir| {
            Step::new(
                format!("probe mount {dir}"),
                Action::Builtin(Builtin::Verify(Verify::MountAnswers {
                    dir: cbsd.workdir_path(dir),
                })),
                within,
            )
        })
        .collect();
    let mut identity = storage::verify_dir_id(config, cbsd);
    identity.timeout = within;
    steps.push(identity);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::converge::RIDE_IDENTITY_STEP;

    fn config() -> Config {
        let text = "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n[cbsd]\n";
        crate::config::parse_with_hostname(text, std::path::Path::new("/x.toml"), Some("node1"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn probes_every_mount_then_the_identity_and_touches_nothing() {
        let steps = build(&config(), Duration::from_secs(42));
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.last(), Some(&RIDE_IDENTITY_STEP));
        assert!(names[..names.len() - 1]
            .iter()
            .all(|n| n.starts_with("probe mount ")));
        assert!(steps.len() > 1, "{names:?}");
        for step in &steps {
            assert_eq!(step.timeout, Duration::from_secs(42), "{}", step.name);
            assert!(step.argvs().is_empty(), "no command: {}", step.name);
            assert!(step.acquires.is_none() && step.undo.is_none());
        }
    }

    #[test]
    fn a_deadline_already_reached_still_gives_each_probe_a_second() {
        let steps = build(&config(), Duration::ZERO);
        assert!(steps.iter().all(|s| s.timeout == Duration::from_secs(1)));
    }
}
