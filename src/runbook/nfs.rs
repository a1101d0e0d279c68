//! The NFS server's services (master) and the NFS mounts (followers).
//!
//! Services are started with the `one...` forms of service(8), status
//! first: the agent starts them itself while they stay disabled in rc.conf
//! (only the master runs them), a plain `start` of a disabled service
//! prints "Cannot 'start'" and exits 0, and a second start prints "already
//! running?" and exits 1. mountd, already running, is told to re-read the
//! exports with `onereload` (SIGHUP).

use std::net::Ipv4Addr;
use std::path::Path;

use super::expect::Expect;
use super::step::{Action, Checked, Command, Ensure, Retry, Step};
use crate::config::{Cbsd, Config};

/// What CBSD's recipe enables, in start order: NFSv3 clients and byte-range
/// locks (statd, lockd) work too.
const FULL: &[&str] = &["rpcbind", "nfsuserd", "mountd", "nfsd", "statd", "lockd"];
/// FreeBSD's `nfsv4_server_only`.
const V4_ONLY: &[&str] = &["nfsuserd", "mountd", "nfsd"];
/// Stopped on demote, in this order (rpcbind and nfsuserd serve the
/// client side too and stay).
const STOP_FULL: &[&str] = &["lockd", "statd", "nfsd", "mountd"];
const STOP_V4_ONLY: &[&str] = &["nfsd", "mountd"];
/// The port nfsd listens on (RFC 7530 §3.1).
pub const NFS_PORT: u16 = 2049;

pub fn server_services(v4_only: bool) -> &'static [&'static str] {
    if v4_only {
        V4_ONLY
    } else {
        FULL
    }
}

pub fn services_stopped_on_demote(v4_only: bool) -> &'static [&'static str] {
    if v4_only {
        STOP_V4_ONLY
    } else {
        STOP_FULL
    }
}

fn service(config: &Config, name: &str, verb: &str) -> Command {
    Command::new([config.tools.service.to_string_lossy().as_ref(), name, verb])
}

/// Starts `name` unless `onestatus` says it runs; mountd is reloaded when
/// it already runs (the exports just changed). Undone by stopping it, only
/// if this step started it.
pub fn start_service(config: &Config, name: &str) -> Step {
    let when_satisfied = (name == "mountd").then(|| Checked {
        command: service(config, name, "onereload"),
        expect: Expect::Success,
    });
    Step::new(
        format!("start {name}"),
        Action::Ensure(Ensure {
            probe: Checked {
                command: service(config, name, "onestatus"),
                expect: Expect::Success,
            },
            acts: vec![service(config, name, "onestart")],
            when_satisfied,
        }),
        config.runbook.command_timeout,
    )
    .undo(stop_service(config, name))
}

/// Stops `name` if `onestatus` says it runs.
pub fn stop_service(config: &Config, name: &str) -> Step {
    Step::new(
        format!("stop {name}"),
        Action::Ensure(Ensure {
            probe: Checked {
                command: service(config, name, "onestatus"),
                expect: Expect::Failure,
            },
            acts: vec![service(config, name, "onestop")],
            when_satisfied: None,
        }),
        config.runbook.command_timeout,
    )
}

/// nfsd accepts connections: `sockstat -4l -p 2049`.
pub fn verify_listening(config: &Config) -> Step {
    Step::new(
        "verify nfsd listens",
        Action::Run(Checked {
            command: Command::new([
                config.tools.sockstat.to_string_lossy().as_ref(),
                "-4l",
                "-p",
                &NFS_PORT.to_string(),
            ]),
            expect: Expect::Listening { port: NFS_PORT },
        }),
        config.runbook.command_timeout,
    )
}

/// `mount -p -t TYPE`: what is mounted, in fstab(5) format.
pub fn list_mounts(config: &Config, fstype: Option<&str>) -> Command {
    let mut argv = vec![
        config.tools.mount.to_string_lossy().into_owned(),
        "-p".into(),
    ];
    if let Some(fstype) = fstype {
        argv.push("-t".into());
        argv.push(fstype.into());
    }
    Command::new(argv)
}

/// `VIP:/store/<d>`: what followers mount for shared dir `dir`.
pub fn remote_source(config: &Config, vip: Ipv4Addr, dir: &str) -> String {
    format!("{vip}:{}", config.nfs.remote_root.join(dir).display())
}

/// Mounts shared dir `dir` from the VIP, NFSv4, under a timeout, retried
/// with backoff while the new master is still promoting.
pub fn mount(config: &Config, cbsd: &Cbsd, vip: Ipv4Addr, dir: &str) -> Step {
    let target = cbsd.workdir_path(dir);
    let source = remote_source(config, vip, dir);
    let settings = &config.runbook;
    Step::new(
        format!("mount {dir}"),
        Action::Ensure(Ensure {
            probe: Checked {
                command: list_mounts(config, Some("nfs")),
                expect: Expect::Mounted {
                    mountpoint: target.clone(),
                    source: Some(source.clone()),
                },
            },
            acts: vec![Command::new([
                config.tools.mount_nfs.to_string_lossy().into_owned(),
                "-o".into(),
                config.nfs.mount_options.clone(),
                source,
                target.to_string_lossy().into_owned(),
            ])],
            when_satisfied: None,
        }),
        settings.mount_timeout,
    )
    .retry(Retry {
        attempts: settings.mount_attempts,
        backoff: settings.retry_backoff,
        backoff_max: settings.retry_backoff_max,
    })
}

/// Unmounts `mountpoint` if `mount -p -t fstype` lists it: plain, then
/// `-f` (can take a minute against a dead server), then `-N` (needs the
/// exact mounted path; loses unflushed writes). umount(8).
pub fn unmount(config: &Config, name: String, mountpoint: &Path, fstype: Option<&str>) -> Step {
    let umount = config.tools.umount.to_string_lossy().into_owned();
    let target = mountpoint.to_string_lossy().into_owned();
    let mut acts = vec![
        Command::new([umount.clone(), target.clone()]),
        Command::new([umount.clone(), "-f".into(), target.clone()]),
    ];
    if fstype == Some("nfs") {
        acts.push(Command::new([umount, "-N".into(), target]));
    }
    Step::new(
        name,
        Action::Ensure(Ensure {
            probe: Checked {
                command: list_mounts(config, fstype),
                expect: Expect::NotMounted {
                    mountpoint: mountpoint.to_path_buf(),
                },
            },
            acts,
            when_satisfied: None,
        }),
        config.runbook.umount_timeout,
    )
}

/// Unmounts the NFS mount of shared dir `dir`.
pub fn unmount_nfs(config: &Config, cbsd: &Cbsd, dir: &str) -> Step {
    unmount(
        config,
        format!("unmount nfs {dir}"),
        &cbsd.workdir_path(dir),
        Some("nfs"),
    )
}
