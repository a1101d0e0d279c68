//! CBSD commands for the environments (jails and bhyve VMs) of this node.
//!
//! Every call runs from `/` with `NOCOLOR=1 NOINTER=1` and an explicit
//! `jname=`: without `jname` jstart/jstop open an interactive picker, and a
//! `CBSDfile` in the current directory changes what they act on. One
//! environment per call: multi-jail forms report "done" even on partial
//! failure. bhyve VMs are registered with `jregister` too (CBSD 14.1.3a's
//! `bregister` execs a missing file) and started with `bstart`/`bstop`.

use std::path::PathBuf;

use super::expect::Expect;
use super::step::{Action, Builtin, Checked, Command, Ensure, OnFailure, Step};
use super::Env;
use crate::config::{Cbsd, Config, EnvKind};

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
    .environment(&env.name)
}

/// Lock check, registration and start of `env`, one environment at a time.
/// Any failure leaves this environment stopped and moves on to the next.
pub fn start(config: &Config, cbsd_config: &Cbsd, env: &Env, node: &str) -> Vec<Step> {
    let system = cbsd_config.workdir.join("jails-system").join(&env.name);
    let rcfile = system.join(format!("rc.conf_{}", env.name));
    let timeout = config.runbook.command_timeout;
    let check_lock = Step::new(
        format!("check lock of {}", env.name),
        Action::Builtin(Builtin::CheckLock {
            path: system.join("locked"),
            node: node.to_owned(),
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
    [check_lock, register, start]
        .into_iter()
        .map(|s| {
            s.on_failure(OnFailure::SkipEnvironment)
                .environment(&env.name)
        })
        .collect()
}
