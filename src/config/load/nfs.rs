//! Reading `[nfs]`: the export network or hosts, the followers' mount
//! options (checked against mount_nfs(8), `mount_options.rs`), the remote
//! root and the exports file. What ties `[nfs]` to `[vrrp]` (the VIP) and
//! `[storage]` (a master candidate exports; the same root) is checked in
//! `cross_checks.rs`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::{Reader, Value};
use crate::config::mount_options;
use crate::config::nfs::{Ipv4Net, Nfs, DEFAULT_EXPORTS_FILE, DEFAULT_MOUNT_OPTIONS};
use crate::config::storage::DEFAULT_STORAGE_ROOT;
use crate::config::VirtualIp;

const NFS_KEYS: &[&str] = &[
    "export_network",
    "export_hosts",
    "remote_root",
    "mount_options",
    "v4_only",
    "delegations",
    "exports_file",
    "stable_restart_dir",
    "stable_restart_files",
];

impl Reader<'_> {
    /// `[nfs]`; its defaults when absent, unless this node is a master
    /// candidate (`storage_root`: `storage.root`, when `[storage]` is
    /// valid). `None` when invalid.
    pub(super) fn nfs_section(
        &mut self,
        root: &DeTable<'_>,
        vips: &[VirtualIp],
        storage_root: Option<&Path>,
        shared_dirs: &[String],
    ) -> Option<Nfs> {
        match root.get("nfs") {
            Some(value) => self
                .table(value, "nfs")
                .and_then(|t| self.nfs(t, vips, storage_root, shared_dirs, value.span())),
            None if storage_root.is_some() => {
                self.master_candidate_without_nfs(root);
                None
            }
            None => Some(Nfs::default()),
        }
    }

    fn nfs(
        &mut self,
        table: &DeTable<'_>,
        vips: &[VirtualIp],
        storage_root: Option<&Path>,
        shared_dirs: &[String],
        span: Range<usize>,
    ) -> Option<Nfs> {
        let master_candidate = storage_root.is_some();
        self.unknown_keys(table, "nfs", NFS_KEYS);
        let export_network = match table.get("export_network") {
            Some(value) => self.export_network(value, vips).map(Some),
            None => Some(None),
        };
        let export_hosts = match table.get("export_hosts") {
            Some(value) => self.export_hosts(value, vips),
            None => Some(Vec::new()),
        };
        if master_candidate {
            self.master_candidate_names_its_clients(table, span);
        }
        let mount_options = match table.get("mount_options") {
            Some(value) => self.mount_options(value),
            None => Some(DEFAULT_MOUNT_OPTIONS.to_owned()),
        };
        let v4_only = self.optional(table, "v4_only", false, |r, v| r.boolean(v, "nfs.v4_only"));
        let delegations = self.optional(table, "delegations", false, |r, v| {
            r.boolean(v, "nfs.delegations")
        });
        let default_root = storage_root.map_or_else(
            || DEFAULT_STORAGE_ROOT.to_owned(),
            |r| r.display().to_string(),
        );
        let remote_root =
            self.clean_path(table.get("remote_root"), "nfs.remote_root", &default_root);
        if let (Some(remote), Some(local), Some(value)) =
            (&remote_root, storage_root, table.get("remote_root"))
        {
            self.remote_root_is_storage_root(value.span(), remote, local);
        }
        let exports_file = self.clean_path(
            table.get("exports_file"),
            "nfs.exports_file",
            DEFAULT_EXPORTS_FILE,
        );
        let stable_restart_dir = match table.get("stable_restart_dir") {
            Some(value) => self
                .stable_restart_dir(value, storage_root, shared_dirs)
                .map(Some),
            None => Some(None),
        };
        let stable_restart_files = match table.get("stable_restart_files") {
            Some(value) => self.stable_restart_files(
                value,
                stable_restart_dir.as_ref().and_then(|d| d.as_deref()),
            ),
            None => Some(Nfs::default().stable_restart_files),
        };
        Some(Nfs {
            export_network: export_network?,
            export_hosts: export_hosts?,
            remote_root: remote_root?,
            mount_options: mount_options?,
            v4_only: v4_only?,
            delegations: delegations?,
            exports_file: exports_file?,
            stable_restart_dir: stable_restart_dir?,
            stable_restart_files: stable_restart_files?,
        })
    }

    /// `nfs.stable_restart_files`: nfsd's two compiled-in paths
    /// (`NFSD_STABLERESTART`, `NFSD_STABLEBACKUP`, usr.sbin/nfsd/nfsd.c),
    /// for tests or an nfsd built with other ones. Each is linked to the
    /// file of the same name in `nfs.stable_restart_dir`, so the two names
    /// differ, and neither lies inside that dir (it would link to itself).
    fn stable_restart_files(
        &mut self,
        value: &Value<'_>,
        dir: Option<&Path>,
    ) -> Option<[PathBuf; 2]> {
        const KEY: &str = "nfs.stable_restart_files";
        let items = self.string_array(value, KEY)?;
        if items.len() != 2 {
            self.error(
                value.span(),
                KEY,
                format!(
                    "has {} paths; it takes nfsd's two, the records and their copy (default [\"{}\", \"{}\"])",
                    items.len(),
                    crate::config::nfs::NFSD_STABLERESTART,
                    crate::config::nfs::NFSD_STABLEBACKUP
                ),
            );
            return None;
        }
        // string_array checked that the value is an array of strings.
        let DeValue::Array(values) = value.get_ref() else {
            return None;
        };
        let mut paths = Vec::with_capacity(2);
        for (index, element) in values.iter().enumerate() {
            let item_key = format!("{KEY}[{index}]");
            let path = self.clean_path(Some(element), &item_key, "")?;
            if let Some(dir) = dir.filter(|d| path.starts_with(d)) {
                self.error(
                    element.span(),
                    &item_key,
                    format!(
                        "{} is inside nfs.stable_restart_dir {}: promote links nfsd's path to the file of that name in the dir, which would be the path itself",
                        path.display(),
                        dir.display()
                    ),
                );
                return None;
            }
            paths.push(path);
        }
        let [first, second]: [PathBuf; 2] = paths.try_into().ok()?;
        if first.file_name() == second.file_name() {
            self.error(
                value.span(),
                KEY,
                format!(
                    "{} and {} have the same file name: each is linked to the file of its name in nfs.stable_restart_dir, so they would share one file",
                    first.display(),
                    second.display()
                ),
            );
            return None;
        }
        Some([first, second])
    }

    /// `nfs.stable_restart_dir`: a clean absolute path inside
    /// `storage.root` (it must move with the storage) and outside every
    /// exported shared dir (clients must not see or change the server's
    /// records).
    fn stable_restart_dir(
        &mut self,
        value: &Value<'_>,
        storage_root: Option<&Path>,
        shared_dirs: &[String],
    ) -> Option<PathBuf> {
        const KEY: &str = "nfs.stable_restart_dir";
        let dir = self.clean_path(Some(value), KEY, "")?;
        let Some(root) = storage_root else {
            return Some(dir);
        };
        if dir == root || !dir.starts_with(root) {
            self.error(
                value.span(),
                KEY,
                format!(
                    "{} is not inside storage.root {}: nfsd's stable restart state must move with the shared storage",
                    dir.display(),
                    root.display()
                ),
            );
            return None;
        }
        if let Some(shared) = shared_dirs.iter().find(|d| dir.starts_with(root.join(d))) {
            self.error(
                value.span(),
                KEY,
                format!(
                    "{} is inside the exported shared dir {}: NFS clients would see and change the server's records; use a directory of storage.root outside cbsd.shared_dirs (e.g. {})",
                    dir.display(),
                    root.join(shared).display(),
                    root.join(".nfs-stablerestart").display()
                ),
            );
            return None;
        }
        Some(dir)
    }

    fn export_network(&mut self, value: &Value<'_>, vips: &[VirtualIp]) -> Option<Ipv4Net> {
        const KEY: &str = "nfs.export_network";
        let text = self.string(value, KEY)?;
        let parsed = text.split_once('/').and_then(|(a, p)| {
            Some(Ipv4Net {
                address: a.parse::<Ipv4Addr>().ok()?,
                prefix_len: p.parse::<u8>().ok().filter(|p| (1..=32).contains(p))?,
            })
        });
        let Some(net) = parsed else {
            self.error(
                value.span(),
                KEY,
                format!("{text:?} is not a network (address/prefix, prefix 1..=32, e.g. \"192.168.10.0/24\")"),
            );
            return None;
        };
        if !net.is_network_address() {
            self.error(
                value.span(),
                KEY,
                format!(
                    "{text} has host bits set; write the network address (exports(5) -network)"
                ),
            );
            return None;
        }
        if !self.export_network_contains_the_vips(value.span(), net, vips) {
            return None;
        }
        Some(net)
    }

    fn export_hosts(&mut self, value: &Value<'_>, vips: &[VirtualIp]) -> Option<Vec<Ipv4Addr>> {
        let items = self.string_array(value, "nfs.export_hosts")?;
        let mut hosts: Vec<Ipv4Addr> = Vec::with_capacity(items.len());
        let mut seen: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (text, span, item_key) in items {
            let Some(host) = self.unicast_address(&text, span.clone(), &item_key) else {
                valid = false;
                continue;
            };
            // A VIP is reported as such, not as listed twice.
            if self.export_host_is_not_a_vip(host, vips, span.clone(), &item_key)
                && self.first_listing(&mut seen, host, &host.to_string(), &span, &item_key, "")
            {
                hosts.push(host);
            } else {
                valid = false;
            }
        }
        valid.then_some(hosts)
    }

    /// Every option checked against what FreeBSD's mount_nfs knows
    /// ([`mount_options::check`]); each problem is reported at its option.
    fn mount_options(&mut self, value: &Value<'_>) -> Option<String> {
        const KEY: &str = "nfs.mount_options";
        let text = self.string(value, KEY)?;
        let problems = mount_options::check(&text);
        if problems.is_empty() {
            return Some(text);
        }
        let span = value.span();
        // The string's characters start one past the quote when the TOML
        // spells it without escapes; otherwise point at the string.
        let raw = self.text.get(span.clone()).unwrap_or_default();
        let verbatim =
            raw.len() == text.len() + 2 && raw.get(1..raw.len() - 1) == Some(text.as_str());
        for problem in problems {
            let at = if verbatim {
                let start = span.start + 1 + problem.offset;
                start..start
            } else {
                span.clone()
            };
            self.error(at, KEY, problem.message);
        }
        None
    }
}
