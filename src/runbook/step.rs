//! What a runbook is made of: steps, each with an action, a timeout, a
//! retry rule and what to do when it still fails.
//!
//! An action is either a command (an argv vector, never a shell string) with
//! the outcome that counts as success, an *ensure* (probe first, act only if
//! the probe says the work is not done, probe again to verify), or a builtin
//! the agent does itself (VIP, ARP, the exports block, file checks).

use std::path::PathBuf;
use std::time::Duration;

use super::expect::Expect;
use crate::wire::heartbeat::Resource;

/// One external command: argv (the program's path first), working
/// directory and extra environment variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The program's path, then its arguments; run with execve, no shell.
    pub argv: Vec<String>,
    /// The directory it runs in; `None`: the agent's own (CBSD calls use `/`).
    pub cwd: Option<PathBuf>,
    /// Variables added to the agent's environment, e.g. `NOCOLOR=1` for cbsd.
    pub env: Vec<(String, String)>,
}

impl Command {
    /// A command from its argv, run in the agent's directory with the
    /// agent's environment.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: None,
            env: Vec::new(),
        }
    }

    /// The argv as an operator would type it (quoted where needed), for
    /// `plan` and logs. Never executed by a shell.
    pub fn display(&self) -> String {
        let mut words: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !words.is_empty() {
            words.insert(0, "env".to_owned());
        }
        words.extend(self.argv.iter().map(|a| quote(a)));
        let line = words.join(" ");
        match &self.cwd {
            Some(cwd) => format!("cd {} && {line}", quote(&cwd.to_string_lossy())),
            None => line,
        }
    }
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | ',' | ':' | '+')
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command and the outcome that counts as success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// What to run.
    pub command: Command,
    /// Which exit code and output count as success.
    pub expect: Expect,
}

/// Probe, act only if needed, verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ensure {
    /// Says whether the work is already done (e.g. `service nfsd onestatus`).
    pub probe: Checked,
    /// Tried in order until the probe is satisfied (e.g. `umount`,
    /// `umount -f`, `umount -N`). Their own exit codes are recorded but the
    /// probe decides: a plain `service start` can exit 0 and do nothing.
    pub acts: Vec<Command>,
    /// Run when the probe is satisfied at once (e.g. `mountd onereload`
    /// when mountd already runs and the exports changed).
    pub when_satisfied: Option<Checked>,
}

/// What the agent does itself rather than through a tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// Add every configured virtual IP (through [`super::VipControl`]):
    /// the IPv4 ones, then the IPv6 ones (without DAD).
    AddVip,
    /// Remove every configured virtual IP, IPv4 then IPv6.
    DropVip,
    /// One burst of gratuitous ARPs for every IPv4 virtual IP.
    ArpBurst,
    /// One burst of unsolicited Neighbor Advertisements for every IPv6
    /// virtual IP (RFC 5798 §6.4.2).
    NaBurst,
    /// Write the agent's block in the exports file for these directories;
    /// dirs on one filesystem share a line (grouped at run time).
    WriteExports {
        /// `nfs.exports_file`.
        file: PathBuf,
        /// The directories to export: `<storage.root>/<dir>` for each
        /// shared dir.
        dirs: Vec<PathBuf>,
        /// Who may mount them (`nfs.export_network`, `nfs.export_hosts`).
        clients: super::exports::Clients,
    },
    /// Empty the agent's block (the rest of the file untouched).
    ClearExports {
        /// `nfs.exports_file`.
        file: PathBuf,
    },
    /// Poll until `path` exists (e.g. `/dev/hast/RES`), up to the timeout.
    WaitForPath {
        /// The path waited for.
        path: PathBuf,
    },
    /// `dir.id` exists, is non-empty and, if known, equals `expected`.
    VerifyDirId {
        /// CBSD's `dir.id`: `<workdir>/<cbsd.dir_id_file>`.
        path: PathBuf,
        /// `cbsd.dir_id`; `None`: any content but empty.
        expected: Option<String>,
    },
    /// Create and remove a file: the mount is writable by root.
    WriteProbe {
        /// The probe file to create, inside the directory tested.
        path: PathBuf,
    },
    /// Refuse when CBSD's lock file names another node, by CBSD's rules
    /// (sudoexec/jstart): empty or naming this node's CBSD nodename (the
    /// first word of `nodename_file`; `node` when that is missing) is
    /// ours; another node's older than 30 minutes is ignored, with a
    /// warning. Read by the `fs-probe lock` child: the file is on NFS.
    CheckLock {
        /// The jail's lock file, `<workdir>/jails-system/J/locked`.
        path: PathBuf,
        /// CBSD's nodename file, `<workdir>/nodename`.
        nodename_file: PathBuf,
        /// This node's `node.name`, standing in for a missing nodename file.
        node: String,
        /// Nodes whose lock may be taken over: with `[[environment]]`
        /// placement, the nodes not live (their lease has expired), so the
        /// next node may adopt what they ran. Empty: any other node's lock
        /// stops the start.
        takeover: Vec<String>,
    },
    /// Force-dismount (`umount -N`) each shared dir whose NFS server does
    /// not answer, before anything else touches it (PROMOTE 3, FOLLOW 1).
    DismountDead(super::nfs::DeadMounts),
    /// List the environments registered here, then `junregister` each one
    /// this node does not own (FOLLOW step 2). Every command it runs is
    /// logged like a command step's.
    ClearStaleRegistrations(super::cbsd::StaleRegistrations),
    /// Point nfsd's stable restart files at `nfs.stable_restart_dir` on the
    /// shared storage (links; a local file is moved aside), creating the
    /// dir and files when missing ([`super::stable_restart::link`]).
    LinkStableRestart(super::stable_restart::Links),
    /// Put nfsd's local stable restart files back in place of the links
    /// ([`super::stable_restart::restore`]).
    RestoreStableRestart(super::stable_restart::Links),
    /// A health check's probe that is not a command ([`super::health`]):
    /// it only looks, and fails when what it looks for is not so.
    Verify(Verify),
}

/// What a health check looks at itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Every configured virtual IP is on `vrrp.interface` (getifaddrs(3)).
    VipsPresent,
    /// The agent's block of the exports file is what `write exports`
    /// writes for these dirs and clients.
    ExportsBlock {
        /// `nfs.exports_file`.
        file: PathBuf,
        /// The exported directories.
        dirs: Vec<PathBuf>,
        /// Who may mount them.
        clients: super::exports::Clients,
    },
    /// The NFS mount at `dir` answers: its entries are listed by an
    /// `fs-probe list` child under the step's timeout (a dead server
    /// hangs the child, never the agent).
    MountAnswers {
        /// The mount point, `<workdir>/<shared dir>`.
        dir: PathBuf,
    },
    /// The interface has its carrier.
    Carrier {
        /// The interface's name.
        interface: String,
    },
    /// Every command succeeds, in order.
    All(Vec<Checked>),
}

/// What a step does on each attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run a command; it succeeds when its outcome is what it expects.
    Run(Checked),
    /// Probe, act only if the probe says the work is not done, verify.
    Ensure(Ensure),
    /// Something the agent does itself.
    Builtin(Builtin),
}

/// What happens when a step still fails after its retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// The runbook fails here (a promote first undoes its done steps in
    /// reverse).
    Abort,
    /// Log it and go on with the next step.
    Continue,
    /// Skip the remaining steps of the same environment and go on with the
    /// next one (the environment stays stopped).
    SkipEnvironment,
}

impl OnFailure {
    /// The rule as `plan` prints it: `abort`, `continue` or `skip environment`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Abort => "abort",
            OnFailure::Continue => "continue",
            OnFailure::SkipEnvironment => "skip environment",
        }
    }
}

/// Attempts and exponential backoff between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// The pause after the first failed attempt (`runbook.retry_backoff`).
    pub backoff: Duration,
    /// The longest pause, however many attempts failed
    /// (`runbook.retry_backoff_max`).
    pub backoff_max: Duration,
}

impl Retry {
    /// One attempt, no retry: the default of every step.
    pub const ONCE: Retry = Retry {
        attempts: 1,
        backoff: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };

    /// The pause after failed attempt `attempt` (1-based): backoff doubled
    /// each time, capped.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

/// One step of a runbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Stable, human-readable: `start nfsd`, `mount jails-data`.
    pub name: String,
    /// What each attempt does.
    pub action: Action,
    /// Per attempt; a command still running then is killed.
    pub timeout: Duration,
    /// How many attempts, and the pauses between them.
    pub retry: Retry,
    /// What happens when the last attempt failed.
    pub on_failure: OnFailure,
    /// What reverses this step when a later one fails (promote only). For
    /// an [`Ensure`] it runs only if the step acted.
    pub undo: Option<Box<Step>>,
    /// The environment this step belongs to, for [`OnFailure::SkipEnvironment`].
    pub environment: Option<String>,
    /// What this step does to its environment: the runner reports each
    /// environment as verified stopped, not stopped, started, or not
    /// started from the outcome of its steps.
    pub phase: EnvPhase,
    /// What this step acquires: while it runs, a fence that takes the
    /// resource away kills it (its process group), so a `zpool import`,
    /// `fsck` or `jstart` never outlives the lease it started under.
    pub acquires: Option<Resource>,
    /// Whether it runs, from what this run verified of its environment.
    pub gate: Gate,
}

/// When an environment's step runs, from what its earlier steps in the
/// same run verified; a step whose gate is closed is logged as skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gate {
    /// Runs whatever its environment's earlier steps verified.
    #[default]
    Always,
    /// Only while the environment is not verified stopped (the forceful
    /// stop after a plain one that failed or timed out).
    NotStopped,
    /// Only once the environment is verified stopped (junregister).
    Stopped,
}

impl Gate {
    /// For `plan`; `None` for [`Gate::Always`].
    pub fn describe(self) -> Option<&'static str> {
        match self {
            Gate::Always => None,
            Gate::NotStopped => Some("only if the stop above was not verified"),
            Gate::Stopped => Some("only once the stop above is verified"),
        }
    }
}

/// The part a step plays for its environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvPhase {
    /// Not an environment step.
    #[default]
    None,
    /// Stops it and verifies it is stopped.
    Stop,
    /// Before its start command (lock check, registration): a failure here
    /// means nothing was started.
    Prepare,
    /// Starts it and verifies it runs: a failure here may leave it running.
    Start,
}

impl Step {
    /// A step that is tried once, aborts the runbook when it fails, and
    /// belongs to no environment; the builder methods change that.
    pub fn new(name: impl Into<String>, action: Action, timeout: Duration) -> Self {
        Step {
            name: name.into(),
            action,
            timeout,
            retry: Retry::ONCE,
            on_failure: OnFailure::Abort,
            undo: None,
            environment: None,
            phase: EnvPhase::None,
            acquires: None,
            gate: Gate::Always,
        }
    }

    /// Runs only when `gate` is open (see [`Gate`]).
    pub fn only_if(mut self, gate: Gate) -> Self {
        self.gate = gate;
        self
    }

    /// What happens when the step still fails after its retries.
    pub fn on_failure(mut self, rule: OnFailure) -> Self {
        self.on_failure = rule;
        self
    }

    /// Attempts and backoff (default: [`Retry::ONCE`]).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The step that reverses this one when a later promote step fails.
    pub fn undo(mut self, undo: Step) -> Self {
        self.undo = Some(Box::new(undo));
        self
    }

    /// This step plays `phase` for environment `name`.
    pub fn environment(mut self, name: &str, phase: EnvPhase) -> Self {
        self.environment = Some(name.to_owned());
        self.phase = phase;
        self
    }

    /// This step acquires `resource` (see [`Step::acquires`]).
    pub fn acquiring(mut self, resource: Resource) -> Self {
        self.acquires = Some(resource);
        self
    }

    /// Every argv this step may run, in order (probe, acts, follow-up).
    pub fn argvs(&self) -> Vec<&[String]> {
        match &self.action {
            Action::Run(checked) => vec![checked.command.argv.as_slice()],
            Action::Ensure(ensure) => {
                let mut all = vec![ensure.probe.command.argv.as_slice()];
                all.extend(ensure.acts.iter().map(|c| c.argv.as_slice()));
                if let Some(extra) = &ensure.when_satisfied {
                    all.push(extra.command.argv.as_slice());
                }
                all
            }
            // The junregisters depend on the listings' output.
            Action::Builtin(Builtin::ClearStaleRegistrations(clear)) => {
                clear.listings.iter().map(|c| c.argv.as_slice()).collect()
            }
            // The probes and dismounts depend on the listing's output.
            Action::Builtin(Builtin::DismountDead(dead)) => vec![dead.listing.argv.as_slice()],
            Action::Builtin(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut command = Command::new(["/usr/local/bin/cbsd", "jstart", "inter=0", "jname=web1"]);
        command.cwd = Some(PathBuf::from("/"));
        command.env = vec![("NOCOLOR".into(), "1".into())];
        assert_eq!(
            command.display(),
            "cd / && env NOCOLOR=1 /usr/local/bin/cbsd jstart inter=0 jname=web1"
        );
        assert_eq!(Command::new(["echo", "a b", ""]).display(), "echo 'a b' ''");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let retry = Retry {
            attempts: 10,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (1..=5).map(|a| retry.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(retry.delay_after(1000), Duration::from_secs(5));
    }
}
