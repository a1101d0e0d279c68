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
