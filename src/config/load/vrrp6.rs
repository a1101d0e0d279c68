//! IPv6 in `[vrrp]` and the `[vrrp6]` section.
//!
//! A virtual router is IPv4 or IPv6, never both: RFC 5798 §1 keeps the
//! virtual routers of the two families apart ("a domain unto themselves"),
//! and one advertisement carries the addresses of one family (§5.2.5
//! "Count IPvX Addr", §5.2.9 "IPvX Address(es)"). So `vrrp.virtual_ips`
//! decides the family of `[vrrp]` by its first entry and refuses a mix at
//! the first entry of the other family; a dual-stack node puts its IPv6
//! router in `[vrrp6]`, whose unset keys are `[vrrp]`'s.
//!
//! The IPv6 rules, each from the RFC or from what main's wire and network
//! layers already decided (docs/election.md "IPv6"):
//!
//! - the first address of the list is the virtual router's link-local
//!   address (§5.2.9 "MUST"); `wire::vrrp6` refuses to send anything else;
//! - the source of the adverts is a link-local address (§5.1.2.1);
//! - multicast only: the IPv6 socket sends to ff02::12 (§5.1.2.2) and
//!   `unicast_peers` is refused for now;
//! - the checksum always covers the pseudo-header (§5.2.8): the IPv4-only
//!   `checksum = "no-pseudo-header"` is refused.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::Duration;

use toml::de::DeTable;

use super::{Reader, Value, MAX_VIRTUAL_IPS};
use crate::config::{is_link_local6, VirtualIp, VirtualIp6, Vrrp, Vrrp6};
use crate::wire::Centis;

const VRRP6_KEYS: &[&str] = &[
    "interface",
    "vrid",
    "priority",
    "advert_interval",
    "virtual_ips",
    "preempt",
    "preempt_delay",
    "source_address",
];

/// RFC 5798 §1: the virtual routers of each family "are a domain unto
/// themselves and do not overlap"; §5.2.9: an advert's addresses are of one
/// family.
const ONE_FAMILY: &str = "a virtual router is IPv4 or IPv6, never both (RFC 5798 §1; §5.2.9: an advertisement carries the addresses of one family)";

/// A parsed `virtual_ips` list, with each entry's span.
pub(super) enum Vips {
    /// An IPv4 virtual router.
    V4(Vec<(VirtualIp, Range<usize>)>),
    /// An IPv6 virtual router.
    V6(Vec<(VirtualIp6, Range<usize>)>),
}

/// A parsed `source_address`.
#[derive(Clone, Copy)]
pub(super) enum Source {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// Whether a `virtual_ips` entry is written as an IPv6 address.
fn looks_ipv6(text: &str) -> bool {
    text.split('/').next().unwrap_or(text).contains(':')
}

impl Reader<'_> {
    /// `key` (`vrrp.virtual_ips` or `vrrp6.virtual_ips`): 1..=255
    /// addresses of one family, the first deciding it; `v6_only` for
    /// `[vrrp6]`.
    pub(super) fn virtual_ips_any(
        &mut self,
        value: &Value<'_>,
        key: &str,
        v6_only: bool,
    ) -> Option<Vips> {
        let items = self.string_array(value, key)?;
        if items.is_empty() {
            let example = if v6_only {
                "[\"fe80::12/64\", \"2001:db8::12/64\"]"
            } else {
                "[\"192.168.10.200/24\"]"
            };
            self.error(
                value.span(),
                key,
                format!("empty; list at least one address, e.g. {example}"),
            );
            return None;
        }
        if items.len() > MAX_VIRTUAL_IPS {
            self.error(
                value.span(),
                key,
                format!(
                    "{} addresses; an advertisement carries at most {MAX_VIRTUAL_IPS}",
                    items.len()
                ),
            );
            return None;
        }
        let ipv6 = items.first().is_some_and(|(text, _, _)| looks_ipv6(text));
        let mut mixed = false;
        for (index, (text, span, item_key)) in items.iter().enumerate() {
            if v6_only && !looks_ipv6(text) {
                self.error(
                    span.clone(),
                    item_key,
                    format!("{text} is IPv4: [vrrp6] is the IPv6 virtual router and {ONE_FAMILY}; IPv4 addresses go in vrrp.virtual_ips"),
                );
                mixed = true;
            } else if index > 0 && looks_ipv6(text) != ipv6 {
                let advice = if ipv6 {
                    "make [vrrp] the IPv4 router and put the IPv6 addresses in [vrrp6]"
                } else {
                    "put the IPv6 addresses in [vrrp6]"
                };
                let (this, first) = if ipv6 {
                    ("IPv4", "IPv6")
                } else {
                    ("IPv6", "IPv4")
                };
                self.error(
                    span.clone(),
                    item_key,
                    format!("{text} is {this} but {key}[0] is {first}: {ONE_FAMILY}; {advice}"),
                );
                mixed = true;
            }
        }
        if mixed {
            return None;
        }
        if ipv6 {
            self.virtual_ips6(items).map(Vips::V6)
        } else {
            self.virtual_ips(items).map(Vips::V4)
        }
    }

    /// The IPv6 entries of a list, the first one link-local (§5.2.9).
    fn virtual_ips6(
        &mut self,
        items: Vec<(String, Range<usize>, String)>,
    ) -> Option<Vec<(VirtualIp6, Range<usize>)>> {
        self.vip_list(
            items,
            |reader, index, text, span, key| {
                let vip = reader.virtual_ip6(text, span.clone(), key)?;
                if index == 0 && !is_link_local6(vip.address) {
                    reader.error(
                        span,
                        key,
                        format!(
                            "{text} is not link-local: the first address of an IPv6 virtual router MUST be its link-local address (RFC 5798 §5.2.9); list one first, e.g. \"fe80::12/64\", the same on every node"
                        ),
                    );
                    return None;
                }
                Some(vip)
            },
            |vip| vip.address,
        )
    }

    /// One IPv6 virtual address, `ADDR` or `ADDR/PREFIX` (1..=128; /128
    /// without one, as `ip -6 addr add` and ifconfig(8) take it).
    fn virtual_ip6(&mut self, text: &str, span: Range<usize>, key: &str) -> Option<VirtualIp6> {
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let Ok(address) = address_text.parse::<Ipv6Addr>() else {
            self.error(
                span,
                key,
                format!("{text:?} is not an IPv6 address (e.g. \"2001:db8::12/64\")"),
            );
            return None;
        };
        if let Some(problem) = not_a_unicast6(address) {
            self.error(
                span,
                key,
                format!("{address} is {problem}; a unicast host address is required"),
            );
            return None;
        }
        let prefix_len = match prefix_text {
            None => 128,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(len) if (1..=128).contains(&len) => len,
                _ => {
                    self.error(
                        span,
                        key,
                        format!("{text:?}: the prefix length must be 1..=128 (e.g. \"2001:db8::12/64\"; without it, /128)"),
                    );
                    return None;
                }
            },
        };
        Some(VirtualIp6 {
            address,
            prefix_len,
        })
    }

    /// `source_address` at `key`: IPv4 for an IPv4 router, link-local IPv6
    /// for an IPv6 one; `ipv6` is the router's family (`None`: unknown, the
    /// address is read in its own).
    pub(super) fn source_address(
        &mut self,
        value: &Value<'_>,
        key: &str,
        ipv6: Option<bool>,
    ) -> Option<Source> {
        let text = self.string(value, key)?;
        let written_ipv6 = looks_ipv6(&text);
        match ipv6 {
            Some(true) if !written_ipv6 => {
                self.error(
                    value.span(),
                    key,
                    format!("{text} is IPv4 but this virtual router is IPv6 (its virtual_ips are): the source is a link-local IPv6 address (RFC 5798 §5.1.2.1); leave it out to use the interface's"),
                );
                return None;
            }
            Some(false) if written_ipv6 => {
                self.error(
                    value.span(),
                    key,
                    format!("{text} is IPv6 but [vrrp] is IPv4 (its virtual_ips are): an IPv6 router goes in [vrrp6], with its own source_address"),
                );
                return None;
            }
            _ => {}
        }
        if !written_ipv6 {
            return self
                .unicast_address(&text, value.span(), key)
                .map(Source::V4);
        }
        let Ok(address) = text.parse::<Ipv6Addr>() else {
            self.error(
                value.span(),
                key,
                format!("{text:?} is not an IPv6 address (e.g. \"fe80::1\")"),
            );
            return None;
        };
        if !is_link_local6(address) {
            self.error(
                value.span(),
                key,
                format!("{address} is not link-local: IPv6 adverts are sent from the interface's link-local address (fe80::/10, RFC 5798 §5.1.2.1); leave it out to use the interface's"),
            );
            return None;
        }
        Some(Source::V6(address))
    }

    /// `unicast_peers` in an IPv6 `[vrrp]`.
    pub(super) fn no_unicast_over_ipv6(&mut self, value: &Value<'_>) {
        self.error(
            value.span(),
            "vrrp.unicast_peers",
            "not supported for an IPv6 virtual router yet: its socket sends to ff02::12 only (RFC 5798 §5.1.2.2); remove the key",
        );
    }

    /// `checksum = "no-pseudo-header"` in an IPv6 `[vrrp]`.
    pub(super) fn no_checksum_choice_over_ipv6(&mut self, value: &Value<'_>) {
        self.error(
            value.span(),
            "vrrp.checksum",
            "\"no-pseudo-header\" is an IPv4 form only: over IPv6 the checksum always covers the pseudo-header (RFC 5798 §5.2.8); remove the key",
        );
    }

    /// The IPv6 source (of `[section]`) is not one of its VIPs.
    pub(super) fn source_is_not_a_vip6(
        &mut self,
        table: &DeTable<'_>,
        section: &str,
        vips: &[(VirtualIp6, Range<usize>)],
        source: Ipv6Addr,
    ) {
        if vips.iter().any(|(vip, _)| vip.address == source) {
            let span = table
                .get("source_address")
                .map_or(0..0, |value| value.span());
            self.error(
                span,
                &format!("{section}.source_address"),
                format!("{source} is a virtual IP; the source must be this node's own link-local address (it moves with no VIP)"),
            );
        }
    }

    /// `[vrrp6]`: `Some(None)` when absent, `None` when invalid. `vrrp` is
    /// the valid `[vrrp]` whose keys are the defaults.
    pub(super) fn vrrp6_section(
        &mut self,
        root: &DeTable<'_>,
        vrrp: Option<&Vrrp>,
    ) -> Option<Option<Vrrp6>> {
        let Some(value) = root.get("vrrp6") else {
            return Some(None);
        };
        let table = self.table(value, "vrrp6")?;
        let span = value.span();
        self.unknown_keys(table, "vrrp6", VRRP6_KEYS);
        if vrrp.is_some_and(|v| !v.virtual_ips6.is_empty()) {
            self.error(
                span.clone(),
                "vrrp6",
                "[vrrp] is already IPv6 (its virtual_ips are): [vrrp6] is the IPv6 router next to an IPv4 [vrrp]; list the IPv6 addresses in one of the two",
            );
            return None;
        }
        let interface = match table.get("interface") {
            Some(value) => self.interface_at(value, "vrrp6.interface"),
            None => vrrp.map(|v| v.interface.clone()),
        };
        let vrid = self
            .required_in(
                table,
                "vrrp6",
                "vrid",
                &span,
                "the IPv6 router has its own virtual router id (1..=255; it may equal vrrp.vrid)",
            )
            .and_then(|value| self.integer(value, "vrrp6.vrid", 1..=255, "1..=255"));
        let priority = self.optional(
            table,
            "priority",
            vrrp.map_or(100, |v| i128::from(v.priority)),
            |reader, value| {
                reader.integer(
                    value,
                    "vrrp6.priority",
                    1..=255,
                    "1..=254, or 255 for the address owner",
                )
            },
        );
        let advert_interval = match table.get("advert_interval") {
            Some(value) => self.advert_interval(Some(value), "vrrp6.advert_interval"),
            None => Some(vrrp.map_or(Centis(100), |v| v.advert_interval)),
        };
        let virtual_ips = self
            .required_in(
                table,
                "vrrp6",
                "virtual_ips",
                &span,
                "list the IPv6 virtual IPs, the link-local one first",
            )
            .and_then(|value| self.virtual_ips_any(value, "vrrp6.virtual_ips", true));
        let preempt = self.optional(
            table,
            "preempt",
            vrrp.is_none_or(|v| v.preempt),
            |reader, value| reader.boolean(value, "vrrp6.preempt"),
        );
        let preempt_delay = self.duration_in(
            table.get("preempt_delay"),
            "vrrp6.preempt_delay",
            vrrp.map_or(Duration::ZERO, |v| v.preempt_delay),
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let source_address = match table.get("source_address") {
            Some(value) => match self.source_address(value, "vrrp6.source_address", Some(true)) {
                Some(Source::V6(source)) => Some(Some(source)),
                _ => None,
            },
            None => Some(None),
        };
        if let (Some(Vips::V6(vips)), Some(Some(source))) = (&virtual_ips, &source_address) {
            self.source_is_not_a_vip6(table, "vrrp6", vips, *source);
        }
        let virtual_ips = match virtual_ips? {
            Vips::V6(vips) => vips.into_iter().map(|(vip, _)| vip).collect(),
            Vips::V4(_) => return None,
        };
        Some(Some(Vrrp6 {
            interface: interface?,
            vrid: u8::try_from(vrid?).ok()?,
            priority: u8::try_from(priority?).ok()?,
            advert_interval: advert_interval?,
            virtual_ips,
            preempt: preempt?,
            preempt_delay: preempt_delay?,
            source_address: source_address?,
        }))
    }

    /// Every IPv6 VIP of the node: `[vrrp]`'s when it is IPv6, else
    /// `[vrrp6]`'s.
    pub(super) fn all_virtual_ips6(
        &self,
        vrrp: Option<&Vrrp>,
        vrrp6: Option<&Option<Vrrp6>>,
    ) -> Vec<VirtualIp6> {
        let mut vips: Vec<VirtualIp6> = vrrp.map(|v| v.virtual_ips6.clone()).unwrap_or_default();
        if let Some(Some(v6)) = vrrp6 {
            vips.extend(v6.virtual_ips.iter().copied());
        }
        vips
    }

    /// A `[cbsd]` node's followers mount from `[vrrp]`'s first virtual IP
    /// that is not link-local (`Config::mount_address`): an IPv6 `[vrrp]`
    /// needs one.
    pub(super) fn a_mount_address_exists(&mut self, root: &DeTable<'_>, vrrp: Option<&Vrrp>) {
        let Some(vrrp) = vrrp else {
            return;
        };
        let has_one = !vrrp.virtual_ips.is_empty()
            || vrrp.virtual_ips6.iter().any(|v| !is_link_local6(v.address));
        if has_one {
            return;
        }
        let span = root
            .get("vrrp")
            .and_then(|v| v.get_ref().as_table())
            .and_then(|t| t.get("virtual_ips"))
            .map_or(0..0, |v| v.span());
        self.error(
            span,
            "vrrp.virtual_ips",
            "only link-local addresses: [cbsd] followers mount the shared dirs from [vrrp]'s first global virtual IP (mount_nfs cannot name a link-local address's scope); add one, e.g. \"2001:db8::12/64\"",
        );
    }
}

/// Why `address` cannot be a host's unicast IPv6 address, if it cannot.
fn not_a_unicast6(address: Ipv6Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        Some("the unspecified address")
    } else if address.is_loopback() {
        Some("the loopback address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if address.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address (write the IPv4 address in [vrrp])")
    } else {
        None
    }
}
