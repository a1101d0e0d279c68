//! Configuration parsing and validation, as `check-config` and the agent see
//! it: defaults, every error with `file:line:col` and key, never a panic.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use rcbsd_failover::config::{
    load, parse_with_hostname, Config, ConfigError, EnvKind, Health, RestartPolicy, Track,
    TrackAction, VirtualIp, DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR,
};
use rcbsd_failover::wire::Centis;
use rcbsd_failover::wire::ChecksumMode;

const PATH: &str = "/etc/x.toml";

const MINIMAL: &str = r#"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["192.168.10.200/24"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_hostname(text, Path::new(PATH), Some("host-a"))
}

/// The diagnostics of an invalid text, as displayed.
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

/// MINIMAL with one more line in [vrrp].
fn with_vrrp_line(line: &str) -> String {
    format!("{MINIMAL}{line}\n")
}

#[test]
fn a_minimal_file_gets_every_default() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.path, Path::new(PATH));
    assert_eq!(config.node.name, "host-a");
    assert_eq!(
        config.node.control_socket,
        Path::new(DEFAULT_CONTROL_SOCKET)
    );
    assert_eq!(config.node.state_dir, Path::new(DEFAULT_STATE_DIR));
    let vrrp = &config.vrrp;
    assert_eq!(
        (vrrp.interface.as_str(), vrrp.vrid, vrrp.priority),
        ("em0", 51, 100)
    );
    assert_eq!(vrrp.advert_interval, Centis(100));
    assert_eq!(
        vrrp.virtual_ips,
        [VirtualIp {
            address: Ipv4Addr::new(192, 168, 10, 200),
            prefix_len: 24
        }]
    );
    assert!(vrrp.preempt);
    assert_eq!(vrrp.preempt_delay, Duration::ZERO);
    assert!(vrrp.unicast_peers.is_empty());
    assert_eq!(vrrp.checksum, ChecksumMode::PseudoHeader);
    assert_eq!(vrrp.source_address, None);
    assert_eq!(vrrp.garp_master_repeat, 5);
    assert_eq!(vrrp.garp_interval, Duration::from_millis(10));
    assert_eq!(vrrp.garp_master_delay, Duration::from_secs(5));
}

#[test]
fn every_key_is_read() {
    let text = r#"
[node]
name = "node2"
control_socket = "/tmp/c.sock"
state_dir = "/tmp/state"
[vrrp]
interface = "vtnet0"
vrid = 255
priority = 255
advert_interval = "0.02s"
virtual_ips = ["10.0.0.1", "10.0.1.1/16"]
preempt = false
preempt_delay = "1.5s"
unicast_peers = ["10.0.0.2", "10.0.0.3"]
checksum = "no-pseudo-header"
source_address = "10.0.0.4"
garp_master_repeat = 1
garp_interval = "0s"
garp_master_delay = "0s"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.node.name, "node2");
    assert_eq!(config.node.control_socket, Path::new("/tmp/c.sock"));
    assert_eq!(config.node.state_dir, Path::new("/tmp/state"));
    let vrrp = &config.vrrp;
    assert_eq!((vrrp.vrid, vrrp.priority), (255, 255));
    assert_eq!(vrrp.advert_interval, Centis(2));
    assert_eq!(vrrp.virtual_ips[0].prefix_len, 32, "no prefix means /32");
    assert_eq!(vrrp.virtual_ips[1].to_string(), "10.0.1.1/16");
    assert!(!vrrp.preempt);
    assert_eq!(vrrp.preempt_delay, Duration::from_millis(1500));
    assert_eq!(vrrp.unicast_peers.len(), 2);
    assert_eq!(vrrp.checksum, ChecksumMode::NoPseudoHeader);
    assert_eq!(vrrp.source_address, Some(Ipv4Addr::new(10, 0, 0, 4)));
    assert_eq!(vrrp.garp_master_repeat, 1);
    assert_eq!(vrrp.garp_master_delay, Duration::ZERO);
}

#[test]
fn out_of_range_priority_names_file_line_column_key_and_the_accepted_range() {
    let text = "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"10.0.0.1\"]\n\n\npriority   = 0\n";
    assert_eq!(
        errors(text),
        ["/etc/x.toml:7:14: vrrp.priority: 0 is out of range (1..=254, or 255 for the address owner)"]
    );
}

#[test]
fn an_unknown_key_is_an_error_listing_the_accepted_keys() {
    let errors = errors(&with_vrrp_line("nopreempt = true"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("/etc/x.toml:6:1: vrrp.nopreempt: unknown key"),
        "{errors:?}"
    );
    assert!(errors[0].contains("preempt_delay"), "{errors:?}");
}

#[test]
fn unknown_tables_are_errors_too() {
    let errors = errors(&format!("{MINIMAL}[storag]\nkind = \"nfs\"\n"));
    assert!(
        errors[0].starts_with(
            "/etc/x.toml:6:2: storag: unknown key (accepted at the top level: node, vrrp, vrrp6, cluster, environment, auth, cbsd, storage, nfs, environments, runbook, tools, notify, metrics, fence, health, track, follow)"
        ),
        "{errors:?}"
    );
}

#[test]
fn a_wrong_type_names_the_expected_type() {
    let errors = errors(&with_vrrp_line("priority = \"high\""));
    assert_eq!(
        errors,
        ["/etc/x.toml:6:12: vrrp.priority: expected an integer (1..=254, or 255 for the address owner), found a string"]
    );
}

#[test]
fn a_syntax_error_has_a_position() {
    let errors = errors("[vrrp]\ninterface = \"em0\nvrid = 51\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("/etc/x.toml:2:"), "{errors:?}");
    assert!(errors[0].contains("TOML syntax error"), "{errors:?}");
}

#[test]
fn every_semantic_error_is_reported_not_just_the_first() {
    let text = r#"
[node]
name = "has space"
[vrrp]
interface = "em0"
vrid = 0
priority = 300
advert_interval = 1
virtual_ips = ["10.0.0.1", "10.0.0.1/24"]
bogus = 1
"#;
    let errors = errors(text);
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").nth(1).unwrap())
        .collect();
    for key in [
        "node.name",
        "vrrp.vrid",
        "vrrp.priority",
        "vrrp.advert_interval",
        "vrrp.virtual_ips[1]",
        "vrrp.bogus",
    ] {
        assert!(keys.contains(&key), "{key} missing from {errors:#?}");
    }
}

#[test]
fn missing_required_keys_and_tables() {
    assert_eq!(
        errors("[node]\nname = \"a\"\n"),
        ["/etc/x.toml:1:1: vrrp: missing table [vrrp] (required keys: interface, vrid, virtual_ips)"]
    );
    let errors = errors("[vrrp]\ninterface = \"em0\"\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("vrrp.vrid: missing")));
    assert!(errors
        .iter()
        .any(|e| e.contains("vrrp.virtual_ips: missing")));
}

#[test]
fn advert_interval_is_10ms_to_40_95s_in_10ms_steps() {
    // RFC 5798 §5.2.7: 12 bits of centiseconds.
    assert_eq!(
        parse(&with_vrrp_line("advert_interval = \"10ms\""))
            .unwrap()
            .vrrp
            .advert_interval,
        Centis(1)
    );
    assert_eq!(
        parse(&with_vrrp_line("advert_interval = \"40.95s\""))
            .unwrap()
            .vrrp
            .advert_interval,
        Centis(4095)
    );
    for (value, complaint) in [
        ("\"0s\"", "out of range (10ms..=40.95s"),
        ("\"41s\"", "out of range"),
        ("\"15ms\"", "not a multiple of 10ms"),
        ("\"2m\"", "unknown unit"),
        ("\"1\"", "no unit"),
        ("1", "expected a duration string"),
    ] {
        let errors = errors(&with_vrrp_line(&format!("advert_interval = {value}")));
        assert!(errors[0].contains(complaint), "{value}: {errors:?}");
        assert!(
            errors[0].contains("vrrp.advert_interval"),
            "{value}: {errors:?}"
        );
    }
}

#[test]
fn vrid_is_1_to_255() {
    for (value, ok) in [
        ("1", true),
        ("255", true),
        ("0", false),
        ("256", false),
        ("-1", false),
        ("99999999999999999999999", false),
    ] {
        let text = MINIMAL.replace("vrid = 51", &format!("vrid = {value}"));
        assert_eq!(parse(&text).is_ok(), ok, "vrid = {value}");
    }
}

#[test]
fn virtual_ips_must_be_unicast_host_addresses_without_duplicates() {
    for (vips, complaint) in [
        ("[]", "empty"),
        (
            "[\"10.0.0.1\", \"10.0.0.1/24\"]",
            "listed twice (first at line 5, column 16)",
        ),
        ("[\"224.0.0.18\"]", "multicast"),
        ("[\"0.0.0.0\"]", "unspecified"),
        ("[\"255.255.255.255\"]", "broadcast address"),
        ("[\"127.0.0.1\"]", "loopback"),
        ("[\"10.0.0.255/24\"]", "broadcast address of its /24"),
        ("[\"10.0.0.0/24\"]", "network address"),
        ("[\"10.0.0.1/33\"]", "prefix length must be 1..=32"),
        ("[\"10.0.0.1/\"]", "prefix length"),
        ("[\"10.0.0.300\"]", "not an IPv4 address"),
        // IPv6 entries are an IPv6 router (tests/config_ipv6.rs); a mix is not.
        (
            "[\"10.0.0.1\", \"fe80::1\"]",
            "is IPv6 but vrrp.virtual_ips[0] is IPv4",
        ),
        ("[\"10.0.0.1\", 5]", "expected a string, found an integer"),
        ("\"10.0.0.1\"", "expected an array of strings"),
    ] {
        let text = MINIMAL.replace("[\"192.168.10.200/24\"]", vips);
        let errors = errors(&text);
        assert!(
            errors.iter().any(|e| e.contains(complaint)),
            "{vips}: {errors:?}"
        );
    }
}

#[test]
fn point_to_point_prefixes_have_no_broadcast() {
    let text = MINIMAL.replace("192.168.10.200/24", "10.0.0.1/31");
    assert!(parse(&text).is_ok());
}

#[test]
fn unicast_peers_and_source_address_must_not_be_virtual_ips() {
    let errors = errors(&with_vrrp_line(
        "unicast_peers = [\"10.1.1.1\", \"192.168.10.200\", \"10.1.1.1\"]\nsource_address = \"192.168.10.200\"",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("vrrp.unicast_peers[2]: 10.1.1.1 is listed twice")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("vrrp.source_address: 192.168.10.200 is a virtual IP")),
        "{errors:?}"
    );
    // The duplicate makes the peer list unusable, so the VIP check on it
    // waits for a fixed list; check it on its own.
    let errors = self::errors(&with_vrrp_line("unicast_peers = [\"192.168.10.200\"]"));
    assert!(
        errors[0].contains("vrrp.unicast_peers[0]: 192.168.10.200 is a virtual IP"),
        "{errors:?}"
    );
}

#[test]
fn checksum_and_garp_settings_are_checked() {
    for (line, complaint) in [
        (
            "checksum = \"none\"",
            "\"pseudo-header\" or \"no-pseudo-header\"",
        ),
        ("garp_master_repeat = 0", "0 is out of range (1..=100)"),
        ("garp_master_repeat = 101", "out of range"),
        ("garp_interval = \"2s\"", "2s is out of range (0s..=1s)"),
        ("garp_master_delay = \"3601s\"", "out of range"),
        ("preempt_delay = \"2h\"", "unknown unit"),
        ("preempt = \"yes\"", "expected true or false"),
    ] {
        let errors = errors(&with_vrrp_line(line));
        assert!(errors[0].contains(complaint), "{line}: {errors:?}");
    }
}

#[test]
fn node_paths_must_be_absolute_and_the_socket_path_must_fit_sun_path() {
    let long = format!("/{}", "s".repeat(120));
    for (line, complaint) in [
        ("control_socket = \"run/x.sock\"", "absolute path"),
        ("state_dir = \"db\"", "absolute path"),
        (&*format!("control_socket = \"{long}\""), "at most 103"),
        ("name = \"\"", "not a usable node name"),
    ] {
        let errors = errors(&format!("[node]\n{line}\n{MINIMAL}"));
        assert!(errors[0].contains(complaint), "{line}: {errors:?}");
    }
}

#[test]
fn an_unusable_hostname_asks_for_node_name() {
    let error = parse_with_hostname(MINIMAL, Path::new(PATH), Some("bad host")).unwrap_err();
    assert!(error.to_string().contains("set node.name"), "{error}");
    let error = parse_with_hostname(MINIMAL, Path::new(PATH), None).unwrap_err();
    assert!(error.to_string().contains("set node.name"), "{error}");
}

#[test]
fn load_tells_a_missing_file_from_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load(&dir.path().join("none.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }));
    assert_eq!(missing.exit_status().code(), 66);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[vrrp]\ninterface = \"em0\xff\"\n").unwrap();
    let error = load(&bad).unwrap_err();
    assert_eq!(error.exit_status().code(), 78);
    assert!(error.to_string().contains(":2:"), "{error}");
    assert!(error.to_string().contains("UTF-8"), "{error}");
}

#[test]
fn the_shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            parse_with_hostname(&text, &path, Some("node1"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen > 0, "no example found");
}

const EXAMPLE: &str = include_str!("../contrib/examples/rcbsd-failover.toml");
const CLUSTER_EXAMPLE: &str = include_str!("../contrib/examples/cluster/node1.toml");

#[test]
fn truncated_files_never_panic() {
    for example in [EXAMPLE, CLUSTER_EXAMPLE] {
        for end in (0..=example.len()).filter(|&i| example.is_char_boundary(i)) {
            let _ = parse(&example[..end]);
        }
    }
}

/// `example` with 1 to 8 bytes replaced by TOML's punctuation, digits,
/// unit letters and whitespace: the edits most likely to reach the
/// checks rather than stop at the first syntax error.
fn garbled(example: &'static str) -> impl Strategy<Value = String> {
    let alphabet: &'static [u8] = b"[]{}=\"'.,#\n 0123456789abcdefsm/\\-_:xyz\t";
    vec(
        (any::<prop::sample::Index>(), prop::sample::select(alphabet)),
        1..=8,
    )
    .prop_map(move |edits| {
        let mut bytes = example.as_bytes().to_vec();
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn garbled_files_never_panic(text in garbled(EXAMPLE)) {
        let _ = parse(&text);
    }

    #[test]
    fn garbled_cluster_files_never_panic(text in garbled(CLUSTER_EXAMPLE)) {
        let _ = parse(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&deep).is_err());
    let deep_table = format!("x = {}", "{a=".repeat(50_000));
    assert!(parse(&deep_table).is_err());
}

#[test]
fn notify_and_metrics_are_read_with_their_defaults() {
    let config = parse(&format!(
        "{MINIMAL}[notify]\ncommand = [\"/usr/local/libexec/rcbsd-notify\", \"--mail\"]\n\n[metrics]\ntextfile = \"/var/tmp/node_exporter/rcbsd_failover.prom\"\n"
    ))
    .expect("valid");
    let notify = config.notify.expect("notify");
    assert_eq!(
        notify.command,
        ["/usr/local/libexec/rcbsd-notify", "--mail"]
    );
    assert_eq!(notify.timeout, std::time::Duration::from_secs(10));
    let metrics = config.metrics.expect("metrics");
    assert_eq!(metrics.interval, std::time::Duration::from_secs(5));
}

#[test]
fn a_notify_program_without_an_absolute_path_and_a_metrics_table_without_textfile_are_errors() {
    let errors = errors(&format!(
        "{MINIMAL}[notify]\ncommand = [\"rcbsd-notify\"]\n\n[metrics]\ninterval = \"0s\"\n"
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/etc/x.toml:7:11: notify.command:")
                && e.contains("absolute path")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("metrics.textfile: missing")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/etc/x.toml:10:12: metrics.interval:")),
        "{errors:?}"
    );
}

// ---- [cluster], [[environment]], [auth], node.status_group ----------------

/// A valid three-node cluster seen from node1. Line 14 is the closing `]` of
/// `cluster.nodes`: text appended right after it is still in `[cluster]`.
const CLUSTER: &str = r#"
[node]
name = "node1"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["198.18.0.100/24"]
[cbsd]
[cluster]
nodes = [
  { name = "node1", address = "198.18.0.1" },
  { name = "node2", address = "198.18.0.2" },
  { name = "node3", address = "198.18.0.3" },
]
"#;

/// CLUSTER followed by `extra` (starting at line 15).
fn cluster_with(extra: &str) -> String {
    format!("{CLUSTER}{extra}")
}

/// Whether one of `errors` starts with `prefix` and contains `needle`.
fn has_error(errors: &[String], prefix: &str, needle: &str) -> bool {
    errors
        .iter()
        .any(|e| e.starts_with(prefix) && e.contains(needle))
}

#[test]
fn cluster_gets_its_defaults_and_plain_vrrp_has_no_cluster() {
    let config = parse(CLUSTER).unwrap();
    let cluster = config.cluster.expect("[cluster]");
    let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    assert_eq!(cluster.nodes[1].address, Ipv4Addr::new(198, 18, 0, 2));
    assert_eq!(cluster.port, 7798);
    assert_eq!(cluster.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(cluster.lease, Duration::from_secs(10));
    assert_eq!(cluster.fence_margin, Duration::from_secs(8));
    assert_eq!(cluster.majority(), 2);
    assert!(config.placement.is_empty());
    assert_eq!(config.auth, None);
    assert_eq!(config.node.status_group, None);

    let plain = parse(MINIMAL).unwrap();
    assert_eq!(plain.cluster, None);
    assert!(plain.placement.is_empty());
}

#[test]
fn every_cluster_wide_key_is_read() {
    let text = cluster_with(
        r#"port = 7000
heartbeat_interval = "100ms"
lease = "2s"
fence_margin = "500ms"

[[environment]]
name = "web1"
nodes = ["node1", "node3"]

[[environment]]
name = "vm1"
kind = "bhyve"
nodes = ["node2", "node1"]
failback = true

[auth]
key_file = "/usr/local/etc/rcbsd-failover.key"
accept_key_file = "/usr/local/etc/rcbsd-failover.key.new"
"#,
    )
    .replace(
        "name = \"node1\"\n[vrrp]",
        "name = \"node1\"\nstatus_group = \"operator\"\n[vrrp]",
    );
    let config = parse(&text).unwrap();
    let cluster = config.cluster.as_ref().unwrap();
    assert_eq!(cluster.port, 7000);
    assert_eq!(cluster.heartbeat_interval, Duration::from_millis(100));
    assert_eq!(cluster.lease, Duration::from_secs(2));
    assert_eq!(cluster.fence_margin, Duration::from_millis(500));
    assert_eq!(config.placement.len(), 2);
    let web = &config.placement[0];
    assert_eq!((web.name.as_str(), web.kind), ("web1", EnvKind::Jail));
    assert_eq!(web.nodes, ["node1", "node3"]);
    assert!(!web.failback, "failback defaults to false");
    let vm = &config.placement[1];
    assert_eq!((vm.name.as_str(), vm.kind), ("vm1", EnvKind::Bhyve));
    assert!(vm.failback);
    let auth = config.auth.as_ref().unwrap();
    assert_eq!(
        auth.key_file,
        Path::new("/usr/local/etc/rcbsd-failover.key")
    );
    assert_eq!(
        auth.accept_key_file.as_deref(),
        Some(Path::new("/usr/local/etc/rcbsd-failover.key.new"))
    );
    assert_eq!(config.node.status_group.as_deref(), Some("operator"));
    assert!(
        config
            .summary()
            .contains("cluster of 3 nodes (majority 2), 2 placed environment(s), authenticated"),
        "{}",
        config.summary()
    );
}

#[test]
fn cluster_nodes_need_unique_valid_names_and_own_addresses() {
    let text = CLUSTER
        .replace(
            r#"{ name = "node2", address = "198.18.0.2" }"#,
            r#"{ name = "node1", address = "198.18.0.1" }"#,
        )
        .replace(
            r#"{ name = "node3", address = "198.18.0.3" }"#,
            r#"{ name = "no de", address = "198.18.0.100", port = 1 }"#,
        );
    let duplicates = errors(&text);
    assert!(
        has_error(
            &duplicates,
            "/etc/x.toml:12:12: cluster.nodes[1].name:",
            "\"node1\" is listed twice (first at line 11, column 12)"
        ),
        "{duplicates:#?}"
    );
    assert!(
        has_error(
            &duplicates,
            "/etc/x.toml:12:31: cluster.nodes[1].address:",
            "198.18.0.1 is listed twice"
        ),
        "{duplicates:#?}"
    );
    assert!(
        has_error(
            &duplicates,
            "/etc/x.toml:13:12: cluster.nodes[2].name:",
            "not a usable node name"
        ),
        "{duplicates:#?}"
    );
    assert!(
        has_error(
            &duplicates,
            "/etc/x.toml:13:31: cluster.nodes[2].address:",
            "198.18.0.100 is a virtual IP"
        ),
        "{duplicates:#?}"
    );
    assert!(
        has_error(
            &duplicates,
            "/etc/x.toml:13:47: cluster.nodes[2].port:",
            "unknown key"
        ),
        "{duplicates:#?}"
    );

    let bad_entries = errors(&CLUSTER.replace(
        r#"{ name = "node3", address = "198.18.0.3" }"#,
        r#"{ name = "node3", address = "224.0.0.18" }, "node4""#,
    ));
    assert!(
        has_error(
            &bad_entries,
            "/etc/x.toml:13:31: cluster.nodes[2].address:",
            "multicast"
        ),
        "{bad_entries:#?}"
    );
    assert!(
        has_error(
            &bad_entries,
            "/etc/x.toml:13:47: cluster.nodes[3]:",
            "expected a table"
        ),
        "{bad_entries:#?}"
    );

    let missing = errors(&CLUSTER.replace(r#", address = "198.18.0.3""#, ""));
    assert!(
        has_error(
            &missing,
            "/etc/x.toml:13:3: cluster.nodes[2].address:",
            "missing"
        ),
        "{missing:#?}"
    );
}

#[test]
fn this_node_must_be_one_of_the_cluster_nodes() {
    let errors = errors(&CLUSTER.replace("name = \"node1\"\n[vrrp]", "name = \"node4\"\n[vrrp]"));
    assert_eq!(
        errors,
        ["/etc/x.toml:10:9: cluster.nodes: this node (\"node4\", node.name) is not listed (listed: \"node1\", \"node2\", \"node3\"); every node lists all nodes, itself included"]
    );
}

#[test]
fn a_two_node_cluster_is_refused_with_the_voter_rule() {
    let errors =
        errors(&CLUSTER.replace("  { name = \"node3\", address = \"198.18.0.3\" },\n", ""));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("/etc/x.toml:10:9: cluster.nodes: two nodes:"),
        "{errors:#?}"
    );
    assert!(
        errors[0].contains("add a third node as a voter (a follower-only node votes"),
        "{errors:#?}"
    );
}

#[test]
fn a_one_node_cluster_is_accepted_and_an_empty_one_is_not() {
    let single = format!(
        "{MINIMAL}[cbsd]\n[cluster]\nnodes = [{{ name = \"host-a\", address = \"198.18.0.1\" }}]\n"
    );
    assert_eq!(parse(&single).unwrap().cluster.unwrap().majority(), 1);
    assert_eq!(
        errors(&format!("{MINIMAL}[cluster]\nnodes = []\n")),
        ["/etc/x.toml:7:9: cluster.nodes: empty; list every node, this one included"]
    );
    assert!(has_error(
        &errors(&format!("{MINIMAL}[cluster]\nport = 7798\n")),
        "/etc/x.toml:6:1: cluster.nodes:",
        "missing"
    ));
}

#[test]
fn the_heartbeat_port_is_1_to_65535() {
    for (port, column) in [("0", 8), ("65536", 8), ("\"7798\"", 8)] {
        let errors = errors(&cluster_with(&format!("port = {port}\n")));
        assert!(
            has_error(
                &errors,
                &format!("/etc/x.toml:15:{column}: cluster.port:"),
                "1..=65535"
            ),
            "{port}: {errors:#?}"
        );
    }
}

#[test]
fn heartbeat_interval_is_10ms_to_10s() {
    for bad in ["9ms", "10.001s"] {
        let errors = errors(&cluster_with(&format!(
            "heartbeat_interval = \"{bad}\"\nlease = \"3600s\"\n"
        )));
        assert!(
            has_error(
                &errors,
                "/etc/x.toml:15:22: cluster.heartbeat_interval:",
                "out of range (10ms..=10s)"
            ),
            "{bad}: {errors:#?}"
        );
    }
    let fast =
        cluster_with("heartbeat_interval = \"10ms\"\nlease = \"40ms\"\nfence_margin = \"10ms\"\n");
    assert_eq!(
        parse(&fast).unwrap().cluster.unwrap().heartbeat_interval,
        Duration::from_millis(10)
    );
}

#[test]
fn a_lease_shorter_than_four_heartbeats_is_refused() {
    let errors = errors(&cluster_with(
        "heartbeat_interval = \"1s\"\nlease = \"3.999s\"\n",
    ));
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:16:9: cluster.lease:",
            "less than 4 × heartbeat_interval (1s)"
        ),
        "{errors:#?}"
    );
}

#[test]
fn the_fence_margin_is_at_least_one_heartbeat() {
    let errors = errors(&cluster_with("fence_margin = \"199ms\"\n"));
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:15:16: cluster.fence_margin:",
            "less than heartbeat_interval (200ms)"
        ),
        "{errors:#?}"
    );
}

#[test]
fn fencing_must_end_before_97_percent_of_the_lease() {
    // fence_margin + 2 × heartbeat_interval = 1.2s; 1.2s / 0.97 = 1.2371...s.
    let timing = |lease: &str| {
        cluster_with(&format!(
            "heartbeat_interval = \"100ms\"\nfence_margin = \"1s\"\nlease = \"{lease}\"\n"
        ))
    };
    assert!(parse(&timing("1.238s")).is_ok());
    let errors = errors(&timing("1.237s"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("/etc/x.toml:16:16: cluster.fence_margin: fence_margin + 2 × heartbeat_interval (1.2s) exceeds 97% of lease (1.237s)"),
        "{errors:#?}"
    );
    assert!(errors[0].contains("before a majority may grant the resource to another node"));
    assert!(errors[0].contains("1% clock drift"));
    assert!(
        errors[0].contains("lengthen lease to at least 1.238s"),
        "{errors:#?}"
    );
}

#[test]
fn environments_without_a_cluster_are_refused() {
    let errors = errors(&format!(
        "{MINIMAL}[cbsd]\n\n[[environment]]\nname = \"web1\"\nnodes = [\"host-a\"]\n"
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("/etc/x.toml:8:1: environment: [[environment]] needs [cluster]"),
        "{errors:#?}"
    );
}

#[test]
fn environment_must_be_an_array_of_tables() {
    let errors = errors(&cluster_with("[environment]\nname = \"web1\"\n"));
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:15:1: environment:",
            "expected an array of tables"
        ),
        "{errors:#?}"
    );
}

#[test]
fn environment_names_are_unique_literal_cbsd_names() {
    let text = cluster_with(
        r#"
[[environment]]
name = "web1"
nodes = ["node1"]

[[environment]]
name = "web1"
nodes = ["node2"]

[[environment]]
name = "db*"
nodes = ["node2"]

[[environment]]
name = "-rf"
nodes = ["node2"]

[[environment]]
nodes = ["node2"]
"#,
    );
    let errors = errors(&text);
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:21:8: environment[1].name:",
            "\"web1\" is listed twice (first at line 17, column 8)"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:25:8: environment[2].name:",
            "is a glob"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:29:8: environment[3].name:",
            "not an environment name"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(&errors, "/etc/x.toml:32:1: environment[4].name:", "missing"),
        "{errors:#?}"
    );
}

#[test]
fn environment_nodes_are_unique_cluster_nodes_and_never_empty() {
    let text = cluster_with(
        r#"
[[environment]]
name = "web1"
nodes = ["node1", "node9", "node1"]

[[environment]]
name = "web2"
nodes = []

[[environment]]
name = "web3"
"#,
    );
    let errors = errors(&text);
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:18:19: environment[0].nodes[1]:",
            "\"node9\" is not a node of [cluster] (nodes: \"node1\", \"node2\", \"node3\")"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:18:28: environment[0].nodes[2]:",
            "\"node1\" is listed twice"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(&errors, "/etc/x.toml:22:9: environment[1].nodes:", "empty"),
        "{errors:#?}"
    );
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:24:1: environment[2].nodes:",
            "missing"
        ),
        "{errors:#?}"
    );
}

#[test]
fn environment_kind_failback_and_unknown_keys_are_checked() {
    let text = cluster_with(
        r#"
[[environment]]
name = "web1"
nodes = ["node1"]
kind = "vm"
failback = "yes"
preferred = "node1"
"#,
    );
    let errors = errors(&text);
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:19:8: environment[0].kind:",
            "(accepted: \"jail\" or \"bhyve\")"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:20:12: environment[0].failback:",
            "expected true or false"
        ),
        "{errors:#?}"
    );
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:21:1: environment[0].preferred:",
            "unknown key"
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_node_without_cbsd_cannot_be_listed_to_run_an_environment() {
    let text = cluster_with("\n[[environment]]\nname = \"web1\"\nnodes = [\"node2\", \"node1\"]\n")
        .replace("[cbsd]\n", "");
    let errors = errors(&text);
    assert!(
        has_error(
            &errors,
            "/etc/x.toml:15:1: environment[0].nodes:",
            "has no [cbsd]"
        ),
        "{errors:#?}"
    );
    // A plain VRRP voter that runs nothing is fine.
    let voter =
        cluster_with("\n[[environment]]\nname = \"web1\"\nnodes = [\"node2\", \"node3\"]\n")
            .replace("[cbsd]\n", "");
    assert!(parse(&voter).is_ok());
}

#[test]
fn the_per_node_environment_list_is_refused_with_a_cluster_and_the_new_form_shown() {
    let text = cluster_with(
        "[environments]\njails = [\"web1\", \"db*\"]\nbhyve = [\"vm1\"]\nstop_timeout = \"10s\"\n",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let message = &errors[0];
    assert!(
        message.starts_with("/etc/x.toml:16:9: environments.jails: with [cluster], environments are placed cluster-wide"),
        "{message}"
    );
    assert!(message.contains("(its timeouts stay)"), "{message}");
    assert!(
        message.contains("list each environment that \"db*\" matches by name"),
        "{message}"
    );
    assert!(
        message.contains("[[environment]]\n    name = \"web1\"\n    nodes = [\"node1\"]"),
        "{message}"
    );
    assert!(
        message.contains("name = \"vm1\"\n    kind = \"bhyve\"\n    nodes = [\"node1\"]"),
        "{message}"
    );

    // The timeouts of [environments] stay valid with [cluster].
    let timeouts = parse(&cluster_with(
        "[environments]\nstop_timeout = \"10s\"\njails = []\n",
    ))
    .unwrap();
    assert_eq!(timeouts.environments.stop_timeout, Duration::from_secs(10));
    assert!(timeouts.environments.patterns.is_empty());
}

#[test]
fn auth_needs_an_absolute_key_file_and_a_different_accept_key_file() {
    assert!(has_error(
        &errors(&cluster_with("[auth]\naccept_key_file = \"/k2\"\n")),
        "/etc/x.toml:15:1: auth.key_file:",
        "missing"
    ));
    assert!(has_error(
        &errors(&cluster_with("[auth]\nkey_file = \"etc/key\"\n")),
        "/etc/x.toml:16:12: auth.key_file:",
        "absolute path"
    ));
    assert!(has_error(
        &errors(&cluster_with(
            "[auth]\nkey_file = \"/etc/key\"\naccept_key_file = \"/etc/key\"\n"
        )),
        "/etc/x.toml:17:19: auth.accept_key_file:",
        "is key_file again"
    ));
    let only_signing = parse(&cluster_with("[auth]\nkey_file = \"/etc/key\"\n")).unwrap();
    assert_eq!(only_signing.auth.unwrap().accept_key_file, None);
}

#[test]
fn status_group_is_a_group_name() {
    for bad in [
        "",
        "-wheel",
        "op erator",
        "a23456789012345678901234567890123",
    ] {
        let text = format!("[node]\nstatus_group = {bad:?}\n{MINIMAL}");
        assert!(
            has_error(
                &errors(&text),
                "/etc/x.toml:2:16: node.status_group:",
                "is not a group name"
            ),
            "{bad:?}"
        );
    }
    let config = parse(&format!(
        "[node]\nstatus_group = \"wheel_ro-1.x\"\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(config.node.status_group.as_deref(), Some("wheel_ro-1.x"));
}

#[test]
fn the_cluster_examples_share_one_cluster_hash() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/examples/cluster");
    let hashes: Vec<u64> = ["node1", "node2", "node3"]
        .iter()
        .map(|node| {
            let config = load(&dir.join(format!("{node}.toml"))).unwrap();
            assert_eq!(config.node.name, *node);
            assert_eq!(config.cluster.as_ref().map(|c| c.nodes.len()), Some(3));
            config.cluster_hash()
        })
        .collect();
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[0], hashes[2]);
}

// ---- [health] and [[track]] ----------------------------------------------

/// MINIMAL followed by `extra`, whose first line is line 6.
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// MINIMAL with a `[health]` table holding `line` (line 7).
fn health_line(line: &str) -> Vec<String> {
    errors(&minimal_with(&format!("[health]\n{line}\n")))
}

/// MINIMAL with one `[[track]]` (its header on line 6, `lines` from line 7).
fn track_lines(lines: &str) -> Vec<String> {
    errors(&minimal_with(&format!("[[track]]\n{lines}\n")))
}

#[test]
fn health_and_tracks_are_read_with_every_key() {
    let text = minimal_with(
        r#"[health]
enabled = false
interval = "2s"
timeout = "500ms"
rise = 1
fall = 5
max_repairs = 0
repair_window = "86400s"
mount_hang_limit = "30s"
restart_policy = "on-failure"
max_restarts = 10
restart_window = "3600s"
track_interfaces = ["igb1", "lagg0.100"]
track_file = "/var/run/rcbsd-failover.weight"

[[track]]
name = "db-ping"
command = ["/usr/local/libexec/check-db", "--quick"]
weight = -50

[[track]]
name = "store.writable"
command = ["/bin/test", "-w", "/store"]
interval = "1s"
timeout = "100ms"
rise = 3
fall = 100
on_fail = "resign"
"#,
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.health,
        Health {
            enabled: false,
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 5,
            max_repairs: 0,
            repair_window: Duration::from_secs(86_400),
            mount_hang_limit: Duration::from_secs(30),
            restart_policy: RestartPolicy::OnFailure {
                max_restarts: 10,
                window: Duration::from_secs(3600),
            },
            track_interfaces: vec!["igb1".to_owned(), "lagg0.100".to_owned()],
            track_file: Some("/var/run/rcbsd-failover.weight".into()),
            tracks: vec![
                // Its timing is [health]'s.
                Track {
                    name: "db-ping".to_owned(),
                    command: vec![
                        "/usr/local/libexec/check-db".to_owned(),
                        "--quick".to_owned()
                    ],
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_millis(500),
                    rise: 1,
                    fall: 5,
                    on_fail: TrackAction::Weight(-50),
                },
                Track {
                    name: "store.writable".to_owned(),
                    command: vec!["/bin/test".to_owned(), "-w".to_owned(), "/store".to_owned()],
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_millis(100),
                    rise: 3,
                    fall: 100,
                    on_fail: TrackAction::Resign,
                },
            ],
        }
    );
    assert!(
        config.summary().ends_with(
            "; built-in health checks off, restarts up to 10, tracking igb1 lagg0.100, a track file, 2 track(s)"
        ),
        "{}",
        config.summary()
    );
}

#[test]
fn without_health_or_tracks_every_default_holds_and_the_summary_says_nothing() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.health, Health::default());
    assert!(config.health.enabled);
    assert_eq!(config.health.interval, Duration::from_secs(5));
    assert_eq!(config.health.timeout, Duration::from_secs(10));
    assert_eq!((config.health.rise, config.health.fall), (2, 3));
    assert_eq!(config.health.max_repairs, 3);
    assert_eq!(config.health.repair_window, Duration::from_secs(600));
    assert_eq!(config.health.mount_hang_limit, Duration::from_secs(60));
    assert_eq!(config.health.restart_policy, RestartPolicy::Never);
    assert!(config.health.track_interfaces.is_empty());
    assert_eq!(config.health.track_file, None);
    assert!(config.health.tracks.is_empty());
    assert!(!config.summary().contains("health"), "{}", config.summary());

    // An empty [health] is the defaults too; "on-failure" alone gets the
    // default limits.
    let empty = parse(&minimal_with("[health]\n")).unwrap();
    assert_eq!(empty.health, Health::default());
    let restarts = parse(&minimal_with("[health]\nrestart_policy = \"on-failure\"\n")).unwrap();
    assert_eq!(
        restarts.health.restart_policy,
        RestartPolicy::OnFailure {
            max_restarts: 3,
            window: Duration::from_secs(600)
        }
    );

    // A track without [health] gets the built-in defaults.
    let config = parse(&minimal_with(
        "[[track]]\nname = \"ping\"\ncommand = [\"/sbin/ping\", \"-c1\", \"192.168.10.1\"]\non_fail = \"resign\"\n",
    ))
    .unwrap();
    let track = &config.health.tracks[0];
    assert_eq!(
        (track.interval, track.timeout, track.rise, track.fall),
        (Duration::from_secs(5), Duration::from_secs(10), 2, 3)
    );
    assert!(
        config
            .summary()
            .ends_with("; health every 5s (rise 2, fall 3), 1 track(s)"),
        "{}",
        config.summary()
    );
}

#[test]
fn health_timing_is_in_range() {
    assert_eq!(
        health_line("interval = \"50ms\""),
        ["/etc/x.toml:7:12: health.interval: 50ms is out of range (100ms..=3600s)"]
    );
    assert_eq!(
        health_line("timeout = \"3601s\""),
        ["/etc/x.toml:7:11: health.timeout: 3601s is out of range (100ms..=3600s)"]
    );
    assert_eq!(
        health_line("interval = 5"),
        [
            "/etc/x.toml:7:12: health.interval: expected a duration string such as \"1s\" or \"100ms\", found an integer"
        ]
    );
    assert_eq!(
        health_line("enabled = \"yes\""),
        ["/etc/x.toml:7:11: health.enabled: expected true or false, found a string"]
    );
}

#[test]
fn health_rise_and_fall_are_1_to_100() {
    assert_eq!(
        health_line("rise = 0"),
        ["/etc/x.toml:7:8: health.rise: 0 is out of range (1..=100)"]
    );
    assert_eq!(
        health_line("fall = 101"),
        ["/etc/x.toml:7:8: health.fall: 101 is out of range (1..=100)"]
    );
}

#[test]
fn health_repair_and_mount_limits_are_in_range() {
    assert_eq!(
        health_line("max_repairs = 101"),
        [
            "/etc/x.toml:7:15: health.max_repairs: 101 is out of range (0..=100; 0 resigns at the first failed repair)"
        ]
    );
    assert_eq!(
        health_line("repair_window = \"86401s\""),
        ["/etc/x.toml:7:17: health.repair_window: 86401s is out of range (1s..=86400s)"]
    );
    assert_eq!(
        health_line("repair_window = \"500ms\""),
        ["/etc/x.toml:7:17: health.repair_window: 500ms is out of range (1s..=86400s)"]
    );
    assert_eq!(
        health_line("mount_hang_limit = \"0s\""),
        ["/etc/x.toml:7:20: health.mount_hang_limit: 0s is out of range (1s..=3600s)"]
    );
}

#[test]
fn restart_policy_is_never_or_on_failure() {
    assert_eq!(
        health_line("restart_policy = \"always\""),
        [
            "/etc/x.toml:7:18: health.restart_policy: \"always\" is not a restart policy (accepted: \"never\" or \"on-failure\")"
        ]
    );
    assert_eq!(
        errors(&minimal_with(
            "[health]\nrestart_policy = \"on-failure\"\nmax_restarts = 0\nrestart_window = \"86401s\"\n"
        )),
        [
            "/etc/x.toml:8:16: health.max_restarts: 0 is out of range (1..=100)",
            "/etc/x.toml:9:18: health.restart_window: 86401s is out of range (1s..=86400s)",
        ]
    );
}

#[test]
fn restart_limits_need_restart_policy_on_failure() {
    const ONLY: &str = "only with restart_policy = \"on-failure\" (with \"never\", the default, nothing is restarted); set that or remove this key";
    assert_eq!(
        errors(&minimal_with(
            "[health]\nrestart_policy = \"never\"\nmax_restarts = 5\n"
        )),
        [format!("/etc/x.toml:8:16: health.max_restarts: {ONLY}")]
    );
    // Without restart_policy, the default "never".
    assert_eq!(
        health_line("restart_window = \"60s\""),
        [format!("/etc/x.toml:7:18: health.restart_window: {ONLY}")]
    );
}

#[test]
fn track_interfaces_are_unique_interface_names_other_than_the_vrrp_one() {
    assert_eq!(
        health_line("track_interfaces = [\"igb1\", \"em 1\", \"\", \"abcdefghijklmnop\", \"igb1\", \"em0\"]"),
        [
            "/etc/x.toml:7:29: health.track_interfaces[1]: \"em 1\" is not an interface name (1..=15 characters from A-Z a-z 0-9 _ . -, e.g. \"igb1\")",
            "/etc/x.toml:7:37: health.track_interfaces[2]: \"\" is not an interface name (1..=15 characters from A-Z a-z 0-9 _ . -, e.g. \"igb1\")",
            "/etc/x.toml:7:41: health.track_interfaces[3]: \"abcdefghijklmnop\" is not an interface name (1..=15 characters from A-Z a-z 0-9 _ . -, e.g. \"igb1\")",
            "/etc/x.toml:7:61: health.track_interfaces[4]: \"igb1\" is listed twice (first at line 7, column 21)",
            "/etc/x.toml:7:69: health.track_interfaces[5]: \"em0\" is vrrp.interface, which is always tracked; list only other interfaces (e.g. the storage network's)",
        ]
    );
    assert_eq!(
        health_line("track_interfaces = \"igb1\""),
        ["/etc/x.toml:7:20: health.track_interfaces: expected an array of strings, found a string"]
    );
    // Fifteen bytes is IFNAMSIZ less the NUL: accepted.
    let config = parse(&minimal_with(
        "[health]\ntrack_interfaces = [\"abcdefghijklmno\"]\n",
    ))
    .unwrap();
    assert_eq!(config.health.track_interfaces, ["abcdefghijklmno"]);
}

#[test]
fn track_file_is_a_clean_absolute_file_path() {
    for (path, column) in [
        ("var/run/w", 14),
        ("/var/run/../w", 14),
        ("/var/run/", 14),
        ("/", 14),
        ("/var//w", 14),
    ] {
        assert_eq!(
            health_line(&format!("track_file = {path:?}")),
            [format!(
                "/etc/x.toml:7:{column}: health.track_file: {path:?} is not a file path (an absolute path without \".\", \"..\", \"//\" or a trailing '/', e.g. \"/var/run/rcbsd-failover.weight\")"
            )]
        );
    }
}

#[test]
fn an_unknown_health_key_lists_the_accepted_ones() {
    assert_eq!(
        health_line("intervall = \"1s\""),
        [
            "/etc/x.toml:7:1: health.intervall: unknown key (accepted in [health]: enabled, interval, timeout, rise, fall, max_repairs, repair_window, mount_hang_limit, restart_policy, max_restarts, restart_window, track_interfaces, track_file)"
        ]
    );
    assert_eq!(
        errors(&format!("health = true\n{MINIMAL}")),
        ["/etc/x.toml:1:10: health: expected a table, found a boolean"]
    );
}

#[test]
fn track_must_be_an_array_of_tables() {
    assert_eq!(
        errors(&minimal_with(
            "[track]\nname = \"a\"\ncommand = [\"/bin/true\"]\nweight = -10\n"
        )),
        [
            "/etc/x.toml:6:1: track: expected an array of tables (one [[track]] per check), found a table"
        ]
    );
}

#[test]
fn a_track_needs_a_unique_plain_name() {
    assert_eq!(
        track_lines("command = [\"/bin/true\"]\nweight = -10"),
        [
            "/etc/x.toml:6:1: track[0].name: missing; name the check (unique, shown by status and in events), e.g. name = \"db-ping\""
        ]
    );
    assert_eq!(
        track_lines("name = \"db ping\"\ncommand = [\"/bin/true\"]\nweight = -10"),
        [
            "/etc/x.toml:7:8: track[0].name: \"db ping\" is not a track name (1..=64 characters from A-Z a-z 0-9 - _ ., not starting with '-')"
        ]
    );
    assert_eq!(
        track_lines("name = \"-x\"\ncommand = [\"/bin/true\"]\nweight = -10"),
        [
            "/etc/x.toml:7:8: track[0].name: \"-x\" is not a track name (1..=64 characters from A-Z a-z 0-9 - _ ., not starting with '-')"
        ]
    );
    let twice = minimal_with(
        "[[track]]\nname = \"db\"\ncommand = [\"/bin/true\"]\nweight = -10\n[[track]]\nname = \"db\"\ncommand = [\"/bin/true\"]\non_fail = \"resign\"\n",
    );
    assert_eq!(
        errors(&twice),
        [
            "/etc/x.toml:11:8: track[1].name: \"db\" is listed twice (first at line 7, column 8); give each [[track]] its own name"
        ]
    );
}

#[test]
fn a_track_command_is_a_non_empty_argv_with_an_absolute_program() {
    assert_eq!(
        track_lines("name = \"db\"\nweight = -10"),
        [
            "/etc/x.toml:6:1: track[0].command: missing; the check to run, exit 0 meaning good, e.g. command = [\"/usr/local/libexec/check-db\", \"--quick\"]"
        ]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = []\nweight = -10"),
        [
            "/etc/x.toml:8:11: track[0].command: empty; give the program and its arguments, e.g. [\"/usr/local/libexec/check-db\", \"--quick\"]"
        ]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"check-db\"]\nweight = -10"),
        [
            "/etc/x.toml:8:11: track[0].command: \"check-db\": the program must be an absolute path (no $PATH lookup for a root daemon)"
        ]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = \"/bin/true\"\nweight = -10"),
        ["/etc/x.toml:8:11: track[0].command: expected an array of strings, found a string"]
    );
}

#[test]
fn track_timing_is_in_the_health_ranges() {
    assert_eq!(
        track_lines(
            "name = \"db\"\ncommand = [\"/bin/true\"]\nweight = -10\ninterval = \"10ms\"\ntimeout = \"7200s\"\nrise = 0\nfall = 101"
        ),
        [
            "/etc/x.toml:10:12: track[0].interval: 10ms is out of range (100ms..=3600s)",
            "/etc/x.toml:11:11: track[0].timeout: 7200s is out of range (100ms..=3600s)",
            "/etc/x.toml:12:8: track[0].rise: 0 is out of range (1..=100)",
            "/etc/x.toml:13:8: track[0].fall: 101 is out of range (1..=100)",
        ]
    );
}

#[test]
fn a_track_has_exactly_one_of_weight_and_on_fail() {
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]"),
        [
            "/etc/x.toml:6:1: track[0]: neither weight nor on_fail is set; give weight = N (added to the priority while the check fails, e.g. -50) or on_fail = \"resign\""
        ]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]\nweight = -10\non_fail = \"resign\""),
        [
            "/etc/x.toml:10:11: track[0]: both weight and on_fail are set; keep one: weight = N (a priority change) or on_fail = \"resign\""
        ]
    );
}

#[test]
fn a_track_weight_is_a_non_zero_priority_change_and_on_fail_is_resign() {
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]\nweight = 0"),
        [
            "/etc/x.toml:9:10: track[0].weight: 0 changes nothing; give -253..=-1 to lower the priority while the check fails (1..=253 to raise it), or on_fail = \"resign\""
        ]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]\nweight = -254"),
        ["/etc/x.toml:9:10: track[0].weight: -254 is out of range (-253..=-1 or 1..=253)"]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]\nweight = \"-10\""),
        [
            "/etc/x.toml:9:10: track[0].weight: expected an integer (-253..=-1 or 1..=253), found a string"
        ]
    );
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]\non_fail = \"demote\""),
        [
            "/etc/x.toml:9:11: track[0].on_fail: \"demote\" is not a track action (accepted: \"resign\"; for a priority change, weight = N instead)"
        ]
    );
    let config = parse(&minimal_with(
        "[[track]]\nname = \"up\"\ncommand = [\"/bin/true\"]\nweight = 253\n[[track]]\nname = \"down\"\ncommand = [\"/bin/true\"]\nweight = -253\n",
    ))
    .unwrap();
    let actions: Vec<TrackAction> = config.health.tracks.iter().map(|t| t.on_fail).collect();
    assert_eq!(
        actions,
        [TrackAction::Weight(253), TrackAction::Weight(-253)]
    );
}

#[test]
fn an_unknown_track_key_lists_the_accepted_ones() {
    assert_eq!(
        track_lines("name = \"db\"\ncommand = [\"/bin/true\"]\nweight = -10\nscript = \"x\""),
        [
            "/etc/x.toml:10:1: track[0].script: unknown key (accepted in [track[0]]: name, command, interval, timeout, rise, fall, weight, on_fail)"
        ]
    );
}

#[test]
fn tracks_are_checked_even_when_health_is_invalid() {
    let errors = errors(&minimal_with(
        "[health]\nrise = 0\n[[track]]\nname = \"db\"\ncommand = [\"/bin/true\"]\n",
    ));
    assert_eq!(
        errors,
        [
            "/etc/x.toml:7:8: health.rise: 0 is out of range (1..=100)",
            "/etc/x.toml:8:1: track[0]: neither weight nor on_fail is set; give weight = N (added to the priority while the check fails, e.g. -50) or on_fail = \"resign\"",
        ]
    );
}
