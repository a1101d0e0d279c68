//! The runbooks' command sequences, as pure builders produce them, against
//! the order of docs/runbooks.md (PROMOTE 2-9,
//! DEMOTE 2-6, FOLLOW 1-5), for each storage kind and `nfs.v4_only`.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rcbsd_failover::config::{parse_with_hostname, Config, EnvKind};
use rcbsd_failover::net::vip::Os;
use rcbsd_failover::runbook::step::{Action, Builtin, OnFailure, Step};
use rcbsd_failover::runbook::{demote, follow, plan, promote, Context, Env, Kind};

fn config(storage: &str, nfs_extra: &str) -> Config {
    let text = format!(
        r#"
[node]
name = "node1"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["192.168.10.200/24"]
[cbsd]
shared_dirs = ["jails-data", "jails-system"]
{storage}
[nfs]
export_network = "192.168.10.0/24"
{nfs_extra}
[environments]
jails = ["J"]
"#
    );
    parse_with_hostname(&text, Path::new("/etc/x.toml"), None).unwrap()
}

const HAST: &str = "[storage]\nkind = \"hast\"\nresource = \"cbsd\"\n";
const ZFS: &str = "[storage]\nkind = \"zfs\"\npool = \"tank\"\n";
const NONE: &str = "[storage]\nkind = \"none\"\n";

/// The example VIP; `rejoin`: the first follow since the agent started.
fn ctx(rejoin: bool) -> Context {
    let vip: std::net::Ipv4Addr = "192.168.10.200".parse().unwrap();
    let config = parse_with_hostname(
        &format!("[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"{vip}/24\"]\n"),
        Path::new("/x.toml"),
        Some("n"),
    )
    .unwrap();
    let ctx = Context::from_config(&config).with_rejoin(rejoin);
    assert_eq!(ctx.vip, vip);
    ctx
}

fn j() -> Vec<Env> {
    vec![Env {
        name: "J".into(),
        kind: EnvKind::Jail,
    }]
}

/// What each step does, in one line: the acting command (the first
/// fallback only) without the `cd / && env ...` prefix, or the builtin.
fn acts(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|step| match &step.action {
            Action::Run(checked) => checked.command.argv.join(" "),
            Action::Ensure(ensure) => ensure
                .acts
                .first()
                .map_or_else(String::new, |c| c.argv.join(" ")),
            Action::Builtin(builtin) => match builtin {
                Builtin::AddVip => "<add vip>".into(),
                Builtin::DropVip => "<drop vip>".into(),
                Builtin::ArpBurst => "<arp burst>".into(),
                Builtin::NaBurst => "<na burst>".into(),
                Builtin::WriteExports { .. } => "<write exports>".into(),
                Builtin::ClearExports { .. } => "<clear exports>".into(),
                Builtin::WaitForPath { path } => format!("<wait {}>", path.display()),
                Builtin::VerifyDirId { .. } => "<verify dir.id>".into(),
                Builtin::WriteProbe { .. } => "<write probe>".into(),
                Builtin::CheckLock { .. } => "<check lock>".into(),
                Builtin::ClearStaleRegistrations(_) => "<clear stale registrations>".into(),
                Builtin::DismountDead(dead) if dead.ask => "<dismount dead nfs>".into(),
                Builtin::DismountDead(_) => "<dismount nfs>".into(),
                Builtin::Verify(_) => "<verify>".into(),
                Builtin::LinkStableRestart(links) => format!("<link {}>", links.dir.display()),
                Builtin::RestoreStableRestart(_) => "<restore stable restart>".into(),
            },
        })
        .collect()
}

fn promote_all(config: &Config) -> Vec<String> {
    let mut steps = promote::build(config, &j());
    steps.extend(promote::start_environments(config, &j()));
    acts(&steps)
}

/// A verified stop: the plain one, the forceful one if that fails (sudoexec/jstop
/// fast=1), then junregister so the next jregister reads fresh settings.
const STOP_J: [&str; 3] = [
    "/usr/local/bin/cbsd jstop inter=0 jname=J",
    "/usr/local/bin/cbsd jstop inter=0 jname=J fast=1",
    "/usr/local/bin/cbsd junregister jname=J",
];
const START_J: [&str; 3] = [
    "<check lock>",
    "/usr/local/bin/cbsd jregister jname=J",
    "/usr/local/bin/cbsd jstart inter=0 jname=J",
];

fn promote_expected(storage: &[&str], services: &[&str]) -> Vec<String> {
    let mut expected: Vec<String> = vec!["<dismount nfs>".into()];
    expected.extend(STOP_J.iter().map(|s| s.to_string()));
    expected.extend([
        "/sbin/umount /usr/jails/jails-data".into(),
        "/sbin/umount -N /usr/jails/jails-data".into(),
        "/sbin/umount /usr/jails/jails-system".into(),
        "/sbin/umount -N /usr/jails/jails-system".into(),
    ]);
    expected.extend(storage.iter().map(|s| s.to_string()));
    expected.extend([
        "<wait /store/jails-data>".to_string(),
        "<wait /store/jails-system>".into(),
        "/sbin/mount -t nullfs /store/jails-data /usr/jails/jails-data".into(),
        "/sbin/mount -t nullfs /store/jails-system /usr/jails/jails-system".into(),
        "<verify dir.id>".into(),
        "<write exports>".into(),
    ]);
    expected.extend(
        services
            .iter()
            .map(|s| format!("/usr/sbin/service {s} onestart")),
    );
    expected.extend([
        "/usr/bin/sockstat -4l -p 2049".to_string(),
        "<add vip>".into(),
        "<arp burst>".into(),
    ]);
    expected.extend(START_J.iter().map(|s| s.to_string()));
    expected
}

const FULL: &[&str] = &["rpcbind", "nfsuserd", "mountd", "nfsd", "statd", "lockd"];
const V4: &[&str] = &["nfsuserd", "mountd", "nfsd"];
const HAST_TAKE: &[&str] = &[
    // hastctl only talks to hastd: started first if it does not run.
    "/usr/sbin/service hastd onestart",
    "/sbin/hastctl role primary cbsd",
    "<wait /dev/hast/cbsd>",
    "/sbin/fsck -p -y -t ufs /dev/hast/cbsd",
    "/sbin/mount /dev/hast/cbsd /store",
];

#[test]
fn promote_with_hast_follows_the_reference_order() {
    assert_eq!(
        promote_all(&config(HAST, "")),
        promote_expected(HAST_TAKE, FULL)
    );
}

#[test]
fn promote_with_hast_v4_only_starts_three_services() {
    assert_eq!(
        promote_all(&config(HAST, "v4_only = true")),
        promote_expected(HAST_TAKE, V4)
    );
}

/// Read-only import, `multihost` must be `on`, export, read-write import;
/// never cached (`cachefile=none`).
const ZFS_TAKE: &[&str] = &[
    "/sbin/zpool import -N -o readonly=on -o cachefile=none -f tank",
    "/sbin/zpool get -H -o value multihost tank",
    "/sbin/zpool export tank",
    "/sbin/zpool import -o cachefile=none -f tank",
];

#[test]
fn promote_with_zfs_checks_multihost_read_only_before_importing_the_pool() {
    assert_eq!(
        promote_all(&config(ZFS, "")),
        promote_expected(ZFS_TAKE, FULL)
    );
    assert_eq!(
        promote_all(&config(ZFS, "v4_only = true")),
        promote_expected(ZFS_TAKE, V4)
    );
}

#[test]
fn plan_promote_with_zfs_shows_the_multihost_check_and_each_import() {
    let config = config(ZFS, "");
    let text = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    let expected = "\
 9. import pool tank read-only  [timeout 600s, on failure: abort]
    check  /sbin/zpool list -H -o name tank  => done if exit 0
    else   /sbin/zpool import -N -o readonly=on -o cachefile=none -f tank  (then check again)
    undo:  export pool tank
10. check multihost of tank  [timeout 30s, on failure: abort]
    run    /sbin/zpool get -H -o value multihost tank  => prints \"on\"
11. export read-only pool tank  [timeout 600s, on failure: abort]
    check  /sbin/zpool get -H -o value readonly tank  => done if does not print \"on\" (or fails)
    else   /sbin/zpool export tank  (then check again)
12. import pool tank  [timeout 600s, on failure: abort]
    check  /sbin/zpool list -H -o name tank  => done if exit 0
    else   /sbin/zpool import -o cachefile=none -f tank  (then check again)
    undo:  export pool tank
";
    assert!(text.contains(expected), "{text}");
}

/// The lines of `plan` from the step named `first` up to the step named
/// `next`, a comment line or the end, whichever comes first.
fn step_lines(plan: &str, first: &str, next: Option<&str>) -> String {
    let is_step = |line: &str, name: &str| {
        line.split_once(". ").is_some_and(|(number, rest)| {
            number.trim().parse::<u32>().is_ok() && rest.starts_with(&format!("{name}  ["))
        })
    };
    let lines: Vec<&str> = plan.lines().collect();
    let start = lines
        .iter()
        .position(|l| is_step(l, first))
        .unwrap_or_else(|| panic!("no step {first:?} in\n{plan}"));
    let length = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with('#') || next.is_some_and(|next| is_step(l, next)))
        .map_or(lines.len() - start, |n| n + 1);
    lines[start..start + length]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// docs/runbooks.md shows the zfs steps of `plan` for
/// contrib/examples/zfs.toml: keep them true.
#[test]
fn the_documented_zfs_steps_match_the_zfs_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("contrib/examples/zfs.toml")).unwrap();
    let config = parse_with_hostname(&text, Path::new("zfs.toml"), None).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/runbooks.md")).unwrap_or_default();
    let promote = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    let take = step_lines(
        &promote,
        "import pool cbsdshared read-only",
        Some("find /cbsdshared/jails-data"),
    );
    let demote = plan::render(&config, Kind::Demote, Os::FreeBsd, &[]);
    let release = step_lines(&demote, "export pool cbsdshared", None);
    for block in [take, release] {
        assert!(
            docs.contains(&block),
            "docs/runbooks.md lacks these lines of `plan` for contrib/examples/zfs.toml:\n{block}"
        );
    }
}

const STABLE: &str = "stable_restart_dir = \"/store/.nfs-stablerestart\"";

#[test]
fn stable_restart_links_go_after_the_storage_and_exports_before_any_nfs_service() {
    for storage in [HAST, ZFS, NONE] {
        let config = config(storage, STABLE);
        let with = promote_all(&config);
        let link = "<link /store/.nfs-stablerestart>".to_string();
        let at = with.iter().position(|a| *a == link).unwrap();
        // Opt-in: without the key the promote is the reference one; with
        // it, the same plus this one step.
        let mut without = with.clone();
        without.remove(at);
        assert_eq!(without, promote_all(&self::config(storage, "")));
        assert_eq!(with[at - 1], "<write exports>");
        assert_eq!(with[at + 1], "/usr/sbin/service rpcbind onestart");
        let nfsd = with
            .iter()
            .position(|a| a == "/usr/sbin/service nfsd onestart")
            .unwrap();
        assert!(at < nfsd);
        let steps = promote::build(&config, &j());
        let step = steps
            .iter()
            .find(|s| matches!(s.action, Action::Builtin(Builtin::LinkStableRestart(_))))
            .unwrap();
        assert_eq!(
            step.on_failure,
            OnFailure::Abort,
            "nfsd must not start without it"
        );
        let undo = step.undo.as_deref().unwrap();
        assert!(matches!(
            &undo.action,
            Action::Builtin(Builtin::RestoreStableRestart(links))
                if links.files == [Path::new("/var/db/nfs-stablerestart"), Path::new("/var/db/nfs-stablerestart.bak")]
        ));
    }
}

#[test]
fn demote_restores_the_local_stable_restart_files_after_nfsd_stops() {
    let acts = acts(&demote::build(&config(ZFS, STABLE), &j()));
    let restore = position_of(&acts, "<restore stable restart>");
    assert!(position_of(&acts, "/usr/sbin/service nfsd onestop") < restore);
    assert!(restore < position_of(&acts, "/sbin/zpool export tank"));
    let steps = demote::build(&config(ZFS, STABLE), &j());
    assert_eq!(steps[restore].on_failure, OnFailure::Continue);
}

#[test]
fn plan_shows_the_stable_restart_links_and_their_restore() {
    let config = config(HAST, STABLE);
    let promote = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    assert!(promote.contains("link nfs stable restart"), "{promote}");
    assert!(
        promote.contains(
            "/var/db/nfs-stablerestart.bak -> /store/.nfs-stablerestart/nfs-stablerestart.bak"
        ),
        "{promote}"
    );
    assert!(
        promote.contains("/var/db/nfs-stablerestart.rcbsd-local"),
        "{promote}"
    );
    let demote = plan::render(&config, Kind::Demote, Os::FreeBsd, &[]);
    assert!(
        demote.contains("restore local nfs stable restart"),
        "{demote}"
    );
}

fn position_of(list: &[String], wanted: &str) -> usize {
    list.iter()
        .position(|a| a == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} not in {list:#?}"))
}

#[test]
fn promote_with_storage_none_only_binds() {
    assert_eq!(promote_all(&config(NONE, "")), promote_expected(&[], FULL));
    assert_eq!(
        promote_all(&config(NONE, "v4_only = true")),
        promote_expected(&[], V4)
    );
}

fn demote_expected(services: &[&str], release: &[&str]) -> Vec<String> {
    let mut expected: Vec<String> = vec!["<drop vip>".into()];
    expected.extend(STOP_J.iter().map(|s| s.to_string()));
    expected.extend(
        services
            .iter()
            .map(|s| format!("/usr/sbin/service {s} onestop")),
    );
    expected.extend([
        "<clear exports>".to_string(),
        "/sbin/umount /usr/jails/jails-data".into(),
        "/sbin/umount /usr/jails/jails-system".into(),
    ]);
    expected.extend(release.iter().map(|s| s.to_string()));
    expected
}

#[test]
fn demote_drops_the_vip_first_and_stops_what_promote_started_in_reverse() {
    let stop_full = &["lockd", "statd", "nfsd", "mountd"];
    let hast_release = &[
        "/sbin/umount /store",
        "/usr/sbin/service hastd onestart",
        "/sbin/hastctl role secondary cbsd",
    ];
    assert_eq!(
        acts(&demote::build(&config(HAST, ""), &j())),
        demote_expected(stop_full, hast_release)
    );
    assert_eq!(
        acts(&demote::build(&config(HAST, "v4_only = true"), &j())),
        demote_expected(&["nfsd", "mountd"], hast_release)
    );
    assert_eq!(
        acts(&demote::build(&config(ZFS, ""), &j())),
        demote_expected(stop_full, &["/sbin/zpool export tank"])
    );
    assert_eq!(
        acts(&demote::build(&config(NONE, ""), &j())),
        demote_expected(stop_full, &[])
    );
}

#[test]
fn follow_unmounts_mounts_from_the_vip_verifies_then_starts() {
    for storage in ["", HAST, ZFS, NONE] {
        let config = config(storage, "");
        let mut steps = follow::build(&config, &Context::from_config(&config), &j());
        steps.extend(follow::start_environments(&config, &j()));
        let mut expected: Vec<String> = vec!["<dismount dead nfs>".into()];
        expected.extend(STOP_J.iter().map(|s| s.to_string()));
        expected.extend([
            "/sbin/umount /usr/jails/jails-data".into(),
            "/sbin/umount -N /usr/jails/jails-data".into(),
            "/sbin/umount /usr/jails/jails-system".into(),
            "/sbin/umount -N /usr/jails/jails-system".into(),
        ]);
        if storage == HAST {
            // A HAST candidate stands by: role init would not replicate,
            // and hastctl needs hastd.
            expected.push("/usr/sbin/service hastd onestart".into());
            expected.push("/sbin/hastctl role secondary cbsd".into());
        }
        expected.extend([
            "/usr/sbin/service nfsuserd onestart".into(),
            "/sbin/mount_nfs -o nfsv4,minorversion=1,hard,retrycnt=1 192.168.10.200:/store/jails-data /usr/jails/jails-data".into(),
            "/sbin/mount_nfs -o nfsv4,minorversion=1,hard,retrycnt=1 192.168.10.200:/store/jails-system /usr/jails/jails-system".into(),
            "<verify dir.id>".into(),
            "<write probe>".into(),
        ]);
        expected.extend(START_J.iter().map(|s| s.to_string()));
        assert_eq!(acts(&steps), expected, "storage {storage:?}");
    }
}

#[test]
fn on_rejoin_stale_registrations_are_cleared_after_the_unmounts_before_the_mounts() {
    for storage in ["", HAST, NONE] {
        let config = config(storage, "");
        let steps = follow::build(&config, &ctx(true), &j());
        let all = acts(&steps);
        let clear = all
            .iter()
            .position(|a| a == "<clear stale registrations>")
            .unwrap_or_else(|| panic!("{all:#?}"));
        let last_unmount = all
            .iter()
            .rposition(|a| a.starts_with("/sbin/umount "))
            .unwrap();
        let first_mount = all
            .iter()
            .position(|a| a.starts_with("/sbin/mount_nfs "))
            .unwrap();
        assert_eq!(clear, last_unmount + 1, "storage {storage:?}: {all:#?}");
        assert!(clear < first_mount, "storage {storage:?}: {all:#?}");
        let step = &steps[clear];
        assert_eq!(step.name, "clear stale registrations");
        assert_eq!(step.on_failure, OnFailure::Continue);
        let Action::Builtin(Builtin::ClearStaleRegistrations(clear)) = &step.action else {
            panic!("{step:?}");
        };
        let listings: Vec<String> = clear.listings.iter().map(|c| c.argv.join(" ")).collect();
        assert_eq!(listings, ["/usr/local/bin/cbsd jorder"]);
        // VMs once the dirs are mounted and verified: CBSD cannot load a
        // VM without jails-system/J/local.sqlite.
        let write_probe = all.iter().position(|a| a == "<write probe>").unwrap();
        let vms = &steps[write_probe + 1];
        assert_eq!(vms.name, "clear stale VM registrations");
        let Action::Builtin(Builtin::ClearStaleRegistrations(vms)) = &vms.action else {
            panic!("{vms:?}");
        };
        let listings: Vec<String> = vms.listings.iter().map(|c| c.argv.join(" ")).collect();
        assert_eq!(listings, ["/usr/local/bin/cbsd border"]);
        assert_eq!(
            vms.unregister("vm9").argv.join(" "),
            "/usr/local/bin/cbsd junregister jname=vm9 rcfile=/var/db/rcbsd-failover/junregistered/rc.conf_vm9"
        );
        let unregister = clear.unregister("old1");
        assert_eq!(
            unregister.argv.join(" "),
            "/usr/local/bin/cbsd junregister jname=old1"
        );
        for command in clear.listings.iter().chain([&unregister]) {
            assert_eq!(command.cwd.as_deref(), Some(Path::new("/")));
            assert!(command.env.contains(&("NOCOLOR".into(), "1".into())));
            assert!(command.env.contains(&("NOINTER".into(), "1".into())));
        }
        // J is this node's; anything else registered here is stale.
        assert_eq!(clear.stale("J old1\nvm9\n"), ["old1", "vm9"]);
    }
}

#[test]
fn without_rejoin_no_registration_is_cleared() {
    let config = config(HAST, "");
    let steps = follow::build(&config, &ctx(false), &j());
    assert!(
        !acts(&steps).contains(&"<clear stale registrations>".to_owned()),
        "{:#?}",
        acts(&steps)
    );
    // Only the junregister after a verified stop of this node's own J.
    assert!(steps.iter().all(|s| !s
        .argvs()
        .iter()
        .any(|argv| argv.iter().any(|a| a == "jorder"
            || a == "border"
            || (a == "junregister" && !argv.contains(&"jname=J".to_owned()))))));
}

#[test]
fn plan_follow_shows_the_listings_and_that_junregister_depends_on_them() {
    let config = config(NONE, "");
    let text = plan::render(&config, Kind::Follow, Os::FreeBsd, &[]);
    assert!(
        text.contains("clear stale registrations  [timeout 30s, on failure: continue]"),
        "{text}"
    );
    assert!(
        text.contains("list   cd / && env NOCOLOR=1 NOINTER=1 /usr/local/bin/cbsd jorder"),
        "{text}"
    );
    assert!(
        text.contains("list   cd / && env NOCOLOR=1 NOINTER=1 /usr/local/bin/cbsd border"),
        "{text}"
    );
    assert!(
        text.contains("/usr/local/bin/cbsd junregister jname=NAME  for each NAME listed that no [environments] pattern names (depends on the listings' output)"),
        "{text}"
    );
}

#[test]
fn unmount_falls_back_to_force_then_n_in_a_step_of_its_own() {
    let steps = follow::build(&config(NONE, ""), &ctx(false), &[]);
    let acts_of = |step: &Step| -> Vec<String> {
        let Action::Ensure(ensure) = &step.action else {
            panic!("{step:?}");
        };
        assert_eq!(ensure.probe.command.argv.join(" "), "/sbin/mount -p -t nfs");
        ensure.acts.iter().map(|c| c.argv.join(" ")).collect()
    };
    // A dead server's mounts first: the dismount asks before it acts.
    let Action::Builtin(Builtin::DismountDead(dead)) = &steps[0].action else {
        panic!("{:?}", steps[0]);
    };
    assert!(dead.ask);
    assert_eq!(
        acts_of(&steps[1]),
        [
            "/sbin/umount /usr/jails/jails-data",
            "/sbin/umount -f /usr/jails/jails-data",
        ]
    );
    // -N gets a deadline of its own: a hung plain umount cannot use it up.
    assert_eq!(
        acts_of(&steps[2]),
        ["/sbin/umount -N /usr/jails/jails-data"]
    );
    assert_eq!(steps[1].on_failure, OnFailure::Continue);
}

#[test]
fn every_cbsd_call_runs_from_root_with_nocolor_noninteractive_and_jname() {
    let config = config(HAST, "");
    let mut steps = promote::build(&config, &j());
    steps.extend(promote::start_environments(&config, &j()));
    let mut seen = 0;
    for step in &steps {
        let commands: Vec<_> = match &step.action {
            Action::Run(c) => vec![c.command.clone()],
            Action::Ensure(e) => {
                let mut all = vec![e.probe.command.clone()];
                all.extend(e.acts.iter().cloned());
                all
            }
            Action::Builtin(_) => vec![],
        };
        for command in commands.iter().filter(|c| c.argv[0].ends_with("/cbsd")) {
            seen += 1;
            assert_eq!(command.cwd.as_deref(), Some(Path::new("/")));
            assert!(command.env.contains(&("NOCOLOR".into(), "1".into())));
            assert!(command.env.contains(&("NOINTER".into(), "1".into())));
            assert!(command.argv.iter().any(|a| a == "jname=J"), "{command:?}");
        }
    }
    assert!(seen >= 5, "{seen}");
}

#[test]
fn bhyve_uses_jregister_and_bstart_bstop() {
    let config = config(NONE, "");
    let vm = vec![Env {
        name: "vm1".into(),
        kind: EnvKind::Bhyve,
    }];
    let mut steps = follow::build(&config, &ctx(false), &vm);
    steps.extend(follow::start_environments(&config, &vm));
    let all = acts(&steps);
    assert!(all.contains(&"/usr/local/bin/cbsd bstop jname=vm1 hard_timeout=30".to_owned()));
    assert!(all.contains(&"/usr/local/bin/cbsd jregister jname=vm1".to_owned()));
    assert!(all.contains(&"/usr/local/bin/cbsd bstart inter=0 jname=vm1".to_owned()));
    assert!(!all.iter().any(|a| a.contains("bregister")));
}

#[test]
fn a_plain_vrrp_node_only_moves_the_vip() {
    let text = "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n";
    let config = parse_with_hostname(text, Path::new("/x.toml"), Some("n")).unwrap();
    assert!(config.may_be_master());
    assert_eq!(
        acts(&promote::build(&config, &[])),
        ["<add vip>", "<arp burst>"]
    );
    assert_eq!(acts(&demote::build(&config, &[])), ["<drop vip>"]);
    assert!(follow::build(&config, &ctx(false), &[]).is_empty());
}

/// docs/runbooks.md shows `plan` for the shipped example: keep it true.
#[test]
fn the_documented_plans_match_the_example_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("contrib/examples/rcbsd-failover.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let config = parse_with_hostname(&text, Path::new("rcbsd-failover.toml"), None).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/runbooks.md")).unwrap_or_default();
    let mut missing = Vec::new();
    for kind in [
        Kind::Promote,
        Kind::Demote,
        Kind::Follow,
        Kind::Quiesce,
        Kind::RideThrough,
    ] {
        let rendered = plan::render(&config, kind, Os::FreeBsd, &[]);
        if let Ok(dir) = std::env::var("RCBSD_PLAN_OUT") {
            std::fs::write(format!("{dir}/{}.txt", kind.as_str()), &rendered).unwrap();
        }
        if !docs.contains(&rendered) {
            missing.push(format!("`plan {}`:\n{rendered}", kind.as_str()));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/runbooks.md lacks the current output of {}",
        missing.join("\n")
    );
}

#[test]
fn the_plan_names_the_os_whose_commands_it_shows() {
    let config = config(HAST, "");
    let freebsd = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    assert!(
        freebsd.starts_with("# promote on node node1 (/etc/x.toml), as run on FreeBSD\n"),
        "{freebsd}"
    );
    assert!(
        freebsd.contains("/sbin/ifconfig em0 inet 192.168.10.200/32 alias"),
        "{freebsd}"
    );
    assert!(!freebsd.contains("/sbin/ip "), "{freebsd}");
    let linux = plan::render(&config, Kind::Promote, Os::Linux, &[]);
    assert!(linux.contains("as run on Linux"), "{linux}");
    assert!(
        linux.contains("/sbin/ip -4 addr add 192.168.10.200/24 dev em0"),
        "{linux}"
    );
    let health = plan::render(&config, Kind::Repair, Os::FreeBsd, &[]);
    assert!(health.contains("as run on FreeBSD"), "{health}");
}

#[test]
fn a_follower_only_node_is_never_master_in_its_promote_plan() {
    let config = config("", "");
    assert!(!config.may_be_master());
    let text = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    assert!(
        text.contains("# nothing to do: node node1 is never master"),
        "{text}"
    );
    assert!(!text.contains("add vip"), "{text}");
    assert!(!text.contains(" 1. "), "{text}");
    // It still follows.
    let follow = plan::render(&config, Kind::Follow, Os::FreeBsd, &[]);
    assert!(follow.contains(" 1. "), "{follow}");
}

#[test]
fn an_empty_plan_says_there_is_nothing_to_do() {
    let text = "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n";
    let config = parse_with_hostname(text, Path::new("/x.toml"), Some("n")).unwrap();
    let follow = plan::render(&config, Kind::Follow, Os::FreeBsd, &[]);
    assert!(
        follow.contains("# nothing to do: this configuration gives follow no step"),
        "{follow}"
    );
    let promote = plan::render(&config, Kind::Promote, Os::FreeBsd, &[]);
    assert!(!promote.contains("nothing to do"), "{promote}");
}
