//! The CBSD/NFS runbooks: what a node does when it becomes master
//! ([`Kind::Promote`]), stops being master ([`Kind::Demote`]) or follows a
//! (new) master ([`Kind::Follow`]). `docs/runbooks.md` walks through each,
//! step by step, with the FreeBSD traps each step avoids.
//!
//! Builders ([`promote`], [`demote`], [`follow`], with [`storage`],
//! [`nfs`], [`cbsd`], [`exports`]) are pure: config in, [`step::Step`]s
//! out, each an argv vector (never a shell string) or a builtin. `plan`
//! prints them ([`plan`]); the [`executor::Runner`] runs them.
//!
//! # Contract for the agent
//!
//! - The election never waits for a runbook: drive a [`Runner`] from its
//!   own tokio task and tell it what to do through a channel.
//! - [`Runner::execute`] runs one job (a runbook, with the environments it
//!   stops and starts: `node::converge` decides which) to its end and
//!   reports what became of each environment. It checks the `cancel` watch
//!   *between* steps (and during retry backoffs): when its value changes
//!   the runbook stops at that safe point with a cancelled outcome. A step
//!   that *acquires* ([`step::Step::acquires`]) is killed at once, with its
//!   process group, when the fence's allowance
//!   ([`Runner::with_fence`]) no longer allows what it acquires. After any
//!   kill the exit is awaited for at most [`executor::KILL_WAIT`]; a
//!   process that outlives it is reported and abandoned. The next runbook
//!   (every step probes before it acts) picks up from whatever state that
//!   left. [`Runner::run`] runs one runbook without a worker's bookkeeping
//!   (tests).
//! - A failed promote has undone its done steps in reverse before it
//!   returns [`Outcome::Failed`]: the caller enters fault (priority 0) for
//!   `runbook.fault_hold_off`. A failed demote leaves the VIP dropped (it is
//!   dropped early) and must not be retried as a promote. A failed follow
//!   is retried by the caller after `runbook.retry_backoff_max`; its
//!   environments stay stopped.
//! - After a successful demote the caller runs follow for the new master.
//! - [`Runner::progress`] is a cheap shareable handle for `status`.
//! - Events: in [`crate::events`] (`runbook_started`, `runbook_step`,
//!   `runbook_finished`, `runbook_failed`, `runbook_cancelled`,
//!   `step_killed`, `command_abandoned`).

pub mod cbsd;
pub mod command;
pub mod demote;
pub mod executor;
pub mod expect;
pub mod exports;
pub mod follow;
pub mod fs_probe;
pub mod health;
pub mod nfs;
pub mod plan;
pub mod probe;
pub mod promote;
pub mod ride_through;
pub mod stable_restart;
pub mod step;
pub mod storage;
pub mod vip;

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::config::{Config, EnvKind, EnvPattern};

pub use executor::{Progress, ProgressHandle, Runner};
pub use vip::{SystemVip, VipControl, VipError};

/// Which runbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Becoming master: take the storage, bind and export the shared dirs,
    /// start the NFS server, add the VIP, start the environments.
    Promote,
    /// Stopping being master: drop the VIP first, then stop the
    /// environments, the NFS server and release the storage.
    Demote,
    /// Following a master: mount its shared dirs over NFS from the VIP and
    /// run this node's environments on them.
    Follow,
    /// With `[[environment]]` placement: stop the environments whose lease
    /// this node no longer has, start those it newly has.
    Place,
    /// A peer master hands over on purpose: stop the environments on its
    /// mounts and unmount them while it still serves.
    Quiesce,
    /// The master changed and this follower keeps its mounts
    /// (`follow.on_master_change = "ride-through"`): probe each mount and
    /// the storage's identity, nothing stopped ([`ride_through`]).
    RideThrough,
    /// Between transitions: a runbook's own steps run again to repair what
    /// a health check found ([`health`]).
    Repair,
}

impl Kind {
    /// The lower-case name used by `plan`, `status` and the events'
    /// `runbook=` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Promote => "promote",
            Kind::Demote => "demote",
            Kind::Follow => "follow",
            Kind::Place => "place",
            Kind::Quiesce => "quiesce",
            Kind::RideThrough => "ride-through",
            Kind::Repair => "repair",
        }
    }
}

/// A name that is not one of the runbooks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a runbook (promote, demote, follow, place, quiesce, ride-through)")]
pub struct UnknownKind {
    /// The text that was given.
    pub name: String,
}

impl std::str::FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(text: &str) -> Result<Self, UnknownKind> {
        match text {
            "promote" => Ok(Kind::Promote),
            "demote" => Ok(Kind::Demote),
            "follow" => Ok(Kind::Follow),
            "place" => Ok(Kind::Place),
            "quiesce" => Ok(Kind::Quiesce),
            "ride-through" => Ok(Kind::RideThrough),
            other => Err(UnknownKind {
                name: other.to_owned(),
            }),
        }
    }
}

/// What a run needs beyond the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The address followers mount from: [`Config::mount_address`], the
    /// first virtual IP of `[vrrp]` that is not link-local (IPv4 or IPv6).
    pub vip: IpAddr,
    /// The first follow since the agent started (boot or rejoin): follow
    /// then clears stale registrations of environments this node no longer
    /// owns before it mounts (FOLLOW step 2). The worker sets it.
    pub rejoin: bool,
}

impl Context {
    /// A context for a run that is not a boot or rejoin (`rejoin: false`).
    pub fn from_config(config: &Config) -> Self {
        Context {
            vip: config
                .mount_address()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            rejoin: false,
        }
    }

    /// The same context, marked as the first follow since the agent
    /// started (`true`) or not.
    pub fn with_rejoin(self, rejoin: bool) -> Self {
        Context { rejoin, ..self }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded, except environments listed in `skipped`
    /// (locked by another node, failed to start): they stay stopped.
    Succeeded {
        /// The names of the environments left stopped.
        skipped: Vec<String>,
    },
    /// `step` failed after its retries; a promote undid its done steps.
    Failed {
        /// The failed step's name, as `plan` shows it.
        step: String,
        /// Why its last attempt failed.
        error: String,
    },
    /// A newer transition stopped the runbook before `at_step`.
    Cancelled {
        /// The name of the step that was not started.
        at_step: String,
    },
}

/// One environment this node runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Env {
    /// The CBSD name of the jail or VM (`jname`).
    pub name: String,
    /// Jail or bhyve VM: which cbsd commands start and stop it.
    pub kind: EnvKind,
}

/// The environments the patterns name: literal names as they are, globs
/// expanded against `available` (the directories of `jails-system/`),
/// sorted, without duplicates (the first pattern naming one decides its
/// kind).
pub fn resolve_environments(patterns: &[EnvPattern], available: &[String]) -> Vec<Env> {
    let mut envs: Vec<Env> = Vec::new();
    for pattern in patterns {
        let mut names: Vec<&str> = if pattern.is_glob() {
            available
                .iter()
                .map(String::as_str)
                .filter(|name| pattern.matches(name))
                .collect()
        } else {
            vec![pattern.pattern.as_str()]
        };
        names.sort_unstable();
        for name in names {
            if !envs.iter().any(|e| e.name == name) {
                envs.push(Env {
                    name: name.to_owned(),
                    kind: pattern.kind,
                });
            }
        }
    }
    envs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_names_stay_and_globs_expand_sorted() {
        let patterns = vec![
            EnvPattern {
                pattern: "web1".into(),
                kind: EnvKind::Jail,
            },
            EnvPattern {
                pattern: "db*".into(),
                kind: EnvKind::Jail,
            },
            EnvPattern {
                pattern: "vm?".into(),
                kind: EnvKind::Bhyve,
            },
        ];
        let available: Vec<String> = ["db2", "vm1", "db1", "web2", "vm10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let names: Vec<(String, EnvKind)> = resolve_environments(&patterns, &available)
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("web1".into(), EnvKind::Jail),
                ("db1".into(), EnvKind::Jail),
                ("db2".into(), EnvKind::Jail),
                ("vm1".into(), EnvKind::Bhyve),
            ]
        );
    }
}
