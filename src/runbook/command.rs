//! Runs one external command the way every runbook command runs: argv only
//! (never a shell), its own process group, standard input closed, output
//! captured up to a limit, a time limit, and the fence's kill.
//!
//! A command that outlives its limit (or that the fence kills) has its
//! whole process group killed, and its exit is then awaited for at most
//! [`KILL_WAIT`]. A process in uninterruptible sleep, such as I/O on a hard
//! NFS mount whose server is gone (mount_nfs(8): such operations "hang
//! uninterruptibly"), does not die from SIGKILL: it is reported
//! (`command_abandoned`) and abandoned, never awaited on the agent's
//! threads. tokio reaps it if it ever exits (e.g. once `umount -N` frees
//! it).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::step::Command;
use crate::events;
use crate::node::Allowance;
use crate::wire::heartbeat::Resource;

/// Output kept per stream: status output is short; a runaway tool must not
/// fill memory.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long to read what is left in the pipes after the process exited (a
/// daemon it started may hold them open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a killed command's exit is awaited before it is abandoned.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// What a command that exited did.
#[derive(Debug)]
pub struct Ran {
    /// `None` when a signal ended it.
    pub exit: Option<i32>,
    /// Standard output as (lossy UTF-8) text, at most 64 KiB.
    pub stdout: String,
    /// Standard error as (lossy UTF-8) text, at most 64 KiB.
    pub stderr: String,
}

/// Why a command gave no exit status to check.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The argv was empty: there is no program to run.
    #[error("empty command")]
    Empty,
    /// The program could not be started (missing, not executable...).
    #[error("{command}: cannot start: {source}")]
    Spawn {
        /// The command as an operator would type it.
        command: String,
        /// What spawning it returned.
        source: std::io::Error,
    },
    /// Waiting for the process's exit failed.
    #[error("{command}: wait: {source}")]
    Wait {
        /// The command as an operator would type it.
        command: String,
        /// What waiting for it returned.
        source: std::io::Error,
    },
    /// Its time ran out; it was killed.
    #[error("{command}: no answer within {}, killed{}", crate::config::format_duration(*.limit), .kill)]
    TimedOut {
        /// The command as an operator would type it.
        command: String,
        /// The time limit it was given.
        limit: Duration,
        /// Whether its process group died or was abandoned.
        kill: KillNote,
    },
    /// The fence took away what it was acquiring; it was killed.
    #[error("{command}: {why}: killed{}", .kill)]
    Fenced {
        /// The command as an operator would type it.
        command: String,
        /// Which resource is no longer allowed here.
        why: String,
        /// Whether its process group died or was abandoned.
        kill: KillNote,
    },
}

/// What became of a killed process group.
#[derive(Debug, Default)]
pub struct KillNote {
    /// The pid that still ran [`KILL_WAIT`] after SIGKILL, if one did.
    pub abandoned: Option<u32>,
}

impl std::fmt::Display for KillNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.abandoned {
            None => Ok(()),
            Some(pid) => write!(
                f,
                "; pid {pid} still runs {} after SIGKILL (uninterruptible, e.g. I/O on a dead NFS server): abandoned",
                crate::config::format_duration(KILL_WAIT)
            ),
        }
    }
}

/// A running step is killed when the fence no longer allows `resource`.
#[derive(Clone)]
pub struct Abort {
    /// The fence's current allowance: what this node may hold right now.
    pub allowance: watch::Receiver<Allowance>,
    /// What the step acquires (the master role or an environment).
    pub resource: Resource,
}

/// Resolves when `abort` says the step must die (never without one), with
/// the reason.
pub async fn aborted(abort: Option<&Abort>) -> String {
    let Some(abort) = abort else {
        return std::future::pending().await;
    };
    let mut allowance = abort.allowance.clone();
    loop {
        if !allowance.borrow_and_update().allows(&abort.resource) {
            return format!("{} is no longer allowed here (fenced)", abort.resource);
        }
        if allowance.changed().await.is_err() {
            // Nobody can fence any more.
            return std::future::pending().await;
        }
    }
}

/// Spawns `command` in its own process group and waits up to `limit`; on
/// expiry, or when `abort` fires, the whole group is killed (a tool's
/// children too) and its exit is awaited for at most [`KILL_WAIT`].
pub async fn run(
    command: &Command,
    limit: Duration,
    abort: Option<&Abort>,
) -> Result<Ran, CommandError> {
    let display = command.display();
    let Some((program, args)) = command.argv.split_first() else {
        return Err(CommandError::Empty);
    };
    let mut child_command = tokio::process::Command::new(program);
    child_command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cwd) = &command.cwd {
        child_command.current_dir(cwd);
    }
    for (key, value) in &command.env {
        child_command.env(key, value);
    }
    let mut child = child_command
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: display.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(read_limited);
    let stderr = child.stderr.take().map(read_limited);
    let waited = tokio::select! {
        waited = tokio::time::timeout(limit, child.wait()) => waited,
        why = aborted(abort) => {
            let kill = kill_group(&mut child, &display).await;
            return Err(CommandError::Fenced { command: display, why, kill });
        }
    };
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            return Err(CommandError::Wait {
                command: display,
                source,
            })
        }
        Err(_) => {
            let kill = kill_group(&mut child, &display).await;
            return Err(CommandError::TimedOut {
                command: display,
                limit,
                kill,
            });
        }
    };
    let stdout = drain(stdout).await;
    let stderr = drain(stderr).await;
    Ok(Ran {
        exit: status.code(),
        stdout,
        stderr,
    })
}

/// SIGKILL to the child's process group, then a bounded wait for its exit.
async fn kill_group(child: &mut tokio::process::Child, display: &str) -> KillNote {
    let pid = child.id();
    if let Some(pid) = pid.and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
    match tokio::time::timeout(KILL_WAIT, child.wait()).await {
        Ok(_) => KillNote::default(),
        Err(_) => {
            let pid = pid.unwrap_or(0);
            events::command_abandoned(display, pid, millis(KILL_WAIT));
            KillNote {
                abandoned: Some(pid),
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn read_limited<R>(reader: R) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        let _ = reader.take(OUTPUT_LIMIT).read_to_end(&mut buffer).await;
        buffer
    })
}

async fn drain(task: Option<tokio::task::JoinHandle<Vec<u8>>>) -> String {
    let Some(mut task) = task else {
        return String::new();
    };
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => {
            task.abort();
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Instant;

    #[tokio::test]
    async fn a_command_past_its_limit_is_killed() {
        let started = Instant::now();
        let result = run(
            &Command::new(["sleep", "10"]),
            Duration::from_millis(200),
            None,
        )
        .await;
        assert!(
            matches!(result, Err(CommandError::TimedOut { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_acquiring_command_is_killed_when_the_fence_takes_its_resource() {
        let (fence, allowance) = watch::channel(Allowance {
            master: true,
            environments: None,
        });
        let abort = Abort {
            allowance,
            resource: Resource::Master,
        };
        let started = Instant::now();
        let sleep = Command::new(["sleep", "30"]);
        let running = run(&sleep, Duration::from_secs(60), Some(&abort));
        let fenced = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fence.send_replace(Allowance::default());
            std::future::pending::<()>().await;
        };
        let result = tokio::select! {
            result = running => result,
            () = fenced => unreachable!(),
        };
        match result {
            Err(CommandError::Fenced { why, .. }) => assert!(why.contains("master"), "{why}"),
            other => panic!("expected a kill by the fence, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed at once, not at its limit"
        );
    }

    #[tokio::test]
    async fn a_step_that_acquires_nothing_is_not_killed_by_the_fence() {
        let (fence, allowance) = watch::channel(Allowance::default());
        let abort = Abort {
            allowance,
            resource: Resource::Environment("web1".into()),
        };
        // Allowed (no placement: every environment) until the change.
        fence.send_replace(Allowance {
            master: false,
            environments: None,
        });
        let ran = run(
            &Command::new(["true"]),
            Duration::from_secs(5),
            Some(&abort),
        )
        .await
        .ok()
        .unwrap();
        assert_eq!(ran.exit, Some(0));
    }

    #[tokio::test]
    async fn exit_code_stdout_cwd_and_env_are_seen() {
        let mut command = Command::new(["sh", "-c", "pwd; echo $NOINTER; exit 3"]);
        command.cwd = Some(PathBuf::from("/"));
        command.env = vec![("NOINTER".into(), "1".into())];
        let ran = run(&command, Duration::from_secs(5), None)
            .await
            .ok()
            .unwrap();
        assert_eq!(ran.exit, Some(3));
        assert_eq!(ran.stdout, "/\n1\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let error = run(
            &Command::new(["/nonexistent/tool", "x"]),
            Duration::from_secs(5),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, CommandError::Spawn { .. }));
        assert!(error.to_string().contains("/nonexistent/tool"), "{error}");
    }
}
