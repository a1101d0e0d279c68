//! The checks that tie several sections together, each called by the
//! section reader that has both sides at hand (so every problem is still
//! reported once, where the operator has to fix it):
//!
//! - `[storage]`, `[nfs]` and `[environments]` need `[cbsd]`;
//! - `storage.root` and `cbsd.workdir` are separate trees;
//! - a master candidate (`[storage]`) has `[nfs]` naming who may mount,
//!   and `nfs.remote_root` equals its `storage.root`;
//! - `nfs.export_network` contains every virtual IP of `[vrrp]`, and
//!   `nfs.export_hosts` lists none.
//!
//! The checks within one section stay with that section's reader.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;

use toml::de::DeTable;

use super::Reader;
use crate::config::nfs::Ipv4Net;
use crate::config::VirtualIp;

impl Reader<'_> {
    /// `[storage]`, `[nfs]` and `[environments]` only mean something on a
    /// CBSD node.
    pub(super) fn sections_needing_cbsd(&mut self, root: &DeTable<'_>) {
        for needs_cbsd in ["storage", "nfs", "environments"] {
            if root.get("cbsd").is_none() {
                if let Some(value) = root.get(needs_cbsd) {
                    self.error(
                        value.span(),
                        needs_cbsd,
                        format!("[{needs_cbsd}] needs a [cbsd] table (without it the node only moves the virtual IP)"),
                    );
                }
            }
        }
    }

    /// `storage.root` against `cbsd.workdir`: the master binds one into the
    /// other, so neither may contain the other.
    pub(super) fn storage_root_apart_from_workdir(
        &mut self,
        table: &DeTable<'_>,
        span: &Range<usize>,
        root: &Path,
        workdir: &Path,
    ) {
        if root.starts_with(workdir) || workdir.starts_with(root) {
            let at = table.get("root").map_or(span.clone(), |v| v.span());
            self.error(
                at,
                "storage.root",
                format!(
                    "{} overlaps cbsd.workdir {}: the master binds <root>/<dir> onto <workdir>/<dir>, so they must be separate trees (e.g. \"/store\")",
                    root.display(),
                    workdir.display()
                ),
            );
        }
    }

    /// A master candidate (`[storage]`) without `[nfs]`.
    pub(super) fn master_candidate_without_nfs(&mut self, root: &DeTable<'_>) {
        self.error(
            root.get("storage").map_or(0..0, |v| v.span()),
            "nfs.export_network",
            "a master candidate ([storage]) must say who may mount: add [nfs] with export_network or export_hosts",
        );
    }

    /// A master candidate's `[nfs]` (at `span`) names its clients.
    pub(super) fn master_candidate_names_its_clients(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
    ) {
        if table.get("export_network").is_none() && table.get("export_hosts").is_none() {
            self.error(
                span,
                "nfs.export_network",
                "missing; a master candidate ([storage]) must say who may mount: set export_network (e.g. \"192.168.10.0/24\") or export_hosts",
            );
        }
    }

    /// `nfs.remote_root` (at `span`) against `storage.root`.
    pub(super) fn remote_root_is_storage_root(
        &mut self,
        span: Range<usize>,
        remote: &Path,
        local: &Path,
    ) {
        if remote != local {
            self.error(
                span,
                "nfs.remote_root",
                format!(
                    "{} differs from storage.root {}: every node mounts what the master exports, so both must be the same path on every node",
                    remote.display(),
                    local.display()
                ),
            );
        }
    }

    /// `nfs.export_network` (at `span`) against `vrrp.virtual_ips`; false
    /// when a VIP lies outside it.
    pub(super) fn export_network_contains_the_vips(
        &mut self,
        span: Range<usize>,
        net: Ipv4Net,
        vips: &[VirtualIp],
    ) -> bool {
        if let Some(vip) = vips.iter().find(|v| !net.contains(v.address)) {
            self.error(
                span,
                "nfs.export_network",
                format!(
                    "{net} does not contain the virtual IP {}: the followers mount from the VIP's network, export to it",
                    vip.address
                ),
            );
            return false;
        }
        true
    }

    /// One of `nfs.export_hosts` (at `span`, `key`) against
    /// `vrrp.virtual_ips`; false when it is a VIP.
    pub(super) fn export_host_is_not_a_vip(
        &mut self,
        host: Ipv4Addr,
        vips: &[VirtualIp],
        span: Range<usize>,
        key: &str,
    ) -> bool {
        if vips.iter().any(|v| v.address == host) {
            self.error(
                span,
                key,
                format!("{host} is a virtual IP; list the nodes' own addresses (the NFS clients)"),
            );
            return false;
        }
        true
    }
}
