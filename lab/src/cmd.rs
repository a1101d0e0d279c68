//! Running external tools (`ip`, `nft`, `keepalived`) as argv vectors.
//! Never through a shell: nothing the lab builds is ever parsed by `sh`.

use std::process::Command;

use super::LabError;

/// Runs `argv` to completion; a non-zero exit is an error that carries the
/// command line and its stderr so the operator can rerun it by hand.
pub fn run(argv: &[String]) -> Result<String, LabError> {
    let (program, args) = argv.split_first().ok_or(LabError::EmptyCommand)?;
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            command: argv.join(" "),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::CommandFailed {
            command: argv.join(" "),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Builds an argv from string slices.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}
