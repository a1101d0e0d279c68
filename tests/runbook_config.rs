//! The CBSD cluster sections of the configuration: defaults, and the
//! checks `check-config` makes across them, each with file:line:col.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use rcbsd_failover::config::{parse_with_hostname, Config, ConfigError, EnvKind, StorageKind};

const VRRP: &str =
    "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n";
const NET: &str = "[nfs]\nexport_network = \"192.168.10.0/24\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_hostname(text, Path::new("/etc/x.toml"), Some("node1"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_cbsd_master_candidate_gets_freebsd_defaults() {
    let config = parse(&format!("{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}")).unwrap();
    let cbsd = config.cbsd.as_ref().unwrap();
    assert_eq!(cbsd.workdir, Path::new("/usr/jails"));
    assert_eq!(
        cbsd.shared_dirs,
        ["jails-data", "jails-system", "jails-rcconf", "jails-fstab"]
    );
    let storage = config.storage.as_ref().unwrap();
    assert_eq!(storage.root, Path::new("/store"));
    assert_eq!(storage.kind, StorageKind::None);
    assert_eq!(
        config.nfs.mount_options,
        "nfsv4,minorversion=1,hard,retrycnt=1"
    );
    assert!(!config.nfs.v4_only);
    assert_eq!(config.nfs.exports_file, Path::new("/etc/exports"));
    assert_eq!(config.nfs.remote_root, Path::new("/store"));
    assert_eq!(config.tools.service, Path::new("/usr/sbin/service"));
    assert_eq!(config.tools.mount_nfs, Path::new("/sbin/mount_nfs"));
    assert_eq!(config.runbook.fault_hold_off, Duration::from_secs(60));
    assert!(config.may_be_master());
}

#[test]
fn without_storage_a_cbsd_node_is_follower_only() {
    let config = parse(&format!(
        "{VRRP}[cbsd]\n[environments]\njails = [\"web1\", \"db*\"]\nbhyve = [\"vm1\"]\n"
    ))
    .unwrap();
    assert!(!config.may_be_master());
    let kinds: Vec<(&str, EnvKind)> = config
        .environments
        .patterns
        .iter()
        .map(|p| (p.pattern.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("web1", EnvKind::Jail),
            ("db*", EnvKind::Jail),
            ("vm1", EnvKind::Bhyve)
        ]
    );
}

#[test]
fn without_cbsd_a_node_only_moves_the_vip_and_may_be_master() {
    let config = parse(VRRP).unwrap();
    assert!(config.cbsd.is_none());
    assert!(config.may_be_master());
}

#[test]
fn a_shared_dir_outside_the_workdir_is_refused_with_its_position() {
    let text =
        format!("{VRRP}[cbsd]\nshared_dirs = [\"jails-data\", \"../etc\", \"/abs\", \"a/b\"]\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("/etc/x.toml:6:30: cbsd.shared_dirs[1]: \"../etc\" leaves the workdir"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("cbsd.shared_dirs[2]: \"/abs\" is absolute"),
        "{errors:?}"
    );
    assert!(errors[2].contains("cbsd.shared_dirs[3]"), "{errors:?}");
}

#[test]
fn duplicate_shared_dirs_and_environments_are_refused() {
    let errors = errors(&format!(
        "{VRRP}[cbsd]\nshared_dirs = [\"jails-data\", \"jails-data\"]\n[environments]\njails = [\"web1\"]\nbhyve = [\"web1\"]\n"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("cbsd.shared_dirs[1]: \"jails-data\" is listed twice"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("environments.bhyve[0]: \"web1\" is listed twice"),
        "{errors:?}"
    );
}

#[test]
fn the_export_network_must_contain_the_vip() {
    let errors = errors(&format!(
        "{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n[nfs]\nexport_network = \"10.0.0.0/8\"\n"
    ));
    assert_eq!(
        errors,
        ["/etc/x.toml:9:18: nfs.export_network: 10.0.0.0/8 does not contain the virtual IP 192.168.10.200: the followers mount from the VIP's network, export to it"]
    );
}

#[test]
fn a_master_candidate_must_say_who_may_mount() {
    let errors = errors(&format!("{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("nfs.export_network"), "{errors:?}");
}

#[test]
fn a_storage_kind_missing_its_parameters_is_refused() {
    let hast = errors(&format!("{VRRP}[cbsd]\n[storage]\nkind = \"hast\"\n{NET}"));
    assert!(
        hast[0].contains("storage.resource: missing; kind = \"hast\""),
        "{hast:?}"
    );
    let zfs = errors(&format!(
        "{VRRP}[cbsd]\n[storage]\nkind = \"zfs\"\nresource = \"r\"\n{NET}"
    ));
    assert_eq!(zfs.len(), 2, "{zfs:?}");
    assert!(
        zfs.iter().any(|e| e.contains("storage.pool: missing")),
        "{zfs:?}"
    );
    assert!(
        zfs.iter()
            .any(|e| e.contains("storage.resource: only for kind = \"hast\"")),
        "{zfs:?}"
    );
    let unknown = errors(&format!("{VRRP}[cbsd]\n[storage]\nkind = \"nfs\"\n{NET}"));
    assert!(
        unknown[0].contains("\"nfs\" is not a storage kind"),
        "{unknown:?}"
    );
}

#[test]
fn storage_root_must_not_overlap_the_workdir() {
    let errors = errors(&format!(
        "{VRRP}[cbsd]\nworkdir = \"/usr/jails\"\n[storage]\nkind = \"none\"\nroot = \"/usr/jails/store\"\n{NET}"
    ));
    assert!(
        errors[0].contains("storage.root: /usr/jails/store overlaps cbsd.workdir"),
        "{errors:?}"
    );
}

/// `[nfs] mount_options = "<options>"` on line 7; the string's first
/// character is in column 18.
fn mount_options_errors(options: &str) -> Vec<String> {
    errors(&format!(
        "{VRRP}[cbsd]\n[nfs]\nmount_options = \"{options}\"\n"
    ))
}

#[test]
fn each_refused_mount_option_is_named_at_its_line_and_column() {
    for (options, column, needle) in [
        (
            "nfsv4.1,hard,retrycnt=1",
            18,
            "write \"nfsv4,minorversion=1\"",
        ),
        (
            "vers=4.1,hard,retrycnt=1",
            18,
            "write \"nfsv4,minorversion=1\"",
        ),
        ("nfsvers=4,hard,retrycnt=1", 18, "write \"nfsv4\""),
        (
            "nfsv4,hard,retrycnt=1,bg",
            40,
            "a background mount returns before the mount exists",
        ),
        (
            "nfsv4,hard,bgnow,retrycnt=1",
            29,
            "a background mount returns before the mount exists",
        ),
        ("nfsv4,soft,retrycnt=1", 24, "\"soft\" is unsafe with NFSv4"),
        ("nfsv4,intr,retrycnt=1", 24, "\"intr\" is unsafe with NFSv4"),
        (
            "nfsv4,hard,retrycnt=0",
            29,
            "\"retrycnt=0\" retries forever",
        ),
        ("nfsv4,hard", 18, "has no retrycnt"),
        (
            "nfsv4,hard,retrycnt=1,rsize",
            40,
            "\"rsize\" needs a value (rsize=N",
        ),
        (
            "nfsv4,hard,retrycnt=1,sec",
            40,
            "needs a value (sec=krb5|krb5i|krb5p|sys",
        ),
        (
            "nfsv4,hard,retrycnt=1,frob",
            40,
            "mount option <frob> is unknown",
        ),
        ("nfsv4,hard,retrycnt=1,nofail", 40, "an fstab option"),
        ("nfsv4,hard,retrycnt=1,udp", 40, "NFSv4 runs over TCP"),
        ("hard,retrycnt=1", 18, "must select NFSv4"),
    ] {
        let found = mount_options_errors(options);
        assert_eq!(found.len(), 1, "{options}: {found:?}");
        let place = format!("/etc/x.toml:7:{column}: nfs.mount_options: ");
        assert!(found[0].starts_with(&place), "{options}: {found:?}");
        assert!(found[0].contains(needle), "{options}: {found:?}");
    }
}

#[test]
fn every_bad_mount_option_is_reported_not_just_the_first() {
    let found = mount_options_errors("nfsv4.1,soft,retrycnt=0");
    let places: Vec<&str> = found
        .iter()
        .map(|e| e.split(": nfs.mount_options").next().unwrap())
        .collect();
    assert_eq!(
        places,
        ["/etc/x.toml:7:18", "/etc/x.toml:7:26", "/etc/x.toml:7:31"],
        "{found:?}"
    );
}

#[test]
fn an_escaped_mount_options_string_is_reported_at_the_string() {
    let found = errors(&format!(
        "{VRRP}[cbsd]\n[nfs]\nmount_options = \"nfsv4,hard,retrycnt=1,\\u0062g\"\n"
    ));
    assert!(
        found[0].starts_with("/etc/x.toml:7:17: nfs.mount_options: \"bg\""),
        "{found:?}"
    );
}

#[test]
fn freebsd_mount_options_are_accepted() {
    for options in [
        "nfsv4,minorversion=1,hard,retrycnt=1",
        "vers=4,minorversion=2,hard,retrycnt=1,noatime,nosuid",
        "nfsv4,retrycnt=1,rsize=65536,wsize=65536,sec=sys,nconnect=2,noresvport",
    ] {
        let config = parse(&format!(
            "{VRRP}[cbsd]\n[nfs]\nmount_options = \"{options}\"\n"
        ))
        .unwrap_or_else(|e| panic!("{options}: {e}"));
        assert_eq!(config.nfs.mount_options, options);
    }
}

#[test]
fn a_retrycnt_whose_sleeps_outlive_the_mount_timeout_is_warned_about() {
    let slow = parse(&format!(
        "{VRRP}[cbsd]\n[nfs]\nmount_options = \"nfsv4,hard,retrycnt=2\"\n"
    ))
    .unwrap();
    let warnings = slow.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("retrycnt=2") && w.contains("runbook.mount_timeout 30s")),
        "{warnings:?}"
    );
    let room = parse(&format!(
        "{VRRP}[cbsd]\n[nfs]\nmount_options = \"nfsv4,hard,retrycnt=2\"\n[runbook]\nmount_timeout = \"90s\"\n"
    ))
    .unwrap();
    assert!(
        !room.warnings().iter().any(|w| w.contains("retrycnt")),
        "{:?}",
        room.warnings()
    );
    let default = parse(&format!("{VRRP}[cbsd]\n")).unwrap();
    assert!(!default.warnings().iter().any(|w| w.contains("retrycnt")));
}

#[test]
fn cluster_sections_need_cbsd() {
    let errors = errors(&format!("{VRRP}[environments]\njails = [\"web1\"]\n"));
    assert!(
        errors[0].contains("environments: [environments] needs a [cbsd] table"),
        "{errors:?}"
    );
}

#[test]
fn tools_must_be_absolute_and_known() {
    let errors = errors(&format!(
        "{VRRP}[tools]\ncbsd = \"cbsd\"\nzfs = \"/sbin/zfs\"\n"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("tools.cbsd"), "{errors:?}");
    assert!(errors[1].contains("tools.zfs: unknown key"), "{errors:?}");
}

#[test]
fn remote_root_must_equal_storage_root() {
    let errors = errors(&format!(
        "{VRRP}[cbsd]\n[storage]\nkind = \"none\"\nroot = \"/store\"\n[nfs]\nexport_network = \"192.168.10.0/24\"\nremote_root = \"/data\"\n"
    ));
    assert!(
        errors[0].contains("nfs.remote_root: /data differs from storage.root /store"),
        "{errors:?}"
    );
}

#[test]
fn stable_restart_dir_is_off_by_default_and_read_when_set() {
    let config = parse(&format!("{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}")).unwrap();
    assert_eq!(config.nfs.stable_restart_dir, None);
    assert_eq!(
        config.nfs.stable_restart_files,
        [
            Path::new("/var/db/nfs-stablerestart"),
            Path::new("/var/db/nfs-stablerestart.bak")
        ]
    );
    let config = parse(&format!(
        "{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}stable_restart_dir = \"/store/.nfs-stablerestart\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.nfs.stable_restart_dir.as_deref(),
        Some(Path::new("/store/.nfs-stablerestart"))
    );
}

#[test]
fn stable_restart_dir_must_be_on_the_storage_and_not_exported() {
    let with = |dir: &str| {
        errors(&format!(
            "{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}stable_restart_dir = \"{dir}\"\n"
        ))
    };
    let relative = with("store/x");
    assert!(
        relative[0].starts_with("/etc/x.toml:10:22: nfs.stable_restart_dir:")
            && relative[0].contains("must be an absolute path"),
        "{relative:?}"
    );
    let dotted = with("/store/../var/db");
    assert!(dotted[0].contains("without \".\" or \"..\""), "{dotted:?}");
    for outside in ["/var/db/stable", "/store", "/storex/a"] {
        let errors = with(outside);
        assert!(
            errors[0].starts_with("/etc/x.toml:10:22: nfs.stable_restart_dir:")
                && errors[0].contains("is not inside storage.root /store"),
            "{errors:?}"
        );
    }
    let exported = with("/store/jails-data/.nfs");
    assert!(
        exported[0].contains("inside the exported shared dir /store/jails-data")
            && exported[0].contains("/store/.nfs-stablerestart"),
        "{exported:?}"
    );
    // A follower-only node never runs nfsd: nothing to check it against.
    assert!(parse(&format!(
        "{VRRP}[cbsd]\n[nfs]\nstable_restart_dir = \"/store/.nfs-stablerestart\"\n"
    ))
    .is_ok());
}

#[test]
fn stable_restart_files_are_read_and_checked() {
    let with = |files: &str| {
        format!(
            "{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}stable_restart_dir = \"/store/.nfs-stablerestart\"\nstable_restart_files = {files}\n"
        )
    };
    let config = parse(&with("[\"/lab/var/db/a\", \"/lab/var/db/a.bak\"]")).unwrap();
    assert_eq!(
        config.nfs.stable_restart_files,
        [Path::new("/lab/var/db/a"), Path::new("/lab/var/db/a.bak")]
    );
    let one = errors(&with("[\"/var/db/a\"]"));
    assert!(
        one[0].starts_with("/etc/x.toml:11:24: nfs.stable_restart_files:")
            && one[0].contains("has 1 paths"),
        "{one:?}"
    );
    let relative = errors(&with("[\"/var/db/a\", \"var/db/b\"]"));
    assert!(
        relative[0].starts_with("/etc/x.toml:11:38: nfs.stable_restart_files[1]:")
            && relative[0].contains("must be an absolute path"),
        "{relative:?}"
    );
    let same = errors(&with("[\"/var/db/a\", \"/var/tmp/a\"]"));
    assert!(same[0].contains("the same file name"), "{same:?}");
    let inside = errors(&with("[\"/store/.nfs-stablerestart/a\", \"/var/db/b\"]"));
    assert!(
        inside[0].contains("nfs.stable_restart_files[0]")
            && inside[0].contains("inside nfs.stable_restart_dir"),
        "{inside:?}"
    );
    let number = errors(&with("[\"/var/db/a\", 1]"));
    assert!(
        number[0].contains("nfs.stable_restart_files[1]"),
        "{number:?}"
    );
}

/// `[cluster]` with this node alone (enough for the cross-checks).
const ONE_NODE: &str = "[cluster]\nnodes = [{ name = \"node1\", address = \"198.18.0.1\" }]\n";

#[test]
fn follow_defaults_to_remount_with_a_deadline_covering_nfsd_grace() {
    use rcbsd_failover::config::follow::OnMasterChange;
    let config = parse(&format!("{VRRP}[cbsd]\n")).unwrap();
    assert_eq!(config.follow.on_master_change, OnMasterChange::Remount);
    assert_eq!(config.follow.ride_through(), None);
    // nfsd's default grace (120 s lease + 15 s) plus the promote.
    assert_eq!(config.follow.ride_through_timeout, Duration::from_secs(180));
    let config = parse(&format!(
        "{VRRP}[cbsd]\n[nfs]\nv4_only = true\nstable_restart_dir = \"/store/.nfs-stablerestart\"\n{ONE_NODE}[follow]\non_master_change = \"ride-through\"\nride_through_timeout = \"90s\"\n"
    ))
    .unwrap();
    assert_eq!(config.follow.on_master_change, OnMasterChange::RideThrough);
    assert_eq!(config.follow.ride_through(), Some(Duration::from_secs(90)));
}

#[test]
fn ride_through_without_its_prerequisites_is_refused_at_the_key() {
    // [vrrp] is lines 1-4; the value sits at line 6, column 20.
    let plain = errors("[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n[follow]\non_master_change = \"ride-through\"\n");
    assert!(
        plain[0].starts_with("/etc/x.toml:6:20: follow.on_master_change:")
            && plain[0].contains("needs a [cbsd] table"),
        "{plain:?}"
    );
    let bare = errors(&format!(
        "{VRRP}[cbsd]\n[follow]\non_master_change = \"ride-through\"\n"
    ));
    let all = bare.join("\n");
    assert!(all.contains("needs [cluster]"), "{all}");
    assert!(all.contains("needs nfs.stable_restart_dir"), "{all}");
    assert!(all.contains("NFSERR_NOGRACE"), "{all}");
    assert!(all.contains("needs nfs.v4_only = true"), "{all}");
    assert!(all.contains("statd"), "{all}");
    assert_eq!(bare.len(), 3, "{all}");
    let v3 = errors(&format!(
        "{VRRP}[cbsd]\n[nfs]\nstable_restart_dir = \"/store/.nfs-stablerestart\"\n{ONE_NODE}[follow]\non_master_change = \"ride-through\"\n"
    ));
    assert_eq!(v3.len(), 1, "{v3:?}");
    assert!(v3[0].contains("NFSv4-only is the supported"), "{v3:?}");
}

#[test]
fn follow_values_out_of_their_set_are_refused() {
    let word = errors(&format!(
        "{VRRP}[cbsd]\n[follow]\non_master_change = \"ride\"\n"
    ));
    assert!(
        word[0].contains("\"ride\" is not one of \"remount\", \"ride-through\""),
        "{word:?}"
    );
    let short = errors(&format!(
        "{VRRP}[cbsd]\n[follow]\nride_through_timeout = \"1s\"\n"
    ));
    assert!(
        short[0].contains("follow.ride_through_timeout: 1s is out of range (10s..=3600s)"),
        "{short:?}"
    );
    let unknown = errors(&format!("{VRRP}[cbsd]\n[follow]\nride = true\n"));
    assert!(unknown[0].contains("follow.ride"), "{unknown:?}");
}

/// With `follow.on_master_change = "ride-through"` the exports must keep
/// the followers' file handles and state on another master
/// (`config::file_handles`): each refusal at the key to fix.
#[test]
fn ride_through_refuses_exports_that_would_not_keep_file_handles() {
    let follow = "[follow]\non_master_change = \"ride-through\"\n";
    // Line 5: [cbsd], 6: [storage], 7: kind.
    let none = errors(&format!(
        "{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}{follow}"
    ));
    assert!(
        none.iter()
            .any(|e| e.starts_with("/etc/x.toml:7:8: storage.kind: \"none\" with follow.on_master_change = \"ride-through\"")),
        "{none:?}"
    );
    // HAST (UFS: the superblock's fs_id) with every other prerequisite.
    let hast = "[storage]\nkind = \"hast\"\nresource = \"cbsd\"\n";
    let nfs = "v4_only = true\nstable_restart_dir = \"/store/.nfs-stablerestart\"\n";
    parse(&format!("{VRRP}[cbsd]\n{hast}{NET}{nfs}{ONE_NODE}{follow}")).unwrap();
    // A follower mounting the master's workdir mounts its nullfs binding.
    let nullfs = errors(&format!(
        "{VRRP}[cbsd]\n[nfs]\nremote_root = \"/usr/jails/jails-data\"\n{follow}"
    ));
    assert!(
        nullfs.iter().any(|e| e.starts_with(
            "/etc/x.toml:7:15: nfs.remote_root: /usr/jails/jails-data is under cbsd.workdir"
        )),
        "{nullfs:?}"
    );
    // The default (remount) asks nothing of the layout.
    parse(&format!("{VRRP}[cbsd]\n[storage]\nkind = \"none\"\n{NET}")).unwrap();
}
