//! Configuration parsing and validation, as `check-config` and the agent see
//! it: defaults, every error with `file:line:col` and key, never a panic.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use rcbsd_failover::config::{
    load, parse_with_hostname, Config, ConfigError, VirtualIp, DEFAULT_CONTROL_SOCKET,
    DEFAULT_STATE_DIR,
};
use rcbsd_failover::election::Centis;
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
            "/etc/x.toml:6:2: storag: unknown key (accepted at the top level: node, vrrp, cbsd, storage, nfs, environments, runbook, tools, notify, metrics)"
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
        ("[\"fe80::1\"]", "not an IPv4 address"),
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
    assert_eq!(missing.exit_code(), 66);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[vrrp]\ninterface = \"em0\xff\"\n").unwrap();
    let error = load(&bad).unwrap_err();
    assert_eq!(error.exit_code(), 78);
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

/// Deterministic pseudo-random numbers (xorshift), so a failure replays.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_garbled_files_never_panic() {
    let example = include_str!("../contrib/examples/rcbsd-failover.toml");
    for end in (0..=example.len()).filter(|&i| example.is_char_boundary(i)) {
        let _ = parse(&example[..end]);
    }
    let alphabet = b"[]{}=\"'.,#\n 0123456789abcdefsm/\\-_:xyz\t";
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut bytes = example.as_bytes().to_vec();
        for _ in 0..(xorshift(&mut seed) % 8 + 1) {
            let at = (xorshift(&mut seed) as usize) % bytes.len();
            bytes[at] = alphabet[(xorshift(&mut seed) as usize) % alphabet.len()];
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = parse(&text);
        }
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
