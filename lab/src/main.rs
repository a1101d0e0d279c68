//! `rcbsd-lab`: measure failover in throwaway network namespaces (Linux,
//! root). See docs/lab.md.
//!
//! Two hidden first arguments make this binary the agent, so that a lab
//! run needs nothing but this program: `rcbsd-lab agent ARGS` is
//! `rcbsd-failover ARGS` (the agents the lab starts), and `rcbsd-lab
//! fs-probe ARGS` is the probe child the agent runs as itself (which first
//! asks the stand-ins whether its look hangs on a dead NFS server).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use rcbsd_lab::agent_command::AGENT_SUBCOMMAND;
use rcbsd_lab::LabArgs;

#[derive(Parser)]
#[command(
    name = "rcbsd-lab",
    version,
    about = "Measure rcbsd-failover's failover in throwaway network namespaces (Linux, root)",
    long_about = "Measure rcbsd-failover's failover in throwaway network namespaces (Linux, root).\n\n\
        Builds a bridge and one namespace per node, starts an agent in each \
        (this program's own copy of rcbsd-failover, or --agent-exe), pings \
        the virtual IP from a client namespace at --rate per second, cuts \
        the master's link again and again, and reports what the client saw. \
        Everything is torn down at the end, also on Ctrl-C.",
    after_help = "Scenarios and their output: see docs/lab.md."
)]
struct Cli {
    #[command(flatten)]
    args: LabArgs,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|first| first.to_str()) {
        Some(AGENT_SUBCOMMAND) => {
            let agent_args = std::iter::once(OsString::from("rcbsd-failover"))
                .chain(args.iter().skip(2).cloned());
            rcbsd_failover::cli::main(agent_args)
        }
        Some(rcbsd_failover::runbook::fs_probe::SUBCOMMAND) => {
            // The stand-ins' NFS mounts are emulated: ask the stand-in
            // whether this look hangs or fails, as it would on FreeBSD.
            if let Err(code) = rcbsd_lab::cbsd::world::nfs_access(args.get(3..).unwrap_or(&[])) {
                return ExitCode::from(code);
            }
            let probe_args = std::iter::once(OsString::from("rcbsd-failover"))
                .chain(args.iter().skip(1).cloned());
            rcbsd_failover::cli::main(probe_args)
        }
        _ => rcbsd_lab::run(Cli::parse_from(args).args),
    }
}
