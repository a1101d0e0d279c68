//! The `rcbsd-failover` command line: argument parsing and what each
//! subcommand prints. The binary (src/main.rs) only calls [`main`]; the
//! lab's binary calls it too, to run this very agent in its namespaces.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{self, DEFAULT_PATH};
use crate::control::client;
use crate::control::protocol::{Request, Response};
use crate::events::{LogFormat, LogTarget};
use crate::exit::ExitStatus;

mod install;

#[derive(Parser)]
#[command(
    name = "rcbsd-failover",
    version,
    about = "VRRPv3 failover agent for CBSD clusters",
    long_about = "VRRPv3 failover agent for CBSD clusters.\n\n\
        Every node runs `rcbsd-failover run`; the elected master holds the \
        virtual IP. The other subcommands check a configuration or talk to \
        the running agent over its control socket.",
    after_help = "Configuration: see rcbsd-failover.toml(5); commands, signals and exit \
        codes: rcbsd-failover(8). Exit codes follow sysexits(3)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent in the foreground (rc.d supervises it with daemon(8)).
    Run {
        #[command(flatten)]
        config: ConfigPath,
        /// Log output: human text, or one JSON object per line.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Where logs go: standard error, or syslog(3) (facility daemon,
        /// severity per event; --log-format then does not apply).
        #[arg(long, value_enum, default_value_t = LogTarget::Stderr)]
        log_target: LogTarget,
    },
    /// Validate a configuration file and print a one-line summary.
    ///
    /// Prints "PATH: ok" and the summary, or every error as
    /// FILE:LINE:COL: KEY: MESSAGE on stderr. On a master candidate it also
    /// reads nfs.exports_file: an operator's V4: line there naming another
    /// root than the agent's ("/") is an error (EXPORTS:LINE:COL: ...).
    ///
    /// On this machine it also examines what `run` refuses to start
    /// without, with the agent's own checks (those of `doctor`): the [auth]
    /// key files (present, owned by root, no group or other access, long
    /// enough), that vrrp.interface exists, the control socket's directory
    /// and the [fence] watchdog. Give --file-only to check the file alone,
    /// on another machine than the node (a workstation, CI).
    ///
    /// Exit status: 0 valid, 78 (EX_CONFIG) invalid or a key file the agent
    /// refuses, 69 (EX_UNAVAILABLE) this machine lacks the interface, the
    /// socket's directory or the watchdog, 66 (EX_NOINPUT) the file cannot
    /// be read.
    CheckConfig {
        #[command(flatten)]
        config: ConfigPath,
        /// Check the file only, not this machine (key files, interface,
        /// control socket directory, watchdog): for checking a node's
        /// configuration elsewhere.
        #[arg(long)]
        file_only: bool,
    },
    /// Check, read-only, what only this node can show: the rc.conf settings
    /// of the NFS server, CBSD's workdir, the hostid, the watchdog, the key
    /// files, the interface.
    ///
    /// Prints one line per check: ok, warn or FAIL, its name, what was
    /// found and, for warn and FAIL, the command that fixes it. FAIL: a
    /// failover would break on this node; warn: it would work, degraded (or
    /// the check could not be answered). Commands run through [tools], never
    /// a shell, each under a 10 s timeout. Run it as root.
    ///
    /// Exit status: 0 no check FAILs (warnings included), 1 at least one
    /// FAILs, 78 (EX_CONFIG) invalid configuration, 66 (EX_NOINPUT) the
    /// file cannot be read.
    Doctor {
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Show the running agent's state: role, priorities, master, virtual IPs,
    /// override and counters.
    ///
    /// Exit status: 0, or 69 (EX_UNAVAILABLE) when no agent answers (see
    /// rcbsd-failover(8) for the others). With --json a failure prints
    /// {"ok":false,"error":...,"exit_status":N} on standard output too.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the status as JSON (the fields of `status` in
        /// docs/status.md); on failure an {"ok":false,...} object.
        #[arg(long)]
        json: bool,
    },
    /// Make this node master now: override priority 254 with preemption,
    /// kept across restarts until `resume`.
    ///
    /// Exit status: 0 done (or nothing to change), 1 the agent refused, 69
    /// (EX_UNAVAILABLE) no agent answers, 77 (EX_NOPERM) not root, 66 or 78
    /// the configuration cannot be read or is invalid (give --socket).
    Promote {
        #[command(flatten)]
        target: Target,
    },
    /// Make this node give up mastership and refuse it, kept across restarts
    /// until `resume`.
    ///
    /// Exit status: 0 done (or nothing to change), 1 the agent refused, 69
    /// (EX_UNAVAILABLE) no agent answers, 77 (EX_NOPERM) not root, 66 or 78
    /// the configuration cannot be read or is invalid (give --socket).
    Demote {
        #[command(flatten)]
        target: Target,
    },
    /// Clear a `promote` or `demote` override: back to the configured priority.
    ///
    /// Exit status: 0 done (or nothing to change), 1 the agent refused, 69
    /// (EX_UNAVAILABLE) no agent answers, 77 (EX_NOPERM) not root, 66 or 78
    /// the configuration cannot be read or is invalid (give --socket).
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// Move a placed environment to another node: on the node that runs
    /// it, stop it here, then the other node starts it (`[[environment]]`
    /// placement; the stop is confirmed before the start).
    ///
    /// Waits until NODE reports running it (up to --wait), printing each
    /// step. Exit status: 0 moved, 1 refused (an unknown environment, a node
    /// not in its list) or not done in time, 69 (EX_UNAVAILABLE) no agent
    /// answers.
    Move {
        /// The environment (an `[[environment]]` name).
        environment: String,
        /// The node to run it (one of its `nodes`).
        node: String,
        /// How long to wait for the move to complete; 0 returns at once.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        wait: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Hold an environment the operator stopped on purpose, release it, or
    /// list the holds.
    ///
    /// A held environment is never started by a runbook (promote, follow,
    /// placement) nor restarted by the health checks, and its stop is not
    /// alerted; the mark is kept in node.state_dir across restarts until
    /// `env release`. Holding does not stop it: stop it yourself (cbsd
    /// jstop). Exit status: 0 done (or nothing to change), 1 refused (an
    /// unknown environment, the holds file could not be written), 69 no
    /// agent answers.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Print the exact commands of a runbook for this node's configuration,
    /// in order, without running any.
    ///
    /// Exit status: 0, 78 (EX_CONFIG) invalid configuration, 66 (EX_NOINPUT)
    /// the file cannot be read.
    Plan {
        /// Which runbook: promote (become master), demote (stop being
        /// master), follow (mount from the master and start environments),
        /// quiesce (stop environments and unmount while a master hands
        /// over on purpose), health (the checks between transitions and
        /// the steps that repair them).
        #[arg(value_enum)]
        runbook: PlanRunbook,
        /// Whose commands to show: FreeBSD's (the agent's platform,
        /// ifconfig(8) for the virtual IP), or Linux's (the test platform,
        /// ip(8)), whatever system `plan` runs on.
        #[arg(long, value_enum, default_value_t = PlanOs::Freebsd)]
        os: PlanOs,
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Print a shell completion script on stdout.
    ///
    /// The port and `install` put them where each shell looks:
    /// PREFIX/share/bash-completion/completions/rcbsd-failover,
    /// PREFIX/share/zsh/site-functions/_rcbsd-failover,
    /// PREFIX/share/fish/vendor_completions.d/rcbsd-failover.fish.
    /// FreeBSD's sh(1) has no programmable completion.
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Install this program, its rc.d script, man pages, sample
    /// configuration and shell completions in their FreeBSD places, as the
    /// port does (for sites without ports).
    ///
    /// PREFIX/sbin/rcbsd-failover, PREFIX/etc/rc.d/rcbsd_failover,
    /// PREFIX/etc/rcbsd-failover.toml.sample, PREFIX/share/man/man{5,8}/,
    /// and the completions (see `completions`). Existing files are
    /// replaced, except the configuration: without a DESTDIR, the sample
    /// is copied to PREFIX/etc/rcbsd-failover.toml only when there is none
    /// (as pkg's @sample does). Exit status: 0 installed, 64 (EX_USAGE) a
    /// relative prefix, 74 (EX_IOERR) a file could not be written.
    Install {
        /// The hierarchy to install into; the rc.d script is rewritten to
        /// run PREFIX/sbin/rcbsd-failover.
        #[arg(long, value_name = "DIR", default_value = install::DEFAULT_PREFIX)]
        prefix: PathBuf,
        /// A staging root put before every path (a package build, a jail);
        /// default: the DESTDIR environment variable, else none.
        #[arg(long, value_name = "DIR")]
        destdir: Option<PathBuf>,
    },
    /// Internal: the agent runs itself this way to look at a path that may
    /// sit on a dead NFS mount, in a child it can kill and abandon.
    #[command(name = "fs-probe", hide = true)]
    FsProbe {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum EnvAction {
    /// Mark NAME as stopped on purpose: never started or restarted by the
    /// agent, its stop never alerted.
    Hold {
        /// An `[[environment]]` name, or one an `[environments]` pattern
        /// names.
        environment: String,
        #[command(flatten)]
        target: Target,
    },
    /// Clear the mark: the agent manages NAME again (runbooks start it,
    /// health.restart_policy applies).
    Release {
        /// A held environment.
        environment: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the held environments and since when.
    List {
        #[command(flatten)]
        target: Target,
        /// Print the list as JSON (the `held` field of docs/status.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanRunbook {
    Promote,
    Demote,
    Follow,
    /// What a follower runs while a master hands over on purpose.
    Quiesce,
    /// What a follower runs on a master change with
    /// `follow.on_master_change = "ride-through"`.
    RideThrough,
    /// The health checks between transitions and their repairs.
    Health,
}

/// `plan --os`: whose VIP commands a plan shows.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanOs {
    /// ifconfig(8) aliases: what the agent runs on FreeBSD.
    Freebsd,
    /// ip(8): what the agent runs on Linux (the tests and the lab).
    Linux,
}

/// `completions SHELL`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args)]
struct ConfigPath {
    /// Configuration file.
    #[arg(short = 'c', long = "config", value_name = "PATH", default_value = DEFAULT_PATH)]
    path: PathBuf,
}

/// Where to find the running agent.
#[derive(Args)]
struct Target {
    #[command(flatten)]
    config: ConfigPath,
    /// Control socket of the agent; when given, the configuration is not
    /// read (useful when it is being edited and currently invalid).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

/// Parses `args` (the program name first, as `std::env::args_os`) and
/// runs the subcommand. A malformed command line exits 2 with clap's
/// message, as every clap program does.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::parse_from(args).command {
        Command::Run {
            config,
            log_format,
            log_target,
        } => crate::agent::run(crate::agent::RunOptions {
            config_path: config.path,
            log_format,
            log_target,
        }),
        Command::CheckConfig { config, file_only } => check_config(&config.path, !file_only),
        Command::Doctor { config } => crate::doctor::run(&config.path),
        Command::Status { target, json } => status(&target, json),
        Command::Promote { target } => change(&target, Request::Promote),
        Command::Demote { target } => change(&target, Request::Demote),
        Command::Resume { target } => change(&target, Request::Resume),
        Command::Move {
            environment,
            node,
            wait,
            target,
        } => move_environment(&target, environment, node, wait),
        Command::Env { action } => match action {
            EnvAction::Hold {
                environment,
                target,
            } => change(&target, Request::Hold { environment }),
            EnvAction::Release {
                environment,
                target,
            } => change(&target, Request::Release { environment }),
            EnvAction::List { target, json } => list_holds(&target, json),
        },
        Command::Plan {
            runbook,
            os,
            config,
        } => plan(runbook, os, &config.path),
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Install { prefix, destdir } => {
            let destdir = destdir
                .or_else(|| std::env::var_os("DESTDIR").map(PathBuf::from))
                .filter(|d| !d.as_os_str().is_empty());
            let generate = |shell| {
                let mut script = Vec::new();
                completions(shell, &mut script);
                script
            };
            match install::install(&prefix, destdir.as_deref(), generate) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("rcbsd-failover: install: {error}");
                    match error {
                        install::InstallError::RelativePrefix(_) => ExitStatus::Usage.into(),
                        _ => ExitStatus::IoErr.into(),
                    }
                }
            }
        }
        Command::FsProbe { args } => crate::runbook::fs_probe::main(&args).into(),
    }
}

/// Writes the completion script of `shell` for this command line.
fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    // clap_complete offers hidden subcommands too: the internal fs-probe
    // is left out by rebuilding the top level without them.
    let full = Cli::command();
    let mut command = clap::Command::new("rcbsd-failover")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut command, "rcbsd-failover", out);
}

fn plan(runbook: PlanRunbook, os: PlanOs, path: &Path) -> ExitCode {
    use crate::runbook::{self, Kind};
    let config = match config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return error.exit_status().into();
        }
    };
    let kind = match runbook {
        PlanRunbook::Promote => Kind::Promote,
        PlanRunbook::Demote => Kind::Demote,
        PlanRunbook::Follow => Kind::Follow,
        PlanRunbook::Quiesce => Kind::Quiesce,
        PlanRunbook::RideThrough => Kind::RideThrough,
        PlanRunbook::Health => Kind::Repair,
    };
    let os = match os {
        PlanOs::Freebsd => crate::net::vip::Os::FreeBsd,
        PlanOs::Linux => crate::net::vip::Os::Linux,
    };
    let available = runbook::plan::available_environments(&config);
    print!("{}", runbook::plan::render(&config, kind, os, &available));
    ExitCode::SUCCESS
}

fn check_config(path: &Path, here: bool) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            // A master candidate writes its block into the exports file:
            // an operator's V4: line with another root there would make
            // mountd drop one of them at promote time.
            if config.cbsd.is_some() && config.storage.is_some() {
                let exports = &config.nfs.exports_file;
                match crate::runbook::exports::check_file(exports) {
                    Ok(conflicts) if !conflicts.is_empty() => {
                        for conflict in conflicts {
                            eprintln!("{conflict}");
                        }
                        eprintln!(
                            "{}: nfs.exports_file {} conflicts with the agent's exports",
                            path.display(),
                            exports.display()
                        );
                        return ExitStatus::Config.into();
                    }
                    Ok(_) => {}
                    Err(error) => println!(
                        "warning: cannot read nfs.exports_file {} to check its V4: lines: {error}",
                        exports.display()
                    ),
                }
            }
            if here {
                if let Err(code) = check_this_machine(path, &config) {
                    return code;
                }
            }
            println!("{}: ok", path.display());
            println!("{}", config.summary());
            for warning in config.warnings() {
                println!("warning: {warning}");
            }
            if here {
                println!(
                    "checked on this machine too: the interface (and an IPv6 router's IPv6 and link-local address), the control socket's directory, the key files, the watchdog (--file-only skips them)"
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            error.exit_status().into()
        }
    }
}

/// `check-config` on the node: what `run` would refuse here, examined by
/// the agent's own checks (`doctor`'s local ones). Each FAIL is printed as
/// `PATH: NAME: FOUND -- fix: COMMAND` on stderr; the exit status is run's
/// for the same cause (78 a key file, 69 what this machine lacks).
fn check_this_machine(path: &Path, config: &config::Config) -> Result<(), ExitCode> {
    let outcomes = match crate::doctor::start_prerequisites(config) {
        Ok(outcomes) => outcomes,
        Err(error) => {
            eprintln!("rcbsd-failover: cannot start the async runtime: {error}");
            return Err(ExitStatus::OsErr.into());
        }
    };
    let mut status = None;
    for outcome in &outcomes {
        let finding = &outcome.finding;
        let fix = finding
            .fix
            .as_deref()
            .map(|fix| format!("{}{fix}", crate::doctor::FIX_SEPARATOR))
            .unwrap_or_default();
        match finding.verdict {
            crate::doctor::Verdict::Ok => {}
            crate::doctor::Verdict::Warn => println!(
                "warning: on this machine: {}: {}{fix}",
                outcome.name, finding.found
            ),
            crate::doctor::Verdict::Fail => {
                eprintln!(
                    "{}: on this machine: {}: {}{fix}",
                    path.display(),
                    outcome.name,
                    finding.found
                );
                let this = if outcome.name == "auth_key_files" {
                    ExitStatus::Config
                } else {
                    ExitStatus::Unavailable
                };
                // A refused key file is the configuration's fault: it wins.
                if status != Some(ExitStatus::Config) {
                    status = Some(this);
                }
            }
        }
    }
    match status {
        Some(status) => {
            eprintln!(
                "{}: `run` would refuse to start on this machine (give --file-only to check the file alone, elsewhere)",
                path.display()
            );
            Err(status.into())
        }
        None => Ok(()),
    }
}

fn status(target: &Target, json: bool) -> ExitCode {
    let failed = |failure: Failed| {
        if json {
            // A script reading standard output gets an answer it can parse
            // in every case, in the shape of the control protocol's error
            // reply (docs/status.md), plus the exit status.
            println!(
                "{}",
                serde_json::json!({
                    "ok": false,
                    "error": failure.reason,
                    "exit_status": failure.status.code(),
                })
            );
        }
        failure.report()
    };
    let response = match ask(target, Request::Status) {
        Ok(response) => response,
        Err(failure) => return failed(failure),
    };
    let Some(status) = response.status else {
        return failed(Failed::new(
            "the agent's reply has no status",
            ExitStatus::Protocol,
        ));
    };
    if json {
        match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                return failed(Failed::new(
                    format!("cannot print the status: {error}"),
                    ExitStatus::Protocol,
                ));
            }
        }
    } else {
        print!("{}", client::render_status(&status));
    }
    ExitCode::SUCCESS
}

fn list_holds(target: &Target, json: bool) -> ExitCode {
    let response = match ask(target, Request::Status) {
        Ok(response) => response,
        Err(failure) => return failure.report(),
    };
    let Some(status) = response.status else {
        eprintln!("rcbsd-failover: the agent's reply has no status");
        return ExitStatus::Protocol.into();
    };
    if json {
        match serde_json::to_string_pretty(&status.held) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("rcbsd-failover: cannot print the holds: {error}");
                return ExitStatus::Protocol.into();
            }
        }
    } else {
        print!("{}", client::render_holds(&status));
    }
    ExitCode::SUCCESS
}

fn change(target: &Target, request: Request) -> ExitCode {
    match ask(target, request) {
        Ok(response) => {
            println!(
                "{}",
                response.changed.as_deref().unwrap_or("nothing changed")
            );
            ExitCode::SUCCESS
        }
        Err(failure) => failure.report(),
    }
}

/// `move` checked against the configuration before the agent is asked:
/// an unknown environment or node is the operator's typo, and says so
/// even when no agent runs (the agent checks again, against its own
/// configuration). With --socket the file is not read: the agent decides.
fn check_move(target: &Target, environment: &str, node: &str) -> Result<(), Failed> {
    if target.socket.is_some() {
        return Ok(());
    }
    let config = config::load(&target.config.path).map_err(config_failed)?;
    let Some(placed) = config.placement.iter().find(|p| p.name == environment) else {
        let known: Vec<&str> = config.placement.iter().map(|p| p.name.as_str()).collect();
        let known = if known.is_empty() {
            "it has none".to_owned()
        } else {
            format!("it has {}", known.join(", "))
        };
        return Err(Failed::new(
            format!(
                "unknown environment {environment:?}: no [[environment]] of {} names it ({known})",
                target.config.path.display()
            ),
            ExitStatus::Failure,
        ));
    };
    if !placed.nodes.iter().any(|n| n == node) {
        return Err(Failed::new(
            format!(
                "{environment} may not run on {node:?}: its nodes are {}",
                placed.nodes.join(", ")
            ),
            ExitStatus::Failure,
        ));
    }
    Ok(())
}

fn move_environment(target: &Target, environment: String, node: String, wait: u64) -> ExitCode {
    if let Err(failure) = check_move(target, &environment, &node) {
        return failure.report();
    }
    let request = Request::Move {
        environment: environment.clone(),
        node: node.clone(),
    };
    let code = change(target, request);
    if code != ExitCode::SUCCESS || wait == 0 {
        return code;
    }
    let socket = match socket_of(target) {
        Ok(socket) => socket,
        Err(failure) => return failure.report(),
    };
    let arrived = client::wait_for_move(
        &socket,
        &environment,
        &node,
        std::time::Duration::from_secs(wait),
        |running_on| {
            if running_on.is_empty() {
                println!("{environment} stopped; waiting for {node} to start it");
            } else {
                println!("{environment} runs on {}", running_on.join(", "));
            }
        },
    );
    if arrived {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "rcbsd-failover: {environment} does not run on {node} after {wait} s; see `rcbsd-failover status` on both nodes"
    );
    ExitStatus::Failure.into()
}

/// Why a command could not get its answer from the agent.
struct Failed {
    /// One line: what went wrong.
    reason: String,
    /// Said after the reason on standard error (a hint), if anything.
    hint: Option<&'static str>,
    /// The reason names its file (FILE:LINE:COL: ...) and is printed as
    /// is, as `check-config` prints it; otherwise after the program name.
    names_file: bool,
    /// The exit status it ends with.
    status: ExitStatus,
}

impl Failed {
    fn new(reason: impl Into<String>, status: ExitStatus) -> Self {
        Failed {
            reason: reason.into(),
            hint: None,
            names_file: false,
            status,
        }
    }

    /// Says why on standard error; the exit code.
    fn report(self) -> ExitCode {
        if self.names_file {
            eprintln!("{}", self.reason);
        } else {
            eprintln!("rcbsd-failover: {}", self.reason);
        }
        if let Some(hint) = self.hint {
            eprintln!("{hint}");
        }
        self.status.into()
    }
}

/// The configuration could not be loaded to find the agent.
fn config_failed(error: config::ConfigError) -> Failed {
    Failed {
        reason: error.to_string(),
        hint: Some("(to reach a running agent anyway, give its socket: --socket PATH)"),
        names_file: true,
        status: error.exit_status(),
    }
}

/// Send `request` to the agent; on any failure, why and the exit status.
fn ask(target: &Target, request: Request) -> Result<Response, Failed> {
    let socket = socket_of(target)?;
    match client::request(&socket, request, client::DEFAULT_TIMEOUT) {
        Ok(response) if response.ok => Ok(response),
        Ok(response) => {
            let reason = response.error.as_deref().unwrap_or("no reason given");
            Err(Failed::new(
                format!("the agent refused: {reason}"),
                ExitStatus::Failure,
            ))
        }
        Err(error) => Err(Failed::new(error.to_string(), error.exit_status())),
    }
}

/// The control socket `target` names: `--socket`, or the configuration's.
fn socket_of(target: &Target) -> Result<PathBuf, Failed> {
    match &target.socket {
        Some(socket) => Ok(socket.clone()),
        None => config::load(&target.config.path)
            .map(|config| config.node.control_socket)
            .map_err(config_failed),
    }
}
