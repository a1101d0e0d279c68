//! What `doctor` checks, built from the configuration alone, and how each
//! answer is read: pure, so every rule is tested here with the answers the
//! real tools give.
//!
//! The tools answer as on FreeBSD: `sysrc -n NAME` prints the value
//! (the rc.conf(5) files over `/etc/defaults/rc.conf`) and exits 0, or
//! prints `sysrc: unknown variable 'NAME'` and exits 1
//! (usr.sbin/sysrc/sysrc); `sysctl -n NAME` prints the value;
//! `pkg config NAME` prints it, or `pkg: No such configuration options:
//! NAME` and exits 70 (pkg src/config.c `exec_config`).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Finding;
use crate::auth::KeyFileError;
use crate::config::{
    is_link_local6, Config, EnvKind, InstanceAddresses, StorageKind, DEFAULT_EXPORTS_FILE,
};
use crate::fence::{WatchdogError, WatchdogKind};
use crate::runbook::stable_restart::{self, Links, Seen};
use crate::runbook::step::Command;

/// One check: its stable name (the first word after the verdict) and
/// where its answer comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The name printed after the verdict, e.g. `vrrp_interface` or
    /// `nfs_server_enable` (listed in `docs/operations.md`).
    pub name: &'static str,
    /// How the check is answered.
    pub subject: Subject,
}

/// How a [`Check`] is answered: by reading commands' output and files, by
/// the agent's own examination, or from the configuration alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// Commands to run and files to read; `rule` reads their answers, in
    /// the same order.
    Read {
        /// What to run or read, in the order `rule` expects the answers.
        sources: Vec<Source>,
        /// Turns the answers into the finding.
        rule: Rule,
    },
    /// Something the agent examines itself.
    Local(Local),
    /// Known from the configuration alone.
    Known(Finding),
}

/// Where an answer comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A read-only command, run like a runbook command.
    Command(Command),
    /// A file the agent reads itself.
    File(PathBuf),
}

impl Source {
    /// As an operator would type it, for messages.
    pub fn display(&self) -> String {
        match self {
            Source::Command(command) => command.display(),
            Source::File(path) => format!("cat {}", path.display()),
        }
    }
}

/// The answer to one [`Source`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The command ran to its end.
    Ran {
        /// Its exit status; `None` when a signal ended it.
        exit: Option<i32>,
        /// Standard output, as text (capped like a runbook command's).
        stdout: String,
        /// Standard error, as text (capped like a runbook command's).
        stderr: String,
    },
    /// The file's text.
    Text(String),
    /// The file does not exist.
    Missing,
    /// No answer: the command could not start or was killed at its
    /// timeout, the file could not be read.
    Failed(String),
}

/// How a [`Subject::Read`] check reads its answers. Each variant says
/// which sources it expects, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// [`sysrc -n nfsv4_server_enable`, `sysrc -n nfsv4_server_only`].
    /// FAIL unless either is YES: libexec/rc/rc.d/nfsd sets
    /// `vfs.nfsd.server_max_nfsvers=3` when `nfsv4_server_enable` is not
    /// YES and `nfsv4_server_only` is not YES, and libexec/rc/rc.d/mountd
    /// does the same when neither `nfsv4_server_only` nor
    /// `nfsv4_server_enable` is YES; the agent starts both with
    /// `onestart`, which still runs these precmds, so every follower's
    /// NFSv4 mount is refused. `v4_only` chooses the fix.
    NfsV4Server {
        /// `nfs.v4_only`: whether the fix names `nfsv4_server_only`
        /// rather than `nfsv4_server_enable`.
        v4_only: bool,
    },
    /// [`sysrc -n nfsv4_server_only`]. warn when it disagrees with
    /// `nfs.v4_only`: with `v4_only = true` but not `nfsv4_server_only`,
    /// rc.d/nfsd `force_depend`s rpcbind, which the agent then neither
    /// started nor stops; with `nfsv4_server_only=YES` but `v4_only =
    /// false`, rc.d/mountd sets `server_min_nfsvers=4` (NFSv3 clients are
    /// refused) while the master still runs rpcbind, statd and lockd for
    /// them. NFSv4 followers work either way.
    NfsV4Only {
        /// `nfs.v4_only`, which `nfsv4_server_only` should agree with.
        v4_only: bool,
    },
    /// [`sysrc -n mountd_flags`, `sysrc -n zfs_enable`]. FAIL unless
    /// mountd reads `exports_file`: usr.sbin/mountd/mountd.c reads the
    /// files named after its options (getopt `2deh:lnp:RrS`), or
    /// `/etc/exports` when none is named; libexec/rc/rc.d/mountd passes
    /// `$mountd_flags` and adds `/etc/exports /etc/zfs/exports` when
    /// `zfs_enable` is YES. An exports block mountd never reads exports
    /// nothing: every follower's mount is refused.
    MountdReadsExports {
        /// `nfs.exports_file`: the file mountd must be reading.
        exports_file: PathBuf,
    },
    /// [`sysrc -n VARIABLE`]. warn when YES: rc(8) starts the service at
    /// boot, on a node that may not hold the storage and before the
    /// election; only the agent starts it, on the master, after the
    /// storage and the exports. A candidate that boots with nfsd running
    /// looks to its start-up probe like a node holding the master's
    /// resources, and demotes before it may follow.
    ServiceDisabled {
        /// The rc.conf(5) variable, e.g. `nfs_server_enable` or
        /// `mountd_enable`.
        variable: &'static str,
    },
    /// [`sysrc -n nfsuserd_enable`]. warn unless YES: nfsuserd runs on
    /// every node. With nfsuserd on the master, the server refuses numeric
    /// owner strings (sys/fs/nfs/nfs_commonsubs.c `nfsv4_strtouid`, unless
    /// `vfs.nfsd.enable_stringtouid`), so a chown from a node without it
    /// fails, and that node shows the files' owners as nobody.
    NfsuserdEnabled,
    /// [`sysrc -n cbsd_workdir`]. FAIL unless it is `[cbsd] workdir`:
    /// CBSD's cbsd.conf takes its workdir from `cbsd_workdir` in
    /// /etc/rc.conf and every cbsd command exits "no workdir" without it;
    /// another one makes CBSD register and start environments in a
    /// directory the agent never mounts.
    CbsdWorkdir {
        /// `cbsd.workdir`: what `cbsd_workdir` must be.
        workdir: PathBuf,
    },
    /// [`<workdir>/nc.inventory`]. FAIL when it does not exist: CBSD's
    /// sudoexec/initenv writes it at the end of an initialisation and
    /// takes its presence as "already initialised" (`phase0`); without it
    /// every cbsd command of a runbook fails.
    CbsdInitialised {
        /// `cbsd.workdir`, in which `nc.inventory` is looked for.
        workdir: PathBuf,
    },
    /// [`<workdir>/nc.inventory`] (`zfsfeat="1"`, as initenv exports the
    /// `local` table with `sqlcli`). With `zfsfeat=1` CBSD creates bhyve
    /// disks as ZFS volumes of a local pool (share/bhyve/bhyve-dsk.subr:
    /// `imgtype="zvol"`) and jails as datasets: they stay on this node
    /// when the shared dirs move (CBSD's DFS notes: turn it off). FAIL
    /// when this node runs bhyve environments (`bhyve`: their names),
    /// warn otherwise.
    ZfsFeat {
        /// The bhyve VMs this node may run (`[environments] bhyve` names or
        /// globs, `[[environment]]`s listing it): any makes it a FAIL.
        bhyve: Vec<String>,
    },
    /// [`pkg config NFS_WITH_PROPER_LOCKING`]. CBSD's DFS notes ask for
    /// `NFS_WITH_PROPER_LOCKING = true;` in pkg.conf: pkg before 1.11
    /// locked its database on NFS with a lock directory that a crash
    /// leaves behind. pkg 1.11 (2017, commit 655ddffae "Consider locking
    /// is always functional") removed the key and always locks with
    /// fcntl(2): a pkg that does not know the key is ok. warn when pkg
    /// knows it and it is off.
    PkgNfsLocking,
    /// [`sysctl -n kern.hostid`] (ZFS storage). FAIL when 0: OpenZFS
    /// refuses to import a `multihost=on` pool on a node without a hostid
    /// (module/zfs/spa.c `spa_ld_load_vdev_metadata`: EREMOTEIO,
    /// `MMP_STATE_NO_HOSTID`), so the promote fails.
    HostId,
    /// [`sysrc -n watchdogd_enable`, `service watchdogd onestatus`] (with
    /// `[fence] watchdog`). FAIL when enabled or running: watchdogd(8)
    /// pats the same kernel watchdog with its own timeout (128 s by
    /// default) and disables it when it exits (usr.sbin/watchdogd
    /// `watchdog_loop`, `watchdog_onoff(0)`), so the reset comes far later
    /// than the agent plans, or never.
    Watchdogd {
        /// `fence.watchdog`: the device watchdogd(8) would pat too (named
        /// in the finding).
        device: PathBuf,
    },
}

/// What the agent examines itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    /// `[fence] watchdog`, through [`crate::fence::Watchdog::examine`]
    /// (never arms it: a Linux device is not even opened).
    Watchdog {
        /// `fence.watchdog`: the device or FIFO to examine.
        device: PathBuf,
        /// `fence.watchdog_timeout`: the countdown the agent would ask of it.
        timeout: Duration,
    },
    /// `[auth]`, through [`crate::auth::Keyring::load`]: the agent's own
    /// checks (a root-owned regular file, no group or other bits, a long
    /// enough key).
    KeyFiles {
        /// `auth.key_file`: the key this node signs with.
        key_file: PathBuf,
        /// `auth.accept_key_file`: a second key accepted during a rotation.
        accept_key_file: Option<PathBuf>,
    },
    /// `vrrp.interface`, through [`crate::net::iface::interface_index`].
    Interface(String),
    /// The interface of an IPv6 virtual router: IPv6 enabled there (Linux
    /// `disable_ipv6`, FreeBSD's `IFDISABLED` in `ifconfig IF`), and a
    /// link-local address of its own (the adverts' and NAs' source).
    Ipv6 {
        /// The interface of the IPv6 router.
        interface: String,
        /// Its virtual IPs (not a source).
        virtual_ips: Vec<Ipv6Addr>,
        /// Its configured `source_address`, if any.
        source: Option<Ipv6Addr>,
        /// `tools.ifconfig` (FreeBSD: read for `IFDISABLED`).
        ifconfig: PathBuf,
    },
    /// `nfs.stable_restart_dir`: what nfsd's stable restart paths are now
    /// (links into the dir, as on the master, or local files, as on the
    /// other nodes) and whether the storage they point into is mounted.
    StableRestart {
        /// nfsd's paths and the configured dir.
        links: Links,
        /// `storage.root` when it is a mount of its own (HAST, ZFS):
        /// links into it without it mounted lead to the root file system.
        mounted_root: Option<PathBuf>,
    },
    /// The control socket's directory must exist: the agent binds the
    /// socket at start and refuses to start when it cannot.
    SocketDirectory {
        /// `node.control_socket`; its parent directory is examined.
        socket: PathBuf,
    },
}

/// What a path turned out to be (for [`Local::SocketDirectory`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathState {
    /// It exists and is a directory.
    Directory,
    /// It exists but is something else (a file, a socket...).
    NotDirectory,
    /// stat(2) said it does not exist (`ENOENT`).
    Missing,
    /// stat(2) failed otherwise; the error's text (e.g. permission denied).
    Error(String),
}

/// The checks for this node's configuration, in the order printed.
pub fn build(config: &Config) -> Vec<Check> {
    let mut checks = vec![Check {
        name: "vrrp_interface",
        subject: Subject::Local(Local::Interface(config.vrrp.interface.clone())),
    }];
    // Each IPv6 virtual router's interface must run IPv6 and have a
    // link-local address: `run` cannot send an advert or an NA without.
    for instance in config.instances() {
        if let InstanceAddresses::V6 {
            virtual_ips,
            source_address,
        } = instance.addresses
        {
            checks.push(Check {
                name: "ipv6_link_local",
                subject: Subject::Local(Local::Ipv6 {
                    interface: instance.interface.to_owned(),
                    virtual_ips: virtual_ips.iter().map(|v| v.address).collect(),
                    source: source_address,
                    ifconfig: config.tools.ifconfig.clone(),
                }),
            });
        }
    }
    checks.extend([Check {
        name: "control_socket_dir",
        subject: Subject::Local(Local::SocketDirectory {
            socket: config.node.control_socket.clone(),
        }),
    }]);
    if let Some(auth) = &config.auth {
        checks.push(Check {
            name: "auth_key_files",
            subject: Subject::Local(Local::KeyFiles {
                key_file: auth.key_file.clone(),
                accept_key_file: auth.accept_key_file.clone(),
            }),
        });
    }
    checks.extend(fence_checks(config));
    checks.extend(cbsd_checks(config));
    if config.cbsd.is_some() && config.storage.is_some() {
        checks.extend(server_checks(config));
    }
    checks.extend(storage_checks(config));
    if let (Some(links), Some(storage), Some(_)) = (
        stable_restart::configured(config),
        &config.storage,
        &config.cbsd,
    ) {
        checks.push(Check {
            name: "nfs_stable_restart",
            subject: Subject::Local(Local::StableRestart {
                links,
                mounted_root: (storage.kind != StorageKind::None).then(|| storage.root.clone()),
            }),
        });
    }
    checks
}

fn tool(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `sysrc -n NAME`.
fn sysrc(config: &Config, name: &str) -> Source {
    Source::Command(Command::new([
        tool(&config.tools.sysrc),
        "-n".to_owned(),
        name.to_owned(),
    ]))
}

fn read(sources: Vec<Source>, rule: Rule) -> Subject {
    Subject::Read { sources, rule }
}

fn fence_checks(config: &Config) -> Vec<Check> {
    match &config.fence.watchdog {
        Some(watchdog) => vec![
            Check {
                name: "watchdog",
                subject: Subject::Local(Local::Watchdog {
                    device: watchdog.device.clone(),
                    timeout: watchdog.timeout,
                }),
            },
            Check {
                name: "watchdogd",
                subject: read(
                    vec![
                        sysrc(config, "watchdogd_enable"),
                        Source::Command(Command::new([
                            tool(&config.tools.service),
                            "watchdogd".to_owned(),
                            "onestatus".to_owned(),
                        ])),
                    ],
                    Rule::Watchdogd {
                        device: watchdog.device.clone(),
                    },
                ),
            },
        ],
        // The same words as `check-config`.
        None => match config.missing_watchdog_warning() {
            Some(warning) => vec![Check {
                name: "watchdog",
                subject: Subject::Known(Finding::warn(
                    warning,
                    format!(
                        "kldload ichwd (or the board's driver), then add [fence] watchdog = \"/dev/fido\" to {}",
                        config.path.display()
                    ),
                )),
            }],
            None => Vec::new(),
        },
    }
}

/// The nc.inventory CBSD's initenv writes at the top of the workdir.
fn inventory(workdir: &Path) -> PathBuf {
    workdir.join("nc.inventory")
}

fn cbsd_checks(config: &Config) -> Vec<Check> {
    let Some(cbsd) = &config.cbsd else {
        return Vec::new();
    };
    let workdir = cbsd.workdir.as_path();
    let dir_id = match &cbsd.dir_id {
        Some(id) => Finding::ok(format!("[cbsd] dir_id = {id:?}")),
        None => Finding::warn(
            format!(
                "[cbsd] dir_id is not set: promote and follow only check that {} exists and is not empty, so a wrong data set under the shared dirs goes unnoticed{}",
                cbsd.dir_id_file.display(),
                if config.follow.ride_through().is_some() {
                    " (and a follower riding through a master change cannot tell another storage by it)"
                } else {
                    ""
                }
            ),
            format!(
                "cat {} on the master, and set [cbsd] dir_id to it in {} on every node",
                config
                    .storage
                    .as_ref()
                    .map_or_else(|| cbsd.workdir.clone(), |s| s.root.clone())
                    .join(&cbsd.dir_id_file)
                    .display(),
                config.path.display()
            ),
        ),
    };
    vec![
        Check {
            name: "cbsd_workdir",
            subject: read(
                vec![sysrc(config, "cbsd_workdir")],
                Rule::CbsdWorkdir {
                    workdir: workdir.to_path_buf(),
                },
            ),
        },
        Check {
            name: "cbsd_initenv",
            subject: read(
                vec![Source::File(inventory(workdir))],
                Rule::CbsdInitialised {
                    workdir: workdir.to_path_buf(),
                },
            ),
        },
        Check {
            name: "cbsd_dir_id",
            subject: Subject::Known(dir_id),
        },
        Check {
            name: "cbsd_zfsfeat",
            subject: read(
                vec![Source::File(inventory(workdir))],
                Rule::ZfsFeat {
                    bhyve: bhyve_here(config),
                },
            ),
        },
        Check {
            name: "pkg_nfs_locking",
            subject: read(
                vec![Source::Command(Command::new([
                    tool(&config.tools.pkg),
                    "config".to_owned(),
                    "NFS_WITH_PROPER_LOCKING".to_owned(),
                ]))],
                Rule::PkgNfsLocking,
            ),
        },
        Check {
            name: "nfsuserd",
            subject: read(
                vec![sysrc(config, "nfsuserd_enable")],
                Rule::NfsuserdEnabled,
            ),
        },
    ]
}

/// The bhyve environments this node may run: its `[environments] bhyve`
/// patterns, or the `[[environment]]`s of kind bhyve that list it.
fn bhyve_here(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .environments
        .patterns
        .iter()
        .filter(|p| p.kind == EnvKind::Bhyve)
        .map(|p| p.pattern.clone())
        .collect();
    names.extend(
        config
            .placement
            .iter()
            .filter(|p| p.kind == EnvKind::Bhyve && p.preference(&config.node.name).is_some())
            .map(|p| p.name.clone()),
    );
    names
}

/// The rc.conf settings of the NFS server (master candidates only).
fn server_checks(config: &Config) -> Vec<Check> {
    let v4_only = config.nfs.v4_only;
    let mut checks = vec![
        Check {
            name: "nfsv4_server",
            subject: read(
                vec![
                    sysrc(config, "nfsv4_server_enable"),
                    sysrc(config, "nfsv4_server_only"),
                ],
                Rule::NfsV4Server { v4_only },
            ),
        },
        Check {
            name: "nfsv4_server_only",
            subject: read(
                vec![sysrc(config, "nfsv4_server_only")],
                Rule::NfsV4Only { v4_only },
            ),
        },
        Check {
            name: "mountd_exports",
            subject: read(
                vec![sysrc(config, "mountd_flags"), sysrc(config, "zfs_enable")],
                Rule::MountdReadsExports {
                    exports_file: config.nfs.exports_file.clone(),
                },
            ),
        },
    ];
    for variable in [
        "nfs_server_enable",
        "mountd_enable",
        "rpc_lockd_enable",
        "rpc_statd_enable",
    ] {
        checks.push(Check {
            name: variable,
            subject: read(
                vec![sysrc(config, variable)],
                Rule::ServiceDisabled { variable },
            ),
        });
    }
    checks
}

fn storage_checks(config: &Config) -> Vec<Check> {
    let Some(StorageKind::Zfs { .. }) = config.storage.as_ref().map(|s| &s.kind) else {
        return Vec::new();
    };
    vec![
        Check {
            name: "zfs_hostid",
            subject: read(
                vec![Source::Command(Command::new([
                    tool(&config.tools.sysctl),
                    "-n".to_owned(),
                    "kern.hostid".to_owned(),
                ]))],
                Rule::HostId,
            ),
        },
        // module/zfs/spa.c spa_activity_check_required: OpenZFS 2.2 (the
        // one of FreeBSD 14) skips the activity check for a pool whose
        // labels carry this node's own hostid; later releases only for a
        // cleanly exported one.
        Check {
            name: "zfs_hostid_unique",
            subject: Subject::Known(Finding::warn(
                "two candidates with one hostid defeat multihost=on (OpenZFS 2.2 imports a pool last written under its own hostid without watching it), and one node cannot see the others' hostids",
                "compare `sysctl -n kern.hostid` on every candidate; on a duplicate: uuidgen > /etc/hostid && service hostid onestart, then reboot",
            )),
        },
    ]
}

// ---- reading the answers ----------------------------------------------

/// An rc.conf(5) variable as `sysrc -n NAME` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RcVar {
    Set(String),
    /// Neither in the rc.conf files nor in /etc/defaults/rc.conf.
    Unset,
}

impl RcVar {
    /// rc.subr `checkyesno`: YES, TRUE, ON or 1 in any case; anything
    /// else (NO, an unset variable, a typo) is no.
    fn yes(&self) -> bool {
        match self {
            RcVar::Set(value) => ["yes", "true", "on", "1"]
                .iter()
                .any(|word| value.eq_ignore_ascii_case(word)),
            RcVar::Unset => false,
        }
    }

    fn shown(&self, name: &str) -> String {
        match self {
            RcVar::Set(value) => format!("{name}=\"{value}\""),
            RcVar::Unset => format!("{name} unset"),
        }
    }

    fn value(&self) -> &str {
        match self {
            RcVar::Set(value) => value,
            RcVar::Unset => "",
        }
    }
}

/// What an answer that is not one was, for messages.
fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Ran { exit, stderr, .. } => {
            let status = exit.map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
            match stderr.trim().lines().last() {
                Some(line) => format!("exited with {status} ({line})"),
                None => format!("exited with {status}"),
            }
        }
        Answer::Text(_) => "a file's text where a command's answer was expected".to_owned(),
        Answer::Missing => "no such file".to_owned(),
        Answer::Failed(why) => why.clone(),
    }
}

/// warn: the check could not be answered.
fn unanswered(source: &Source, why: &str) -> Finding {
    Finding::warn(
        format!("could not be checked: {why}"),
        format!(
            "run `{}` by hand, and check the tool's path in [tools]",
            source.display()
        ),
    )
}

/// An answer that is not an rc.conf variable's value (see [`describe`]).
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
struct NotAnRcVar<'a>(&'a Answer);

fn rc_var(answer: &Answer) -> Result<RcVar, NotAnRcVar<'_>> {
    match answer {
        Answer::Ran {
            exit: Some(0),
            stdout,
            ..
        } => Ok(RcVar::Set(stdout.trim().to_owned())),
        Answer::Ran {
            exit: Some(1),
            stderr,
            ..
        } if stderr.contains("unknown variable") => Ok(RcVar::Unset),
        other => Err(NotAnRcVar(other)),
    }
}

/// The files mountd reads given its flags: the words after its options
/// (usr.sbin/mountd/mountd.c, getopt "2deh:lnp:RrS": `-h` and `-p` take
/// an argument, attached or as the next word).
pub fn mountd_files(flags: &str) -> Vec<String> {
    let mut words = flags.split_whitespace();
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        let Some(options) = word.strip_prefix('-').filter(|o| !o.is_empty()) else {
            let mut files = vec![word.to_owned()];
            files.extend(words.map(str::to_owned));
            return files;
        };
        for (i, option) in options.char_indices() {
            if matches!(option, 'h' | 'p') {
                if options.len() == i + 1 {
                    // The argument is the next word.
                    words.next();
                }
                break;
            }
        }
    }
    words.map(str::to_owned).collect()
}

/// The value of `zfsfeat` in CBSD's nc.inventory (`zfsfeat="1"`), the
/// last assignment winning as when the shell sources it.
fn zfsfeat(inventory: &str) -> Option<String> {
    inventory
        .lines()
        .filter_map(|line| line.trim().strip_prefix("zfsfeat="))
        .map(|value| value.trim().trim_matches(['"', '\'']).to_owned())
        .next_back()
}

impl Rule {
    /// The finding of this rule given its sources and their answers (in
    /// the same order).
    pub fn read(&self, sources: &[Source], answers: &[&Answer]) -> Finding {
        if sources.len() != answers.len() {
            return Finding::warn(
                format!(
                    "internal error: {} answers for {} sources",
                    answers.len(),
                    sources.len()
                ),
                "report this as a bug",
            );
        }
        match self.read_answers(sources, answers) {
            Ok(finding) | Err(finding) => finding,
        }
    }

    fn read_answers(&self, sources: &[Source], answers: &[&Answer]) -> Result<Finding, Finding> {
        let var = |i: usize| -> Result<RcVar, Finding> {
            let (source, answer) = sources.get(i).zip(answers.get(i)).ok_or_else(|| {
                Finding::warn(
                    "internal error: a source is missing",
                    "report this as a bug",
                )
            })?;
            rc_var(answer).map_err(|why| unanswered(source, &why.to_string()))
        };
        let first = || -> Result<(&Source, &Answer), Finding> {
            sources
                .first()
                .zip(answers.first().copied())
                .ok_or_else(|| {
                    Finding::warn(
                        "internal error: a source is missing",
                        "report this as a bug",
                    )
                })
        };
        Ok(match self {
            Rule::NfsV4Server { v4_only } => {
                let (enable, only) = (var(0)?, var(1)?);
                if enable.yes() {
                    Finding::ok(enable.shown("nfsv4_server_enable"))
                } else if only.yes() {
                    Finding::ok(only.shown("nfsv4_server_only"))
                } else {
                    Finding::fail(
                        format!(
                            "{} and {}: rc.d/nfsd and rc.d/mountd cap the server at NFSv3 (vfs.nfsd.server_max_nfsvers=3) when the agent starts them, so every follower's NFSv4 mount fails",
                            enable.shown("nfsv4_server_enable"),
                            only.shown("nfsv4_server_only")
                        ),
                        if *v4_only {
                            "sysrc nfsv4_server_only=YES"
                        } else {
                            "sysrc nfsv4_server_enable=YES"
                        },
                    )
                }
            }
            Rule::NfsV4Only { v4_only } => {
                let only = var(0)?;
                match (*v4_only, only.yes()) {
                    (true, true) => Finding::ok(format!(
                        "{}, as nfs.v4_only = true",
                        only.shown("nfsv4_server_only")
                    )),
                    (false, false) => Finding::ok(format!(
                        "{}, as nfs.v4_only = false",
                        only.shown("nfsv4_server_only")
                    )),
                    (true, false) => Finding::warn(
                        format!(
                            "{} but nfs.v4_only = true: rc.d/nfsd then starts rpcbind itself (force_depend), which the agent neither started nor stops",
                            only.shown("nfsv4_server_only")
                        ),
                        "sysrc nfsv4_server_only=YES",
                    ),
                    (false, true) => Finding::warn(
                        format!(
                            "{} but nfs.v4_only = false: rc.d/mountd refuses NFSv3 (vfs.nfsd.server_min_nfsvers=4) while the master still runs rpcbind, statd and lockd for it",
                            only.shown("nfsv4_server_only")
                        ),
                        "sysrc nfsv4_server_only=NO (or set [nfs] v4_only = true)",
                    ),
                }
            }
            Rule::MountdReadsExports { exports_file } => {
                let (flags, zfs) = (var(0)?, var(1)?);
                let mut files = mountd_files(flags.value());
                if zfs.yes() {
                    // rc.d/mountd: rc_flags="${rc_flags} /etc/exports /etc/zfs/exports"
                    files.push(DEFAULT_EXPORTS_FILE.to_owned());
                    files.push("/etc/zfs/exports".to_owned());
                }
                if files.is_empty() {
                    files.push(DEFAULT_EXPORTS_FILE.to_owned());
                }
                let wanted = exports_file.to_string_lossy();
                if files.iter().any(|f| *f == wanted) {
                    Finding::ok(format!("mountd reads {}", files.join(" ")))
                } else {
                    let zfs_note = if zfs.yes() {
                        " with zfs_enable=YES"
                    } else {
                        ""
                    };
                    let mut words: Vec<&str> = flags.value().split_whitespace().collect();
                    words.push(&wanted);
                    Finding::fail(
                        format!(
                            "{}{zfs_note}: mountd reads {}, not {wanted}, so the agent's exports block is never loaded and every follower's mount is refused",
                            flags.shown("mountd_flags"),
                            files.join(" ")
                        ),
                        format!("sysrc mountd_flags=\"{}\"", words.join(" ")),
                    )
                }
            }
            Rule::ServiceDisabled { variable } => {
                let value = var(0)?;
                if value.yes() {
                    Finding::warn(
                        format!(
                            "{}: rc(8) starts it at boot, before the election and on a node that may not hold the storage; only the agent starts it, on the master",
                            value.shown(variable)
                        ),
                        format!("sysrc {variable}=NO"),
                    )
                } else {
                    Finding::ok(value.shown(variable))
                }
            }
            Rule::NfsuserdEnabled => {
                let value = var(0)?;
                if value.yes() {
                    Finding::ok(value.shown("nfsuserd_enable"))
                } else {
                    Finding::warn(
                        format!(
                            "{}: nfsuserd must run on every node; a master running it refuses numeric owner strings (nfs_commonsubs.c nfsv4_strtouid), so a chown from this node fails and files show up here as owned by nobody",
                            value.shown("nfsuserd_enable")
                        ),
                        "sysrc nfsuserd_enable=YES && service nfsuserd start",
                    )
                }
            }
            Rule::CbsdWorkdir { workdir } => {
                let value = var(0)?;
                let fix = format!("sysrc cbsd_workdir={}", workdir.display());
                match &value {
                    RcVar::Set(found)
                        if Path::new(found.trim_end_matches('/')) == workdir.as_path() =>
                    {
                        Finding::ok(value.shown("cbsd_workdir"))
                    }
                    RcVar::Set(found) if !found.is_empty() => Finding::fail(
                        format!(
                            "{}, not [cbsd] workdir {}: CBSD registers and starts environments under {found}, where the agent mounts nothing",
                            value.shown("cbsd_workdir"),
                            workdir.display()
                        ),
                        fix,
                    ),
                    _ => Finding::fail(
                        format!(
                            "{}: CBSD's cbsd.conf takes its workdir from it and every cbsd command exits \"no workdir\"",
                            value.shown("cbsd_workdir")
                        ),
                        fix,
                    ),
                }
            }
            Rule::CbsdInitialised { workdir } => {
                let (source, answer) = first()?;
                let path = inventory(workdir);
                match answer {
                    Answer::Text(_) => Finding::ok(format!(
                        "{} exists: CBSD's initenv ran",
                        path.display()
                    )),
                    Answer::Missing => Finding::fail(
                        format!(
                            "{} does not exist: {} is missing or CBSD's initenv never ran there, and every cbsd command of a runbook fails",
                            path.display(),
                            workdir.display()
                        ),
                        format!(
                            "env workdir={} /usr/local/cbsd/sudoexec/initenv",
                            workdir.display()
                        ),
                    ),
                    other => unanswered(source, &describe(other)),
                }
            }
            Rule::ZfsFeat { bhyve } => {
                let (source, answer) = first()?;
                let Answer::Text(text) = answer else {
                    return Ok(match answer {
                        Answer::Missing => Finding::warn(
                            "cannot tell: CBSD's nc.inventory does not exist (see cbsd_initenv)",
                            "initialise CBSD first (cbsd_initenv), then run doctor again",
                        ),
                        other => unanswered(source, &describe(other)),
                    });
                };
                let fix = "cbsd initenv-tui (set zfsfeat to 0 and save); move the disks of existing VMs off their zvols (CBSD's DFS notes)";
                match zfsfeat(text).as_deref() {
                    Some("1") if !bhyve.is_empty() => Finding::fail(
                        format!(
                            "zfsfeat=1: CBSD creates bhyve disks as ZFS volumes of this node's pool (bhyve-dsk.subr), which do not move with the shared dirs, and this node runs bhyve environments ({})",
                            bhyve.join(", ")
                        ),
                        fix,
                    ),
                    Some("1") => Finding::warn(
                        "zfsfeat=1: CBSD puts new jails on ZFS datasets and bhyve disks on ZFS volumes of this node's pool, which do not move with the shared dirs",
                        fix,
                    ),
                    Some(value) => Finding::ok(format!("zfsfeat={value}")),
                    None => Finding::ok("zfsfeat not set (0)"),
                }
            }
            Rule::PkgNfsLocking => {
                let (source, answer) = first()?;
                let fix = "echo 'NFS_WITH_PROPER_LOCKING = true;' >> /usr/local/etc/pkg.conf";
                match answer {
                    Answer::Ran {
                        exit: Some(0),
                        stdout,
                        ..
                    } => match stdout.trim() {
                        "yes" => Finding::ok("NFS_WITH_PROPER_LOCKING=yes"),
                        value => Finding::warn(
                            format!(
                                "NFS_WITH_PROPER_LOCKING={value}: this pkg (older than 1.11) locks its database on NFS with a lock directory that a crash leaves behind, and pkg then fails in the environments on the shared dirs"
                            ),
                            fix,
                        ),
                    },
                    Answer::Ran {
                        exit: Some(70),
                        stderr,
                        ..
                    } if stderr.contains("No such configuration option") => Finding::ok(
                        "pkg has no NFS_WITH_PROPER_LOCKING: since pkg 1.11 it always locks with fcntl(2), as the key asked",
                    ),
                    other => unanswered(source, &describe(other)),
                }
            }
            Rule::HostId => {
                let (source, answer) = first()?;
                let parsed = match answer {
                    Answer::Ran {
                        exit: Some(0),
                        stdout,
                        ..
                    } => stdout
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| format!("sysctl printed {:?}, not a number", stdout.trim())),
                    other => Err(describe(other)),
                };
                match parsed {
                    Ok(0) => Finding::fail(
                        "kern.hostid=0: OpenZFS refuses to import a multihost=on pool without a hostid, so the promote fails",
                        "service hostid onereset",
                    ),
                    Ok(id) => Finding::ok(format!("kern.hostid={id} (0x{id:08x})")),
                    Err(why) => unanswered(source, &why),
                }
            }
            Rule::Watchdogd { device } => {
                let enable = var(0)?;
                // rc.subr: `onestatus` exits 0 when it runs, 1 when not.
                let running = match sources.get(1).zip(answers.get(1)) {
                    Some((_, Answer::Ran { exit: Some(0), .. })) => true,
                    Some((_, Answer::Ran { exit: Some(1), .. })) => false,
                    Some((source, other)) => return Err(unanswered(source, &describe(other))),
                    None => {
                        return Err(Finding::warn(
                            "internal error: a source is missing",
                            "report this as a bug",
                        ))
                    }
                };
                if enable.yes() || running {
                    let state = match (enable.yes(), running) {
                        (true, true) => "enabled and running",
                        (true, false) => "enabled",
                        _ => "running",
                    };
                    Finding::fail(
                        format!(
                            "watchdogd is {state} ({}): it pats {} with its own timeout (128 s by default) and disables the watchdog when it exits, so the reset comes far later than the agent plans, or never",
                            enable.shown("watchdogd_enable"),
                            device.display()
                        ),
                        "sysrc watchdogd_enable=NO && service watchdogd onestop",
                    )
                } else {
                    Finding::ok(format!("{}, not running", enable.shown("watchdogd_enable")))
                }
            }
        })
    }
}

// ---- local examinations -------------------------------------------------

/// What [`crate::fence::Watchdog::examine`] said about `[fence] watchdog`.
pub fn watchdog_finding(
    device: &Path,
    examined: Result<(WatchdogKind, Duration), WatchdogError>,
) -> Finding {
    let driver =
        "kldload ichwd (or the board's driver: amdsbwd, ipmi, wbwd, itwd) && sysrc kld_list+=ichwd";
    match examined {
        Ok((kind, timeout)) => Finding::ok(format!(
            "{}: {kind} watchdog, effective timeout {}",
            device.display(),
            crate::config::format_duration(timeout)
        )),
        Err(error) => {
            let fix = match &error {
                WatchdogError::Stat { .. } | WatchdogError::NoDriver { .. } => driver.to_owned(),
                WatchdogError::NoReader { .. } => {
                    "start the FIFO's reader (the supervisor) before the agent".to_owned()
                }
                WatchdogError::Busy { .. } => {
                    "stop the other watchdog daemon (watchdog(8), systemd RuntimeWatchdogSec=)"
                        .to_owned()
                }
                WatchdogError::NotAWatchdog { .. } | WatchdogError::Unsupported { .. } => {
                    "set [fence] watchdog to the watchdog device (FreeBSD: /dev/fido)".to_owned()
                }
                WatchdogError::TimeoutTooShort { .. } | WatchdogError::TimeoutRefused { .. } => {
                    "raise [fence] watchdog_timeout".to_owned()
                }
                _ => "see the message; rcbsd-failover.toml(5), [fence]".to_owned(),
            };
            Finding::fail(format!("{error}: the agent refuses to start with it"), fix)
        }
    }
}

/// What [`crate::auth::Keyring::load`] said about the `[auth]` key files.
pub fn key_files_finding(loaded: Result<(), KeyFileError>) -> Finding {
    match loaded {
        Ok(()) => Finding::ok("root's, no group or other access, long enough"),
        Err(error) => {
            let fix = match &error {
                KeyFileError::NotOwnedByRoot { path, .. } => {
                    format!("chown root:wheel {}", path.display())
                }
                KeyFileError::AccessibleByOthers { path, .. } => {
                    format!("chmod 600 {}", path.display())
                }
                KeyFileError::TooShort { path, .. } | KeyFileError::TooLong { path } => format!(
                    "umask 077; openssl rand -hex 32 > {} (the same key on every node)",
                    path.display()
                ),
                KeyFileError::Open { path, .. }
                | KeyFileError::Read { path, .. }
                | KeyFileError::NotRegularFile { path } => format!(
                    "copy the cluster's key to {} (umask 077), or create one with `openssl rand -hex 32` and copy it to every node",
                    path.display()
                ),
            };
            Finding::fail(format!("{error}: the agent refuses to start with it"), fix)
        }
    }
}

/// Whether `vrrp.interface` exists (its index, or why not).
pub fn interface_finding(name: &str, index: Result<u32, crate::net::error::NetError>) -> Finding {
    match index {
        Ok(index) => Finding::ok(format!("{name} exists (index {index})")),
        // The fix says what to do: not the error's own hint as well.
        Err(crate::net::error::NetError::NoSuchInterface { errno, .. }) => Finding::fail(
            format!(
                "interface {name:?} not found ({errno}): the agent refuses to start without it"
            ),
            "set vrrp.interface to one of `ifconfig -l`",
        ),
        Err(error) => Finding::fail(
            format!("{error}: the agent refuses to start without it"),
            "set vrrp.interface to one of `ifconfig -l`",
        ),
    }
}

/// Whether FreeBSD's `ifconfig IF` output shows IPv6 disabled on the
/// interface: `IFDISABLED` among its `nd6 options=` flags (the
/// `ND6_IFF_IFDISABLED` bit, printed by sbin/ifconfig/af_nd6.c).
pub fn nd6_ifdisabled(ifconfig_output: &str) -> bool {
    ifconfig_output
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("nd6 options="))
        .any(|line| {
            line.split(['<', '>', ','])
                .any(|flag| flag.trim() == "IFDISABLED")
        })
}

/// An IPv6 router's interface: IPv6 enabled (`disabled`: `None` when it
/// could not be read), and a link-local address that is not a VIP
/// (`addresses`: the interface's IPv6 addresses); a configured `source`
/// must be on it.
pub fn ipv6_finding(
    interface: &str,
    disabled: Option<bool>,
    addresses: Result<Vec<(Ipv6Addr, u8)>, crate::net::error::NetError>,
    virtual_ips: &[Ipv6Addr],
    source: Option<Ipv6Addr>,
) -> Finding {
    let enable = format!(
        "FreeBSD: ifconfig {interface} inet6 -ifdisabled auto_linklocal (rc.conf: ifconfig_{interface}_ipv6=\"inet6 -ifdisabled auto_linklocal\"); Linux: sysctl -w net.ipv6.conf.{interface}.disable_ipv6=0"
    );
    let addresses = match addresses {
        Ok(addresses) => addresses,
        Err(error) => {
            return Finding::fail(
                format!("{error}: the agent refuses to start without it"),
                "set the IPv6 router's interface to one of `ifconfig -l`",
            )
        }
    };
    if disabled == Some(true) {
        return Finding::fail(
            format!("IPv6 VIP on an interface without IPv6: IPv6 is disabled on {interface}"),
            enable,
        );
    }
    if addresses.is_empty() {
        return Finding::fail(
            format!("IPv6 VIP on an interface without IPv6: {interface} has no IPv6 address"),
            enable,
        );
    }
    if let Some(source) = source {
        if !addresses.iter().any(|(a, _)| *a == source) {
            return Finding::fail(
                format!("source_address {source} is not an address of {interface}"),
                format!("set source_address to one of {interface}'s link-local addresses, or leave it out"),
            );
        }
    }
    let own = addresses
        .iter()
        .map(|(a, _)| *a)
        .find(|a| is_link_local6(*a) && !virtual_ips.contains(a));
    match own {
        Some(link_local) => Finding::ok(format!(
            "{interface} runs IPv6, link-local {link_local} (the adverts' and Neighbor Advertisements' source)"
        )),
        None => Finding::fail(
            format!(
                "missing link-local: {interface} has no link-local address of its own (fe80::/10, not a VIP); IPv6 adverts and Neighbor Advertisements are sent from it (RFC 5798 §5.1.2.1)"
            ),
            format!("FreeBSD: ifconfig {interface} inet6 auto_linklocal (rc.conf: ifconfig_{interface}_ipv6=\"inet6 auto_linklocal\"); Linux: ip link set {interface} addrgenmode eui64"),
        ),
    }
}

/// Whether the control socket's directory exists.
pub fn socket_directory_finding(socket: &Path, state: PathState) -> Finding {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let refuses = format!(
        "the agent cannot bind its control socket {} and refuses to start",
        socket.display()
    );
    match state {
        PathState::Directory => Finding::ok(format!("{} exists", dir.display())),
        PathState::Missing => Finding::fail(
            format!("{} does not exist: {refuses}", dir.display()),
            format!("mkdir -p {}", dir.display()),
        ),
        PathState::NotDirectory => Finding::fail(
            format!("{} is not a directory: {refuses}", dir.display()),
            "set node.control_socket to a path in an existing directory",
        ),
        PathState::Error(error) => Finding::fail(
            format!("{}: {error}: {refuses}", dir.display()),
            "set node.control_socket to a path in a directory root can use",
        ),
    }
}

/// What one of nfsd's stable restart paths was found to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StableRestartSeen {
    /// nfsd's path (`/var/db/nfs-stablerestart`, `.bak`).
    pub path: PathBuf,
    /// What it is.
    pub seen: Seen,
    /// Whether a local file moved aside by promote (`<path>.rcbsd-local`) exists.
    pub aside: bool,
}

/// `nfs_stable_restart`: links into the dir (the master's layout) or
/// local files (every other node's), nothing else; `storage_mounted`:
/// whether `storage.root` is a mount now (`None`: not a mount of its own,
/// storage kind none).
pub fn stable_restart_finding(
    links: &Links,
    seen: &[StableRestartSeen],
    storage_mounted: Option<bool>,
) -> Finding {
    let dir = links.dir.display();
    for file in seen {
        let path = file.path.display();
        match &file.seen {
            Seen::Link(to) if *to != links.target(&file.path) => {
                return Finding::fail(
                    format!(
                        "{path} links to {}, not into {dir}: promote refuses to replace it (nfsd's records must move with the storage)",
                        to.display()
                    ),
                    format!("rm {path} (or move it away); the next promote links it into {dir}"),
                )
            }
            Seen::Other => {
                return Finding::fail(
                    format!("{path} is neither a file nor a link: nfsd cannot open it and exits at start (usr.sbin/nfsd/nfsd.c open_stable)"),
                    format!("move {path} away"),
                )
            }
            Seen::Local | Seen::Missing if file.aside => {
                let aside = Links::aside(&file.path);
                return Finding::warn(
                    format!(
                        "both {path} and {} exist: the next promote refuses to move the first aside",
                        aside.display()
                    ),
                    format!("keep the one with this node's records as {path} and remove the other"),
                );
            }
            _ => {}
        }
    }
    let linked = seen
        .iter()
        .filter(|f| matches!(f.seen, Seen::Link(_)))
        .count();
    if linked == 0 {
        return Finding::ok(format!(
            "local files, as on a node that is not master (promote links them into {dir})"
        ));
    }
    if linked < seen.len() {
        return Finding::warn(
            format!("only some of nfsd's stable restart files link into {dir}: a promote or demote stopped half way"),
            "the next promote completes the links, the next demote restores the local files",
        );
    }
    match storage_mounted {
        Some(false) => Finding::warn(
            format!("nfsd's stable restart files link into {dir} but storage.root is not mounted: left by a master that did not demote (a crash?); nfsd started by hand now would keep its records on the root file system"),
            "the next promote mounts the storage first; by hand: rm the links and move the .rcbsd-local files back",
        ),
        _ => Finding::ok(format!("links into {dir}, as on the master")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_with_hostname;
    use crate::doctor::Verdict;

    const BASE: &str = r#"
[node]
name = "node1"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["192.168.10.200/24"]
"#;

    const CANDIDATE: &str = r#"
[cbsd]
workdir = "/usr/jails"
[storage]
kind = "hast"
resource = "cbsd"
root = "/store"
[nfs]
export_network = "192.168.10.0/24"
"#;

    fn config(extra: &str) -> Config {
        let text = format!("{BASE}{extra}");
        parse_with_hostname(&text, Path::new("/usr/local/etc/rcbsd-failover.toml"), None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn names(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().map(|c| c.name).collect()
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {:?}", names(checks)))
    }

    fn printed(value: &str) -> Answer {
        Answer::Ran {
            exit: Some(0),
            stdout: format!("{value}\n"),
            stderr: String::new(),
        }
    }

    /// `sysrc -n NAME` of a variable set nowhere.
    fn unknown(name: &str) -> Answer {
        Answer::Ran {
            exit: Some(1),
            stdout: String::new(),
            stderr: format!("sysrc: unknown variable '{name}'\n"),
        }
    }

    fn exited(code: i32) -> Answer {
        Answer::Ran {
            exit: Some(code),
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// The finding of the named check given its answers.
    fn read(checks: &[Check], name: &str, answers: &[Answer]) -> Finding {
        let Subject::Read { sources, rule } = &check(checks, name).subject else {
            panic!("{name} reads no answers");
        };
        let refs: Vec<&Answer> = answers.iter().collect();
        rule.read(sources, &refs)
    }

    fn argvs(checks: &[Check], name: &str) -> Vec<String> {
        let Subject::Read { sources, .. } = &check(checks, name).subject else {
            panic!("{name} reads no answers");
        };
        sources.iter().map(Source::display).collect()
    }

    fn assert_finding(finding: &Finding, verdict: Verdict, found: &str, fix: Option<&str>) {
        assert_eq!(finding.verdict, verdict, "{finding:?}");
        assert!(finding.found.contains(found), "{finding:?} lacks {found:?}");
        match fix {
            Some(fix) => assert_eq!(finding.fix.as_deref(), Some(fix), "{finding:?}"),
            None => assert_eq!(finding.fix, None, "{finding:?}"),
        }
    }

    #[test]
    fn a_plain_vrrp_node_checks_only_what_it_uses() {
        let checks = build(&config(""));
        assert_eq!(names(&checks), ["vrrp_interface", "control_socket_dir"]);
    }

    #[test]
    fn a_follower_gets_the_cbsd_checks_but_not_the_servers() {
        let checks = build(&config("[cbsd]\nworkdir = \"/usr/jails\"\n"));
        assert_eq!(
            names(&checks),
            [
                "vrrp_interface",
                "control_socket_dir",
                "cbsd_workdir",
                "cbsd_initenv",
                "cbsd_dir_id",
                "cbsd_zfsfeat",
                "pkg_nfs_locking",
                "nfsuserd"
            ]
        );
    }

    #[test]
    fn a_candidate_gets_the_nfs_server_checks_and_zfs_the_hostid() {
        let hast = build(&config(CANDIDATE));
        for name in [
            "nfsv4_server",
            "nfsv4_server_only",
            "mountd_exports",
            "nfs_server_enable",
            "mountd_enable",
            "rpc_lockd_enable",
            "rpc_statd_enable",
            "watchdog",
        ] {
            check(&hast, name);
        }
        assert!(!names(&hast).contains(&"zfs_hostid"));
        let zfs = build(&config(&CANDIDATE.replace(
            "kind = \"hast\"\nresource = \"cbsd\"",
            "kind = \"zfs\"\npool = \"tank\"",
        )));
        assert_eq!(argvs(&zfs, "zfs_hostid"), ["/sbin/sysctl -n kern.hostid"]);
        let unique = &check(&zfs, "zfs_hostid_unique").subject;
        let Subject::Known(finding) = unique else {
            panic!("{unique:?}");
        };
        assert_finding(
            finding,
            Verdict::Warn,
            "one hostid",
            Some("compare `sysctl -n kern.hostid` on every candidate; on a duplicate: uuidgen > /etc/hostid && service hostid onestart, then reboot"),
        );
    }

    #[test]
    fn commands_come_from_tools_as_argv() {
        let checks = build(&config(&format!(
            "{CANDIDATE}[tools]\nsysrc = \"/opt/bin/sysrc\"\npkg = \"/opt/bin/pkg\"\n"
        )));
        assert_eq!(
            argvs(&checks, "nfsv4_server"),
            [
                "/opt/bin/sysrc -n nfsv4_server_enable",
                "/opt/bin/sysrc -n nfsv4_server_only"
            ]
        );
        assert_eq!(
            argvs(&checks, "pkg_nfs_locking"),
            ["/opt/bin/pkg config NFS_WITH_PROPER_LOCKING"]
        );
        assert_eq!(
            argvs(&checks, "cbsd_initenv"),
            ["cat /usr/jails/nc.inventory"]
        );
    }

    #[test]
    fn nfsv4_server_needs_either_variable() {
        let checks = build(&config(CANDIDATE));
        let ok = read(&checks, "nfsv4_server", &[printed("YES"), printed("NO")]);
        assert_finding(&ok, Verdict::Ok, "nfsv4_server_enable=\"YES\"", None);
        // rc.subr checkyesno: any case.
        let only = read(&checks, "nfsv4_server", &[printed("NO"), printed("yes")]);
        assert_finding(&only, Verdict::Ok, "nfsv4_server_only=\"yes\"", None);
        // Older defaults/rc.conf do not know nfsv4_server_only.
        let capped = read(
            &checks,
            "nfsv4_server",
            &[printed("NO"), unknown("nfsv4_server_only")],
        );
        assert_finding(
            &capped,
            Verdict::Fail,
            "nfsv4_server_enable=\"NO\" and nfsv4_server_only unset: rc.d/nfsd and rc.d/mountd cap the server at NFSv3",
            Some("sysrc nfsv4_server_enable=YES"),
        );
        let v4 = build(&config(&format!("{CANDIDATE}v4_only = true\n")));
        let capped = read(&v4, "nfsv4_server", &[printed("NO"), printed("NO")]);
        assert_eq!(capped.fix.as_deref(), Some("sysrc nfsv4_server_only=YES"));
    }

    #[test]
    fn nfsv4_server_only_must_match_v4_only() {
        let full = build(&config(CANDIDATE));
        assert_finding(
            &read(&full, "nfsv4_server_only", &[printed("NO")]),
            Verdict::Ok,
            "as nfs.v4_only = false",
            None,
        );
        assert_finding(
            &read(&full, "nfsv4_server_only", &[printed("YES")]),
            Verdict::Warn,
            "server_min_nfsvers=4",
            Some("sysrc nfsv4_server_only=NO (or set [nfs] v4_only = true)"),
        );
        let v4 = build(&config(&format!("{CANDIDATE}v4_only = true\n")));
        assert_finding(
            &read(&v4, "nfsv4_server_only", &[unknown("nfsv4_server_only")]),
            Verdict::Warn,
            "force_depend",
            Some("sysrc nfsv4_server_only=YES"),
        );
        assert_finding(
            &read(&v4, "nfsv4_server_only", &[printed("YES")]),
            Verdict::Ok,
            "as nfs.v4_only = true",
            None,
        );
    }

    #[test]
    fn mountd_must_read_the_exports_file() {
        let default = build(&config(CANDIDATE));
        assert_finding(
            &read(
                &default,
                "mountd_exports",
                &[printed("-r -S"), printed("NO")],
            ),
            Verdict::Ok,
            "mountd reads /etc/exports",
            None,
        );
        // Naming another file stops mountd from reading /etc/exports...
        assert_finding(
            &read(
                &default,
                "mountd_exports",
                &[printed("-r -S /etc/exports.local"), printed("NO")],
            ),
            Verdict::Fail,
            "mountd reads /etc/exports.local, not /etc/exports",
            Some("sysrc mountd_flags=\"-r -S /etc/exports.local /etc/exports\""),
        );
        // ...unless rc.d/mountd adds it for ZFS.
        assert_finding(
            &read(
                &default,
                "mountd_exports",
                &[printed("-r -S /etc/exports.local"), printed("YES")],
            ),
            Verdict::Ok,
            "mountd reads /etc/exports.local /etc/exports /etc/zfs/exports",
            None,
        );
        let custom = build(&config(&format!(
            "{CANDIDATE}exports_file = \"/var/db/rcbsd/exports\"\n"
        )));
        assert_finding(
            &read(&custom, "mountd_exports", &[printed("-r -S"), unknown("zfs_enable")]),
            Verdict::Fail,
            "mountd_flags=\"-r -S\": mountd reads /etc/exports, not /var/db/rcbsd/exports, so the agent's exports block is never loaded",
            Some("sysrc mountd_flags=\"-r -S /var/db/rcbsd/exports\""),
        );
        assert_finding(
            &read(
                &custom,
                "mountd_exports",
                &[
                    printed("-r -S -p 4046 /var/db/rcbsd/exports"),
                    printed("NO"),
                ],
            ),
            Verdict::Ok,
            "mountd reads /var/db/rcbsd/exports",
            None,
        );
    }

    #[test]
    fn mountd_options_with_arguments_are_not_files() {
        assert_eq!(mountd_files("-r -S"), Vec::<String>::new());
        assert_eq!(mountd_files("-h 10.0.0.1 -p 4046 -r"), Vec::<String>::new());
        assert_eq!(mountd_files("-p4046 -rS /a /b"), ["/a", "/b"]);
        assert_eq!(mountd_files("-rh 10.0.0.1 /a"), ["/a"]);
        assert_eq!(
            mountd_files("-r /a -S"),
            ["/a", "-S"],
            "getopt stops at a file"
        );
        assert_eq!(mountd_files("-- -weird"), ["-weird"]);
        assert_eq!(mountd_files(""), Vec::<String>::new());
    }

    #[test]
    fn nfs_server_services_must_stay_disabled() {
        let checks = build(&config(CANDIDATE));
        for name in [
            "nfs_server_enable",
            "mountd_enable",
            "rpc_lockd_enable",
            "rpc_statd_enable",
        ] {
            assert_eq!(argvs(&checks, name), [format!("/usr/sbin/sysrc -n {name}")]);
            assert_finding(
                &read(&checks, name, &[printed("NO")]),
                Verdict::Ok,
                &format!("{name}=\"NO\""),
                None,
            );
            assert_finding(
                &read(&checks, name, &[printed("YES")]),
                Verdict::Warn,
                "rc(8) starts it at boot",
                Some(&format!("sysrc {name}=NO")),
            );
        }
    }

    #[test]
    fn nfsuserd_must_be_enabled_everywhere() {
        let checks = build(&config("[cbsd]\n"));
        assert_finding(
            &read(&checks, "nfsuserd", &[printed("YES")]),
            Verdict::Ok,
            "nfsuserd_enable=\"YES\"",
            None,
        );
        assert_finding(
            &read(&checks, "nfsuserd", &[printed("NO")]),
            Verdict::Warn,
            "nfsv4_strtouid",
            Some("sysrc nfsuserd_enable=YES && service nfsuserd start"),
        );
    }

    #[test]
    fn cbsd_workdir_must_be_the_configured_one() {
        let checks = build(&config("[cbsd]\nworkdir = \"/usr/jails\"\n"));
        let fix = Some("sysrc cbsd_workdir=/usr/jails");
        assert_finding(
            &read(&checks, "cbsd_workdir", &[printed("/usr/jails/")]),
            Verdict::Ok,
            "cbsd_workdir=\"/usr/jails/\"",
            None,
        );
        assert_finding(
            &read(&checks, "cbsd_workdir", &[printed("/jails")]),
            Verdict::Fail,
            "not [cbsd] workdir /usr/jails",
            fix,
        );
        assert_finding(
            &read(&checks, "cbsd_workdir", &[unknown("cbsd_workdir")]),
            Verdict::Fail,
            "no workdir",
            fix,
        );
    }

    #[test]
    fn cbsd_must_be_initialised() {
        let checks = build(&config("[cbsd]\nworkdir = \"/usr/jails\"\n"));
        assert_finding(
            &read(
                &checks,
                "cbsd_initenv",
                &[Answer::Text("zfsfeat=\"0\"\n".into())],
            ),
            Verdict::Ok,
            "initenv ran",
            None,
        );
        assert_finding(
            &read(&checks, "cbsd_initenv", &[Answer::Missing]),
            Verdict::Fail,
            "/usr/jails/nc.inventory does not exist",
            Some("env workdir=/usr/jails /usr/local/cbsd/sudoexec/initenv"),
        );
    }

    #[test]
    fn zfsfeat_fails_only_where_bhyve_runs() {
        let inventory =
            |value: &str| Answer::Text(format!("workdir=\"/usr/jails\"\nzfsfeat=\"{value}\"\n"));
        let jails = build(&config("[cbsd]\n[environments]\njails = [\"web1\"]\n"));
        assert_finding(
            &read(&jails, "cbsd_zfsfeat", &[inventory("0")]),
            Verdict::Ok,
            "zfsfeat=0",
            None,
        );
        let warned = read(&jails, "cbsd_zfsfeat", &[inventory("1")]);
        assert_finding(&warned, Verdict::Warn, "zfsfeat=1", warned.fix.as_deref());
        assert!(
            warned
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("initenv-tui")),
            "{warned:?}"
        );
        let vms = build(&config("[cbsd]\n[environments]\nbhyve = [\"vm1\"]\n"));
        let failed = read(&vms, "cbsd_zfsfeat", &[inventory("1")]);
        assert_finding(
            &failed,
            Verdict::Fail,
            "bhyve environments (vm1)",
            failed.fix.as_deref(),
        );
        assert_eq!(
            read(&vms, "cbsd_zfsfeat", &[Answer::Missing]).verdict,
            Verdict::Warn
        );
    }

    #[test]
    fn placed_bhyve_environments_count_only_on_their_nodes() {
        let cluster = r#"
[cluster]
nodes = [
  { name = "node1", address = "192.168.10.201" },
  { name = "node2", address = "192.168.10.202" },
  { name = "node3", address = "192.168.10.203" },
]
[[environment]]
name = "vm1"
kind = "bhyve"
nodes = ["node2", "node1"]
[[environment]]
name = "vm2"
kind = "bhyve"
nodes = ["node3"]
"#;
        let config = config(&format!("[cbsd]\n{cluster}"));
        assert_eq!(bhyve_here(&config), ["vm1"]);
    }

    #[test]
    fn pkg_locking_is_only_asked_of_a_pkg_that_knows_the_key() {
        let checks = build(&config("[cbsd]\n"));
        let modern = Answer::Ran {
            exit: Some(70),
            stdout: String::new(),
            stderr: "pkg: No such configuration options: NFS_WITH_PROPER_LOCKING\n".into(),
        };
        assert_finding(
            &read(&checks, "pkg_nfs_locking", &[modern]),
            Verdict::Ok,
            "since pkg 1.11",
            None,
        );
        assert_finding(
            &read(&checks, "pkg_nfs_locking", &[printed("yes")]),
            Verdict::Ok,
            "NFS_WITH_PROPER_LOCKING=yes",
            None,
        );
        assert_finding(
            &read(&checks, "pkg_nfs_locking", &[printed("no")]),
            Verdict::Warn,
            "lock directory",
            Some("echo 'NFS_WITH_PROPER_LOCKING = true;' >> /usr/local/etc/pkg.conf"),
        );
    }

    #[test]
    fn a_zero_hostid_fails_a_zfs_candidate() {
        let zfs = build(&config(&CANDIDATE.replace(
            "kind = \"hast\"\nresource = \"cbsd\"",
            "kind = \"zfs\"\npool = \"tank\"",
        )));
        assert_finding(
            &read(&zfs, "zfs_hostid", &[printed("2874498311")]),
            Verdict::Ok,
            "kern.hostid=2874498311 (0xab555d07)",
            None,
        );
        assert_finding(
            &read(&zfs, "zfs_hostid", &[printed("0")]),
            Verdict::Fail,
            "kern.hostid=0",
            Some("service hostid onereset"),
        );
        assert_eq!(
            read(&zfs, "zfs_hostid", &[printed("zero")]).verdict,
            Verdict::Warn
        );
    }

    #[test]
    fn watchdogd_must_be_neither_enabled_nor_running() {
        let checks = build(&config("[fence]\nwatchdog = \"/dev/fido\"\n"));
        assert_eq!(
            argvs(&checks, "watchdogd"),
            [
                "/usr/sbin/sysrc -n watchdogd_enable",
                "/usr/sbin/service watchdogd onestatus"
            ]
        );
        let fix = Some("sysrc watchdogd_enable=NO && service watchdogd onestop");
        assert_finding(
            &read(&checks, "watchdogd", &[printed("NO"), exited(1)]),
            Verdict::Ok,
            "not running",
            None,
        );
        assert_finding(
            &read(&checks, "watchdogd", &[printed("YES"), exited(1)]),
            Verdict::Fail,
            "watchdogd is enabled",
            fix,
        );
        assert_finding(
            &read(&checks, "watchdogd", &[printed("NO"), exited(0)]),
            Verdict::Fail,
            "watchdogd is running",
            fix,
        );
    }

    #[test]
    fn a_storage_mover_without_a_watchdog_gets_check_configs_warning() {
        let config = config(CANDIDATE);
        let checks = build(&config);
        let Subject::Known(finding) = &check(&checks, "watchdog").subject else {
            panic!("the missing watchdog is known from the configuration");
        };
        assert_eq!(finding.verdict, Verdict::Warn);
        assert_eq!(Some(&finding.found), config.warnings().first());
        let none = build(&self::config(
            &CANDIDATE.replace("kind = \"hast\"\nresource = \"cbsd\"", "kind = \"none\""),
        ));
        assert!(
            !names(&none).contains(&"watchdog"),
            "storage none moves no disk"
        );
    }

    #[test]
    fn an_unanswered_command_is_a_warning_naming_it() {
        let checks = build(&config(CANDIDATE));
        let finding = read(
            &checks,
            "nfsv4_server",
            &[
                Answer::Failed(
                    "/usr/sbin/sysrc -n nfsv4_server_enable: no answer within 10s, killed".into(),
                ),
                printed("NO"),
            ],
        );
        assert_finding(
            &finding,
            Verdict::Warn,
            "could not be checked: /usr/sbin/sysrc -n nfsv4_server_enable: no answer within 10s",
            Some("run `/usr/sbin/sysrc -n nfsv4_server_enable` by hand, and check the tool's path in [tools]"),
        );
        let odd = read(
            &checks,
            "nfs_server_enable",
            &[Answer::Ran {
                exit: Some(2),
                stdout: String::new(),
                stderr: "sysrc: /etc/rc.conf: syntax error\n".into(),
            }],
        );
        assert_finding(
            &odd,
            Verdict::Warn,
            "exited with status 2 (sysrc: /etc/rc.conf: syntax error)",
            odd.fix.as_deref(),
        );
    }

    #[test]
    fn dir_id_unset_is_a_warning() {
        let unset = build(&config("[cbsd]\n"));
        let Subject::Known(finding) = &check(&unset, "cbsd_dir_id").subject else {
            panic!();
        };
        assert_eq!(finding.verdict, Verdict::Warn);
        assert!(finding.found.contains("jails-data/dir.id"), "{finding:?}");
        let set = build(&config("[cbsd]\ndir_id = \"abc\"\n"));
        let Subject::Known(finding) = &check(&set, "cbsd_dir_id").subject else {
            panic!();
        };
        assert_eq!(finding.verdict, Verdict::Ok);
    }

    #[test]
    fn local_findings_say_what_fixes_them() {
        let missing = watchdog_finding(
            Path::new("/dev/fido"),
            Err(WatchdogError::Stat {
                path: "/dev/fido".into(),
                error: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
        );
        assert_eq!(missing.verdict, Verdict::Fail);
        assert!(missing
            .fix
            .as_deref()
            .is_some_and(|f| f.starts_with("kldload ichwd")));
        let fine = watchdog_finding(
            Path::new("/dev/fido"),
            Ok((WatchdogKind::FreeBsd, Duration::from_millis(1073))),
        );
        assert_finding(
            &fine,
            Verdict::Ok,
            "freebsd watchdog, effective timeout",
            None,
        );

        let open = key_files_finding(Err(KeyFileError::AccessibleByOthers {
            path: "/k".into(),
            mode: 0o644,
        }));
        assert_finding(&open, Verdict::Fail, "mode 0644", Some("chmod 600 /k"));
        let owner = key_files_finding(Err(KeyFileError::NotOwnedByRoot {
            path: "/k".into(),
            uid: 1001,
        }));
        assert_eq!(owner.fix.as_deref(), Some("chown root:wheel /k"));
        assert_eq!(key_files_finding(Ok(())).verdict, Verdict::Ok);

        assert_finding(
            &interface_finding(
                "em9",
                Err(crate::net::error::NetError::NoSuchInterface {
                    interface: "em9".into(),
                    errno: nix::Error::ENODEV,
                }),
            ),
            Verdict::Fail,
            "em9",
            Some("set vrrp.interface to one of `ifconfig -l`"),
        );
        // One hint, the fix: not the error's own as well.
        let missing = interface_finding(
            "em9",
            Err(crate::net::error::NetError::NoSuchInterface {
                interface: "em9".into(),
                errno: nix::Error::ENODEV,
            }),
        );
        assert!(
            !missing.found.contains("check the name"),
            "{}",
            missing.found
        );
        assert_eq!(interface_finding("em0", Ok(1)).verdict, Verdict::Ok);

        let socket = Path::new("/var/run/rcbsd/agent.sock");
        assert_finding(
            &socket_directory_finding(socket, PathState::Missing),
            Verdict::Fail,
            "/var/run/rcbsd does not exist",
            Some("mkdir -p /var/run/rcbsd"),
        );
        assert_eq!(
            socket_directory_finding(socket, PathState::NotDirectory).verdict,
            Verdict::Fail
        );
        assert_eq!(
            socket_directory_finding(socket, PathState::Directory).verdict,
            Verdict::Ok
        );
    }

    fn stable_links() -> Links {
        Links {
            dir: PathBuf::from("/store/.nfs-stablerestart"),
            files: vec![
                PathBuf::from("/var/db/nfs-stablerestart"),
                PathBuf::from("/var/db/nfs-stablerestart.bak"),
            ],
        }
    }

    fn seen(both: [Seen; 2], aside: bool) -> Vec<StableRestartSeen> {
        stable_links()
            .files
            .into_iter()
            .zip(both)
            .map(|(path, seen)| StableRestartSeen { path, seen, aside })
            .collect()
    }

    #[test]
    fn stable_restart_is_checked_only_when_configured_on_a_master_candidate() {
        let names = |extra: &str| -> Vec<&'static str> {
            let text = format!("{BASE}[cbsd]\n[storage]\nkind = \"zfs\"\npool = \"tank\"\n[nfs]\nexport_network = \"192.168.10.0/24\"\n{extra}");
            let config = parse_with_hostname(&text, Path::new("/x.toml"), None)
                .unwrap_or_else(|e| panic!("{e}"));
            build(&config).iter().map(|c| c.name).collect()
        };
        assert!(!names("").contains(&"nfs_stable_restart"));
        assert!(
            names("stable_restart_dir = \"/store/.nfs-stablerestart\"\n")
                .contains(&"nfs_stable_restart")
        );
    }

    #[test]
    fn stable_restart_links_or_local_files_are_ok_anything_else_is_not() {
        let links = stable_links();
        let to = |name: &str| Seen::Link(links.dir.join(name));
        let master = seen(
            [to("nfs-stablerestart"), to("nfs-stablerestart.bak")],
            false,
        );
        assert_eq!(
            stable_restart_finding(&links, &master, Some(true)).verdict,
            Verdict::Ok
        );
        assert_eq!(
            stable_restart_finding(&links, &master, None).verdict,
            Verdict::Ok
        );
        let left = stable_restart_finding(&links, &master, Some(false));
        assert_eq!(left.verdict, Verdict::Warn);
        assert!(left.found.contains("not mounted"), "{left:?}");
        let backup = seen([Seen::Local, Seen::Missing], false);
        assert_eq!(
            stable_restart_finding(&links, &backup, Some(false)).verdict,
            Verdict::Ok
        );
        let half = seen([to("nfs-stablerestart"), Seen::Local], false);
        assert_eq!(
            stable_restart_finding(&links, &half, Some(true)).verdict,
            Verdict::Warn
        );
        let elsewhere = seen([Seen::Link(PathBuf::from("/tmp/x")), Seen::Local], false);
        let finding = stable_restart_finding(&links, &elsewhere, Some(true));
        assert_eq!(finding.verdict, Verdict::Fail);
        assert!(finding.found.contains("/tmp/x"), "{finding:?}");
        let dir = seen([Seen::Other, Seen::Local], false);
        assert_eq!(
            stable_restart_finding(&links, &dir, Some(true)).verdict,
            Verdict::Fail
        );
        let both = seen([Seen::Local, Seen::Local], true);
        let finding = stable_restart_finding(&links, &both, Some(false));
        assert_eq!(finding.verdict, Verdict::Warn);
        assert!(finding.found.contains(".rcbsd-local"), "{finding:?}");
    }

    #[test]
    fn each_ipv6_router_gets_an_ipv6_link_local_check_on_its_interface() {
        assert!(!names(&build(&config(""))).contains(&"ipv6_link_local"));
        let checks = build(&config(
            "[vrrp6]\ninterface = \"em1\"\nvrid = 52\nvirtual_ips = [\"fe80::52/64\", \"2001:db8::52/64\"]\nsource_address = \"fe80::2\"\n",
        ));
        assert_eq!(
            names(&checks)[..3],
            ["vrrp_interface", "ipv6_link_local", "control_socket_dir"]
        );
        let Subject::Local(Local::Ipv6 {
            interface,
            virtual_ips,
            source,
            ifconfig,
        }) = &check(&checks, "ipv6_link_local").subject
        else {
            panic!("{checks:?}");
        };
        assert_eq!(interface, "em1");
        assert_eq!(virtual_ips.len(), 2);
        assert_eq!(*source, Some("fe80::2".parse().unwrap()));
        assert_eq!(ifconfig, Path::new("/sbin/ifconfig"));
    }

    #[test]
    fn freebsd_ifdisabled_is_read_from_the_nd6_options() {
        let disabled =
            "em0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n\
            \tinet 192.168.10.1 netmask 0xffffff00 broadcast 192.168.10.255\n\
            \tnd6 options=29<PERFORMNUD,IFDISABLED,AUTO_LINKLOCAL>\n";
        assert!(nd6_ifdisabled(disabled));
        let enabled = "em0: flags=8843<UP> metric 0 mtu 1500\n\
            \tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>\n";
        assert!(!nd6_ifdisabled(enabled));
        assert!(!nd6_ifdisabled("em0: flags=8843<UP> metric 0 mtu 1500\n"));
    }

    #[test]
    fn ipv6_findings_name_the_missing_piece() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let vip_ll: Ipv6Addr = "fe80::51".parse().unwrap();
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let ok = ipv6_finding("em0", Some(false), Ok(vec![(ll, 64)]), &[vip_ll], None);
        assert_eq!(ok.verdict, Verdict::Ok, "{ok:?}");
        assert!(ok.found.contains("link-local fe80::1"), "{ok:?}");

        let disabled = ipv6_finding("em0", Some(true), Ok(vec![(ll, 64)]), &[], None);
        assert_eq!(disabled.verdict, Verdict::Fail);
        assert!(disabled
            .found
            .starts_with("IPv6 VIP on an interface without IPv6: IPv6 is disabled on em0"));
        assert!(disabled.fix.as_deref().unwrap().contains("-ifdisabled"));

        let none = ipv6_finding("em0", None, Ok(Vec::new()), &[], None);
        assert_eq!(none.verdict, Verdict::Fail);
        assert!(none.found.contains("em0 has no IPv6 address"), "{none:?}");

        // Only a global address, or only the VIP's link-local: no source.
        for addresses in [vec![(global, 64)], vec![(vip_ll, 64), (global, 64)]] {
            let missing = ipv6_finding("em0", Some(false), Ok(addresses), &[vip_ll], None);
            assert_eq!(missing.verdict, Verdict::Fail);
            assert!(
                missing.found.starts_with("missing link-local: em0"),
                "{missing:?}"
            );
            assert!(missing.fix.as_deref().unwrap().contains("auto_linklocal"));
        }

        let elsewhere = ipv6_finding("em0", Some(false), Ok(vec![(ll, 64)]), &[], Some(vip_ll));
        assert_eq!(elsewhere.verdict, Verdict::Fail);
        assert!(elsewhere
            .found
            .contains("source_address fe80::51 is not an address of em0"));

        let gone = ipv6_finding(
            "em9",
            None,
            Err(crate::net::error::NetError::NoSuchInterface {
                interface: "em9".into(),
                errno: nix::errno::Errno::ENXIO,
            }),
            &[],
            None,
        );
        assert_eq!(gone.verdict, Verdict::Fail);
    }
}
