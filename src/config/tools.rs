//! `[tools]`: the absolute paths of the external programs the runbooks and
//! `doctor` run, FreeBSD's by default (read and checked in
//! `load/tools.rs`).

use std::path::{Path, PathBuf};

/// `[tools]`: absolute paths of every external program the runbooks and
/// `doctor` run. The defaults are FreeBSD's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tools {
    /// `tools.service`: service(8), which starts and stops the NFS daemons
    /// (and hastd) with `onestart`/`onestop`.
    pub service: PathBuf,
    /// `tools.mount`: mount(8): the store, the nullfs binds, and `mount -p` listings.
    pub mount: PathBuf,
    /// `tools.umount`: umount(8): plain, forced (`-f`) and `-N` dismounts.
    pub umount: PathBuf,
    /// `tools.mount_nfs`: mount_nfs(8), with which followers mount the shared dirs.
    pub mount_nfs: PathBuf,
    /// `tools.cbsd`: the `cbsd` front end (jstart, jstop, bstart, jstatus...).
    pub cbsd: PathBuf,
    /// `tools.hastctl`: hastctl(8): `role primary|secondary` and `status` of the resource.
    pub hastctl: PathBuf,
    /// `tools.fsck`: fsck(8), run with `-t <storage.fstype>` on the HAST provider.
    pub fsck: PathBuf,
    /// `tools.zpool`: zpool(8): `import`, `export`, `list` and `get multihost` of the pool.
    pub zpool: PathBuf,
    /// `tools.kldstat`: kldstat(8), asked at start whether carp(4) is loaded
    /// (`net/preflight.rs`).
    pub kldstat: PathBuf,
    /// `tools.ifconfig`: ifconfig(8), which adds and removes the virtual IPs.
    pub ifconfig: PathBuf,
    /// `tools.sockstat`: sockstat(1), to check that nfsd listens on port 2049.
    pub sockstat: PathBuf,
    /// `tools.showmount`: showmount(8), to ask mountd what it exports.
    pub showmount: PathBuf,
    /// `tools.df`: df(1), whose statfs(2) tells whether a mount's NFS server still answers.
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
    ("showmount", "/usr/bin/showmount"),
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
            showmount: path("showmount"),
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
            "showmount" => &mut self.showmount,
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
