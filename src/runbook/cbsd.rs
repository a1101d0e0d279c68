//! CBSD commands for the environments (jails and bhyve VMs) of this node.
//!
//! Every call runs from `/` with `NOCOLOR=1 NOINTER=1` and an explicit
//! `jname=`: without `jname` jstart/jstop open an interactive picker, and a
//! `CBSDfile` in the current directory changes what they act on. One
//! environment per call: multi-jail forms report "done" even on partial
//! failure. bhyve VMs are registered with `jregister` too (CBSD 14.1.3a's
//! `bregister` execs a missing file) and started with `bstart`/`bstop`.
//!
//! On boot or rejoin, follow first clears stale registrations: what CBSD
//! has registered here (`jorder` lists the jails, `border` the bhyve VMs:
//! names only, from the local database, no header, no remote nodes) and
//! this node does not own (no `[environments]` pattern names it; with
//! `[[environment]]`, no entry names it) is `junregister`ed. Jails before
//! the shared dirs are mounted, so junregister's dumps (rc.conf,
//! `jail.limits`, `media.sql`: subr/env_register.subr
//! `register_delete_full`) only touch the empty local dirs. VMs after: CBSD
//! cannot load a VM without its `jails-system/J/local.sqlite`
//! (subr/rcconf.subr `init_bhyve_rcconf` `err 1`s "Unable to fetch vm
//! data"), so a VM's junregister fails until the dirs are mounted; its
//! rc.conf dump goes to a local file (`rcfile=`), never the shared
//! jails-rcconf.
//!
//! A stop is verified (`jstatus` prints jid 0); when the plain stop fails or
//! times out, a second, forceful one follows. A verified stop is followed by
//! `junregister`, so the rc.conf CBSD dumps into jails-rcconf holds the
//! settings as they were at the stop, and the next `jregister` (here or on
//! another node) reads them rather than the copy the last `jregister` left
//! in jails-system.

use std::path::PathBuf;

use super::expect::Expect;
use super::step::{Action, Builtin, Checked, Command, Ensure, EnvPhase, Gate, OnFailure, Step};
use super::Env;
use crate::config::{Cbsd, Config, EnvKind, EnvPattern};
use crate::wire::heartbeat::Resource;

/// Seconds `bstop` waits before it kills a VM that ignores ACPI shutdown.
const BHYVE_HARD_TIMEOUT_S: u32 = 30;

fn cbsd(config: &Config, args: &[&str]) -> Command {
    let mut argv = vec![config.tools.cbsd.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Command {
        argv,
        cwd: Some(PathBuf::from("/")),
        env: vec![
            ("NOCOLOR".to_owned(), "1".to_owned()),
            ("NOINTER".to_owned(), "1".to_owned()),
        ],
    }
}

fn jname(env: &Env) -> String {
    format!("jname={}", env.name)
}

/// `cbsd jstatus jname=J`: prints the jid (0: stopped); exits 1 when J is
/// registered on this node (inverted).
fn jstatus(config: &Config, env: &Env, expect: Expect) -> Checked {
    Checked {
        command: cbsd(config, &["jstatus", &jname(env)]),
        expect,
    }
}

/// The plain stop: jails through their `exec.stop` (sudoexec/jstop, `jail
/// -f J.conf -r`), VMs by ACPI with `hard_timeout` before the kill
/// (sudoexec/bstop).
fn stop_act(config: &Config, env: &Env) -> Command {
    match env.kind {
        EnvKind::Jail => cbsd(config, &["jstop", "inter=0", &jname(env)]),
        EnvKind::Bhyve => cbsd(
            config,
            &[
                "bstop",
                &jname(env),
                &format!("hard_timeout={BHYVE_HARD_TIMEOUT_S}"),
            ],
        ),
    }
}

/// The forceful stop: sudoexec/jstop with `fast=1` runs `jail -rR J` (no
/// `exec.stop`), then `kill -9`s every process left in the jail;
/// sudoexec/bstop with `noacpi=1` sends no ACPI shutdown: `kill -9` of the
/// bhyve process at once, then `bhyvectl --destroy`.
fn force_stop_act(config: &Config, env: &Env) -> Command {
    match env.kind {
        EnvKind::Jail => cbsd(config, &["jstop", "inter=0", &jname(env), "fast=1"]),
        EnvKind::Bhyve => cbsd(config, &["bstop", &jname(env), "noacpi=1"]),
    }
}

fn ensure_stopped(config: &Config, env: &Env, acts: Vec<Command>) -> Action {
    Action::Ensure(Ensure {
        probe: jstatus(config, env, Expect::NotRunning),
        acts,
        when_satisfied: None,
    })
}

/// Stops `env` if it runs, verified by `jstatus` (jid 0): the plain stop,
/// then, if that fails or times out, the forceful one, each within its
/// own time; then `junregister` once it is verified stopped (see the
/// module comment). Failures do not stop the runbook: the force-unmount
/// that follows usually frees a jail stuck on a dead mount; the
/// environment is then reported not stopped (a failed forceful stop after
/// a failed plain one).
pub fn stop(config: &Config, env: &Env) -> Vec<Step> {
    let plain = Step::new(
        format!("stop {}", env.name),
        ensure_stopped(config, env, vec![stop_act(config, env)]),
        config.environments.stop_timeout,
    )
    .on_failure(OnFailure::Continue)
    .environment(&env.name, EnvPhase::Stop);
    let force = Step::new(
        format!("force stop {}", env.name),
        ensure_stopped(config, env, vec![force_stop_act(config, env)]),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
    .environment(&env.name, EnvPhase::Stop)
    .only_if(Gate::NotStopped);
    vec![plain, force, unregister(config, env)]
}

/// A VM's stop once the shared dirs are back, when the stop before the
/// unmounts was not verified: after a dead server's dirs were
/// force-dismounted, CBSD cannot load the VM (its `jails-system/J/
/// local.sqlite` is gone: subr/rcconf.subr `init_bhyve_rcconf` `err 1`s),
/// so neither `bstop` nor `jstatus` works until they are mounted again,
/// while the VM itself (`/dev/vmm/J`) may still run. Empty for a jail:
/// `jstop` and a jail's `jstatus` do without jails-system.
pub fn stop_vm_again(config: &Config, env: &Env) -> Vec<Step> {
    if env.kind != EnvKind::Bhyve {
        return Vec::new();
    }
    stop(config, env)
        .into_iter()
        .map(|mut step| {
            step.name = format!("{} again", step.name);
            if step.gate == Gate::Always {
                step.gate = Gate::NotStopped;
            }
            step
        })
        .collect()
}

/// The undo of a start (promote only): one step, so the plain and the
/// forceful stop share the stop timeout. Not unregistered: the next
/// promote or follow starts it again from this registration.
pub fn stop_once(config: &Config, env: &Env) -> Step {
    Step::new(
        format!("stop {}", env.name),
        ensure_stopped(
            config,
            env,
            vec![stop_act(config, env), force_stop_act(config, env)],
        ),
        config.environments.stop_timeout,
    )
    .on_failure(OnFailure::Continue)
    .environment(&env.name, EnvPhase::Stop)
}

/// `junregister` after a verified stop. CBSD refuses a running one ("Jail
/// is active") anyway; the gate keeps it from even trying after a stop
/// that was not verified. Failure is logged and changes nothing else: the
/// registration stays, and a later start uses it.
fn unregister(config: &Config, env: &Env) -> Step {
    Step::new(
        format!("unregister {}", env.name),
        Action::Ensure(Ensure {
            probe: jstatus(config, env, Expect::NotRegistered),
            acts: vec![cbsd(config, &["junregister", &jname(env)])],
            when_satisfied: None,
        }),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
    .environment(&env.name, EnvPhase::None)
    .only_if(Gate::Stopped)
}

/// FOLLOW step 2: what to list and what to keep. The junregisters depend
/// on the listings' output, so they are built at run time
/// ([`StaleRegistrations::stale`], [`StaleRegistrations::unregister`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRegistrations {
    /// `cbsd jorder` and `cbsd border`: the names registered on this node,
    /// separated by white space.
    pub listings: Vec<Command>,
    /// `cbsd junregister`, completed with `jname=NAME` per stale name.
    pub unregister: Command,
    /// This node's `[environments]` patterns: names they match stay.
    pub keep: Vec<EnvPattern>,
    /// With `[[environment]]` (no patterns then): every name placement
    /// knows stays, since placement may run it here (the claims, not the
    /// registrations, decide where an environment runs).
    pub keep_names: Vec<String>,
    /// Where `junregister` writes its rc.conf dump (`rcfile=DIR/rc.conf_J`)
    /// instead of the shared jails-rcconf, where the next `jregister`
    /// would prefer this node's stale copy. `None`: CBSD's default (the
    /// dirs are not mounted yet).
    pub rcfile_dir: Option<PathBuf>,
}

impl StaleRegistrations {
    /// The names in `listed` (the listings' output) that no pattern keeps,
    /// sorted, without duplicates. Words that cannot be a CBSD environment
    /// name are ignored: they are never passed on to junregister.
    pub fn stale(&self, listed: &str) -> Vec<String> {
        let mut names: Vec<String> = listed
            .split_whitespace()
            .filter(|name| is_environment_name(name))
            .filter(|name| !self.keep.iter().any(|p| p.matches(name)))
            .filter(|name| !self.keep_names.iter().any(|k| k == name))
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// `cbsd junregister jname=NAME` (refuses while NAME runs: "Jail is
    /// active").
    pub fn unregister(&self, name: &str) -> Command {
        let mut command = self.unregister.clone();
        command.argv.push(format!("jname={name}"));
        if let Some(dir) = &self.rcfile_dir {
            command.argv.push(format!(
                "rcfile={}",
                dir.join(format!("rc.conf_{name}")).display()
            ));
        }
        command
    }
}

/// CBSD environment names are letters, digits, `_`, `-` and `.`.
fn is_environment_name(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn stale_registrations(
    config: &Config,
    listing: &str,
    rcfile_dir: Option<PathBuf>,
) -> StaleRegistrations {
    StaleRegistrations {
        listings: vec![cbsd(config, &[listing])],
        unregister: cbsd(config, &["junregister"]),
        keep: config.environments.patterns.clone(),
        keep_names: config.placement.iter().map(|p| p.name.clone()).collect(),
        rcfile_dir,
    }
}

/// FOLLOW step 2 (boot or rejoin only, before mounting): unregister the
/// jails this node no longer owns, so it never starts them. A failure (a
/// listing that fails skips the whole cleanup; a junregister refused
/// because the jail runs) is logged and the follow goes on.
pub fn clear_stale_registrations(config: &Config) -> Step {
    Step::new(
        "clear stale registrations",
        Action::Builtin(Builtin::ClearStaleRegistrations(stale_registrations(
            config, "jorder", None,
        ))),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
}

/// The same for bhyve VMs, once the shared dirs are mounted and verified:
/// CBSD cannot unregister a VM without its `jails-system/J/local.sqlite`
/// (see the module comment). The rc.conf dumps go under the agent's
/// `state_dir`; junregister still rewrites `jail.limits` and `media.sql` in
/// `jails-system/J` from this node's database (register_delete_full).
pub fn clear_stale_vm_registrations(config: &Config) -> Step {
    let dumps = config.node.state_dir.join("junregistered");
    Step::new(
        "clear stale VM registrations",
        Action::Builtin(Builtin::ClearStaleRegistrations(stale_registrations(
            config,
            "border",
            Some(dumps),
        ))),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
}

/// Minutes after which CBSD ignores another node's lock: sudoexec/jstart
/// removes it when `(now - mtime) / 60` (whole minutes) is greater.
pub const LOCK_STALE_MINUTES: u64 = 30;

/// What the lock check decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockVerdict {
    /// No lock, or ours (CBSD's nodename, or empty: jstart removes both
    /// as "my stale lock").
    Free,
    /// Another node's, which may be taken over (not live).
    TakenOver {
        /// The node the lock names (CBSD's nodename there).
        holder: String,
    },
    /// Another node's, older than [`LOCK_STALE_MINUTES`]: CBSD removes it
    /// and starts ("lock age is too old"); so does the agent, warning.
    Stale {
        /// The node the lock names (CBSD's nodename there).
        holder: String,
        /// The lock's age in whole minutes (since its mtime).
        minutes: u64,
    },
}

/// A fresh lock naming another node: why an environment is not started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} names {holder:?} ({minutes} min old), not this node's CBSD nodename {ours:?}: that node may run it; not starting it here (CBSD itself ignores the lock once it is over {LOCK_STALE_MINUTES} min old; remove the file once {holder} is known to be down)", path.display())]
pub struct ForeignLock {
    /// The lock file, `<workdir>/jails-system/<jail>/locked`.
    pub path: std::path::PathBuf,
    /// The node the lock names (its content).
    pub holder: String,
    /// The lock's age in whole minutes (since its mtime).
    pub minutes: u64,
    /// This node's CBSD nodename (or its node name when CBSD has none).
    pub ours: String,
}

/// Judges CBSD's lock as sudoexec/jstart does, with one addition: nodes in
/// `takeover` (not live, under placement) may be taken over. `node` stands
/// in for CBSD's nodename when its file is missing. `Err`: why not to
/// start.
pub fn judge_lock(
    seen: &super::fs_probe::LockSeen,
    path: &std::path::Path,
    node: &str,
    takeover: &[String],
) -> Result<LockVerdict, ForeignLock> {
    let Some(holder) = &seen.holder else {
        return Ok(LockVerdict::Free);
    };
    let ours = seen
        .nodename
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(node);
    if holder.is_empty() || holder == ours {
        return Ok(LockVerdict::Free);
    }
    if takeover.iter().any(|t| t == holder) {
        return Ok(LockVerdict::TakenOver {
            holder: holder.clone(),
        });
    }
    let minutes = seen.age_s / 60;
    if minutes > LOCK_STALE_MINUTES {
        return Ok(LockVerdict::Stale {
            holder: holder.clone(),
            minutes,
        });
    }
    Err(ForeignLock {
        path: path.to_path_buf(),
        holder: holder.clone(),
        minutes,
        ours: ours.to_owned(),
    })
}

/// Lock check, registration and start of `env`, one environment at a time.
/// Any failure leaves this environment stopped and moves on to the next.
pub fn start(
    config: &Config,
    cbsd_config: &Cbsd,
    env: &Env,
    node: &str,
    takeover: &[String],
) -> Vec<Step> {
    let system = cbsd_config.workdir.join("jails-system").join(&env.name);
    let rcfile = system.join(format!("rc.conf_{}", env.name));
    let timeout = config.runbook.command_timeout;
    // Only jails have a lock: sudoexec/jstart writes jails-system/J/locked
    // (the nodename) once the jail runs and refuses a fresh foreign one;
    // sudoexec/bstart writes and checks none. What keeps a VM (and a
    // jail) from running on two nodes is the quorum: a node starts an
    // environment only under a valid lease and a claim a majority granted
    // (docs/runbooks.md).
    let check_lock = (env.kind == EnvKind::Jail).then(|| {
        Step::new(
            format!("check lock of {}", env.name),
            Action::Builtin(Builtin::CheckLock {
                path: system.join("locked"),
                nodename_file: cbsd_config.workdir.join("nodename"),
                node: node.to_owned(),
                takeover: takeover.to_vec(),
            }),
            timeout,
        )
    });
    // jregister reads jails-rcconf/rc.conf_J (the dump of the last
    // verified stop's junregister) and moves it into jails-system/J/. When
    // there is none (the last holder crashed or was cut off before it
    // could stop), the copy its jregister moved there is all that is left:
    // settings changed with `cbsd jset` since then are lost.
    let register = Step::new(
        format!("register {}", env.name),
        Action::Ensure(Ensure {
            probe: jstatus(config, env, Expect::Registered),
            acts: vec![
                cbsd(config, &["jregister", &jname(env)]),
                cbsd(
                    config,
                    &[
                        "jregister",
                        &jname(env),
                        &format!("rcfile={}", rcfile.display()),
                    ],
                ),
            ],
            when_satisfied: None,
        }),
        timeout,
    );
    let verb = match env.kind {
        EnvKind::Jail => "jstart",
        EnvKind::Bhyve => "bstart",
    };
    let start = Step::new(
        format!("start {}", env.name),
        Action::Ensure(Ensure {
            probe: jstatus(config, env, Expect::Running),
            acts: vec![cbsd(config, &[verb, "inter=0", &jname(env)])],
            when_satisfied: None,
        }),
        config.environments.start_timeout,
    )
    .undo(stop_once(config, env));
    let resource = Resource::Environment(env.name.clone());
    check_lock
        .map(|s| (s, EnvPhase::Prepare))
        .into_iter()
        .chain([(register, EnvPhase::Prepare), (start, EnvPhase::Start)])
        .map(|(s, phase)| {
            s.on_failure(OnFailure::SkipEnvironment)
                .environment(&env.name, phase)
                .acquiring(resource.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clear(patterns: &[(&str, EnvKind)]) -> StaleRegistrations {
        StaleRegistrations {
            listings: Vec::new(),
            unregister: Command::new(["cbsd", "junregister"]),
            keep: patterns
                .iter()
                .map(|(p, kind)| EnvPattern {
                    pattern: (*p).to_owned(),
                    kind: *kind,
                })
                .collect(),
            keep_names: Vec::new(),
            rcfile_dir: None,
        }
    }

    #[test]
    fn names_no_pattern_keeps_are_stale() {
        let clear = clear(&[("web1", EnvKind::Jail), ("vm*", EnvKind::Bhyve)]);
        assert_eq!(
            clear.stale("web1 old2 db1\nvm1 vm7 old2\n"),
            ["db1", "old2"]
        );
        assert!(clear.stale("").is_empty());
        assert!(clear.stale("web1\n").is_empty());
    }

    #[test]
    fn words_that_are_no_environment_name_are_ignored() {
        let clear = clear(&[]);
        assert_eq!(
            clear.stale("ok-1 a;b $(x) -rf \u{1b}[0m j.2"),
            ["j.2", "ok-1"]
        );
    }

    fn seen(
        holder: Option<&str>,
        minutes: u64,
        nodename: Option<&str>,
    ) -> super::super::fs_probe::LockSeen {
        super::super::fs_probe::LockSeen {
            holder: holder.map(str::to_owned),
            age_s: minutes * 60 + 59,
            nodename: nodename.map(str::to_owned),
        }
    }

    /// sudoexec/jstart: `$( cat locked )` against `${nodename}` (from
    /// `${workdir}/nodename`), empty is ours, a foreign lock whose age in
    /// whole minutes is over 30 is removed.
    #[test]
    fn the_lock_is_judged_as_cbsd_jstart_does() {
        let path = std::path::Path::new("/usr/jails/jails-system/web1/locked");
        let judge = |s| judge_lock(&s, path, "node1", &[]);
        assert_eq!(judge(seen(None, 0, Some("cbsd1"))), Ok(LockVerdict::Free));
        assert_eq!(
            judge(seen(Some(""), 0, Some("cbsd1"))),
            Ok(LockVerdict::Free)
        );
        // CBSD's nodename, not the agent's node name, is this node's.
        assert_eq!(
            judge(seen(Some("cbsd1"), 0, Some("cbsd1"))),
            Ok(LockVerdict::Free)
        );
        let why = judge(seen(Some("node1"), 0, Some("cbsd1")))
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("\"node1\"") && why.contains("\"cbsd1\""),
            "{why}"
        );
        // Without the nodename file, the node name stands in.
        assert_eq!(judge(seen(Some("node1"), 0, None)), Ok(LockVerdict::Free));
        // 30 whole minutes is still fresh; 31 is not.
        assert!(judge(seen(Some("node3"), 30, Some("cbsd1"))).is_err());
        assert_eq!(
            judge(seen(Some("node3"), 31, Some("cbsd1"))),
            Ok(LockVerdict::Stale {
                holder: "node3".into(),
                minutes: 31
            })
        );
        assert_eq!(
            judge_lock(
                &seen(Some("node3"), 0, None),
                path,
                "node1",
                &["node3".into()]
            ),
            Ok(LockVerdict::TakenOver {
                holder: "node3".into()
            })
        );
    }

    /// With `[[environment]]` there are no `[environments]` patterns: the
    /// names placement knows must stay registered, or a rejoin would
    /// junregister this node's own placed environments.
    #[test]
    fn in_placement_mode_every_placed_environment_is_kept() {
        let text = r#"
[node]
name = "node1"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["198.18.0.100/24"]
[cbsd]
[cluster]
nodes = [
  { name = "node1", address = "198.18.0.1" },
  { name = "node2", address = "198.18.0.2" },
  { name = "node3", address = "198.18.0.3" },
]
[[environment]]
name = "web1"
nodes = ["node1", "node3"]
[[environment]]
name = "vm1"
kind = "bhyve"
nodes = ["node2", "node1"]
"#;
        let config =
            crate::config::parse_with_hostname(text, std::path::Path::new("/x.toml"), None)
                .unwrap();
        for step in [
            clear_stale_registrations(&config),
            clear_stale_vm_registrations(&config),
        ] {
            let Action::Builtin(Builtin::ClearStaleRegistrations(clear)) = step.action else {
                panic!("{step:?}");
            };
            assert_eq!(clear.stale("web1 vm1 old2"), ["old2"], "{}", step.name);
        }
    }

    #[test]
    fn a_stale_vm_dumps_its_rc_conf_outside_the_shared_dirs() {
        let mut clear = clear(&[]);
        clear.rcfile_dir = Some(PathBuf::from("/var/db/rcbsd-failover/junregistered"));
        assert_eq!(
            clear.unregister("oldvm").argv,
            [
                "cbsd",
                "junregister",
                "jname=oldvm",
                "rcfile=/var/db/rcbsd-failover/junregistered/rc.conf_oldvm"
            ]
        );
    }

    #[test]
    fn unregister_names_one_environment() {
        let clear = clear(&[]);
        assert_eq!(
            clear.unregister("old2").argv,
            ["cbsd", "junregister", "jname=old2"]
        );
    }
}
