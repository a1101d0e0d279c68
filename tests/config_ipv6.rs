//! IPv6 in the configuration (issue 15): an IPv6 `[vrrp]`, the dual-stack
//! `[vrrp6]`, `nfs.export_network6` and IPv6 `nfs.export_hosts`; every
//! mistake with `file:line:col` and key.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use rcbsd_failover::config::{
    parse_with_hostname, Config, ConfigError, InstanceAddresses, VirtualIp6,
};
use rcbsd_failover::wire::Centis;

const PATH: &str = "/etc/x.toml";

const V6: &str = r#"[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["fe80::51/64", "2001:db8:10::51/64"]
"#;

const DUAL: &str = r#"[vrrp]
interface = "em0"
vrid = 51
priority = 150
advert_interval = "500ms"
preempt_delay = "10s"
virtual_ips = ["192.168.10.200/24"]
[vrrp6]
vrid = 51
virtual_ips = ["fe80::51/64", "2001:db8:10::51/64"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_hostname(text, Path::new(PATH), Some("host-a"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error
            .diagnostics()
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

fn one_error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

fn ip6(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

fn vip6(text: &str, prefix_len: u8) -> VirtualIp6 {
    VirtualIp6 {
        address: ip6(text),
        prefix_len,
    }
}

#[test]
fn an_ipv6_vrrp_is_an_ipv6_instance() {
    let config = parse(&format!("{V6}source_address = \"fe80::1\"\n")).unwrap();
    assert!(config.vrrp.virtual_ips.is_empty());
    assert_eq!(
        config.vrrp.virtual_ips6,
        [vip6("fe80::51", 64), vip6("2001:db8:10::51", 64)]
    );
    assert_eq!(config.vrrp.source_address, None);
    assert_eq!(config.vrrp.source_address6, Some(ip6("fe80::1")));
    let instances = config.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].section, "vrrp");
    assert!(matches!(
        instances[0].addresses,
        InstanceAddresses::V6 { virtual_ips, source_address: Some(_) } if virtual_ips.len() == 2
    ));
    let (interface, vips) = config.virtual_ips6().unwrap();
    assert_eq!((interface, vips.len()), ("em0", 2));
    // Followers mount from the first global one.
    assert_eq!(
        config.mount_address(),
        Some(IpAddr::V6(ip6("2001:db8:10::51")))
    );
}

#[test]
fn an_ipv6_address_without_a_prefix_is_a_128() {
    let config = parse(
        "[vrrp]\ninterface = \"em0\"\nvrid = 1\nvirtual_ips = [\"fe80::1\", \"2001:db8::1\"]\n",
    )
    .unwrap();
    assert_eq!(
        config.vrrp.virtual_ips6,
        [vip6("fe80::1", 128), vip6("2001:db8::1", 128)]
    );
}

#[test]
fn vrrp6_takes_the_unset_keys_from_vrrp() {
    let config = parse(DUAL).unwrap();
    let v6 = config.vrrp6.as_ref().unwrap();
    assert_eq!(v6.interface, "em0");
    assert_eq!(v6.priority, 150);
    assert_eq!(v6.advert_interval, Centis(50));
    assert!(v6.preempt);
    assert_eq!(v6.preempt_delay, Duration::from_secs(10));
    assert_eq!(v6.source_address, None);
    let instances = config.instances();
    let sections: Vec<(&str, u8)> = instances.iter().map(|i| (i.section, i.vrid)).collect();
    // The same VRID for both families is allowed (RFC 5798 §1, §7.3).
    assert_eq!(sections, [("vrrp", 51), ("vrrp6", 51)]);
    assert!(matches!(
        instances[0].addresses,
        InstanceAddresses::V4 { .. }
    ));
    assert!(matches!(
        instances[1].addresses,
        InstanceAddresses::V6 { .. }
    ));
    // Dual stack: followers mount from [vrrp]'s IPv4 VIP.
    assert_eq!(
        config.mount_address(),
        Some(IpAddr::V4("192.168.10.200".parse().unwrap()))
    );
    assert_eq!(config.virtual_ips4().len(), 1);
    assert_eq!(config.virtual_ips6().unwrap().1.len(), 2);
}

#[test]
fn vrrp6_keys_override_vrrp() {
    let config = parse(&format!(
        "{DUAL}interface = \"em1\"\npriority = 90\nadvert_interval = \"1s\"\npreempt = false\npreempt_delay = \"0s\"\nsource_address = \"fe80::2\"\n"
    ))
    .unwrap();
    let v6 = config.vrrp6.unwrap();
    assert_eq!(
        (v6.interface.as_str(), v6.priority, v6.advert_interval),
        ("em1", 90, Centis(100))
    );
    assert!(!v6.preempt);
    assert_eq!(v6.preempt_delay, Duration::ZERO);
    assert_eq!(v6.source_address, Some(ip6("fe80::2")));
}

#[test]
fn a_family_mix_is_refused_at_the_offending_entry() {
    let error = one_error(
        "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\", \"2001:db8::1/64\"]\n",
    );
    assert!(
        error.starts_with("/etc/x.toml:4:37: vrrp.virtual_ips[1]: 2001:db8::1/64 is IPv6 but vrrp.virtual_ips[0] is IPv4: a virtual router is IPv4 or IPv6, never both (RFC 5798 §1;"),
        "{error}"
    );
    assert!(
        error.ends_with("put the IPv6 addresses in [vrrp6]"),
        "{error}"
    );
    let error = one_error(
        "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"fe80::1/64\", \"192.168.10.200/24\"]\n",
    );
    assert!(
        error.contains(
            "vrrp.virtual_ips[1]: 192.168.10.200/24 is IPv4 but vrrp.virtual_ips[0] is IPv6"
        ),
        "{error}"
    );
    assert!(
        error.ends_with("make [vrrp] the IPv4 router and put the IPv6 addresses in [vrrp6]"),
        "{error}"
    );
}

#[test]
fn vrrp6_takes_ipv6_only() {
    let error = one_error(&DUAL.replace(
        "[\"fe80::51/64\", \"2001:db8:10::51/64\"]",
        "[\"fe80::51/64\", \"192.168.10.201\"]",
    ));
    assert!(
        error.starts_with("/etc/x.toml:10:31: vrrp6.virtual_ips[1]: 192.168.10.201 is IPv4: [vrrp6] is the IPv6 virtual router and a virtual router is IPv4 or IPv6, never both"),
        "{error}"
    );
}

#[test]
fn the_first_ipv6_address_must_be_link_local() {
    let error = one_error(
        "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"2001:db8::1/64\", \"fe80::1/64\"]\n",
    );
    assert!(
        error.starts_with("/etc/x.toml:4:16: vrrp.virtual_ips[0]: 2001:db8::1/64 is not link-local: the first address of an IPv6 virtual router MUST be its link-local address (RFC 5798 §5.2.9)"),
        "{error}"
    );
    let error = one_error(&DUAL.replace("\"fe80::51/64\", ", ""));
    assert!(error.contains("vrrp6.virtual_ips[0]"), "{error}");
}

#[test]
fn bad_ipv6_prefixes_and_addresses_are_refused() {
    for (entry, expected) in [
        (
            "fe80::1/0",
            "\"fe80::1/0\": the prefix length must be 1..=128",
        ),
        (
            "fe80::1/129",
            "\"fe80::1/129\": the prefix length must be 1..=128",
        ),
        (
            "fe80::1/x",
            "\"fe80::1/x\": the prefix length must be 1..=128",
        ),
        ("fe80::zz", "\"fe80::zz\" is not an IPv6 address"),
        ("::", ":: is the unspecified address"),
        ("::1", "::1 is the loopback address"),
        ("ff02::12", "ff02::12 is a multicast address"),
        ("::ffff:192.168.10.1", "is an IPv4-mapped address"),
    ] {
        let error = one_error(&format!(
            "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"{entry}\"]\n"
        ));
        assert!(
            error.starts_with("/etc/x.toml:4:16: vrrp.virtual_ips[0]: "),
            "{error}"
        );
        assert!(error.contains(expected), "{entry}: {error}");
    }
}

#[test]
fn a_duplicate_ipv6_vip_is_refused_where_it_repeats() {
    let error = one_error(
        "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"fe80::1/64\", \"2001:db8::1/64\", \"2001:db8:0::1/128\"]\n",
    );
    assert!(
        error.starts_with("/etc/x.toml:4:48: vrrp.virtual_ips[2]: 2001:db8::1 is listed twice (first at line 4, column 30)"),
        "{error}"
    );
}

#[test]
fn the_ipv6_source_must_be_link_local_and_not_a_vip() {
    let error = one_error(&format!("{V6}source_address = \"2001:db8:10::1\"\n"));
    assert!(
        error
            .starts_with("/etc/x.toml:5:18: vrrp.source_address: 2001:db8:10::1 is not link-local"),
        "{error}"
    );
    assert!(error.contains("RFC 5798 §5.1.2.1"), "{error}");
    let error = one_error(&format!("{V6}source_address = \"fe80::51\"\n"));
    assert!(
        error.contains("vrrp.source_address: fe80::51 is a virtual IP"),
        "{error}"
    );
    let error = one_error(&format!("{V6}source_address = \"192.168.10.1\"\n"));
    assert!(
        error.contains("192.168.10.1 is IPv4 but this virtual router is IPv6"),
        "{error}"
    );
    let error = one_error(&format!("{DUAL}source_address = \"2001:db8::2\"\n"));
    assert!(
        error.contains("vrrp6.source_address: 2001:db8::2 is not link-local"),
        "{error}"
    );
}

#[test]
fn an_ipv6_source_in_an_ipv4_vrrp_points_to_vrrp6() {
    let error = one_error(
        "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\nsource_address = \"fe80::1\"\n",
    );
    assert!(
        error.contains("vrrp.source_address: fe80::1 is IPv6 but [vrrp] is IPv4"),
        "{error}"
    );
}

#[test]
fn unicast_over_ipv6_is_refused_for_now() {
    let error = one_error(&format!("{V6}unicast_peers = [\"2001:db8:10::2\"]\n"));
    assert!(
        error.starts_with(
            "/etc/x.toml:5:17: vrrp.unicast_peers: not supported for an IPv6 virtual router yet"
        ),
        "{error}"
    );
}

#[test]
fn the_ipv4_checksum_form_is_refused_over_ipv6() {
    let error = one_error(&format!("{V6}checksum = \"no-pseudo-header\"\n"));
    assert!(
        error.contains("vrrp.checksum: \"no-pseudo-header\" is an IPv4 form only"),
        "{error}"
    );
    assert!(parse(&format!("{V6}checksum = \"pseudo-header\"\n")).is_ok());
}

#[test]
fn vrrp6_next_to_an_ipv6_vrrp_is_refused() {
    let error = one_error(&format!(
        "{V6}[vrrp6]\nvrid = 52\nvirtual_ips = [\"fe80::52/64\"]\n"
    ));
    assert!(
        error.contains("vrrp6: [vrrp] is already IPv6 (its virtual_ips are)"),
        "{error}"
    );
}

#[test]
fn vrrp6_needs_its_vrid_and_addresses() {
    let errors = errors("[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n[vrrp6]\npriority = 10\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e
                .contains("vrrp6.vrid: missing; the IPv6 router has its own virtual router id")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("vrrp6.virtual_ips: missing")),
        "{errors:?}"
    );
    let error = one_error(&format!("{DUAL}unicast_peers = [\"2001:db8::2\"]\n"));
    assert!(error.contains("vrrp6.unicast_peers"), "{error}");
    let error = one_error(&DUAL.replace(
        "vrid = 51\nvirtual_ips = [\"fe80",
        "vrid = 0\nvirtual_ips = [\"fe80",
    ));
    assert!(error.contains("vrrp6.vrid"), "{error}");
}

#[test]
fn a_cbsd_node_needs_a_global_vip_to_mount_from() {
    let error = one_error(
        "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"fe80::1/64\"]\n[cbsd]\n",
    );
    assert!(
        error.starts_with(
            "/etc/x.toml:4:15: vrrp.virtual_ips: only link-local addresses: [cbsd] followers mount"
        ),
        "{error}"
    );
    // Without [cbsd] a link-local-only router is fine.
    assert!(
        parse("[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"fe80::1/64\"]\n").is_ok()
    );
}

const STORAGE: &str = "[cbsd]\n[storage]\nkind = \"none\"\n";

#[test]
fn export_network6_and_ipv6_export_hosts() {
    let config = parse(&format!(
        "{V6}{STORAGE}[nfs]\nexport_network6 = \"2001:db8:10::/64\"\nexport_hosts = [\"192.168.10.201\", \"2001:db8:10::201\"]\n"
    ))
    .unwrap();
    let net = config.nfs.export_network6.unwrap();
    assert_eq!(net.to_string(), "2001:db8:10::/64");
    assert_eq!(config.nfs.export_hosts6, [ip6("2001:db8:10::201")]);
    assert_eq!(config.nfs.export_hosts.len(), 1);
    // export_network6 alone names the clients of a master candidate.
    assert!(parse(&format!(
        "{DUAL}{STORAGE}[nfs]\nexport_network6 = \"2001:db8:10::/64\"\n"
    ))
    .is_ok());
}

#[test]
fn bad_ipv6_exports_are_refused() {
    for (line, expected) in [
        (
            "export_network6 = \"2001:db8:10::1/64\"",
            "nfs.export_network6: 2001:db8:10::1/64 has host bits set",
        ),
        (
            "export_network6 = \"2001:db8:10::/0\"",
            "is not an IPv6 network (address/prefix, prefix 1..=128",
        ),
        (
            "export_network6 = \"2001:db8:10::/129\"",
            "is not an IPv6 network",
        ),
        (
            "export_network6 = \"192.168.10.0/24\"",
            "is not an IPv6 network",
        ),
        (
            "export_network6 = \"2001:db8:99::/64\"",
            "2001:db8:99::/64 does not contain the virtual IP 2001:db8:10::51",
        ),
        (
            "export_network = \"2001:db8:10::/64\"",
            "nfs.export_network: 2001:db8:10::/64 is IPv6: an IPv6 network goes in nfs.export_network6",
        ),
        (
            "export_hosts = [\"fe80::9\"]",
            "nfs.export_hosts[0]: fe80::9 is link-local",
        ),
        (
            "export_hosts = [\"2001:db8:10::51\"]",
            "nfs.export_hosts[0]: 2001:db8:10::51 is a virtual IP",
        ),
        (
            "export_hosts = [\"2001:db8::9\", \"2001:db8::9\"]",
            "nfs.export_hosts[1]: 2001:db8::9 is listed twice",
        ),
        (
            "export_hosts = [\"2001:db8::g\"]",
            "is not an IPv4 or IPv6 address",
        ),
    ] {
        let error = one_error(&format!("{V6}{STORAGE}[nfs]\n{line}\n"));
        assert!(error.starts_with("/etc/x.toml:9:"), "{error}");
        assert!(error.contains(expected), "{line}: {error}");
    }
}

#[test]
fn noinet_options_are_checked_against_the_mount_family() {
    let error = one_error(&format!(
        "{V6}{STORAGE}[nfs]\nexport_network6 = \"2001:db8:10::/64\"\nmount_options = \"nfsv4,minorversion=1,hard,retrycnt=1,noinet6\"\n"
    ));
    assert!(
        error.contains(
            "nfs.mount_options: noinet6: the virtual IP the followers mount from is IPv6"
        ),
        "{error}"
    );
    assert!(parse(&format!(
        "{V6}{STORAGE}[nfs]\nexport_network6 = \"2001:db8:10::/64\"\nmount_options = \"nfsv4,minorversion=1,hard,retrycnt=1,noinet4\"\n"
    ))
    .is_ok());
    let error = one_error(&format!(
        "{DUAL}{STORAGE}[nfs]\nexport_network = \"192.168.10.0/24\"\nmount_options = \"nfsv4,hard,retrycnt=1,noinet4\"\n"
    ));
    assert!(
        error.contains("noinet4: the virtual IP the followers mount from is IPv4"),
        "{error}"
    );
    assert!(parse(&format!(
        "{DUAL}{STORAGE}[nfs]\nexport_network = \"192.168.10.0/24\"\nmount_options = \"nfsv4,hard,retrycnt=1,noinet6\"\n"
    ))
    .is_ok());
}

#[test]
fn a_candidate_serving_over_ipv6_exports_to_ipv6_clients() {
    let error = one_error(&format!(
        "{V6}{STORAGE}[nfs]\nexport_network = \"192.168.10.0/24\"\n"
    ));
    assert!(
        error.contains("nfs.export_network6: missing; the followers mount from an IPv6 virtual IP"),
        "{error}"
    );
    assert!(parse(&format!(
        "{V6}{STORAGE}[nfs]\nexport_hosts = [\"2001:db8:10::1\", \"2001:db8:10::2\"]\n"
    ))
    .is_ok());
    // A follower-only node exports nothing.
    assert!(parse(&format!("{V6}[cbsd]\n")).is_ok());
}

const CLUSTER6: &str = r#"[node]
name = "host-a"
[cluster]
nodes = [
  { name = "host-a", address = "2001:db8:10::11" },
  { name = "host-b", address = "2001:db8:10::12" },
  { name = "host-c", address = "2001:db8:10::13" },
]
"#;

#[test]
fn cluster_addresses_may_be_ipv6() {
    let config = parse(&format!("{V6}{CLUSTER6}")).unwrap();
    let cluster = config.cluster.expect("[cluster]");
    assert_eq!(
        cluster.nodes.iter().map(|n| n.address).collect::<Vec<_>>(),
        ["2001:db8:10::11", "2001:db8:10::12", "2001:db8:10::13"]
            .map(|a| IpAddr::V6(ip6(a)))
            .to_vec()
    );
    assert_eq!(
        cluster
            .node_at(IpAddr::V6(ip6("2001:db8:10::12")))
            .map(|n| n.name.as_str()),
        Some("host-b")
    );
}

#[test]
fn cluster_addresses_are_one_family_global_and_not_vips() {
    let mixed = CLUSTER6.replace("2001:db8:10::12", "192.168.10.12");
    let error = one_error(&format!("{V6}{mixed}"));
    assert!(error.contains("cluster.nodes[1].address"), "{error}");
    assert!(
        error.contains("all cluster addresses are IPv4 or all are IPv6"),
        "{error}"
    );

    let link_local = CLUSTER6.replace("2001:db8:10::12", "fe80::12");
    let error = one_error(&format!("{V6}{link_local}"));
    assert!(error.contains("link-local"), "{error}");

    let mapped = CLUSTER6.replace("2001:db8:10::12", "::ffff:192.168.10.12");
    let error = one_error(&format!("{V6}{mapped}"));
    assert!(error.contains("IPv4-mapped"), "{error}");

    let vip = CLUSTER6.replace("2001:db8:10::12", "2001:db8:10::51");
    let error = one_error(&format!("{V6}{vip}"));
    assert!(error.contains("is a virtual IP"), "{error}");
}
