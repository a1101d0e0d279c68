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
//! names only, from the local database, no header, no remote nodes) and no
//! `[environments]` pattern names is `junregister`ed before the shared dirs
//! are mounted, so junregister's cleanup only touches the empty local dirs.

use std::path::PathBuf;

use super::expect::Expect;
use super::step::{Action, Builtin, Checked, Command, Ensure, EnvPhase, OnFailure, Step};
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

/// Stops `env` if it runs. A failure does not stop the runbook: the
/// force-unmount that follows usually frees a jail stuck on a dead mount.
pub fn stop(config: &Config, env: &Env) -> Step {
    let act = match env.kind {
        EnvKind::Jail => cbsd(config, &["jstop", "inter=0", &jname(env)]),
        EnvKind::Bhyve => cbsd(
            config,
            &[
                "bstop",
                &jname(env),
                &format!("hard_timeout={BHYVE_HARD_TIMEOUT_S}"),
            ],
        ),
    };
    Step::new(
        format!("stop {}", env.name),
        Action::Ensure(Ensure {
            probe: jstatus(config, env, Expect::NotRunning),
            acts: vec![act],
            when_satisfied: None,
        }),
        config.environments.stop_timeout,
    )
    .on_failure(OnFailure::Continue)
    .environment(&env.name, EnvPhase::Stop)
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

/// FOLLOW step 2 (boot or rejoin only, before mounting): unregister what
/// this node no longer owns, so it never starts it. A failure (a listing
/// that fails skips the whole cleanup; a junregister refused because the
/// environment runs) is logged and the follow goes on.
pub fn clear_stale_registrations(config: &Config) -> Step {
    let clear = StaleRegistrations {
        listings: vec![cbsd(config, &["jorder"]), cbsd(config, &["border"])],
        unregister: cbsd(config, &["junregister"]),
        keep: config.environments.patterns.clone(),
    };
    Step::new(
        "clear stale registrations",
        Action::Builtin(Builtin::ClearStaleRegistrations(clear)),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
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
    let check_lock = Step::new(
        format!("check lock of {}", env.name),
        Action::Builtin(Builtin::CheckLock {
            path: system.join("locked"),
            node: node.to_owned(),
            takeover: takeover.to_vec(),
        }),
        timeout,
    );
    // jregister reads jails-rcconf/rc.conf_J and moves it into
    // jails-system/J/; when a previous owner already moved it, point to it.
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
    .undo(stop(config, env));
    let resource = Resource::Environment(env.name.clone());
    [
        (check_lock, EnvPhase::Prepare),
        (register, EnvPhase::Prepare),
        (start, EnvPhase::Start),
    ]
    .into_iter()
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

    #[test]
    fn unregister_names_one_environment() {
        let clear = clear(&[]);
        assert_eq!(
            clear.unregister("old2").argv,
            ["cbsd", "junregister", "jname=old2"]
        );
    }
}
