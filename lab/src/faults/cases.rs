//! The faults of the table, one function each: set up, break something,
//! wait for what must happen, and return the figure. Every fault runs on a
//! fresh [`Harness`]; the table checks the holder log for overlaps after
//! each one, whatever the function itself checked.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use super::harness::{Harness, CONVERGE, RC_RESTART_DELAY};
use rcbsd_failover::control::protocol::Request;

/// What a fault measured, for its line in the table.
pub struct Measured {
    pub figure: String,
}

type Outcome = Result<Measured, String>;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn lab(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A converged cluster: n1 the only master, every environment once.
fn steady(h: &mut Harness) -> Result<(), String> {
    h.start_all().map_err(lab)?;
    h.wait(
        "n1 sole master, every environment placed once",
        CONVERGE,
        |h| h.sole_master() == Some(0) && h.placed_once(),
    )?;
    Ok(())
}

fn request(h: &Harness, index: usize, req: Request) -> Result<(), String> {
    let response = h
        .agents
        .get(index)
        .and_then(|a| a.request(req, Duration::from_secs(5)))
        .map_err(lab)?;
    if response.ok {
        Ok(())
    } else {
        Err(response.error.unwrap_or_else(|| "refused".into()))
    }
}

pub fn master_isolated(h: &mut Harness) -> Outcome {
    steady(h)?;
    let cut = Instant::now();
    h.topology.split(&[&[0], &[1, 2]]).map_err(lab)?;
    let fenced = h.wait(
        "n1 fenced: no VIP, storage, nfsd or environment",
        CONVERGE,
        |h| h.holds_nothing(0),
    )?;
    h.wait(
        "n2 the only master, every environment placed once",
        CONVERGE,
        |h| h.is_sole_master(1) && h.placed_once(),
    )?;
    let taken = cut.elapsed();
    if h.events(0, "quorum_lost").is_empty() {
        return Err("n1 never logged quorum_lost".into());
    }
    h.topology.heal().map_err(lab)?;
    let healed = Instant::now();
    h.wait_settled("one master after the heal, every environment once")?;
    Ok(Measured {
        figure: format!(
            "fenced {:.1} s after the cut; n2 master with every environment after {:.1} s; settled {:.1} s after the heal",
            secs(fenced),
            secs(taken),
            secs(healed.elapsed())
        ),
    })
}

/// SIGKILL of n1's agent; `wipe`: its state_dir lost too; back after
/// rc.d's restart delay. How long one master with every environment took.
fn kill_and_restart(h: &mut Harness, wipe: bool) -> Result<(usize, Duration), String> {
    steady(h)?;
    h.stop(0, Signal::SIGKILL).map_err(lab)?;
    let killed = Instant::now();
    if wipe {
        let dir = h.state_dir(0).map_err(lab)?;
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    // The supervisor's restart delay (rc.d: daemon -R 1).
    h.pass(RC_RESTART_DELAY)?;
    h.start(0).map_err(lab)?;
    let master = h.wait_settled("one master, every environment placed once")?;
    Ok((master, killed.elapsed()))
}

pub fn master_killed_restart(h: &mut Harness) -> Outcome {
    let (master, took) = kill_and_restart(h, false)?;
    Ok(Measured {
        figure: format!(
            "restarted after {:.1} s; {} sole master with every environment {:.1} s after the kill; {} watchdog reset(s)",
            secs(RC_RESTART_DELAY),
            h.name(master),
            secs(took),
            h.resets(0).len()
        ),
    })
}

pub fn state_dir_lost(h: &mut Harness) -> Outcome {
    let (master, took) = kill_and_restart(h, true)?;
    let found = h.events(0, "found_held");
    if found.is_empty() && h.resets(0).is_empty() {
        return Err(
            "n1 restarted without its state_dir and did not see what it held (no found_held)"
                .into(),
        );
    }
    Ok(Measured {
        figure: format!(
            "found {} held resource(s) without a marker; {} sole master {:.1} s after the kill; {} watchdog reset(s)",
            found.len(),
            h.name(master),
            secs(took),
            h.resets(0).len()
        ),
    })
}

pub fn stop_fails_during_move(h: &mut Harness) -> Outcome {
    steady(h)?;
    // n3 runs web3 (placed on n3 then n1); its first three stops fail.
    h.set_rules(
        2,
        &json!([{"match": ["cbsd", "jstop", "jname=web3"], "action": "fail", "times": 3,
                 "exit": 1, "stderr": "jstop: web3: device busy"}]),
    )
    .map_err(lab)?;
    let asked = Instant::now();
    request(
        h,
        2,
        Request::Move {
            environment: "web3".into(),
            node: "n1".into(),
        },
    )?;
    let moved = h.wait("web3 runs on n1 only", CONVERGE, |h| {
        h.running().get("web3").map(Vec::as_slice) == Some(&[0])
    })?;
    let failed = h.events(2, "environment_stop_failed");
    if failed.is_empty() {
        return Err("n3's failed stops were not reported (environment_stop_failed)".into());
    }
    let _ = asked;
    Ok(Measured {
        figure: format!(
            "{} failed stop(s) reported; web3 on n1 {:.1} s after the move, never on two nodes",
            failed.len(),
            secs(moved)
        ),
    })
}

pub fn step_outlives_lease(h: &mut Harness) -> Outcome {
    steady(h)?;
    // n2's promote will hang in fsck until the fence kills it.
    h.set_rules(1, &json!([{"match": ["fsck"], "action": "hang"}]))
        .map_err(lab)?;
    h.topology.split(&[&[0], &[1, 2]]).map_err(lab)?;
    h.wait("n2 in its promote, fsck running", CONVERGE, |h| {
        h.standin(1).hast_primary()
    })?;
    // Now n2 is cut off too: its lease ends while fsck still runs.
    h.topology.heal().map_err(lab)?;
    h.topology.split(&[&[0, 2], &[1]]).map_err(lab)?;
    let killed = h.wait("n2 kills its hung fsck (step_killed)", CONVERGE, |h| {
        !h.events(1, "step_killed").is_empty()
    })?;
    let released = h.wait("n2 released everything", CONVERGE, |h| h.holds_nothing(1))?;
    let taken = h.wait(
        "n1 the only master, every environment once",
        CONVERGE,
        |h| h.is_sole_master(0) && h.placed_once(),
    )?;
    h.set_rules(1, &json!([])).map_err(lab)?;
    h.topology.heal().map_err(lab)?;
    h.wait_settled("one master after the heal, every environment once")?;
    Ok(Measured {
        figure: format!(
            "fsck killed {:.1} s after n2 was cut off, n2 holding nothing {:.1} s after ({} watchdog reset(s)); n1 master {:.1} s after",
            secs(killed),
            secs(killed + released),
            h.resets(1).len(),
            secs(killed + released + taken)
        ),
    })
}

pub fn lease_mismatch(h: &mut Harness) -> Outcome {
    steady(h)?;
    // docs/operations.md: change the lease one node at a time, followers
    // first: stop the agent, wait at least the old lease, start it with the
    // new settings.
    let old = Duration::from_secs(16);
    let new_lease = Duration::from_secs(12);
    let new_margin = Duration::from_secs(10);
    let started = Instant::now();
    let mut excluded = 0usize;
    for index in [2, 1, 0] {
        h.stop(index, Signal::SIGTERM).map_err(lab)?;
        h.rewrite_config(index, |spec| {
            if let Some(q) = spec.quorum.as_mut() {
                q.lease = new_lease;
                q.fence_margin = new_margin;
            }
        })
        .map_err(lab)?;
        h.pass(old)?;
        h.start(index).map_err(lab)?;
        if index != 0 {
            // The new node must see the others' other settings and not count them.
            h.wait(
                "the restarted node drops the others' heartbeats (config_mismatch)",
                CONVERGE,
                |h| {
                    h.status(index)
                        .ok()
                        .and_then(|s| s.cluster)
                        .is_some_and(|c| {
                            c.heartbeats_dropped
                                .get("config_mismatch")
                                .copied()
                                .unwrap_or(0)
                                > 0
                        })
                },
            )?;
            excluded += 1;
        }
    }
    let master = h.wait_settled("one master with the new lease, every environment once")?;
    Ok(Measured {
        figure: format!(
            "rolled 16 s → 12 s in {:.0} s; {excluded} node(s) seen excluding the old settings; {} master at the end",
            secs(started.elapsed()),
            h.name(master)
        ),
    })
}

pub fn demote_keeps_failing(h: &mut Harness) -> Outcome {
    steady(h)?;
    h.set_rules(
        0,
        &json!([{"match": ["hastctl", "role", "secondary"], "action": "fail",
                 "exit": 1, "stderr": "hastctl: Unable to change role: device busy"}]),
    )
    .map_err(lab)?;
    let asked = Instant::now();
    request(h, 0, Request::Demote)?;
    let stuck = h.wait("n1 escalates (release_stuck)", CONVERGE, |h| {
        !h.events(0, "release_stuck").is_empty()
    })?;
    let reset = stuck
        + h.wait("n1's watchdog resets it", CONVERGE, |h| {
            !h.resets(0).is_empty()
        })?;
    h.set_rules(0, &json!([])).map_err(lab)?;
    h.wait(
        "n2 the only master, every environment placed once",
        CONVERGE,
        |h| h.is_sole_master(1) && h.placed_once(),
    )?;
    Ok(Measured {
        figure: format!(
            "release_stuck {:.1} s after the demote was asked, reset {:.1} s after it; n2 master {:.1} s after",
            secs(stuck),
            secs(reset),
            secs(asked.elapsed())
        ),
    })
}

pub fn agent_frozen_watchdog(h: &mut Harness) -> Outcome {
    steady(h)?;
    h.signal(0, Signal::SIGSTOP).map_err(lab)?;
    let frozen = Instant::now();
    let reset = h.wait("n1's watchdog resets it", CONVERGE, |h| {
        !h.resets(0).is_empty()
    })?;
    // The frozen master still held everything when its pats stopped; the
    // reset must come before anyone else may take it (the holder log says
    // whether it did). After the reboot the cluster settles on one master:
    // n1 again when it is back before its grants ran out, n2 otherwise.
    let master = h.wait_settled("one master after the reset, every environment once")?;
    Ok(Measured {
        figure: format!(
            "reset {:.1} s after SIGSTOP; {} sole master with every environment {:.1} s after",
            secs(reset),
            h.name(master),
            secs(frozen.elapsed())
        ),
    })
}

pub fn all_isolated(h: &mut Harness) -> Outcome {
    steady(h)?;
    let cut = Instant::now();
    h.topology.split(&[&[0], &[1], &[2]]).map_err(lab)?;
    let empty = h.wait("nothing held anywhere", CONVERGE, |h| {
        (0..h.len()).all(|i| h.holds_nothing(i))
    })?;
    h.wait("quorum_lost on every node", CONVERGE, |h| {
        (0..h.len()).all(|i| !h.events(i, "quorum_lost").is_empty())
    })?;
    let _ = cut;
    h.topology.heal().map_err(lab)?;
    let healed = Instant::now();
    h.wait_settled("one master after the heal, every environment once")?;
    Ok(Measured {
        figure: format!(
            "nothing held {:.1} s after the cut; settled {:.1} s after the heal",
            secs(empty),
            secs(healed.elapsed())
        ),
    })
}

pub fn loss_20pct(h: &mut Harness) -> Outcome {
    const LOSS: Duration = Duration::from_secs(30);
    steady(h)?;
    let before = h.state_changes();
    for i in 0..h.len() {
        h.topology.drop_all_randomly(i, 20).map_err(lab)?;
    }
    h.pass(LOSS)?;
    let during = h.state_changes() - before;
    h.topology.heal().map_err(lab)?;
    let master = h.wait("one master after the loss stopped", CONVERGE, |h| {
        h.sole_master().is_some()
    })?;
    h.wait(
        "every environment placed once",
        CONVERGE,
        Harness::placed_once,
    )?;
    Ok(Measured {
        figure: format!(
            "{during} role changes during {} s of 20 % loss; one master {:.2} s after it stopped",
            LOSS.as_secs(),
            secs(master)
        ),
    })
}

pub fn follower_cut_off(h: &mut Harness) -> Outcome {
    steady(h)?;
    let moved: Vec<String> = h.standin(2).running_set().into_iter().collect();
    if moved.is_empty() {
        return Err("n3 runs nothing: nothing to adopt".into());
    }
    h.topology.split(&[&[2], &[0, 1]]).map_err(lab)?;
    let adopted = h.wait(
        "n3's environments adopted by their other node",
        CONVERGE,
        |h| {
            let at = h.running();
            moved.iter().all(|env| {
                at.get(env)
                    .is_some_and(|nodes| nodes.len() == 1 && nodes[0] != 2)
            })
        },
    )?;
    h.topology.heal().map_err(lab)?;
    h.wait(
        "n3 back with quorum, nothing started twice",
        CONVERGE,
        |h| {
            h.status(2)
                .ok()
                .and_then(|s| s.cluster)
                .is_some_and(|c| c.quorum)
                && h.placed_once()
        },
    )?;
    let starts: usize = crate::cbsd::state::env_log(&h.world(0).map_err(lab)?.cluster_log)
        .iter()
        .filter(|e| moved.contains(&e.env) && e.event == "start")
        .count();
    if starts != moved.len() * 2 {
        return Err(format!(
            "{moved:?} must start once on n3 and once on their adopter, never again: {starts} starts"
        ));
    }
    Ok(Measured {
        figure: format!(
            "{moved:?} adopted {:.1} s after the cut, each started exactly twice (n3, adopter)",
            secs(adopted)
        ),
    })
}

pub fn wrong_key(h: &mut Harness) -> Outcome {
    h.start_all().map_err(lab)?;
    // n3 signs with another key: never heard; its environments go to their
    // second node (n1), n1 stays the only master.
    h.wait(
        "n1 sole master, every environment placed once",
        CONVERGE,
        |h| h.sole_master() == Some(0) && h.placed_once(),
    )?;
    let changes = h.state_changes();
    h.wait("auth_failed on n1 and n2", CONVERGE, |h| {
        (0..2).all(|i| !h.events(i, "auth_failed").is_empty())
    })?;
    let mut dropped = 0;
    for i in 0..2 {
        let cluster = h.status(i).map_err(lab)?.cluster.unwrap_or_default();
        if cluster.heard.iter().any(|n| n == "n3") {
            return Err(format!("{} hears the wrong-key node", h.name(i)));
        }
        dropped += cluster.heartbeats_dropped.get("auth").copied().unwrap_or(0);
    }
    if h.status(2)
        .ok()
        .and_then(|s| s.cluster)
        .is_some_and(|c| c.quorum)
    {
        return Err("n3, whom nobody can verify, has quorum".into());
    }
    if h.running().values().flatten().any(|&i| i == 2) {
        return Err("n3 runs environments without quorum".into());
    }
    if h.sole_master() != Some(0) || h.state_changes() != changes {
        return Err("the wrong-key node changed the election".into());
    }
    Ok(Measured {
        figure: format!("{dropped} heartbeats dropped as auth by n1 and n2; no role change"),
    })
}

// ----- health between transitions (issue 12) ---------------------------------
//
// These faults run with the checks every second and `fall` 2
// (`HealthSpec::quick`): what breaks on a node behind its agent's back is
// seen within seconds.

/// A repair of `check` on node `index` succeeded (`repair_succeeded`).
fn repaired(h: &Harness, index: usize, check: &str) -> bool {
    !h.events_where(index, "repair_succeeded", "check", check)
        .is_empty()
}

/// What node `index` did that only a runbook or a remount does: runbooks
/// started, and the stand-in calls that mount, dismount, start or stop.
fn runbook_work(h: &Harness, index: usize) -> (usize, usize) {
    let runbooks = h.events(index, "runbook_started").len();
    let calls = h
        .calls(index)
        .iter()
        .filter(|argv| match argv.first().map(String::as_str) {
            Some("mount_nfs" | "umount") => true,
            Some("cbsd") => argv.get(1).is_some_and(|verb| {
                matches!(verb.as_str(), "jstart" | "jstop" | "bstart" | "bstop")
            }),
            _ => false,
        })
        .count();
    (runbooks, calls)
}

/// nfsd of node `index` dies behind its agent's back: `service nfsd
/// onestatus` says "nfsd is not running.".
fn kill_nfsd(h: &Harness, index: usize) -> Result<(), String> {
    h.kill_service(index, "nfsd").map_err(lab)
}

/// Node `index` logged no `resigned_unhealthy` and is master with the VIP.
fn still_master(h: &Harness, index: usize) -> Result<(), String> {
    if !h.events(index, "resigned_unhealthy").is_empty() {
        return Err(format!("{} resigned", h.name(index)));
    }
    if !h.is_sole_master(index) {
        return Err(format!(
            "{} is not the sole master any more:{}",
            h.name(index),
            h.view()
        ));
    }
    Ok(())
}

pub fn nfsd_dies_on_master(h: &mut Harness) -> Outcome {
    steady(h)?;
    // Whatever the followers did to get here; the repair must add nothing.
    h.pass(Duration::from_secs(3))?;
    let before: Vec<(usize, usize)> = (1..3).map(|i| runbook_work(h, i)).collect();
    let changes = h.state_changes();
    kill_nfsd(h, 0)?;
    // Two checks see a dead nfsd: `service nfsd` (onestatus) and `nfsd
    // listening` (sockstat); whichever reaches `fall` first repairs it,
    // with PROMOTE's own `start nfsd` (after a `stop nfsd` for the latter).
    let nfsd_checks = ["service nfsd", "nfsd listening"];
    let took = h.wait(
        "n1 repaired nfsd (repair_succeeded, check service nfsd or nfsd listening)",
        CONVERGE,
        |h| nfsd_checks.iter().any(|check| repaired(h, 0, check)),
    )?;
    let with_start = nfsd_checks.iter().any(|check| {
        h.events_where(0, "repair_started", "check", check)
            .iter()
            .any(|e| {
                e.get("repair")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| r.split(", ").any(|step| step == "start nfsd"))
            })
    });
    if !with_start {
        return Err("the repair was not PROMOTE's own step 'start nfsd'".into());
    }
    if !h.standin(0).runs_nfsd() {
        return Err("n1 reported the repair but nfsd does not run".into());
    }
    // A few intervals more: the followers, whose NFS mounts did not answer
    // while nfsd was down, must not have remounted or restarted anything.
    h.pass(Duration::from_secs(5))?;
    still_master(h, 0)?;
    for (i, was) in (1..3).zip(&before) {
        let now = runbook_work(h, i);
        if now != *was {
            return Err(format!(
                "{} did runbook work because of the master's nfsd: runbooks/mount-and-environment calls {:?} → {:?}",
                h.name(i),
                was,
                now
            ));
        }
    }
    if h.state_changes() != changes {
        return Err("a role changed".into());
    }
    Ok(Measured {
        figure: format!(
            "nfsd running again {:.1} s after it died; n1 master throughout; followers: no runbook, mount or environment call"
            ,
            secs(took)
        ),
    })
}

pub fn nfsd_keeps_dying(h: &mut Harness) -> Outcome {
    steady(h)?;
    // nfsd keeps dying: killed again as soon as a repair started it.
    let mut kills = 0usize;
    let since = Instant::now();
    while h.events(0, "resigned_unhealthy").is_empty() {
        if h.standin(0).runs_nfsd() {
            kill_nfsd(h, 0)?;
            kills += 1;
        }
        if since.elapsed() > CONVERGE {
            return Err(format!(
                "after {CONVERGE:?} and {kills} kills: n1 resigns (resigned_unhealthy)"
            ));
        }
        h.pass(Duration::from_millis(20))?;
    }
    let resigned = since.elapsed();
    // The budget counts every repair of the node within the window, held
    // or not: nfsd's service check and its listener check (sockstat) both
    // ask for one.
    let repairs = h.events(0, "repair_started").len();
    let max_repairs = 2;
    if repairs < max_repairs {
        return Err(format!(
            "n1 resigned after {repairs} repair(s), not {max_repairs}"
        ));
    }
    let resignation = h.events(0, "resigned_unhealthy");
    let nfsd_checks = ["service nfsd", "nfsd listening"];
    if resignation
        .iter()
        .all(|e| !nfsd_checks.contains(&e.get("check").and_then(|c| c.as_str()).unwrap_or("")))
    {
        return Err(format!("n1 resigned for another check: {resignation:?}"));
    }
    let served = h.wait(
        "n2 the only master, every environment placed once",
        CONVERGE,
        |h| h.is_sole_master(1) && h.placed_once(),
    )?;
    Ok(Measured {
        figure: format!(
            "nfsd killed {kills} times, {repairs} repairs; resigned {:.1} s after it first died; n2 master with every environment once {:.1} s after the resignation",
            secs(resigned),
            secs(served)
        ),
    })
}

pub fn vip_removed_by_hand(h: &mut Harness) -> Outcome {
    steady(h)?;
    let ns = h.topology.node_ns(0).map_err(lab)?.to_owned();
    let vip = format!("{}/{}", crate::netns::VIP, crate::netns::PREFIX_LEN);
    crate::cmd::run(&crate::cmd::argv(&[
        "ip", "-n", &ns, "addr", "del", &vip, "dev", "eth0",
    ]))
    .map_err(lab)?;
    let took = h.wait(
        "n1 re-added the VIP (repair_succeeded, check vip)",
        CONVERGE,
        |h| repaired(h, 0, "vip"),
    )?;
    if h.events_where(0, "repair_started", "check", "vip")
        .iter()
        .all(|e| e.get("repair").and_then(|r| r.as_str()) != Some("add vip, arp burst"))
    {
        return Err("the repair was not 'add vip, arp burst'".into());
    }
    if h.vip_holders() != [0] {
        return Err(format!(
            "the VIP is on {:?} after the repair",
            h.vip_holders()
        ));
    }
    still_master(h, 0)?;
    Ok(Measured {
        figure: format!(
            "VIP back on n1 with an ARP burst {:.1} s after it was removed; n1 master throughout",
            secs(took)
        ),
    })
}

pub fn follower_mount_hangs(h: &mut Harness) -> Outcome {
    steady(h)?;
    let ran: Vec<String> = h.standin(2).running_set().into_iter().collect();
    if ran.is_empty() {
        return Err("n3 runs nothing: nothing to restart".into());
    }
    let world = h.world(2).map_err(lab)?.clone();
    let starts_before = crate::cbsd::state::env_log(&world.cluster_log)
        .iter()
        .filter(|e| e.node == "n3" && e.event == "start")
        .count();
    let calls_before = h.calls(2).len();
    // n3 no longer gets the NFS server's replies: its mounts hang, while
    // its heartbeats and everyone else's mounts are fine.
    h.topology
        .silence_nfs_from(2, crate::netns::VIP)
        .map_err(lab)?;
    // Mounts made after this (seconds since the epoch, as the stand-ins log).
    let cut_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let workdir = world.workdir.to_string_lossy().into_owned();
    let dismounted = h.wait(
        "n3 force-dismounts its hung mounts (umount -N)",
        CONVERGE,
        |h| {
            h.calls(2).iter().skip(calls_before).any(|argv| {
                argv.first().map(String::as_str) == Some("umount")
                    && argv.iter().any(|a| a == "-N")
                    && argv.iter().any(|a| a.starts_with(&workdir))
            })
        },
    )?;
    let remounts: Vec<serde_json::Value> = h
        .events(2, "repair_started")
        .into_iter()
        .filter(|e| {
            e.get("check")
                .and_then(|c| c.as_str())
                .is_some_and(|c| c.starts_with("nfs mount "))
        })
        .collect();
    if remounts.is_empty() {
        return Err("n3 dismounted without its health check asking for a remount".into());
    }
    // The path heals; the remount must succeed and restart what ran there.
    h.topology.heal().map_err(lab)?;
    let back = h.wait(
        "n3 mounted again and runs its environments again",
        CONVERGE,
        |h| {
            let st = h.standin(2);
            let mounts = st.nfs_mounts_from(&world, crate::netns::VIP);
            mounts.len() == crate::cbsd::SHARED_DIRS.len()
                && mounts.iter().all(|(_, t)| *t > cut_at)
                && ran.iter().all(|env| st.running.contains_key(env))
                && h.placed_once()
        },
    )?;
    let starts = crate::cbsd::state::env_log(&world.cluster_log)
        .iter()
        .filter(|e| e.node == "n3" && e.event == "start")
        .count()
        - starts_before;
    if starts < ran.len() {
        return Err(format!(
            "{ran:?} were not started again on n3 ({starts} starts)"
        ));
    }
    if h.sole_master() != Some(0) {
        return Err(format!("the master changed:{}", h.view()));
    }
    Ok(Measured {
        figure: format!(
            "force-dismounted {:.1} s after the mounts hung; mounted again and {ran:?} restarted {:.1} s after the path healed",
            secs(dismounted),
            secs(back)
        ),
    })
}

/// The file n1's `[[track]]` tests for (`test -e`).
pub fn track_flag(run_dir: &std::path::Path) -> std::path::PathBuf {
    run_dir.join("n1-app-healthy")
}

pub fn track_script_fails(h: &mut Harness) -> Outcome {
    steady(h)?;
    let flag = track_flag(h.topology.run_dir());
    std::fs::remove_file(&flag).map_err(|e| format!("removing {}: {e}", flag.display()))?;
    let taken = h.wait(
        "n2 the only master, every environment placed once",
        CONVERGE,
        |h| h.is_sole_master(1) && h.placed_once(),
    )?;
    if h.events_where(0, "health_check_failed", "check", "track app")
        .iter()
        .all(|e| e.get("response").and_then(|r| r.as_str()) != Some("weight"))
    {
        return Err(
            "n1 never logged its track failing (health_check_failed, response weight)".into(),
        );
    }
    let n1 = h.status(0).map_err(lab)?;
    let n2 = h.status(1).map_err(lab)?;
    if n1.effective_priority >= n2.effective_priority {
        return Err(format!(
            "n1's priority {} is not below n2's {}",
            n1.effective_priority, n2.effective_priority
        ));
    }
    // The track good again: n1's priority back, and it preempts.
    std::fs::write(&flag, "").map_err(|e| format!("writing {}: {e}", flag.display()))?;
    let back = h.wait(
        "n1 the only master again (preemption), every environment placed once",
        CONVERGE,
        |h| h.is_sole_master(0) && h.placed_once(),
    )?;
    Ok(Measured {
        figure: format!(
            "n1 {} → {}: n2 master with every environment {:.1} s after the track failed; n1 master again {:.1} s after it recovered",
            n1.configured_priority,
            n1.effective_priority,
            secs(taken),
            secs(back)
        ),
    })
}

pub fn storage_degraded(h: &mut Harness) -> Outcome {
    steady(h)?;
    let changes = h.state_changes();
    // n2's hastd dies: n1's resource has no peer of the other role, so
    // hastctl status says degraded (sbin/hastd/control.c).
    h.kill_service(1, "hastd").map_err(lab)?;
    let alerted = h.wait(
        "n1 alerts (health_check_failed, check storage, response alert)",
        CONVERGE,
        |h| {
            h.events_where(0, "health_check_failed", "check", "storage")
                .iter()
                .any(|e| e.get("response").and_then(|r| r.as_str()) == Some("alert"))
        },
    )?;
    // Several intervals more: an alert, not a reason to fail over.
    h.pass(Duration::from_secs(6))?;
    still_master(h, 0)?;
    if h.state_changes() != changes {
        return Err("a role changed because of a degraded storage".into());
    }
    if !h
        .events_where(0, "repair_started", "check", "storage")
        .is_empty()
    {
        return Err("n1 tried to repair a degraded storage".into());
    }
    // The operator starts n2's hastd again, in role secondary: the
    // resource is complete again and the check recovers.
    h.run_tool(1, "service", &["hastd", "onestart"])
        .map_err(lab)?;
    h.run_tool(
        1,
        "hastctl",
        &["role", "secondary", crate::cbsd::HAST_RESOURCE],
    )
    .map_err(lab)?;
    let recovered = h.wait("n1's storage check recovers", CONVERGE, |h| {
        !h.events_where(0, "health_check_recovered", "check", "storage")
            .is_empty()
    })?;
    Ok(Measured {
        figure: format!(
            "alert {:.1} s after the peer's hastd died; n1 master 6 s later, no repair, no role change; recovered {:.1} s after the peer came back",
            secs(alerted),
            secs(recovered)
        ),
    })
}

/// Epoch seconds, as the stand-ins' logs record time.
fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The starts and stops of `env` after `since` in the cluster log, as
/// `(node, event)`.
fn env_changes(h: &Harness, env: &str, since: f64) -> Result<Vec<(String, String)>, String> {
    let log = crate::cbsd::state::env_log(&h.world(0).map_err(lab)?.cluster_log);
    Ok(log
        .into_iter()
        .filter(|e| e.env == env && e.t >= since)
        .map(|e| (e.node, e.event))
        .collect())
}

/// Environments that ran twice at once, from the cluster log.
fn ran_twice(h: &Harness) -> Result<Vec<String>, String> {
    let log = crate::cbsd::state::env_log(&h.world(0).map_err(lab)?.cluster_log);
    Ok(crate::cbsd::state::double_runs(&log))
}

/// n1, the master, loses its power for good with every environment
/// running: n2 takes over once n1's leases are over. Returns the cut's
/// epoch time and how long until n2 was the sole master with every
/// environment once.
fn master_powered_off(h: &mut Harness) -> Result<(f64, Duration), String> {
    let cut_wall = now_epoch();
    let cut = Instant::now();
    h.power_off(0).map_err(lab)?;
    h.wait(
        "n2 the only master, every environment placed once",
        CONVERGE,
        |h| h.is_sole_master(1) && h.placed_once(),
    )?;
    Ok((cut_wall, cut.elapsed()))
}

/// The ride-through rows: n3, a follower, keeps web3 and vm1 through the
/// loss of the master; web1 (n1's) is adopted by n2, once.
pub fn master_killed_followers_ride_through(h: &mut Harness) -> Outcome {
    steady(h)?;
    let (cut_wall, took) = master_powered_off(h)?;
    h.wait(
        "n3 rode through to n2 (its mounts served by n2)",
        CONVERGE,
        |h| {
            let state = h.standin(2);
            let nfs: Vec<_> = state.mounts.iter().filter(|m| m.fstype == "nfs").collect();
            !nfs.is_empty()
                && nfs.iter().all(|m| m.served_by() == Some("n2"))
                && !h
                    .events(2, "runbook_finished")
                    .iter()
                    .all(|e| e["runbook"] != "ride-through")
        },
    )?;
    for env in ["web3", "vm1"] {
        let changes = env_changes(h, env, cut_wall)?;
        if !changes.is_empty() {
            return Err(format!(
                "{env} on the follower n3 was stopped or started after the kill: {changes:?}"
            ));
        }
    }
    let web1 = env_changes(h, "web1", cut_wall)?;
    let starts: Vec<_> = web1.iter().filter(|(_, e)| e == "start").collect();
    if starts.len() != 1 || starts[0].0 != "n2" {
        return Err(format!("web1 (n1's) must be adopted once by n2: {web1:?}"));
    }
    let twice = ran_twice(h)?;
    if !twice.is_empty() {
        return Err(format!("ran twice: {twice:?}"));
    }
    if crate::cbsd::state::lost_nfs_state_since(h.world(2).map_err(lab)?, cut_wall) {
        return Err("n3's NFS client lost its state to n2 (no stable restart record)".into());
    }
    if !h.events(2, "follow_fallback").is_empty() {
        return Err(format!(
            "n3 fell back: {:?}",
            h.events(2, "follow_fallback")
        ));
    }
    if h.events(2, "follow_ride_through").is_empty() {
        return Err("n3 never logged follow_ride_through".into());
    }
    // n2's nfsd read the records through the link its agent's promote
    // made (the lab links nothing itself).
    let world = h.world(1).map_err(lab)?;
    let records = crate::cbsd::world::disk(&crate::cbsd::world::cluster_dir(h.topology.run_dir()))
        .join(crate::cbsd::world::STABLE_RESTART_DIR)
        .join("nfs-stablerestart");
    let linked = std::fs::read_link(world.root.join("var/db/nfs-stablerestart"))
        .map_err(|e| format!("n2's var/db/nfs-stablerestart is not a link: {e}"))?;
    let state: serde_json::Value = std::fs::read_to_string(&world.state)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let read_from = state["nfsd_stable"]["file"].as_str().unwrap_or_default();
    let expected =
        std::fs::canonicalize(&records).map_err(|e| format!("{}: {e}", records.display()))?;
    if std::path::Path::new(read_from) != expected {
        return Err(format!(
            "n2's nfsd read its records from {read_from:?}, not the storage's {} (link {})",
            expected.display(),
            linked.display()
        ));
    }
    Ok(Measured {
        figure: format!(
            "n2 sole master with every environment {:.1} s after n1's power loss; n3 rode through (web3, vm1 never stopped, mounts served by n2, no state lost); web1 adopted once by n2",
            secs(took)
        ),
    })
}

/// nfsd's stable restart records emptied on the storage before the
/// master's loss: n2 serves without them, n3 sees it in n2's heartbeat
/// (no `reclaimable`) and follows in full (`state_not_moved`) instead of
/// riding on with its NFSv4 state silently gone.
pub fn ride_through_fallback(h: &mut Harness) -> Outcome {
    steady(h)?;
    let dir = crate::cbsd::world::disk(&crate::cbsd::world::cluster_dir(h.topology.run_dir()))
        .join(crate::cbsd::world::STABLE_RESTART_DIR);
    for file in ["nfs-stablerestart", "nfs-stablerestart.bak"] {
        let path = dir.join(file);
        std::fs::write(&path, "").map_err(|e| format!("emptying {}: {e}", path.display()))?;
    }
    let (cut_wall, took) = master_powered_off(h)?;
    let fallback = h.wait(
        "n3 falls back with cause state_not_moved and follows n2",
        CONVERGE,
        |h| {
            let state = h.standin(2);
            !h.events_where(2, "follow_fallback", "cause", "state_not_moved")
                .is_empty()
                && state
                    .mounts
                    .iter()
                    .filter(|m| m.fstype == "nfs")
                    .all(|m| m.server.as_deref() == Some("n2"))
                && state.running.len() == 2
        },
    )?;
    let restarted: Vec<_> = ["web3", "vm1"]
        .into_iter()
        .filter(|env| {
            env_changes(h, env, cut_wall)
                .is_ok_and(|c| c.iter().any(|(n, e)| n == "n3" && e == "start"))
        })
        .collect();
    if restarted.len() != 2 {
        return Err(format!(
            "n3 did the full follow but restarted only {restarted:?} of web3, vm1"
        ));
    }
    if !h
        .events(2, "runbook_finished")
        .iter()
        .all(|e| e["runbook"] != "ride-through")
    {
        return Err("n3 ran the ride-through probes though n2 was not reclaimable".into());
    }
    let twice = ran_twice(h)?;
    if !twice.is_empty() {
        return Err(format!("ran twice: {twice:?}"));
    }
    h.wait_settled("one master, every environment once")?;
    let lost = crate::cbsd::state::lost_nfs_state_since(h.world(2).map_err(lab)?, cut_wall);
    Ok(Measured {
        figure: format!(
            "n2 sole master {:.1} s after n1's power loss; n3 fell back (state_not_moved) and followed in full within {:.1} s more, restarting web3 and vm1 once; nothing ran twice{}",
            secs(took),
            secs(fallback),
            if lost { "; the stand-in noted a lost state on a mount being given up" } else { "" }
        ),
    })
}
