//! The lab: throwaway network-namespace topologies in which real agents
//! (ours, or keepalived for comparison) elect a master while a client pings
//! the VIP at 1 kHz; the master's link is cut again and again and the outage
//! the client sees is measured. `rcbsd-failover lab` runs it; the network
//! tests reuse the same building blocks.
//!
//! - [`netns`]: the topology (bridge, node and client namespaces), link cuts,
//!   nft partitions, teardown;
//! - [`agents`]: configuration and launch of our agent or keepalived;
//! - [`ping`]: the client's ICMP prober; [`watch`]: who holds the VIP, and
//!   since when; [`procstat`]: memory and CPU of the agents;
//! - [`trial`]: one implementation's election and failover trials;
//!   [`flood`]: the flood benchmark (`--scenario flood`);
//!   [`report`]: statistics, text and JSON output;
//! - [`fake_watchdog`]: a software watchdog on a FIFO, for the fencing tests.
//!
//! Linux only (network namespaces); the arguments exist everywhere so the
//! CLI is the same on FreeBSD, where `run` refuses clearly.

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
pub mod netns;
#[cfg(target_os = "linux")]
pub mod ping;
#[cfg(target_os = "linux")]
pub mod procstat;
pub mod report;
#[cfg(target_os = "linux")]
pub mod trial;
#[cfg(target_os = "linux")]
pub mod watch;

pub use args::{parse_interval, Baseline, LabArgs, Scenario, Settings, Subject};
pub use error::LabError;

use std::process::ExitCode;

/// sysexits(3): a wrong argument (`--only` naming no fault).
#[cfg(target_os = "linux")]
const EX_USAGE: u8 = 64;
/// sysexits(3): the lab cannot run on this system.
const EX_UNAVAILABLE: u8 = 69;
/// sysexits(3): not root.
#[cfg(target_os = "linux")]
const EX_NOPERM: u8 = 77;
/// 128 + SIGINT, as shells report an interrupted command.
#[cfg(target_os = "linux")]
const EXIT_INTERRUPTED: u8 = 130;

/// `rcbsd-failover lab`: measure failover, print the report, tear down.
pub fn run(args: LabArgs) -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    {
        let _ = args;
        eprintln!("lab: needs Linux network namespaces; it cannot run on this system");
        ExitCode::from(EX_UNAVAILABLE)
    }
    #[cfg(target_os = "linux")]
    {
        run_linux(args)
    }
}

/// `lab --scenario cbsd`: our agent only, the full runbooks on stand-ins.
#[cfg(target_os = "linux")]
fn run_cbsd(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let exe = match own_agent(args, "cbsd") {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    let run = cbsd::trial::measure(exe, &args.settings(), cancel);
    report(run, args.json, "cbsd", cbsd::report::CbsdRun::to_text)
}

/// `lab --scenario flood`: the flood benchmark, our agent only.
#[cfg(target_os = "linux")]
fn run_flood(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let exe = match own_agent(args, "flood") {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    let plan = flood::Plan {
        exe,
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

/// `lab --scenario faults`: the fault table; exit 0 only when every fault
/// passed.
#[cfg(target_os = "linux")]
fn run_faults(args: &LabArgs, cancel: &cancel::Cancel) -> ExitCode {
    let exe = match own_agent(args, "faults") {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    let results = match faults::run_table(args.only.as_deref(), &exe, cancel) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("lab: faults: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    if cancel.is_cancelled() {
        eprintln!("lab: interrupted; everything torn down");
        return ExitCode::from(EXIT_INTERRUPTED);
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

/// The agent a scenario that measures only rcbsd-failover starts: this
/// program (or `--agent-exe`). Refuses `--implementation`/`--compare`.
#[cfg(target_os = "linux")]
fn own_agent(args: &LabArgs, scenario: &str) -> Result<std::path::PathBuf, ExitCode> {
    if args.implementation != Subject::RcbsdFailover || args.compare.is_some() {
        eprintln!(
            "lab: --scenario {scenario} measures rcbsd-failover only (no --implementation/--compare)"
        );
        return Err(ExitCode::from(EX_UNAVAILABLE));
    }
    args.agent_exe
        .clone()
        .map_or_else(std::env::current_exe, Ok)
        .map_err(|e| {
            eprintln!("lab: cannot find this program's path to start agents: {e}");
            ExitCode::FAILURE
        })
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
            return ExitCode::from(EXIT_INTERRUPTED);
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
    if !nix::unistd::geteuid().is_root() {
        eprintln!("lab: must run as root (it creates network namespaces and raw sockets)");
        return ExitCode::from(EX_NOPERM);
    }
    let cancel = match cancel::Cancel::on_signals() {
        Ok(cancel) => cancel,
        Err(e) => {
            eprintln!("lab: cannot install the SIGINT/SIGTERM handler: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
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
    let subjects = match args.subjects() {
        Ok(subjects) => subjects,
        Err(e) => {
            eprintln!("lab: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
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
            Subject::RcbsdFailover => match args
                .agent_exe
                .clone()
                .map_or_else(std::env::current_exe, Ok)
            {
                Ok(exe) => agents::Implementation::Rcbsd { exe },
                Err(e) => {
                    eprintln!("lab: cannot find this program's path to start agents: {e}");
                    return ExitCode::FAILURE;
                }
            },
        };
        match trial::measure(implementation, &args.settings(), &cancel) {
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
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    let report = report::Report::new(&args.settings(), runs);
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
