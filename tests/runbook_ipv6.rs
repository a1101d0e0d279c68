//! The runbooks of an IPv6 and a dual-stack node (issue 15): both families'
//! VIPs, last on promote and first on demote, IPv6 ones without DAD and
//! announced by Neighbor Advertisements; IPv6 exports; followers mounting
//! from `[VIP]:/path`; `sockstat -6l`; all of it in `plan`.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;

use rcbsd_failover::config::{parse_with_hostname, Config, EnvKind};
use rcbsd_failover::net::vip::Os;
use rcbsd_failover::runbook::step::{Action, Builtin, OnFailure, Step};
use rcbsd_failover::runbook::{demote, follow, plan, promote, Context, Env, Kind};

const DUAL: &str = r#"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["192.168.10.200/24"]
[vrrp6]
interface = "em1"
vrid = 51
virtual_ips = ["fe80::51/64", "2001:db8:10::51/64"]
"#;

const V6: &str = r#"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["fe80::51/64", "2001:db8:10::51/64"]
"#;

const CBSD: &str = r#"
[cbsd]
shared_dirs = ["jails-data", "jails-system"]
[storage]
kind = "none"
[environments]
jails = ["J"]
"#;

fn config(vrrp: &str, nfs: &str) -> Config {
    let text = format!("[node]\nname = \"node1\"\n{vrrp}{CBSD}[nfs]\n{nfs}\n");
    parse_with_hostname(&text, Path::new("/etc/x.toml"), None).unwrap()
}

fn dual() -> Config {
    config(
        DUAL,
        "export_network = \"192.168.10.0/24\"\nexport_network6 = \"2001:db8:10::/64\"",
    )
}

fn v6() -> Config {
    config(V6, "export_network6 = \"2001:db8:10::/64\"")
}

fn j() -> Vec<Env> {
    vec![Env {
        name: "J".into(),
        kind: EnvKind::Jail,
    }]
}

fn names(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.name.as_str()).collect()
}

fn argv(step: &Step) -> String {
    match &step.action {
        Action::Run(checked) => checked.command.argv.join(" "),
        Action::Ensure(ensure) => ensure
            .acts
            .first()
            .map_or_else(String::new, |c| c.argv.join(" ")),
        Action::Builtin(_) => String::new(),
    }
}

#[test]
fn dual_stack_promote_adds_both_families_last_then_announces_each() {
    let config = dual();
    let steps = promote::build(&config, &j());
    let names = names(&steps);
    let n = names.len();
    assert_eq!(names[n - 3..], ["add vip", "arp burst", "na burst"]);
    assert!(matches!(
        steps[n - 1].action,
        Action::Builtin(Builtin::NaBurst)
    ));
    // A lost burst does not fail the promote, as for ARP.
    assert_eq!(steps[n - 1].on_failure, OnFailure::Continue);
    // One step adds both families, so its undo drops both.
    assert_eq!(
        steps[n - 3].undo.as_ref().map(|u| u.name.as_str()),
        Some("drop vip")
    );
    // nfsd is checked in both families clients mount over.
    let listens: Vec<String> = steps
        .iter()
        .filter(|s| s.name.starts_with("verify nfsd listens"))
        .map(argv)
        .collect();
    assert_eq!(
        listens,
        [
            "/usr/bin/sockstat -4l -p 2049",
            "/usr/bin/sockstat -6l -p 2049"
        ]
    );
}

#[test]
fn dual_stack_demote_drops_both_families_first() {
    let config = dual();
    let steps = demote::build(&config, &j());
    assert_eq!(steps[0].name, "drop vip");
    let text = plan::render(&config, Kind::Demote, Os::FreeBsd, &[]);
    let v4 = text
        .find("ifconfig em0 inet 192.168.10.200 -alias")
        .unwrap();
    let v6 = text
        .find("ifconfig em1 inet6 2001:db8:10::51 -alias")
        .unwrap();
    let ll = text.find("ifconfig em1 inet6 fe80::51 -alias").unwrap();
    assert!(v4 < ll && ll < v6, "{text}");
    // Before anything else of the demote.
    assert!(v6 < text.find("service").unwrap(), "{text}");
}

#[test]
fn plan_shows_the_ipv6_vips_without_dad_and_the_na_burst() {
    let config = dual();
    let text = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    println!("{text}");
    let v4 = text
        .find("ifconfig em0 inet 192.168.10.200/32 alias (unless present)")
        .unwrap();
    let ll = text
        .find("ifconfig em1 inet6 fe80::51 prefixlen 64 alias no_dad (unless present)")
        .unwrap();
    let global = text
        .find("ifconfig em1 inet6 2001:db8:10::51 prefixlen 64 alias no_dad (unless present)")
        .unwrap();
    let na = text
        .find("5 unsolicited Neighbor Advertisement(s) (Router, Override) for fe80::51 2001:db8:10::51 on em1")
        .unwrap();
    let arp = text
        .find("gratuitous ARP(s) for 192.168.10.200 on em0")
        .unwrap();
    assert!(v4 < ll && ll < global && global < arp && arp < na, "{text}");
    assert!(text.contains("-network 2001:db8:10::/64"), "{text}");
    assert!(text.contains("sockstat -6l -p 2049"), "{text}");
    let linux = plan::render(&config, Kind::Promote, Os::Linux, &[]);
    assert!(
        linux.contains("ip -6 addr add 2001:db8:10::51/64 dev em1 nodad (unless present)"),
        "{linux}"
    );
}

#[test]
fn an_ipv6_node_announces_by_na_only_and_checks_nfsd_over_ipv6() {
    let config = v6();
    let steps = promote::build(&config, &j());
    let names = names(&steps);
    assert_eq!(names[names.len() - 2..], ["add vip", "na burst"]);
    assert!(!names.contains(&"arp burst"));
    let listens: Vec<String> = steps
        .iter()
        .filter(|s| s.name.starts_with("verify nfsd listens"))
        .map(argv)
        .collect();
    assert_eq!(listens, ["/usr/bin/sockstat -6l -p 2049"]);
    let text = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    assert!(text.contains("V4: / -network 2001:db8:10::/64"), "{text}");
}

#[test]
fn followers_of_an_ipv6_vip_mount_in_brackets() {
    let config = v6();
    let ctx = Context::from_config(&config);
    assert_eq!(ctx.vip, "2001:db8:10::51".parse::<IpAddr>().unwrap());
    let steps = follow::build(&config, &ctx, &j());
    let mounts: Vec<String> = steps
        .iter()
        .filter(|s| s.name.starts_with("mount jails-"))
        .map(argv)
        .collect();
    assert_eq!(
        mounts,
        [
            "/sbin/mount_nfs -o nfsv4,minorversion=1,hard,retrycnt=1 [2001:db8:10::51]:/store/jails-data /usr/jails/jails-data",
            "/sbin/mount_nfs -o nfsv4,minorversion=1,hard,retrycnt=1 [2001:db8:10::51]:/store/jails-system /usr/jails/jails-system",
        ]
    );
    let text = plan::render(&config, Kind::Follow, Os::FreeBsd, &[]);
    assert!(
        text.contains("[2001:db8:10::51]:/store/jails-data"),
        "{text}"
    );
}

#[test]
fn dual_stack_followers_mount_from_the_ipv4_vip() {
    let config = dual();
    let ctx = Context::from_config(&config);
    assert_eq!(ctx.vip, "192.168.10.200".parse::<IpAddr>().unwrap());
    let text = plan::render(&config, Kind::Follow, Os::FreeBsd, &[]);
    assert!(
        text.contains(" 192.168.10.200:/store/jails-data "),
        "{text}"
    );
}

#[test]
fn the_vip_health_check_repairs_with_both_bursts() {
    let config = dual();
    let text = plan::render(&config, Kind::Repair, Os::FreeBsd, &[]);
    println!("{text}");
    assert!(text.contains("na burst"), "{text}");
}
