//! `rcbsd-failover doctor`: the prerequisites only the node itself can
//! show, checked read-only. Each of them would otherwise surface as a
//! failed promote, or as every follower's mount failing, in the middle of
//! a failover: rc.conf(5) settings of the NFS server, CBSD's workdir and
//! its `zfsfeat`, the hostid under ZFS, the watchdog, the key files, the
//! interface, the control socket's directory.
//!
//! [`checks::build`] is pure: the configuration in, a list of
//! [`checks::Check`]s out, each naming the commands to run (argv vectors
//! through `[tools]`, run like runbook commands: never a shell) or files
//! to read, and the rule that turns their answers into a [`Finding`]:
//! `ok`, `warn` or `FAIL`, what was found and, for warn and FAIL, the
//! command that fixes it. [`examine`] is the edge: it runs every distinct
//! command once, all at the same time, each under [`TIMEOUT`]
//! ([`crate::runbook::command::run`]), reads the files and
//! examines the device, key files, interface and directory off the
//! runtime under the same bound.
//!
//! **FAIL** means a failover breaks on this node (a promote fails, every
//! follower's mount is refused, or the agent does not start); **warn**
//! means it works but degraded, or the check could not be answered from
//! here. `doctor` exits 1 ([`ExitStatus::Failure`], apart from the configuration's 66 and
//! 78) when any check FAILs, 0 otherwise
//! (warnings included): the rc.d script refuses to start the agent only
//! on a FAIL. `docs/operations.md` ("Checking a node: doctor") lists
//! every check.

pub mod checks;
mod run;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::exit::ExitStatus;

pub use run::{examine, examine_local_only};

/// How long each command, file read or local examination may take: they
/// only read local state, and the rc.d script waits for them at boot.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// As a failover needs it.
    Ok,
    /// A failover works, but degraded; or the check could not be answered.
    Warn,
    /// A failover breaks on this node.
    Fail,
}

impl Verdict {
    /// `ok`, `warn` or `FAIL` (upper case: it must stand out).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        }
    }
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// ok, warn or FAIL.
    pub verdict: Verdict,
    /// What was found, and for warn and FAIL what it breaks.
    pub found: String,
    /// The command that fixes it (warn and FAIL).
    pub fix: Option<String>,
}

impl Finding {
    /// An ok finding: `found` says what is as a failover needs it; no fix.
    pub fn ok(found: impl Into<String>) -> Self {
        Finding {
            verdict: Verdict::Ok,
            found: found.into(),
            fix: None,
        }
    }

    /// A warn finding: what was found and what it degrades, and the
    /// command that fixes it.
    pub fn warn(found: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            verdict: Verdict::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    /// A FAIL finding: what was found and how a failover breaks, and the
    /// command that fixes it.
    pub fn fail(found: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            verdict: Verdict::Fail,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

/// One check's name and what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The check's name ([`checks::Check::name`]).
    pub name: &'static str,
    /// What the check found on this node.
    pub finding: Finding,
}

/// Separates what was found from the fix on a line.
pub const FIX_SEPARATOR: &str = " -- fix: ";

/// One line per check (`VERDICT NAME: FOUND -- fix: COMMAND`), then a
/// count of each verdict.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut text = String::new();
    for outcome in outcomes {
        let finding = &outcome.finding;
        text.push_str(&format!(
            "{:<4} {}: {}",
            finding.verdict.as_str(),
            outcome.name,
            finding.found
        ));
        if let Some(fix) = &finding.fix {
            text.push_str(FIX_SEPARATOR);
            text.push_str(fix);
        }
        text.push('\n');
    }
    let count = |v: Verdict| outcomes.iter().filter(|o| o.finding.verdict == v).count();
    text.push_str(&format!(
        "doctor: {} ok, {} warn, {} FAIL\n",
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    ));
    text
}

/// Success, or [`ExitStatus::Failure`] when any check FAILs.
pub fn exit_status(outcomes: &[Outcome]) -> ExitStatus {
    if outcomes.iter().any(|o| o.finding.verdict == Verdict::Fail) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }
}

/// What `run` would refuse on this machine, examined as `doctor` does
/// ([`examine_local_only`]): `check-config` prints these. `Err` when no
/// runtime could be made to examine them.
pub fn start_prerequisites(config: &crate::config::Config) -> std::io::Result<Vec<Outcome>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcomes = runtime.block_on(examine_local_only(config));
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(outcomes)
}

/// `rcbsd-failover doctor -c PATH`: loads the configuration, examines the
/// node, prints one line per check and returns the exit status.
pub fn run(config_path: &Path) -> ExitCode {
    let config = match crate::config::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return error.exit_status().into();
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rcbsd-failover: cannot start the async runtime: {error}");
            return ExitStatus::OsErr.into();
        }
    };
    let outcomes = runtime.block_on(examine(&config));
    // A blocking examination may be stuck in the kernel; it was already
    // reported as unanswered, and must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    print!("{}", render(&outcomes));
    exit_status(&outcomes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &'static str, finding: Finding) -> Outcome {
        Outcome { name, finding }
    }

    #[test]
    fn a_line_per_check_with_the_fix_and_a_count() {
        let outcomes = [
            outcome("vrrp_interface", Finding::ok("em0 exists")),
            outcome(
                "nfsuserd",
                Finding::warn(
                    "nfsuserd_enable=\"NO\"",
                    "sysrc nfsuserd_enable=YES && service nfsuserd start",
                ),
            ),
            outcome(
                "nfsv4_server",
                Finding::fail("capped at NFSv3", "sysrc nfsv4_server_enable=YES"),
            ),
        ];
        assert_eq!(
            render(&outcomes),
            "ok   vrrp_interface: em0 exists\n\
             warn nfsuserd: nfsuserd_enable=\"NO\" -- fix: sysrc nfsuserd_enable=YES && service nfsuserd start\n\
             FAIL nfsv4_server: capped at NFSv3 -- fix: sysrc nfsv4_server_enable=YES\n\
             doctor: 1 ok, 1 warn, 1 FAIL\n"
        );
    }

    #[test]
    fn only_a_fail_makes_the_exit_status_non_zero() {
        let ok = outcome("a", Finding::ok("fine"));
        let warn = outcome("b", Finding::warn("degraded", "fix it"));
        let fail = outcome("c", Finding::fail("broken", "fix it"));
        assert_eq!(exit_status(&[]), ExitStatus::Success);
        assert_eq!(
            exit_status(&[ok.clone(), warn.clone()]),
            ExitStatus::Success
        );
        assert_eq!(exit_status(&[ok, warn, fail]), ExitStatus::Failure);
    }
}
