//! Everything that can go wrong in the lab, each saying what and where.

/// A lab failure.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab supports 1 to 7 nodes, not {0}")]
    NodeCount(usize),
    #[error("no node with index {0} in this topology")]
    NoSuchNode(usize),
    #[error("empty command line")]
    EmptyCommand,
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot enter network namespace {ns}: {source}")]
    Netns { ns: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot write an agent configuration: {0}")]
    Config(String),
    #[error("agent {node} exited ({status}); last lines of its log:\n{log_tail}")]
    AgentExited {
        node: String,
        status: String,
        log_tail: String,
    },
    #[error("control socket of {node}: {message}")]
    Control { node: String, message: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("the cluster misbehaved: {0}")]
    Misbehaved(String),
    #[error("a {0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("interrupted")]
    Interrupted,
}

impl From<nix::Error> for LabError {
    fn from(errno: nix::Error) -> Self {
        LabError::Io {
            what: "system call".into(),
            source: errno.into(),
        }
    }
}
