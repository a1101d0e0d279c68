//! `rcbsd-lab --scenario faults`: the fault table. Real agents in
//! namespaces, with the FreeBSD tool stand-ins and a fake watchdog per
//! node ([`harness`]); one line per fault ([`cases`]): its name, PASS or
//! FAIL, what was checked and the figure. Whatever a fault checks itself,
//! the holder log must show no two holders of the VIP, the storage (HAST
//! primary), nfsd or any environment at any time. `tests/netns_faults.rs`
//! runs the same table, one test per fault.

pub mod cases;
pub mod harness;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::agent_command::AgentCommand;
use crate::agents::{HealthSpec, NodeSpec, TrackSpec};
use crate::cancel::Cancel;
use harness::Harness;

/// One fault of the table.
pub struct Fault {
    pub name: &'static str,
    /// What passing means, in words.
    pub checks: &'static str,
    prepare: fn(&Path, &mut [NodeSpec]) -> Result<(), String>,
    run: fn(&mut Harness) -> Result<cases::Measured, String>,
}

fn as_built(_: &Path, _: &mut [NodeSpec]) -> Result<(), String> {
    Ok(())
}

/// Every node rides through master changes (`follow.on_master_change =
/// "ride-through"`, with its prerequisites: the lab's sections add them).
fn ride_through(_: &Path, specs: &mut [NodeSpec]) -> Result<(), String> {
    for spec in specs {
        if let Some(cbsd) = spec.cbsd.as_mut() {
            cbsd.follow = crate::cbsd::FollowMode::RideThrough;
        }
    }
    Ok(())
}

/// n3 signs with another key than n1 and n2.
fn wrong_key_keys(dir: &Path, specs: &mut [NodeSpec]) -> Result<(), String> {
    let good = write_key(dir, "cluster.key")?;
    let wrong = write_key(dir, "wrong.key")?;
    for (index, spec) in specs.iter_mut().enumerate() {
        if let Some(q) = spec.quorum.as_mut() {
            let key = if index == 2 { &wrong } else { &good };
            q.auth = Some((key.clone(), None));
        }
    }
    Ok(())
}

/// A 32-byte random key as hex text, mode 0600 (the agent refuses anything
/// else).
fn write_key(dir: &Path, name: &str) -> Result<std::path::PathBuf, String> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(hex.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// Every node checks its health every second and counts a check failed
/// after two failures (the defaults, 5 s and 3, would take 15 s).
fn quick_health(_: &Path, specs: &mut [NodeSpec]) -> Result<(), String> {
    for spec in specs {
        spec.health = Some(HealthSpec::quick());
    }
    Ok(())
}

/// Quick checks; two failed repairs within two minutes and the third
/// failure resigns.
fn two_repairs(dir: &Path, specs: &mut [NodeSpec]) -> Result<(), String> {
    quick_health(dir, specs)?;
    for spec in specs {
        if let Some(health) = spec.health.as_mut() {
            health.max_repairs = Some(2);
            health.repair_window = Some(std::time::Duration::from_secs(120));
        }
    }
    Ok(())
}

/// Quick checks; a mount that does not answer for 4 s is remounted (the
/// default waits 60 s).
fn short_mount_hang_limit(dir: &Path, specs: &mut [NodeSpec]) -> Result<(), String> {
    quick_health(dir, specs)?;
    for spec in specs {
        if let Some(health) = spec.health.as_mut() {
            health.mount_hang_limit = Some(std::time::Duration::from_secs(4));
        }
    }
    Ok(())
}

/// Quick checks; n1 has a `[[track]]` "app" (`test -e FLAG`, weight -60:
/// 150 → 90, below n2's 100) whose flag file exists.
fn n1_track(dir: &Path, specs: &mut [NodeSpec]) -> Result<(), String> {
    quick_health(dir, specs)?;
    let flag = cases::track_flag(dir);
    std::fs::write(&flag, "").map_err(|e| format!("writing {}: {e}", flag.display()))?;
    let test = ["/usr/bin/test", "/bin/test"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no test(1) in /usr/bin or /bin")?;
    let n1 = specs.first_mut().ok_or("no n1")?;
    if let Some(health) = n1.health.as_mut() {
        health.tracks.push(TrackSpec {
            name: "app".into(),
            command: vec![
                test.into(),
                "-e".into(),
                flag.to_string_lossy().into_owned(),
            ],
            interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(2),
            rise: 2,
            fall: 2,
            weight: -60,
        });
    }
    Ok(())
}

/// The table, in the order it runs.
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "master-isolated",
        checks: "the isolated master fences itself (no VIP, storage, nfsd, environment) before the majority's master takes over; one master after the heal",
        prepare: as_built,
        run: cases::master_isolated,
    },
    Fault {
        name: "master-killed-restart",
        checks: "SIGKILL of the master's agent, back after rc.d's 1 s: one master, every environment once",
        prepare: as_built,
        run: cases::master_killed_restart,
    },
    Fault {
        name: "state-dir-lost",
        checks: "SIGKILL, state_dir wiped, restart: the start-up probe finds the storage held; no second owner",
        prepare: as_built,
        run: cases::state_dir_lost,
    },
    Fault {
        name: "stop-fails-during-move",
        checks: "move with jstop failing three times: the environment stays claimed until its stop is verified, then starts on the target once",
        prepare: as_built,
        run: cases::stop_fails_during_move,
    },
    Fault {
        name: "step-outlives-lease",
        checks: "a new master cut off while fsck hangs in its promote: the fence kills fsck (step_killed) and it releases before its lease ends",
        prepare: as_built,
        run: cases::step_outlives_lease,
    },
    Fault {
        name: "lease-mismatch",
        checks: "the documented rolling lease change: each restarted node excludes the others' other settings (config_mismatch), one master at the end",
        prepare: as_built,
        run: cases::lease_mismatch,
    },
    Fault {
        name: "demote-keeps-failing",
        checks: "demote of a master whose 'hastctl role secondary' keeps failing: release_stuck, its watchdog resets it, the next node serves",
        prepare: as_built,
        run: cases::demote_keeps_failing,
    },
    Fault {
        name: "agent-frozen-watchdog",
        checks: "SIGSTOP of the master's agent: its watchdog resets the machine before anyone else may take what it held; one master after the reboot",
        prepare: as_built,
        run: cases::agent_frozen_watchdog,
    },
    Fault {
        name: "all-isolated",
        checks: "every node cut off from the others: nothing held anywhere, quorum_lost everywhere; one master after the heal",
        prepare: as_built,
        run: cases::all_isolated,
    },
    Fault {
        name: "loss-20pct",
        checks: "20 % loss on every node for 30 s: no two holders; one master and every environment after it stops",
        prepare: as_built,
        run: cases::loss_20pct,
    },
    Fault {
        name: "wrong-key",
        checks: "a node signing with another key is never heard (auth_failed), never has quorum, changes no role",
        prepare: wrong_key_keys,
        run: cases::wrong_key,
    },
    Fault {
        name: "follower-cut-off",
        checks: "a cut-off follower's environments are adopted once by their next node and not started again when it returns",
        prepare: as_built,
        run: cases::follower_cut_off,
    },
    Fault {
        name: "nfsd-dies-on-master",
        checks: "nfsd dies on the master behind the agent's back: its check restarts it (repair_succeeded, service nfsd), it stays master; no runbook, mount or environment call on a follower",
        prepare: quick_health,
        run: cases::nfsd_dies_on_master,
    },
    Fault {
        name: "nfsd-keeps-dying",
        checks: "nfsd on the master dies and every start fails: after max_repairs (2) failed repairs it resigns (resigned_unhealthy), n2 promotes and serves every environment once",
        prepare: two_repairs,
        run: cases::nfsd_keeps_dying,
    },
    Fault {
        name: "vip-removed-by-hand",
        checks: "ip addr del of the VIP on the master: its check adds it again with an ARP burst (repair_succeeded, vip); master throughout",
        prepare: quick_health,
        run: cases::vip_removed_by_hand,
    },
    Fault {
        name: "follower-mount-hangs",
        checks: "a follower's NFS mounts stop answering: after mount_hang_limit it force-dismounts (umount -N), mounts again once the path is back and restarts what ran there; the master unchanged",
        prepare: short_mount_hang_limit,
        run: cases::follower_mount_hangs,
    },
    Fault {
        name: "track-script-fails",
        checks: "the master's [[track]] (weight -60) fails: its priority drops below n2's and n2 preempts with every environment once; n1 preempts back once the track is good",
        prepare: n1_track,
        run: cases::track_script_fails,
    },
    Fault {
        name: "storage-degraded",
        checks: "the master's HAST resource degraded (the peer's hastd died): health_check_failed with response alert, no repair, no resignation, no role change; recovered once the peer is back",
        prepare: quick_health,
        run: cases::storage_degraded,
    },
    Fault {
        name: "master-killed-followers-ride-through",
        checks: "ride-through: the master loses its power; the follower n3 keeps web3 and vm1 running (never stopped), its mounts answer from the new master n2 without lost NFSv4 state; n1's web1 adopted once by n2; nothing runs twice",
        prepare: ride_through,
        run: cases::master_killed_followers_ride_through,
    },
    Fault {
        name: "ride-through-fallback",
        checks: "ride-through with nfsd's stable restart records emptied on the storage, then the master's power loss: n2 serves without reclaimable, n3 falls back (state_not_moved) to the full follow and restarts web3 and vm1 once; nothing runs twice",
        prepare: ride_through,
        run: cases::ride_through_fallback,
    },
];

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct FaultResult {
    pub name: String,
    pub passed: bool,
    pub checks: String,
    /// What was measured (or, on failure, why it failed).
    pub figure: String,
    /// The longest gap between two VIP samples (ms): shorter VIP overlaps
    /// could go unseen; the storage and environments come from logs.
    pub vip_sampling_gap_ms: f64,
    pub seconds: f64,
    /// On failure: the cluster's view, the holder log and the agents' logs.
    #[serde(skip)]
    pub detail: String,
}

/// The fault named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Fault> {
    FAULTS.iter().find(|f| f.name == name)
}

/// Every fault's name, for messages.
pub fn names() -> Vec<&'static str> {
    FAULTS.iter().map(|f| f.name).collect()
}

/// Runs one fault on a fresh cluster of `exe` agents.
pub fn run_one(fault: &Fault, agent: &AgentCommand, cancel: &Cancel) -> FaultResult {
    let started = Instant::now();
    let mut prepare_error = None;
    let harness = Harness::prepare(agent, cancel, |run_dir, specs| {
        if let Err(e) = (fault.prepare)(run_dir, specs) {
            prepare_error = Some(e);
        }
    });
    let failed = |figure: String, detail: String, gap: f64| FaultResult {
        name: fault.name.to_owned(),
        passed: false,
        checks: fault.checks.to_owned(),
        figure,
        vip_sampling_gap_ms: gap,
        seconds: started.elapsed().as_secs_f64(),
        detail,
    };
    let mut harness = match (harness, prepare_error) {
        (Ok(h), None) => h,
        (_, Some(e)) => return failed(format!("cannot prepare: {e}"), String::new(), 0.0),
        (Err(e), None) => {
            return failed(format!("cannot build the cluster: {e}"), String::new(), 0.0)
        }
    };
    let outcome = (fault.run)(&mut harness);
    let gap = harness.max_sampling_gap_ms();
    let detail = |why: &str| {
        format!(
            "{why}\nnow:{}\n{}\n{}",
            harness.view(),
            harness.holder_log().render(0.0),
            harness.logs()
        )
    };
    match (outcome, harness.overlap()) {
        (Ok(measured), None) => FaultResult {
            name: fault.name.to_owned(),
            passed: true,
            checks: fault.checks.to_owned(),
            figure: format!("{}; overlaps: 0", measured.figure),
            vip_sampling_gap_ms: gap,
            seconds: started.elapsed().as_secs_f64(),
            detail: String::new(),
        },
        (_, Some(overlap)) => failed(
            overlap.lines().next().unwrap_or("").to_owned(),
            detail(&overlap),
            gap,
        ),
        (Err(why), None) => failed(why.clone(), detail(&why), gap),
    }
}

/// Runs the table (or only `only`), one fresh cluster per fault.
pub fn run_table(
    only: Option<&str>,
    agent: &AgentCommand,
    cancel: &Cancel,
) -> Result<Vec<FaultResult>, String> {
    let selected: Vec<&Fault> = match only {
        Some(name) => vec![find(name).ok_or_else(|| {
            format!(
                "no fault named {name:?}; the faults are: {}",
                names().join(", ")
            )
        })?],
        None => FAULTS.iter().collect(),
    };
    let mut results = Vec::new();
    for (i, fault) in selected.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        eprintln!("fault {}/{}: {} …", i + 1, selected.len(), fault.name);
        let result = run_one(fault, agent, cancel);
        eprintln!("  {}", line(&result));
        results.push(result);
    }
    Ok(results)
}

/// One line of the table: name, PASS/FAIL, figure.
pub fn line(result: &FaultResult) -> String {
    format!(
        "{:<24} {}  {} ({:.0} s)",
        result.name,
        if result.passed { "PASS" } else { "FAIL" },
        result.figure,
        result.seconds
    )
}

/// The whole table as text, with what each fault checks.
pub fn to_text(results: &[FaultResult]) -> String {
    let mut out = String::from(
        "Fault table: 3 agents (n1, n2 HAST master candidates, n3 follower-only), quorum and\n\
         placement, FreeBSD tool stand-ins, a fake watchdog per node. PASS = what the fault\n\
         checks held, and the holder log (VIP sampled ~1 ms, storage/nfsd/environments from\n\
         the stand-ins' logs) shows no two holders of anything at any time.\n\n",
    );
    for result in results {
        out.push_str(&line(result));
        out.push('\n');
        out.push_str(&format!("{:<24}       checks: {}\n", "", result.checks));
    }
    let passed = results.iter().filter(|r| r.passed).count();
    out.push_str(&format!("\n{passed}/{} passed\n", results.len()));
    for result in results.iter().filter(|r| !r.passed) {
        out.push_str(&format!(
            "\n--- {} failed ---\n{}\n",
            result.name, result.detail
        ));
    }
    out
}
