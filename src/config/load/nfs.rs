//! Reading `[nfs]`: the export network or hosts, the followers' mount
//! options (checked against mount_nfs(8), `mount_options.rs`), the remote
//! root and the exports file. What ties `[nfs]` to `[vrrp]` (the VIP) and
//! `[storage]` (a master candidate exports; the same root) is checked in
//! `cross_checks.rs`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::{Reader, Value};
use crate::config::mount_options;
use crate::config::nfs::{Ipv4Net, Ipv6Net, Nfs, DEFAULT_EXPORTS_FILE, DEFAULT_MOUNT_OPTIONS};
use crate::config::storage::DEFAULT_STORAGE_ROOT;
use crate::config::{is_link_local6, VirtualIp, VirtualIp6};

const NFS_KEYS: &[&str] = &[
    "export_network",
    "export_network6",
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
        vips6: &[VirtualIp6],
        storage_root: Option<&Path>,
        shared_dirs: &[String],
    ) -> Option<Nfs> {
        match root.get("nfs") {
            Some(value) => self
                .table(value, "nfs")
                .and_then(|t| self.nfs(t, (vips, vips6), storage_root, shared_dirs, value.span())),
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
        (vips, vips6): (&[VirtualIp], &[VirtualIp6]),
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
        let export_network6 = match table.get("export_network6") {
            Some(value) => self.export_network6(value, vips6).map(Some),
            None => Some(None),
        };
        let export_hosts = match table.get("export_hosts") {
            Some(value) => self.export_hosts(value, vips, vips6),
            None => Some((Vec::new(), Vec::new())),
        };
        if master_candidate {
            self.master_candidate_names_its_clients(table, span.clone());
        }
        // Followers mount from [vrrp]'s IPv4 VIP when it has one, else
        // from its first global IPv6 one (`Config::mount_address`).
        let mount_ipv6 = vips.is_empty() && !vips6.is_empty();
        // The followers then reach the master from their IPv6 addresses:
        // an IPv4-only export would refuse every mount.
        if let (true, true, Some(None), Some((_, hosts6))) = (
            master_candidate,
            mount_ipv6,
            &export_network6,
            &export_hosts,
        ) {
            // (An invalid export_network has said what is wrong already.)
            if hosts6.is_empty() && export_network.is_some() {
                self.error(
                    span.clone(),
                    "nfs.export_network6",
                    "missing; the followers mount from an IPv6 virtual IP: export to their IPv6 addresses with export_network6 (e.g. \"2001:db8:10::/64\") or IPv6 export_hosts",
                );
            }
        }
        let mount_options = match table.get("mount_options") {
            Some(value) => self
                .mount_options(value)
                .and_then(|text| self.mount_family(value, text, mount_ipv6)),
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
            export_network6: export_network6?,
            export_hosts: export_hosts.as_ref()?.0.clone(),
            export_hosts6: export_hosts?.1,
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
        if text.contains(':') {
            self.error(
                value.span(),
                KEY,
                format!("{text} is IPv6: an IPv6 network goes in nfs.export_network6 (exports(5) takes one -network per line, so each family has its key)"),
            );
            return None;
        }
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

    /// `nfs.export_network6`: an IPv6 network (exports(5) `-network`
    /// takes `ADDR/PREFIX` for either family, usr.sbin/mountd/mountd.c
    /// `get_net` parses it with getaddrinfo) that holds every global IPv6
    /// VIP; link-local ones are not mounted from.
    fn export_network6(&mut self, value: &Value<'_>, vips6: &[VirtualIp6]) -> Option<Ipv6Net> {
        const KEY: &str = "nfs.export_network6";
        let text = self.string(value, KEY)?;
        let parsed = text.split_once('/').and_then(|(a, p)| {
            Some(Ipv6Net {
                address: a.parse::<Ipv6Addr>().ok()?,
                prefix_len: p.parse::<u8>().ok().filter(|p| (1..=128).contains(p))?,
            })
        });
        let Some(net) = parsed else {
            self.error(
                value.span(),
                KEY,
                format!("{text:?} is not an IPv6 network (address/prefix, prefix 1..=128, e.g. \"2001:db8:10::/64\")"),
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
        let outside = vips6
            .iter()
            .find(|v| !is_link_local6(v.address) && !net.contains(v.address));
        if let Some(vip) = outside {
            self.error(
                value.span(),
                KEY,
                format!("{net} does not contain the virtual IP {}: the followers mount from the VIP's network, export to it", vip.address),
            );
            return None;
        }
        Some(net)
    }

    /// `nfs.export_hosts`: IPv4 and IPv6 addresses, split by family.
    fn export_hosts(
        &mut self,
        value: &Value<'_>,
        vips: &[VirtualIp],
        vips6: &[VirtualIp6],
    ) -> Option<(Vec<Ipv4Addr>, Vec<Ipv6Addr>)> {
        let items = self.string_array(value, "nfs.export_hosts")?;
        let mut hosts: Vec<Ipv4Addr> = Vec::with_capacity(items.len());
        let mut hosts6: Vec<Ipv6Addr> = Vec::new();
        let mut seen: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut seen6: HashMap<Ipv6Addr, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (text, span, item_key) in items {
            if text.contains(':') {
                match self.export_host6(&text, span.clone(), &item_key, vips6) {
                    Some(host)
                        if self.first_listing(
                            &mut seen6,
                            host,
                            &host.to_string(),
                            &span,
                            &item_key,
                            "",
                        ) =>
                    {
                        hosts6.push(host);
                    }
                    _ => valid = false,
                }
                continue;
            }
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
        valid.then_some((hosts, hosts6))
    }

    /// One IPv6 entry of `nfs.export_hosts`: a global unicast address (a
    /// link-local one would need a scope exports(5) cannot give), not a
    /// VIP.
    fn export_host6(
        &mut self,
        text: &str,
        span: Range<usize>,
        key: &str,
        vips6: &[VirtualIp6],
    ) -> Option<Ipv6Addr> {
        let problem = match text.parse::<Ipv6Addr>() {
            Err(_) => Some(format!(
                "{text:?} is not an IPv4 or IPv6 address (e.g. \"192.168.10.201\" or \"2001:db8:10::201\")"
            )),
            Ok(a) if a.is_unspecified() || a.is_loopback() || a.is_multicast() => Some(format!(
                "{a} is not a unicast host address"
            )),
            Ok(a) if is_link_local6(a) => Some(format!(
                "{a} is link-local: followers mount from a global address, list that one"
            )),
            Ok(a) if vips6.iter().any(|v| v.address == a) => Some(format!(
                "{a} is a virtual IP; list the nodes' own addresses"
            )),
            Ok(_) => None,
        };
        match problem {
            Some(problem) => {
                self.error(span, key, problem);
                None
            }
            None => text.parse().ok(),
        }
    }

    /// `noinet4`/`noinet6` against the family followers mount over:
    /// mount_nfs.c `getnfsargs` skips every address of the family it names
    /// (`OF_NOINET4`, `OF_NOINET6`), so with the VIP's own family the
    /// mount fails at once.
    fn mount_family(&mut self, value: &Value<'_>, text: String, ipv6: bool) -> Option<String> {
        let (refused, family) = if ipv6 {
            ("noinet6", "IPv6")
        } else {
            ("noinet4", "IPv4")
        };
        if text.split(',').any(|option| option.trim() == refused) {
            self.error(
                value.span(),
                "nfs.mount_options",
                format!("{refused}: the virtual IP the followers mount from is {family} (mount_nfs.c skips every {family} address with it: the mount would fail)"),
            );
            return None;
        }
        Some(text)
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
