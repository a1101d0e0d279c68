//! The CBSD cluster sections of the configuration: what the runbooks need
//! to know about the CBSD workdir, the storage, the NFS export and mounts,
//! the environments this node runs, step timeouts and the paths of the
//! external tools. `docs/configuration.md` describes every key.
//!
//! A file without `[cbsd]` is a plain VRRP node: the runbooks only move the
//! virtual IP. With `[cbsd]` but without `[storage]` the node is a
//! follower-only node: it votes, mounts and runs its environments, but never
//! becomes master ([`super::Config::may_be_master`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[cbsd]`: the CBSD workdir and the directories shared from the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cbsd {
    /// CBSD's workdir, e.g. `/usr/jails`.
    pub workdir: PathBuf,
    /// Directory names under the workdir that live on the shared storage
    /// (`jails-data`, ...): single path components, no duplicates.
    pub shared_dirs: Vec<String>,
    /// Path of CBSD's `dir.id`, relative to the workdir, inside a shared dir.
    pub dir_id_file: PathBuf,
    /// The cluster's known `dir.id` content; `None`: the file must merely
    /// exist and be non-empty.
    pub dir_id: Option<String>,
}

impl Cbsd {
    /// `/usr/jails/<d>` for a shared dir `d`.
    pub fn workdir_path(&self, dir: &str) -> PathBuf {
        self.workdir.join(dir)
    }
}

/// `[storage]`: where the shared dirs live on the master, and how the
/// master takes and releases that storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// The master's copy of each shared dir is `<root>/<d>`, e.g. `/store`.
    pub root: PathBuf,
    pub kind: StorageKind,
}

impl Storage {
    /// `/store/<d>` for a shared dir `d`.
    pub fn dir_path(&self, dir: &str) -> PathBuf {
        self.root.join(dir)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// The dirs are already in place on every candidate (the operator's job).
    None,
    /// HAST: `hastctl role primary RES`, `/dev/hast/RES` mounted on the root.
    Hast {
        resource: String,
        /// File system type on the HAST provider, for `fsck -t`.
        fstype: String,
        /// The provider's device, `/dev/hast/<resource>`.
        device: PathBuf,
    },
    /// A pool on shared disks with `multihost=on`: `zpool import -o
    /// cachefile=none -f POOL` (after a read-only import has shown
    /// `multihost=on`) / `zpool export POOL`.
    Zfs { pool: String },
}

impl StorageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StorageKind::None => "none",
            StorageKind::Hast { .. } => "hast",
            StorageKind::Zfs { .. } => "zfs",
        }
    }
}

/// An IPv4 network such as `192.168.10.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Net {
    fn mask(self) -> u32 {
        match self.prefix_len {
            0 => 0,
            len => u32::MAX << (32 - u32::from(len.min(32))),
        }
    }

    pub fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.address) & self.mask()
    }

    /// Whether the address has no host bits set (what exports(5) expects).
    pub fn is_network_address(self) -> bool {
        u32::from(self.address) & !self.mask() == 0
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// `[nfs]`: the master's export and the followers' mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nfs {
    pub export_network: Option<Ipv4Net>,
    pub export_hosts: Vec<Ipv4Addr>,
    /// Where the shared dirs live on the master, as followers mount them:
    /// `VIP:<remote_root>/<d>`. Equals `storage.root` on every node.
    pub remote_root: PathBuf,
    /// `mount_nfs -o` options of the followers.
    pub mount_options: String,
    /// Run only nfsuserd, mountd and nfsd (`nfsv4_server_only`).
    pub v4_only: bool,
    /// The master's nfsd issues delegations (`vfs.nfsd.issue_delegations`,
    /// set by the operator): followers then run nfscbd, through which the
    /// server recalls them.
    pub delegations: bool,
    /// The file holding the agent's marked block (read by mountd).
    pub exports_file: PathBuf,
}

/// Default `nfs.mount_options`: NFSv4.1, hard (never `soft`/`intr` with
/// NFSv4, mount_nfs(8)), and one try per `mount_nfs`: mount_nfs sleeps 60 s
/// between its own tries (mount_nfs.c `rtm_ifinfo_sleep(60)`), which
/// outlives `runbook.mount_timeout`, so the agent does the retrying
/// (`runbook.mount_attempts`, with backoff). An unset `retrycnt` is 0:
/// "keep retrying forever".
pub const DEFAULT_MOUNT_OPTIONS: &str = "nfsv4,minorversion=1,hard,retrycnt=1";
/// Default `storage.root` and `nfs.remote_root`.
pub const DEFAULT_STORAGE_ROOT: &str = "/store";
/// Default `nfs.exports_file`.
pub const DEFAULT_EXPORTS_FILE: &str = "/etc/exports";

impl Default for Nfs {
    fn default() -> Self {
        Nfs {
            export_network: None,
            export_hosts: Vec::new(),
            remote_root: PathBuf::from(DEFAULT_STORAGE_ROOT),
            mount_options: DEFAULT_MOUNT_OPTIONS.to_owned(),
            v4_only: false,
            delegations: false,
            exports_file: PathBuf::from(DEFAULT_EXPORTS_FILE),
        }
    }
}

/// Whether an environment is a jail or a bhyve VM: CBSD starts and stops
/// them with different commands. Ordered (jail before bhyve) so that lists
/// of environments can be sorted into a stable order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvKind {
    Jail,
    Bhyve,
}

impl EnvKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvKind::Jail => "jail",
            EnvKind::Bhyve => "bhyve",
        }
    }
}

/// One entry of `[environments] jails` / `bhyve`: a name or a glob
/// (`*`, `?`), matched against the directories of `jails-system/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvPattern {
    pub pattern: String,
    pub kind: EnvKind,
}

impl EnvPattern {
    pub fn is_glob(&self) -> bool {
        self.pattern.contains(['*', '?'])
    }

    /// Shell-style match of `*` and `?` (no character classes).
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.pattern.as_bytes(), name.as_bytes())
    }
}

fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative matcher with one backtrack point: linear in practice and
    // never recursive, whatever the pattern.
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or(&[]).iter().all(|&c| c == b'*')
}

/// `[environments]`: the jails and VMs this node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environments {
    pub patterns: Vec<EnvPattern>,
    /// How long one `jstop`/`bstop` may take.
    pub stop_timeout: Duration,
    /// How long one `jstart`/`bstart` may take.
    pub start_timeout: Duration,
}

impl Default for Environments {
    fn default() -> Self {
        Environments {
            patterns: Vec::new(),
            stop_timeout: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
        }
    }
}

/// `[runbook]`: timeouts and retry rules of the runbook steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunbookSettings {
    /// Default timeout of a command step (service, mount, cbsd queries).
    pub command_timeout: Duration,
    /// Timeout of each `umount` attempt (`-f` against a dead server can take
    /// a minute).
    pub umount_timeout: Duration,
    /// How long a live NFS server may take to answer `df` (statfs(2)) on a
    /// mount before promote and follow count it gone and force-dismount
    /// the mount first (`umount -N`).
    pub nfs_answer_timeout: Duration,
    /// Timeout of taking or releasing the storage (import, fsck, mount).
    pub storage_timeout: Duration,
    /// How long to wait for `/dev/hast/RES` after `role primary`.
    pub device_wait: Duration,
    /// Timeout of one `mount_nfs` attempt.
    pub mount_timeout: Duration,
    /// Attempts of a follow mount before the follow fails.
    pub mount_attempts: u32,
    /// First backoff between mount attempts; doubled each time.
    pub retry_backoff: Duration,
    /// Largest backoff between attempts.
    pub retry_backoff_max: Duration,
    /// How long a node whose promote failed stays in fault before it may
    /// try again.
    pub fault_hold_off: Duration,
}

impl Default for RunbookSettings {
    fn default() -> Self {
        RunbookSettings {
            command_timeout: Duration::from_secs(30),
            umount_timeout: Duration::from_secs(90),
            nfs_answer_timeout: Duration::from_secs(5),
            storage_timeout: Duration::from_secs(600),
            device_wait: Duration::from_secs(30),
            mount_timeout: Duration::from_secs(30),
            mount_attempts: 5,
            retry_backoff: Duration::from_secs(2),
            retry_backoff_max: Duration::from_secs(30),
            fault_hold_off: Duration::from_secs(60),
        }
    }
}

/// `[tools]`: absolute paths of every external program the runbooks and
/// `doctor` run. The defaults are FreeBSD's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tools {
    pub service: PathBuf,
    pub mount: PathBuf,
    pub umount: PathBuf,
    pub mount_nfs: PathBuf,
    pub cbsd: PathBuf,
    pub hastctl: PathBuf,
    pub fsck: PathBuf,
    pub zpool: PathBuf,
    pub kldstat: PathBuf,
    pub ifconfig: PathBuf,
    pub sockstat: PathBuf,
    pub df: PathBuf,
    /// Read-only here: `doctor` reads rc.conf(5) with `sysrc -n NAME`.
    pub sysrc: PathBuf,
    /// Read-only here: `doctor` reads `sysctl -n kern.hostid`.
    pub sysctl: PathBuf,
    /// Read-only here: `doctor` asks `pkg config NAME`.
    pub pkg: PathBuf,
}

/// `(key, FreeBSD default)` of every `[tools]` entry, in documentation order.
pub const TOOL_DEFAULTS: &[(&str, &str)] = &[
    ("service", "/usr/sbin/service"),
    ("mount", "/sbin/mount"),
    ("umount", "/sbin/umount"),
    ("mount_nfs", "/sbin/mount_nfs"),
    ("cbsd", "/usr/local/bin/cbsd"),
    ("hastctl", "/sbin/hastctl"),
    ("fsck", "/sbin/fsck"),
    ("zpool", "/sbin/zpool"),
    ("kldstat", "/sbin/kldstat"),
    ("ifconfig", "/sbin/ifconfig"),
    ("sockstat", "/usr/bin/sockstat"),
    ("df", "/bin/df"),
    ("sysrc", "/usr/sbin/sysrc"),
    ("sysctl", "/sbin/sysctl"),
    ("pkg", "/usr/local/sbin/pkg"),
];

impl Default for Tools {
    fn default() -> Self {
        let path = |key: &str| {
            TOOL_DEFAULTS
                .iter()
                .find(|(name, _)| *name == key)
                .map_or_else(PathBuf::new, |(_, default)| PathBuf::from(default))
        };
        Tools {
            service: path("service"),
            mount: path("mount"),
            umount: path("umount"),
            mount_nfs: path("mount_nfs"),
            cbsd: path("cbsd"),
            hastctl: path("hastctl"),
            fsck: path("fsck"),
            zpool: path("zpool"),
            kldstat: path("kldstat"),
            ifconfig: path("ifconfig"),
            sockstat: path("sockstat"),
            df: path("df"),
            sysrc: path("sysrc"),
            sysctl: path("sysctl"),
            pkg: path("pkg"),
        }
    }
}

impl Tools {
    /// Sets the tool named `key`; false for an unknown key.
    pub fn set(&mut self, key: &str, path: PathBuf) -> bool {
        let slot = match key {
            "service" => &mut self.service,
            "mount" => &mut self.mount,
            "umount" => &mut self.umount,
            "mount_nfs" => &mut self.mount_nfs,
            "cbsd" => &mut self.cbsd,
            "hastctl" => &mut self.hastctl,
            "fsck" => &mut self.fsck,
            "zpool" => &mut self.zpool,
            "kldstat" => &mut self.kldstat,
            "ifconfig" => &mut self.ifconfig,
            "sockstat" => &mut self.sockstat,
            "df" => &mut self.df,
            "sysrc" => &mut self.sysrc,
            "sysctl" => &mut self.sysctl,
            "pkg" => &mut self.pkg,
            _ => return false,
        };
        *slot = path;
        true
    }

    /// Every tool pointed into `dir` (tests and the lab use stand-ins).
    pub fn all_in(dir: &Path) -> Tools {
        let mut tools = Tools::default();
        for (key, _) in TOOL_DEFAULTS {
            tools.set(key, dir.join(key));
        }
        tools
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> EnvPattern {
        EnvPattern {
            pattern: p.to_owned(),
            kind: EnvKind::Jail,
        }
    }

    #[test]
    fn globs_match_like_the_shell() {
        assert!(pattern("db*").matches("db1"));
        assert!(pattern("db*").matches("db"));
        assert!(!pattern("db*").matches("web1"));
        assert!(pattern("w?b*1").matches("web-01"));
        assert!(pattern("*").matches(""));
        assert!(!pattern("web1").matches("web10"));
        assert!(pattern("a*b*c").matches("aXbYbZc"));
        assert!(!pattern("a*b*c").matches("aXbYbZ"));
    }

    #[test]
    fn networks_contain_their_hosts_only() {
        let net = Ipv4Net {
            address: Ipv4Addr::new(192, 168, 10, 0),
            prefix_len: 24,
        };
        assert!(net.contains(Ipv4Addr::new(192, 168, 10, 200)));
        assert!(!net.contains(Ipv4Addr::new(192, 168, 11, 1)));
        assert!(net.is_network_address());
        let all = Ipv4Net {
            address: Ipv4Addr::new(0, 0, 0, 0),
            prefix_len: 0,
        };
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn tools_default_to_freebsd_paths_and_can_all_move() {
        let tools = Tools::default();
        assert_eq!(tools.service, Path::new("/usr/sbin/service"));
        assert_eq!(tools.cbsd, Path::new("/usr/local/bin/cbsd"));
        assert_eq!(tools.sysrc, Path::new("/usr/sbin/sysrc"));
        assert_eq!(tools.sysctl, Path::new("/sbin/sysctl"));
        assert_eq!(tools.pkg, Path::new("/usr/local/sbin/pkg"));
        let moved = Tools::all_in(Path::new("/tmp/x"));
        assert_eq!(moved.sockstat, Path::new("/tmp/x/sockstat"));
        assert_eq!(moved.mount_nfs, Path::new("/tmp/x/mount_nfs"));
        assert_eq!(moved.pkg, Path::new("/tmp/x/pkg"));
    }
}
