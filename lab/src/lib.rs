//! The lab: throwaway network-namespace topologies in which real agents
//! (ours, or keepalived for comparison) elect a master while a client pings
//! the VIP at 1 kHz; the master's link is cut again and again and the outage
//! the client sees is measured. `rcbsd-lab` runs it; the network
//! tests reuse the same building blocks.
//!
//! - [`netns`]: the topology (bridge, node and client namespaces), link cuts,
//!   nft partitions, teardown;
//! - [`agents`]: configuration and launch of our agent or keepalived;
//! - [`ping`]: the client's ICMP prober; [`watch`]: who holds the VIP, and
//!   since when; [`procstat`]: memory and CPU of the agents;
//! - [`trial`]: one implementation's election and failover trials;
//!   [`flood`]: the flood benchmark (`--scenario flood`); [`idle`]: what
//!   idle agents cost (`--scenario idle`);
//!   [`report`]: statistics, text and JSON output;
//! - [`fake_watchdog`]: a software watchdog on a FIFO, for the fencing tests.
//!
//! Linux only (network namespaces); the arguments exist everywhere so the
//! CLI is the same on FreeBSD, where `run` refuses clearly.

pub mod agent_command;
mod args;
pub mod cancel;
#[cfg(target_os = "linux")]
pub mod cbsd;
mod error;
#[cfg(target_os = "linux")]
pub mod fake_watchdog;

#[cfg(target_os = "linux")]
pub mod agents;
#[cfg(target_os = "linux")]
pub mod cmd;
#[cfg(target_os = "linux")]
pub mod faults;
#[cfg(target_os = "linux")]
pub mod flood;
#[cfg(target_os = "linux")]
pub mod holders;
#[cfg(target_os = "linux")]
pub mod idle;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(target_os = "linux")]
pub mod ping;
#[cfg(target_os = "linux")]
pub mod procstat;
pub mod report;
pub mod rng;
#[cfg(target_os = "linux")]
pub mod trial;
#[cfg(target_os = "linux")]
pub mod watch;

pub use agent_command::AgentCommand;
pub use args::{parse_interval, Baseline, Family, LabArgs, Scenario, Settings, Subject};
pub use error::LabError;

use std::process::ExitCode;

use rcbsd_failover::exit::ExitStatus;

/// `rcbsd-lab`: measure failover, print the report, tear down.
pub fn run(args: LabArgs) -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    {
        let _ = args;
        eprintln!("lab: needs Linux network namespaces; it cannot run on this system");
        ExitStatus::Unavailable.into()
    }
    #[cfg(target_os = "linux")]
    {
        run_linux(args)
    }
}

/// `lab --scenario cbsd`: our agent only, the full runbooks on stand-ins.
#[cfg(target_os = "linux")]
fn run_cbsd(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let agent = match own_agent(args, "cbsd") {
        Ok(agent) => agent,
        Err(code) => return code,
    };
    if args.compare_follow {
        // As with --compare: a mode that fails is said on stderr, the
        // others are still reported, and the exit status is 1.
        let mut runs = Vec::new();
        let mut failed = false;
        for follow in [cbsd::FollowMode::Remount, cbsd::FollowMode::RideThrough] {
            match cbsd::trial::measure(agent.clone(), &args.settings(), follow, true, cancel) {
                Ok(run) => runs.push(run),
                Err(LabError::Interrupted) => {
                    eprintln!("lab: interrupted; everything torn down");
                    return ExitStatus::Interrupted.into();
                }
                Err(e) => {
                    eprintln!("lab: cbsd: follow {}: {e}", follow.as_str());
                    failed = true;
                }
            }
        }
        let code = report(
            Ok(cbsd::report::FollowComparison { runs }),
            args.json,
            "cbsd",
            cbsd::report::FollowComparison::to_text,
        );
        return if failed { ExitCode::FAILURE } else { code };
    }
    let run = cbsd::trial::measure(agent, &args.settings(), args.follow, false, cancel);
    report(run, args.json, "cbsd", cbsd::report::CbsdRun::to_text)
}

/// `lab --scenario flood`: the flood benchmark, our agent only.
#[cfg(target_os = "linux")]
fn run_flood(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let agent = match own_agent(args, "flood") {
        Ok(agent) => agent,
        Err(code) => return code,
    };
    let plan = flood::Plan {
        agent,
        nodes: usize::from(args.nodes),
        advert_interval: args.advert_interval,
        duration: args.duration,
        threads: usize::from(args.flood_threads),
    };
    report(
        flood::measure(&plan, cancel),
        args.json,
        "flood",
        flood::report::FloodRun::to_text,
    )
}

/// `lab --scenario idle`: idle CPU and wake-ups, ours and (with
/// `--compare keepalived`) keepalived's.
#[cfg(target_os = "linux")]
fn run_idle(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let subjects = match args.subjects() {
        Ok(subjects) => subjects,
        Err(e) => {
            eprintln!("lab: {e}");
            return ExitStatus::Unavailable.into();
        }
    };
    let agent = match agent_command(args) {
        Ok(agent) => agent,
        Err(code) => return code,
    };
    let plan = idle::Plan {
        agent,
        subjects,
        nodes: usize::from(args.nodes),
        advert_interval: args.advert_interval,
        duration: args.duration,
    };
    report(
        idle::measure(&plan, cancel),
        args.json,
        "idle",
        idle::IdleRun::to_text,
    )
}

/// `lab --scenario faults`: the fault table; exit 0 only when every fault
/// passed.
#[cfg(target_os = "linux")]
fn run_faults(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let agent = match own_agent(args, "faults") {
        Ok(agent) => agent,
        Err(code) => return code,
    };
    let results = match faults::run_table(args.only.as_deref(), &agent, cancel) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("lab: faults: {e}");
            return ExitStatus::Usage.into();
        }
    };
    if cancel.is_cancelled() {
        eprintln!("lab: interrupted; everything torn down");
        return ExitStatus::Interrupted.into();
    }
    let all_passed = results.iter().all(|r| r.passed);
    let printed = report(
        Ok(results),
        args.json,
        "faults",
        |r: &Vec<faults::FaultResult>| faults::to_text(r),
    );
    if printed != ExitCode::SUCCESS || !all_passed {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The agent a scenario that measures only rcbsd-failover starts.
/// Refuses `--implementation`/`--compare`.
#[cfg(target_os = "linux")]
fn own_agent(args: &LabArgs, scenario: &str) -> Result<AgentCommand, ExitCode> {
    if args.implementation != Subject::RcbsdFailover || args.compare.is_some() {
        eprintln!(
            "lab: --scenario {scenario} measures rcbsd-failover only (no --implementation/--compare)"
        );
        return Err(ExitStatus::Unavailable.into());
    }
    agent_command(args)
}

/// The agent the lab starts: the one in this program (`rcbsd-lab agent`),
/// or `--agent-exe`.
#[cfg(target_os = "linux")]
fn agent_command(args: &LabArgs) -> Result<AgentCommand, ExitCode> {
    match &args.agent_exe {
        Some(exe) => Ok(AgentCommand::exe(exe)),
        None => AgentCommand::in_this_lab().map_err(|e| {
            eprintln!("lab: cannot find this program's path to start agents: {e}");
            ExitCode::FAILURE
        }),
    }
}

/// Prints a scenario's result as text or JSON.
#[cfg(target_os = "linux")]
fn report<T: serde::Serialize>(
    run: Result<T, LabError>,
    json: bool,
    scenario: &str,
    to_text: fn(&T) -> String,
) -> ExitCode {
    let run = match run {
        Ok(run) => run,
        Err(LabError::Interrupted) => {
            eprintln!("lab: interrupted; everything torn down");
            return ExitStatus::Interrupted.into();
        }
        Err(e) => {
            eprintln!("lab: {scenario}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&run) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("lab: cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", to_text(&run));
    }
    ExitCode::SUCCESS
}

#[cfg(target_os = "linux")]
fn run_linux(args: LabArgs) -> ExitCode {
    if let Err(e) = args.check_family() {
        eprintln!("lab: {e}");
        return ExitStatus::Usage.into();
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("lab: must run as root (it creates network namespaces and raw sockets)");
        return ExitStatus::NoPerm.into();
    }
    let cancel = match cancel::Cancel::on_signals() {
        Ok(cancel) => cancel,
        Err(e) => {
            eprintln!("lab: cannot install the SIGINT/SIGTERM handler: {e}");
            return ExitStatus::Unavailable.into();
        }
    };
    for leftover in netns::cleanup_leftovers() {
        eprintln!("lab: removed namespace {leftover} left by a dead earlier run");
    }
    if args.scenario == Scenario::Cbsd {
        return run_cbsd(&args, &cancel);
    }
    if args.scenario == Scenario::Flood {
        return run_flood(&args, &cancel);
    }
    if args.scenario == Scenario::Faults {
        return run_faults(&args, &cancel);
    }
    if args.scenario == Scenario::Idle {
        return run_idle(&args, &cancel);
    }
    let subjects = match args.subjects() {
        Ok(subjects) => subjects,
        Err(e) => {
            eprintln!("lab: {e}");
            return ExitStatus::Unavailable.into();
        }
    };
    let mut runs = Vec::new();
    let mut failed = false;
    for subject in subjects {
        if cancel.is_cancelled() {
            break;
        }
        let label = subject.label();
        let implementation = match subject {
            Subject::Keepalived => agents::Implementation::Keepalived,
            Subject::RcbsdFailover => match agent_command(&args) {
                Ok(agent) => agents::Implementation::Rcbsd { agent },
                Err(code) => return code,
            },
        };
        match trial::measure(implementation, &args.settings(), args.family, &cancel) {
            Ok(run) => runs.push(run),
            Err(LabError::Interrupted) => break,
            Err(e) => {
                eprintln!("lab: {label}: {e}");
                failed = true;
            }
        }
    }
    if cancel.is_cancelled() {
        eprintln!("lab: interrupted; everything torn down");
        return ExitStatus::Interrupted.into();
    }
    let report = report::Report::new(&args.settings(), runs).with_family(args.family);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("lab: cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.to_text());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
