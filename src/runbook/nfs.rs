//! The NFS server's services (master) and the NFS mounts (followers).
//!
//! Services are started with the `one...` forms of service(8), status
//! first: the agent starts them itself while they stay disabled in rc.conf
//! (only the master runs them), a plain `start` of a disabled service
//! prints "Cannot 'start'" and exits 0, and a second start prints "already
//! running?" and exits 1. mountd, already running, is told to re-read the
//! exports with `onereload` (SIGHUP).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::expect::Expect;
use super::step::{Action, Builtin, Checked, Command, Ensure, OnFailure, Retry, Step};
use crate::config::{is_link_local6, Cbsd, Config};

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

/// What every follower runs for its mounts: nfsuserd, which maps NFSv4
/// owner names (without it a client shows every file as owned by nobody,
/// and the server, running nfsuserd, refuses its numeric owner strings:
/// nfs_commonsubs.c `nfsv4_strtouid`), and nfscbd when the server issues
/// delegations (the callback channel through which it recalls them).
pub fn client_services(delegations: bool) -> &'static [&'static str] {
    if delegations {
        &["nfsuserd", "nfscbd"]
    } else {
        &["nfsuserd"]
    }
}

/// The rc.d services the master starts, in start order: rpcbind, nfsuserd,
/// mountd, nfsd, statd and lockd; only nfsuserd, mountd and nfsd with
/// `nfs.v4_only` (FreeBSD's `nfsv4_server_only`).
pub fn server_services(v4_only: bool) -> &'static [&'static str] {
    if v4_only {
        V4_ONLY
    } else {
        FULL
    }
}

/// The server's services a demote stops, in stop order (lockd, statd,
/// nfsd, mountd; nfsd and mountd with `nfs.v4_only`): rpcbind and nfsuserd
/// serve the client side too and stay.
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
/// it already runs (the exports just changed). Undone (in a promote) by
/// stopping it, only if this step started it.
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

/// nfsd accepts connections, in each family clients mount over:
/// `sockstat -4l -p 2049` with IPv4 VIPs, `sockstat -6l -p 2049` with a
/// global IPv6 one (a link-local VIP is not mounted from). sockstat(1)
/// `-4`/`-6` list one family only. The first is "verify nfsd listens"
/// (the health check of that name probes it); a dual-stack node adds
/// "verify nfsd listens on IPv6".
pub fn verify_listening(config: &Config) -> Vec<Step> {
    let serves6 = config
        .virtual_ips6()
        .is_some_and(|(_, vips)| vips.iter().any(|v| !is_link_local6(v.address)));
    let mut families = Vec::new();
    if !config.virtual_ips4().is_empty() {
        families.push("-4l");
    }
    if serves6 {
        families.push("-6l");
    }
    families
        .into_iter()
        .enumerate()
        .map(|(index, flags)| {
            let name = if index == 0 {
                "verify nfsd listens"
            } else {
                "verify nfsd listens on IPv6"
            };
            Step::new(
                name,
                Action::Run(Checked {
                    command: Command::new([
                        config.tools.sockstat.to_string_lossy().as_ref(),
                        flags,
                        "-p",
                        &NFS_PORT.to_string(),
                    ]),
                    expect: Expect::Listening { port: NFS_PORT },
                }),
                config.runbook.command_timeout,
            )
        })
        .collect()
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
///
/// An IPv6 VIP is written in brackets, `[ADDR]:/path`: mount_nfs splits
/// `host:path` at the last ':' unless the spec starts with '[' and the ']'
/// is followed by ':' (sbin/mount_nfs/mount_nfs.c `getnfsargs`), and it
/// keeps the brackets in the name the mount is listed under
/// (`have_bracket`, the "hostname" argument), which `mount -p` shows.
pub fn remote_source(config: &Config, vip: IpAddr, dir: &str) -> String {
    let path = config.nfs.remote_root.join(dir);
    match vip {
        IpAddr::V4(vip) => format!("{vip}:{}", path.display()),
        IpAddr::V6(vip) => format!("[{vip}]:{}", path.display()),
    }
}

/// Mounts shared dir `dir` from the VIP, NFSv4, under a timeout, retried
/// with backoff while the new master is still promoting.
pub fn mount(config: &Config, cbsd: &Cbsd, vip: IpAddr, dir: &str) -> Step {
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
/// `-f` (can take a minute against a dead server). umount(8).
pub fn unmount(config: &Config, name: String, mountpoint: &Path, fstype: Option<&str>) -> Step {
    let umount = config.tools.umount.to_string_lossy().into_owned();
    let target = mountpoint.to_string_lossy().into_owned();
    let acts = vec![
        Command::new([umount.clone(), target.clone()]),
        Command::new([umount, "-f".into(), target]),
    ];
    Step::new(
        name,
        Action::Ensure(Ensure {
            probe: not_mounted(config, mountpoint, fstype),
            acts,
            when_satisfied: None,
        }),
        config.runbook.umount_timeout,
    )
}

fn not_mounted(config: &Config, mountpoint: &Path, fstype: Option<&str>) -> Checked {
    Checked {
        command: list_mounts(config, fstype),
        expect: Expect::NotMounted {
            mountpoint: mountpoint.to_path_buf(),
        },
    }
}

/// Unmounts the NFS mount of shared dir `dir`: plain and `-f` within
/// `runbook.umount_timeout` (a failure goes on), then, if it is still
/// mounted, `umount -N`, which needs the exact mounted path and loses
/// unflushed writes. Two steps, so that a plain `umount` hung on a server
/// that died meanwhile cannot use up the time of the `-N` that frees it.
pub fn unmount_nfs(config: &Config, cbsd: &Cbsd, dir: &str) -> Vec<Step> {
    let mountpoint = cbsd.workdir_path(dir);
    let umount = config.tools.umount.to_string_lossy().into_owned();
    let target = mountpoint.to_string_lossy().into_owned();
    vec![
        unmount(
            config,
            format!("unmount nfs {dir}"),
            &mountpoint,
            Some("nfs"),
        )
        .on_failure(OnFailure::Continue),
        Step::new(
            format!("force-dismount nfs {dir}"),
            Action::Ensure(Ensure {
                probe: not_mounted(config, &mountpoint, Some("nfs")),
                acts: vec![Command::new([umount, "-N".into(), target])],
                when_satisfied: None,
            }),
            config.runbook.command_timeout,
        ),
    ]
}

/// PROMOTE 3 and FOLLOW 1 when the old server is gone: every process that
/// touches a hard NFS mount whose server does not answer hangs
/// uninterruptibly (mount_nfs(8)), `jstop`, a bhyve `jstatus` and a plain
/// `umount` included, and a kill does not end it. Only `umount -N` frees
/// them: umount.c calls `nfssvc(NFSSVC_FORCEDISM)` on the path, then the
/// forced unmount, without a statfs(2) of the dead mount. So before
/// anything touches the shared dirs, each mounted one is asked for its
/// file-system statistics (`df`: statfs(2) is an RPC to the server, no
/// cached answer); one that gives no answer in time is force-dismounted at
/// once. `mount -p` itself does not hang: it reads the kernel's mount list
/// without asking the servers (getmntinfo(MNT_NOWAIT), sbin/mount/mount.c).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadMounts {
    /// `mount -p -t nfs`.
    pub listing: Command,
    /// The shared dirs' mountpoints.
    pub mountpoints: Vec<PathBuf>,
    /// Whether to ask: false in a promote, where nobody holds the VIP (the
    /// old master drops it first, this node adds it last), so no server
    /// can answer on a mount of it.
    pub ask: bool,
    /// `df -k`, completed with the mountpoint.
    pub statfs: Command,
    /// How long a live server may take to answer.
    pub answer_within: Duration,
    /// `umount -N`, completed with the mountpoint.
    pub dismount: Command,
}

impl DeadMounts {
    /// Those of `mountpoints` that `listing`'s output (`mount -p`) lists.
    pub fn mounted(&self, listed: &str) -> Vec<PathBuf> {
        self.mountpoints
            .iter()
            .filter(|m| {
                Expect::NotMounted {
                    mountpoint: (*m).clone(),
                }
                .check(Some(0), listed)
                .is_err()
            })
            .cloned()
            .collect()
    }

    /// `df -k MOUNTPOINT`: answers only while the mount's NFS server does.
    pub fn statfs(&self, mountpoint: &Path) -> Command {
        with_path(&self.statfs, mountpoint)
    }

    /// `umount -N MOUNTPOINT`: the forced dismount that does not wait for
    /// the server (umount(8) `-N`).
    pub fn dismount(&self, mountpoint: &Path) -> Command {
        with_path(&self.dismount, mountpoint)
    }
}

fn with_path(command: &Command, path: &Path) -> Command {
    let mut command = command.clone();
    command.argv.push(path.to_string_lossy().into_owned());
    command
}

/// The step that force-dismounts the shared dirs whose server is gone
/// (see [`DeadMounts`]); with `ask` false, every mounted one (promote). A
/// failure goes on: the unmount steps try again.
pub fn dismount_dead(config: &Config, cbsd: &Cbsd, ask: bool) -> Step {
    let umount = config.tools.umount.to_string_lossy().into_owned();
    let dead = DeadMounts {
        listing: list_mounts(config, Some("nfs")),
        mountpoints: cbsd
            .shared_dirs
            .iter()
            .map(|d| cbsd.workdir_path(d))
            .collect(),
        ask,
        statfs: Command::new([config.tools.df.to_string_lossy().as_ref(), "-k"]),
        answer_within: config.runbook.nfs_answer_timeout,
        dismount: Command::new([umount, "-N".to_owned()]),
    };
    Step::new(
        "dismount dead nfs",
        Action::Builtin(Builtin::DismountDead(dead)),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(mountpoints: &[&str]) -> DeadMounts {
        DeadMounts {
            listing: Command::new(["mount", "-p", "-t", "nfs"]),
            mountpoints: mountpoints.iter().map(PathBuf::from).collect(),
            ask: true,
            statfs: Command::new(["df", "-k"]),
            answer_within: Duration::from_secs(5),
            dismount: Command::new(["umount", "-N"]),
        }
    }

    #[test]
    fn only_listed_mountpoints_are_probed() {
        let dead = dead(&["/usr/jails/jails-data", "/usr/jails/jails-system"]);
        let listed = "198.18.0.100:/store/jails-data\t/usr/jails/jails-data\tnfs\trw,nfsv4\t0\t0\n";
        assert_eq!(
            dead.mounted(listed),
            [PathBuf::from("/usr/jails/jails-data")]
        );
        assert!(dead.mounted("").is_empty());
    }

    #[test]
    fn commands_end_with_the_exact_mountpoint() {
        let dead = dead(&[]);
        let path = Path::new("/usr/jails/jails-data");
        assert_eq!(
            dead.statfs(path).argv,
            ["df", "-k", "/usr/jails/jails-data"]
        );
        assert_eq!(
            dead.dismount(path).argv,
            ["umount", "-N", "/usr/jails/jails-data"]
        );
    }
}
