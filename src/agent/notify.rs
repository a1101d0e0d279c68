//! The notify hook: `[notify] command` run on every state change, with the
//! event in its environment (keepalived's `notify`, without a shell).
//!
//! Each run is its own task: the election loop only spawns it. A hook that
//! outlives `[notify] timeout` is killed; failures are logged as
//! `notify_failed` and change nothing else.

use std::process::Stdio;

use crate::config::Notify;
use crate::events;

/// What the hook is told, as `RCBSD_*` environment variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The event the hook is run for (`RCBSD_EVENT`).
    pub event: events::Event,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub node: String,
    pub priority: u8,
    /// The master's address, or `none`.
    pub master: String,
    /// Virtual IPs, comma-separated.
    pub vips: String,
}

impl Notification {
    /// The environment the hook sees.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RCBSD_EVENT", self.event.name().to_owned()),
            ("RCBSD_FROM", self.from.clone()),
            ("RCBSD_TO", self.to.clone()),
            ("RCBSD_REASON", self.reason.clone()),
            ("RCBSD_NODE", self.node.clone()),
            ("RCBSD_PRIORITY", self.priority.to_string()),
            ("RCBSD_MASTER", self.master.clone()),
            ("RCBSD_VIPS", self.vips.clone()),
        ]
    }
}

/// Why a hook run failed. The command is logged beside it (`notify_failed`),
/// so the message leaves it out.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot start: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("exited with {0}")]
    Exited(std::process::ExitStatus),
    #[error("wait failed: {0}")]
    Wait(#[source] std::io::Error),
    /// It outlived `[notify] timeout` and was killed.
    #[error("killed after {} s", .0.as_secs())]
    TimedOut(std::time::Duration),
}

/// Starts the hook for `notification` and returns at once.
pub fn spawn(notify: &Notify, notification: Notification) {
    let notify = notify.clone();
    tokio::spawn(async move {
        let shown = notify.command.join(" ");
        if let Err(error) = run(&notify, &notification).await {
            events::notify_failed(&shown, &error.to_string());
        }
    });
}

async fn run(notify: &Notify, notification: &Notification) -> Result<(), NotifyError> {
    let Some((program, args)) = notify.command.split_first() else {
        return Err(NotifyError::EmptyCommand);
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(notification.environment())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(NotifyError::Spawn)?;
    match tokio::time::timeout(notify.timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(NotifyError::Exited(status)),
        Ok(Err(e)) => Err(NotifyError::Wait(e)),
        Err(_) => {
            let _ = child.kill().await;
            Err(NotifyError::TimedOut(notify.timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn notification() -> Notification {
        Notification {
            event: events::Event::StateChange,
            from: "backup".into(),
            to: "master".into(),
            reason: "master_down".into(),
            node: "node1".into(),
            priority: 150,
            master: "192.168.10.201".into(),
            vips: "192.168.10.200/24".into(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_hook_sees_the_event_in_its_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("env");
        // An operator's hook script: it writes its environment to $0.
        let notify = Notify {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "env > \"$0\"".into(),
                out.to_string_lossy().into_owned(),
            ],
            timeout: Duration::from_secs(5),
        };
        run(&notify, &notification()).await.expect("hook runs");
        let text = std::fs::read_to_string(&out).expect("read");
        for line in [
            "RCBSD_EVENT=state_change",
            "RCBSD_FROM=backup",
            "RCBSD_TO=master",
            "RCBSD_REASON=master_down",
            "RCBSD_NODE=node1",
            "RCBSD_PRIORITY=150",
            "RCBSD_MASTER=192.168.10.201",
            "RCBSD_VIPS=192.168.10.200/24",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in {text}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_or_hanging_hook_is_an_error_not_a_hang() {
        let failing = Notify {
            command: vec!["/bin/false".into()],
            timeout: Duration::from_secs(5),
        };
        assert!(run(&failing, &notification())
            .await
            .unwrap_err()
            .to_string()
            .contains("exited"));
        let hanging = Notify {
            command: vec!["/bin/sleep".into(), "30".into()],
            timeout: Duration::from_secs(1),
        };
        assert!(run(&hanging, &notification())
            .await
            .unwrap_err()
            .to_string()
            .contains("killed"));
        let missing = Notify {
            command: vec!["/nonexistent/hook".into()],
            timeout: Duration::from_secs(1),
        };
        assert!(run(&missing, &notification())
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot start"));
    }
}
