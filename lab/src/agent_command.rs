//! How the lab runs our agent. The lab's own binary carries it: `rcbsd-lab
//! agent ARGS` is `rcbsd-failover ARGS`, the same
//! [`rcbsd_failover::cli::main`] the installed daemon runs, linked into the
//! lab so that one `cargo run -p rcbsd-lab` builds everything a run needs.
//! `--agent-exe PATH` runs another build instead (a real `rcbsd-failover`,
//! e.g. while bisecting).

use std::path::{Path, PathBuf};

/// The subcommand of `rcbsd-lab` that is the agent's command line.
pub const AGENT_SUBCOMMAND: &str = "agent";

/// A program and the arguments that precede the agent's own subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCommand {
    program: PathBuf,
    leading: Vec<String>,
}

impl AgentCommand {
    /// The agent inside the lab binary at `lab_exe`: `LAB_EXE agent ...`.
    pub fn in_lab(lab_exe: &Path) -> Self {
        AgentCommand {
            program: lab_exe.to_path_buf(),
            leading: vec![AGENT_SUBCOMMAND.into()],
        }
    }

    /// The agent inside this running lab binary.
    pub fn in_this_lab() -> std::io::Result<Self> {
        Ok(Self::in_lab(&std::env::current_exe()?))
    }

    /// A separate `rcbsd-failover` binary: `EXE ...`.
    pub fn exe(exe: &Path) -> Self {
        AgentCommand {
            program: exe.to_path_buf(),
            leading: Vec::new(),
        }
    }

    /// The argv that runs the agent's `args` (e.g. `["run", "-c", PATH]`).
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![self.program.to_string_lossy().into_owned()];
        argv.extend(self.leading.iter().cloned());
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_binary_runs_the_agent_through_its_agent_subcommand() {
        let lab = AgentCommand::in_lab(Path::new("/x/rcbsd-lab"));
        assert_eq!(lab.argv(&["status"]), ["/x/rcbsd-lab", "agent", "status"]);
        let exe = AgentCommand::exe(Path::new("/x/rcbsd-failover"));
        assert_eq!(exe.argv(&["status"]), ["/x/rcbsd-failover", "status"]);
    }
}
