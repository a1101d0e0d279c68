//! `[nfs]`: the master's export and the followers' mounts (read and checked
//! in `load/nfs.rs`).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::storage::DEFAULT_STORAGE_ROOT;

/// An IPv4 network such as `192.168.10.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address part as written; in `nfs.export_network` it has no host
    /// bits set (checked in `load/nfs.rs`, as exports(5) `-network` needs).
    pub address: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Net {
    fn mask(self) -> u32 {
        match self.prefix_len {
            0 => 0,
            len => u32::MAX << (32 - u32::from(len.min(32))),
        }
    }

    /// Whether `address` lies inside this network.
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

/// An IPv6 network such as `2001:db8:10::/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    /// The network address; in `nfs.export_network6` without host bits.
    pub address: Ipv6Addr,
    /// Prefix length, 1..=128.
    pub prefix_len: u8,
}

impl Ipv6Net {
    fn mask(self) -> u128 {
        match self.prefix_len {
            0 => 0,
            len => u128::MAX << (128 - u32::from(len.min(128))),
        }
    }

    /// Whether `address` lies inside this network.
    pub fn contains(self, address: Ipv6Addr) -> bool {
        u128::from(address) & self.mask() == u128::from(self.address) & self.mask()
    }

    /// Whether the address has no host bits set (what exports(5) expects).
    pub fn is_network_address(self) -> bool {
        u128::from(self.address) & !self.mask() == 0
    }
}

impl std::fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// `[nfs]`: the master's export and the followers' mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nfs {
    /// `nfs.export_network`: the network exports(5) lets mount (`-network`);
    /// contains every virtual IP.
    pub export_network: Option<Ipv4Net>,
    /// `nfs.export_network6`: the IPv6 network exports(5) lets mount
    /// (`-network ADDR/PREFIX`, a line of its own); contains every global
    /// IPv6 virtual IP.
    pub export_network6: Option<Ipv6Net>,
    /// `nfs.export_hosts`: the nodes' own IPv4 addresses, exported to as a host list.
    pub export_hosts: Vec<Ipv4Addr>,
    /// The IPv6 entries of `nfs.export_hosts`, in file order.
    pub export_hosts6: Vec<Ipv6Addr>,
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
    /// `nfs.stable_restart_dir`: a directory on the shared storage where the
    /// master's nfsd keeps its NFSv4 stable restart state (promote links
    /// [`Nfs::stable_restart_files`] into it); `None`: nfsd's local files.
    pub stable_restart_dir: Option<PathBuf>,
    /// nfsd's stable restart files, `NFSD_STABLERESTART` and
    /// `NFSD_STABLEBACKUP` (usr.sbin/nfsd/nfsd.c), `nfs.stable_restart_files`:
    /// compiled into nfsd, so changed only for tests (which point them into
    /// their own tree) or an nfsd built with other paths.
    pub stable_restart_files: [PathBuf; 2],
}

/// nfsd's `NFSD_STABLERESTART` (usr.sbin/nfsd/nfsd.c).
pub const NFSD_STABLERESTART: &str = "/var/db/nfs-stablerestart";
/// nfsd's `NFSD_STABLEBACKUP` (usr.sbin/nfsd/nfsd.c).
pub const NFSD_STABLEBACKUP: &str = "/var/db/nfs-stablerestart.bak";

/// Default `nfs.mount_options`: NFSv4.1, hard (never `soft`/`intr` with
/// NFSv4, mount_nfs(8)), and one try per `mount_nfs`: mount_nfs sleeps 60 s
/// between its own tries (mount_nfs.c `rtm_ifinfo_sleep(60)`), which
/// outlives `runbook.mount_timeout`, so the agent does the retrying
/// (`runbook.mount_attempts`, with backoff). An unset `retrycnt` is 0:
/// "keep retrying forever".
pub const DEFAULT_MOUNT_OPTIONS: &str = "nfsv4,minorversion=1,hard,retrycnt=1";
/// Default `nfs.exports_file`.
pub const DEFAULT_EXPORTS_FILE: &str = "/etc/exports";

impl Default for Nfs {
    fn default() -> Self {
        Nfs {
            export_network: None,
            export_network6: None,
            export_hosts: Vec::new(),
            export_hosts6: Vec::new(),
            remote_root: PathBuf::from(DEFAULT_STORAGE_ROOT),
            mount_options: DEFAULT_MOUNT_OPTIONS.to_owned(),
            v4_only: false,
            delegations: false,
            exports_file: PathBuf::from(DEFAULT_EXPORTS_FILE),
            stable_restart_dir: None,
            stable_restart_files: [
                PathBuf::from(NFSD_STABLERESTART),
                PathBuf::from(NFSD_STABLEBACKUP),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ipv6_networks_contain_their_hosts_only() {
        let net = Ipv6Net {
            address: "2001:db8:10::".parse().unwrap(),
            prefix_len: 64,
        };
        assert!(net.contains("2001:db8:10::12".parse().unwrap()));
        assert!(!net.contains("2001:db8:11::12".parse().unwrap()));
        assert!(net.is_network_address());
        let host = Ipv6Net {
            address: "2001:db8:10::1".parse().unwrap(),
            prefix_len: 64,
        };
        assert!(!host.is_network_address());
        let one = Ipv6Net {
            address: "2001:db8::1".parse().unwrap(),
            prefix_len: 128,
        };
        assert!(one.is_network_address());
        assert!(one.contains("2001:db8::1".parse().unwrap()));
    }
}
