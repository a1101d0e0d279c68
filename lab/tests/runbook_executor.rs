//! The runbook executor against stand-ins of the FreeBSD tools: what it
//! runs, in which order, and what it leaves behind when a step fails,
//! hangs or is overtaken by a newer transition.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "standins/mod.rs"]
mod standins;

use std::time::{Duration, Instant};

use rcbsd_failover::runbook::{Context, Kind, Outcome, Runner};
use serde_json::json;
use standins::{FakeVip, World};
use tokio::sync::watch;

fn runner(world: &World, storage: &str, nfs: &str, envs: &str) -> (Runner<FakeVip>, FakeVip) {
    let vip = FakeVip::default();
    let config = world.config(storage, nfs, envs);
    // The test harness is this process's executable: file probes run the
    // agent's code in the lab binary (`rcbsd-lab fs-probe`).
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rcbsd-lab"));
    (Runner::new(config, vip.clone()).with_probe_exe(exe), vip)
}

async fn run(runner: &mut Runner<FakeVip>, kind: Kind) -> Outcome {
    let ctx = Context::from_config(runner.config());
    let (_tx, rx) = watch::channel(0u64);
    runner.run(kind, &ctx, rx).await
}

fn position(list: &[String], wanted: &str) -> usize {
    list.iter()
        .position(|a| a == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} not in {list:#?}"))
}

#[tokio::test]
async fn promote_serves_the_dirs_then_adds_the_vip_then_starts_environments() {
    let world = World::new("node1");
    world.add_environment("web1", false);
    let (mut runner, vip) = runner(&world, &world.storage_none(), "", "jails = [\"web1\"]");
    let outcome = run(&mut runner, Kind::Promote).await;
    assert_eq!(outcome, Outcome::Succeeded { skipped: vec![] });
    assert_eq!(
        world.services(),
        ["rpcbind", "nfsuserd", "mountd", "nfsd", "statd", "lockd"]
    );
    assert_eq!(vip.calls(), ["add", "announce"]);
    let exports = std::fs::read_to_string(&world.exports).unwrap();
    assert!(
        exports.contains("V4: / -network 198.18.0.0/24"),
        "{exports}"
    );
    assert!(exports.contains("-maproot=root"), "{exports}");
    assert_eq!(
        world.cluster_events(),
        [("node1".into(), "web1".into(), "start".into())]
    );
    let actions = world.actions();
    // Exports and NFS before the environment; every cbsd call from / with
    // NOCOLOR/NOINTER and an explicit jname.
    assert!(
        position(&actions, "service nfsd onestart")
            < position(&actions, "cbsd jstart inter=0 jname=web1")
    );
    for call in world.calls().iter().filter(|c| c["tool"] == "cbsd") {
        assert_eq!(call["cwd"], "/", "{call}");
        assert_eq!(
            call["env"],
            json!({"NOCOLOR": "1", "NOINTER": "1"}),
            "{call}"
        );
        assert!(call["argv"].to_string().contains("jname="), "{call}");
    }
}

#[tokio::test]
async fn nfsd_failing_to_start_undoes_promote_in_reverse() {
    let world = World::new("node1");
    world.set_rules(json!([{"match": ["service", "nfsd", "onestart"], "action": "fail"}]));
    let (mut runner, vip) = runner(&world, &world.storage_none(), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "start nfsd");
    assert!(error.contains("nfsd"), "{error}");
    assert!(vip.calls().is_empty(), "the VIP comes last: never added");
    assert!(world.services().is_empty(), "{:?}", world.services());
    assert!(world.mounts().is_empty(), "{:?}", world.mounts());
    let exports = std::fs::read_to_string(&world.exports).unwrap();
    assert!(!exports.contains("V4:"), "{exports}");
    let actions = world.actions();
    let undo: Vec<&String> = actions
        .iter()
        .skip(position(&actions, "service nfsd onestart") + 1)
        .collect();
    let fstab = format!("umount {}", world.workdir.join("jails-fstab").display());
    let data = format!("umount {}", world.workdir.join("jails-data").display());
    assert_eq!(
        undo.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>(),
        [
            "service mountd onestop",
            "service nfsuserd onestop",
            "service rpcbind onestop"
        ]
    );
    assert!(
        position(&actions, &fstab) < position(&actions, &data),
        "unbind in reverse"
    );
}

#[tokio::test]
async fn hast_role_primary_failing_fails_promote_before_anything_else() {
    let world = World::new("node1");
    world.set_rules(json!([{"match": ["hastctl", "role", "primary"], "action": "fail"}]));
    let (mut runner, vip) = runner(&world, &world.storage_hast(), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    assert!(
        matches!(&outcome, Outcome::Failed { step, .. } if step == "hast role primary"),
        "{outcome:?}"
    );
    let actions = world.actions();
    assert_eq!(
        actions,
        ["service hastd onestart", "hastctl role primary cbsd"]
    );
    assert!(vip.calls().is_empty());
}

#[tokio::test]
async fn hast_promote_then_demote_takes_and_releases_the_provider() {
    let world = World::new("node1");
    let (mut runner, vip) = runner(&world, &world.storage_hast(), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let device = world.hast_dev.join("cbsd").display().to_string();
    let actions = world.actions();
    let take = [
        "hastctl role primary cbsd".to_owned(),
        format!("fsck -p -y -t ufs {device}"),
        format!("mount {device} {}", world.store.display()),
    ];
    let positions: Vec<usize> = take.iter().map(|a| position(&actions, a)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{actions:#?}");
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(vip.calls(), ["add", "announce", "remove"]);
    let actions = world.actions();
    assert_eq!(actions.last().unwrap(), "hastctl role secondary cbsd");
    assert_eq!(
        world.services(),
        ["hastd", "rpcbind", "nfsuserd"],
        "demote stops lockd statd nfsd mountd; hastd stays for the secondary"
    );
    assert!(world.mounts().is_empty(), "{:?}", world.mounts());
    assert_eq!(world.state()["hast"]["cbsd"], "secondary");
}

#[test]
fn the_standin_showmount_asks_mountd_through_rpcbind_like_showmount_c() {
    let world = World::new("node1");
    std::fs::create_dir_all(world.exports.parent().unwrap()).unwrap();
    std::fs::write(
        &world.exports,
        "V4: /store -network 198.18.0.0/24\n/store/jails-data /store/jails-system -network 198.18.0.0/24\n",
    )
    .unwrap();
    // Neither rpcbind nor mountd: the portmapper call fails.
    let (code, stderr) = world.run_tool("showmount", &["-E", "127.0.0.1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("can't do exports rpc"), "{stderr}");
    assert_eq!(
        world.run_tool("service", &["rpcbind", "onestart"]).0,
        Some(0)
    );
    let (code, stderr) = world.run_tool("showmount", &["-E", "127.0.0.1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Program not registered"), "{stderr}");
    assert_eq!(
        world.run_tool("service", &["mountd", "onestart"]).0,
        Some(0)
    );
    let output = std::process::Command::new(world.tools.join("showmount"))
        .args(["-E", "127.0.0.1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let listed: Vec<&str> = stdout.lines().collect();
    assert!(listed.contains(&"/store/jails-data"), "{stdout}");
    assert!(listed.contains(&"/store/jails-system"), "{stdout}");
    // The V4: root is not an export of the MOUNT protocol.
    assert!(!listed.contains(&"/store"), "{stdout}");
    let (code, _) = world.run_tool("showmount", &["-E", "-e"]);
    assert_eq!(code, Some(1), "-E cannot be used with -e");
}

#[test]
fn the_standin_hastctl_needs_hastd_like_hastctl_c() {
    let world = World::new("node1");
    let (code, stderr) = world.run_tool("hastctl", &["role", "primary", "cbsd"]);
    assert_eq!(code, Some(71), "EX_OSERR: {stderr}");
    assert!(
        stderr.contains("Unable to connect to hastd via uds:///var/run/hastctl"),
        "{stderr}"
    );
    assert!(world.state()["hast"]["cbsd"].is_null(), "no role changed");
    assert_eq!(world.run_tool("service", &["hastd", "onestart"]).0, Some(0));
    assert_eq!(
        world.run_tool("hastctl", &["role", "primary", "cbsd"]).0,
        Some(0)
    );
}

#[test]
fn the_standin_hast_device_appears_after_the_role_change_not_with_it() {
    let world = World::new("node1");
    let device = world.hast_dev.join("cbsd");
    assert_eq!(world.run_tool("service", &["hastd", "onestart"]).0, Some(0));
    assert_eq!(
        world.run_tool("hastctl", &["role", "primary", "cbsd"]).0,
        Some(0)
    );
    assert!(!device.exists(), "hastd's worker creates it afterwards");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !device.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            device.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // hastd stopping takes its workers and their devices with it; it comes
    // back with the resource in role init.
    assert_eq!(world.run_tool("service", &["hastd", "onestop"]).0, Some(0));
    assert!(!device.exists());
    assert_eq!(world.state()["hast"]["cbsd"], "init");
    // A role changed back before the worker got there: no device.
    world.set_standin("time_scale", json!(2.0));
    assert_eq!(world.run_tool("service", &["hastd", "onestart"]).0, Some(0));
    assert_eq!(
        world.run_tool("hastctl", &["role", "primary", "cbsd"]).0,
        Some(0)
    );
    assert_eq!(
        world.run_tool("hastctl", &["role", "secondary", "cbsd"]).0,
        Some(0)
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!device.exists());
}

#[tokio::test]
async fn hast_promote_starts_hastd_first_and_waits_for_the_device() {
    let world = World::new("node1");
    let (mut runner, _) = runner(&world, &world.storage_hast(), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let argvs = world.argvs();
    let device = world.hast_dev.join("cbsd").display().to_string();
    assert!(
        position(&argvs, "service hastd onestatus") < position(&argvs, "service hastd onestart")
            && position(&argvs, "service hastd onestart")
                < position(&argvs, "hastctl role primary cbsd")
            && position(&argvs, "hastctl role primary cbsd")
                < position(&argvs, &format!("fsck -p -y -t ufs {device}")),
        "{argvs:#?}"
    );
}

#[tokio::test]
async fn a_hast_device_slower_than_device_wait_fails_the_promote_and_undoes_the_role() {
    let world = World::new("node1");
    // 0.5 s times 10: past the tests' device_wait of 2 s.
    world.set_standin("time_scale", json!(10.0));
    let (mut runner, vip) = runner(&world, &world.storage_hast(), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    let device = world.hast_dev.join("cbsd").display().to_string();
    assert!(
        matches!(&outcome, Outcome::Failed { step, .. } if *step == format!("wait for {device}")),
        "{outcome:?}"
    );
    assert_eq!(
        world.actions().last().unwrap(),
        "hastctl role secondary cbsd"
    );
    assert_eq!(world.state()["hast"]["cbsd"], "secondary");
    assert!(vip.calls().is_empty());
}

#[tokio::test]
async fn a_demote_after_hastd_died_starts_it_to_set_role_secondary() {
    let world = World::new("node1");
    let (mut runner, _) = runner(&world, &world.storage_hast(), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(world.run_tool("service", &["hastd", "onestop"]).0, Some(0));
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(world.state()["hast"]["cbsd"], "secondary");
    assert!(world.services().contains(&"hastd".to_owned()));
}

#[tokio::test]
async fn fsck_preen_exit_8_fails_the_promote_with_what_to_do_and_undoes() {
    let world = World::new("node1");
    let device = world.hast_dev.join("cbsd").display().to_string();
    world.set_state("fsck_unexpected", json!([device]));
    let (mut runner, vip) = runner(&world, &world.storage_hast(), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, format!("fsck {device}"));
    assert!(error.contains("status 8"), "{error}");
    assert!(
        error.contains("UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY"),
        "{error}"
    );
    assert!(error.contains("fsck by hand"), "{error}");
    // Undone: nothing mounted, the resource secondary again, no VIP.
    assert!(world.mounts().is_empty(), "{:?}", world.mounts());
    assert_eq!(world.state()["hast"]["cbsd"], "secondary");
    assert_eq!(
        world.actions().last().unwrap(),
        "hastctl role secondary cbsd"
    );
    assert!(vip.calls().is_empty());
    // A full check by hand (no -p) repairs it; the next promote goes on.
    assert_eq!(
        world.run_tool("service", &["hastd", "onestatus"]).0,
        Some(0)
    );
    assert_eq!(
        world.run_tool("hastctl", &["role", "primary", "cbsd"]).0,
        Some(0)
    );
    // hastd's worker creates the device a moment later (as the promote's
    // "wait for /dev/hast/cbsd" step knows).
    let appeared = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::path::Path::new(&device).exists()
    });
    assert!(appeared, "{device} never appeared");
    assert_eq!(
        world.run_tool("fsck", &["-y", "-t", "ufs", &device]).0,
        Some(0)
    );
    assert_eq!(
        world.run_tool("hastctl", &["role", "secondary", "cbsd"]).0,
        Some(0)
    );
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
}

#[test]
fn the_standin_umount_is_device_busy_while_in_use_and_f_forces_it() {
    let world = World::new("node1");
    let source = world.store.join("jails-data").display().to_string();
    let target = world.workdir.join("jails-data").display().to_string();
    assert_eq!(
        world
            .run_tool("mount", &["-t", "nullfs", &source, &target])
            .0,
        Some(0)
    );
    world.set_state("running", json!({"web1": 10}));
    let (code, stderr) = world.run_tool("umount", &[&target]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        format!("umount: unmount of {target} failed: Device busy")
    );
    assert_eq!(world.mounts().len(), 1, "still mounted");
    assert_eq!(world.run_tool("umount", &["-f", &target]).0, Some(0));
    assert!(world.mounts().is_empty());
}

#[test]
fn the_standin_umount_of_a_file_system_under_a_nullfs_mount_is_busy_even_forced() {
    let world = World::new("node1");
    let device = world.dir.path().join("disk").display().to_string();
    std::fs::write(&device, "").unwrap();
    let store = world.store.display().to_string();
    let source = world.store.join("jails-data").display().to_string();
    let target = world.workdir.join("jails-data").display().to_string();
    assert_eq!(world.run_tool("mount", &[&device, &store]).0, Some(0));
    assert_eq!(
        world
            .run_tool("mount", &["-t", "nullfs", &source, &target])
            .0,
        Some(0)
    );
    for args in [vec![store.as_str()], vec!["-f", &store]] {
        let (code, stderr) = world.run_tool("umount", &args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(stderr.contains("Device busy"), "{stderr}");
    }
    assert_eq!(world.run_tool("umount", &[&target]).0, Some(0));
    assert_eq!(world.run_tool("umount", &[&store]).0, Some(0));
}

#[test]
fn the_standin_zpool_export_is_refused_while_a_dataset_is_busy() {
    let world = World::new("node1");
    world.add_pool("tank", json!({"multihost": "on"}));
    assert_eq!(
        world
            .run_tool("zpool", &["import", "-o", "cachefile=none", "tank"])
            .0,
        Some(0)
    );
    let source = world.store.join("jails-data").display().to_string();
    let target = world.workdir.join("jails-data").display().to_string();
    assert_eq!(
        world
            .run_tool("mount", &["-t", "nullfs", &source, &target])
            .0,
        Some(0)
    );
    let (code, stderr) = world.run_tool("zpool", &["export", "tank"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        format!(
            "cannot unmount '{}': pool or dataset is busy",
            world.store.display()
        )
    );
    assert_eq!(world.pool("tank")["imported"], true);
    assert_eq!(world.run_tool("umount", &[&target]).0, Some(0));
    world.set_state("open_files", json!([format!("{source}/web1-data/log")]));
    assert_eq!(world.run_tool("zpool", &["export", "tank"]).0, Some(1));
    world.set_state("open_files", json!([]));
    assert_eq!(world.run_tool("zpool", &["export", "tank"]).0, Some(0));
}

#[test]
fn the_standin_zpool_import_without_f_refuses_a_pool_another_host_left_active() {
    let world = World::new("node1");
    world.add_pool("tank", pool_left_by("off", false));
    let (code, stderr) = world.run_tool("zpool", &["import", "-o", "cachefile=none", "tank"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("pool was previously in use from another system"),
        "{stderr}"
    );
    assert!(stderr.contains("use 'zpool import -f'"), "{stderr}");
}

#[tokio::test]
async fn unmount_nfs_forces_a_mount_an_open_file_keeps_busy() {
    let world = World::new("node2");
    let (mut runner, _) = runner(&world, "", "", "");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let target = world.workdir.join("jails-data").display().to_string();
    world.set_state("open_files", json!([format!("{target}/web1-data/log")]));
    let before = world.argvs().len();
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let argvs: Vec<String> = world.argvs().split_off(before);
    let plain = position(&argvs, &format!("umount {target}"));
    let forced = position(&argvs, &format!("umount -f {target}"));
    assert!(plain < forced, "{argvs:#?}");
    assert!(
        !argvs.contains(&format!("umount -N {target}")),
        "-f was enough: {argvs:#?}"
    );
    // Not busy: a plain umount did it.
    let data = world.workdir.join("jails-system").display().to_string();
    assert!(!argvs.contains(&format!("umount -f {data}")), "{argvs:#?}");
}

#[tokio::test]
async fn a_demote_with_a_pool_dataset_in_use_fails_at_the_export_and_keeps_it() {
    let world = World::new("node1");
    world.add_pool("tank", pool_left_by("on", false));
    let (mut runner, _) = runner(&world, &world.storage_zfs("tank"), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    // An operator's shell in the store, not through the binds.
    world.set_state(
        "open_files",
        json!([world.store.join("jails-data").display().to_string()]),
    );
    let outcome = run(&mut runner, Kind::Demote).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "export pool tank");
    assert!(error.contains("pool or dataset is busy"), "{error}");
    assert_eq!(world.pool("tank")["imported"], true, "still held");
}

#[tokio::test]
async fn v4_only_runs_nfsuserd_mountd_nfsd_only() {
    let world = World::new("node1");
    let (mut runner, _) = runner(&world, &world.storage_none(), "v4_only = true", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(world.services(), ["nfsuserd", "mountd", "nfsd"]);
}

#[tokio::test]
async fn mountd_already_running_is_reloaded_not_started_twice() {
    let world = World::new("node1");
    std::fs::write(&world.state, json!({"services": ["mountd"]}).to_string()).unwrap();
    let (mut runner, _) = runner(&world, &world.storage_none(), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let actions = world.actions();
    assert!(
        actions.contains(&"service mountd onereload".to_owned()),
        "{actions:#?}"
    );
    assert!(
        !actions.contains(&"service mountd onestart".to_owned()),
        "{actions:#?}"
    );
}

#[tokio::test]
async fn follow_mounts_from_the_vip_then_registers_and_starts() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.add_environment("vm1", true);
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web*\"]\nbhyve = [\"vm1\"]");
    let outcome = run(&mut runner, Kind::Follow).await;
    assert_eq!(outcome, Outcome::Succeeded { skipped: vec![] });
    let mounts = world.mounts();
    assert_eq!(mounts.len(), 4, "{mounts:?}");
    assert!(mounts.iter().all(|m| m.starts_with("nfs ")), "{mounts:?}");
    let actions = world.actions();
    let source = format!("198.18.0.100:{}", world.store.join("jails-data").display());
    let target = world.workdir.join("jails-data").display().to_string();
    assert!(actions.contains(&format!(
        "mount_nfs -o nfsv4,minorversion=1,hard,retrycnt=1 {source} {target}"
    )));
    assert!(
        position(&actions, "cbsd jregister jname=web1")
            < position(&actions, "cbsd jstart inter=0 jname=web1")
    );
    assert!(
        actions.contains(&"cbsd bstart inter=0 jname=vm1".to_owned()),
        "{actions:#?}"
    );
    assert!(!actions.iter().any(|a| a.starts_with("cbsd bregister")));
}

/// A process that SIGKILL does not end (uninterruptible, as on a dead hard
/// NFS mount; here a frozen cgroup) is abandoned after the bounded wait,
/// never awaited for ever.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_command_that_outlives_sigkill_is_abandoned_not_awaited() {
    use rcbsd_failover::runbook::command::{self, CommandError, KILL_WAIT};
    use rcbsd_failover::runbook::step::Command;
    use rcbsd_lab::cbsd::freezer;
    if !standins::require_freezer() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = freezer::prefix(dir.path());
    let group = std::path::Path::new(freezer::FREEZER).join(format!("{prefix}-test"));
    std::fs::create_dir_all(&group).unwrap();
    // The child puts itself in the group and freezes it: from then on it
    // is in the kernel's refrigerator (state D), where SIGKILL waits.
    let script = format!(
        "echo $$ > {g}/cgroup.procs && echo FROZEN > {g}/freezer.state && sleep 30",
        g = group.display()
    );
    let started = Instant::now();
    let result = command::run(
        &Command::new(["sh", "-c", &script]),
        Duration::from_millis(500),
        None,
    )
    .await;
    let waited = started.elapsed();
    freezer::release(&prefix);
    match result {
        Err(CommandError::TimedOut { kill, .. }) => {
            assert!(kill.abandoned.is_some(), "abandoned, with its pid")
        }
        other => panic!("expected a timeout with the process abandoned, got {other:?}"),
    }
    // Not a speed assertion: a wait without a bound would never return.
    assert!(
        waited < Duration::from_millis(500) + KILL_WAIT * 5,
        "{waited:?}"
    );
}

/// A follower whose NFS server is gone: what touches its mounts hangs in
/// the kernel, and SIGKILL does not end it (the stand-ins freeze it), so
/// the follow force-dismounts those mounts first; the jail's stop then
/// runs, and is verified, instead of hanging.
#[tokio::test]
async fn a_gone_server_is_dismounted_before_anything_touches_its_mounts() {
    if !standins::require_freezer() {
        return;
    }
    let world = World::new("node2");
    world.add_environment("web1", false);
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert!(world.state()["running"].get("web1").is_some());
    let before = world.argvs().len();
    world.server_gone("198.18.0.100");
    let outcome = run(&mut runner, Kind::Follow).await;
    // Nobody serves the VIP yet: the remount fails after its attempts.
    assert!(
        matches!(&outcome, Outcome::Failed { step, .. } if step == "mount jails-data"),
        "{outcome:?}"
    );
    let argvs: Vec<String> = world.argvs().split_off(before);
    let dirs = standins::SHARED_DIRS;
    for dir in dirs {
        let target = world.workdir.join(dir).display().to_string();
        let asked = position(&argvs, &format!("df -k {target}"));
        let dismounted = position(&argvs, &format!("umount -N {target}"));
        assert!(asked < dismounted, "{argvs:#?}");
        assert!(
            dismounted < position(&argvs, "cbsd jstop inter=0 jname=web1"),
            "the stop runs only once the dead mounts are gone: {argvs:#?}"
        );
        assert!(
            !argvs.contains(&format!("umount {target}")),
            "a plain umount of a dead mount hangs: {argvs:#?}"
        );
    }
    assert!(
        world.state()["running"].get("web1").is_none(),
        "web1 was stopped"
    );
    assert!(world.mounts().is_empty(), "{:?}", world.mounts());
    assert_eq!(world.lenient_hangs(), 0, "every hang was a frozen one");
}

#[tokio::test]
async fn jstatus_exit_1_means_registered_so_no_jregister() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    std::fs::write(
        &world.state,
        json!({"registered": {"web1": "jail"}}).to_string(),
    )
    .unwrap();
    // The junregister after the (verified) stop fails: web1 stays
    // registered.
    world.set_rules(json!([{"match": ["cbsd", "junregister"], "action": "fail"}]));
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let actions = world.actions();
    assert!(
        !actions.iter().any(|a| a.contains("jregister")),
        "{actions:#?}"
    );
    assert!(actions.contains(&"cbsd jstart inter=0 jname=web1".to_owned()));
}

#[tokio::test]
async fn jregister_falls_back_to_the_rcfile_in_jails_system() {
    let world = World::new("node2");
    std::fs::create_dir_all(world.store.join("jails-system/web1")).unwrap();
    std::fs::write(
        world.store.join("jails-system/web1/rc.conf_web1"),
        "jname=\"web1\"\n",
    )
    .unwrap();
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let rcfile = world.workdir.join("jails-system/web1/rc.conf_web1");
    let actions = world.actions();
    assert!(
        actions.contains(&format!(
            "cbsd jregister jname=web1 rcfile={}",
            rcfile.display()
        )),
        "{actions:#?}"
    );
}

#[tokio::test]
async fn an_environment_locked_by_another_node_is_not_started() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.add_environment("db1", false);
    std::fs::write(world.store.join("jails-system/web1/locked"), "node3\n").unwrap();
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\", \"db1\"]");
    let outcome = run(&mut runner, Kind::Follow).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            skipped: vec!["web1".into()]
        }
    );
    let actions = world.actions();
    assert!(
        !actions
            .iter()
            .any(|a| a.contains("jname=web1") && !a.contains("jstop")),
        "{actions:#?}"
    );
    assert!(actions.contains(&"cbsd jstart inter=0 jname=db1".to_owned()));
}

#[tokio::test]
async fn a_hanging_mount_times_out_and_is_retried_with_backoff() {
    let world = World::new("node2");
    world.set_rules(json!([{"match": ["mount_nfs"], "action": "hang", "times": 2}]));
    let (mut runner, _) = runner(&world, "", "", "");
    let started = Instant::now();
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let mounts = world
        .argvs()
        .iter()
        .filter(|a| a.starts_with("mount_nfs"))
        .count();
    assert_eq!(mounts, 4 + 2, "two killed attempts, then one per dir");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two 1s timeouts"
    );
}

#[tokio::test]
async fn a_mount_that_never_answers_fails_follow_and_starts_nothing() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.set_rules(json!([{"match": ["mount_nfs"], "action": "hang"}]));
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]");
    let outcome = run(&mut runner, Kind::Follow).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "mount jails-data");
    assert!(error.contains("killed"), "{error}");
    let actions = world.actions();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("mount_nfs"))
            .count(),
        3
    );
    assert!(
        !actions.iter().any(|a| a.contains("jstart")),
        "{actions:#?}"
    );
    assert!(world.cluster_events().is_empty());
}

#[tokio::test]
async fn exports_block_is_written_atomically_and_the_rest_preserved() {
    let world = World::new("node1");
    let before = "# operator's own\n/home -ro -network 10.9.0.0/16\n";
    std::fs::write(&world.exports, before).unwrap();
    let (mut runner, _) = runner(&world, &world.storage_none(), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let text = std::fs::read_to_string(&world.exports).unwrap();
    assert!(text.starts_with(before), "{text}");
    let store = world.store.display();
    // One filesystem here: every dir shares one line.
    assert!(
        text.contains(&format!(
            "{store}/jails-data {store}/jails-system {store}/jails-rcconf {store}/jails-fstab -maproot=root -network 198.18.0.0/24"
        )),
        "{text}"
    );
    assert!(world.services().contains(&"mountd".to_owned()));
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let text = std::fs::read_to_string(&world.exports).unwrap();
    assert!(text.starts_with(before), "{text}");
    assert!(!text.contains("V4:"), "demote empties the block: {text}");
    let leftovers = std::fs::read_dir(world.exports.parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(leftovers, 1, "no temporary file left");
}

#[tokio::test]
async fn a_newer_transition_stops_the_runbook_between_steps() {
    let world = World::new("node1");
    world.set_rules(
        json!([{"match": ["service", "rpcbind", "onestart"], "action": "delay", "seconds": 1}]),
    );
    let (mut runner, vip) = runner(&world, &world.storage_none(), "", "");
    let ctx = Context::from_config(runner.config());
    let (tx, rx) = watch::channel(7u64);
    let progress = runner.progress();
    let task = tokio::spawn(async move {
        let outcome = runner.run(Kind::Promote, &ctx, rx).await;
        (outcome, runner)
    });
    // Wait until the slow step runs, then announce a newer transition.
    let deadline = Instant::now() + Duration::from_secs(10);
    while progress.get().map(|p| p.step) != Some("start rpcbind".to_owned()) {
        assert!(Instant::now() < deadline, "never reached start rpcbind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shown = progress.get().unwrap();
    assert_eq!(shown.runbook, Kind::Promote);
    tx.send(8).unwrap();
    let (outcome, _runner) = task.await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Cancelled {
            at_step: "start nfsuserd".into()
        }
    );
    assert_eq!(
        world.services(),
        ["rpcbind"],
        "the running step finished, no later one ran"
    );
    assert!(vip.calls().is_empty());
    assert!(progress.get().is_none(), "no progress once finished");
}

#[tokio::test]
async fn a_cancel_during_a_retry_backoff_stops_at_once() {
    let world = World::new("node2");
    world.set_rules(json!([{"match": ["mount_nfs"], "action": "fail"}]));
    let mut config_text_runner = runner(&world, "", "", "").0;
    let ctx = Context::from_config(config_text_runner.config());
    let (tx, rx) = watch::channel(0u64);
    let task = tokio::spawn(async move { config_text_runner.run(Kind::Follow, &ctx, rx).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The first mount failed at once; the runner is in its backoff or the
    // next attempt: either way the next safe point stops it.
    tx.send(1).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Outcome::Cancelled { .. }), "{outcome:?}");
}

async fn follow_on_rejoin(runner: &mut Runner<FakeVip>) -> Outcome {
    let ctx = Context::from_config(runner.config()).with_rejoin(true);
    let (_tx, rx) = watch::channel(0u64);
    runner.run(Kind::Follow, &ctx, rx).await
}

/// node2 owns web1; old1 (a jail) and oldvm (a VM) moved to another node
/// but are still registered here; busy, not owned either, still runs.
fn node_with_stale_registrations() -> World {
    let world = World::new("node2");
    world.add_environment("web1", false);
    // oldvm's settings, in the shared jails-system (where CBSD reads them).
    std::fs::create_dir_all(world.store.join("jails-system/oldvm")).unwrap();
    std::fs::write(world.store.join("jails-system/oldvm/local.sqlite"), "").unwrap();
    std::fs::write(
        &world.state,
        json!({
            "registered": {"web1": "jail", "old1": "jail", "oldvm": "bhyve", "busy": "jail"},
            "running": {"busy": 12},
        })
        .to_string(),
    )
    .unwrap();
    world
}

fn registered(world: &World) -> Vec<String> {
    let mut names: Vec<String> = world.state()["registered"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn on_rejoin_registrations_this_node_does_not_own_are_cleared_before_mounting() {
    let world = node_with_stale_registrations();
    // The agent followed, then restarted with the shares still mounted.
    let (mut before_restart, _) = runner(&world, "", "", "jails = [\"web*\"]");
    assert_eq!(
        run(&mut before_restart, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let calls_before_restart = world.actions().len();
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web*\"]");
    let outcome = follow_on_rejoin(&mut runner).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded { skipped: vec![] },
        "a refused junregister does not fail the follow"
    );
    assert_eq!(
        registered(&world),
        ["busy", "web1"],
        "old1 and oldvm unregistered; the owned one and the running one stay"
    );
    let actions: Vec<String> = world
        .actions()
        .into_iter()
        .skip(calls_before_restart)
        .collect();
    let jorder = position(&actions, "cbsd jorder");
    let border = position(&actions, "cbsd border");
    let last_unmount = actions
        .iter()
        .rposition(|a| a.starts_with("umount "))
        .unwrap();
    let first_mount = actions
        .iter()
        .position(|a| a.starts_with("mount_nfs "))
        .unwrap();
    let last_mount = actions
        .iter()
        .rposition(|a| a.starts_with("mount_nfs "))
        .unwrap();
    let unregisters: Vec<&str> = actions[last_unmount..]
        .iter()
        .filter(|a| a.starts_with("cbsd junregister"))
        .map(String::as_str)
        .collect();
    let vm_dump = world.dir.path().join("db/junregistered/rc.conf_oldvm");
    assert_eq!(
        unregisters,
        [
            "cbsd junregister jname=busy".to_owned(),
            "cbsd junregister jname=old1".to_owned(),
            format!("cbsd junregister jname=oldvm rcfile={}", vm_dump.display()),
        ]
    );
    // Jails before the mounts; VMs after, since CBSD needs their
    // jails-system/J/local.sqlite (subr/rcconf.subr init_bhyve_rcconf).
    assert!(
        last_unmount < jorder && jorder < first_mount && last_mount < border,
        "{actions:#?}"
    );
    assert!(
        position(&actions, "cbsd junregister jname=old1") < first_mount,
        "{actions:#?}"
    );
    assert!(actions.contains(&"cbsd jstart inter=0 jname=web1".to_owned()));
    // junregister wrote its rc.conf dumps to local files, not the new
    // owner's shared jails-rcconf.
    assert!(!world.store.join("jails-rcconf/rc.conf_old1").exists());
    assert!(!world.store.join("jails-rcconf/rc.conf_oldvm").exists());
    assert!(vm_dump.is_file());
    for call in world.calls().iter().filter(|c| c["tool"] == "cbsd") {
        assert_eq!(call["cwd"], "/", "{call}");
        assert_eq!(
            call["env"],
            json!({"NOCOLOR": "1", "NOINTER": "1"}),
            "{call}"
        );
    }
}

#[tokio::test]
async fn without_rejoin_registrations_are_left_alone() {
    let world = node_with_stale_registrations();
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web*\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(registered(&world), ["busy", "old1", "oldvm", "web1"]);
    let actions = world.actions();
    assert!(
        !actions
            .iter()
            .any(|a| a.starts_with("cbsd jorder") || a.starts_with("cbsd junregister")),
        "{actions:#?}"
    );
}

#[tokio::test]
async fn a_failed_listing_skips_the_cleanup_and_the_follow_goes_on() {
    let world = node_with_stale_registrations();
    world.set_rules(json!([
        {"match": ["cbsd", "jorder"], "action": "fail"},
        {"match": ["cbsd", "border"], "action": "fail"}
    ]));
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web*\"]");
    assert_eq!(
        follow_on_rejoin(&mut runner).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(registered(&world), ["busy", "old1", "oldvm", "web1"]);
    let actions = world.actions();
    assert!(
        !actions
            .iter()
            .any(|a| a.starts_with("cbsd junregister") && !a.contains("jname=web1")),
        "{actions:#?}"
    );
    assert!(actions.contains(&"cbsd jstart inter=0 jname=web1".to_owned()));
}

/// The pool as the master that crashed left it: imported read-write under
/// its hostid, never exported; `writing`: that node still runs it (cut
/// off, not dead).
fn pool_left_by(multihost: &str, writing: bool) -> serde_json::Value {
    json!({
        "multihost": multihost,
        "state": "active",
        "hostid": "0x2a",
        "hostname": "node3",
        "writing": writing,
    })
}

const RO_IMPORT: &str = "zpool import -N -o readonly=on -o cachefile=none -f tank";
const RW_IMPORT: &str = "zpool import -o cachefile=none -f tank";

#[tokio::test]
async fn zfs_promote_reads_multihost_read_only_then_imports_with_cachefile_none() {
    let world = World::new("node1");
    world.add_pool("tank", pool_left_by("on", false));
    let (mut runner, vip) = runner(&world, &world.storage_zfs("tank"), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let argvs = world.argvs();
    let ro = position(&argvs, RO_IMPORT);
    let get = position(&argvs, "zpool get -H -o value multihost tank");
    let export = position(&argvs, "zpool export tank");
    let rw = position(&argvs, RW_IMPORT);
    assert!(ro < get && get < export && export < rw, "{argvs:#?}");
    let pool = world.pool("tank");
    assert_eq!(pool["imported"], true, "{pool}");
    assert_eq!(pool["readonly"], "off", "{pool}");
    assert_eq!(pool["cachefile"], "none", "not in /etc/zfs/zpool.cache");
    assert_eq!(pool["hostname"], "node1", "{pool}");
    assert_eq!(vip.calls(), ["add", "announce"]);
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(world.actions().last().unwrap(), "zpool export tank");
    let pool = world.pool("tank");
    assert_eq!(
        (&pool["imported"], &pool["state"]),
        (&json!(false), &json!("exported"))
    );
}

#[tokio::test]
async fn a_pool_without_multihost_is_refused_and_left_exported() {
    let world = World::new("node1");
    world.add_pool("tank", pool_left_by("off", false));
    let (mut runner, vip) = runner(&world, &world.storage_zfs("tank"), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "check multihost of tank");
    for words in [
        "printed \"off\", not \"on\"",
        "refusing pool tank without multihost=on",
        "'zpool set multihost=on tank'",
        "unique hostid",
    ] {
        assert!(error.contains(words), "{words:?} not in {error}");
    }
    let pool = world.pool("tank");
    assert_eq!(pool["imported"], false, "the undo exported it: {pool}");
    assert_eq!(
        (&pool["hostname"], &pool["state"]),
        (&json!("node3"), &json!("active")),
        "nothing written to the pool: {pool}"
    );
    let actions = world.actions();
    assert!(!actions.contains(&RW_IMPORT.to_owned()), "{actions:#?}");
    assert_eq!(actions.last().unwrap(), "zpool export tank");
    assert!(vip.calls().is_empty());
}

#[tokio::test]
async fn a_cut_off_master_still_writing_a_pool_without_multihost_never_sees_a_second_writer() {
    let world = World::new("node1");
    world.add_pool("tank", pool_left_by("off", true));
    let (mut runner, _) = runner(&world, &world.storage_zfs("tank"), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    assert!(
        matches!(&outcome, Outcome::Failed { step, .. } if step == "check multihost of tank"),
        "{outcome:?}"
    );
    let pool = world.pool("tank");
    assert_eq!(pool["two_writers"], serde_json::Value::Null, "{pool}");
    assert_eq!(pool["imported"], false, "{pool}");
}

#[tokio::test]
async fn a_pool_another_node_runs_with_multihost_is_not_imported_even_with_f() {
    let world = World::new("node1");
    world.add_pool("tank", pool_left_by("on", true));
    let (mut runner, vip) = runner(&world, &world.storage_zfs("tank"), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "import pool tank read-only");
    assert!(
        error.contains("Export the pool on the other system"),
        "{error}"
    );
    let pool = world.pool("tank");
    assert_ne!(pool["imported"], true, "{pool}");
    assert_eq!(pool["hostname"], "node3", "{pool}");
    assert!(vip.calls().is_empty());
}

#[tokio::test]
async fn a_promote_over_a_pool_it_already_imported_goes_on_without_exporting() {
    let world = World::new("node1");
    world.add_pool(
        "tank",
        json!({"multihost": "on", "state": "active", "hostname": "node1",
               "imported": true, "readonly": "off", "cachefile": "none", "mounted": true}),
    );
    let (mut runner, _) = runner(&world, &world.storage_zfs("tank"), "", "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let actions = world.actions();
    assert!(
        !actions.iter().any(|a| a.starts_with("zpool")),
        "{actions:#?}"
    );
    assert_eq!(world.pool("tank")["imported"], true);
}

/// Hole D of the safety review: what a restarted agent finds held comes
/// from the real world (here, the stand-ins' state), not from a marker.
#[tokio::test]
async fn the_start_up_probe_finds_what_a_promote_left_and_nothing_after_a_demote() {
    let world = World::new("node1");
    let (mut runner, _) = runner(&world, &world.storage_hast(), "", "");
    let before = runner.probe_master().await;
    assert!(!before.may_hold(), "a fresh node holds nothing: {before:?}");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let found = runner.probe_master().await;
    let held = found.held.join(", ");
    for wanted in [
        "HAST resource cbsd primary",
        "mounted",
        "bound (nullfs)",
        "nfsd running",
        "exports block",
    ] {
        assert!(held.contains(wanted), "{wanted:?} not found in {found:?}");
    }
    assert!(found.unknown.is_empty(), "{found:?}");
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let after = runner.probe_master().await;
    assert!(!after.may_hold(), "released: {after:?}");
}

/// node1 promoted (its nfsd and mountd serve its store), with `nfs` in
/// its `[nfs]`.
async fn serving_master(nfs: &str) -> World {
    let master = World::new("node1");
    let (mut runner, _) = runner(&master, &master.storage_none(), nfs, "");
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    master
}

fn mount_nfs_calls(world: &World) -> usize {
    world
        .argvs()
        .iter()
        .filter(|a| a.starts_with("mount_nfs "))
        .count()
}

#[tokio::test]
async fn an_operators_v4_line_with_another_root_fails_promote_before_the_exports_are_written() {
    let world = World::new("node1");
    let before =
        "# operator's own\n/home -ro -network 10.9.0.0/16\nV4: /home -network 10.9.0.0/16\n";
    std::fs::write(&world.exports, before).unwrap();
    let (mut runner, vip) = runner(&world, &world.storage_none(), "", "");
    let outcome = run(&mut runner, Kind::Promote).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "write exports");
    let place = format!("{}:3:5:", world.exports.display());
    assert!(error.contains(&place), "{error}");
    assert!(error.contains("makes /home the NFSv4 root"), "{error}");
    assert_eq!(std::fs::read_to_string(&world.exports).unwrap(), before);
    assert!(world.services().is_empty(), "{:?}", world.services());
    assert!(world.mounts().is_empty(), "undone: {:?}", world.mounts());
    assert!(vip.calls().is_empty());
}

#[tokio::test]
async fn mountd_drops_a_second_v4_root_and_the_followers_then_cannot_mount() {
    let master = serving_master("").await;
    // The operator puts a V4: line of their own above the agent's block
    // and reloads mountd by hand: mountd keeps the first root it reads.
    let text = std::fs::read_to_string(&master.exports).unwrap();
    std::fs::write(
        &master.exports,
        format!("V4: /home -network 10.9.0.0/16\n{text}"),
    )
    .unwrap();
    let (code, _) = master.run_tool("service", &["mountd", "onereload"]);
    assert_eq!(code, Some(0), "a reload does not fail: mountd only logs");
    let syslog = master.syslog();
    assert!(
        syslog.iter().any(|m| m == "different V4 dirpath /"),
        "{syslog:?}"
    );
    assert!(
        syslog.iter().any(|m| m == "bad exports list line 'V4: /'"),
        "{syslog:?}"
    );
    let follower = World::follower_of("node2", &master, "198.18.0.12");
    let (mut runner, _) = runner(&follower, "", "", "");
    let outcome = run(&mut runner, Kind::Follow).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "mount jails-data");
    let target = follower.workdir.join("jails-data");
    assert!(
        error.contains(&format!(
            "mount_nfs: nmount: {}: Permission denied",
            target.display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_follower_listed_in_export_hosts_reaches_the_v4_root_and_mounts() {
    let master = serving_master("export_hosts = [\"10.0.0.12\"]").await;
    let exports = std::fs::read_to_string(&master.exports).unwrap();
    assert!(exports.contains("V4: / 10.0.0.12\n"), "{exports}");
    let follower = World::follower_of("node2", &master, "10.0.0.12");
    let (mut follow, _) = runner(&follower, "", "", "");
    assert_eq!(
        run(&mut follow, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(follower.mounts().len(), 4, "{:?}", follower.mounts());
    // A client in neither the network nor the hosts is refused.
    let stranger = World::follower_of("node3", &master, "10.0.0.99");
    let (mut follow, _) = runner(&stranger, "", "", "");
    let outcome = run(&mut follow, Kind::Follow).await;
    assert!(
        matches!(&outcome, Outcome::Failed { error, .. } if error.contains("Permission denied")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn with_retrycnt_1_a_refused_mount_fails_at_once_and_the_agent_retries() {
    // node1 is not serving yet: its nfsd refuses the connection.
    let master = World::new("node1");
    let follower = World::follower_of("node2", &master, "198.18.0.12");
    let (mut runner, _) = runner(&follower, "", "", "");
    let outcome = run(&mut runner, Kind::Follow).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "mount jails-data");
    let source = master.store.join("jails-data");
    assert!(
        error.contains(&format!(
            "[tcp] 198.18.0.100:{}: nfsd: RPCPROG_NFS: RPC: Remote system error - Connection refused",
            source.display()
        )),
        "{error}"
    );
    // Each try ended by itself, well within the 5 s runbook.mount_timeout.
    assert!(!error.contains("killed"), "{error}");
    assert_eq!(mount_nfs_calls(&follower), 3, "runbook.mount_attempts");
}

#[tokio::test]
async fn with_retrycnt_2_mount_nfs_sleeps_past_the_timeout_and_every_attempt_is_killed() {
    let master = World::new("node1");
    let follower = World::follower_of("node2", &master, "198.18.0.12");
    // 60 s scaled to 9 s: still longer than the 5 s runbook.mount_timeout,
    // as the real 60 s is longer than the default 30 s.
    follower.set_standin("time_scale", json!(0.15));
    let (mut runner, _) = runner(
        &follower,
        "",
        "mount_options = \"nfsv4,minorversion=1,hard,retrycnt=2\"",
        "",
    );
    let outcome = run(&mut runner, Kind::Follow).await;
    let Outcome::Failed { step, error } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "mount jails-data");
    assert!(
        error.contains("no answer within") && error.contains("killed"),
        "{error}"
    );
    assert_eq!(mount_nfs_calls(&follower), 3);
}

#[test]
fn the_standin_mount_nfs_tries_retrycnt_times_sleeping_between_like_mount_nfs_c() {
    let master = World::new("node1");
    let follower = World::follower_of("node2", &master, "198.18.0.12");
    follower.set_standin("time_scale", json!(0.005));
    let source = format!("198.18.0.100:{}", master.store.join("jails-data").display());
    let target = follower.workdir.join("jails-data").display().to_string();
    let mount = |options: &str| {
        let started = Instant::now();
        let (code, stderr) = follower.run_tool("mount_nfs", &["-o", options, &source, &target]);
        (code, stderr, started.elapsed())
    };
    // Three tries, two 0.3 s sleeps between them, then exit 1.
    let (code, stderr, took) = mount("nfsv4,hard,retrycnt=3");
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(
        stderr.lines().all(|l| l.ends_with("Connection refused")),
        "{stderr}"
    );
    assert!(took >= Duration::from_millis(600), "{took:?}");
    // One try, no sleep.
    let (code, stderr, _) = mount("nfsv4,hard,retrycnt=1");
    assert_eq!((code, stderr.lines().count()), (Some(1), 1), "{stderr}");
    assert_eq!(
        mount("nfsv4,retrycnt=x").1.trim(),
        "mount_nfs: illegal retrycnt value -- x"
    );
    // A server that does not answer at all.
    follower.set_standin(
        "server",
        json!({"node": "node1", "state": master.state, "answers": false}),
    );
    let (_, stderr, _) = mount("nfsv4,hard,retrycnt=1");
    assert!(
        stderr
            .trim()
            .ends_with(": nfsd: RPCPROG_NFS: RPC: Remote system error - Operation timed out"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_standin_mount_nfs_is_refused_a_path_mountd_does_not_export() {
    let master = serving_master("").await;
    std::fs::create_dir_all(master.store.join("private")).unwrap();
    let follower = World::follower_of("node2", &master, "198.18.0.12");
    let source = format!("198.18.0.100:{}", master.store.join("private").display());
    let target = follower.workdir.join("jails-data").display().to_string();
    let (code, stderr) = follower.run_tool(
        "mount_nfs",
        &["-o", "nfsv4,hard,retrycnt=1", &source, &target],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        format!("mount_nfs: nmount: {target}: Permission denied")
    );
}

// ---- CBSD as it behaves (stand-in rules and the steps that rely on them) ----

/// Runs the stand-in `cbsd` as the agent does: (exit code, stdout).
fn cbsd(world: &World, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(world.tools.join("cbsd"))
        .args(args)
        .current_dir("/")
        .env("NOINTER", "1")
        .env("NOCOLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// subr/rcconf.subr init_bhyve_rcconf: a registered VM is loaded from its
/// jails-system/J/local.sqlite, and CBSD's `err` prints "Unable to fetch
/// vm data" on stdout and exits 1 without it (before the shared dirs are
/// mounted): jstatus, junregister, bstart, bstop alike.
#[test]
fn a_vm_cannot_be_loaded_before_its_dirs_are_mounted() {
    let world = World::new("node2");
    world.add_environment("vm1", true);
    world.set_state("registered", json!({"vm1": "bhyve", "web1": "jail"}));
    for command in ["jstatus", "junregister", "bstart", "bstop"] {
        let (code, stdout) = cbsd(&world, &[command, "jname=vm1"]);
        assert_eq!(code, Some(1), "{command}: {stdout}");
        assert!(
            stdout.starts_with("Unable to fetch vm data from: ")
                && stdout.trim_end().ends_with("jails-system/vm1/local.sqlite"),
            "{command}: {stdout}"
        );
    }
    // A jail's jstatus reads the local database only: "0", exit 1.
    assert_eq!(
        cbsd(&world, &["jstatus", "jname=web1"]),
        (Some(1), "0\n".into())
    );
    assert_eq!(
        cbsd(&world, &["jstatus", "jname=none"]),
        (Some(0), String::new())
    );
}

/// sudoexec/jstart and sudoexec/bstart `err 1` "already running";
/// sudoexec/jstop `err 1` "Not Running"; sudoexec/bstop of a stopped VM
/// goes on and exits 0; jstop's fast=1 and bstop's noacpi=1 are accepted.
#[tokio::test]
async fn cbsd_refuses_a_second_start_and_a_stop_of_a_stopped_jail() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.add_environment("vm1", true);
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]\nbhyve = [\"vm1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let (code, stdout) = cbsd(&world, &["jstart", "inter=0", "jname=web1"]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.starts_with("Jail web1 already running, jid: "),
        "{stdout}"
    );
    let (code, stdout) = cbsd(&world, &["bstart", "inter=0", "jname=vm1"]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.starts_with("Jail vm1 already running, jid: "),
        "{stdout}"
    );
    assert_eq!(
        cbsd(&world, &["jstop", "inter=0", "jname=web1", "fast=1"]).0,
        Some(0)
    );
    assert_eq!(cbsd(&world, &["bstop", "jname=vm1", "noacpi=1"]).0, Some(0));
    let (code, stdout) = cbsd(&world, &["jstop", "inter=0", "jname=web1"]);
    assert_eq!((code, stdout.trim()), (Some(1), "Not Running: web1"));
    assert_eq!(cbsd(&world, &["bstop", "jname=vm1"]).0, Some(0));
    assert!(world.state()["running"].as_object().unwrap().is_empty());
}

/// sudoexec/jstart writes jails-system/J/locked (CBSD's nodename, from
/// ${workdir}/nodename) once the jail runs; sudoexec/bstart writes none.
/// The agent checks no lock for a VM, and takes a lock naming CBSD's
/// nodename (not the agent's node name) as its own.
#[tokio::test]
async fn only_a_jail_has_a_lock_and_it_names_cbsds_nodename() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.add_environment("vm1", true);
    std::fs::write(world.workdir.join("nodename"), "cbsd-two\n").unwrap();
    // Left by this node's CBSD before a crash: ours.
    std::fs::write(world.store.join("jails-system/web1/locked"), "cbsd-two\n").unwrap();
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]\nbhyve = [\"vm1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(
        std::fs::read_to_string(world.store.join("jails-system/web1/locked")).unwrap(),
        "cbsd-two\n"
    );
    assert!(!world.store.join("jails-system/vm1/locked").exists());
}

/// sudoexec/jstart ignores (and removes) another node's lock over 30
/// whole minutes old; the agent lets the start go on likewise.
#[tokio::test]
async fn a_foreign_lock_older_than_30_minutes_is_ignored_as_cbsd_does() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.add_environment("db1", false);
    for (name, minutes) in [("web1", 32), ("db1", 29)] {
        let lock = world.store.join(format!("jails-system/{name}/locked"));
        std::fs::write(&lock, "node3\n").unwrap();
        let mtime = std::time::SystemTime::now() - Duration::from_secs(minutes * 60);
        std::fs::File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\", \"db1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded {
            skipped: vec!["db1".into()]
        }
    );
    let actions = world.actions();
    assert!(actions.contains(&"cbsd jstart inter=0 jname=web1".to_owned()));
    assert!(!actions.contains(&"cbsd jstart inter=0 jname=db1".to_owned()));
}

/// A plain stop that hangs (or fails) is followed by the forceful one:
/// sudoexec/jstop fast=1 (`jail -rR`, kill -9), sudoexec/bstop noacpi=1
/// (kill -9, `bhyvectl --destroy`); the stop counts once jstatus says jid
/// 0, and only then is the environment unregistered.
#[tokio::test]
async fn a_hung_or_failed_stop_is_followed_by_a_forceful_one() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    world.add_environment("vm1", true);
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]\nbhyve = [\"vm1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let before = world.actions().len();
    world.set_rules(json!([
        {"match": ["cbsd", "jstop", "inter=0", "jname=web1"], "action": "hang", "times": 1},
        {"match": ["cbsd", "bstop", "jname=vm1", "hard_timeout=30"], "action": "fail", "times": 1}
    ]));
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let actions: Vec<String> = world.actions().split_off(before);
    for (plain, force, unregister) in [
        (
            "cbsd jstop inter=0 jname=web1",
            "cbsd jstop inter=0 jname=web1 fast=1",
            "cbsd junregister jname=web1",
        ),
        (
            "cbsd bstop jname=vm1 hard_timeout=30",
            "cbsd bstop jname=vm1 noacpi=1",
            "cbsd junregister jname=vm1",
        ),
    ] {
        assert!(
            position(&actions, plain) < position(&actions, force)
                && position(&actions, force) < position(&actions, unregister),
            "{actions:#?}"
        );
    }
    assert!(world.state()["running"].as_object().unwrap().is_empty());
    assert!(world.state()["registered"].as_object().unwrap().is_empty());
}

/// A stop that cannot be verified leaves the environment registered: no
/// junregister after a failed stop.
#[tokio::test]
async fn an_unverified_stop_leaves_the_registration() {
    let world = World::new("node2");
    world.add_environment("web1", false);
    let (mut runner, _) = runner(&world, "", "", "jails = [\"web1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    world.set_rules(json!([{"match": ["cbsd", "jstop"], "action": "fail"}]));
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert!(world.state()["running"].get("web1").is_some());
    assert!(!world
        .actions()
        .iter()
        .any(|a| a.starts_with("cbsd junregister")));
}

/// `cbsd jset` changes only the local database (jailctl/jset). The
/// junregister after a verified stop dumps it to the shared jails-rcconf,
/// so the next node registers the environment as it was, not from the copy
/// the first jregister left in jails-system.
#[tokio::test]
async fn a_setting_changed_on_one_node_is_registered_on_the_next() {
    let a = World::new("node2");
    a.add_environment("web1", false);
    let (mut runner_a, _) = runner(&a, "", "", "jails = [\"web1\"]");
    assert_eq!(
        run(&mut runner_a, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let (code, _) = cbsd(&a, &["jset", "jname=web1", "ip4_addr=10.0.0.5"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        run(&mut runner_a, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let mut b = World::new("node3");
    b.store = a.store.clone();
    let (mut runner_b, _) = runner(&b, "", "", "jails = [\"web1\"]");
    assert_eq!(
        run(&mut runner_b, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert!(b
        .actions()
        .contains(&"cbsd jregister jname=web1".to_owned()));
    let settings = b.state()["settings"]["web1"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(settings.contains("ip4_addr=\"10.0.0.5\""), "{settings:?}");
}

/// A VM whose stop could not be verified before the unmounts (CBSD cannot
/// load it once a dead server's dirs are force-dismounted) is stopped
/// again once the dirs are mounted, before anything starts.
#[tokio::test]
async fn a_vm_not_stopped_before_the_remount_is_stopped_after_it() {
    let world = World::new("node2");
    world.add_environment("vm1", true);
    let (mut runner, _) = runner(&world, "", "", "bhyve = [\"vm1\"]");
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let before = world.actions().len();
    world.set_rules(json!([
        {"match": ["cbsd", "bstop", "jname=vm1"], "action": "fail", "times": 2}
    ]));
    assert_eq!(
        run(&mut runner, Kind::Follow).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    let actions: Vec<String> = world.actions().split_off(before);
    let first_mount = actions
        .iter()
        .position(|a| a.starts_with("mount_nfs "))
        .unwrap_or(0);
    let stops: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.starts_with("cbsd bstop jname=vm1"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stops.len(), 3, "{actions:#?}");
    assert!(stops[2] > first_mount, "{actions:#?}");
    assert!(
        stops[2] < position(&actions, "cbsd junregister jname=vm1")
            && position(&actions, "cbsd junregister jname=vm1")
                < position(&actions, "cbsd bstart inter=0 jname=vm1"),
        "{actions:#?}"
    );
}

/// A runner whose nfsd stable restart files (usr.sbin/nfsd/nfsd.c
/// `NFSD_STABLERESTART`, `NFSD_STABLEBACKUP`) live in the world's own
/// `var/db`, with `nfs.stable_restart_dir` on its store.
fn stable_restart_runner(world: &World) -> (Runner<FakeVip>, [std::path::PathBuf; 2]) {
    let vip = FakeVip::default();
    let dir = world.store.join(".nfs-stablerestart");
    let mut config = world.config(
        &world.storage_none(),
        &format!("stable_restart_dir = \"{}\"", dir.display()),
        "",
    );
    let var_db = world.dir.path().join("var/db");
    std::fs::create_dir_all(&var_db).unwrap();
    let files = [
        var_db.join("nfs-stablerestart"),
        var_db.join("nfs-stablerestart.bak"),
    ];
    config.nfs.stable_restart_files = files.clone();
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rcbsd-lab"));
    (Runner::new(config, vip).with_probe_exe(exe), files)
}

#[tokio::test]
async fn promote_links_nfsd_stable_restart_files_to_the_storage_and_demote_restores_them() {
    let world = World::new("node1");
    let (mut runner, files) = stable_restart_runner(&world);
    let dir = world.store.join(".nfs-stablerestart");
    // This node's own records, from when it last ran nfsd on its own.
    std::fs::write(&files[0], "local records").unwrap();
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    for file in &files {
        let target = dir.join(file.file_name().unwrap());
        assert_eq!(std::fs::read_link(file).unwrap(), target);
        assert!(target.is_file(), "{}", target.display());
    }
    let mut aside = files[0].clone().into_os_string();
    aside.push(".rcbsd-local");
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), "local records");
    // nfsd writes through the link (open_stable opens the path O_RDWR).
    std::fs::write(&files[0], "shared records").unwrap();
    // Idempotent: a second promote finds the links in place.
    assert_eq!(
        run(&mut runner, Kind::Promote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert_eq!(
        std::fs::read_link(&files[0]).unwrap(),
        dir.join("nfs-stablerestart")
    );
    assert_eq!(
        run(&mut runner, Kind::Demote).await,
        Outcome::Succeeded { skipped: vec![] }
    );
    assert!(!std::fs::symlink_metadata(&files[0])
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "local records");
    assert!(!std::path::Path::new(&aside).exists());
    // No local .bak was there: none comes back (nfsd creates it at start).
    assert!(std::fs::symlink_metadata(&files[1]).is_err());
    // The records stay on the storage for the next master.
    assert_eq!(
        std::fs::read_to_string(dir.join("nfs-stablerestart")).unwrap(),
        "shared records"
    );
}

/// The promote's report says whether nfsd's records were on the storage
/// (present, not empty) before nfsd started: what the master's heartbeat
/// carries as `reclaimable` for the followers' ride-through.
#[tokio::test]
async fn a_promote_reports_whether_the_stable_restart_records_were_on_the_storage() {
    use rcbsd_failover::node::converge::{Job, JobKind, JobOutcome};
    let promote = Job {
        kind: JobKind::Promote,
        stop: Vec::new(),
        start: Vec::new(),
    };
    for (records, reclaimable) in [
        (None, false),
        (Some(""), false),
        (Some("{\"client\": \"n3\"}\n"), true),
    ] {
        let world = World::new("node1");
        let (mut runner, _files) = stable_restart_runner(&world);
        let dir = world.store.join(".nfs-stablerestart");
        if let Some(records) = records {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("nfs-stablerestart"), records).unwrap();
        }
        let ctx = Context::from_config(runner.config());
        let (_tx, rx) = watch::channel(0u64);
        let report = runner.execute(&promote, &ctx, &[], rx).await;
        assert_eq!(report.outcome, JobOutcome::Succeeded, "{records:?}");
        assert_eq!(report.reclaimable, reclaimable, "{records:?}");
    }
}

#[tokio::test]
async fn a_failed_promote_puts_the_local_stable_restart_files_back() {
    let world = World::new("node1");
    world.set_rules(json!([{"match": ["service", "nfsd", "onestart"], "action": "fail"}]));
    let (mut runner, files) = stable_restart_runner(&world);
    std::fs::write(&files[0], "local records").unwrap();
    std::fs::write(&files[1], "local backup").unwrap();
    let outcome = run(&mut runner, Kind::Promote).await;
    assert!(
        matches!(&outcome, Outcome::Failed { step, .. } if step == "start nfsd"),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "local records");
    assert_eq!(std::fs::read_to_string(&files[1]).unwrap(), "local backup");
    for file in &files {
        assert!(!std::fs::symlink_metadata(file)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

/// Dual stack (issue 15): promote adds both families in one step, then
/// the ARP burst and the NA burst; the IPv6 network gets its exports
/// lines and nfsd is checked over IPv6 too (`sockstat -6l`); demote drops
/// both first.
#[tokio::test]
async fn a_dual_stack_promote_announces_both_families_and_exports_to_ipv6() {
    let world = World::new("node1");
    let vip = FakeVip::default();
    let mut config = world.config(&world.storage_none(), "", "");
    config.vrrp6 = Some(rcbsd_failover::config::Vrrp6 {
        interface: config.vrrp.interface.clone(),
        vrid: 51,
        priority: config.vrrp.priority,
        advert_interval: config.vrrp.advert_interval,
        virtual_ips: vec![
            rcbsd_failover::config::VirtualIp6 {
                address: "fe80::51".parse().unwrap(),
                prefix_len: 64,
            },
            rcbsd_failover::config::VirtualIp6 {
                address: "2001:db8:10::51".parse().unwrap(),
                prefix_len: 64,
            },
        ],
        preempt: true,
        preempt_delay: Duration::ZERO,
        source_address: None,
    });
    config.nfs.export_network6 = Some(rcbsd_failover::config::Ipv6Net {
        address: "2001:db8:10::".parse().unwrap(),
        prefix_len: 64,
    });
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rcbsd-lab"));
    let mut runner = Runner::new(config, vip.clone()).with_probe_exe(exe);
    let outcome = run(&mut runner, Kind::Promote).await;
    assert_eq!(outcome, Outcome::Succeeded { skipped: vec![] });
    assert_eq!(vip.calls(), ["add", "announce", "announce6"]);
    let exports = std::fs::read_to_string(&world.exports).unwrap();
    assert!(
        exports.contains("V4: / -network 198.18.0.0/24"),
        "{exports}"
    );
    assert!(
        exports.contains("V4: / -network 2001:db8:10::/64"),
        "{exports}"
    );
    // nfsd is checked in both families (the stand-in lists tcp4 and tcp6
    // listeners as nfsd binds them).
    let argvs = world.argvs();
    position(&argvs, "sockstat -4l -p 2049");
    position(&argvs, "sockstat -6l -p 2049");
    let outcome = run(&mut runner, Kind::Demote).await;
    assert_eq!(outcome, Outcome::Succeeded { skipped: vec![] });
    assert_eq!(vip.calls(), ["add", "announce", "announce6", "remove"]);
}
